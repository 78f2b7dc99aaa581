"""WSGI streaming both ways (tests/tests/streaming.rs)."""
import hashlib
import time

CHUNK = 64 * 1024


def _slow():
    yield b"first\n"
    time.sleep(1)
    yield b"second\n"


def _big(total):
    block = bytes(range(256)) * (CHUNK // 256)
    sent = 0
    while sent < total:
        part = block[: min(CHUNK, total - sent)]
        sent += len(part)
        yield part


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong"]
    if path == "/slow":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _slow()
    if path == "/big":
        total = int(environ.get("QUERY_STRING") or "1") << 20
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(total))])
        return _big(total)
    if path == "/upload":
        digest = hashlib.sha256()
        size = 0
        stream = environ["wsgi.input"]
        while True:
            data = stream.read(CHUNK)
            if not data:
                break
            digest.update(data)
            size += len(data)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [("%d %s" % (size, digest.hexdigest())).encode()]
    if path == "/file":
        f = open("/app/blob.bin", "rb")
        size = f.seek(0, 2)
        f.seek(0)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        # A block size larger than the file: a guest-side fallback would
        # hold the whole file in memory at once.
        return environ["wsgi.file_wrapper"](f, 48 << 20)
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such path"]
