"""WSGI: the fast path, streaming, wsgi.input on demand, file_wrapper, errors."""

import os
import tempfile
import tracemalloc
import unittest

from tests import fakehost
from tests.fakehost import FakeHost, Failure, WsgiRequest

import wasmpy_gateway
from wasmpy import RequestTooLarge


def request(rid=1, body=b"", complete=True, headers=()):
    return WsgiRequest(
        id=rid, method="POST", script_name="/app", path_info=b"/x", query_string="a=1",
        request_uri="/app/x?a=1", headers=list(headers), body=body, body_complete=complete,
        remote_addr="127.0.0.1", remote_port=5000, server_name="localhost", server_port=80,
        server_protocol="HTTP/1.1", url_scheme="http")


class WsgiTest(unittest.TestCase):
    def setUp(self):
        self.host = fakehost.use(FakeHost(rid=1))
        self.world = wasmpy_gateway.WitWorld()
        wasmpy_gateway._State.loaded = True
        wasmpy_gateway._State.entry = "test:app"

    def serve(self, app, req=None):
        wasmpy_gateway._State.app = app
        return self.world.handle(req or request())

    def test_list_is_buffered_without_host_calls(self):
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"hello ", b"world"]
        resp = self.serve(app)
        self.assertEqual((resp.status, resp.body, resp.streamed, resp.failure),
                         (200, b"hello world", False, None))
        self.assertEqual(resp.headers, [("Content-Type", b"text/plain")])
        self.assertEqual(self.host.events, [])

    def test_generator_streams_each_chunk_before_the_next(self):
        host = self.host

        def app(environ, start_response):
            start_response("201 Created", [("X-A", "b")])

            def gen():
                yield b"one"
                # The first chunk reached the client before this one is produced.
                assert host.events[-1] == ("write", b"one", True), host.events
                yield b""
                yield b"two"
            return gen()
        resp = self.serve(app)
        self.assertTrue(resp.streamed)
        self.assertEqual(resp.body, b"")
        self.assertIsNone(resp.failure)
        self.assertEqual(host.events, [("start", 201, [("X-A", b"b")]),
                                       ("write", b"one", True), ("write", b"two", True)])

    def test_write_callable_streams(self):
        def app(environ, start_response):
            write = start_response("200 OK", [])
            write(b"early")
            return [b"late"]
        resp = self.serve(app)
        self.assertTrue(resp.streamed)
        self.assertEqual(self.host.body_written(), b"earlylate")

    def test_large_generated_response_memory_stays_flat(self):
        chunk = b"x" * (1 << 20)

        def app(environ, start_response):
            start_response("200 OK", [])
            return (chunk for _ in range(300))
        host = self.host
        host.write = lambda rid, data, flush: None  # drop the bytes like the network would
        tracemalloc.start()
        try:
            resp = self.serve(app)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertTrue(resp.streamed)
        self.assertLess(peak, 16 << 20)

    def test_error_before_streaming_is_a_500_record(self):
        def app(environ, start_response):
            raise RuntimeError("boom")
        resp = self.serve(app)
        self.assertEqual((resp.status, resp.streamed, resp.failure), (500, False, Failure.EXCEPTION))

    def test_error_after_streaming_sets_failure(self):
        def app(environ, start_response):
            start_response("200 OK", [])

            def gen():
                yield b"part"
                raise RuntimeError("boom")
            return gen()
        resp = self.serve(app)
        self.assertEqual((resp.streamed, resp.failure, resp.body), (True, Failure.EXCEPTION, b""))

    def test_bad_header_is_a_500(self):
        def app(environ, start_response):
            start_response("200 OK", [("X-A", "a\r\nSet-Cookie: x")])
            return [b""]
        self.assertEqual(self.serve(app).status, 500)

    def test_input_reads_on_demand(self):
        self.host.body = b"line2\nrest" + b"z" * 200000
        seen = {}

        def app(environ, start_response):
            inp = environ["wsgi.input"]
            seen["first"] = inp.readline()
            seen["reads_after_first"] = len(self.host.read_sizes)
            seen["second"] = inp.readline()
            seen["four"] = inp.read(4)
            seen["rest"] = len(inp.read())
            seen["eof"] = inp.read(10)
            start_response("200 OK", [])
            return [b""]
        self.serve(app, request(body=b"line1\n", complete=False))
        self.assertEqual(seen["first"], b"line1\n")
        self.assertEqual(seen["reads_after_first"], 0)
        self.assertEqual(seen["second"], b"line2\n")
        self.assertEqual(seen["four"], b"rest")
        self.assertEqual(seen["rest"], 200000)
        self.assertEqual(seen["eof"], b"")
        self.assertTrue(all(size <= 256 * 1024 for size in self.host.read_sizes))

    def test_input_iteration_and_readlines(self):
        self.host.body = b"b\nc\n"

        def app(environ, start_response):
            inp = environ["wsgi.input"]
            start_response("200 OK", [])
            return [repr(list(inp)).encode()]
        resp = self.serve(app, request(body=b"a\n", complete=False))
        self.assertEqual(resp.body, b"[b'a\\n', b'b\\n', b'c\\n']")

    def test_input_too_large_propagates(self):
        self.host.body = b"y" * 10
        self.host.max_body = 0
        caught = {}

        def app(environ, start_response):
            try:
                environ["wsgi.input"].read()
            except RequestTooLarge as exc:
                caught["exc"] = exc
                raise
        resp = self.serve(app, request(body=b"x", complete=False))
        self.assertIsInstance(caught["exc"], OSError)
        self.assertEqual(resp.status, 500)

    def test_file_wrapper_uses_sendfile(self):
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(b"0123456789")
        self.addCleanup(os.unlink, f.name)

        def app(environ, start_response):
            start_response("200 OK", [("Content-Length", "6")])
            fh = open(f.name, "rb")
            fh.read(4)
            return environ["wsgi.file_wrapper"](fh)
        resp = self.serve(app)
        self.assertTrue(resp.streamed)
        self.assertEqual(self.host.events, [("start", 200, [("Content-Length", b"6")]),
                                            ("sendfile", f.name, 4, 6)])

    def test_file_wrapper_over_other_files_iterates(self):
        import io

        def app(environ, start_response):
            start_response("200 OK", [])
            return environ["wsgi.file_wrapper"](io.BytesIO(b"abc" * 30000), 40000)
        resp = self.serve(app)
        self.assertTrue(resp.streamed)
        self.assertEqual(self.host.body_written(), b"abc" * 30000)
        self.assertEqual(len([e for e in self.host.events if e[0] == "write"]), 3)

    def test_no_application_loaded(self):
        wasmpy_gateway._State.app = None
        resp = self.world.handle(request())
        self.assertEqual((resp.status, resp.failure), (500, Failure.IMPORT_FAILED))


if __name__ == "__main__":
    unittest.main()
