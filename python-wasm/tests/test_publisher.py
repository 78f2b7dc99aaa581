"""mod_python.publisher: URL mapping, traversal and publishing rules, methods,
__auth__/__access__/__auth_realm__, form arguments, content type, reload.

Also home of `HandlerHost` and `HandlerCase`, which test_mp_wsgi.py and
test_cgihandler.py use to run a standard handler as PythonHandler."""

import base64
import io
import os
import shutil
import sys
import tempfile
import textwrap
import unittest

from tests import fakehost
from tests.fakehost import FakeHost, Handler, PhaseCall, TableKind

from mod_python import apache, publisher
from wasmpy import phases

# Where the fake host pretends the tenant's files are (Apache's view).
HOST_PREFIX = "/srv/tenants/t"


class HandlerHost(FakeHost):
    """A FakeHost with the operations the standard handlers use, answering
    as Apache does (add_cgi_vars fills subprocess_env with host paths)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ops.update({
            "allow_methods": self.op_allow_methods,
            "get_addhandler_exts": lambda: [""],
            "add_cgi_vars": self.op_add_cgi_vars,
            "internal_redirect": lambda uri: self.redirects.append(uri) or [],
        })
        self.allowed = []
        self.redirects = []

    def op_allow_methods(self, reset, *methods):
        self.allowed.append((reset, list(methods)))
        return []

    def op_add_cgi_vars(self):
        f = self.fields
        env = []
        for name, value in self.tables[TableKind.HEADERS_IN]:
            low = name.lower()
            if low in ("authorization", "proxy-authorization"):
                continue
            if low == "content-type":
                env.append(("CONTENT_TYPE", value))
            elif low == "content-length":
                env.append(("CONTENT_LENGTH", value))
            else:
                env.append(("HTTP_" + name.upper().replace("-", "_"), value))
        root = f.get("document_root")
        uri = f.get("uri") or ""
        path_info = f.get("path_info") or ""
        env += [
            ("SERVER_SOFTWARE", "Apache"),
            ("SERVER_NAME", f.get("server.server_hostname") or "localhost"),
            ("SERVER_PORT", "80"),
            ("REMOTE_ADDR", f.get("connection.remote_ip") or "127.0.0.1"),
            ("DOCUMENT_ROOT", HOST_PREFIX + root if root else "/var/www"),
            ("CONTEXT_DOCUMENT_ROOT", HOST_PREFIX + root if root else "/var/www"),
            ("SCRIPT_FILENAME", HOST_PREFIX + (f.get("filename") or "")),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_PROTOCOL", f.get("protocol") or "HTTP/1.1"),
            ("REQUEST_METHOD", f.get("method")),
            ("QUERY_STRING", f.get("args") or ""),
            ("REQUEST_URI", uri),
        ]
        if path_info:
            env.append(("PATH_INFO", path_info))
            if root:
                env.append(("PATH_TRANSLATED", HOST_PREFIX + root + path_info))
            env.append(("SCRIPT_NAME", uri[:len(uri) - len(path_info)]
                        if uri.endswith(path_info) else uri))
        else:
            env.append(("SCRIPT_NAME", uri))
        kind = TableKind.SUBPROCESS_ENV
        for key, value in env:
            self.tables[kind] = [(k, v) for k, v in self.tables[kind] if k.lower() != key.lower()]
            self.tables[kind].append((key, value))
        return []

    def headers_out(self):
        return self.tables[TableKind.HEADERS_OUT]


class HandlerCase(unittest.TestCase):
    """Runs one standard handler as PythonHandler over a HandlerHost."""

    spec = "mod_python.publisher"
    next_rid = 1000

    def setUp(self):
        self.dir = os.path.realpath(tempfile.mkdtemp(prefix="wasmpy-handler-"))
        self.saved_path = sys.path[:]
        # Tracebacks of the failures the tests provoke go to the tenant's log (stderr).
        self.saved_stderr = sys.stderr
        sys.stderr = self.stderr = io.StringIO()

    def tearDown(self):
        sys.stderr = self.saved_stderr
        for rid in list(phases._requests):
            phases.end_request(rid)
        sys.path[:] = self.saved_path
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, rel, text, bump=0):
        path = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        if bump:
            st = os.stat(path)
            os.utime(path, (st.st_atime, st.st_mtime + bump))
        return path

    def run_handler(self, uri, filename=None, path_info="", method="GET", args=None,
                    headers=(), body=b"", options=(), config=(), fields=None, prepare=None):
        """Run the handler for one request; `prepare(host)` can adjust the
        fake host first. Returns (phase status, host)."""
        HandlerCase.next_rid += 1
        rid = HandlerCase.next_rid
        base = {
            "method": method, "uri": uri, "unparsed_uri": uri + ("?" + args if args else ""),
            "args": args, "filename": filename, "path_info": path_info, "status": 200,
            "protocol": "HTTP/1.1", "header_only": method == "HEAD", "content_type": None,
            "document_root": self.dir, "server.server_hostname": "example.org",
            "connection.remote_ip": "10.0.0.9", "is_https": False,
        }
        base.update(fields or {})
        headers = list(headers)
        if body and not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("Content-Length", str(len(body))))
        host = fakehost.use(HandlerHost(rid=rid, fields=base, body=body,
                                        tables={TableKind.HEADERS_IN: headers}))
        if prepare is not None:
            prepare(host)
        call = PhaseCall("PythonHandler", [Handler(self.spec, self.dir, [], False)],
                         list(options), list(config), [], "main_interpreter")
        status, self.failure = phases.run_phase(rid, call)
        self.last_req = phases._requests.get(rid)
        return status, host


def basic(user, password):
    return ("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())


HELLO = '''
import os
from mod_python import apache

def say(req, what="NOTHING"):
    return "I am saying %s" % what

def index(req):
    return "hello index"

def whoami(req):
    return req.method

def plain(a=None, b="-"):
    return "a=%s b=%s" % (a, b)

def add(req, a, b, **rest):
    return "%s+%s %s" % (a, b, sorted(rest.items()))

def many(x):
    return repr(x)

def nothing(req):
    req.write("direct ")
    return None

def raw(req):
    return b"\\x00\\xffbytes"

def page(req):
    return "<html><body>hi</body></html>\\n"

def page_upper(req):
    return "<HTML>\\n<BODY>x</BODY>\\n</HTML >  \\n"

def starts_html(req):
    return "<html> no end"

def json(req):
    req.content_type = "application/json"
    return '{"a": 1}'

def unicode(req):
    return "caf\\u00e9"

def returns_callable(req):
    return lambda: "from the lambda"

class Thing:
    def method(self):
        return "method"

class Obj:
    label = "an object"
    def hi(self, req):
        return "hi from obj"
    def _hidden(self):
        return "hidden"

obj = Obj()
ln = len
version = "1.0"
count = 3
data = {"k": "v"}
_private = "private"

def gen_func():
    yield "x"
'''


class PublisherTest(HandlerCase):
    def setUp(self):
        super().setUp()
        self.hello = self.write("hello.py", HELLO)
        self.write("index.py", '''
            def index(req):
                return "We are in index()"

            def hello2(req):
                return "We are in hello2()"
        ''')

    def get(self, path_info, filename=None, **kw):
        return self.run_handler("/hello.py" + path_info, filename or self.hello,
                                path_info=path_info, **kw)

    # -- mapping --

    def test_function_with_query_argument(self):
        status, host = self.get("/say", args="what=hello")
        self.assertEqual(status, apache.OK)
        self.assertEqual(host.body_written(), b"I am saying hello")
        self.assertEqual(host.fields["content_type"], "text/plain")
        self.assertEqual(self.last_req.form.getfirst("what"), "hello")

    def test_default_argument_and_default_function(self):
        self.assertEqual(self.get("/say")[1].body_written(), b"I am saying NOTHING")
        self.assertEqual(self.get("")[1].body_written(), b"hello index")
        self.assertEqual(self.get("/")[1].body_written(), b"hello index")

    def test_module_without_extension(self):
        status, host = self.run_handler("/hello/say", os.path.join(self.dir, "hello"),
                                        path_info="/say")
        self.assertEqual((status, host.body_written()), (0, b"I am saying NOTHING"))
        # req.filename names the module file.
        self.assertEqual(host.fields["filename"], self.hello)

    def test_directory_gives_index(self):
        status, host = self.run_handler("/", self.dir + "/")
        self.assertEqual(host.body_written(), b"We are in index()")
        status, host = self.run_handler("/index/hello2", os.path.join(self.dir, "index"),
                                        path_info="/hello2")
        self.assertEqual(host.body_written(), b"We are in hello2()")

    def test_missing_module_falls_back_to_index(self):
        status, host = self.run_handler("/hello2", os.path.join(self.dir, "hello2"))
        self.assertEqual((status, host.body_written()), (0, b"We are in hello2()"))
        status, host = self.run_handler("/spam", os.path.join(self.dir, "spam"))
        self.assertEqual(status, apache.HTTP_NOT_FOUND)

    def test_no_index_is_404(self):
        os.makedirs(os.path.join(self.dir, "empty"))
        status, _ = self.run_handler("/empty/x", os.path.join(self.dir, "empty", "x"))
        self.assertEqual(status, 404)

    def test_missing_attribute_is_404(self):
        self.assertEqual(self.get("/nope")[0], 404)
        self.assertEqual(self.get("/obj/nope")[0], 404)
        self.assertEqual(self.get("/obj//hi")[0], 404)

    def test_two_index_modules_in_two_directories(self):
        self.write("a/index.py", "def index(req):\n    return 'A'\n")
        self.write("b/index.py", "def index(req):\n    return 'B'\n")
        self.assertEqual(self.run_handler("/a/", self.dir + "/a/")[1].body_written(), b"A")
        self.assertEqual(self.run_handler("/b/", self.dir + "/b/")[1].body_written(), b"B")

    # -- security rules --

    def test_underscore_refused(self):
        self.assertEqual(self.get("/_private")[0], 403)
        self.assertEqual(self.get("/obj/_hidden")[0], 403)
        self.assertEqual(self.get("/say/__code__")[0], 403)
        self.assertEqual(self.get("/__builtins__")[0], 403)

    def test_modules_cannot_be_published_or_traversed(self):
        self.assertEqual(self.get("/os")[0], 403)
        self.assertEqual(self.get("/os/getcwd")[0], 403)
        self.assertEqual(self.get("/apache/OK")[0], 403)

    def test_classes_cannot_be_published_or_traversed(self):
        self.assertEqual(self.get("/Thing")[0], 403)
        self.assertEqual(self.get("/Thing/method")[0], 403)
        self.assertEqual(self.get("/Obj/label")[0], 403)

    def test_class_with_metaclass_is_refused_too(self):
        self.write("meta.py", '''
            import abc
            class Base(abc.ABC):
                value = "x"
        ''')
        status, _ = self.run_handler("/meta.py/Base/value", os.path.join(self.dir, "meta.py"),
                                     path_info="/Base/value")
        self.assertEqual(status, 403)

    def test_builtins_refused(self):
        self.assertEqual(self.get("/ln")[0], 403)
        self.assertEqual(self.get("/data/keys")[0], 403)
        self.assertEqual(self.get("/version/upper")[0], 403)

    def test_functions_publishable_not_traversable(self):
        self.assertEqual(self.get("/say/whatever")[0], 403)
        self.assertEqual(self.get("/gen_func")[0], 0)

    def test_instances_traversable(self):
        self.assertEqual(self.get("/obj/hi")[1].body_written(), b"hi from obj")
        self.assertEqual(self.get("/obj/label")[1].body_written(), b"an object")

    def test_method_rules(self):
        self.assertEqual(self.get("/whoami", method="POST", headers=[("Content-Length", "0")])[1]
                         .body_written(), b"POST")
        status, host = self.get("/whoami", method="HEAD")
        self.assertEqual((status, host.body_written()), (0, b"HEAD"))
        status, host = self.get("/whoami", method="PUT")
        self.assertEqual((status, host.body_written()), (405, b""))
        self.assertEqual(host.allowed, [("0", ["GET", "POST", "HEAD"])])
        self.assertEqual(self.get("/whoami", method="DELETE")[0], 405)

    # -- publishing --

    def test_non_callables(self):
        self.assertEqual(self.get("/version")[1].body_written(), b"1.0")
        self.assertEqual(self.get("/count")[1].body_written(), b"3")

    def test_req_passed_only_when_asked(self):
        self.assertEqual(self.get("/whoami")[1].body_written(), b"GET")
        self.assertEqual(self.get("/plain", args="a=1&req=x&c=3")[1].body_written(),
                         b"a=1 b=-")

    def test_form_fields_as_arguments(self):
        body = b"a=1&b=2&extra=e"
        status, host = self.get("/add", method="POST", body=body,
                                headers=[("Content-Type", "application/x-www-form-urlencoded")])
        self.assertEqual(host.body_written(), b"1+2 [('extra', 'e')]")
        self.assertEqual(self.get("/many", args="x=1&x=2")[1].body_written(), b"['1', '2']")
        # A missing required argument is an error (500), as in mod_python.
        self.assertEqual(self.get("/add", args="a=1")[0], 500)

    def test_none_publishes_nothing(self):
        status, host = self.get("/nothing")
        self.assertEqual((status, host.body_written()), (0, b"direct "))

    def test_bytes_written_as_they_are(self):
        self.assertEqual(self.get("/raw")[1].body_written(), b"\x00\xffbytes")

    def test_str_as_utf8(self):
        self.assertEqual(self.get("/unicode")[1].body_written(), "café".encode())

    def test_content_type_guess(self):
        self.assertEqual(self.get("/page")[1].fields["content_type"], "text/html")
        self.assertEqual(self.get("/page_upper")[1].fields["content_type"], "text/html")
        # mod_python looks at the end of the text, not at its start.
        self.assertEqual(self.get("/starts_html")[1].fields["content_type"], "text/plain")
        self.assertEqual(self.get("/json")[1].fields["content_type"], "application/json")

    def test_returned_callable_is_called(self):
        self.assertEqual(self.get("/returns_callable")[1].body_written(), b"from the lambda")

    def test_written_unflushed(self):
        _, host = self.get("/say")
        self.assertEqual([e[2] for e in host.events if e[0] == "write"], [False])

    # -- reloading --

    def test_reload_on_change(self):
        page = self.write("r.py", "def index(req):\n    return 'v1'\n")
        run = lambda **kw: self.run_handler("/r.py", page, **kw)[1].body_written()  # noqa: E731
        self.assertEqual(run(), b"v1")
        first = publisher.page_cache._pages[page].module
        self.assertEqual(run(), b"v1")
        self.assertIs(publisher.page_cache._pages[page].module, first)
        self.write("r.py", "def index(req):\n    return 'v2'\n", bump=5)
        self.assertEqual(run(config=[("PythonAutoReload", "0")]), b"v1")
        self.assertEqual(run(), b"v2")
        self.assertIsNot(publisher.page_cache._pages[page].module, first)
        # The page is a module of its own, in sys.modules under its path.
        module = publisher.page_cache._pages[page].module
        self.assertEqual(module.__file__, page)
        self.assertIs(sys.modules[module.__name__], module)

    def test_broken_page_is_500_and_not_cached(self):
        page = self.write("bad.py", "def index(req)\n")
        self.assertEqual(self.run_handler("/bad.py", page)[0], 500)
        self.assertNotIn(page, publisher.page_cache)
        self.write("bad.py", "def index(req):\n    return 'fixed'\n", bump=5)
        self.assertEqual(self.run_handler("/bad.py", page)[1].body_written(), b"fixed")

    def test_debug_logs_loading(self):
        page = self.write("dbg.py", "def index(req):\n    return None\n")
        _, host = self.run_handler("/dbg.py", page, config=[("PythonDebug", "1")])
        messages = [m for _, m in host.logs]
        self.assertIn(f"Publisher loading page {page}", messages)
        self.assertIn("mod_python.publisher: nothing to publish.", messages)


SECURE = '''
__auth_realm__ = "Members only"
__auth__ = {"eggs": "spam", "joe": "eoj"}
__access__ = ["eggs"]

def hello(req):
    return "hello " + req.form.getfirst("x", "")
'''

SECURE_FUNCS = '''
__auth_realm__ = "Members"

def __auth__(req, user, passwd):
    return (user, passwd) in (("eggs", "spam"), ("joe", "eoj"))

def __access__(req, user):
    return user == "eggs"

def hello(req):
    return "hello"

def who(req):
    return "%s %s" % (req.user, req.ap_auth_type)
'''

FUNCTION_LEVEL = '''
ADMINS = ["root"]

def sensitive(req):
    __auth_realm__ = "Sensitive"

    def __auth__(req, user, password):
        return user == "spam" and password == "eggs"

    return "sensitive information"

def dict_auth(req):
    __auth__ = {"a": "b"}
    __access__ = ("a",)
    return "dict ok"

def closed(req):
    __auth__ = 0
    return "never"

def no_access(req):
    __access__ = False
    return "never"

def global_list(req):
    __access__ = ADMINS
    return "admin"

def attributed(req):
    return "attributed"

attributed.__auth__ = {"x": "y"}

def tricky(req):
    __auth__, other = {"a": "b"}, 1
    return "never"

class Area:
    __auth_realm__ = "Area"
    def __auth__(self, req, user, passwd):
        return user == "area" and passwd == "pw"
    def page(self, req):
        return "area page"
    def open(self):
        return "never open"

area = Area()

def public(req):
    return "public"
'''


class PublisherAuthTest(HandlerCase):
    def setUp(self):
        super().setUp()
        self.secure = self.write("secure.py", SECURE)
        self.funcs = self.write("funcs.py", SECURE_FUNCS)
        self.fl = self.write("fl.py", FUNCTION_LEVEL)

    def call(self, path, path_info, *headers, **kw):
        return self.run_handler("/x" + path_info, path, path_info=path_info,
                                headers=list(headers), **kw)

    def challenge(self, host):
        return dict(host.tables[TableKind.ERR_HEADERS_OUT]).get("WWW-Authenticate")

    def test_module_dict_and_list(self):
        status, host = self.call(self.secure, "/hello")
        self.assertEqual(status, 401)
        self.assertEqual(self.challenge(host), 'Basic realm="Members only"')
        self.assertEqual(host.body_written(), b"")
        status, host = self.call(self.secure, "/hello", basic("eggs", "wrong"))
        self.assertEqual(status, 401)
        self.assertEqual(self.challenge(host), 'Basic realm="Members only"')
        status, host = self.call(self.secure, "/hello", basic("eggs", "spam"), args="x=1")
        self.assertEqual((status, host.body_written()), (0, b"hello 1"))
        self.assertEqual(self.call(self.secure, "/hello", basic("joe", "eoj"))[0], 403)
        self.assertEqual(self.call(self.secure, "/hello", basic("nobody", "x"))[0], 401)

    def test_authenticated_user_is_req_user(self):
        status, host = self.call(self.funcs, "/who", basic("eggs", "spam"))
        self.assertEqual((status, host.body_written()), (0, b"eggs Basic"))
        self.assertEqual(host.fields["user"], "eggs")
        # __access__ alone does not authenticate anyone.
        status, host = self.call(self.fl, "/global_list", basic("root", "x"))
        self.assertIsNone(host.fields.get("user"))

    def test_module_functions(self):
        self.assertEqual(self.call(self.funcs, "/hello")[0], 401)
        self.assertEqual(self.call(self.funcs, "/hello", basic("joe", "eoj"))[0], 403)
        status, host = self.call(self.funcs, "/hello", basic("eggs", "spam"))
        self.assertEqual((status, host.body_written()), (0, b"hello"))

    def test_function_level_nested_def(self):
        status, host = self.call(self.fl, "/sensitive")
        self.assertEqual(status, 401)
        self.assertEqual(self.challenge(host), 'Basic realm="Sensitive"')
        self.assertEqual(self.call(self.fl, "/sensitive", basic("spam", "bad"))[0], 401)
        status, host = self.call(self.fl, "/sensitive", basic("spam", "eggs"))
        self.assertEqual(host.body_written(), b"sensitive information")

    def test_function_level_constants_and_containers(self):
        self.assertEqual(self.call(self.fl, "/dict_auth", basic("a", "b"))[1].body_written(),
                         b"dict ok")
        self.assertEqual(self.call(self.fl, "/dict_auth", basic("a", "c"))[0], 401)
        self.assertEqual(self.call(self.fl, "/closed", basic("a", "b"))[0], 401)
        self.assertEqual(self.call(self.fl, "/no_access", basic("a", "b"))[0], 403)
        self.assertEqual(self.call(self.fl, "/no_access")[0], 403)
        self.assertEqual(self.call(self.fl, "/global_list", basic("root", "x"))[0], 0)
        self.assertEqual(self.call(self.fl, "/global_list", basic("other", "x"))[0], 403)

    def test_function_attributes(self):
        self.assertEqual(self.call(self.fl, "/attributed")[0], 401)
        self.assertEqual(self.call(self.fl, "/attributed", basic("x", "y"))[0], 0)

    def test_unreadable_local_fails_closed(self):
        self.assertEqual(self.call(self.fl, "/tricky", basic("a", "b"))[0], 500)
        self.assertIn("cannot tell the value of __auth__", self.stderr.getvalue())

    def test_object_on_the_way(self):
        status, host = self.call(self.fl, "/area/page")
        self.assertEqual(status, 401)
        self.assertEqual(self.challenge(host), 'Basic realm="Area"')
        status, host = self.call(self.fl, "/area/page", basic("area", "pw"))
        self.assertEqual(host.body_written(), b"area page")
        self.assertEqual(self.call(self.fl, "/public")[1].body_written(), b"public")

    def test_realm_is_quoted(self):
        page = self.write("q.py", '__auth_realm__ = \'say "hi"\'\n__auth__ = 0\n'
                                  'def index(req):\n    return "x"\n')
        status, host = self.run_handler("/q.py", page)
        self.assertEqual(status, 401)
        self.assertEqual(self.challenge(host), 'Basic realm="say \\"hi\\""')

    def test_bad_authorization_header(self):
        no_colon = ("Authorization", "Basic " + base64.b64encode(b"nocolon").decode())
        self.assertEqual(self.call(self.secure, "/hello", no_colon)[0], 400)
        self.assertEqual(self.call(self.secure, "/hello", basic("eggs\r\nX: y", "spam"))[0], 400)
        # Another scheme counts as no credentials.
        self.assertEqual(self.call(self.secure, "/hello", ("Authorization", "Bearer abc"))[0], 401)

    def test_password_with_colon(self):
        page = self.write("c.py", '__auth__ = {"u": "p:w"}\ndef index(req):\n    return "in"\n')
        self.assertEqual(self.run_handler("/c.py", page, headers=[basic("u", "p:w")])[0], 0)


if __name__ == "__main__":
    unittest.main()
