"""mod_python phases: chains, return codes, SERVER_RETURN, PythonDebug,
autoreload, req across phases, tables, I/O, add_handler, cleanups, stale ids."""

import os
import sys
import tempfile
import textwrap
import time
import unittest

from tests import fakehost
from tests.fakehost import Failure, FakeHost, Handler, PhaseCall, TableKind

import wasmpy_gateway
from mod_python import apache
from wasmpy import StaleRequestError, phases

HANDLERS = '''
from mod_python import apache

def handler(req):
    req.content_type = "text/plain"
    req.write("default ")
    return apache.OK

def one(req):
    req.write("one ")
    return apache.OK

def two(req):
    req.write("two ")
    return apache.OK

def declines(req):
    req.write("declines ")
    return apache.DECLINED

def forbidden(req):
    return apache.HTTP_FORBIDDEN

def not_impl(req):
    raise apache.SERVER_RETURN(apache.HTTP_NOT_IMPLEMENTED)

def with_status(req):
    raise apache.SERVER_RETURN(apache.DONE, 404)

def returns_str(req):
    return "OK"

def boom(req):
    raise ValueError("boom <b>")

def oom(req):
    raise MemoryError()

def authenhandler(req):
    req.seen = ["authen"]
    return apache.OK

def fixuphandler(req):
    req.seen.append("fixup")
    req.notes["n"] = "1"
    return apache.OK

def read_body(req):
    first = req.readline()
    rest = req.read()
    req.write(first.upper() + rest)
    return apache.OK

def adds(req):
    req.add_handler("PythonHandler", "h::two")
    req.add_handler("PythonLogHandler", "h::logger")
    return apache.OK

def logger(req):
    req.log_error("logged", apache.APLOG_INFO)
    return apache.OK

def cleanup(req):
    req.register_cleanup(CLEANED.append, "data")
    req.register_cleanup(lambda d: 1 / 0)
    req.register_cleanup(CLEANED.append, "after")
    return apache.OK

CLEANED = []

class Page:
    def __init__(self, req):
        self.req = req
    def show(self, req):
        assert req is self.req
        req.write("page ")
        return apache.OK
'''


class PhaseTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.write_module("h", HANDLERS)
        sys.modules.pop("h", None)
        self.host = fakehost.use(FakeHost(rid=7, fields={
            "uri": "/py/x", "filename": "/app/x.py", "method": "GET", "status": 200,
            "unparsed_uri": "/py/x?a=1", "server.server_hostname": "example.org",
            "connection.remote_ip": "10.0.0.1", "connection.remote_port": 1234,
            "request_time": 1.5, "header_only": False, "main.uri": "/main"}))
        self.world = wasmpy_gateway.WitWorld()

    def tearDown(self):
        for rid in list(phases._requests):
            phases.end_request(rid)
        if self.dir in sys.path:
            sys.path.remove(self.dir)

    def write_module(self, name, text):
        with open(os.path.join(self.dir, name + ".py"), "w") as f:
            f.write(textwrap.dedent(text))

    def run_phase(self, phase, *specs, config=(), options=(), exts=None, silent=False, rid=7):
        handlers = [Handler(s, self.dir, list(exts or []), silent) for s in specs]
        call = PhaseCall(phase, handlers, list(options), list(config), [], "main_interpreter")
        return self.world.run_phase(rid, call)

    def test_default_object_names(self):
        self.assertEqual(phases.DEFAULT_OBJECT["PythonInitHandler"], "inithandler")
        self.assertEqual(phases.DEFAULT_OBJECT["PythonPostReadRequestHandler"], "postreadrequesthandler")
        res = self.run_phase("PythonHandler", "h")
        self.assertEqual((res.status, res.failure), (0, None))
        self.assertEqual(self.host.body_written(), b"default ")

    def test_handler_chain_ok_continues(self):
        res = self.run_phase("PythonHandler", "h::one", "h::two")
        self.assertEqual(res.status, apache.OK)
        self.assertEqual(self.host.body_written(), b"one two ")

    def test_handler_declined_stops_content_chain(self):
        res = self.run_phase("PythonHandler", "h::declines", "h::two")
        self.assertEqual(res.status, apache.DECLINED)
        self.assertEqual(self.host.body_written(), b"declines ")

    def test_authen_ok_stops_declined_continues(self):
        res = self.run_phase("PythonAuthenHandler", "h::declines", "h::one", "h::two")
        self.assertEqual(res.status, apache.OK)
        self.assertEqual(self.host.body_written(), b"declines one ")

    def test_fixup_ok_continues_error_stops(self):
        res = self.run_phase("PythonFixupHandler", "h::one", "h::forbidden", "h::two")
        self.assertEqual(res.status, 403)
        self.assertEqual(self.host.body_written(), b"one ")

    def test_server_return(self):
        self.assertEqual(self.run_phase("PythonHandler", "h::not_impl").status, 501)
        res = self.run_phase("PythonHandler", "h::with_status")
        self.assertEqual(res.status, apache.DONE)
        self.assertIn(("status", fakehost.FieldValue_Int(404)), self.host.set_fields)

    def test_non_int_result_is_an_error(self):
        res = self.run_phase("PythonHandler", "h::returns_str")
        self.assertEqual((res.status, res.failure), (500, Failure.EXCEPTION))

    def test_class_object_is_instantiated_with_req(self):
        self.assertEqual(self.run_phase("PythonHandler", "h::Page.show").status, 0)
        self.assertEqual(self.host.body_written(), b"page ")

    def test_silent_missing_object_declines(self):
        res = self.run_phase("PythonHandler", "h::nothing", silent=True)
        self.assertEqual((res.status, res.failure), (apache.DECLINED, None))
        res = self.run_phase("PythonHandler", "h::nothing")
        self.assertEqual((res.status, res.failure), (500, Failure.EXCEPTION))

    def test_import_failure(self):
        res = self.run_phase("PythonHandler", "no_such_module")
        self.assertEqual((res.status, res.failure), (500, Failure.IMPORT_FAILED))

    def test_extensions(self):
        call = PhaseCall("PythonHandler", [Handler("h::one", self.dir, [".txt"], False),
                                           Handler("h::two", self.dir, [], False)],
                         [], [], [], "x")
        self.world.run_phase(7, call)
        self.assertEqual(self.host.body_written(), b"two ")
        self.host.events.clear()
        self.host.fields["filename"] = "/app/a.txt"
        self.world.run_phase(7, call)
        self.assertEqual(self.host.body_written(), b"one ")

    def test_debug_off_logs_and_500(self):
        res = self.run_phase("PythonHandler", "h::boom")
        self.assertEqual((res.status, res.failure), (500, Failure.EXCEPTION))
        self.assertEqual(self.host.body_written(), b"")

    def test_debug_on_sends_traceback(self):
        res = self.run_phase("PythonHandler", "h::boom", config=[("PythonDebug", "1")])
        self.assertEqual((res.status, res.failure), (apache.DONE, Failure.EXCEPTION))
        page = self.host.body_written()
        self.assertIn(b"ValueError: boom &lt;b&gt;", page)
        self.assertIn(("status", fakehost.FieldValue_Int(500)), self.host.set_fields)

    def test_memory_error(self):
        res = self.run_phase("PythonHandler", "h::oom")
        self.assertEqual((res.status, res.failure), (500, Failure.MEMORY))

    def test_req_persists_across_phases(self):
        self.run_phase("PythonAuthenHandler", "h")
        self.run_phase("PythonFixupHandler", "h")
        req = phases._requests[7]
        self.assertEqual(req.seen, ["authen", "fixup"])
        self.assertEqual(req.notes["n"], "1")
        self.assertEqual(self.host.tables[TableKind.NOTES], [("n", "1")])

    def test_fields_cached_per_phase_and_written(self):
        self.run_phase("PythonHandler", "h")
        req = phases._requests[7]
        fetches = sum(1 for e in self.host.events if e == ("fields",))
        self.assertEqual((req.uri, req.method, req.request_time), ("/py/x", "GET", 1.5))
        self.assertEqual(sum(1 for e in self.host.events if e == ("fields",)), max(fetches, 1))
        self.assertEqual(req.content_type, "text/plain")
        self.assertEqual(req.server.server_hostname, "example.org")
        self.assertEqual(req.connection.remote_addr, ("10.0.0.1", 1234))
        self.assertEqual(req.main.uri, "/main")
        self.assertIsNone(req.prev)
        self.assertEqual(req.parsed_uri[apache.URI_PATH], "/py/x")
        self.assertEqual(req.parsed_uri[apache.URI_QUERY], "a=1")
        self.assertIsNone(req.range)
        with self.assertRaises(AttributeError):
            req.method = "POST"
        with self.assertRaises(ValueError):
            req.content_type = "a\r\nb"
        req.custom = 5
        self.assertEqual(req.custom, 5)

    def test_tables(self):
        self.host.tables[TableKind.HEADERS_IN] = [("Accept", "a"), ("X-Many", "1"), ("x-many", "2")]
        self.run_phase("PythonHandler", "h")
        req = phases._requests[7]
        self.assertEqual(req.headers_in["accept"], "a")
        self.assertEqual(req.headers_in["X-MANY"], ["1", "2"])
        self.assertIn("ACCEPT", req.headers_in)
        self.assertEqual(len(req.headers_in), 3)
        with self.assertRaises(KeyError):
            req.headers_in["nope"]
        req.headers_out["Set-Cookie"] = "a=1"
        req.headers_out.add("Set-Cookie", "b=2")
        self.assertEqual(req.headers_out.get("set-cookie"), ["a=1", "b=2"])
        del req.headers_out["set-cookie"]
        self.assertNotIn("set-cookie", req.headers_out)
        with self.assertRaises(ValueError):
            req.headers_out["X"] = "a\nb"
        with self.assertRaises(TypeError):
            req.headers_out["X"] = 1
        t = apache.table({"A": "1"})
        t.add("a", "2")
        self.assertEqual(t["A"], ["1", "2"])
        self.assertEqual(req.get_config(), apache.table())

    def test_read_and_write(self):
        self.host.body = b"first\nsecond"
        self.run_phase("PythonHandler", "h::read_body")
        self.assertEqual(self.host.body_written(), b"FIRST\nsecond")
        self.assertTrue(all(e[2] is True for e in self.host.events if e[0] == "write"))

    def test_stale_after_end_request(self):
        self.run_phase("PythonHandler", "h")
        req = phases._requests[7]
        self.world.end_request(7)
        self.assertNotIn(7, phases._requests)
        with self.assertRaises(StaleRequestError):
            req.write("late")
        with self.assertRaises(RuntimeError):
            req.uri
        # A kept req of an earlier request used in a later one: the host says stale.
        self.host.rid = 8
        old = phases.Request(7)
        with self.assertRaises(StaleRequestError):
            old.headers_in.keys()

    def test_add_handler(self):
        self.run_phase("PythonHandler", "h::adds")
        self.assertEqual(self.host.body_written(), b"two ")
        self.assertEqual(self.host.calls, [("add_handler", ["PythonLogHandler"])])
        self.run_phase("PythonLogHandler")
        self.assertEqual(self.host.logs, [(apache.APLOG_INFO, "logged")])

    def test_register_cleanup(self):
        self.run_phase("PythonHandler", "h::cleanup")
        module = sys.modules["h"]
        self.assertEqual(module.CLEANED, [])
        # The host is told once that end-request is needed.
        self.assertEqual([c for c in self.host.calls if c[0] == "register_cleanup"],
                         [("register_cleanup", [])])
        self.world.end_request(7)
        self.assertEqual(module.CLEANED, ["data", "after"])

    def test_autoreload(self):
        self.write_module("auto", "def handler(req):\n    req.write('v1')\n    return 0\n")
        self.run_phase("PythonHandler", "auto")
        self.write_module("auto", "def handler(req):\n    req.write('v2 changed')\n    return 0\n")
        st = os.stat(os.path.join(self.dir, "auto.py"))
        os.utime(os.path.join(self.dir, "auto.py"), (st.st_atime, st.st_mtime + 5))
        sys.modules["auto"].__dict__["__mtime_check__"] = 0
        self.run_phase("PythonHandler", "auto", config=[("PythonAutoReload", "0")])
        self.run_phase("PythonHandler", "auto")
        self.assertEqual(self.host.body_written(), b"v1v1v2 changed")

    def test_python_path(self):
        saved = sys.path[:]
        try:
            self.run_phase("PythonHandler", "h", config=[("PythonPath", f"[{self.dir!r}] + sys.path")])
            self.assertEqual(sys.path[0], self.dir)
        finally:
            sys.path[:] = saved

    def test_not_implemented_members(self):
        self.run_phase("PythonHandler", "h")
        req = phases._requests[7]
        for call in (lambda: req.add_output_filter("X"), lambda: apache.register_cleanup(print),
                     apache.config_tree, apache.server_root,
                     lambda: req.server.register_cleanup(req, print)):
            with self.assertRaises(NotImplementedError):
                call()

    def test_apache_log_error_outside_request_goes_to_stderr(self):
        apache.log_error("no request")
        self.assertEqual(self.host.logs, [])


if __name__ == "__main__":
    unittest.main()
