"""A WSGI app served through mod_python.wsgi (tests/tests/mplib.rs)."""


def application(environ, start_response):
    body = "script=%s path=%s method=%s query=%s" % (
        environ["SCRIPT_NAME"], environ["PATH_INFO"], environ["REQUEST_METHOD"],
        environ.get("QUERY_STRING", ""))
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Wsgi", "yes")])
    yield body.encode()
    yield b" streamed"
