"""mod_python.wsgi for mod_wasmpy: `PythonHandler mod_python.wsgi`.

Written for mod_wasmpy from mod_python 3.5's documentation and observed
behaviour. Configuration, as in mod_python:

    PythonHandler mod_python.wsgi
    PythonOption mod_python.wsgi.application mysite.wsgi[::callable]
    PythonOption mod_python.wsgi.base_uri /wsgiapps

The module is imported with `apache.import_module` (from sys.path: the
handler's directory, PythonPath), reloaded when its file changes unless
`PythonAutoReload Off`; the callable defaults to `application`.

`base_uri` is the SCRIPT_NAME part of the URI; PATH_INFO is the rest. It must
not end with `/`; without it SCRIPT_NAME is empty and PATH_INFO the whole
`req.uri`. A request outside `base_uri` is declined.

The environ (`req.build_wsgi_env()`) is `req.subprocess_env` after
`req.add_cgi_vars()`, plus `HTTP_AUTHORIZATION` and the `wsgi.*` keys;
`req.wsgi_start_response` sets `req.status`, `req.content_type` and
`req.headers_out`. The body is written as the application produces it: a
list or tuple is handed to Apache in one go at the end, any other iterable
and every `write()` are sent to the client chunk by chunk.
"""

import os
import sys

from wasmpy.wsgi import FileWrapper, check_header, parse_status

from . import apache

APPLICATION = "mod_python.wsgi.application"
BASE_URI = "mod_python.wsgi.base_uri"


# ---- the environment --------------------------------------------------------

# Variables of add_cgi_vars() that hold host paths, which mean nothing in the sandbox.
_PATH_VARS = ("SCRIPT_FILENAME", "DOCUMENT_ROOT", "CONTEXT_DOCUMENT_ROOT", "PATH_TRANSLATED")


def _one(value):
    return value[-1] if isinstance(value, list) else value


def subprocess_environ(req):
    """`req.subprocess_env` after `req.add_cgi_vars()`, as a dict, with
    `HTTP_AUTHORIZATION` (mod_python adds it) and paths as the sandbox sees them."""
    req.add_cgi_vars()
    env = {}
    for key, value in req.subprocess_env.items():
        env[key] = value
    auth = _one(req.headers_in.get("Authorization"))
    if auth:
        env["HTTP_AUTHORIZATION"] = auth
    _guest_paths(req, env)
    return env


def _guest_paths(req, env):
    """Apache's SCRIPT_FILENAME, DOCUMENT_ROOT, ... are host paths: give the
    guest's (`/app/...`) where the tenant can see them, else drop them."""
    host_root = env.get("DOCUMENT_ROOT")
    guest_root = req.document_root()
    guest_file = req.filename
    pairs = []
    if host_root and guest_root:
        pairs.append((host_root.rstrip("/"), guest_root.rstrip("/")))
    host_file = env.get("SCRIPT_FILENAME")
    if host_file and guest_file:
        pairs.append((host_file, guest_file))

    def to_guest(value):
        for host, guest in pairs:
            if value == host or (host and value.startswith(host + "/")):
                return guest + value[len(host):]
        return None

    for key in _PATH_VARS:
        if key not in env:
            continue
        if key == "SCRIPT_FILENAME":
            value = guest_file
        elif key == "DOCUMENT_ROOT":
            value = guest_root
        else:
            value = to_guest(env[key])
        if value:
            env[key] = value
        else:
            del env[key]


def build_env(req):
    """`req.build_wsgi_env()`: the PEP 3333 environ, or None when req.uri is
    not under `mod_python.wsgi.base_uri` (the handler declines then)."""
    base_uri = req.get_options().get(BASE_URI)
    uri = req.uri or ""
    path_info = uri
    if base_uri:
        if base_uri.endswith("/"):
            raise ValueError(f"PythonOption '{BASE_URI}' ('{base_uri}') must not end with '/'")
        if uri != base_uri and not uri.startswith(base_uri + "/"):
            return None
        path_info = uri[len(base_uri):]
    # Apache's SCRIPT_NAME (add_cgi_vars) follows r->path_info, as in mod_python.
    if req.path_info != path_info:
        req.path_info = path_info

    env = subprocess_environ(req)
    env["SCRIPT_NAME"] = uri[:len(uri) - len(path_info)]
    env["PATH_INFO"] = path_info

    https = env.get("HTTPS")
    if https is None:
        https_on = bool(req.is_https())
    else:
        https_on = https.lower() != "off"
    env.update({
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if https_on else "http",
        "wsgi.input": req._wp_input(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    })
    return env


# ---- the response -----------------------------------------------------------

class _Response:
    """What start_response and write() know of one request's response."""

    def __init__(self, req):
        self.req = req
        self.status = None
        # Names added to headers_out (removed again by start_response(exc_info)).
        self.added = []
        # Set once a body byte went to Apache: the headers are out.
        self.sent = False

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called twice without exc_info")

        code = parse_status(status)
        if not isinstance(headers, (list, tuple)):
            raise TypeError(f"headers argument must be a list, not a '{type(headers).__name__}'")
        checked = []
        for item in headers:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(f"each header must be a (name, value) tuple, not {item!r}")
            name, value = (v.decode("latin-1") if isinstance(v, bytes) else v for v in item)
            check_header(name, value)
            checked.append((name, value))

        req = self.req
        for name in self.added:
            try:
                del req.headers_out[name]
            except KeyError:
                pass
        self.added = []
        req.status = code
        req.status_line = status
        for name, value in checked:
            if name.lower() == "content-type":
                # Apache sends r->content_type, not a Content-Type of headers_out.
                req.content_type = value
            else:
                req.headers_out.add(name, value)
                self.added.append(name)
        self.status = code
        return self.write

    def send(self, data, flush=True):
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif not isinstance(data, (bytes, str)):
            raise TypeError(f"WSGI body chunks must be bytes, not {type(data).__name__}")
        if not data:
            return
        if self.status is None:
            raise AssertionError("response body before start_response()")
        self.sent = True
        self.req.write(data, flush)

    def write(self, data):
        """PEP 3333's write(): sent to the client at once."""
        self.send(data, True)


def _response(req, fresh=False):
    state = req.__dict__.get("_wp_wsgi")
    if state is None or fresh:
        state = _Response(req)
        req.__dict__["_wp_wsgi"] = state
    return state


def start_response(req, status, headers, exc_info=None):
    """`req.wsgi_start_response(status, headers, exc_info=None)`."""
    return _response(req).start_response(status, headers, exc_info)


def _sendfile(req, state, wrapper):
    """Let Apache send a file_wrapper's file; False when it cannot."""
    target = wrapper.sendable_path()
    if target is None:
        return False
    path, offset = target
    length = None
    declared = _one(req.headers_out.get("Content-Length"))
    if declared is not None and declared.strip().isdigit():
        length = int(declared.strip())
    else:
        try:
            length = max(0, os.fstat(wrapper.filelike.fileno()).st_size - offset)
        except (OSError, ValueError, AttributeError):
            return False
    state.sent = True
    req.sendfile(path, offset, length)
    return True


# ---- the handler ------------------------------------------------------------

def _flag(config, name, default):
    value = config.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "off", "false", "")


def handler(req):
    options = req.get_options()
    app_str = options.get(APPLICATION)
    app = None
    if app_str:
        mod_str, sep, callable_str = app_str.partition("::")
        if not sep:
            callable_str = "application"
        config = req.get_config()
        module = apache.import_module(mod_str.strip(),
                                      autoreload=_flag(config, "PythonAutoReload", True),
                                      log=_flag(config, "PythonDebug", False))
        app = module.__dict__.get(callable_str.strip())
    if not app:
        req.log_error(f"WSGI handler: {APPLICATION} ({app_str!r}) not found, declining.",
                      apache.APLOG_WARNING)
        return apache.DECLINED

    env = req.build_wsgi_env()
    if env is None:
        req.log_error(f"WSGI handler: req.uri ({req.uri!r}) does not start with {BASE_URI} "
                      f"({options.get(BASE_URI)!r}), declining.", apache.APLOG_WARNING)
        return apache.DECLINED

    state = _response(req, fresh=True)
    response = app(env, req.wsgi_start_response)
    try:
        if not (isinstance(response, FileWrapper) and state.status is not None
                and not state.sent and _sendfile(req, state, response)):
            # A list is complete: Apache gets it unflushed (and can set
            # Content-Length); anything else streams chunk by chunk.
            flush = type(response) not in (list, tuple)
            for chunk in response:
                state.send(chunk, flush)
    finally:
        close = getattr(response, "close", None)
        if close is not None:
            close()
    if state.status is None:
        raise AssertionError("the WSGI application returned without calling start_response()")
    return apache.OK
