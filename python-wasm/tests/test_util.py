"""mod_python.util: FieldStorage (query strings, urlencoded and multipart
bodies, uploads, callbacks, limits, hostile input), parse_qs(l),
parse_header, redirect and apply_fs_data."""

import hashlib
import io
import os
import shutil
import tempfile
import tracemalloc
import unittest
from unittest import mock

from tests import fakehost
from tests.fakehost import FakeHost, TableKind

import wasmpy.state
from mod_python import apache, util
from wasmpy.request import Request

BOUNDARY = "----wasmpyBoundary7MA4YWxkTrZu0gW"


class StreamingHost(FakeHost):
    """A FakeHost that serves the body from an offset (no copy of the rest
    at every read), so that memory measurements see only the guest's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pos = 0

    def read(self, rid, size):
        self._check(rid)
        self.read_sizes.append(size)
        consumed = self.fields.get("read_length", 0)
        if self.max_body is not None and consumed >= self.max_body and self.pos < len(self.body):
            fakehost._fail(fakehost.ErrorKind.TOO_LARGE, "request body over max_body")
        data = self.body[self.pos:self.pos + size]
        self.pos += len(data)
        self.fields["read_length"] = consumed + len(data)
        return data


def part(name, data, filename=None, ctype=None, extra=()):
    disp = f'form-data; name="{name}"'
    if filename is not None:
        disp += f'; filename="{filename}"'
    lines = [f"Content-Disposition: {disp}"]
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    lines.extend(extra)
    if isinstance(data, str):
        data = data.encode("utf-8")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + data


def multipart(*parts, boundary=BOUNDARY, close=True):
    b = boundary.encode()
    out = b""
    for p in parts:
        out += b"--" + b + b"\r\n" + p + b"\r\n"
    if close:
        out += b"--" + b + b"--\r\n"
    return out


class UtilTest(unittest.TestCase):
    rid = 41

    def setUp(self):
        self.state_dir = tempfile.mkdtemp(prefix="wasmpy-util-state-")
        self.saved_state = wasmpy.state.DIRECTORY
        wasmpy.state.DIRECTORY = self.state_dir

    def tearDown(self):
        wasmpy.state.DIRECTORY = self.saved_state
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def request(self, method="GET", args=None, body=b"", headers=None, ctype=None,
                length=True, options=(), max_body=None, fields=None, host_class=StreamingHost):
        hdrs = list(headers or [])
        if ctype is not None:
            hdrs.append(("Content-Type", ctype))
        if length is True and method == "POST":
            hdrs.append(("Content-Length", str(len(body))))
        elif isinstance(length, str):
            hdrs.append(("Content-Length", length))
        f = {"method": method, "args": args, "uri": "/form", "status": 200}
        f.update(fields or {})
        self.rid += 1
        self.host = fakehost.use(host_class(rid=self.rid, fields=f, body=body,
                                            tables={TableKind.HEADERS_IN: hdrs},
                                            max_body=max_body))
        req = Request(self.rid)
        req.__dict__["_wp_options"] = tuple(options)
        return req

    def post_multipart(self, *parts, boundary=BOUNDARY, close=True, **kw):
        body = multipart(*parts, boundary=boundary, close=close)
        return self.request("POST", body=body,
                            ctype=f"multipart/form-data; boundary={boundary}", **kw)

    def assertStatus(self, status, func, *args, **kwargs):
        with self.assertRaises(apache.SERVER_RETURN) as cm:
            func(*args, **kwargs)
        self.assertEqual(cm.exception.args[0], status)

    def tmp_listing(self):
        path = os.path.join(self.state_dir, "tmp")
        return os.listdir(path) if os.path.isdir(path) else []


class QueryStringTest(UtilTest):
    def test_query_string_mapping(self):
        req = self.request(args="a=1&b=two+words&a=3;c=%C3%A9t%C3%A9&d=&e&=x")
        fs = util.FieldStorage(req)
        self.assertEqual(fs.keys(), ["a", "b", "c", ""])
        self.assertEqual(fs["a"], ["1", "3"])
        self.assertEqual(fs["b"], "two words")
        self.assertIsInstance(fs["b"], util.StringField)
        self.assertIsInstance(fs["b"], str)
        self.assertEqual(fs["b"].value, "two words")
        self.assertEqual(fs["b"].name, "b")
        self.assertEqual(fs["b"].file.read(), b"two words")
        self.assertIsNone(fs["b"].filename)
        self.assertEqual(fs["c"], "été")
        self.assertEqual(fs.getfirst("a"), "1")
        self.assertEqual(fs.getfirst("zz", "dflt"), "dflt")
        self.assertIsNone(fs.getfirst("zz"))
        self.assertEqual(fs.getlist("a"), ["1", "3"])
        self.assertEqual(fs.getlist("b"), ["two words"])
        self.assertEqual(fs.getlist("zz"), [])
        self.assertTrue(fs.has_key("a"))
        self.assertIn("c", fs)
        self.assertNotIn("d", fs)  # blank values dropped by default
        self.assertFalse(fs.has_key("zz"))
        self.assertEqual(len(fs), 4)
        self.assertEqual(fs.get("zz", 5), 5)
        self.assertIsNone(fs.get("zz"))
        self.assertEqual(fs.get("b", None), "two words")
        with self.assertRaises(KeyError):
            fs["zz"]
        self.assertEqual([(k, str(v)) for k, v in fs.items()],
                         [("a", "1"), ("b", "two words"), ("a", "3"), ("c", "été"), ("", "x")])
        self.assertEqual(list(fs), fs.keys())
        self.assertEqual(len(fs.list), 5)
        self.assertEqual(repr(fs["b"]), "Field('b', 'two words')")

    def test_keep_blank_values(self):
        fs = util.FieldStorage(self.request(args="d=&e&f=1"), keep_blank_values=1)
        self.assertEqual(fs["d"], "")
        self.assertEqual(fs["e"], "")
        self.assertEqual(fs["f"], "1")

    def test_strict_parsing_is_accepted(self):
        fs = util.FieldStorage(self.request(args="x&a=1"), strict_parsing=1)
        self.assertEqual(fs.keys(), ["a"])

    def test_get_and_put_bodies_are_not_read(self):
        for method in ("GET", "PUT", "DELETE"):
            req = self.request(method, args="q=1", body=b"a=2", ctype="text/plain", length=False)
            fs = util.FieldStorage(req)
            self.assertEqual(fs.keys(), ["q"])
            self.assertEqual(self.host.read_sizes, [])

    def test_invalid_utf8_becomes_replacement(self):
        fs = util.FieldStorage(self.request(args="n=%FF%41"))
        self.assertEqual(fs["n"], "\ufffdA")

    def test_mutation(self):
        fs = util.FieldStorage(self.request(args="a=1&a=2&b=3"))
        fs.add_field("a", "4")
        self.assertEqual(fs.getlist("a"), ["1", "2", "4"])
        fs["a"] = "only"
        self.assertEqual(fs["a"], "only")
        self.assertEqual(fs.keys(), ["b", "a"])
        del fs["b"]
        self.assertNotIn("b", fs)
        with self.assertRaises(KeyError):
            del fs["b"]
        # The list attribute may be changed directly: the index follows.
        extra = util.StringField("v")
        extra.name = "direct"
        fs.list.append(extra)
        self.assertEqual(fs["direct"], "v")
        fs.list.remove(extra)
        self.assertNotIn("direct", fs)
        fs.clear()
        self.assertEqual((len(fs), fs.keys()), (0, []))


class UrlencodedTest(UtilTest):
    def test_urlencoded_body_and_query(self):
        req = self.request("POST", args="q=1", body=b"name=J%C3%BCrgen+X&tags=a&tags=b;empty=",
                           ctype="application/x-www-form-urlencoded; charset=UTF-8")
        fs = util.FieldStorage(req)
        self.assertEqual(fs.keys(), ["q", "name", "tags"])
        self.assertEqual(fs["name"], "Jürgen X")
        self.assertIsInstance(fs["name"].value, str)
        self.assertEqual(fs["tags"], ["a", "b"])

    def test_no_content_type_is_urlencoded(self):
        fs = util.FieldStorage(self.request("POST", body=b"a=1&b=2"))
        self.assertEqual((fs["a"], fs["b"]), ("1", "2"))

    def test_uppercase_content_type(self):
        fs = util.FieldStorage(self.request("POST", body=b"a=1",
                                            ctype="Application/X-WWW-Form-Urlencoded"))
        self.assertEqual(fs["a"], "1")

    def test_large_body_in_chunks(self):
        pairs = [(f"k{i}", f"{i:06d}" * 30) for i in range(900)]
        body = "&".join(f"{k}={v}" for k, v in pairs).encode()
        self.assertGreater(len(body), 2 * util.CHUNK)
        fs = util.FieldStorage(self.request("POST", body=body))
        self.assertEqual([(k, str(v)) for k, v in fs.items()], pairs)
        self.assertTrue(all(size <= util.CHUNK for size in self.host.read_sizes))
        self.assertGreater(len(self.host.read_sizes), 2)

    def test_reads_no_more_than_content_length(self):
        req = self.request("POST", body=b"a=1&b=2EXTRA", length="7")
        fs = util.FieldStorage(req)
        self.assertEqual((fs["a"], fs["b"]), ("1", "2"))

    def test_411_without_content_length(self):
        req = self.request("POST", body=b"a=1", length=False)
        self.assertStatus(apache.HTTP_LENGTH_REQUIRED, util.FieldStorage, req)
        req = self.request("POST", body=b"a=1", length=False,
                           headers=[("Transfer-Encoding", "chunked")])
        self.assertStatus(apache.HTTP_LENGTH_REQUIRED, util.FieldStorage, req)
        req = self.request("POST", body=b"a=1", length="abc")
        self.assertStatus(apache.HTTP_LENGTH_REQUIRED, util.FieldStorage, req)
        # 411 comes before the look at the content type, as in mod_python.
        req = self.request("POST", body=b"a=1", length=False, ctype="text/plain")
        self.assertStatus(apache.HTTP_LENGTH_REQUIRED, util.FieldStorage, req)

    def test_501_for_other_content_types(self):
        for ctype in ("text/plain", "application/json", ""):
            req = self.request("POST", body=b"{}", ctype=ctype)
            self.assertStatus(apache.HTTP_NOT_IMPLEMENTED, util.FieldStorage, req)

    def test_max_fields(self):
        opts = [("mod_python.util.max_fields", "3")]
        fs = util.FieldStorage(self.request("POST", args="a=1", body=b"b=2&c=3", options=opts))
        self.assertEqual(len(fs.list), 3)
        req = self.request("POST", args="a=1", body=b"b=2&c=3&d=4", options=opts)
        self.assertStatus(apache.HTTP_REQUEST_ENTITY_TOO_LARGE, util.FieldStorage, req)
        req = self.request(args="a=1&b=1&c=1&d=1", options=opts)
        self.assertStatus(apache.HTTP_REQUEST_ENTITY_TOO_LARGE, util.FieldStorage, req)

    def test_default_max_fields(self):
        body = "&".join(f"f{i}=1" for i in range(util.DEFAULT_MAX_FIELDS + 1)).encode()
        self.assertStatus(apache.HTTP_REQUEST_ENTITY_TOO_LARGE, util.FieldStorage,
                          self.request("POST", body=body))

    def test_max_form_bytes(self):
        opts = [("mod_python.util.max_form_bytes", "1k")]
        fs = util.FieldStorage(self.request("POST", body=b"a=" + b"x" * 1000, options=opts))
        self.assertEqual(len(fs["a"]), 1000)
        req = self.request("POST", body=b"a=" + b"x" * 1100, options=opts)
        self.assertStatus(apache.HTTP_REQUEST_ENTITY_TOO_LARGE, util.FieldStorage, req)
        # One pair spanning many chunks is bounded while it is read.
        opts = [("mod_python.util.max_form_bytes", "100K")]
        req = self.request("POST", body=b"a=" + b"x" * (1 << 20), options=opts)
        self.assertStatus(apache.HTTP_REQUEST_ENTITY_TOO_LARGE, util.FieldStorage, req)
        self.assertLess(len(self.host.read_sizes), 5)

    def test_bad_option_value(self):
        req = self.request(args="a=1", options=[("mod_python.util.max_fields", "lots")])
        with self.assertRaises(ValueError):
            util.FieldStorage(req)

    def test_host_max_body_is_413(self):
        req = self.request("POST", body=b"a=" + b"x" * 300000, max_body=100000)
        self.assertStatus(apache.HTTP_REQUEST_ENTITY_TOO_LARGE, util.FieldStorage, req)


class MultipartTest(UtilTest):
    def test_text_fields_and_binary_upload(self):
        blob = os.urandom(1024 * 1024 + 17)
        # Content that looks like delimiters, without being one.
        blob = blob[:1000] + b"\r\n--" + BOUNDARY.encode() + b"X\r\n" + blob[1000:]
        digest = hashlib.sha256(blob).hexdigest()
        req = self.post_multipart(
            part("title", "Grüße\r\nline two"),
            part("upload", blob, filename="C:\\Users\\me\\..\\evil/../../photo.bin",
                 ctype="application/octet-stream"),
            part("title", "second"),
            part("empty", ""),
            args="from=query",
        )
        created = []
        real = tempfile.TemporaryFile

        def recording(*args, **kwargs):
            f = real(*args, **kwargs)
            created.append((kwargs.get("dir"), f))
            return f

        tracing = tracemalloc.is_tracing()
        if not tracing:
            tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            with mock.patch.object(util.tempfile, "TemporaryFile", recording):
                fs = util.FieldStorage(req)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            if not tracing:
                tracemalloc.stop()
        # Streamed: never the whole body in memory, reads of at most 64 KiB.
        self.assertLess(peak, 600 * 1024)
        self.assertTrue(all(size <= 64 * 1024 for size in self.host.read_sizes))

        self.assertEqual(fs.keys(), ["from", "title", "upload", "empty"])
        self.assertEqual(fs["title"], ["Grüße\r\nline two", "second"])
        first = fs.getfirst("title")
        self.assertIsInstance(first, util.StringField)
        self.assertEqual(first.value, "Grüße\r\nline two")
        self.assertEqual(first.file.read(), "Grüße\r\nline two".encode())
        self.assertEqual(first.type, "text/plain")
        self.assertEqual(first.disposition, "form-data")
        self.assertEqual(first.disposition_options, {"name": "title"})
        self.assertEqual(fs["empty"], "")

        up = fs["upload"]
        self.assertIsInstance(up, util.Field)
        self.assertEqual(up.name, "upload")
        self.assertEqual(up.filename, "C:\\Users\\me\\..\\evil/../../photo.bin")
        self.assertEqual(up.type, "application/octet-stream")
        self.assertEqual(up.type_options, {})
        self.assertEqual(up.disposition, "form-data")
        self.assertEqual(up.disposition_options["filename"], up.filename)
        self.assertEqual(up.headers["content-type"], "application/octet-stream")
        self.assertIn('filename="C:', up.headers["Content-Disposition"])
        self.assertEqual(hashlib.sha256(up.file.read()).hexdigest(), digest)
        self.assertEqual(hashlib.sha256(up.value).hexdigest(), digest)
        self.assertEqual(up.file.tell(), 0)

        # The temporary file is in the tenant's state directory, unlinked:
        # the client's file name is never a path.
        self.assertEqual(len(created), 1)
        self.assertEqual(created[0][0], os.path.join(self.state_dir, "tmp"))
        self.assertEqual(self.tmp_listing(), [])
        self.assertFalse(any("photo" in name for name in os.listdir(self.state_dir)))

    def test_file_callback_and_field_callback(self):
        files, fields = [], []

        def file_cb(filename):
            f = io.BytesIO()
            files.append((filename, f))
            return f

        def field_cb():
            f = io.BytesIO()
            fields.append(f)
            return f

        req = self.post_multipart(part("a", "1"), part("f", b"\x00\x01data", filename="x.txt",
                                                         ctype="text/plain; charset=utf-8"))
        with mock.patch.object(util.tempfile, "TemporaryFile", side_effect=AssertionError):
            fs = util.FieldStorage(req, file_callback=file_cb, field_callback=field_cb)
        self.assertEqual([name for name, _ in files], ["x.txt"])
        self.assertIs(fs["f"].file, files[0][1])
        self.assertEqual(fs["f"].value, b"\x00\x01data")
        self.assertEqual(fs["f"].type, "text/plain")
        self.assertEqual(fs["f"].type_options, {"charset": "utf-8"})
        self.assertEqual(len(fields), 1)
        self.assertIs(fs["a"].file, fields[0])
        self.assertEqual(fs["a"], "1")

    def test_upload_cap(self):
        opts = [("mod_python.util.max_upload_bytes", "10000")]
        created = []
        real = tempfile.TemporaryFile

        def recording(*args, **kwargs):
            f = real(*args, **kwargs)
            created.append(f)
            return f

        req = self.post_multipart(part("a", "small"), part("f1", b"x" * 6000, filename="1"),
                                  part("f2", b"y" * 6000, filename="2"), options=opts)
        with mock.patch.object(util.tempfile, "TemporaryFile", recording):
            self.assertStatus(apache.HTTP_REQUEST_ENTITY_TOO_LARGE, util.FieldStorage, req)
        self.assertEqual(len(created), 2)
        self.assertTrue(all(f.closed for f in created))
        self.assertEqual(self.tmp_listing(), [])

        # Under the cap, the sum of the files is what counts.
        req = self.post_multipart(part("f1", b"x" * 5000, filename="1"),
                                  part("f2", b"y" * 5000, filename="2"), options=opts)
        fs = util.FieldStorage(req)
        self.assertEqual((len(fs["f1"].value), len(fs["f2"].value)), (5000, 5000))

        # Files from file_callback count too, and are closed.
        given = []

        def file_cb(name):
            given.append(io.BytesIO())
            return given[-1]

        req = self.post_multipart(part("f", b"z" * 20000, filename="big"), options=opts)
        self.assertStatus(apache.HTTP_REQUEST_ENTITY_TOO_LARGE, util.FieldStorage, req,
                          file_callback=file_cb)
        self.assertTrue(given[0].closed)

    def test_text_parts_count_against_form_bytes(self):
        opts = [("mod_python.util.max_form_bytes", "2000")]
        req = self.post_multipart(part("t", "x" * 5000), options=opts)
        self.assertStatus(apache.HTTP_REQUEST_ENTITY_TOO_LARGE, util.FieldStorage, req)
        # File parts do not.
        req = self.post_multipart(part("f", b"x" * 5000, filename="f"), options=opts)
        self.assertEqual(len(util.FieldStorage(req)["f"].value), 5000)

    def test_max_body_during_upload(self):
        req = self.post_multipart(part("f", b"x" * 300000, filename="f"), max_body=100000)
        self.assertStatus(apache.HTTP_REQUEST_ENTITY_TOO_LARGE, util.FieldStorage, req)
        self.assertEqual(self.tmp_listing(), [])

    def test_delimiter_across_chunk_edges(self):
        b = BOUNDARY.encode()
        for size in range(util.CHUNK - 2 * len(b) - 160, util.CHUNK - 90, 7):
            head = b"--" + b + b'\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\n'
            data = (b"\r\n" * 40 + b"ab\r-" * 40)[: max(0, size - len(head))]
            data = data + b"\r" * 3
            body = (head + data + b"\r\n--" + b
                    + b'\r\nContent-Disposition: form-data; name="g"\r\n\r\nG'
                    + b"\r\n--" + b + b"--\r\n")
            req = self.request("POST", body=body, ctype=f"multipart/form-data; boundary={BOUNDARY}")
            fs = util.FieldStorage(req)
            self.assertEqual(fs["f"].value, data, size)
            self.assertEqual(fs["g"], "G")

    def test_quoted_boundary_and_bare_lf(self):
        body = (b"preamble\n--qq\nContent-Disposition: form-data; name=\"a\"\n\none\ntwo\n"
                b"--qq  \nContent-Disposition: form-data; name=\"b\"\n\nB\n--qq--\nepilogue")
        req = self.request("POST", body=body, ctype='multipart/form-data; boundary="qq"')
        fs = util.FieldStorage(req)
        self.assertEqual(fs["a"], "one\ntwo")
        self.assertEqual(fs["b"], "B")

    def test_missing_boundary_parameter(self):
        req = self.request("POST", body=b"--x\r\n", ctype="multipart/form-data")
        self.assertStatus(apache.HTTP_BAD_REQUEST, util.FieldStorage, req)
        req = self.request("POST", body=b"--x\r\n", ctype="multipart/form-data; boundary=")
        self.assertStatus(apache.HTTP_BAD_REQUEST, util.FieldStorage, req)
        long = "b" * (util.MAX_BOUNDARY + 1)
        req = self.request("POST", body=b"--x\r\n", ctype=f"multipart/form-data; boundary={long}")
        self.assertStatus(apache.HTTP_BAD_REQUEST, util.FieldStorage, req)

    def test_boundary_absent_from_body(self):
        req = self.request("POST", body=b"x" * 200000 + b"\r\n--other\r\n",
                           ctype=f"multipart/form-data; boundary={BOUNDARY}", args="q=1")
        fs = util.FieldStorage(req)
        self.assertEqual(fs.keys(), ["q"])

    def test_missing_final_boundary_keeps_the_data(self):
        req = self.post_multipart(part("a", "1"), part("f", b"partial data", filename="f"),
                                  close=False)
        # multipart() ends the last part with CRLF: mod_python keeps it too.
        fs = util.FieldStorage(req)
        self.assertEqual(fs["a"], "1")
        self.assertEqual(fs["f"].value, b"partial data\r\n")
        body = multipart(part("a", "1"), close=False)[:-2] + b"\r\n--" + BOUNDARY.encode()
        req = self.request("POST", body=body, ctype=f"multipart/form-data; boundary={BOUNDARY}")
        self.assertEqual(util.FieldStorage(req)["a"], "1")

    def test_huge_header_line_is_400(self):
        req = self.post_multipart(part("a", "1", extra=["X-Junk: " + "j" * 100000]))
        self.assertStatus(apache.HTTP_BAD_REQUEST, util.FieldStorage, req)
        # A header line with no end at all.
        body = b"--" + BOUNDARY.encode() + b"\r\n" + b"h" * 300000
        req = self.request("POST", body=body, ctype=f"multipart/form-data; boundary={BOUNDARY}")
        self.assertStatus(apache.HTTP_BAD_REQUEST, util.FieldStorage, req)
        self.assertLess(len(self.host.read_sizes), 4)

    def test_too_many_part_headers_is_400(self):
        extra = [f"X-H{i}: v" for i in range(util.MAX_PART_HEADERS)]
        req = self.post_multipart(part("a", "1", extra=extra))
        self.assertStatus(apache.HTTP_BAD_REQUEST, util.FieldStorage, req)

    def test_folded_header_and_junk_lines(self):
        p = (b'Content-Disposition: form-data;\r\n\tname="folded"\r\nnot a header\r\n'
             b"Content-Type: weird\r\n\r\nV")
        fs = util.FieldStorage(self.post_multipart(p))
        self.assertEqual(fs["folded"], "V")
        self.assertEqual(fs["folded"].type, "application/octet-stream")

    def test_malformed_parts_are_skipped(self):
        b = BOUNDARY.encode()
        body = (b"--" + b + b"\r\nContent-Disposition: form-data; name=\"nohdrend\"\r\n"
                b"--" + b + b"\r\n" + part("ok", "1") + b"\r\n"
                b"--" + b + b"\r\nContent-Type: text/plain\r\n\r\nno name\r\n"
                b"--" + b + b"\r\n\r\nno headers at all\r\n"
                b"--" + b + b"\r\n" + part("ok2", "2") + b"\r\n--" + b + b"--\r\n")
        req = self.request("POST", body=body, ctype=f"multipart/form-data; boundary={BOUNDARY}")
        fs = util.FieldStorage(req)
        self.assertEqual(fs.keys(), ["ok", "ok2"])
        self.assertEqual((fs["ok"], fs["ok2"]), ("1", "2"))

    def test_empty_filename_is_a_string_field(self):
        fs = util.FieldStorage(self.post_multipart(part("f", b"", filename="")))
        self.assertIsInstance(fs["f"], util.StringField)
        self.assertEqual(fs["f"], "")
        self.assertIsNone(fs["f"].filename)

    def test_many_parts_bounded(self):
        parts = [part(f"p{i}", "v") for i in range(50)]
        req = self.post_multipart(*parts, options=[("mod_python.util.max_fields", "20")])
        self.assertStatus(apache.HTTP_REQUEST_ENTITY_TOO_LARGE, util.FieldStorage, req)
        # Parts that are skipped (no name) count as well.
        nameless = [b"Content-Type: text/plain\r\n\r\nv"] * 50
        req = self.post_multipart(*nameless, options=[("mod_python.util.max_fields", "20")])
        self.assertStatus(apache.HTTP_REQUEST_ENTITY_TOO_LARGE, util.FieldStorage, req)

    def test_names_and_filenames_decoding(self):
        p = ('Content-Disposition: form-data; name="naïve"; filename="résumé; v2.pdf"\r\n'
             "Content-Type: application/pdf\r\n\r\n").encode("utf-8") + b"%PDF"
        p2 = b'Content-Disposition: form-data; name="l1"; filename="caf\xe9.txt"\r\n\r\nx'
        p3 = ("Content-Disposition: form-data; name=\"t\"\r\n"
              "Content-Type: text/plain; charset=iso-8859-1\r\n\r\n").encode() + b"caf\xe9"
        p4 = (b"Content-Disposition: form-data; name=\"u\"; filename=\"fallback\"; "
              b"filename*=UTF-8''%E2%82%AC.txt\r\n\r\ny")
        fs = util.FieldStorage(self.post_multipart(p, p2, p3, p4))
        self.assertEqual(fs["naïve"].filename, "résumé; v2.pdf")
        self.assertEqual(fs["naïve"].value, b"%PDF")
        self.assertEqual(fs["l1"].filename, "café.txt")
        self.assertEqual(fs["t"], "café")
        self.assertEqual(fs["u"].filename, "€.txt")

    def test_multipart_mixed_type_accepted(self):
        req = self.post_multipart(part("a", "1"))
        self.host.tables[TableKind.HEADERS_IN] = [
            ("Content-Type", f"Multipart/Mixed; boundary={BOUNDARY}"),
            ("Content-Length", str(len(self.host.body)))]
        self.assertEqual(util.FieldStorage(req)["a"], "1")

    def test_in_a_handler(self):
        from wasmpy import phases
        from tests.fakehost import Handler, PhaseCall
        import sys
        import textwrap

        d = tempfile.mkdtemp()
        with open(os.path.join(d, "formh.py"), "w") as f:
            f.write(textwrap.dedent("""
                from mod_python import apache, util
                def handler(req):
                    fs = util.FieldStorage(req)
                    req.write(",".join(fs.keys()))
                    return apache.OK
            """))
        sys.modules.pop("formh", None)
        try:
            self.request("POST", body=b"a=1", length=False)
            call = PhaseCall("PythonHandler", [Handler("formh", d, [], False)], [], [], [], "x")
            res = phases.run_phase(self.rid, call)
            self.assertEqual(res, (apache.HTTP_LENGTH_REQUIRED, None))
            self.request("POST", body=b"a=1&b=2")
            res = phases.run_phase(self.rid, call)
            self.assertEqual(res, (apache.OK, None))
            self.assertEqual(self.host.body_written(), b"a,b")
        finally:
            for rid in list(phases._requests):
                phases.end_request(rid)
            if d in sys.path:
                sys.path.remove(d)
            shutil.rmtree(d, ignore_errors=True)


class FieldClassTest(unittest.TestCase):
    def test_backward_compatible_field(self):
        f = util.Field("n", io.BytesIO(b"data"), "text/plain", {}, "form-data",
                       {"name": "n", "filename": "a.txt"})
        self.assertEqual((f.filename, f.value, f.type), ("a.txt", b"data", "text/plain"))
        self.assertIsNone(util.Field("m").value)
        with self.assertRaises(AttributeError):
            util.Field("m").nothing

    def test_string_field(self):
        s = util.StringField(b"caf\xc3\xa9")
        self.assertEqual(s, "café")
        self.assertEqual(s.value, "café")
        self.assertEqual(s.file.read(), "café".encode())


class ParseTest(unittest.TestCase):
    def test_parse_qsl(self):
        self.assertEqual(util.parse_qsl("a=1&b=2;c=x+y&d=&e&a=%41%zz"),
                         [("a", "1"), ("b", "2"), ("c", "x y"), ("a", "A%zz")])
        self.assertEqual(util.parse_qsl("d=&e", keep_blank_values=1), [("d", ""), ("e", "")])
        self.assertEqual(util.parse_qsl(b"a=%C3%A9&b=1"), [(b"a", b"\xc3\xa9"), (b"b", b"1")])
        self.assertEqual(util.parse_qsl("a=%C3%A9"), [("a", "é")])
        self.assertEqual(util.parse_qsl("k=v=w&&=x"), [("k", "v=w"), ("", "x")])
        self.assertEqual(util.parse_qsl("a=x%00y"), [("a", "x")])
        self.assertEqual(util.parse_qsl("a=%FF"), [("a", "\ufffd")])
        self.assertEqual(util.parse_qsl("a=b", 0, 1), [("a", "b")])
        self.assertEqual(util.parse_qsl(""), [])
        with self.assertRaises(TypeError):
            util.parse_qsl(5)

    def test_parse_qs(self):
        self.assertEqual(util.parse_qs("a=1&b=2&a=3"), {"a": ["1", "3"], "b": ["2"]})
        self.assertEqual(util.parse_qs("a=&b", 1), {"a": [""], "b": [""]})
        self.assertEqual(util.parse_qs(b"a=1"), {b"a": [b"1"]})

    def test_parse_header(self):
        self.assertEqual(util.parse_header('Form-Data; Name="a;b"; filename="C:\\x\\y.txt"'),
                         ("form-data", {"name": "a;b", "filename": "C:\\x\\y.txt"}))
        self.assertEqual(util.parse_header(b"text/html; charset=UTF-8"),
                         ("text/html", {"charset": "UTF-8"}))


class RedirectTest(UtilTest):
    def test_temporary(self):
        req = self.request()
        with self.assertRaises(apache.SERVER_RETURN) as cm:
            util.redirect(req, "/new?a=1&b=<2>")
        self.assertEqual(cm.exception.args, (apache.DONE,))
        self.assertEqual(self.host.tables[TableKind.ERR_HEADERS_OUT],
                         [("Location", "/new?a=1&b=<2>")])
        self.assertIn(("status", fakehost.FieldValue_Int(302)), self.host.set_fields)
        self.assertEqual(
            self.host.body_written(),
            b'<p>The document has moved <a href="/new?a=1&amp;b=&lt;2&gt;">here</a></p>\n')

    def test_permanent_with_text(self):
        req = self.request()
        self.assertStatus(apache.DONE, util.redirect, req, "http://example.org/", permanent=1,
                          text="moved")
        self.assertIn(("status", fakehost.FieldValue_Int(301)), self.host.set_fields)
        self.assertEqual(self.host.body_written(), b"moved")

    def test_after_output(self):
        req = self.request(fields={"bytes_sent": 0})
        req.write("already")
        self.host.fields["bytes_sent"] = 7  # what Apache counts after a flushed write
        with self.assertRaises(IOError):
            util.redirect(req, "/x")
        self.assertEqual(self.host.tables[TableKind.ERR_HEADERS_OUT], [])
        req = self.request(fields={"sent_bodyct": 1})
        with self.assertRaises(IOError):
            util.redirect(req, "/x")

    def test_location_type(self):
        with self.assertRaises(TypeError):
            util.redirect(self.request(), b"/x")

    def test_in_a_phase(self):
        # SERVER_RETURN(DONE) ends the phase with DONE, the status set to 302.
        import sys
        import textwrap

        from tests.fakehost import Handler, PhaseCall
        from wasmpy import phases

        d = tempfile.mkdtemp()
        with open(os.path.join(d, "redirh.py"), "w") as f:
            f.write(textwrap.dedent("""
                from mod_python import apache, util
                def handler(req):
                    util.redirect(req, "/elsewhere")
                    req.write("not reached")
                    return apache.OK
            """))
        sys.modules.pop("redirh", None)
        try:
            self.request()
            call = PhaseCall("PythonHandler", [Handler("redirh", d, [], False)], [], [], [], "x")
            self.assertEqual(phases.run_phase(self.rid, call), (apache.DONE, None))
            self.assertEqual(self.host.fields["status"], 302)
            self.assertNotIn(b"not reached", self.host.body_written())
        finally:
            for rid in list(phases._requests):
                phases.end_request(rid)
            if d in sys.path:
                sys.path.remove(d)
            shutil.rmtree(d, ignore_errors=True)


class ApplyFsDataTest(UtilTest):
    def form(self, query="a=1&b=2&b=3&extra=9"):
        return util.FieldStorage(self.request(args=query))

    def test_function(self):
        def f(a, b, c="dflt"):
            return (a, b, c)

        self.assertEqual(util.apply_fs_data(f, self.form()), ("1", ["2", "3"], "dflt"))

    def test_req_and_kwargs(self):
        def f(req, a, **rest):
            return req, a, rest

        req, a, rest = util.apply_fs_data(f, self.form(), req="REQ")
        self.assertEqual((req, a, rest), ("REQ", "1", {"b": ["2", "3"], "extra": "9"}))

        def g(a):
            return a

        self.assertEqual(util.apply_fs_data(g, self.form(), req="REQ"), "1")

    def test_explicit_args_win_over_fields(self):
        def f(req):
            return req

        self.assertEqual(util.apply_fs_data(f, self.form("req=forged"), req="REQ"), "REQ")

    def test_methods_classes_callables(self):
        class Page:
            def __init__(self, a, zz=None):
                self.args = (a, zz)

            def show(self, b):
                return b

            def __call__(self, extra):
                return extra

        class Plain:
            pass

        self.assertEqual(util.apply_fs_data(Page, self.form()).args, ("1", None))
        page = Page("x")
        self.assertEqual(util.apply_fs_data(page.show, self.form()), ["2", "3"])
        self.assertEqual(util.apply_fs_data(page, self.form()), "9")
        self.assertIsInstance(util.apply_fs_data(Plain, self.form()), Plain)
        self.assertEqual(util.apply_fs_data(dict, self.form()), {})  # builtins get nothing
        self.assertEqual(util.apply_fs_data(lambda *, a: a, self.form()), "1")

    def test_file_field_passed_as_field(self):
        req = self.post_multipart(part("doc", b"bytes", filename="d.txt"), part("t", "text"))
        fs = util.FieldStorage(req)

        def f(doc, t):
            return doc, t

        doc, t = util.apply_fs_data(f, fs)
        self.assertIsInstance(doc, util.Field)
        self.assertEqual((doc.value, t), (b"bytes", "text"))
        self.assertIs(type(t), str)


if __name__ == "__main__":
    unittest.main()
