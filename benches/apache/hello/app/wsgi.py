"""Hello-world WSGI app shared by every row of benches/apache/run.sh.

The same file is served by mod_wsgi (embedded and daemon mode) and by
mod_wasmpy (as tenant "hello"), so the rows differ only in the server.
"""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!"]
