"""mod_python.psp: the PSP language (against mod_python 3.5's generated code),
includes, comments, blocks, escapes, lazy form/session, error pages, the PSP
class, display_code, the handler, the memory and disk caches, hostile pages."""

import importlib.util
import os
import random
import shutil
import sys
import tempfile
import time
import types
import unittest
import warnings

from tests import fakehost
from tests.fakehost import FakeHost, Handler, PhaseCall

import wasmpy.state
import wasmpy_gateway
from mod_python import _psp_parser, apache, psp
from mod_python._psp_parser import PSPSyntaxError
from wasmpy import phases
from wasmpy.request import Request

# (page, the code mod_python 3.5's _psp.parsestring gives for it)
GOLDEN = [
    ("", ""),
    ("a", 'req.write("""a""",0)\n'),
    ("<% x=1 %>", 'req.write("""""",0); x=1 ;req.write("""""",0)\n'),
    # The documentation's first example.
    ('<html>\n<%\nimport time\n%>\nHello world, the time is: '
     '<%=time.strftime("%Y-%m-%d, %H:%M:%S")%>\n</html>\n',
     'req.write("""<html>\n""",0);\nimport time\nreq.write("""\nHello world, the time is: """,0);'
     ' req.write(str(time.strftime("%Y-%m-%d, %H:%M:%S")),0); req.write("""\n</html>\n""",0)\n'),
    # The documentation's indentation example.
    ("<html>\n<%\nfor n in range(3):\n    # This indent will persist\n%>\n<p>This paragraph will "
     "be\nrepeated 3 times.</p>\n<%\n# This line will cause the block to end\n%>\nThis line will "
     "only be shown once.<br>\n</html>\n",
     'req.write("""<html>\n""",0);\nfor n in range(3):\n    # This indent will persist\n    '
     'req.write("""\n<p>This paragraph will be\nrepeated 3 times.</p>\n""",0);\n# This line will '
     'cause the block to end\nreq.write("""\nThis line will only be shown once.<br>\n</html>\n'
     '""",0)\n'),
    # A block ending with ':' gets a tab; an empty <% %> ends it.
    ("<%\nfor n in range(3):\n%>\nrow\n<%\n%>\nend",
     'req.write("""""",0);\nfor n in range(3):\n\treq.write("""\nrow\n""",0);\nreq.write("""\n'
     'end""",0)\n'),
    # mod_python's test page psptest.psp.
    ('<%\nif 1:\n    req.write("t")\n%>est<%=" "+"ok"%>\n',
     'req.write("""""",0);\nif 1:\n    req.write("t")\n    req.write("""est""",0); '
     'req.write(str(" "+"ok"),0); req.write("""\n""",0)\n'),
    # CR LF becomes LF, in text and in code.
    ("a\r\nb<%\r\nif x:\r\n    y = 1\r\n%>c\r\n",
     'req.write("""a\nb""",0);\nif x:\n    y = 1\n    req.write("""c\n""",0)\n'),
    # Nested blocks, `%>` after an indented line's whitespace.
    ("<%\nfor i in r:\n    if i:\n        %>yes<%\n    else:\n        %>no<%\n    # end if\n%>\n",
     'req.write("""""",0);\nfor i in r:\n    if i:\n                \treq.write("""yes""",0);\n'
     '    else:\n                \treq.write("""no""",0);\n    # end if\n    req.write("""\n'
     '""",0)\n'),
    # No declarations in 3.5: `<%!` is code starting with `!`.
    ("<%!x=1%>", 'req.write("""""",0);!x=1;req.write("""""",0)\n'),
    ("<%= 1 %><%%>",
     'req.write("""""",0); req.write(str( 1 ),0); req.write("""""",0);;req.write("""""",0)\n'),
    ("<% if x:%>y", 'req.write("""""",0); if x:;\treq.write("""y""",0)\n'),
    ("<%\n    x = 1\n%>", 'req.write("""""",0);\n    x = 1\n    req.write("""""",0)\n'),
    ("<%\nif x:\n    %>a", 'req.write("""""",0);\nif x:\n        \treq.write("""a""",0)\n'),
    # Text escapes: \n \r \t stay as typed, quotes escaped, other backslashes left.
    ('a\\n\\x41 "q" \r\nb\rc', 'req.write("""a\\\\n\\x41 \\"q\\" \nb\rc""",0)\n'),
    ("<%-- c --%>x", 'req.write("""x""",0)\n'),
    ("<%@ foo %>x", 'req.write("""x""",0)\n'),
    ("<% x = 1", 'req.write("""""",0); x = 1'),
    ("100% <%%> %>", 'req.write("""100% """,0);;req.write(""" %>""",0)\n'),
]


class Recorder:
    """A `req` that only records writes (for pure code checks)."""

    def __init__(self):
        self.out = []

    def write(self, data, flush=1):
        self.out.append(data)

    def text(self):
        return "".join(self.out)


def execute(code, **names):
    req = Recorder()
    scope = {"req": req}
    scope.update(names)
    exec(compile(code, "<psp>", "exec"), scope)
    return req.text()


def outcome(code):
    """(output, exception name) of running generated code."""
    req = Recorder()
    try:
        exec(compile(code, "<psp>", "exec"), {"req": req, "x": 1})
    except Exception as exc:  # noqa: BLE001
        return req.text(), type(exc).__name__
    return req.text(), None


def render(page, **names):
    return execute(_psp_parser.parse_string(page, root=None).code, **names)


# ---- fakes of mod_python.util and mod_python.Session -------------------------

class FakeFieldStorage:
    def __init__(self, req, keep_blank_values=0):
        self.req = req
        self.keep_blank_values = keep_blank_values
        self.data = {"name": "Ann", "n": "2"}
        EVENTS.append(("form", keep_blank_values))

    def getfirst(self, name, default=None):
        return self.data.get(name, default)

    def __getitem__(self, name):
        return self.data[name]


class FakeSession(dict):
    def __init__(self, req):
        super().__init__()
        self.req = req
        EVENTS.append("session")

    def save(self):
        EVENTS.append("save")

    def unlock(self):
        EVENTS.append("unlock")


EVENTS = []


def fake_redirect(req, location, permanent=0):
    EVENTS.append(("redirect", location, permanent))
    raise apache.SERVER_RETURN(apache.DONE)


def fake_apply_fs_data(obj, fs, **kw):
    args = dict(fs.data)
    args.update(kw)
    return obj(**{k: v for k, v in args.items() if k in obj.__code__.co_varnames})


def fake_modules():
    util = types.ModuleType("mod_python.util")
    util.FieldStorage = FakeFieldStorage
    util.redirect = fake_redirect
    util.apply_fs_data = fake_apply_fs_data
    session = types.ModuleType("mod_python.Session")
    session.Session = FakeSession
    return {"mod_python.util": util, "mod_python.Session": session}


# ---- the language, against mod_python's code ---------------------------------

class GeneratedCodeTest(unittest.TestCase):
    def test_golden_pages(self):
        for page, expected in GOLDEN:
            with self.subTest(page=page):
                self.assertEqual(_psp_parser.parse_string(page, root=None).code, expected)
                self.assertEqual(psp.parsestring(page), expected)

    def test_bytes_source(self):
        self.assertEqual(psp.parsestring("é<%= 1 %>".encode()),
                         'req.write("""é""",0); req.write(str( 1 ),0); req.write("""""",0)\n')
        with self.assertRaises(PSPSyntaxError):
            psp.parsestring(b"\xff")

    def test_lines_of_the_page_are_lines_of_the_code(self):
        page = "a\n<%\nx = 1\ny = 2\n%>\nb\n<%= x +\n y %>\nc\n"
        code = _psp_parser.parse_string(page, root=None).code
        self.assertEqual(code.count("\n"), page.count("\n") + 1)
        self.assertEqual(code.splitlines()[2], "x = 1")

    def test_matches_mod_python_psp(self):
        """Random pages, against the real _psp extension when it loads here."""
        so = "/usr/lib/python3/dist-packages/mod_python/_psp.cpython-311-x86_64-linux-gnu.so"
        if sys.version_info[:2] != (3, 11) or not os.path.exists(so):
            self.skipTest("mod_python's _psp for this Python is not installed")
        spec = importlib.util.spec_from_file_location("_psp", so)
        real = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(real)
        tokens = ["<%", "%>", "<%=", "<%----%>", ":", "\n", "\r\n", "\r", " ", "    ", "\t",
                  '"', "x", "if x:", "pass", "#c:", "%", "<", ">", "<%%>", "n", "\\"]
        rng = random.Random(3)
        compared = 0
        for _ in range(3000):
            page = "".join(rng.choice(tokens) for _ in range(rng.randint(0, 25)))
            theirs = real.parsestring(page.encode())
            try:
                ours = _psp_parser.parse_string(page, root=None).code
            except PSPSyntaxError as exc:
                # Only where mod_python's code is cut short.
                self.assertRegex(exc.msg, "unterminated (expression|comment)")
                continue
            if "\\" not in page:
                self.assertEqual(ours, theirs, page)
            else:
                # Backslashes: the same behaviour whenever theirs compiles.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        compile(theirs, "p", "exec")
                    except SyntaxError:
                        continue
                    expected = outcome(theirs)
                self.assertEqual(outcome(ours), expected, page)
            compared += 1
        self.assertGreater(compared, 1500)


class RenderTest(unittest.TestCase):
    def test_expression_and_code(self):
        self.assertEqual(render("<% x = 6 * 7 %>x=<%= x %>!"), "x=42!")
        self.assertEqual(render("<%= 'a' %><%= None %><%= 1.5 %>"), "aNone1.5")

    def test_loop_with_html_inside(self):
        page = ("<ul>\n<%\nfor item in items:\n    # the loop\n%>\n<li><%= item %></li>\n<%\n"
                "# end of the loop\n%>\n</ul>\n")
        self.assertEqual(render(page, items=["a", "b"]),
                         "<ul>\n\n<li>a</li>\n\n<li>b</li>\n\n</ul>\n")

    def test_colon_gives_the_indent(self):
        page = "<%\nfor n in range(3):\n%><%= n %>,<%\n%>end"
        self.assertEqual(render(page), "0,1,2,end")

    def test_if_else_blocks(self):
        page = ("<%\nif flag:\n    %>yes<%\nelse:\n    %>no<%\n%>.")
        self.assertEqual(render(page, flag=True), "yes.")
        self.assertEqual(render(page, flag=False), "no.")

    def test_nested_blocks(self):
        page = ("<%\nfor i in range(4):\n    if i % 2:\n        %>odd<%\n    else:\n"
                "        %>even<%\n    # end if\n%>;<%\n%>!")
        self.assertEqual(render(page), "even;odd;even;odd;!")

    def test_indent_persists_through_text_until_more_code(self):
        page = "<%\nfor i in range(2):\n    pass\n%>A<%= i %>B\nC<%\n%>D"
        self.assertEqual(render(page), "A0B\nCA1B\nCD")

    def test_comments_are_removed(self):
        self.assertEqual(render("a<%-- <%= 1 %> \n two lines --%>b"), "ab")
        self.assertEqual(render("<%-- x --%>"), "")

    def test_percent_and_quotes_in_text(self):
        self.assertEqual(render('100%% "q" \'s\' """ %d %s'), '100%% "q" \'s\' """ %d %s')
        self.assertEqual(render("a %> b"), "a %> b")

    def test_backslashes_in_text(self):
        # As mod_python: \n \r \t as typed; Python's escapes otherwise.
        self.assertEqual(render(r"a\nb\tc\r"), r"a\nb\tc\r")
        self.assertEqual(render(r"\x41\u00e9\N{EM DASH}\\"), "A\u00e9\u2014\\")
        self.assertEqual(render("a\\\nb"), "ab")
        # Where Python would warn or fail, the backslash is kept.
        self.assertEqual(render(r"/\d+/ C:\users\x \N{NO SUCH NAME} \U99999999"),
                         r"/\d+/ C:\users\x \N{NO SUCH NAME} \U99999999")
        self.assertEqual(render("end\\"), "end\\")
        self.assertEqual(render("a\\<%= 1 %>b\\\"<%= 2 %>"), 'a\\1b\\"2')
        self.assertEqual(render(r"\777"), "\u01ff")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            render(r"\d \q \777 \8")

    def test_nul_and_newlines_in_text(self):
        self.assertEqual(render("a\0b"), "a\0b")
        self.assertEqual(render("a\r\nb\rc\n"), "a\nb\nc\n")

    def test_code_newlines(self):
        self.assertEqual(render("<%\rx = 1\r%><%= x %>"), "1")
        self.assertEqual(render("<%= (1 +\r\n 2) %>"), "3")

    def test_unterminated_code_at_the_end_is_code(self):
        self.assertEqual(render("a<%\nreq.write('b')"), "ab")

    def test_unknown_directive_is_ignored_with_a_warning(self):
        result = _psp_parser.parse_string("a<%@ page language=\"python\" %>b", root=None)
        self.assertEqual(execute(result.code), "ab")
        self.assertEqual(len(result.warnings), 1)
        self.assertIn("<string>:1", result.warnings[0])


# ---- hostile pages -------------------------------------------------------------

class HostileTest(unittest.TestCase):
    def assertError(self, page, line, column=None, text=None, **kw):
        with self.assertRaises(PSPSyntaxError) as cm:
            _psp_parser.parse_string(page, root=None, **kw)
        exc = cm.exception
        self.assertEqual(exc.lineno, line, exc)
        if column is not None:
            self.assertEqual(exc.offset, column, exc)
        if text is not None:
            self.assertIn(text, exc.msg)
        return exc

    def test_unterminated_tags(self):
        self.assertError("a\nb\n  <%= x", 3, 3, "unterminated expression")
        self.assertError("<%-- x\n\n", 1, 1, "unterminated comment")
        self.assertError("x\r\ny <%@ include", 2, 3, "unterminated directive")
        exc = self.assertError("a\n<%-- c --%>\n<%= 1", 3, 1)
        self.assertIn("<%= 1", exc.text)

    def test_nul_in_code(self):
        self.assertError("a\n<% x = '\0' %>", 2, 9, "NUL")

    def test_unterminated_code_is_named_in_compile_errors(self):
        result = _psp_parser.parse_string("a\n<% if x:\n b\n", root=None)
        with self.assertRaises(PSPSyntaxError) as cm:
            _psp_parser.compile_page(result, "page.psp")
        self.assertIn("'<%' at line 2", cm.exception.msg)

    def test_syntax_error_line_is_the_page_line(self):
        result = _psp_parser.parse_string("a\n<%-- two\nlines --%>\n<%\nx = = 1\n%>", root=None)
        with self.assertRaises(PSPSyntaxError) as cm:
            _psp_parser.compile_page(result, "page.psp")
        self.assertEqual((cm.exception.filename, cm.exception.lineno), ("<string>", 5))
        self.assertEqual(cm.exception.text, "x = = 1")

    def test_deep_nesting(self):
        page = "<%\n" + "".join(" " * i + "if 1:\n" for i in range(150)) + " " * 150 + "x=1\n%>"
        result = _psp_parser.parse_string(page, root=None)
        with self.assertRaises(SyntaxError) as cm:
            _psp_parser.compile_page(result, "deep.psp")
        self.assertIsNotNone(cm.exception.lineno)

    def test_expressions_too_deep_to_compile(self):
        for page in ("<%= " + "-" * 100000 + "1 %>", "<%\nx = " + "+".join(["1"] * 200000) + "\n%>",
                     "<%= " + "(" * 300 + "1" + ")" * 300 + " %>"):
            result = _psp_parser.parse_string(page, root=None)
            with self.assertRaises(PSPSyntaxError):
                _psp_parser.compile_page(result, "deep.psp")

    def test_many_tags_and_big_pages_are_linear(self):
        page = "<p>row <%= i %></p>\n" * 50000 + "x" * 2_000_000 + "<%\n" + "y = 1\n" * 20000 + "%>"
        start = time.monotonic()
        result = _psp_parser.parse_string(page, root=None)
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, 20)
        self.assertEqual(result.code.count("req.write(str( i ),0)"), 50000)

    def test_size_limit(self):
        saved = _psp_parser.MAX_SOURCE_BYTES
        _psp_parser.MAX_SOURCE_BYTES = 1000
        try:
            with self.assertRaises(PSPSyntaxError) as cm:
                _psp_parser.parse_string("x" * 1001, root=None)
            self.assertIn("over 1000 bytes", cm.exception.msg)
        finally:
            _psp_parser.MAX_SOURCE_BYTES = saved

    def test_random_garbage_never_crashes(self):
        rng = random.Random(7)
        alphabet = ["<%", "%>", "<%=", "<%--", "--%>", "<%@", "include", 'file="x"', "\\", "\0",
                    "\ud800", "\r", "\n", " ", ":", '"', "é", "\x1b", "\U0001F600"]
        for _ in range(3000):
            page = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
            try:
                result = _psp_parser.parse_string(page, root=None)
            except PSPSyntaxError as exc:
                self.assertIsInstance(exc.lineno, int)
                continue
            try:
                _psp_parser.compile_page(result, "p")
            except SyntaxError as exc:
                self.assertIsInstance(exc.lineno, int)


# ---- pages with a request --------------------------------------------------------

class PageTestBase(unittest.TestCase):
    rid = 41
    fakes = True

    def setUp(self):
        self.app = os.path.realpath(tempfile.mkdtemp(prefix="psp-app-"))
        self.state = tempfile.mkdtemp(prefix="psp-state-")
        self.addCleanup(shutil.rmtree, self.app, True)
        self.addCleanup(shutil.rmtree, self.state, True)
        saved = (_psp_parser.ROOT, wasmpy.state.DIRECTORY)
        self.addCleanup(self.restore, saved)
        _psp_parser.ROOT = self.app
        wasmpy.state.DIRECTORY = self.state
        psp.mem_fcache.clear()
        psp.mem_scache.clear()
        saved_modules = {name: sys.modules.get(name) for name in fake_modules()}
        self.addCleanup(self.restore_modules, saved_modules)
        if self.fakes:
            sys.modules.update(fake_modules())
        else:
            for name in saved_modules:
                sys.modules.pop(name, None)
        EVENTS.clear()
        self.host = fakehost.use(FakeHost(rid=self.rid, fields={
            "filename": self.path("index.psp"), "uri": "/index.psp", "document_root": self.app,
            "method": "GET", "status": 200}))
        self.req = Request(self.rid)

    @staticmethod
    def restore(saved):
        _psp_parser.ROOT, wasmpy.state.DIRECTORY = saved

    @staticmethod
    def restore_modules(saved):
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module

    def path(self, name):
        return os.path.join(self.app, name)

    def write(self, name, text, bump=0):
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        if bump:
            # A different mtime even on coarse clocks.
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))
        return path

    def body(self):
        return self.host.body_written().decode("utf-8")

    def options(self, **opts):
        self.req.__dict__["_wp_options"] = tuple(opts.items())

    def count_parses(self):
        calls = []
        original = _psp_parser.parse_file

        def counting(*args, **kw):
            calls.append(args[0])
            return original(*args, **kw)

        _psp_parser.parse_file = counting
        self.addCleanup(setattr, _psp_parser, "parse_file", original)
        return calls


class PSPClassTest(PageTestBase):
    def test_filename_defaults_to_req_filename(self):
        self.write("index.psp", "Hello <%= req.uri %>")
        psp.PSP(self.req).run()
        self.assertEqual(self.body(), "Hello /index.psp")

    def test_relative_filename_and_vars(self):
        self.write("tpl/t.html", "<h1>Hello, <%= what %>! <%= n %></h1>")
        page = psp.PSP(self.req, filename="tpl/t.html", vars={"what": "x", "n": 1})
        page.run({"what": "world"})
        self.assertEqual(self.body(), "<h1>Hello, world! 1</h1>")
        self.assertEqual(page.filename, self.path("tpl/t.html"))

    def test_string(self):
        page = psp.PSP(self.req, string="<%= a + b %>", vars={"a": 1})
        page.run({"b": 2})
        page.run({"b": 3})
        self.assertEqual(self.body(), "34")
        psp.PSP(self.req, string=b"\xc3\xa9").run()
        self.assertEqual(self.body(), "34\u00e9")

    def test_string_and_filename_is_an_error(self):
        with self.assertRaises(ValueError):
            psp.PSP(self.req, filename="a.psp", string="x")

    def test_missing_file_is_404(self):
        with self.assertRaises(apache.SERVER_RETURN) as cm:
            psp.PSP(self.req, filename="nope.psp")
        self.assertEqual(cm.exception.args, (apache.HTTP_NOT_FOUND,))
        os.mkdir(self.path("dir.psp"))
        with self.assertRaises(apache.SERVER_RETURN):
            psp.PSP(self.req, filename="dir.psp")

    def test_str_sets_content_type_and_runs(self):
        page = psp.PSP(self.req, string="<b>x</b>")
        self.assertEqual(str(page), "")
        self.assertEqual(self.body(), "<b>x</b>")
        self.assertEqual(self.host.fields["content_type"], "text/html")

    def test_flush(self):
        psp.PSP(self.req, string="x").run(flush=1)
        self.assertIn(("flush", []), self.host.calls)

    def test_page_globals(self):
        # form and session are None when the page does not name them.
        psp.PSP(self.req, string="<%= apache.OK %> <%= __file__ %> <%= psp.req is req %> "
                                 "<%= globals()['form'] %> <%= globals()['session'] %>").run()
        self.assertEqual(self.body(), f"0 {self.path('index.psp')} True None None")

    def test_syntax_error_names_the_page_line(self):
        self.write("inc.html", "one\ntwo\nthree\n")
        self.write("bad.psp", '<%@ include file="inc.html" %>\n<%\nif x\n%>')
        with self.assertRaises(SyntaxError) as cm:
            psp.PSP(self.req, filename="bad.psp")
        self.assertEqual((cm.exception.filename, cm.exception.lineno), (self.path("bad.psp"), 3))

    def test_display_code(self):
        path = self.write("page.psp", '<b class="x">\n<%\nfor i in r:\n%>\t<%= i %>')
        psp.PSP(self.req, filename=path).display_code()
        out = self.body()
        self.assertTrue(out.startswith("<table>\n<tr><td><tt></tt></td><td><tt>&nbsp;PSP-produced "
                                       "Python Code:</tt></td>"))
        self.assertIn("<td><tt>1.&nbsp;</tt></td><td><tt><font color=blue>req.write(&quot;&quot;"
                      "&quot;&lt;b&nbsp;class=\\&quot;x\\&quot;&gt;</font></tt></td><td><tt>&nbsp;"
                      "<font color=green>&lt;b&nbsp;class=&quot;x&quot;&gt;</font></tt></td>", out)
        self.assertIn("&nbsp;&nbsp;&nbsp;&nbsp;req.write", out)
        self.assertTrue(out.endswith("</table>\n"))


class IncludeTest(PageTestBase):
    def test_include_continues_the_text(self):
        self.write("header.html", 'H "<%= title %>"\n')
        self.write("index.psp", '<% title = "T" %><%@ include file="header.html" %>body')
        psp.PSP(self.req).run()
        self.assertEqual(self.body(), 'H "T"\nbody')

    def test_include_inside_a_loop(self):
        self.write("row.html", "[<%= i %>]")
        self.write("index.psp", '<%\nfor i in range(3):\n%><%@ include file="row.html" %><%\n%>.')
        psp.PSP(self.req).run()
        self.assertEqual(self.body(), "[0][1][2].")

    def test_nested_includes_are_relative_to_the_page(self):
        # As mod_python: from the directory of the page, not of the includer.
        self.write("sub/a.html", 'A<%@ include file="sub/b.html" %>')
        self.write("sub/b.html", "B")
        self.write("index.psp", '<%@ include file="sub/a.html"%>!')
        psp.PSP(self.req).run()
        self.assertEqual(self.body(), "AB!")

    def test_absolute_include_inside_app(self):
        self.write("lib/f.html", "F")
        self.write("index.psp", f'<%@ include file="{self.path("lib/f.html")}" %>')
        psp.PSP(self.req).run()
        self.assertEqual(self.body(), "F")

    def test_include_outside_app_refused(self):
        outside = tempfile.NamedTemporaryFile("w", suffix=".html", delete=False)
        outside.write("secret")
        outside.close()
        self.addCleanup(os.remove, outside.name)
        for name in ("../" * 8 + outside.name.lstrip("/"), outside.name, "/etc/passwd"):
            self.write("index.psp", f'x\n <%@ include file="{name}" %>')
            with self.assertRaises(PSPSyntaxError) as cm:
                psp.PSP(self.req).run()
            self.assertIn("outside", cm.exception.msg)
            self.assertEqual((cm.exception.lineno, cm.exception.offset), (2, 2))
            psp.mem_fcache.clear()

    def test_include_symlink_out_refused(self):
        outside = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, outside, True)
        with open(os.path.join(outside, "s.html"), "w") as f:
            f.write("secret")
        os.symlink(outside, self.path("link"))
        self.write("index.psp", '<%@ include file="link/s.html" %>')
        with self.assertRaises(PSPSyntaxError):
            psp.PSP(self.req)

    def test_missing_include(self):
        self.write("index.psp", 'a\n\n<%@ include file="nope.html" %>')
        with self.assertRaises(PSPSyntaxError) as cm:
            psp.PSP(self.req)
        self.assertEqual(cm.exception.lineno, 3)
        self.assertIn("nope.html", cm.exception.msg)

    def test_include_cycle(self):
        self.write("a.html", '<%@ include file="b.html" %>')
        self.write("b.html", 'x\n<%@ include file="a.html" %>')
        self.write("index.psp", '<%@ include file="a.html" %>')
        with self.assertRaises(PSPSyntaxError) as cm:
            psp.PSP(self.req)
        self.assertIn("include cycle", cm.exception.msg)
        self.assertEqual((cm.exception.filename, cm.exception.lineno), (self.path("b.html"), 2))

    def test_include_depth(self):
        for i in range(30):
            self.write(f"d{i}.html", f'{i} <%@ include file="d{i + 1}.html" %>')
        self.write("d30.html", "end")
        self.write("index.psp", '<%@ include file="d20.html" %>')
        psp.PSP(self.req).run()
        self.assertEqual(self.body(), " ".join(str(i) for i in range(20, 30)) + " end")
        self.write("index.psp", '<%@ include file="d0.html" %>', bump=1)
        with self.assertRaises(PSPSyntaxError) as cm:
            psp.PSP(self.req)
        self.assertIn("deeper than 16", cm.exception.msg)

    def test_unterminated_tag_in_include(self):
        self.write("inc.html", "ok\n<% x = 1\n")
        self.write("index.psp", '<%@ include file="inc.html" %>')
        with self.assertRaises(PSPSyntaxError) as cm:
            psp.PSP(self.req)
        self.assertEqual((cm.exception.filename, cm.exception.lineno), (self.path("inc.html"), 2))

    def test_not_utf8(self):
        with open(self.path("index.psp"), "wb") as f:
            f.write(b"ok\nok\nbad \xff\xfe here")
        with self.assertRaises(PSPSyntaxError) as cm:
            psp.PSP(self.req)
        self.assertEqual((cm.exception.lineno, cm.exception.offset), (3, 5))

    def test_include_in_a_string_page(self):
        self.write("part.html", "P")
        psp.PSP(self.req, string='<%@ include file="part.html" %>!').run()
        self.assertEqual(self.body(), "P!")

    def test_parse_function(self):
        self.write("inc.html", "I")
        self.write("p.psp", '<%@ include file="inc.html" %>')
        self.assertEqual(psp.parse("p.psp", self.app + "/"), 'req.write("""I""",0)\n')


class LazyObjectsTest(PageTestBase):
    def test_nothing_created_when_not_named(self):
        psp.PSP(self.req, string="<%= 1 %>").run()
        self.assertEqual(EVENTS, [])
        self.assertFalse(hasattr(self.req, "form"))
        self.assertFalse(hasattr(self.req, "session"))

    def test_form_created_when_named(self):
        psp.PSP(self.req, string="<%= form.getfirst('name') %>").run()
        self.assertEqual(self.body(), "Ann")
        self.assertEqual(EVENTS, [("form", 1)])
        self.assertIsInstance(self.req.form, FakeFieldStorage)
        # An existing req.form is used, not read again.
        psp.PSP(self.req, string="<%= form['n'] %>").run()
        self.assertEqual(EVENTS, [("form", 1)])

    def test_form_named_in_a_function(self):
        psp.PSP(self.req, string="<%\ndef f():\n    return form['n']\n# end of f\n%><%= f() %>").run()
        self.assertEqual(self.body(), "2")

    def test_session_created_saved_unlocked(self):
        psp.PSP(self.req, string="<% session['x'] = 1 %><%= session['x'] %>").run()
        self.assertEqual(self.body(), "1")
        self.assertEqual(EVENTS, ["session", "save", "unlock"])
        self.assertFalse(hasattr(self.req, "session"))

    def test_existing_session_is_used_and_saved(self):
        self.req.session = FakeSession(self.req)
        EVENTS.clear()
        psp.PSP(self.req, string="<%= 1 %>").run()
        self.assertEqual(EVENTS, ["save"])
        self.assertTrue(hasattr(self.req, "session"))

    def test_session_not_saved_on_error_but_unlocked(self):
        with self.assertRaises(ZeroDivisionError):
            psp.PSP(self.req, string="<% session['x'] = 1/0 %>").run()
        self.assertEqual(EVENTS, ["session", "unlock"])
        self.assertFalse(hasattr(self.req, "session"))

    def test_util_and_session_modules_in_scope_when_named(self):
        psp.PSP(self.req, string="<%= util.__name__ %> <%= Session.__name__ %>").run()
        self.assertEqual(self.body(), "mod_python.util mod_python.Session")

    def test_redirect(self):
        with self.assertRaises(apache.SERVER_RETURN):
            psp.PSP(self.req, string="<% psp.redirect('/x', 1) %>").run()
        self.assertEqual(EVENTS, [("redirect", "/x", 1)])

    def test_apply_data(self):
        psp.PSP(self.req, string="<%\ndef show(name, req):\n    return name + req.uri\n"
                                 "# end\n%><%= psp.apply_data(show) %>").run()
        self.assertEqual(self.body(), "Ann/index.psp")
        self.assertIs(self.req.form.req, self.req)


class ErrorPageTest(PageTestBase):
    def test_error_page_gets_the_exception(self):
        self.write("err.psp", "error: <%= exception[0].__name__ %> <%= exception[1] %> "
                              "<%= exception[2] is not None %>")
        self.write("index.psp", 'before <%\npsp.set_error_page("err.psp")\n'
                                'raise ValueError("boom")\n%>after')
        psp.PSP(self.req).run()
        self.assertEqual(self.body(), "before error: ValueError boom True")

    def test_absolute_error_page_is_from_document_root(self):
        self.write("errors/e.psp", "E")
        self.write("sub/index.psp", '<% psp.set_error_page("/errors/e.psp"); 1/0 %>')
        psp.PSP(self.req, filename=self.path("sub/index.psp")).run()
        self.assertEqual(self.body(), "E")

    def test_missing_error_page(self):
        with self.assertRaises(apache.SERVER_RETURN):
            psp.PSP(self.req, string='<% psp.set_error_page("none.psp") %>').run()

    def test_server_return_is_not_an_error(self):
        self.write("err.psp", "E")
        with self.assertRaises(apache.SERVER_RETURN):
            psp.PSP(self.req, string='<% psp.set_error_page("err.psp"); '
                                     'raise apache.SERVER_RETURN(403) %>').run()
        self.assertEqual(self.body(), "")

    def test_error_page_shares_the_session(self):
        self.write("err.psp", "E<%= session is not None %>")
        psp.PSP(self.req, string='<% psp.set_error_page("err.psp"); session["a"] = 1; '
                                 '1/0 %>').run()
        self.assertEqual(self.body(), "ETrue")
        self.assertEqual(EVENTS, ["session", "save", "unlock"])

    def test_without_error_page_the_exception_propagates(self):
        with self.assertRaises(KeyError):
            psp.PSP(self.req, string="<% {}['k'] %>").run()


class CacheTest(PageTestBase):
    def cache_files(self):
        directory = os.path.join(self.state, "psp")
        if not os.path.isdir(directory):
            return []
        return [os.path.join(directory, n) for n in os.listdir(directory)]

    def new_instance(self):
        psp.mem_fcache.clear()
        psp.mem_scache.clear()

    def test_memory_cache(self):
        parses = self.count_parses()
        self.write("index.psp", "v1")
        first = psp.PSP(self.req)
        second = psp.PSP(self.req)
        self.assertIs(first.code, second.code)
        self.assertEqual(len(parses), 1)

    def test_change_of_the_page(self):
        self.write("index.psp", "v1")
        psp.PSP(self.req).run()
        self.write("index.psp", "v2", bump=1)
        psp.PSP(self.req).run()
        # Same mtime, another size: also seen.
        st = os.stat(self.path("index.psp"))
        self.write("index.psp", "v3+")
        os.utime(self.path("index.psp"), ns=(st.st_atime_ns, st.st_mtime_ns))
        psp.PSP(self.req).run()
        self.assertEqual(self.body(), "v1v2v3+")

    def test_change_of_an_include(self):
        self.write("inc.html", "i1")
        self.write("index.psp", '<%@ include file="inc.html" %>.')
        psp.PSP(self.req).run()
        self.write("inc.html", "i2", bump=1)
        psp.PSP(self.req).run()
        self.new_instance()
        self.write("inc.html", "i3", bump=2)
        psp.PSP(self.req).run()
        self.assertEqual(self.body(), "i1.i2.i3.")

    def test_string_cache_follows_includes(self):
        self.write("inc.html", "i1")
        psp.PSP(self.req, string='<%@ include file="inc.html" %>').run()
        self.write("inc.html", "i2", bump=1)
        psp.PSP(self.req, string='<%@ include file="inc.html" %>').run()
        self.assertEqual(self.body(), "i1i2")

    def test_disk_cache_used_by_a_new_instance(self):
        self.write("index.psp", "<%= 40 + 2 %>")
        psp.PSP(self.req).run()
        files = self.cache_files()
        self.assertEqual(len(files), 1)
        with open(files[0], "rb") as f:
            self.assertTrue(f.read().startswith(b"WPSP\x01" + importlib.util.MAGIC_NUMBER))
        self.new_instance()
        parses = self.count_parses()
        psp.PSP(self.req).run()
        self.assertEqual(parses, [])
        self.assertEqual(self.body(), "4242")

    def test_disk_cache_invalidated_by_a_change(self):
        self.write("inc.html", "a")
        self.write("index.psp", '<%@ include file="inc.html" %>')
        psp.PSP(self.req).run()
        self.new_instance()
        self.write("inc.html", "b", bump=1)
        parses = self.count_parses()
        psp.PSP(self.req).run()
        self.assertEqual(len(parses), 1)
        self.assertEqual(self.body(), "ab")
        # Written anew: a third instance reads it.
        self.new_instance()
        psp.PSP(self.req).run()
        self.assertEqual(len(parses), 1)

    def test_corrupt_cache_files_are_ignored_and_rewritten(self):
        self.write("index.psp", "ok")
        psp.PSP(self.req)
        (cfile,) = self.cache_files()
        with open(cfile, "rb") as f:
            good = f.read()
        damaged = [
            b"",
            b"garbage",
            good[:len(good) // 2],
            good[:-1] + bytes([good[-1] ^ 0xFF]),
            b"WPSP\x02" + good[5:],
            good[:5] + b"\0\0\0\0" + good[9:],
            good + b"trailing",
        ]
        for blob in damaged:
            with self.subTest(blob=blob[:12]):
                with open(cfile, "wb") as f:
                    f.write(blob)
                self.new_instance()
                parses = self.count_parses()
                psp.PSP(self.req).run()
                self.assertEqual(len(parses), 1)
                with open(cfile, "rb") as f:
                    self.assertEqual(f.read(), good)

    def test_cache_file_of_another_page_is_not_used(self):
        self.write("a.psp", "A")
        self.write("b.psp", "B")
        psp.PSP(self.req, filename="a.psp")
        psp.PSP(self.req, filename="b.psp")
        first, second = self.cache_files()
        with open(first, "rb") as f:
            one = f.read()
        with open(second, "rb") as f:
            two = f.read()
        # Each page's file now holds the other page's entry (valid in itself).
        with open(first, "wb") as f:
            f.write(two)
        with open(second, "wb") as f:
            f.write(one)
        self.new_instance()
        psp.PSP(self.req, filename="a.psp").run()
        psp.PSP(self.req, filename="b.psp").run()
        self.assertEqual(self.body(), "AB")

    def test_disk_cache_off(self):
        self.options(**{"mod_python.psp.disk_cache": "Off"})
        self.write("index.psp", "x")
        psp.PSP(self.req).run()
        self.assertEqual(self.cache_files(), [])

    def test_unusable_state_directory(self):
        blocker = os.path.join(self.state, "file")
        with open(blocker, "w") as f:
            f.write("x")
        wasmpy.state.DIRECTORY = blocker
        self.write("index.psp", "still works")
        psp.PSP(self.req).run()
        self.assertEqual(self.body(), "still works")
        self.assertTrue(any("could not write" in m for _, m in self.host.logs))

    def test_memory_cache_is_bounded(self):
        saved = psp.mem_fcache.size
        psp.mem_fcache.size = 8
        self.addCleanup(setattr, psp.mem_fcache, "size", saved)
        for i in range(20):
            self.write(f"p{i}.psp", str(i))
            psp.PSP(self.req, filename=f"p{i}.psp")
        self.assertLessEqual(len(psp.mem_fcache.cache), 8)


class RealModulesTest(PageTestBase):
    """With mod_python.util and mod_python.Session themselves."""

    fakes = False

    def test_form_and_session(self):
        self.write("index.psp", 'Hi <%= form.getfirst("who") %>, visit '
                                '<% session["n"] = session.get("n", 0) + 1 %><%= session["n"] %>')
        self.host.fields.update({"args": "who=Ann", "unparsed_uri": "/index.psp?who=Ann"})
        req = phases._request_for(self.rid)
        self.addCleanup(phases.end_request, self.rid)
        psp.PSP(req).run()
        self.assertEqual(self.body(), "Hi Ann, visit 1")
        self.assertFalse(hasattr(req, "session"))
        cookie = dict(self.host.tables[fakehost.TableKind.HEADERS_OUT])["Set-Cookie"].split(";")[0]
        phases.end_request(self.rid)

        self.host = fakehost.use(FakeHost(rid=self.rid + 1, fields=dict(self.host.fields),
                                          tables={fakehost.TableKind.HEADERS_IN: [("Cookie", cookie)]}))
        req = phases._request_for(self.rid + 1)
        self.addCleanup(phases.end_request, self.rid + 1)
        psp.PSP(req).run()
        self.assertEqual(self.body(), "Hi Ann, visit 2")


class HandlerTest(PageTestBase):
    def run_handler(self, filename, debug=False):
        self.host.fields["filename"] = filename
        call = PhaseCall("PythonHandler", [Handler("mod_python.psp", self.app, [".psp", ".psp_"],
                                                   False)],
                         [], [("PythonDebug", "1" if debug else "0")], [], "main_interpreter")
        try:
            return wasmpy_gateway.WitWorld().run_phase(self.rid, call)
        finally:
            for rid in list(phases._requests):
                phases.end_request(rid)
            if self.app in sys.path:
                sys.path.remove(self.app)

    def test_handler_runs_the_page(self):
        path = self.write("index.psp", "<% x = 2 %>x=<%= x %>")
        res = self.run_handler(path)
        self.assertEqual((res.status, res.failure), (apache.OK, None))
        self.assertEqual(self.body(), "x=2")
        self.assertEqual(self.host.fields["content_type"], "text/html")

    def test_handler_missing_page(self):
        res = self.run_handler(self.path("none.psp"))
        self.assertEqual(res.status, apache.HTTP_NOT_FOUND)

    def test_debug_listing(self):
        path = self.write("index.psp", "<% if x %>")  # does not compile: still listed
        res = self.run_handler(path + "_", debug=True)
        self.assertEqual(res.status, apache.OK)
        self.assertIn("PSP-produced Python Code", self.body())
        self.assertIn("if&nbsp;x&nbsp;;req.write", self.body())

    def test_no_listing_without_debug(self):
        path = self.write("index.psp", "x")
        res = self.run_handler(path + "_")
        self.assertEqual(res.status, apache.HTTP_NOT_FOUND)
        self.assertEqual(self.body(), "")


if __name__ == "__main__":
    unittest.main()
