"""mod_python.Cookie for mod_wasmpy: single cookies, signed cookies and
marshalled cookies, with mod_python 3.5's classes, functions and formats.

- `Cookie(name, value, **attributes)`: one cookie (not a dict of morsels as
  `http.cookies`). The attributes are those mod_python knows (version, path,
  domain, secure, comment, expires, max_age, samesite, commentURL, discard,
  port, httponly); any other name raises AttributeError. `str(cookie)` is the
  value of a `Set-Cookie` header, written as mod_python writes it: attributes
  in that fixed order, names in lower case as given (`max_age=...`), the flags
  (secure, discard, httponly) as a bare word whenever they are set, whatever
  their value, and no quoting.
- `Cookie.parse(text, names=None)`: a dict name -> cookie of a `Cookie` (or
  `Set-Cookie`) header value, parsed with mod_python's rules (names starting
  with `$` dropped, the last of a repeated name wins, quotes kept).
- `SignedCookie(name, value, secret)`: the value is sent as
  `hexdigest(HMAC(secret, name + value)) + value`. On parsing, a cookie whose
  signature does not verify is, as in mod_python, turned into a plain
  `Cookie` holding the raw value (`mismatch=Cookie.DOWNGRADE`, the default),
  left out (`Cookie.IGNORE`) or reported (`Cookie.EXCEPTION`: CookieError).
- `MarshalCookie(name, value, secret)`: any marshallable value, as
  signature + base64(marshal(value)). The signature is checked before
  anything is decoded: the data of a cookie that does not verify is never
  given to `marshal.loads`.

The digest. mod_python 3.5 calls `hmac.new(secret, name)` without a digest:
that was HMAC-MD5 on the Pythons of its time and is a TypeError on current
Python (3.8 and later), so its signed cookies do not work there at all. Here
the digest is the class attribute `SignedCookie.digestmod`, **HMAC-SHA256**
by default: a 64-hex-digit signature. Setting
`Cookie.SignedCookie.digestmod = "md5"` (once, e.g. in a PythonImport module)
gives the 32-hex-digit HMAC-MD5 signatures mod_python wrote on Python 2, so
that cookies issued by such a server before the move keep verifying (and
MarshalCookies signed there verify, though values marshalled by Python 2 may
come back as bytes). Signatures are compared with `hmac.compare_digest`.
A str secret is used as its UTF-8 bytes.

The functions: `add_cookie(req, cookie)` or `add_cookie(req, name, value,
**attributes)` adds a `Set-Cookie` to `req.headers_out` (and, with the first
one, `Cache-Control: no-cache="set-cookie"`); `get_cookies(req, Class=Cookie,
**kw)` and `get_cookie(req, name, Class=Cookie, **kw)` parse the request's
`Cookie` headers with `Class.parse(..., **kw)` (pass `secret=` for the signed
classes).
"""

import base64
import binascii
import hmac
import marshal
import re
import time

__all__ = ["CookieError", "Cookie", "SignedCookie", "MarshalCookie",
           "add_cookie", "get_cookies", "get_cookie"]


class CookieError(Exception):
    pass


# The attributes a cookie may have, in the order they are written.
_ATTRIBUTES = ("version", "path", "domain", "secure", "comment", "expires", "max_age",
               "samesite", "commentURL", "discard", "port", "httponly")
# Written as a bare word when set.
_FLAGS = frozenset(("secure", "discard", "httponly"))

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# The Netscape format mod_python accepts and writes: "Wdy, DD-Mon-YYYY HH:MM:SS GMT".
_EXPIRES = re.compile(
    r"(?P<wday>[A-Za-z]{3}), (?P<day>\d{1,2})-(?P<month>[A-Za-z]{3})-(?P<year>\d{4}) "
    r"(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2}) GMT")


def _format_expires(when):
    t = time.gmtime(when)
    return "%s, %02d-%s-%04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year,
        t.tm_hour, t.tm_min, t.tm_sec)


def _check_expires(text):
    m = _EXPIRES.fullmatch(text)
    ok = m is not None
    if ok:
        ok = (m["wday"].title() in _DAYS and m["month"].title() in _MONTHS
              and 1 <= int(m["day"]) <= 31 and int(m["h"]) <= 23
              and int(m["m"]) <= 59 and int(m["s"]) <= 61)
    if not ok:
        raise ValueError("Invalid expires time: %s" % text)


class metaCookie(type):
    """Keeps every cookie class restricted to the known attributes, as
    mod_python's metaclass does: a subclass without `__slots__` gets an
    empty one (so no instance `__dict__`)."""

    def __new__(mcls, name, bases, namespace):
        namespace.setdefault("__slots__", ())
        return super().__new__(mcls, name, bases, namespace)


# One pattern per `name[=value]` pair of a header, with mod_python's rules:
# leading spaces and commas are skipped; a name is anything but ';', ' ' and
# '='; the value is a double-quoted string (kept with its quotes) or
# everything up to the next ';'.
_PAIR = re.compile(r'[, ]*(?P<key>[^; =]+) *(?:= *)?'
                   r'(?P<val>"(?:[^\\"]|\\.)*"|[^;]*)\s*;?')


def _parse_cookie(text, Class, names=None):
    found = {}
    for m in _PAIR.finditer(text):
        key, val = m.group("key"), m.group("val")
        # "$Version", "$Path", ...: attributes of RFC 2965 cookies, not cookies.
        if key.startswith("$"):
            continue
        if names is not None and key not in names:
            continue
        found[key] = Class(key, val)
    return found


class Cookie(metaclass=metaCookie):
    """One cookie: `name`, `value` and the attributes of `_valid_attr`."""

    DOWNGRADE = 0
    IGNORE = 1
    EXCEPTION = 3

    _valid_attr = _ATTRIBUTES
    __slots__ = tuple(a for a in _ATTRIBUTES if a != "expires") + (
        "name", "value", "_expires", "__data__")

    def __init__(self, name, value, **kw):
        self.name = name
        self.value = value
        for key, val in kw.items():
            setattr(self, key.lower(), val)
        # For subclasses' own use (SignedCookie keeps its secret here).
        self.__data__ = {}

    @classmethod
    def parse(cls, str, names=None):
        """The cookies of a `Cookie` header value (without the header name),
        as a dict name -> instance of this class."""
        return _parse_cookie(str, cls, names)

    @property
    def expires(self):
        return self._expires

    @expires.setter
    def expires(self, value):
        # A string must already be in the Netscape format; a number is a
        # time as time.time() gives, written in that format.
        if isinstance(value, str):
            _check_expires(value)
            self._expires = value
        else:
            self._expires = _format_expires(value)

    def _render(self, value):
        parts = ["%s=%s" % (self.name, value)]
        for attr in self._valid_attr:
            if hasattr(self, attr):
                parts.append(attr if attr in _FLAGS else "%s=%s" % (attr, getattr(self, attr)))
        return "; ".join(parts)

    def __str__(self):
        """The value of a `Set-Cookie` header for this cookie."""
        return self._render(self.value)

    def __repr__(self):
        return "<%s: %s>" % (type(self).__name__, str(self))


def _bytes(text):
    if isinstance(text, (bytes, bytearray)):
        return bytes(text)
    if not isinstance(text, str):
        text = "%s" % (text,)
    return text.encode("utf-8", "surrogateescape")


class SignedCookie(Cookie):
    """A cookie whose value carries an HMAC of the name and value, so that a
    client cannot change it without the secret. The value is readable by
    the client: it is signed, not encrypted."""

    #: The HMAC digest (a hashlib name or constructor): "sha256", or "md5"
    #: for the signatures mod_python produced on Python 2.
    digestmod = "sha256"

    def __init__(self, name, value, secret=None, **kw):
        super().__init__(name, value, **kw)
        self.__data__["secret"] = secret

    @classmethod
    def _signature_length(cls):
        return 2 * hmac.new(b"", b"", cls.digestmod).digest_size

    def _mac(self, secret, text):
        if not secret:
            raise CookieError("Cannot sign without a secret")
        mac = hmac.new(_bytes(secret), _bytes(self.name), type(self).digestmod)
        mac.update(_bytes(text))
        return mac.hexdigest()

    def hexdigest(self, str):
        """The signature of `str` for this cookie's name, with its secret."""
        return self._mac(self.__data__.get("secret"), str)

    def __str__(self):
        return self._render(self.hexdigest(self.value) + "%s" % (self.value,))

    def unsign(self, secret):
        """Verify the signature the value starts with and strip it; raise
        CookieError (and leave the cookie as it was) when it does not verify."""
        raw = self.value if isinstance(self.value, str) else "%s" % (self.value,)
        if not secret:
            raise CookieError("Cannot verify a cookie without a secret: %s" % self.name)
        n = self._signature_length()
        sig, val = raw[:n], raw[n:]
        expected = self._mac(secret, val)
        if len(raw) < n or not hmac.compare_digest(_bytes(sig), expected.encode("ascii")):
            raise CookieError("Incorrectly Signed Cookie: %s=%s" % (self.name, raw))
        self.value = val
        self.__data__["secret"] = secret

    def _verify(self, secret):
        self.unsign(secret)

    @classmethod
    def parse(cls, s, secret, mismatch=Cookie.DOWNGRADE, **kw):
        """As Cookie.parse, keeping only cookies whose signature verifies with
        `secret`; the others are downgraded to plain Cookies holding the raw
        value, ignored, or raise CookieError, as `mismatch` says."""
        cookies = _parse_cookie(s, cls, **kw)
        for name in list(cookies):
            cookie = cookies[name]
            raw = cookie.value
            try:
                cookie._verify(secret)
            except CookieError:
                if mismatch == Cookie.EXCEPTION:
                    raise
                if mismatch == Cookie.IGNORE:
                    del cookies[name]
                else:
                    cookies[name] = Cookie(name, raw)
        return cookies


class MarshalCookie(SignedCookie):
    """A signed cookie whose value is any marshallable object. The signature
    is verified before the data is base64-decoded and unmarshalled."""

    def __str__(self):
        data = base64.b64encode(marshal.dumps(self.value)).decode("ascii")
        return self._render(self.hexdigest(data) + data)

    def unmarshal(self, secret):
        self.unsign(secret)  # raises on a bad signature: nothing decoded then
        try:
            data = base64.b64decode(_bytes(self.value))
        except (binascii.Error, ValueError) as exc:
            raise CookieError("Cannot base64 Decode Cookie: %s=%s"
                              % (self.name, self.value)) from exc
        try:
            self.value = marshal.loads(data)
        except (EOFError, ValueError, TypeError) as exc:
            raise CookieError("Cannot Unmarshal Cookie: %s=%s"
                              % (self.name, self.value)) from exc

    def _verify(self, secret):
        self.unmarshal(secret)


def add_cookie(req, cookie, value="", **kw):
    """Add a `Set-Cookie` header to req.headers_out: `cookie` is a Cookie, or
    a name (then `value` and the attributes in `kw` make the cookie). The
    first one also adds `Cache-Control: no-cache="set-cookie"`."""
    if not isinstance(cookie, Cookie):
        cookie = Cookie(cookie, value, **kw)
    if "Set-Cookie" not in req.headers_out:
        req.headers_out.add("Cache-Control", 'no-cache="set-cookie"')
    req.headers_out.add("Set-Cookie", str(cookie))


def get_cookies(req, Class=Cookie, **kw):
    """The cookies of the request, parsed by `Class.parse(header, **kw)`."""
    if "cookie" not in req.headers_in:
        return {}
    header = req.headers_in["cookie"]
    if isinstance(header, list):
        header = "; ".join(header)
    return Class.parse(header, **kw)


def get_cookie(req, name, Class=Cookie, **kw):
    """The request's cookie `name` (parsed by `Class`), or None."""
    return get_cookies(req, Class, names=[name], **kw).get(name)
