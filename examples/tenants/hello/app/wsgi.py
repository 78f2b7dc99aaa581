"""A plain WSGI application: no framework, a counter kept between requests."""

import json

COUNTER = {"requests": 0}


def application(environ, start_response):
    COUNTER["requests"] += 1
    path = environ["PATH_INFO"]
    if path.startswith("/environ"):
        body = json.dumps(
            {k: v for k, v in environ.items() if isinstance(v, str)}, sort_keys=True, indent=1
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = environ["wsgi.input"].read(length)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [data]
    body = f"Hello from a sandboxed WSGI app! Request #{COUNTER['requests']} of this instance.\n"
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body.encode()]
