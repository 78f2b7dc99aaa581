"""Published with `PythonHandler mod_python.publisher` (tests/tests/mplib.rs)."""

import hashlib
import os

from mod_python import Cookie, Session

SECRET = "s3cret"


def index(req):
    return "publisher index"


def hello(name="world"):
    return "hello %s" % name


def add(req, a, b="0"):
    return "%s %d" % (req.method, int(a) + int(b))


def page():
    return "<html><body>a page</body></html>"


def _private():
    return "never published"


class Greeter:
    def greet(self):
        return "greetings"


greeter = Greeter()


def counter(req):
    """A session counter (FileSession by default here: it lives in the
    tenant's state directory, shared by every Apache child)."""
    session = Session.Session(req)
    session["n"] = session.get("n", 0) + 1
    session.save()
    return "%d %s" % (session["n"], bool(session.is_new()))


def short(req):
    """A session that expires after one second."""
    session = Session.Session(req, timeout=1)
    new = bool(session.is_new())
    session["seen"] = True
    session.save()
    return "new" if new else "known"


def setcookie(req):
    Cookie.add_cookie(req, Cookie.SignedCookie("auth", "alice", SECRET))
    Cookie.add_cookie(req, Cookie.MarshalCookie("data", {"n": [1, 2]}, SECRET))
    return "set"


def readcookie(req):
    cookies = Cookie.get_cookies(req, Cookie.SignedCookie, secret=SECRET)
    auth = cookies.get("auth")
    if auth is None:
        return "none"
    if type(auth) is not Cookie.SignedCookie:
        return "refused"
    return "valid " + auth.value


def readmarshal(req):
    cookies = Cookie.get_cookies(req, Cookie.MarshalCookie, secret=SECRET)
    data = cookies.get("data")
    if data is None:
        return "none"
    if type(data) is not Cookie.MarshalCookie:
        return "refused"
    return "valid %r" % (data.value,)


def upload(req):
    # The publisher has read the body into req.form (a second FieldStorage
    # would find it consumed, as under mod_python).
    form = req.form
    field = form["file"]
    digest = hashlib.sha256(field.file.read()).hexdigest()
    return "%s %s %s" % (field.filename, digest, form.getfirst("note"))


def where(req):
    """Where this tenant keeps its state (as the guest sees it)."""
    return " ".join(sorted(os.listdir("/.wasmpy/state")))
