"""mod_python filters in the guest: the filter object over one piece of
data, chains of calls to the end of the stream, errors and PythonDebug,
req.*_filter as host calls."""

import os
import sys
import tempfile
import textwrap
import unittest

from tests import fakehost
from tests.fakehost import FakeHost, FilterCall, Handler

import wasmpy_gateway  # noqa: F401 - installs the exports' dependencies
from mod_python import apache
from wasmpy import filters

FILTERS = '''
def outputfilter(filter):
    s = filter.read()
    while s:
        filter.write(s.upper())
        s = filter.read()
    if s is None:
        filter.close()

def lines(filter):
    line = filter.readline()
    while line:
        filter.write(b"> " + line)
        line = filter.readline()
    if line is None:
        filter.close()

def partial(filter):
    filter.write(filter.read(3))

def passes(filter):
    filter.write("\\u00e9")
    filter.pass_on()

def fails(filter):
    filter.write(b"before ")
    raise ValueError("filter <b>")

def attrs(filter):
    filter.write("%s %s %s %s" % (filter.name, filter.is_input, filter.req.uri,
                                  type(filter.req).__name__))
    filter.close()

def writes_req(filter):
    filter.req.write("nope")

def disables(filter):
    filter.disable()
'''


def call(spec, data, eos=False, name="UPPER", is_input=False, config=(), directory=""):
    return FilterCall(
        handler=Handler(spec=spec, directory=directory, extensions=[], silent=False),
        name=name, is_input=is_input, data=data.decode("latin-1"), eos=eos,
        options=[], config=list(config), interpreter="example.org")


class FilterTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        with open(os.path.join(self.dir, "f.py"), "w") as out:
            out.write(textwrap.dedent(FILTERS))
        sys.modules.pop("f", None)
        self.host = fakehost.use(FakeHost(rid=9, fields={"uri": "/x", "filename": "/app/x"}))

    def run_filter(self, spec, data, **kw):
        return filters.run_filter(9, call(spec, data, directory=self.dir, **kw))

    def test_pieces_then_the_end_of_the_stream(self):
        out, closed, disabled, flush, failure = self.run_filter("f", b"abc")
        self.assertEqual((out, closed, disabled, flush, failure), (b"ABC", False, False, True, None))
        out, closed, *_ = self.run_filter("f", b"", eos=True)
        self.assertEqual((out, closed), (b"", True))
        out, closed, *_ = self.run_filter("f", b"last", eos=True)
        self.assertEqual((out, closed), (b"LAST", True))

    def test_readline_and_partial_reads(self):
        out, closed, *_ = self.run_filter("f::lines", b"one\ntwo\nthree", eos=True)
        self.assertEqual((out, closed), (b"> one\n> two\n> three", True))
        out, closed, *_ = self.run_filter("f::partial", b"abcdef")
        # What the filter did not read is dropped, as in mod_python.
        self.assertEqual((out, closed), (b"abc", False))

    def test_pass_on_and_str_as_utf8(self):
        out, *_ = self.run_filter("f::passes", b"xyz")
        self.assertEqual(out, "\u00e9".encode() + b"xyz")

    def test_an_exception_disables_the_filter_and_passes_the_data(self):
        out, closed, disabled, _flush, failure = self.run_filter("f::fails", b"data")
        self.assertEqual((closed, disabled, failure), (False, True, "exception"))
        self.assertEqual(out, b"before data")
        out, *_ = self.run_filter("f::fails", b"data", config=[("PythonDebug", "1")])
        self.assertIn(b"ValueError: filter &lt;b&gt;", out)
        self.assertTrue(out.endswith(b"data"))

    def test_missing_module_or_object(self):
        *_, disabled, _flush, failure = self.run_filter("nosuchmodule", b"x")
        self.assertEqual((disabled, failure), (True, "import-failed"))
        *_, disabled, _flush, failure = self.run_filter("f::nothere", b"x")
        self.assertEqual((disabled, failure), (True, "exception"))

    def test_filter_attributes_and_the_request(self):
        out, closed, *_ = self.run_filter("f::attrs", b"", name="ATTRS", is_input=True)
        self.assertEqual((out, closed), (b"ATTRS True /x Request", True))

    def test_disable(self):
        out, closed, disabled, *_ = self.run_filter("f::disables", b"unchanged")
        self.assertEqual((out, disabled), (b"unchanged", True))

    def test_req_filter_calls_go_to_the_host(self):
        self.host.ops["add_output_filter"] = lambda name: []
        self.host.ops["register_output_filter"] = lambda name, spec, d: []
        self.host.ops["add_input_filter"] = lambda name: []
        self.host.ops["register_input_filter"] = lambda name, spec, d: []
        from wasmpy import phases
        req = phases._request_for(9)
        req.register_output_filter("MINE", "f::outputfilter", "/app")
        req.add_output_filter("MINE")
        req.register_input_filter("IN", "f::lines")
        req.add_input_filter("IN")
        self.assertEqual(self.host.calls[-4:], [
            ("register_output_filter", ["MINE", "f::outputfilter", "/app"]),
            ("add_output_filter", ["MINE"]),
            ("register_input_filter", ["IN", "f::lines", ""]),
            ("add_input_filter", ["IN"]),
        ])
        with self.assertRaises(TypeError):
            req.add_output_filter(b"bytes")

    def test_the_export_returns_latin1_text(self):
        world = wasmpy_gateway.WitWorld()
        result = world.run_filter(9, call("f::passes", b"\xff", directory=self.dir))
        self.assertEqual(result.output.encode("latin-1"), "\u00e9".encode() + b"\xff")
        self.assertIsNone(result.failure)

    def test_closed_filter_refuses_io(self):
        fltr = filters.Filter(None, call("f", b"abc"))
        fltr.close()
        with self.assertRaises(ValueError):
            fltr.write(b"x")
        with self.assertRaises(AttributeError):
            fltr.name = "other"


if __name__ == "__main__":
    unittest.main()
