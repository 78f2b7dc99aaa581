"""Streaming app of benches/apache/run.sh (tenant "stream", 64 MiB cap).

GET  /stream/download?bytes=N  a generator yielding N bytes in 64 KiB chunks
POST /stream/upload            reads wsgi.input in 64 KiB chunks, answers
                               "<bytes read> <sha256 hex>"
anything else                  "ok" (warm-up)
"""
import hashlib

CHUNK = 64 * 1024
BLOCK = bytes(range(256)) * (CHUNK // 256)


def _download(total):
    left = total
    while left > 0:
        n = min(left, CHUNK)
        yield BLOCK if n == CHUNK else BLOCK[:n]
        left -= n


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/download":
        query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
        total = int(query.get("bytes", 300 * 1024 * 1024))
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(total))])
        return _download(total)
    if path == "/upload":
        digest = hashlib.sha256()
        stream = environ["wsgi.input"]
        count = 0
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            count += len(chunk)
            digest.update(chunk)
        body = f"{count} {digest.hexdigest()}".encode()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [b"ok"]
