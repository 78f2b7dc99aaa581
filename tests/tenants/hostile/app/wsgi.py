"""A hostile tenant used by tests/tests/hostile.rs: each URL path attacks one
thing a tenant must not be able to do, and reports what happened as JSON
(`{"ok": false, "error": ...}` when the attempt failed) wherever the attack
leaves the instance alive to answer. Paths that must kill the request (memory,
CPU, broken WSGI responses) answer with whatever the sandbox makes of them.

Nothing happens at import time: every tenant directory of tests/tenants is
served by the other end-to-end tests too."""

import json
import json as _json  # the real one, whatever /tamper/json does to sys.modules
import os
import sys
from urllib.parse import parse_qs

# Identifies the instance (a fresh instance imports this module again).
INSTANCE = os.urandom(8).hex()
STATE = {"count": 0, "grown": []}
ROUTES = {}
CURRENT = {}


def route(path, raw=False, bare=False):
    """Register a case: `raw` ones get (environ, start_response) and answer
    themselves; the others get the query arguments and return a value that is
    reported as JSON: `{"ok": ..., "value"/"error": ...}`, exceptions
    included, or, when `bare`, the value itself with exceptions (MemoryError)
    left to the gateway."""

    def register(fn):
        ROUTES[path] = (fn, "raw" if raw else "bare" if bare else "try")
        return fn

    return register


def _error(e):
    return f"{type(e).__name__}: {e}"


def _try(fn, *args):
    try:
        return {"ok": True, "value": fn(*args)}
    except BaseException as e:  # noqa: BLE001 - we report everything
        return {"ok": False, "error": _error(e)}


# --- the file system ------------------------------------------------------


@route("/fs/read")
def fs_read(q):
    with open(q["p"], "rb") as f:
        return f.read(300).decode("latin-1")


@route("/fs/list")
def fs_list(q):
    return sorted(os.listdir(q["p"]))


@route("/fs/stat")
def fs_stat(q):
    st = os.stat(q["p"])
    return {"size": st.st_size, "ino": st.st_ino, "nlink": st.st_nlink}


@route("/fs/write")
def fs_write(q):
    with open(q["p"], q.get("mode", "w")) as f:
        f.write(q.get("data", "owned by hostile"))
    return "written"


@route("/fs/mkdir")
def fs_mkdir(q):
    os.mkdir(q["p"])
    return "created"


@route("/fs/unlink")
def fs_unlink(q):
    os.unlink(q["p"])
    return "unlinked"


@route("/fs/rename")
def fs_rename(q):
    os.rename(q["p"], q["to"])
    return "renamed"


@route("/fs/chmod")
def fs_chmod(q):
    os.chmod(q["p"], 0o777)
    return oct(os.stat(q["p"]).st_mode)


@route("/fs/utime")
def fs_utime(q):
    os.utime(q["p"], (0, 0))
    return os.stat(q["p"]).st_mtime


@route("/fs/truncate")
def fs_truncate(q):
    os.truncate(q["p"], 0)
    return "truncated"


@route("/fs/symlink")
def fs_symlink(q):
    os.symlink(q["target"], q["p"])
    return os.readlink(q["p"])


@route("/fs/link")
def fs_link(q):
    os.link(q["p"], q["to"])
    return "linked"


# --- environment and process ----------------------------------------------


@route("/env")
def env(q):
    import platform

    return {
        "environ": dict(os.environ),
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "argv": sys.argv,
        "executable": sys.executable,
        "platform": sys.platform,
        "machine": platform.machine(),
    }


@route("/proc/fork")
def proc_fork(q):
    return os.fork()


@route("/proc/subprocess")
def proc_subprocess(q):
    import subprocess

    return subprocess.run(["/bin/sh", "-c", "id"], capture_output=True).stdout.decode()


@route("/proc/system")
def proc_system(q):
    return os.system("id > /scratch/id.txt")


@route("/proc/thread")
def proc_thread(q):
    import threading

    done = []
    t = threading.Thread(target=lambda: done.append(1))
    t.start()
    t.join()
    return done


@route("/proc/kill")
def proc_kill(q):
    import signal

    os.kill(1, signal.SIGKILL)
    return "killed"


@route("/proc/ctypes")
def proc_ctypes(q):
    import ctypes

    return str(ctypes.CDLL(None))


@route("/proc/exit", raw=True)
def proc_exit(environ, start_response):
    # WASI proc_exit: must end the instance, not the Apache child.
    os._exit(3)


@route("/proc/sysexit", raw=True)
def proc_sysexit(environ, start_response):
    sys.exit(0)


# --- the network ----------------------------------------------------------


@route("/net/tcp")
def net_tcp(q):
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1)
    s.connect(("127.0.0.1", int(q["port"])))
    s.sendall(b"GET /neighbour/ HTTP/1.0\r\n\r\n")
    return s.recv(100).decode("latin-1")


@route("/net/udp")
def net_udp(q):
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return s.sendto(b"hostile", ("127.0.0.1", int(q["port"])))


@route("/net/dns")
def net_dns(q):
    import socket

    return [str(a[4]) for a in socket.getaddrinfo("localhost", 80)]


@route("/net/listen")
def net_listen(q):
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", int(q["port"])))
    s.listen(1)
    STATE["listener"] = s  # keep it open if it ever worked
    return s.getsockname()


# --- memory and CPU -------------------------------------------------------


@route("/mem/big", bare=True)
def mem_big(q):
    # 2 GiB by default: more than a wasm32 index (OverflowError); ?size=
    # for an allocation that is merely over the policy's memory cap.
    return len(bytearray(int(q.get("size", 2 << 30))))


@route("/mem/grow", bare=True)
def mem_grow(q):
    STATE["grown"].append(bytearray(8 << 20))
    return {"instance": INSTANCE, "chunks": len(STATE["grown"])}


@route("/mem/recurse", bare=True)
def mem_recurse(q):
    sys.setrecursionlimit(10**6)

    def down(n):
        return down(n + 1) + 1

    if "catch" not in q:
        return down(0)
    import time

    started = time.monotonic()
    try:
        down(0)
    except RecursionError as e:
        return {"error": str(e), "seconds": time.monotonic() - started}


@route("/cpu/loop", bare=True)
def cpu_loop(q):
    while True:
        pass


@route("/cpu/regex", bare=True)
def cpu_regex(q):
    import re

    # Catastrophic backtracking: one call into C that never returns.
    return bool(re.match(r"(a+)+$", "a" * 40 + "b"))


@route("/cpu/pow", bare=True)
def cpu_pow(q):
    # One big-int builtin call: 10 million squarings of 5000-digit numbers,
    # in C, with a constant amount of memory.
    return pow(7, (1 << 10_000_000) - 1, 10**5000 + 3) % 10


@route("/cpu/sleep", bare=True)
def cpu_sleep(q):
    import time

    time.sleep(3600)
    return "woke up"


# --- responses ------------------------------------------------------------


@route("/resp/huge", raw=True)
def resp_huge(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [b"x" * (200 << 20)]


@route("/resp/many-headers", raw=True)
def resp_many_headers(environ, start_response):
    headers = [(f"X-H{i}", "v") for i in range(100_000)]
    start_response("200 OK", [("Content-Type", "text/plain")] + headers)
    return [b"many headers"]


@route("/resp/big-header", raw=True)
def resp_big_header(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Big", "v" * (1 << 20))])
    return [b"big header"]


BAD_HEADERS = {
    "crlf-name": ("X-A\r\nSet-Cookie", "injected=1"),
    "lf-name": ("X-A\nSet-Cookie", "injected=1"),
    "crlf-value": ("X-A", "v\r\nSet-Cookie: injected=1"),
    "lf-value": ("X-A", "v\nSet-Cookie: injected=1"),
    "nul-value": ("X-A", "v\0Set-Cookie: injected=1"),
    "non-latin1": ("X-A", "caf\u00e9 \u20ac \U0001f600"),
    "bytes-name": (b"Set-Cookie", "injected=1"),
    "bytes-value": ("Set-Cookie", b"injected=1"),
    "int-name": (42, "injected=1"),
    "non-token-name": ("Set-Cookie(x)", "injected=1"),
    "non-ascii-name": ("Set-Cookie\u00e9", "injected=1"),
    "empty-name": ("", "injected=1"),
    "hop-by-hop": ("Transfer-Encoding", "chunked"),
}


@route("/resp/header", raw=True)
def resp_header(environ, start_response):
    which = parse_qs(environ["QUERY_STRING"])["h"][0]
    start_response("200 OK", [("Content-Type", "text/plain"), BAD_HEADERS[which]])
    return [b"header sent: " + which.encode()]


@route("/resp/tuple-header", raw=True)
def resp_tuple_header(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain", "Set-Cookie: injected=1")])
    return [b"3-tuple header"]


@route("/resp/status", raw=True)
def resp_status(environ, start_response):
    status = parse_qs(environ["QUERY_STRING"], keep_blank_values=True)["s"][0]
    start_response(status, [("Content-Type", "text/plain")])
    return [b"status sent"]


@route("/resp/desync", raw=True)
def resp_desync(environ, start_response):
    # An interim (1xx) status with a body: if it reaches the client as is, the
    # body is read as the final response of this request, and whatever follows
    # as the response to the NEXT request on the same connection (another
    # tenant's, through a shared connection or a front proxy).
    status = parse_qs(environ["QUERY_STRING"]).get("s", ["100 Continue"])[0]
    start_response(status, [("Content-Type", "text/plain")])
    return [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\n"
        b"neighbour hijacked!"
    ]


@route("/resp/te-desync", raw=True)
def resp_te_desync(environ, start_response):
    # A Transfer-Encoding header from the app (refused by the gateway's own
    # check, unless /tamper/checks disabled it) with a body framed as chunked
    # followed by a forged response for the next request on the connection.
    start_response("200 OK", [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")])
    return [
        b"2\r\nhi\r\n0\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\n"
        b"neighbour hijacked!"
    ]


@route("/resp/content-length", raw=True)
def resp_content_length(environ, start_response):
    # A lying Content-Length would let the rest of the body be read as the
    # next response on a kept-alive connection.
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"12345HTTP/1.1 200 OK\r\nX-Smuggled: 1\r\n\r\n"]


@route("/resp/forever", raw=True)
def resp_forever(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        while True:
            yield b"x"

    return body()


class _CloseRaises:
    def __iter__(self):
        yield b"body before close"

    def close(self):
        raise RuntimeError("hostile close() raised on purpose")


@route("/resp/close-raises", raw=True)
def resp_close_raises(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _CloseRaises()


@route("/resp/no-start", raw=True)
def resp_no_start(environ, start_response):
    return [b"start_response was never called"]


@route("/resp/no-start-empty", raw=True)
def resp_no_start_empty(environ, start_response):
    return []


@route("/resp/str", raw=True)
def resp_str(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return "a str, not bytes"


@route("/resp/none", raw=True)
def resp_none(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return None


@route("/resp/start-twice", raw=True)
def resp_start_twice(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("302 Found", [("Location", "http://evil.example/")])
    return [b"started twice"]


# --- the request body -----------------------------------------------------


@route("/body")
def body(q):
    return len(CURRENT["environ"]["wsgi.input"].read())


# --- logging --------------------------------------------------------------


@route("/log/flood", bare=True)
def log_flood(q):
    line = "hostile flood " + "x" * 85 + "\n"  # 100 bytes
    block = line * ((1 << 20) // len(line))  # about 1 MiB
    written = 0
    for i in range(50):
        stream = sys.stdout if i % 2 else sys.stderr
        stream.write(block)
        written += len(block)
    sys.stdout.flush()
    sys.stderr.flush()
    return written


# --- tampering with the interpreter and the gateway -------------------------


def _gateway():
    return sys.modules["wasmpy_gateway"]


def _wsgi():
    """The runtime's PEP 3333 code (environ, response checks)."""
    return sys.modules["wasmpy.wsgi"]


@route("/tamper/json")
def tamper_json(q):
    class FakeJson:
        @staticmethod
        def dumps(value):
            return '"json hijacked"'

    sys.modules["json"] = FakeJson
    return "json replaced"


@route("/tamper/environ")
def tamper_environ(q):
    wsgi = _wsgi()
    original = wsgi.environ_for

    def evil_environ(req):
        environ = original(req)
        environ["HTTP_X_TAMPERED"] = "by hostile"
        environ["REMOTE_ADDR"] = "6.6.6.6"
        return environ

    wsgi.environ_for = evil_environ
    return "environ patched"


@route("/tamper/checks")
def tamper_checks(q):
    # Disable the guest-side response checks: the host's must still hold.
    wsgi = _wsgi()
    wsgi.check_header = lambda name, value: (
        value if isinstance(value, bytes) else value.encode("utf-8")
    )
    wsgi.parse_status = lambda status: int(status.split(" ")[0])
    return "checks disabled"


@route("/tamper/app")
def tamper_app(q):
    gateway = _gateway()
    original = gateway._State.app

    def hijacked(environ, start_response):
        if environ["PATH_INFO"] == "/state":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"hijacked": true}']
        return original(environ, start_response)

    gateway._State.app = hijacked
    return "app replaced"


@route("/tamper/pycache")
def tamper_pycache(q):
    # Its own bytecode cache is writable (documented); the neighbour's is not
    # reachable from it.
    return sorted(os.listdir("/.wasmpy/pycache"))


@route("/state", bare=True)
def state(q):
    environ = CURRENT["environ"]
    wsgi = _wsgi()
    return {
        "instance": INSTANCE,
        "count": STATE["count"],
        "json_is_real": getattr(sys.modules.get("json"), "__file__", None) is not None,
        "environ_patched": wsgi.environ_for.__name__ != "environ_for",
        "checks_patched": wsgi.check_header.__name__ != "check_header",
        "tampered_header": environ.get("HTTP_X_TAMPERED"),
        "remote_addr": environ.get("REMOTE_ADDR"),
    }


def application(environ, start_response):
    STATE["count"] += 1
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"], keep_blank_values=True).items()}
    CURRENT["environ"] = environ
    fn, kind = ROUTES.get(path, (None, None))
    if fn is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such attack\n"]
    if kind == "raw":
        return fn(environ, start_response)
    result = fn(query) if kind == "bare" else _try(fn, query)
    start_response("200 OK", [("Content-Type", "application/json")])
    # json is looked up at call time: /tamper/json replaces it for this
    # instance (except for /state, which must report the tampering).
    dumps = _json.dumps if path == "/state" else sys.modules["json"].dumps
    return [dumps(result).encode()]
