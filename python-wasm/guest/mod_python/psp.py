"""mod_python.psp for mod_wasmpy: Python Server Pages.

`PSP`, `PSPInterface`, `handler` (for `AddHandler mod_python .psp` +
`PythonHandler mod_python.psp`), `parse` and `parsestring`, as mod_python
3.5 has them. Written for mod_wasmpy from mod_python 3.5's documentation and
observed behaviour; the translation of pages is `mod_python._psp_parser`
(pure Python; mod_python uses the C extension `_psp`), which gives the same
Python code as mod_python for the pages mod_python translates correctly.

Compiled pages are cached twice:

- in the instance (`mem_fcache`, 512 pages, and `mem_scache` for `PSP(string=...)`),
  keyed by path; an entry holds the (path, mtime, size) of the page and of
  every file it includes, and is used only while all of them are unchanged;
- on disk, in the tenant's state directory (`wasmpy.state.directory("psp")`,
  one file per page: `sha256(path).pspc`), so that a new instance does not
  parse the page again. A file holds a header (magic, format, the Python
  bytecode magic number, a SHA-256 of the rest), then the marshalled
  (generator version, page path, [(path, mtime_ns, size)], marshalled code).
  A file that fails any check is ignored and written anew.

`PythonOption mod_python.psp.disk_cache Off` keeps compiled pages in memory
only. mod_python's `mod_python.psp.cache_database_filename` and `PSPDbmCache`
(a dbm file on the host) are accepted and ignored: the disk cache above
takes their place.
"""

import hashlib
import marshal
import os
import stat as _stat
import sys
import types
from html import escape
from importlib.util import MAGIC_NUMBER as _PY_MAGIC

from mod_python import _psp_parser, apache
from mod_python._psp_parser import PSPSyntaxError  # noqa: F401 - part of the API

__all__ = ["PSP", "PSPInterface", "PSPSyntaxError", "handler", "parse", "parsestring"]

OPTION_PREFIX = "mod_python.psp."

#: Pages kept compiled in an instance (mod_python: 512).
CACHE_SIZE = 512

_DISK_MAGIC = b"WPSP"
_DISK_FORMAT = 1
_DISK_HEADER = len(_DISK_MAGIC) + 1 + len(_PY_MAGIC) + 32
#: Compiled pages bigger than this are not written to (or read from) disk.
MAX_DISK_ENTRY = 64 * 1024 * 1024


def path_split(filename):
    """(directory with a trailing "/", file name), as mod_python's."""
    directory, fname = os.path.split(filename)
    return directory + "/", fname


def _module(name):
    """mod_python.util / Session, imported when a page first needs them."""
    import importlib

    return importlib.import_module("mod_python." + name)


def _code_names(code):
    """Every name the code refers to (co_names), its nested functions,
    classes, lambdas and generator expressions included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return frozenset(names)


def _flag(value, default):
    if value is None:
        return default
    if isinstance(value, list):
        value = value[-1]
    return value.strip().lower() not in ("0", "off", "false", "no", "")


def _deps_current(deps):
    for path, mtime_ns, size in deps:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return False
    return True


# ---- the memory caches ------------------------------------------------------

class HitsCache:
    """A bounded cache; over `size` entries, the least used are dropped
    until it is 75% full (mod_python's policy)."""

    def __init__(self, size=CACHE_SIZE):
        self.cache = {}
        self.size = size

    def store(self, key, val):
        self.cache[key] = [1, val]
        if len(self.cache) > self.size:
            self.clean()

    def get(self, key):
        entry = self.cache.get(key)
        if entry is None:
            return None
        entry[0] += 1
        return entry[1]

    def clean(self):
        by_hits = sorted(self.cache.items(), key=lambda item: item[1][0])
        for key, _ in by_hits[:len(self.cache) - int(self.size * 0.75)]:
            del self.cache[key]

    def clear(self):
        self.cache.clear()


class _Compiled:
    __slots__ = ("code", "names", "deps")

    def __init__(self, code, deps):
        self.code = code
        self.names = _code_names(code)
        self.deps = tuple(deps)


class FileCache(HitsCache):
    """Compiled pages by path, used only while the page and its includes
    are unchanged."""

    def get(self, key):
        entry = self.cache.get(key)
        if entry is None:
            return None
        if not _deps_current(entry[1].deps):
            del self.cache[key]
            return None
        entry[0] += 1
        return entry[1]


mem_scache = FileCache()
mem_fcache = FileCache()


# ---- the disk cache ---------------------------------------------------------

def _disk_file(path):
    from wasmpy import state

    digest = hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()
    return os.path.join(state.directory("psp"), digest + ".pspc")


def _disk_get(path):
    """The _Compiled of `path` from the disk cache, or None."""
    try:
        cfile = _disk_file(path)
        with open(cfile, "rb") as f:
            blob = f.read(MAX_DISK_ENTRY + 1)
    except OSError:
        return None
    if len(blob) <= _DISK_HEADER or len(blob) > MAX_DISK_ENTRY:
        return None
    prefix = _DISK_MAGIC + bytes([_DISK_FORMAT]) + _PY_MAGIC
    if not blob.startswith(prefix):
        return None
    payload = blob[_DISK_HEADER:]
    if hashlib.sha256(payload).digest() != blob[len(prefix):_DISK_HEADER]:
        return None
    try:
        generator, source, deps, code_bytes = marshal.loads(payload)
        if generator != _psp_parser.VERSION or source != path or not deps or deps[0][0] != path:
            return None
        deps = [(str(p), int(m), int(s)) for p, m, s in deps]
        if not _deps_current(deps):
            return None
        code = marshal.loads(code_bytes)
    except Exception:  # noqa: BLE001 - any damage: not a cache entry
        return None
    if not isinstance(code, types.CodeType):
        return None
    return _Compiled(code, deps)


def _disk_put(path, compiled, req=None):
    try:
        payload = marshal.dumps((_psp_parser.VERSION, path, list(compiled.deps),
                                 marshal.dumps(compiled.code)))
    except ValueError:
        return
    blob = (_DISK_MAGIC + bytes([_DISK_FORMAT]) + _PY_MAGIC
            + hashlib.sha256(payload).digest() + payload)
    if len(blob) > MAX_DISK_ENTRY:
        return
    tmp = None
    try:
        cfile = _disk_file(path)
        tmp = f"{cfile}.{os.urandom(6).hex()}.tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, cfile)
        tmp = None
    except OSError as exc:
        if req is not None:
            req.log_error(f"mod_python.psp: could not write the compiled {path} to the "
                          f"state directory: {exc}", apache.APLOG_WARNING)
    finally:
        if tmp is not None:
            try:
                os.remove(tmp)
            except OSError:
                pass


# ---- translating ------------------------------------------------------------

def _log_warnings(req, warnings):
    for warning in warnings:
        if req is not None:
            req.log_error("mod_python.psp: " + warning, apache.APLOG_WARNING)


def _compile_file(req, filename):
    result = _psp_parser.parse_file(filename, path_split(filename)[0])
    _log_warnings(req, result.warnings)
    return _Compiled(_psp_parser.compile_page(result, filename), result.deps)


def parse(filename, dir=None):  # noqa: A002 - mod_python's signature
    """The Python code of the page `dir + filename` (a plain concatenation,
    as mod_python's); relative includes are taken from `dir`."""
    path = dir + filename if dir else filename
    return _psp_parser.parse_file(path, dir or None).code


def parsestring(str):  # noqa: A002 - mod_python's signature
    """The Python code of a page given as a string (str or UTF-8 bytes)."""
    return _psp_parser.parse_string(str).code


# ---- PSPInterface -----------------------------------------------------------

class PSPInterface:
    """The `psp` object of a page."""

    def __init__(self, req, filename, form):
        self.req = req
        self.filename = filename
        self.error_page = None
        self.form = form

    def set_error_page(self, page):
        """Run the page `page` instead when this one raises; it gets
        `exception` (sys.exc_info()) in its globals. An absolute `page` is
        taken from the document root, a relative one from this page's
        directory."""
        if page and page[0] == "/":
            root = self.req.document_root()
            if not root:
                raise ValueError("psp.set_error_page(): this request has no document root "
                                 "to take an absolute page from")
            self.error_page = PSP(self.req, root.rstrip("/") + page)
        else:
            base = self.filename or self.req.filename
            self.error_page = PSP(self.req, path_split(base)[0] + page)

    def apply_data(self, object, **kw):  # noqa: A002 - mod_python's signature
        """Call `object` with the form's fields as keyword arguments."""
        util = _module("util")
        if not self.form:
            if not hasattr(self.req, "form"):
                self.form = util.FieldStorage(self.req, keep_blank_values=1)
                self.req.form = self.form
            else:
                self.form = self.req.form
        kw.setdefault("req", self.req)
        return util.apply_fs_data(object, self.form, **kw)

    def redirect(self, location, permanent=0):
        """Redirect the client (302, or 301 when permanent); ends the page."""
        _module("util").redirect(self.req, location, permanent)


# ---- PSP --------------------------------------------------------------------

class PSP:
    """A page from a file (`filename`, relative to req.filename's directory;
    req.filename when neither is given) or from `string`."""

    code = None
    dbmcache = None

    def __init__(self, req, filename=None, string=None, vars={}):  # noqa: B006
        if string and filename:
            raise ValueError("Must specify either filename or string")
        self.req, self.vars = req, vars
        if not filename and not string:
            filename = req.filename
            if not filename:
                raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
        self.filename, self.string = filename, string
        self._names = frozenset()
        if filename:
            if not os.path.isabs(filename):
                self.filename = os.path.join(os.path.dirname(req.filename), filename)
            self.load_from_file()
        else:
            self.load_from_string()

    def _include_dir(self):
        base = getattr(self.req, "filename", None)
        return path_split(base)[0] if base else None

    def load_from_string(self):
        if isinstance(self.string, (bytes, bytearray)):
            self.string = bytes(self.string).decode("utf-8")
        include_dir = self._include_dir()
        key = (self.string, include_dir)
        compiled = mem_scache.get(key)
        if compiled is None:
            result = _psp_parser.parse_string(self.string, include_dir)
            _log_warnings(self.req, result.warnings)
            code = _psp_parser.compile_page(result, "__psp__")
            compiled = _Compiled(code, result.deps)
            mem_scache.store(key, compiled)
        self.code, self._names = compiled.code, compiled.names

    def load_from_file(self):
        filename = self.filename
        try:
            st = os.stat(filename)
        except (OSError, ValueError):
            st = None
        if st is None or not _stat.S_ISREG(st.st_mode):
            raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
        compiled = mem_fcache.get(filename)
        if compiled is None:
            disk = self._disk_cache()
            if disk:
                compiled = _disk_get(filename)
            if compiled is None:
                compiled = _compile_file(self.req, filename)
                if disk:
                    _disk_put(filename, compiled, self.req)
            mem_fcache.store(filename, compiled)
        self.code, self._names = compiled.code, compiled.names

    def _disk_cache(self):
        get_options = getattr(self.req, "get_options", None)
        if get_options is None:
            return True
        return _flag(get_options().get(OPTION_PREFIX + "disk_cache"), True)

    def run(self, vars={}, flush=0):  # noqa: B006
        """Run the page, with `req`, `psp`, `form` and `session` (and
        `vars` given here and to the constructor) as globals."""
        code, req, names = self.code, self.req, self._names

        # A session, only for a page that names it (it sets a cookie and
        # locks); kept on req for the error page, then unlocked and dropped.
        session = None
        if "session" in names and not hasattr(req, "session"):
            req.session = session = _module("Session").Session(req)

        form = None
        if "form" in names:
            if hasattr(req, "form"):
                form = req.form
            else:
                form = _module("util").FieldStorage(req, keep_blank_values=1)
                req.form = form

        psp = PSPInterface(req, self.filename, form)
        try:
            scope = dict(globals())
            for lazy in ("util", "Session"):
                if lazy in names:
                    scope[lazy] = _module(lazy)
            scope.update({"req": req, "form": form, "psp": psp,
                          "session": getattr(req, "session", None)})
            scope.update(self.vars)
            scope.update(vars)
            scope["__file__"] = req.filename
            try:
                exec(code, scope)
                if flush:
                    req.flush()
                # Making a session changes it (its access time): always saved.
                if hasattr(req, "session"):
                    req.session.save()
            except (apache.SERVER_RETURN, MemoryError):
                raise
            except Exception:
                if psp.error_page is None:
                    raise
                psp.error_page.run({"exception": sys.exc_info()}, flush)
        finally:
            if session is not None:
                session.unlock()
                try:
                    del req.session
                except AttributeError:
                    pass

    def __str__(self):
        self.req.content_type = "text/html"
        self.run()
        return ""

    def _sources(self):
        """(page lines, generated Python lines) for display_code."""
        if self.filename:
            with open(self.filename, "rb") as f:
                source = f.read().decode("utf-8", "replace")
            pycode = _psp_parser.parse_file(self.filename, path_split(self.filename)[0]).code
        else:
            source = self.string or ""
            pycode = _psp_parser.parse_string(source, self._include_dir()).code
        return ([line.rstrip() for line in source.splitlines()],
                [line.rstrip() for line in pycode.splitlines()])

    def display_code(self):
        """Write an HTML table with the generated Python code next to the
        page, line by line."""
        req = self.req
        try:
            source, pycode = self._sources()
        except PSPSyntaxError as exc:
            req.write("<pre>%s</pre>\n" % escape(f"{exc.filename}:{exc.lineno}: {exc.msg}"))
            return
        req.write("<table>\n<tr>")
        for s in ("", "&nbsp;PSP-produced Python Code:",
                  "&nbsp;%s:" % escape(self.filename or "<string>")):
            req.write("<td><tt>%s</tt></td>" % s)
        req.write("</tr>\n")
        for n, line in enumerate(pycode, 1):
            left = escape(line).replace("\t", " " * 4).replace(" ", "&nbsp;")
            right = ""
            if n <= len(source):
                right = escape(source[n - 1]).replace("\t", " " * 4).replace(" ", "&nbsp;")
            req.write("<tr>")
            for s in ("%d.&nbsp;" % n,
                      "<font color=blue>%s</font>" % left,
                      "&nbsp;<font color=green>%s</font>" % right):
                req.write("<td><tt>%s</tt></td>" % s)
            req.write("</tr>\n")
        req.write("</table>\n")


class _Listing(PSP):
    """A PSP that is only displayed (the page may not compile)."""

    def load_from_file(self):
        if not os.path.isfile(self.filename):
            raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)


def _debug(req):
    value = req.get_config().get("PythonDebug")
    if isinstance(value, list):
        value = value[-1]
    try:
        return int(value or 0) != 0
    except ValueError:
        return _flag(value, False)


def handler(req):
    """`PythonHandler mod_python.psp`: run the requested page. With
    PythonDebug On, `page.psp_` shows the code generated for page.psp."""
    req.content_type = "text/html"
    if _debug(req) and req.filename and req.filename.endswith("_"):
        _Listing(req, req.filename[:-1]).display_code()
    else:
        PSP(req).run()
    return apache.OK
