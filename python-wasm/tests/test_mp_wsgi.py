"""mod_python.wsgi: the application option, base_uri and the SCRIPT_NAME /
PATH_INFO split, the environ, start_response, streaming, close(), exc_info,
file_wrapper."""

import os
import sys
import unittest

from tests.fakehost import TableKind
from tests.test_publisher import HOST_PREFIX, HandlerCase

from mod_python import apache

APP = '''
import sys

SEEN = []

def application(environ, start_response):
    SEEN.append(environ)
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "yes")])
    return [b"hello ", body]

def other(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/html"),
                                     ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    return [b"not here"]

EVENTS = []

class Streamed:
    def __init__(self, host_events):
        self.host_events = host_events
        self.closed = False
    def __iter__(self):
        yield b"one"
        EVENTS.append(list(self.host_events()))
        yield b""
        yield b"two"
    def close(self):
        self.closed = True
        CLOSED.append(self)

CLOSED = []
HOST = None

def streaming(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"w ")
    return Streamed(lambda: HOST.events)

class Failing:
    def __iter__(self):
        yield b"partial"
        raise ValueError("broken iterable")
    def close(self):
        CLOSED.append(self)

def failing(environ, start_response):
    start_response("200 OK", [])
    return Failing()

def recovers(environ, start_response):
    start_response("200 OK", [("X-First", "1")])
    try:
        raise KeyError("oops")
    except KeyError:
        start_response("500 Internal Server Error", [("X-Second", "2")], sys.exc_info())
    return [b"recovered"]

def too_late(environ, start_response):
    write = start_response("200 OK", [])
    write(b"sent")
    try:
        raise KeyError("late")
    except KeyError:
        start_response("500 Internal Server Error", [], sys.exc_info())
    return []

def no_start(environ, start_response):
    return []

def twice(environ, start_response):
    start_response("200 OK", [])
    start_response("200 OK", [])
    return []

def hop(environ, start_response):
    start_response("200 OK", [("Connection", "close")])
    return []

def bad_status(environ, start_response):
    start_response("OK", [])
    return []

def lines(environ, start_response):
    start_response("200 OK", [])
    inp = environ["wsgi.input"]
    return [inp.readline().upper(), b"|".join(inp)]

def wrapper(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    f = open(environ["FILE"], "rb")
    f.seek(2)
    return environ["wsgi.file_wrapper"](f)

not_callable = None
'''


class ModPythonWsgiTest(HandlerCase):
    spec = "mod_python.wsgi"
    counter = 0

    def setUp(self):
        super().setUp()
        ModPythonWsgiTest.counter += 1
        self.module = f"mpwsgi_app_{ModPythonWsgiTest.counter}"
        self.write(self.module + ".py", APP)

    def tearDown(self):
        sys.modules.pop(self.module, None)
        super().tearDown()

    def app(self, name="application", uri="/wsgiapps/hello/x", base="/wsgiapps", **kw):
        target = f"{self.module}::{name}" if name else self.module
        options = [("mod_python.wsgi.application", target)]
        if base is not None:
            options.append(("mod_python.wsgi.base_uri", base))
        options += kw.pop("options", [])
        return self.run_handler(uri, kw.pop("filename", None), options=options, **kw)

    def seen(self):
        return sys.modules[self.module].SEEN[-1]

    # -- finding the application --

    def test_default_callable_and_body(self):
        status, host = self.app(None, method="POST", body=b"the body")
        self.assertEqual(status, apache.OK)
        self.assertEqual(host.body_written(), b"hello the body")
        self.assertEqual(host.fields["content_type"], "text/plain")
        self.assertIn(("X-App", "yes"), host.headers_out())
        # Content-Type goes to req.content_type, not headers_out.
        self.assertNotIn("content-type", [k.lower() for k, _ in host.headers_out()])
        self.assertEqual(host.fields["status"], 200)
        self.assertEqual(host.fields["status_line"], "200 OK")

    def test_named_callable_status_and_repeated_headers(self):
        status, host = self.app("other")
        self.assertEqual(status, apache.OK)
        self.assertEqual(host.fields["status"], 404)
        self.assertEqual(host.fields["status_line"], "404 Not Found")
        self.assertEqual(host.fields["content_type"], "text/html")
        self.assertEqual([v for k, v in host.headers_out() if k == "Set-Cookie"], ["a=1", "b=2"])

    def test_missing_application_declines(self):
        status, host = self.app("nope")
        self.assertEqual(status, apache.DECLINED)
        self.assertIn("not found, declining", host.logs[-1][1])
        self.assertEqual(self.app("not_callable")[0], apache.DECLINED)
        status, host = self.run_handler("/x")
        self.assertEqual(status, apache.DECLINED)

    def test_missing_module_is_an_import_error(self):
        status, _ = self.run_handler("/x", options=[("mod_python.wsgi.application", "no_such_mod")])
        self.assertEqual(status, 500)

    def test_reloaded_when_changed(self):
        self.assertEqual(self.app(None)[1].body_written(), b"hello ")
        self.write(self.module + ".py", APP.replace('b"hello "', 'b"changed "'), bump=5)
        self.assertEqual(self.app(None)[1].body_written(), b"changed ")

    # -- SCRIPT_NAME / PATH_INFO --

    def test_base_uri_split(self):
        status, host = self.app(uri="/wsgiapps/hello/x")
        env = self.seen()
        self.assertEqual((env["SCRIPT_NAME"], env["PATH_INFO"]), ("/wsgiapps", "/hello/x"))
        self.assertIn(("path_info", "/hello/x"),
                      [(n, getattr(v, "value", None)) for n, v in host.set_fields])
        self.app(uri="/wsgiapps")
        env = self.seen()
        self.assertEqual((env["SCRIPT_NAME"], env["PATH_INFO"]), ("/wsgiapps", ""))
        self.app(uri="/wsgiapps/")
        env = self.seen()
        self.assertEqual((env["SCRIPT_NAME"], env["PATH_INFO"]), ("/wsgiapps", "/"))

    def test_no_base_uri(self):
        self.app(uri="/hello/x", base=None)
        env = self.seen()
        self.assertEqual((env["SCRIPT_NAME"], env["PATH_INFO"]), ("", "/hello/x"))
        self.app(uri="/a", base="")
        self.assertEqual((self.seen()["SCRIPT_NAME"], self.seen()["PATH_INFO"]), ("", "/a"))

    def test_outside_base_uri_declines(self):
        status, host = self.app(uri="/other/x")
        self.assertEqual(status, apache.DECLINED)
        self.assertIn("does not start with mod_python.wsgi.base_uri", host.logs[-1][1])
        self.assertEqual(self.app(uri="/wsgiappsX/y")[0], apache.DECLINED)

    def test_base_uri_with_trailing_slash_is_an_error(self):
        status, _ = self.app(base="/wsgiapps/")
        self.assertEqual(status, 500)
        self.assertIn("must not end with '/'", self.stderr.getvalue())

    # -- the environ --

    def test_environ(self):
        headers = [("X-Foo", "bar"), ("Authorization", "Basic dTpw"), ("Content-Type", "text/x")]
        self.app(uri="/wsgiapps/p", args="a=1&b=2", method="POST", body=b"xyz", headers=headers,
                 filename=os.path.join(self.dir, "app.wsgi"))
        env = self.seen()
        self.assertEqual(env["REQUEST_METHOD"], "POST")
        self.assertEqual(env["QUERY_STRING"], "a=1&b=2")
        self.assertEqual(env["HTTP_X_FOO"], "bar")
        self.assertEqual(env["HTTP_AUTHORIZATION"], "Basic dTpw")
        self.assertEqual(env["CONTENT_TYPE"], "text/x")
        self.assertEqual(env["CONTENT_LENGTH"], "3")
        self.assertEqual(env["SERVER_NAME"], "example.org")
        self.assertEqual(env["REMOTE_ADDR"], "10.0.0.9")
        self.assertEqual(env["REQUEST_URI"], "/wsgiapps/p")
        # Host paths are shown as the guest sees them.
        self.assertEqual(env["SCRIPT_FILENAME"], os.path.join(self.dir, "app.wsgi"))
        self.assertEqual(env["DOCUMENT_ROOT"], self.dir)
        self.assertEqual(env["CONTEXT_DOCUMENT_ROOT"], self.dir)
        self.assertEqual(env["PATH_TRANSLATED"], self.dir + "/p")
        self.assertFalse(any(isinstance(v, str) and HOST_PREFIX in v for v in env.values()))
        self.assertEqual(env["wsgi.version"], (1, 0))
        self.assertEqual(env["wsgi.url_scheme"], "http")
        self.assertIs(env["wsgi.errors"], sys.stderr)
        self.assertEqual((env["wsgi.multithread"], env["wsgi.multiprocess"], env["wsgi.run_once"]),
                         (False, True, False))

    def test_host_paths_outside_the_grants_are_dropped(self):
        self.app(fields={"document_root": None})
        env = self.seen()
        for key in ("DOCUMENT_ROOT", "CONTEXT_DOCUMENT_ROOT", "SCRIPT_FILENAME"):
            self.assertNotIn(key, env)

    def test_https(self):
        self.app(fields={"is_https": True})
        self.assertEqual(self.seen()["wsgi.url_scheme"], "https")

    def test_https_from_subprocess_env(self):
        def prepare(host):
            host.tables[TableKind.SUBPROCESS_ENV].append(("HTTPS", "on"))
        self.app(prepare=prepare)
        self.assertEqual(self.seen()["wsgi.url_scheme"], "https")

    def test_input_lines_and_iteration(self):
        status, host = self.app("lines", method="POST", body=b"first\nsecond\nthird")
        self.assertEqual(host.body_written(), b"FIRST\nsecond\n|third")

    # -- the response --

    def test_streaming_and_close(self):
        self.app(None)
        module = sys.modules[self.module]

        def prepare(host):
            # The application looks at what reached the client so far.
            module.HOST = host
        status, host = self.app("streaming", prepare=prepare)
        self.assertEqual(status, apache.OK)
        writes = [e for e in host.events if e[0] == "write"]
        self.assertEqual(writes, [("write", b"w ", True), ("write", b"one", True),
                                  ("write", b"two", True)])
        # "one" reached the client before the iterable produced the next chunk.
        self.assertIn(("write", b"one", True), module.EVENTS[-1])
        self.assertTrue(module.CLOSED[-1].closed)

    def test_list_is_written_unflushed(self):
        _, host = self.app(None)
        self.assertEqual([e[2] for e in host.events if e[0] == "write"], [False])

    def test_close_called_on_error(self):
        status, host = self.app("failing")
        self.assertEqual(status, 500)
        self.assertEqual(host.body_written(), b"partial")
        self.assertEqual(type(sys.modules[self.module].CLOSED[-1]).__name__, "Failing")
        self.assertIn("broken iterable", self.stderr.getvalue())

    def test_exc_info_before_output_replaces_the_headers(self):
        status, host = self.app("recovers")
        self.assertEqual(status, apache.OK)
        self.assertEqual(host.fields["status"], 500)
        self.assertEqual(host.headers_out(), [("X-Second", "2")])
        self.assertEqual(host.body_written(), b"recovered")

    def test_exc_info_after_output_reraises(self):
        status, host = self.app("too_late")
        self.assertEqual(status, 500)
        self.assertIn("KeyError: 'late'", self.stderr.getvalue())

    def test_protocol_errors(self):
        for name, message in (("no_start", "without calling start_response"),
                              ("twice", "called twice"),
                              ("hop", "hop-by-hop"),
                              ("bad_status", "invalid status")):
            status, _ = self.app(name)
            self.assertEqual(status, 500, name)
            self.assertIn(message, self.stderr.getvalue(), name)

    def test_file_wrapper_is_sent_by_apache(self):
        path = self.write("data.bin", "0123456789")

        def prepare(host):
            # FILE reaches the environ through subprocess_env (as SetEnv would).
            host.tables[TableKind.SUBPROCESS_ENV].append(("FILE", path))
        status, host = self.app("wrapper", prepare=prepare)
        self.assertEqual(status, apache.OK)
        self.assertEqual([e for e in host.events if e[0] in ("sendfile", "write")],
                         [("sendfile", path, 2, 8)])

if __name__ == "__main__":
    unittest.main()
