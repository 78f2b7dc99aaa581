"""The example mod_python site, published by mod_python.publisher:
/modpython/ is index(), /modpython/hello?name=you is hello(), and so on."""

from mod_python import Cookie, Session

SECRET = "change me: the example's cookie secret"

PAGE = """<html><head><title>mod_python on mod_wasmpy</title></head><body>
<h1>mod_python on mod_wasmpy</h1>
<p>%s</p>
<ul>
<li><a href="hello?name=world">hello?name=world</a>: a published function with a form argument</li>
<li><a href="counter">counter</a>: a session (kept in this tenant's private state)</li>
<li><a href="login?user=alice">login?user=alice</a> then <a href="whoami">whoami</a>: a signed cookie</li>
<li><a href="guestbook.psp">guestbook.psp</a>: a PSP page with a form and a session</li>
</ul>
</body></html>"""


def index(req):
    return PAGE % "Every page here runs in this tenant's WebAssembly sandbox."


def hello(req, name="world"):
    return "Hello, %s!" % name


def counter(req):
    session = Session.Session(req)
    session["visits"] = session.get("visits", 0) + 1
    session.save()
    return "visit %d of this session (%s)" % (session["visits"], session.id())


def login(req, user):
    Cookie.add_cookie(req, Cookie.SignedCookie("user", user, SECRET, path="/modpython/"))
    return "logged in as %s" % user


def whoami(req):
    cookie = Cookie.get_cookie(req, "user", Cookie.SignedCookie, secret=SECRET)
    if cookie is None:
        return "nobody (no cookie)"
    if type(cookie) is not Cookie.SignedCookie:
        return "nobody (the cookie's signature does not match)"
    return "you are %s" % cookie.value
