"""mod_python.publisher for mod_wasmpy: `PythonHandler mod_python.publisher`.

Written for mod_wasmpy from mod_python 3.5's documentation and observed
behaviour. A URL names a module file and an object in it:

    /dir/hello.py/say?what=x   ->  /app/dir/hello.py, hello.say(req, what="x")
    /dir/hello/say             ->  the same, where Apache left `.py` off
    /dir/                      ->  /app/dir/index.py, index.index(req)
    /dir/say                   ->  /app/dir/index.py, index.say (no say.py there)

The rules, as mod_python 3.5 has them:
- only GET, POST and HEAD (405 otherwise);
- every element of the path is refused (403) if it starts with `_`;
- modules, classes, built-in functions and methods can be neither
  traversed nor published; functions, methods, generators and the other
  objects of the `types` module can be published but not traversed; other
  objects (instances, containers) can be both;
- `__auth__`, `__access__` and `__auth_realm__` are looked for on the
  module and on every object on the way (for a function: assigned in its
  body, or set as its attributes): Basic credentials from the
  `Authorization` header, 401 with `WWW-Authenticate` when `__auth__`
  refuses them (when it accepts them, `req.user` is set), 403 when
  `__access__` refuses the user;
- a callable is called with the form fields its parameters name (and `req`
  when it has a `req` parameter), via `util.FieldStorage` (kept as
  `req.form`) and `util.apply_fs_data`; what it returns is published in turn;
- `None` publishes nothing; str is written as UTF-8, bytes as they are,
  anything else as `str(obj)`; unless the handler set `req.content_type`,
  the type is `text/html` when the text ends with `</html>` (within its
  last 100 characters), else `text/plain`.

Published modules are kept per file (not imported through sys.path: two
`index.py` in two directories are two modules) and loaded again when the
file changes, unless `PythonAutoReload Off`.
"""

import binascii
import hmac
import importlib.machinery
import importlib.util
import os
import re
import sys
import types
import weakref

from . import apache

__all__ = ["handler", "process_auth", "resolve_object", "publish_object", "page_cache"]

ALLOWED_METHODS = ("GET", "POST", "HEAD")


def _flag(config, name, default):
    value = config.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "off", "false", "")


# ---- the published pages ----------------------------------------------------

_NOT_WORD = re.compile(r"\W")


class _Page:
    __slots__ = ("module", "stamp")

    def __init__(self, module, stamp):
        self.module = module
        self.stamp = stamp


class PageCache:
    """The published modules, one per file, reloaded when the file changes.

    A page is executed as a module of its own, named after its path
    (`/app/index.py` -> `_app_index_py`) and registered in sys.modules under
    that name (so that pickle, dataclasses and typing find it); it is not
    importable under its file's name through this cache.
    """

    def __init__(self):
        self._pages = {}

    def __contains__(self, filename):
        return filename in self._pages

    def clear(self):
        self._pages.clear()

    def __getitem__(self, req):
        """`page_cache[req]`, as mod_python's: the page of `req.filename`."""
        config = req.get_config()
        return self.get(req, req.filename, _flag(config, "PythonAutoReload", True),
                        _flag(config, "PythonDebug", False))

    def get(self, req, filename, autoreload=True, log=False):
        page = self._pages.get(filename)
        if page is not None and not autoreload:
            return page.module
        try:
            st = os.stat(filename)
        except FileNotFoundError:
            self._pages.pop(filename, None)
            raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND) from None
        stamp = (st.st_mtime_ns, st.st_size)
        if page is not None and page.stamp == stamp:
            return page.module
        if log:
            verb = "loading" if page is None else "reloading"
            req.log_error(f"Publisher {verb} page {filename}", apache.APLOG_NOTICE)
        module = self._build(filename, page)
        self._pages[filename] = _Page(module, stamp)
        return module

    @staticmethod
    def _build(filename, old):
        name = _NOT_WORD.sub("_", filename)
        if old is not None:
            # Its bytecode is checked by whole-second mtime and size only.
            apache._forget_bytecode(old.module)
        loader = importlib.machinery.SourceFileLoader(name, filename)
        spec = importlib.util.spec_from_file_location(name, filename, loader=loader)
        module = importlib.util.module_from_spec(spec)
        previous = sys.modules.get(name)
        sys.modules[name] = module
        try:
            loader.exec_module(module)
        except BaseException:
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
            raise
        return module


page_cache = PageCache()


# ---- mapping the URL --------------------------------------------------------

def _locate(req):
    """(module file, dotted object path) for this request, as mod_python maps them."""
    filename = req.filename
    if not filename:
        raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
    directory, module_name = os.path.split(filename)
    # Apache leaves a trailing slash on a directory: its module is `index`.
    if not module_name:
        module_name = "index"

    # Strip the extension that brought the request here.
    suffixes = ["py"]
    try:
        exts = req.get_addhandler_exts() or ""
    except NotImplementedError:
        exts = ""
    suffixes += [s.lstrip(".") for s in exts.split()]
    extension = req.extension
    if extension:
        suffixes.append(extension[1:])
    suffixes = [s for s in suffixes if s]
    module_name = re.sub("|".join(r"\." + re.escape(s) + "$" for s in suffixes), "", module_name)

    func_path = ""
    path_info = req.path_info
    if path_info:
        func_path = path_info[1:]
        if func_path.endswith("/"):
            func_path = func_path[:-1]

    candidate = directory + "/" + module_name + ".py"
    if not os.path.isfile(candidate):
        # No such module: the name is an object of the directory's index.py.
        func_path = module_name + "/" + func_path if func_path else module_name
        candidate = directory + "/index.py"
        if not os.path.isfile(candidate):
            raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)

    if not func_path:
        func_path = "index"
    return os.path.normpath(candidate), func_path.replace("/", ".")


# ---- the handler ------------------------------------------------------------

def handler(req):
    req.allow_methods(list(ALLOWED_METHODS))
    if req.method not in ALLOWED_METHODS:
        raise apache.SERVER_RETURN(apache.HTTP_METHOD_NOT_ALLOWED)

    filename, func_path = _locate(req)
    if req.filename != filename:
        req.filename = filename

    config = req.get_config()
    debug = _flag(config, "PythonDebug", False)
    module = page_cache.get(req, filename, _flag(config, "PythonAutoReload", True), debug)

    realm, user, passwd = process_auth(req, module)
    obj = resolve_object(req, module, func_path, realm, user, passwd)
    published = publish_object(req, obj)
    if not published and debug:
        req.log_error("mod_python.publisher: nothing to publish.", apache.APLOG_NOTICE)
    return apache.OK


# ---- authentication ---------------------------------------------------------

_AUTH_NAMES = ("__auth__", "__access__", "__auth_realm__")
_MISSING = object()
# code object -> {name: compiled code giving its value}
_local_cache = weakref.WeakKeyDictionary()


def _parameters(code):
    n = code.co_argcount + code.co_kwonlyargcount
    n += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)
    return code.co_varnames[:n]


def _assignments(body):
    """(name, node) of the names bound in a function body, in source order,
    not looking into nested functions and classes."""
    import ast

    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield stmt.name, stmt
            continue
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    yield target.id, stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            if isinstance(stmt.target, ast.Name) and stmt.value is not None:
                yield stmt.target.id, stmt.value
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list):
                yield from _assignments(inner)
        for part in getattr(stmt, "handlers", None) or getattr(stmt, "cases", None) or ():
            yield from _assignments(part.body)


def _compile_locals(func, code, wanted):
    """The code giving the value of each of `wanted` (local names of `func`),
    from the function's source."""
    import ast
    import inspect
    import textwrap

    where = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', code.co_name)}"
    try:
        lines, first = inspect.getsourcelines(code)
    except (OSError, TypeError) as exc:
        raise RuntimeError(f"mod_python.publisher: {where} sets {', '.join(wanted)} in its body, "
                           f"but its source cannot be read to find their values") from exc
    tree = ast.parse(textwrap.dedent("".join(lines)))
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name != code.co_name:
        raise RuntimeError(f"mod_python.publisher: cannot find the body of {where} in its source")
    ast.increment_lineno(tree, first - 1)
    found = {}
    for name, value in _assignments(node.body):
        if name in wanted and name not in found:
            if isinstance(value, ast.expr):
                expr = ast.Expression(body=value)
                found[name] = ("eval", compile(ast.fix_missing_locations(expr),
                                               code.co_filename, "eval"))
            else:
                mod = ast.Module(body=[value], type_ignores=[])
                found[name] = ("exec", compile(ast.fix_missing_locations(mod),
                                               code.co_filename, "exec"))
    missing = [n for n in wanted if n not in found]
    if missing:
        # Bound some other way (unpacking, import, a loop): refuse rather than skip the check.
        raise RuntimeError(f"mod_python.publisher: cannot tell the value of {', '.join(missing)} "
                           f"in {where}: assign it with a plain `name = value` or `def`")
    return found


def _function_locals(func):
    """{name: value} of `__auth__`, `__access__`, `__auth_realm__` assigned in
    the body of `func`, as mod_python 3.5 finds them (without running it)."""
    code = func.__code__
    params = _parameters(code)
    wanted = [n for n in _AUTH_NAMES
              if (n in code.co_varnames and n not in params) or n in code.co_cellvars]
    if not wanted:
        return {}
    try:
        compiled = _local_cache.get(code)
    except TypeError:
        compiled = None
    if compiled is None:
        compiled = _compile_locals(func, code, wanted)
        try:
            _local_cache[code] = compiled
        except TypeError:
            pass
    values = {}
    for name, (mode, obj) in compiled.items():
        if mode == "eval":
            values[name] = eval(obj, func.__globals__, {})
        else:
            ns = {}
            exec(obj, func.__globals__, ns)
            values[name] = ns[name]
    return values


def _credentials(req):
    """(user, password) from the request's Basic `Authorization` header;
    (None, None) without one; 400 when it cannot be decoded."""
    header = req.headers_in.get("Authorization")
    if isinstance(header, list):
        header = header[0]
    if not header:
        return None, None
    scheme, _, data = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        raw = binascii.a2b_base64(data.strip().encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise apache.SERVER_RETURN(apache.HTTP_BAD_REQUEST) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if ":" not in text or any(c in text for c in "\r\n\0"):
        raise apache.SERVER_RETURN(apache.HTTP_BAD_REQUEST)
    user, passwd = text.split(":", 1)
    return user, passwd


def _challenge(req, realm):
    realm = str(realm).replace("\\", "\\\\").replace('"', '\\"')
    realm = "".join(c for c in realm if c >= " " and c != "\x7f")
    req.err_headers_out["WWW-Authenticate"] = f'Basic realm="{realm}"'
    raise apache.SERVER_RETURN(apache.HTTP_UNAUTHORIZED)


def _same(a, b):
    if isinstance(a, str) and isinstance(b, str):
        return hmac.compare_digest(a.encode("utf-8", "surrogatepass"),
                                   b.encode("utf-8", "surrogatepass"))
    return a == b


def process_auth(req, obj, realm="unknown", user=None, passwd=None):
    """Check `obj`'s `__auth__` and `__access__` (raising SERVER_RETURN 401
    or 403); returns (realm, user, passwd) for the next traversal step."""
    found = {}
    realm_attr = getattr(obj, "__auth_realm__", _MISSING)
    if realm_attr is not _MISSING:
        realm = realm_attr
    for name in ("__auth__", "__access__"):
        value = getattr(obj, name, _MISSING)
        if value is not _MISSING:
            found[name] = value
    func = obj.__func__ if isinstance(obj, types.MethodType) else obj
    if isinstance(func, types.FunctionType):
        local = _function_locals(func)
        found.update((k, v) for k, v in local.items() if k != "__auth_realm__")
        if "__auth_realm__" in local:
            realm = local["__auth_realm__"]

    if not found:
        return realm, user, passwd
    if not user:
        user, passwd = _credentials(req)

    if "__auth__" in found:
        auth = found["__auth__"]
        if not user:
            _challenge(req, realm)
        if callable(auth):
            ok = auth(req, user, passwd)
        elif isinstance(auth, dict):
            ok = user in auth and _same(auth[user], passwd)
        else:
            ok = auth
        if not ok:
            _challenge(req, realm)
        # The user is authenticated: say so to the handler and to Apache
        # (logs, later phases), as an Apache authentication module would.
        if req.user != user:
            req.user = user
        if req.ap_auth_type != "Basic":
            req.ap_auth_type = "Basic"

    if "__access__" in found:
        access = found["__access__"]
        if callable(access):
            ok = access(req, user)
        elif isinstance(access, (list, tuple, set, frozenset)):
            ok = user in access
        else:
            ok = access
        if not ok:
            raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)

    return realm, user, passwd


# ---- traversal and publishing -----------------------------------------------

# type -> (traversable, publishable). The types of the `types` module
# (functions, methods, generators, code, frames, ...) can be published but
# not traversed; the exceptions follow. Other types: both.
tp_rules = {t: (False, True) for t in vars(types).values() if isinstance(t, type)}
tp_rules.update({
    types.ModuleType: (False, False),
    types.BuiltinFunctionType: (False, False),
    type: (False, False),
    types.GeneratorType: (False, True),
})
default_tp_rule = (True, True)


def _rule(obj):
    # Any class (whatever its metaclass) and any module: neither.
    if isinstance(obj, (type, types.ModuleType)):
        return (False, False)
    return tp_rules.get(type(obj), default_tp_rule)


def resolve_object(req, obj, object_str, realm=None, user=None, passwd=None):
    """Walk `object_str` (dotted) from `obj`, checking every step."""
    first = True
    for name in object_str.split("."):
        if not name:
            raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
        if name[0] == "_":
            req.log_error(f"Cannot traverse {name} in {req.unparsed_uri} because it starts "
                          f"with an underscore", apache.APLOG_WARNING)
            raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)
        if first:
            first = False
        elif not _rule(obj)[0]:
            req.log_error(f"Cannot traverse {name} in {req.unparsed_uri} because {obj!r} is not "
                          f"a traversable object", apache.APLOG_WARNING)
            raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND) from None
        realm, user, passwd = process_auth(req, obj, realm, user, passwd)

    if not _rule(obj)[1]:
        req.log_error(f"Cannot publish {object_str} in {req.unparsed_uri} because {obj!r} is "
                      f"not publishable", apache.APLOG_WARNING)
        raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)
    return obj


# How many times a callable's result is called in turn when it is itself callable.
MAX_CALLS = 100

_HTML_END = re.compile(r"</HTML\s*>\s*$", re.I)


def publish_object(req, obj):
    """Call `obj` with the form if callable (publishing what it returns),
    else write it. True when something was written."""
    if callable(obj):
        from . import util

        # The body can be read once: one FieldStorage for the whole chain of calls.
        form = req.form = util.FieldStorage(req, keep_blank_values=1)
        for _ in range(MAX_CALLS):
            obj = util.apply_fs_data(obj, form, req=req)
            if not callable(obj):
                break
        else:
            raise RuntimeError(f"mod_python.publisher: still a callable after {MAX_CALLS} calls")
    if obj is None:
        return False
    if isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        tail = data[-100:].decode("latin-1")
    else:
        text = obj if isinstance(obj, str) else str(obj)
        data = text.encode("utf-8")
        tail = text[-100:]
    if not req._content_type_set:
        req.content_type = "text/html" if _HTML_END.search(tail) else "text/plain"
    # Also for HEAD: Apache drops the body. Not flushed, so that Apache can
    # still set Content-Length.
    req.write(data, 0)
    return True
