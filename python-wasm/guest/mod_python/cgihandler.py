"""mod_python.cgihandler for mod_wasmpy: `PythonHandler mod_python.cgihandler`.

Written for mod_wasmpy from mod_python 3.5's documentation and observed
behaviour. Runs the Python CGI script `req.filename` inside the sandbox, as
`__main__`, once per request, in an emulated CGI environment (no process is
started):

- `os.environ` gets the CGI variables (`req.add_cgi_vars()`, SCRIPT_NAME,
  `GATEWAY_INTERFACE=Python-CGI/1.1`, HTTP_AUTHORIZATION), `sys.stdin` reads
  the request body, `sys.stdout` is parsed as CGI output, `sys.argv` is
  `[script]` and the working directory the script's; all are restored after;
- the output's header lines (up to the first empty line) set `req.status`
  (`Status:`), `req.content_type` (`Content-Type:`) and `req.headers_out`
  (the others); a `Location:` without `Status:` redirects as Apache's
  mod_cgi does (a local path internally, a URL with 302); the rest is the
  body, sent as the script's stdout is flushed;
- modules the script imported from the tenant's code (`/app`, not
  `/app/vendor`) are forgotten after each request, so that an edited module
  is used by the next one, as mod_python's cgihandler does.
"""

import io
import os
import re
import sys
import types

from . import apache
from .wsgi import subprocess_environ

# The modules already there when this module was imported are never forgotten.
_original = set(sys.modules)

APP_DIR = "/app"
VENDOR_DIR = "/app/vendor"
# The size of the script's stdout buffer: the body goes to Apache in blocks this big.
OUTPUT_BUFFER = 64 * 1024
# The most header bytes a script may print before its empty line.
MAX_HEADER_BYTES = 64 * 1024

_HEADER_END = re.compile(rb"\r?\n\r?\n")

# path -> ((mtime_ns, size), code)
_compiled = {}


def _forget_tenant_modules():
    """Drop the tenant's modules imported since this module was (mod_python
    drops all but the standard library's; here the runtime's own and the
    vendored packages stay too)."""
    for name in list(sys.modules):
        if name in _original:
            continue
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        if (path.startswith(APP_DIR + "/") and not path.startswith(VENDOR_DIR + "/")):
            del sys.modules[name]


class _Input(io.RawIOBase):
    """The request body as a raw stream (under sys.stdin's buffer)."""

    def __init__(self, req):
        self._req = req

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self._req.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


class _Output(io.RawIOBase):
    """The script's stdout: CGI headers, then the body."""

    def __init__(self, req):
        self._req = req
        self._head = b""
        self.headers_done = False
        self.status_set = False
        # (name, value) of a Location header.
        self.location = None
        # Set for a local redirect: the body is not sent.
        self.discard = False
        # Set once the script's run is over: late flushes are dropped.
        self.dead = False

    def writable(self):
        return True

    def write(self, data):
        data = bytes(data)
        n = len(data)
        if self.dead:
            return n
        if not self.headers_done:
            self._head += data
            match = _HEADER_END.search(self._head)
            if match is None:
                if len(self._head) > MAX_HEADER_BYTES:
                    raise ValueError("CGI script: no end of the headers in its first "
                                     f"{MAX_HEADER_BYTES} bytes of output")
                return n
            head, data = self._head[:match.start()], self._head[match.end():]
            self._head = b""
            self._headers(head)
            self.headers_done = True
        if data and not self.discard:
            self._req.write(data, 1)
        return n

    def _headers(self, head):
        req = self._req
        for line in head.decode("latin-1").replace("\r\n", "\n").split("\n"):
            name, sep, value = line.partition(":")
            name = name.strip()
            if not sep or not name:
                raise ValueError(f"CGI script: malformed header line {line!r}")
            value = value.strip()
            low = name.lower()
            if low == "status":
                code = value.split(None, 1)[0] if value else ""
                if not code.isdigit():
                    raise ValueError(f"CGI script: invalid Status header {value!r}")
                req.status = int(code)
                self.status_set = True
            elif low == "content-type":
                req.content_type = value
            elif low == "location":
                self.location = (name, value)
            else:
                req.headers_out.add(name, value)
        if self.location is not None:
            name, value = self.location
            if self.status_set:
                req.headers_out.add(name, value)
            elif value.startswith("/"):
                # mod_cgi: a local redirect, made once the script is over; its body is dropped.
                self.discard = True
            else:
                req.headers_out.add(name, value)
                req.status = apache.HTTP_MOVED_TEMPORARILY


def _code(path):
    st = os.stat(path)
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _compiled.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    with open(path, "rb") as f:
        source = f.read()
    code = compile(source, path, "exec", dont_inherit=True)
    _compiled[path] = (stamp, code)
    return code


def cgi_environ(req):
    """The CGI environment of this request, as mod_python's build_cgi_env."""
    env = subprocess_environ(req)
    uri = req.uri or ""
    path_info = req.path_info
    env["SCRIPT_NAME"] = uri[:-len(path_info)] if path_info and uri.endswith(path_info) else uri
    env["GATEWAY_INTERFACE"] = "Python-CGI/1.1"
    return env


def handler(req):
    _forget_tenant_modules()

    filename = req.filename
    if not filename or not os.path.isfile(filename):
        raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
    code = _code(filename)
    env = cgi_environ(req)

    saved_environ = dict(os.environ)
    saved = (sys.stdin, sys.stdout, sys.argv, sys.modules.get("__main__"))
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = None
    output = _Output(req)
    stdout = io.TextIOWrapper(io.BufferedWriter(output, OUTPUT_BUFFER), encoding="utf-8",
                              errors="strict", newline="\n")
    stdin = io.TextIOWrapper(io.BufferedReader(_Input(req)), encoding="utf-8",
                             errors="surrogateescape")
    script_dir = os.path.dirname(filename)
    added_path = False
    main = types.ModuleType("__main__")
    main.__file__ = filename
    main.__builtins__ = __builtins__
    main.__cached__ = None
    try:
        os.environ.update(env)
        try:
            os.chdir(script_dir)
        except OSError:
            pass
        sys.stdin, sys.stdout, sys.argv = stdin, stdout, [filename]
        sys.modules["__main__"] = main
        if script_dir not in sys.path:
            sys.path.insert(0, script_dir)
            added_path = True
        try:
            exec(code, main.__dict__)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                req.log_error(f"CGI script {filename} exited with {exc.code!r}",
                              apache.APLOG_NOTICE)
        stdout.flush()
    finally:
        output.dead = True
        for stream in (stdout, stdin):
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - nothing more goes out
                pass
        if added_path:
            try:
                sys.path.remove(script_dir)
            except ValueError:
                pass
        sys.stdin, sys.stdout, sys.argv = saved[0], saved[1], saved[2]
        if saved[3] is None:
            sys.modules.pop("__main__", None)
        else:
            sys.modules["__main__"] = saved[3]
        os.environ.clear()
        os.environ.update(saved_environ)
        if cwd is not None:
            try:
                os.chdir(cwd)
            except OSError:
                pass

    if not output.headers_done:
        raise ValueError(f"CGI script {filename}: end of output before the end of its headers "
                         "(an empty line must follow them)")
    if output.discard:
        req.internal_redirect(output.location[1])
    return apache.OK
