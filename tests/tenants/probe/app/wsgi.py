"""A hostile tenant used by the end-to-end tests: each path tries one thing
a tenant must not be able to do (or checks one thing it must be able to do)
and reports what happened as JSON."""

import json
import os
import sys

STATE = {"count": 0}


def _try(fn):
    try:
        return {"ok": True, "value": fn()}
    except BaseException as e:  # noqa: BLE001 - we report everything
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def _read(path):
    with open(path, "rb") as f:
        return f.read(200).decode("latin-1")


def _write(path):
    with open(path, "w") as f:
        f.write("owned")
    return "written"


def _socket():
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1)
    s.connect(("127.0.0.1", 22))
    return "connected"




def _bomb():
    chunks = []
    while True:
        chunks.append(bytearray(8 << 20))


def _spin():
    while True:
        pass


def application(environ, start_response):
    STATE["count"] += 1
    path = environ["PATH_INFO"]
    qs = environ["QUERY_STRING"]
    arg = qs.partition("=")[2]
    from urllib.parse import unquote
    arg = unquote(arg)
    if path == "/count":
        result = STATE["count"]
    elif path == "/read":
        result = _try(lambda: _read(arg))
    elif path == "/list":
        result = _try(lambda: sorted(os.listdir(arg)))
    elif path == "/write":
        result = _try(lambda: _write(arg))
    elif path == "/env":
        result = dict(os.environ)
    elif path == "/socket":
        result = _try(_socket)
    elif path == "/bomb":
        _bomb()
    elif path == "/bigalloc":
        result = len(bytearray(1 << 30))
    elif path == "/spin":
        _spin()
    elif path == "/sleep":
        import time
        time.sleep(3600)
    elif path == "/nap":
        import time
        time.sleep(1)
        result = "rested"
    elif path == "/raise":
        raise RuntimeError("probe raised on purpose")
    elif path == "/print":
        print("probe says hello on stdout")
        print("probe says hello on stderr", file=sys.stderr)
        result = "printed"
    elif path == "/badheader":
        start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: injected=1")])
        return [b"never"]
    elif path == "/cookies":
        start_response("200 OK", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Content-Type", "text/plain")])
        return [b"two cookies"]
    else:
        result = "probe"
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(result).encode()]
