"""The WSGI hello world served through the gateway world (records.wasm)."""

BODY = b"Hello, World!\n"


def application(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]
