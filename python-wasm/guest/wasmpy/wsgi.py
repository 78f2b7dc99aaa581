"""PEP 3333: one `wsgi-request` record in, one `wsgi-response` out.

Two ways out:
- the fast path: the application returns a list or tuple and never calls
  write(); everything is buffered and returned in the record (no host call);
- streaming: a generator or any other iterable, or write(): the status and
  headers go out with `start-response` at the first non-empty chunk, every
  chunk with `write(flush=True)` as soon as it is produced, and the record
  comes back with `streamed` set and an empty body. A `wsgi.file_wrapper`
  around a real, seekable file is sent by the host (`sendfile`) without its
  bytes entering Python.

The request body: `wsgi.input` serves what came with the record first, then
asks the host for more (`read`) only when the application reads past it.

Nothing here raises to the caller: `run` returns a `Response` or raises, and
the exports turn exceptions into records (see wasmpy_gateway.py).
"""

import io
import os
import sys

from . import _host

SERVER_SOFTWARE = "mod_wasmpy/0.2"
# How much wsgi.input asks the host for at a time.
READ_BLOCK = 64 * 1024
# The most one host read asks for (read(n) with a large n loops).
MAX_READ = 4 * 1024 * 1024
# How much a FileWrapper reads at a time when it cannot use sendfile.
FILE_BLOCK = 64 * 1024

_HOP_BY_HOP = frozenset(
    ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
     "te", "trailer", "trailers", "transfer-encoding", "upgrade"]
)


class Response:
    """What `run` decided; the exports turn it into a `wsgi-response` record."""

    __slots__ = ("status", "headers", "body", "streamed", "failure")

    def __init__(self, status, headers, body, streamed=False, failure=None):
        self.status = status
        self.headers = headers
        self.body = body
        self.streamed = streamed
        # None, "exception", "memory" or "import-failed".
        self.failure = failure


class ErrorStream:
    """`wsgi.errors`: text written here goes to the tenant's log."""

    def write(self, text):
        return sys.stderr.write(text)

    def writelines(self, lines):
        for line in lines:
            sys.stderr.write(line)

    def flush(self):
        sys.stderr.flush()


class Input:
    """`wsgi.input`: the start of the body given with the request, then the
    rest read from the host on demand, never more than asked for plus one block.

    A `too-large` refusal of the host (the body crossed max_body) is raised as
    `RequestTooLarge` from the read that crossed it.
    """

    def __init__(self, rid, start, complete):
        self._rid = rid
        self._buf = bytearray(start)
        self._eof = bool(complete)

    def _fill(self, want):
        """Ask the host for at least one more block; False at the end of the body."""
        if self._eof:
            return False
        data = _host.read(self._rid, min(max(want, READ_BLOCK), MAX_READ))
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _take(self, n):
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def read(self, size=-1):
        if size is None or size < 0:
            while self._fill(READ_BLOCK):
                pass
            return self._take(len(self._buf))
        while len(self._buf) < size and self._fill(size - len(self._buf)):
            pass
        return self._take(size)

    def read1(self, size=-1):
        if not self._buf:
            self._fill(READ_BLOCK if size is None or size < 0 else size)
        if size is None or size < 0:
            size = len(self._buf)
        return self._take(size)

    def readline(self, size=-1):
        limit = None if size is None or size < 0 else size
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                n = end + 1
                break
            if limit is not None and len(self._buf) >= limit:
                n = limit
                break
            start = len(self._buf)
            if not self._fill(READ_BLOCK):
                n = len(self._buf)
                break
        if limit is not None:
            n = min(n, limit)
        return self._take(n)

    def readlines(self, hint=-1):
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def readable(self):
        return True

    def close(self):
        pass


class FileWrapper:
    """`wsgi.file_wrapper`: iterates a file in blocks; a real seekable file
    with an absolute name is handed to the host's sendfile instead."""

    def __init__(self, filelike, blksize=FILE_BLOCK):
        self.filelike = filelike
        self.blksize = blksize if blksize and blksize > 0 else FILE_BLOCK

    def __iter__(self):
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block

    def close(self):
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def sendable_path(self):
        """(path, offset) when the host can send the file itself, else None."""
        f = self.filelike
        if not isinstance(f, (io.BufferedReader, io.FileIO)):
            return None
        name = getattr(f, "name", None)
        if not isinstance(name, str) or not name.startswith("/"):
            return None
        try:
            if f.closed or not f.seekable():
                return None
            return name, f.tell()
        except (OSError, ValueError):
            return None


def environ_for(req):
    """The PEP 3333 environ of a `wsgi-request` record."""
    environ = {
        "REQUEST_METHOD": req.method,
        "SCRIPT_NAME": req.script_name,
        "PATH_INFO": req.path_info.decode("latin-1"),
        "QUERY_STRING": req.query_string,
        "REQUEST_URI": req.request_uri,
        "SERVER_NAME": req.server_name,
        "SERVER_PORT": str(req.server_port),
        "SERVER_PROTOCOL": req.server_protocol,
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "REMOTE_ADDR": req.remote_addr,
        "REMOTE_PORT": str(req.remote_port),
        "GATEWAY_INTERFACE": "CGI/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": req.url_scheme,
        "wsgi.input": Input(req.id, req.body, req.body_complete),
        "wsgi.errors": ErrorStream(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }
    if req.url_scheme == "https":
        environ["HTTPS"] = "on"
    for name, value in req.headers:
        # Names with '_' are dropped, as mod_wsgi does: they would be
        # indistinguishable from '-' once in the environ (header spoofing).
        if "_" in name:
            continue
        key = name.upper().replace("-", "_")
        text = value.decode("latin-1")
        if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
            environ[key] = text
            continue
        key = "HTTP_" + key
        if key in environ:
            sep = "; " if key == "HTTP_COOKIE" else ", "
            environ[key] = environ[key] + sep + text
        else:
            environ[key] = text
    if "CONTENT_LENGTH" not in environ and req.body and req.body_complete:
        environ["CONTENT_LENGTH"] = str(len(req.body))
    return environ


def check_header(name, value):
    """A (name, value) pair of str as the record wants it: (str, latin-1 bytes)."""
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError(f"header {name!r}: {value!r} must be a pair of str")
    if not name or any(c in name for c in "\r\n:\0 \t"):
        raise ValueError(f"invalid header name {name!r}")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"header {name!r} has a control character in its value")
    if name.lower() in _HOP_BY_HOP:
        raise ValueError(f"hop-by-hop header {name!r} is not allowed in WSGI")
    return value.encode("latin-1")


def parse_status(status):
    if not isinstance(status, str):
        raise TypeError(f"status must be str, not {type(status).__name__}")
    code, _, _reason = status.partition(" ")
    if len(code) != 3 or not code.isdigit() or any(c in status for c in "\r\n\0"):
        raise ValueError(f"invalid status line {status!r}")
    value = int(code)
    # 1xx are interim responses: the final one would follow from the body.
    if not 200 <= value <= 599:
        raise ValueError(f"invalid status code {value}")
    return value


def _as_bytes(data):
    if type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"WSGI body chunks must be bytes, not {type(data).__name__}")


class Call:
    """One WSGI call: start_response, write() and the response iterable."""

    def __init__(self, rid):
        self.rid = rid
        self.status = None
        self.headers = None
        # Set once the status and headers went to the host (start-response).
        self.started = False
        # Set once a body byte was produced (for start_response(exc_info)).
        self.sent = False
        self.wrote = False

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        code = parse_status(status)
        checked = [(name, check_header(name, value)) for name, value in headers]
        self.status = code
        self.headers = checked
        return self.write

    def header(self, wanted):
        for name, value in self.headers or ():
            if name.lower() == wanted:
                return value.decode("latin-1")
        return None

    def start(self):
        if self.status is None:
            raise AssertionError("response body before start_response()")
        if not self.started:
            self.started = True
            _host.start_response(self.rid, self.status, self.headers)

    def send(self, data):
        """Stream one chunk to the client now."""
        if data:
            self.start()
            self.sent = True
            _host.write(self.rid, data, True)

    def write(self, data):
        """The write() callable of PEP 3333: always streams."""
        if self.status is None:
            raise AssertionError("write() before start_response()")
        self.wrote = True
        self.send(_as_bytes(data))


def _sendfile(call, wrapper):
    target = wrapper.sendable_path()
    if target is None:
        return False
    path, offset = target
    length = None
    declared = call.header("content-length")
    if declared is not None and declared.strip().isdigit():
        length = int(declared.strip())
    call.start()
    call.sent = True
    _host.sendfile(call.rid, path, offset, length)
    return True


class StreamFailure(Exception):
    """The application failed after the response began (the host aborts it)."""

    def __init__(self, status, failure):
        super().__init__(failure)
        self.status = status
        self.failure = failure


def run(app, req):
    """Call `app` for one `wsgi-request`; return a `Response`.

    Exceptions before anything was streamed propagate (the caller answers
    500); after, they are logged and turned into a streamed failure.
    """
    call = Call(req.id)
    result = app(environ_for(req), call.start_response)
    close_failed = False
    try:
        kind = type(result)
        if (kind is list or kind is tuple) and not call.wrote:
            body = b"".join([_as_bytes(chunk) for chunk in result])
            if call.status is None:
                raise AssertionError("the application returned without calling start_response()")
            return Response(call.status, call.headers, body)
        if isinstance(result, FileWrapper) and not call.wrote and call.status is not None:
            if _sendfile(call, result):
                return Response(call.status, [], b"", streamed=True)
        for chunk in result:
            call.send(_as_bytes(chunk))
    except MemoryError:
        if call.started:
            raise StreamFailure(call.status, "memory") from None
        raise
    except BaseException:
        if call.started:
            _host.log_exception("mod_wasmpy: exception in the application after the response began")
            raise StreamFailure(call.status, "exception") from None
        raise
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except BaseException:  # noqa: BLE001
                if not call.started:
                    raise
                _host.log_exception("mod_wasmpy: exception in close() of the response")
                close_failed = True
    if close_failed:
        # The response is on the wire: the host cuts it short.
        raise StreamFailure(call.status, "exception")
    if call.status is None:
        raise AssertionError("the application returned without calling start_response()")
    if not call.started:
        # Nothing but empty chunks: an ordinary buffered (empty) response.
        return Response(call.status, call.headers, b"")
    return Response(call.status, [], b"", streamed=True)



def error_response(status, failure):
    reason = {500: "Internal Server Error"}.get(status, "Error")
    body = f"{status} {reason}\n".encode()
    return Response(
        status,
        [("Content-Type", b"text/plain; charset=utf-8"),
         ("Content-Length", str(len(body)).encode())],
        body,
        failure=failure,
    )


def environment(env):
    """Replace os.environ with exactly what the policy grants."""
    os.environ.clear()
    for key, value in env:
        os.environ[key] = value
