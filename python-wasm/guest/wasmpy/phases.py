"""The mod_python handler dispatcher behind `run-phase` and `end-request`.

The rules are mod_python 3.5's:
- a handler is `module[::object]`; without an object, the phase's default
  name (PythonAuthenHandler -> `authenhandler`, PythonHandler -> `handler`);
  a dotted object is walked attribute by attribute, and a class met on the
  way is instantiated with `req`;
- the handlers of a phase run in order while each returns one of the values
  that let the phase continue (`CONTINUE` below); any other value ends it;
- handlers declared with `| .ext` run only for files of that extension (and
  then instead of the ones without); PythonHandlerModule handlers (silent)
  are skipped when the module has no such object;
- `apache.SERVER_RETURN` raised with `code` or `(code, status)` acts as a
  return of `code` (and sets req.status);
- PythonPath is evaluated once per distinct string and replaces sys.path;
  otherwise the directory a handler was declared in is put first on sys.path;
- an exception is logged; with PythonDebug the traceback also goes to the
  client (status 500, then DONE).
"""

import html
import sys
import traceback

from mod_python import apache

from . import _host
from .request import HandlerList, Request

PHASES = (
    "PythonPostReadRequestHandler",
    "PythonTransHandler",
    "PythonHeaderParserHandler",
    "PythonInitHandler",
    "PythonAccessHandler",
    "PythonAuthenHandler",
    "PythonAuthzHandler",
    "PythonTypeHandler",
    "PythonFixupHandler",
    "PythonHandler",
    "PythonLogHandler",
    "PythonCleanupHandler",
)

# Directive -> default object name ("Python" dropped, lower case).
DEFAULT_OBJECT = {phase: phase[len("Python"):].lower() for phase in PHASES}

OK, DECLINED, DONE = 0, -1, -2

# Return values that let the next handler of the same phase run.
CONTINUE = {
    "postreadrequesthandler": (DECLINED, OK),
    "transhandler": (DECLINED,),
    "headerparserhandler": (DECLINED, OK),
    "inithandler": (DECLINED, OK),
    "accesshandler": (DECLINED, OK),
    "authenhandler": (DECLINED,),
    "authzhandler": (DECLINED,),
    "typehandler": (DECLINED,),
    "fixuphandler": (DECLINED, OK),
    "handler": (OK,),
    "loghandler": (DECLINED, OK),
    "cleanuphandler": (OK,),
}

# The live requests: id -> Request.
_requests = {}
# The request whose phase is running (apache.log_error, apache.main_server).
_current = None
# PythonImport modules already imported in this instance.
_imported = set()
# PythonPath strings already evaluated.
_path_cache = set()


def current_request():
    return _current


class PhaseError(Exception):
    """Carries the failure kind of an exception of a phase."""


def _request_for(rid):
    req = _requests.get(rid)
    if req is None:
        # An instance serves one request at a time: any other is over. The
        # host calls `end-request` only for requests with cleanups.
        for old in list(_requests):
            end_request(old)
        req = Request(rid)
        _requests[rid] = req
    return req


def _flag(config, name, default):
    value = config.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "off", "false", "")


def _apply_python_path(config, directory):
    pathstring = config.get("PythonPath")
    if pathstring is not None:
        if pathstring not in _path_cache:
            newpath = eval(pathstring, {"sys": sys, "__builtins__": __builtins__})
            if not isinstance(newpath, (list, tuple)) or not all(isinstance(p, str) for p in newpath):
                raise TypeError(f"PythonPath {pathstring!r} did not give a list of str")
            sys.path[:] = list(newpath)
            _path_cache.add(pathstring)
    elif directory and directory not in sys.path:
        sys.path.insert(0, directory)


def _extension_of(filename):
    base = (filename or "").rsplit("/", 1)[-1]
    return "." + base.split(".", 1)[1] if "." in base else ""


def _select(req, handlers):
    """The handlers of this request: those of the file's extension if any
    was declared for it, else those declared without extensions."""
    if not any(h.extensions for h in handlers):
        return [(h.spec, h.directory, h.silent) for h in handlers]
    ext = _extension_of(req._wp_field("filename"))
    chosen = [h for h in handlers if h.extensions and ext and ext in h.extensions]
    if not chosen:
        chosen = [h for h in handlers if not h.extensions]
    return [(h.spec, h.directory, h.silent) for h in chosen]


def _resolve(module, obj_str, req, silent):
    """The handler object, or None when silent and missing."""
    if "." not in obj_str:
        obj = module.__dict__.get(obj_str, _MISSING)
        if obj is _MISSING:
            if silent:
                return None
            raise AttributeError(f"module '{getattr(module, '__file__', module.__name__)}' "
                                 f"contains no '{obj_str}'")
        return obj
    obj = module
    for part in obj_str.split("."):
        parent = obj
        if not hasattr(obj, part):
            if silent:
                return None
            if obj is module:
                raise AttributeError(f"module '{getattr(module, '__file__', module.__name__)}' "
                                     f"contains no '{part}'")
        obj = getattr(obj, part)
        if isinstance(parent, type):
            # A class on the way: instantiated with req, the member taken from it.
            obj = getattr(parent(req), part)
    return obj


_MISSING = object()


class _ImportFailed(Exception):
    pass


def _import(name, autoreload, debug):
    try:
        return apache.import_module(name, autoreload=autoreload, log=debug)
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, (MemoryError, KeyboardInterrupt, SystemExit)):
            raise
        raise _ImportFailed(name) from exc


def _report(req, phase, hname, debug, exc):
    """Log the traceback; with PythonDebug also send it to the client."""
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    _host.stderr("".join(f"{phase} {hname}: {line}" for line in "".join(lines).splitlines(True)))
    if not debug:
        return apache.HTTP_INTERNAL_SERVER_ERROR
    try:
        req.status = apache.HTTP_INTERNAL_SERVER_ERROR
        req.content_type = "text/html"
        page = "\n<pre>\nMod_python error: \"%s %s\"\n\n%s</pre>\n" % (
            html.escape(phase), html.escape(hname or ""),
            "".join(html.escape(line) + "\n" for line in lines))
        req.write(page)
        return DONE
    except BaseException:  # noqa: BLE001 - the client may be gone: 500 then
        _host.log_exception("mod_wasmpy: could not send the PythonDebug page")
        return apache.HTTP_INTERNAL_SERVER_ERROR


def _dispatch(req, call):
    """Run the handlers of one phase; returns (status, failure or None)."""
    config = dict(call.config)
    debug = config.get("PythonDebug") == "1"
    phase = call.phase
    default_obj = DEFAULT_OBJECT.get(phase)
    if default_obj is None:
        _host.stderr(f"mod_wasmpy: unknown phase {phase!r}")
        return apache.HTTP_INTERNAL_SERVER_ERROR, "exception"
    expected = CONTINUE[default_obj]
    autoreload = _flag(config, "PythonAutoReload", True)

    hname = None
    try:
        for name in call.imports:
            if name not in _imported:
                module_name, _, func = name.partition("::")
                module = _import(module_name, False, debug)
                _imported.add(name)
                if func:
                    getattr(module, func)()

        entries = _select(req, call.handlers) + req._wp_dynamic.pop(phase, [])
        if not entries:
            return DECLINED, None
        req._wp_announced.discard(phase)
        hlist = HandlerList(entries)
        req.__dict__["_wp_hlist"] = hlist
        result = apache.HTTP_INTERNAL_SERVER_ERROR
        while hlist.handler is not None:
            hname = hlist.handler
            module_name, sep, obj_str = hname.partition("::")
            if not sep:
                obj_str = default_obj
            req.__dict__["_wp_hdir"] = hlist.directory or ""
            _apply_python_path(config, hlist.directory)
            module = _import(module_name, autoreload, debug)
            obj = _resolve(module, obj_str, req, hlist.silent)
            if obj is not None:
                try:
                    result = obj(req)
                except apache.SERVER_RETURN as value:
                    args = value.args
                    if len(args) == 2:
                        result, status = args
                        if status:
                            req.status = status
                    else:
                        result = args[0] if args else None
                if type(result) is not int:
                    raise TypeError(
                        "Handler has returned result or raised SERVER_RETURN exception with "
                        f"argument having non integer type. Type of value returned was "
                        f"{type(result)}, whereas expected {int}.")
                if result not in expected:
                    break
            elif result == apache.HTTP_INTERNAL_SERVER_ERROR:
                # A missing silent handler declines, unless another one ran.
                result = DECLINED
            hlist.next()
        return result, None
    except MemoryError as exc:
        return _report(req, phase, hname, False, exc), "memory"
    except _ImportFailed as exc:
        cause = exc.__cause__ or exc
        return _report(req, phase, hname, debug, cause), "import-failed"
    except BaseException as exc:  # noqa: BLE001
        return _report(req, phase, hname, debug, exc), "exception"


def run_phase(rid, call):
    """The `run-phase` export: (status, failure name or None)."""
    global _current
    req = _request_for(rid)
    d = req.__dict__
    d["_wp_phase"] = call.phase
    d["_wp_interpreter"] = call.interpreter
    d["_wp_options"] = tuple(call.options)
    d["_wp_config"] = tuple(call.config)
    d["_wp_fields"] = None
    previous = _current
    _current = req
    try:
        return _dispatch(req, call)
    finally:
        _current = previous


def end_request(rid):
    """The `end-request` export: run the cleanups, drop the request."""
    global _current
    req = _requests.pop(rid, None)
    if req is None:
        return
    previous = _current
    _current = req
    try:
        cleanups = req._wp_cleanups
        while cleanups:
            callback, data = cleanups.pop(0)
            try:
                callback(data)
            except BaseException:  # noqa: BLE001 - a cleanup never stops the others
                _host.log_exception("mod_python: exception in a cleanup")
    finally:
        _current = previous
        req.__dict__["_wp_ended"] = True
        req.__dict__["_wp_fields"] = None


def add_handler(req, htype, handler, dir=None):
    """req.add_handler(): the running phase's list, or a later phase (announced to the host)."""
    if htype not in DEFAULT_OBJECT:
        raise ValueError(f"{htype!r} is not a request handler directive")
    if not isinstance(handler, str) or not handler:
        raise TypeError("the handler must be a non-empty str")
    if dir is not None and not isinstance(dir, str):
        raise TypeError("dir must be str")
    rid = req._wp_id_checked()
    if dir is None:
        pending = req._wp_dynamic.get(htype)
        dir = pending[0][1] if pending else req._wp_hdir
    if htype == req._wp_phase and req._wp_ended is False and _current is req:
        req._wp_hlist.append(handler, dir)
        return
    req._wp_dynamic.setdefault(htype, []).append((handler, dir, False))
    if htype not in req._wp_announced:
        _host.call(rid, "add_handler", [htype])
        req._wp_announced.add(htype)
