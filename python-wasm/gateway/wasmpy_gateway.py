"""The mod_wasmpy gateway: turns one `request` record into a PEP 3333 WSGI call.

This module's top level runs once, at build time, inside componentize-py;
the resulting interpreter state is snapshotted into the runtime component.
Everything imported here is therefore free at run time. The tenant's code is
imported later, at run time, from the read-only preopen `/app`.

Invariants:
- no exception ever escapes `load` or `handle` (an escaping exception traps
  the instance); failures become a 500 and a traceback on stderr, which the
  host writes to the tenant's log;
- the response is validated here (status line, header names and values
  without CR/LF) and validated again by the host.
"""

import gc
import io
import os
import sys
import traceback

# Commonly needed modules are imported at build time so that they are part of
# the snapshot; the rest of the standard library is read from /python.
import base64  # noqa: F401
import codecs  # noqa: F401
import collections  # noqa: F401
import datetime  # noqa: F401
import encodings.idna  # noqa: F401
import encodings.latin_1  # noqa: F401
import encodings.utf_8  # noqa: F401
import functools  # noqa: F401
import hashlib  # noqa: F401
import json  # noqa: F401
import random
import re  # noqa: F401
import urllib.parse  # noqa: F401

import wit_world
from componentize_py_types import Err

SERVER_SOFTWARE = "mod_wasmpy/0.1"
# Where the host mounts the read-only standard library and the tenant's code.
STDLIB_DIR = "/python"
APP_DIR = "/app"
# The host mounts a per-tenant writable bytecode cache here when it has one.
PYCACHE_DIR = "/.wasmpy/pycache"

_HOP_BY_HOP = frozenset(
    ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
     "te", "trailer", "trailers", "transfer-encoding", "upgrade"]
)


class _ErrorStream:
    """`wsgi.errors`: text written here goes to the tenant's log."""

    def write(self, text):
        return sys.stderr.write(text)

    def writelines(self, lines):
        for line in lines:
            sys.stderr.write(line)

    def flush(self):
        sys.stderr.flush()


class _Input(io.BytesIO):
    """`wsgi.input`: the request body, with readline(size) as PEP 3333 allows."""


class _State:
    """The loaded application; kept across requests (the instance is persistent)."""

    app = None
    entry = None


def _set_environment(env):
    """Replace os.environ with exactly what the policy grants.

    The snapshot carries the build machine's (empty) environment, so it must
    be replaced at run time; nothing of the host's environment is visible.
    """
    os.environ.clear()
    for key, value in env:
        os.environ[key] = value


def _set_output_streams():
    """Line-buffered stdout/stderr over buffered writers: a large write is
    passed to the host in pieces instead of being cut at the first one."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        raw = io.FileIO(fd, "w", closefd=False)
        stream = io.TextIOWrapper(
            io.BufferedWriter(raw), encoding="utf-8", errors="backslashreplace", line_buffering=True
        )
        setattr(sys, name, stream)


def _set_import_path():
    """sys.path: the app, its optional vendor dir, then the standard library."""
    paths = [APP_DIR]
    vendor = APP_DIR + "/vendor"
    if os.path.isdir(vendor):
        paths.append(vendor)
    paths.append(STDLIB_DIR)
    sys.path[:] = paths
    sys.path_importer_cache.clear()
    if os.path.isdir(PYCACHE_DIR):
        sys.pycache_prefix = PYCACHE_DIR
        sys.dont_write_bytecode = False
    else:
        sys.dont_write_bytecode = True


def _import_entry(entry):
    module_name, _, callable_name = entry.partition(":")
    module = __import__(module_name)
    for part in module_name.split(".")[1:]:
        module = getattr(module, part)
    app = module
    for part in callable_name.split("."):
        app = getattr(app, part)
    if not callable(app):
        raise TypeError(f"{entry} is not callable")
    return app


def _log_exception(prefix):
    try:
        sys.stderr.write(prefix + "\n" + traceback.format_exc())
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - logging must never raise
        pass


def _error_response(status, failure):
    reason = {500: "Internal Server Error"}.get(status, "Error")
    body = f"{status} {reason}\n".encode()
    return wit_world.Response(
        status=status,
        headers=[("Content-Type", b"text/plain; charset=utf-8"),
                 ("Content-Length", str(len(body)).encode())],
        body=body,
        failure=failure,
    )


def _environ(req):
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
        "wsgi.input": _Input(req.body),
        "wsgi.errors": _ErrorStream(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
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
    if "CONTENT_LENGTH" not in environ and req.body:
        environ["CONTENT_LENGTH"] = str(len(req.body))
    return environ


def _check_header(name, value):
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError(f"header {name!r}: {value!r} must be a pair of str")
    if not name or any(c in name for c in "\r\n:\0 \t"):
        raise ValueError(f"invalid header name {name!r}")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"header {name!r} has a control character in its value")
    if name.lower() in _HOP_BY_HOP:
        raise ValueError(f"hop-by-hop header {name!r} is not allowed in WSGI")
    return value.encode("latin-1")


def _parse_status(status):
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


class _Call:
    """One WSGI call: start_response, write() and the response iterable."""

    def __init__(self):
        self.status = None
        self.headers = None
        self.sent = False
        self.chunks = []

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        code = _parse_status(status)
        checked = [(name, _check_header(name, value)) for name, value in headers]
        self.status = code
        self.headers = checked
        return self.write

    def write(self, data):
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"WSGI body chunks must be bytes, not {type(data).__name__}")
        self.sent = True
        self.chunks.append(bytes(data))


def _run(app, req):
    call = _Call()
    result = app(_environ(req), call.start_response)
    try:
        for chunk in result:
            call.write(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if call.status is None:
        raise AssertionError("the application returned without calling start_response()")
    return wit_world.Response(
        status=call.status, headers=call.headers, body=b"".join(call.chunks), failure=None
    )


class WitWorld(wit_world.WitWorld):
    """The exports of the runtime component."""

    def load(self, entry: str, env: list) -> None:
        if _State.app is not None and _State.entry == entry:
            return
        try:
            _set_environment(env)
            _set_output_streams()
            _set_import_path()
            # The snapshot froze the PRNG state of the build: reseed per instance.
            random.seed()
            _State.app = _import_entry(entry)
            _State.entry = entry
        except BaseException:  # noqa: BLE001 - nothing may escape the gateway
            # The host logs the traceback with the tenant's name.
            raise Err(traceback.format_exc())

    def handle(self, req: wit_world.Request) -> wit_world.Response:
        if _State.app is None:
            sys.stderr.write("mod_wasmpy: request before a successful load()\n")
            return _error_response(500, wit_world.Failure.IMPORT_FAILED)
        try:
            return _run(_State.app, req)
        except MemoryError:
            gc.collect()
            _log_exception("mod_wasmpy: MemoryError in the application")
            return _error_response(500, wit_world.Failure.MEMORY)
        except BaseException:  # noqa: BLE001 - nothing may escape the gateway
            _log_exception("mod_wasmpy: exception in the application")
            return _error_response(500, wit_world.Failure.EXCEPTION)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:  # noqa: BLE001
                pass
