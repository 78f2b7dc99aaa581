"""A small mod_python site, served by mod_wasmpy: the same `req` API as
mod_python 3.5, running in the tenant's sandbox."""
import html

from mod_python import apache

VISITS = {"count": 0}


def handler(req):
    VISITS["count"] += 1  # the instance persists between requests
    greeting = req.get_options().get("greeting", "Hello")
    name = "world"
    if req.method == "POST":
        body = req.read().decode("utf-8", "replace")
        for pair in body.split("&"):
            key, _, value = pair.partition("=")
            if key == "name" and value:
                name = value.replace("+", " ")
    req.content_type = "text/html; charset=utf-8"
    req.headers_out["X-Served-By"] = "mod_wasmpy"
    req.write(
        "<!doctype html><title>mod_python on mod_wasmpy</title>"
        f"<h1>{html.escape(greeting)}, {html.escape(name)}!</h1>"
        f"<p>{html.escape(req.method)} {html.escape(req.uri)} &mdash; file {html.escape(req.filename or '')}, "
        f"interpreter {html.escape(req.interpreter)}, visit {VISITS['count']} of this instance</p>"
        '<form method="post"><input name="name" placeholder="your name"> <button>Greet</button></form>'
    )
    return apache.OK
