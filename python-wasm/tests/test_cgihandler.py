"""mod_python.cgihandler: a CGI script run as __main__ in the sandbox, its
environment, stdin, stdout parsed as CGI output (Status, Location, headers,
body), restoring the interpreter afterwards, forgetting tenant modules."""

import os
import sys
import unittest

from tests.test_publisher import HOST_PREFIX, HandlerCase

from mod_python import apache, cgihandler

ECHO = '''
import os, sys
print("Content-Type: text/plain")
print("X-Script: echo")
print()
print("name=%s argv=%s" % (__name__, sys.argv == [__file__]))
for key in ("REQUEST_METHOD", "QUERY_STRING", "SCRIPT_NAME", "PATH_INFO", "GATEWAY_INTERFACE",
            "HTTP_AUTHORIZATION", "SCRIPT_FILENAME", "CONTENT_LENGTH", "HTTP_X_FOO"):
    print("%s=%s" % (key, os.environ.get(key)))
print("cwd=%s" % (os.getcwd() == os.path.dirname(__file__)))
print("body=%s" % sys.stdin.read())
'''


class CgiHandlerTest(HandlerCase):
    spec = "mod_python.cgihandler"

    def setUp(self):
        super().setUp()
        self.saved_dirs = (cgihandler.APP_DIR, cgihandler.VENDOR_DIR)
        cgihandler.APP_DIR = self.dir
        cgihandler.VENDOR_DIR = os.path.join(self.dir, "vendor")
        self.saved_environ = dict(os.environ)
        self.saved_cwd = os.getcwd()

    def tearDown(self):
        cgihandler.APP_DIR, cgihandler.VENDOR_DIR = self.saved_dirs
        for name in [n for n, m in sys.modules.items()
                     if (getattr(m, "__file__", None) or "").startswith(self.dir)]:
            del sys.modules[name]
        os.chdir(self.saved_cwd)
        super().tearDown()

    def script(self, name, text, **kw):
        path = self.write(name, text)
        kw.setdefault("uri", "/cgi/" + name + kw.get("path_info", ""))
        return self.run_handler(kw.pop("uri"), path, **kw)

    def assert_restored(self):
        self.assertEqual(dict(os.environ), self.saved_environ)
        self.assertEqual(os.getcwd(), self.saved_cwd)
        self.assertNotEqual(getattr(sys.modules.get("__main__"), "__file__", None),
                            os.path.join(self.dir, "echo.py"))

    def test_environment_stdin_and_output(self):
        stdout, stdin, argv = sys.stdout, sys.stdin, sys.argv
        status, host = self.script(
            "echo.py", ECHO, path_info="/extra", args="q=1", method="POST", body=b"a=b",
            headers=[("Authorization", "Basic dTpw"), ("X-Foo", "bar")])
        self.assertEqual(status, apache.OK)
        self.assertEqual(host.fields["content_type"], "text/plain")
        self.assertIn(("X-Script", "echo"), host.headers_out())
        body = host.body_written().decode()
        self.assertEqual(body.splitlines(), [
            "name=__main__ argv=True",
            "REQUEST_METHOD=POST",
            "QUERY_STRING=q=1",
            "SCRIPT_NAME=/cgi/echo.py",
            "PATH_INFO=/extra",
            "GATEWAY_INTERFACE=Python-CGI/1.1",
            "HTTP_AUTHORIZATION=Basic dTpw",
            "SCRIPT_FILENAME=" + os.path.join(self.dir, "echo.py"),
            "CONTENT_LENGTH=3",
            "HTTP_X_FOO=bar",
            "cwd=True",
            "body=a=b",
        ])
        self.assertNotIn(HOST_PREFIX, body)
        self.assertEqual((sys.stdout, sys.stdin, sys.argv), (stdout, stdin, argv))
        self.assert_restored()

    def test_status_and_headers_crlf(self):
        status, host = self.script("s.py", '''
            import sys
            sys.stdout.write("Status: 404 Not Found\\r\\nContent-Type: text/html\\r\\n"
                             "X-A: 1\\r\\nX-A: 2\\r\\n\\r\\n<p>missing</p>")
        ''')
        self.assertEqual(status, apache.OK)
        self.assertEqual(host.fields["status"], 404)
        self.assertEqual(host.fields["content_type"], "text/html")
        self.assertEqual([v for k, v in host.headers_out() if k == "X-A"], ["1", "2"])
        self.assertEqual(host.body_written(), b"<p>missing</p>")

    def test_location_url_is_302(self):
        status, host = self.script("r.py", 'print("Location: http://example.com/x")\nprint()\n')
        self.assertEqual(host.fields["status"], 302)
        self.assertIn(("Location", "http://example.com/x"), host.headers_out())

    def test_location_with_status(self):
        status, host = self.script(
            "r.py", 'print("Status: 301 Moved")\nprint("Location: /new")\nprint()\n')
        self.assertEqual(host.fields["status"], 301)
        self.assertIn(("Location", "/new"), host.headers_out())
        self.assertEqual(host.redirects, [])

    def test_local_location_is_an_internal_redirect(self):
        status, host = self.script("r.py", 'print("Location: /elsewhere?a=1")\nprint()\n'
                                           'print("dropped body")\n')
        self.assertEqual(status, apache.OK)
        self.assertEqual(host.redirects, ["/elsewhere?a=1"])
        self.assertEqual(host.body_written(), b"")
        self.assertNotIn("Location", dict(host.headers_out()))

    def test_binary_output_and_large_body_streams(self):
        status, host = self.script("b.py", '''
            import sys
            sys.stdout.write("Content-Type: application/octet-stream\\n\\n")
            sys.stdout.flush()
            for _ in range(100000):
                sys.stdout.buffer.write(b"\\x00\\xff")
        ''')
        self.assertEqual(status, apache.OK)
        self.assertEqual(host.body_written(), b"\x00\xff" * 100000)
        # In blocks of the stdout buffer (64 KiB), not one host call per write.
        self.assertEqual(len([e for e in host.events if e[0] == "write"]), 4)

    def test_sys_exit(self):
        status, host = self.script("e.py", 'import sys\nprint("Content-Type: text/plain\\n")\n'
                                           'print("bye")\nsys.exit(0)\nprint("never")\n')
        self.assertEqual((status, host.body_written()), (0, b"bye\n"))
        status, host = self.script("e3.py", 'import sys\nprint("Content-Type: text/plain\\n")\n'
                                            'sys.exit(3)\n')
        self.assertEqual(status, 0)
        self.assertIn("exited with 3", host.logs[-1][1])

    def test_missing_header_end_is_500(self):
        status, host = self.script("h.py", 'print("Content-Type: text/plain")\n')
        self.assertEqual(status, 500)
        self.assertIn("end of its headers", self.stderr.getvalue())
        self.assert_restored()
        status, _ = self.script("n.py", 'pass\n')
        self.assertEqual(status, 500)

    def test_malformed_header_is_500(self):
        status, _ = self.script("m.py", 'print("no colon here")\nprint()\n')
        self.assertEqual(status, 500)
        self.assertIn("malformed header", self.stderr.getvalue())

    def test_exception_restores_everything(self):
        stdout, stdin = sys.stdout, sys.stdin
        status, host = self.script("x.py", 'import os\nos.environ["LEAK"] = "1"\n'
                                           'print("Content-Type: text/plain\\n\\npartial")\n'
                                           'raise ValueError("script failed")\n')
        self.assertEqual(status, 500)
        self.assertIn("script failed", self.stderr.getvalue())
        self.assertNotIn("LEAK", os.environ)
        self.assertEqual((sys.stdout, sys.stdin), (stdout, stdin))
        # What was still buffered never reaches the client, even later.
        import gc
        gc.collect()
        self.assertEqual(host.body_written(), b"")
        self.assert_restored()

    def test_missing_script_is_404(self):
        status, _ = self.run_handler("/cgi/none.py", os.path.join(self.dir, "none.py"))
        self.assertEqual(status, 404)

    def test_tenant_modules_are_reimported(self):
        self.write("helper.py", 'VALUE = "v1"\n')
        self.write("vendor/vendored.py", 'VALUE = "vendored"\n')
        text = ('import sys\nsys.path.insert(0, %r)\nimport helper, vendored\n'
                'print("Content-Type: text/plain\\n")\n'
                'print(helper.VALUE, id(vendored))\n' % os.path.join(self.dir, "vendor"))
        _, host = self.script("imp.py", text)
        first, vid = host.body_written().decode().split()
        self.assertEqual(first, "v1")
        self.write("helper.py", 'VALUE = "v2"\n', bump=5)
        _, host = self.script("imp.py", text)
        second, vid2 = host.body_written().decode().split()
        self.assertEqual(second, "v2")
        # Vendored packages stay imported.
        self.assertEqual(vid, vid2)

    def test_script_reloaded_when_changed(self):
        self.assertEqual(self.script("v.py", 'print("Content-Type: text/plain\\n\\nv1")\n')[1]
                         .body_written(), b"v1\n")
        path = self.write("v.py", 'print("Content-Type: text/plain\\n\\nv2")\n', bump=5)
        self.assertEqual(self.run_handler("/cgi/v.py", path)[1].body_written(), b"v2\n")


if __name__ == "__main__":
    unittest.main()
