"""mod_python.Cookie: rendering, parsing, signed and marshalled cookies,
tampering, the request functions."""

import hashlib
import hmac
import marshal
import unittest
from unittest import mock

from tests import fakehost
from tests.fakehost import FakeHost, TableKind

from mod_python import Cookie
from wasmpy.request import Request


def make_req(cookie_headers=(), rid=31):
    host = fakehost.use(FakeHost(rid=rid, tables={
        TableKind.HEADERS_IN: [("Cookie", h) for h in cookie_headers]}))
    return Request(rid), host


class CookieRenderTest(unittest.TestCase):
    def test_plain(self):
        self.assertEqual(str(Cookie.Cookie("spam", "eggs")), "spam=eggs")

    def test_attributes_in_mod_python_order(self):
        c = Cookie.Cookie("spam", "eggs", path="/app", Domain="example.org", secure=1,
                          httponly=True, max_age=300, version=1, comment="hi", samesite="Lax")
        self.assertEqual(str(c), "spam=eggs; version=1; path=/app; domain=example.org; secure; "
                                 "comment=hi; max_age=300; samesite=Lax; httponly")
        self.assertEqual(repr(c), "<Cookie: %s>" % c)

    def test_flag_written_whenever_set(self):
        # As mod_python: a set flag is written whatever its value.
        self.assertEqual(str(Cookie.Cookie("a", "b", secure=0)), "a=b; secure")

    def test_expires_number_and_string(self):
        c = Cookie.Cookie("a", "b", expires=0)
        self.assertEqual(c.expires, "Thu, 01-Jan-1970 00:00:00 GMT")
        c.expires = 1700000000
        self.assertEqual(c.expires, "Tue, 14-Nov-2023 22:13:20 GMT")
        c.expires = "Wed, 01-Jan-2031 10:00:00 GMT"
        self.assertEqual(str(c), "a=b; expires=Wed, 01-Jan-2031 10:00:00 GMT")
        for bad in ("tomorrow", "Wed, 01 Jan 2031 10:00:00 GMT", "Wed, 01-Foo-2031 10:00:00 GMT"):
            with self.assertRaises(ValueError):
                c.expires = bad

    def test_unknown_attribute_refused(self):
        with self.assertRaises(AttributeError):
            Cookie.Cookie("a", "b", colour="red")
        c = Cookie.Cookie("a", "b")
        with self.assertRaises(AttributeError):
            c.colour = "red"

        class Mine(Cookie.Cookie):
            pass

        with self.assertRaises(AttributeError):
            Mine("a", "b").colour = "red"


class CookieParseTest(unittest.TestCase):
    def test_parse(self):
        cookies = Cookie.Cookie.parse('a=1; b = two ;$Version=1; c="x; y"; d=e=f;e=')
        self.assertEqual({k: v.value for k, v in cookies.items()},
                         {"a": "1", "b": "two ", "c": '"x; y"', "d": "e=f", "e": ""})
        self.assertIsInstance(cookies["a"], Cookie.Cookie)

    def test_last_repeated_wins_and_names(self):
        cookies = Cookie.Cookie.parse("a=1; b=2; a=3")
        self.assertEqual(cookies["a"].value, "3")
        self.assertEqual(list(Cookie.Cookie.parse("a=1; b=2", names=["b"])), ["b"])


class SignedCookieTest(unittest.TestCase):
    def test_roundtrip_sha256(self):
        c = Cookie.SignedCookie("user", "alice", "s3cret", path="/")
        text = str(c)
        sig = hmac.new(b"s3cret", b"useralice", hashlib.sha256).hexdigest()
        self.assertEqual(text, "user=%salice; path=/" % sig)
        parsed = Cookie.SignedCookie.parse(text.split(";")[0], "s3cret")["user"]
        self.assertIsInstance(parsed, Cookie.SignedCookie)
        self.assertEqual(parsed.value, "alice")

    def test_md5_gives_mod_python_python2_format(self):
        with mock.patch.object(Cookie.SignedCookie, "digestmod", "md5"):
            c = Cookie.SignedCookie("user", "alice", "s3cret")
            sig = hmac.new(b"s3cret", b"useralice", hashlib.md5).hexdigest()
            self.assertEqual(str(c), "user=%salice" % sig)
            self.assertEqual(len(sig), 32)
            parsed = Cookie.SignedCookie.parse(str(c), "s3cret")["user"]
            self.assertEqual((type(parsed), parsed.value), (Cookie.SignedCookie, "alice"))

    def test_tampered_is_downgraded_ignored_or_raised(self):
        good = str(Cookie.SignedCookie("user", "alice", "s3cret"))
        bad = good[:-5] + "admin"
        other = str(Cookie.SignedCookie("user", "alice", "other"))
        for text in (bad, other, "user=alice", "user="):
            got = Cookie.SignedCookie.parse(text, "s3cret")["user"]
            self.assertIs(type(got), Cookie.Cookie)
            self.assertEqual(got.value, text.split("=", 1)[1])
            self.assertEqual(Cookie.SignedCookie.parse(text, "s3cret", Cookie.Cookie.IGNORE), {})
            with self.assertRaises(Cookie.CookieError):
                Cookie.SignedCookie.parse(text, "s3cret", Cookie.Cookie.EXCEPTION)

    def test_signature_compared_in_constant_time(self):
        text = str(Cookie.SignedCookie("user", "alice", "s3cret"))
        with mock.patch.object(Cookie.hmac, "compare_digest", wraps=hmac.compare_digest) as cd:
            Cookie.SignedCookie.parse(text, "s3cret")
        cd.assert_called_once()

    def test_no_secret(self):
        with self.assertRaises(Cookie.CookieError):
            str(Cookie.SignedCookie("a", "b"))
        text = str(Cookie.SignedCookie("a", "b", "k"))
        self.assertIs(type(Cookie.SignedCookie.parse(text, None)["a"]), Cookie.Cookie)
        self.assertIs(type(Cookie.SignedCookie.parse(text, "")["a"]), Cookie.Cookie)

    def test_non_ascii_signature_is_just_a_mismatch(self):
        got = Cookie.SignedCookie.parse("a=" + "é" * 70, "k")["a"]
        self.assertIs(type(got), Cookie.Cookie)


class MarshalCookieTest(unittest.TestCase):
    VALUE = {"egg_count": 32, "color": "white", "list": [1, 2.5, None], "b": b"\x00\xff"}

    def test_roundtrip(self):
        text = str(Cookie.MarshalCookie("spam", self.VALUE, "secret007"))
        self.assertNotIn("\n", text)
        got = Cookie.MarshalCookie.parse(text, "secret007")["spam"]
        self.assertIsInstance(got, Cookie.MarshalCookie)
        self.assertEqual(got.value, self.VALUE)

    def test_tampered_never_unmarshalled(self):
        text = str(Cookie.MarshalCookie("spam", self.VALUE, "secret007"))
        name, value = text.split("=", 1)
        sig, data = value[:64], value[64:]
        evil = Cookie.base64.b64encode(marshal.dumps({"admin": True})).decode()
        forged = [
            "spam=%s%s" % (sig, evil),                          # old signature, new data
            "spam=%s%s" % ("0" * 64, data),                     # bad signature
            str(Cookie.MarshalCookie("spam", {"admin": True}, "guess")),  # another secret
            "spam=" + evil,                                     # no signature
        ]
        with mock.patch.object(Cookie.marshal, "loads", wraps=marshal.loads) as loads, \
                mock.patch.object(Cookie.base64, "b64decode", wraps=Cookie.base64.b64decode) as dec:
            for text in forged:
                got = Cookie.MarshalCookie.parse(text, "secret007")["spam"]
                self.assertIs(type(got), Cookie.Cookie)
                self.assertEqual(got.value, text.split("=", 1)[1])
                self.assertEqual(Cookie.MarshalCookie.parse(text, "secret007", Cookie.Cookie.IGNORE), {})
                with self.assertRaises(Cookie.CookieError):
                    Cookie.MarshalCookie.parse(text, "secret007", Cookie.Cookie.EXCEPTION)
        loads.assert_not_called()
        dec.assert_not_called()

    def test_signed_garbage_is_an_error_not_a_crash(self):
        c = Cookie.SignedCookie("spam", "!!notbase64marshal", "k")
        got = Cookie.MarshalCookie.parse(str(c), "k")["spam"]
        self.assertIs(type(got), Cookie.Cookie)
        with self.assertRaises(Cookie.CookieError):
            Cookie.MarshalCookie.parse(str(c), "k", Cookie.Cookie.EXCEPTION)


class RequestFunctionsTest(unittest.TestCase):
    def test_add_cookie(self):
        req, host = make_req()
        Cookie.add_cookie(req, Cookie.Cookie("a", "1", path="/"))
        Cookie.add_cookie(req, "b", "2", expires=0, httponly=1)
        self.assertEqual(host.tables[TableKind.HEADERS_OUT], [
            ("Cache-Control", 'no-cache="set-cookie"'),
            ("Set-Cookie", "a=1; path=/"),
            ("Set-Cookie", "b=2; expires=Thu, 01-Jan-1970 00:00:00 GMT; httponly"),
        ])

    def test_add_cookie_refuses_header_injection(self):
        req, _host = make_req()
        with self.assertRaises(ValueError):
            Cookie.add_cookie(req, "a", "1\r\nX-Evil: 1")

    def test_get_cookies(self):
        req, _ = make_req(["a=1; b=2", "c=3"])
        cookies = Cookie.get_cookies(req)
        self.assertEqual({k: v.value for k, v in cookies.items()}, {"a": "1", "b": "2", "c": "3"})
        self.assertEqual(Cookie.get_cookie(req, "c").value, "3")
        self.assertIsNone(Cookie.get_cookie(req, "zzz"))
        req, _ = make_req()
        self.assertEqual(Cookie.get_cookies(req), {})

    def test_get_signed_cookies(self):
        good = str(Cookie.SignedCookie("user", "alice", "k"))
        req, _ = make_req([good + "; plain=1"])
        cookies = Cookie.get_cookies(req, Cookie.SignedCookie, secret="k")
        self.assertIs(type(cookies["user"]), Cookie.SignedCookie)
        self.assertEqual(cookies["user"].value, "alice")
        self.assertIs(type(cookies["plain"]), Cookie.Cookie)
        got = Cookie.get_cookie(req, "user", Cookie.SignedCookie, secret="wrong")
        self.assertIs(type(got), Cookie.Cookie)
        m = str(Cookie.MarshalCookie("m", [1, 2], "k"))
        req, _ = make_req([m])
        self.assertEqual(Cookie.get_cookie(req, "m", Cookie.MarshalCookie, secret="k").value, [1, 2])


if __name__ == "__main__":
    unittest.main()
