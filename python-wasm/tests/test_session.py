"""mod_python.Session: File, Dbm and Memory sessions over the fake host: new,
load, save, invalidate, timeout, cleanup, invalid ids, locking across
processes, and the options that name paths."""

import fcntl
import hashlib
import os
import pickle
import select
import shutil
import signal
import tempfile
import time
import unittest
from unittest import mock

from tests import fakehost
from tests.fakehost import FakeHost, TableKind

import wasmpy.state
from mod_python import Session
from wasmpy import phases

SID = "0123456789abcdef0123456789abcdef"


class SessionTestBase(unittest.TestCase):
    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="session-state-")
        self.saved_directory = wasmpy.state.DIRECTORY
        wasmpy.state.DIRECTORY = self.state
        self.rid = 100
        Session.MemorySession.sdict.clear()
        # No random cleanups unless a test asks for one.
        patcher = mock.patch.object(Session, "CLEANUP_CHANCE", 10 ** 12)
        patcher.start()
        self.addCleanup(patcher.stop)

    def tearDown(self):
        for rid in list(phases._requests):
            phases.end_request(rid)
        wasmpy.state.DIRECTORY = self.saved_directory
        shutil.rmtree(self.state, ignore_errors=True)

    def request(self, cookie=None, options=(), fields=None):
        """A new request (ending the previous one), with a Cookie header."""
        for rid in list(phases._requests):
            phases.end_request(rid)
        self.rid += 1
        headers = [("Cookie", cookie)] if cookie else []
        self.host = fakehost.use(FakeHost(rid=self.rid, fields=dict(fields or {"uri": "/app/x"}),
                                          tables={TableKind.HEADERS_IN: headers}))
        req = phases._request_for(self.rid)
        req.__dict__["_wp_options"] = tuple(options)
        return req

    def end(self):
        phases.end_request(self.rid)

    def set_cookies(self):
        return [v for k, v in self.host.tables[TableKind.HEADERS_OUT] if k == "Set-Cookie"]

    def sid_cookie(self, sess, name="pysid"):
        return "%s=%s" % (name, sess.id())

    def held(self, key):
        """Whether another open file description can take the lock `key`
        (the fake host's flock): False when some holder has it."""
        name = hashlib.sha256(key.encode()).hexdigest()[:16]
        fd = os.open(os.path.join(fakehost.STATE.dir, name), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


class CommonBehaviour:
    """Tests every storage class passes; `make(req, **kw)` makes a session."""

    def test_new_save_load(self):
        req = self.request()
        s = self.make(req)
        self.assertTrue(s.is_new())
        self.assertRegex(s.id(), r"^[0-9a-f]{32}$")
        self.assertEqual(s.timeout(), Session.DFT_TIMEOUT)
        self.assertEqual(self.set_cookies(), ["pysid=%s; path=/" % s.id()])
        self.assertEqual(
            [v for k, v in self.host.tables[TableKind.HEADERS_OUT] if k == "Cache-Control"],
            ['no-cache="set-cookie"'])
        s["user"] = "alice"
        s["n"] = [1, 2]
        s.save()
        created, sid = s.created(), s.id()
        self.end()

        req = self.request(cookie="other=1; pysid=%s" % sid)
        s2 = self.make(req)
        self.assertFalse(s2.is_new())
        self.assertEqual((s2.id(), dict(s2)), (sid, {"user": "alice", "n": [1, 2]}))
        self.assertEqual(s2.created(), created)
        self.assertGreaterEqual(s2.last_accessed(), created)
        self.assertEqual(self.set_cookies(), [])

    def test_unknown_sid_gives_new_session(self):
        req = self.request(cookie="pysid=" + SID)
        s = self.make(req)
        self.assertTrue(s.is_new())
        self.assertNotEqual(s.id(), SID)

    def test_bad_sids_from_cookie_are_replaced(self):
        for bad in ("../../../../etc/passwd", SID.upper(), SID[:-1], SID + "0", SID[:-2] + "/x",
                    "..%2f" + SID[5:], '"%s"' % SID, SID[:31] + "\t", ""):
            cls = type(self.make(self.request()))
            req = self.request(cookie="pysid=" + bad)
            # Nothing is loaded, locked or opened for an invalid id: a new session at once.
            with mock.patch.object(cls, "do_load", side_effect=AssertionError("loaded")), \
                    mock.patch.object(Session._state, "lock", wraps=Session._state.lock) as lock, \
                    mock.patch("builtins.open", side_effect=AssertionError("file access")), \
                    mock.patch("io.open", side_effect=AssertionError("file access")):
                s = self.make(req)
            self.assertTrue(s.is_new())
            self.assertRegex(s.id(), r"^[0-9a-f]{32}$")
            self.assertEqual(lock.call_args_list, [mock.call(Session._lock_key(s.id()))])

    def test_bad_sid_argument_raises(self):
        for bad in ("../x", SID.upper(), SID + "\n", b"x" * 32):
            req = self.request()
            with self.assertRaises(ValueError):
                self.make(req, sid=bad)

    def test_sid_argument(self):
        req = self.request()
        s = self.make(req)
        s["k"] = 1
        s.save()
        sid = s.id()
        self.end()
        s2 = self.make(self.request(), sid=sid)
        self.assertFalse(s2.is_new())
        self.assertEqual(s2["k"], 1)

    def test_invalidate(self):
        req = self.request()
        s = self.make(req)
        s["k"] = 1
        s.save()
        sid = s.id()
        self.end()
        req = self.request(cookie="pysid=" + sid)
        s = self.make(req)
        s.invalidate()
        self.assertEqual(dict(s), {})
        self.assertEqual(self.set_cookies(),
                         ["pysid=%s; path=/; expires=Thu, 01-Jan-1970 00:00:00 GMT" % sid])
        s["again"] = 1
        s.save()  # nothing is saved after invalidate()
        self.end()
        s = self.make(self.request(cookie="pysid=" + sid))
        self.assertTrue(s.is_new())
        self.assertNotEqual(s.id(), sid)

    def test_timeout(self):
        req = self.request()
        s = self.make(req, timeout=60)
        self.assertEqual(s.timeout(), 60)
        s["k"] = 1
        s.save()
        sid = s.id()
        self.end()
        now = time.time()
        with mock.patch("time.time", return_value=now + 59):
            s = self.make(self.request(cookie="pysid=" + sid))
            self.assertFalse(s.is_new())
            self.assertEqual(s.timeout(), 60)
            s.set_timeout(10)
            s.save()
        self.end()
        with mock.patch("time.time", return_value=now + 59 + 11):
            s = self.make(self.request(cookie="pysid=" + sid))
            self.assertTrue(s.is_new())
            self.assertEqual(dict(s), {})

    def test_delete(self):
        req = self.request()
        s = self.make(req)
        s["k"] = 1
        s.save()
        s.delete()
        self.assertEqual(dict(s), {})
        sid = s.id()
        self.end()
        self.assertTrue(self.make(self.request(cookie="pysid=" + sid)).is_new())

    def test_cookie_name_path_domain_options(self):
        opts = [("mod_python.session.cookie_name", "sess"),
                ("mod_python.session.application_path", "/shop"),
                ("mod_python.session.application_domain", "example.org")]
        s = self.make(self.request(options=opts))
        self.assertEqual(self.set_cookies(), ["sess=%s; path=/shop; domain=example.org" % s.id()])
        s.save()
        sid = s.id()
        self.end()
        s = self.make(self.request(cookie="pysid=%s; sess=%s" % (SID, sid), options=opts))
        self.assertEqual((s.is_new(), s.id()), (False, sid))
        # The old option name.
        s = self.make(self.request(options=[("session_cookie_name", "old")]))
        self.assertTrue(self.set_cookies()[0].startswith("old="))

    def test_cookie_path_from_handler_directory(self):
        req = self.request(fields={"uri": "/shop/cart", "document_root": "/app"})
        req.__dict__["_wp_hlist"] = phases.HandlerList([("h", "/app/shop/", False)])
        self.make(req)
        self.assertTrue(self.set_cookies()[0].endswith("; path=/shop/"))
        req = self.request(fields={"uri": "/elsewhere", "document_root": "/app"})
        req.__dict__["_wp_hlist"] = phases.HandlerList([("h", "/app/shop/", False)])
        self.make(req)
        self.assertTrue(self.set_cookies()[0].endswith("; path=/"))

    def test_signed_session_cookie(self):
        for kw, opts in (({"secret": "k"}, ()), ({}, [("mod_python.session.secret", "k")])):
            s = self.make(self.request(options=opts), **kw)
            value = self.set_cookies()[0].split(";")[0]
            self.assertEqual(len(value), len("pysid=") + 64 + 32)
            self.assertTrue(value.endswith(s.id()))
            s["k"] = 1
            s.save()
            sid = s.id()
            self.end()
            s = self.make(self.request(cookie=value, options=opts), **kw)
            self.assertEqual((s.is_new(), s.id()), (False, sid))
            self.end()
            # Unsigned or wrongly signed: ignored, a new session.
            for cookie in ("pysid=" + sid, value[:-1] + ("0" if value[-1] != "0" else "1")):
                s = self.make(self.request(cookie=cookie, options=opts), **kw)
                self.assertTrue(s.is_new())
                self.assertNotEqual(s.id(), sid)
                self.end()

    def test_lock_held_until_unlock_or_request_end(self):
        req = self.request()
        s = self.make(req)
        key = Session._lock_key(s.id())
        self.assertTrue(self.held(key))
        s.unlock()
        self.assertFalse(self.held(key))
        s.lock()
        self.assertTrue(self.held(key))
        self.end()  # the cleanup mod_python registers releases it
        self.assertFalse(self.held(key))
        s = self.make(self.request(), lock=0)
        self.assertFalse(self.held(Session._lock_key(s.id())))

    def test_two_sessions_in_one_request_do_not_deadlock(self):
        s = self.make(self.request())
        s.save()
        sid = s.id()
        self.end()
        req = self.request(cookie="pysid=" + sid)
        a = self.make(req)
        b = self.make(req)
        self.assertEqual((a.id(), b.id()), (sid, sid))
        a.unlock()
        self.assertTrue(self.held(Session._lock_key(sid)))  # b still holds it
        b.unlock()
        self.assertFalse(self.held(Session._lock_key(sid)))

    def test_lock_blocks_another_process(self):
        s = self.make(self.request())
        s["v"] = "first"
        s.save()
        sid = s.id()
        self.end()

        s = self.make(self.request(cookie="pysid=" + sid))
        self.assertFalse(s.is_new())
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # another Apache child: its own lock file descriptions
            code = 1
            try:
                signal.alarm(20)  # never outlive a failed test
                os.close(r)
                # flock belongs to the open file description: the inherited
                # descriptors would keep the parent's locks held.
                for fd, _count in fakehost.STATE.held.values():
                    os.close(fd)
                fakehost.STATE.held = {}
                child = self.make(self.request(cookie="pysid=" + sid))
                os.write(w, ("%s %s" % (child.is_new(), child.get("v"))).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        try:
            ready, _, _ = select.select([r], [], [], 0.5)
            self.assertEqual(ready, [], "the second holder got the lock while it was held")
            s["v"] = "second"
            s.save()
            self.end()  # releases the lock
            ready, _, _ = select.select([r], [], [], 10)
            self.assertEqual(ready, [r])
            self.assertEqual(os.read(r, 100), b"False second")
        finally:
            os.close(r)
            status = self.reap(pid)
        self.assertEqual(status, 0)

    @staticmethod
    def reap(pid, seconds=10):
        """The child's exit status; killed if it is still there after `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        return os.waitpid(pid, 0)[1]

    def test_random_cleanup_is_registered(self):
        with mock.patch.object(Session, "CLEANUP_CHANCE", 1):
            self.make(self.request())
        self.assertTrue(any("cleanup" in m for _, m in self.host.logs))
        self.end()


class FileSessionTest(CommonBehaviour, SessionTestBase):
    def make(self, req, **kw):
        return Session.FileSession(req, **kw)

    def path_of(self, sid, base=None):
        base = base or os.path.join(self.state, "sessions")
        return os.path.join(base, "mp_sess", sid[:2], sid)

    def test_file_in_state_directory(self):
        s = self.make(self.request())
        s["k"] = 1
        s.save()
        path = self.path_of(s.id())
        with open(path, "rb") as f:
            record = pickle.load(f)
        self.assertEqual(record["_data"], {"k": 1})
        self.assertEqual(os.listdir(os.path.dirname(path)), [s.id()])  # no temporary left

    def test_atomic_write(self):
        s = self.make(self.request())
        s["k"] = "old"
        s.save()
        s["k"] = lambda: 0  # cannot be pickled: the save fails...
        s.save()
        with open(self.path_of(s.id()), "rb") as f:
            self.assertEqual(pickle.load(f)["_data"], {"k": "old"})  # ...the old file stays
        self.assertEqual(os.listdir(os.path.dirname(self.path_of(s.id()))), [s.id()])
        self.assertTrue(any("saving a session" in m for _, m in self.host.logs))

    def test_directory_options(self):
        for name in ("mod_python.file_session.database_directory",
                     "mod_python.session.database_directory", "session_directory"):
            for value, where in (("mine", "mine"), (os.path.join(self.state, "abs"), "abs"),
                                 ("a/../b", "b"), (".", "")):
                s = self.make(self.request(options=[(name, value)]))
                s.save()
                self.assertTrue(os.path.exists(self.path_of(s.id(), os.path.join(self.state, where))))

    def test_directory_options_outside_refused(self):
        outside = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, outside)
        for name in ("mod_python.file_session.database_directory",
                     "mod_python.session.database_directory", "session_directory"):
            for value in (outside, "/tmp", "..", "../x", "a/../../x", self.state + "x",
                          "/etc", ""):
                with self.assertRaises(ValueError, msg=value):
                    self.make(self.request(options=[(name, value)]))
        self.assertEqual(os.listdir(outside), [])

    def old_file(self, sid, age, timeout=60):
        """Write session `sid` last accessed `age` seconds ago."""
        path = self.path_of(sid)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        then = time.time() - age
        with open(path, "wb") as f:
            pickle.dump({"_data": {}, "_created": then, "_accessed": then, "_timeout": timeout}, f)
        os.utime(path, (then, then))
        return path

    def cleanup(self, **kw):
        req = self.request()
        s = self.make(req, timeout=60, **kw)
        s.cleanup()
        self.end()

    def test_cleanup(self):
        expired = self.old_file("a" * 32, 60 + 240 + 10)
        in_grace = self.old_file("b" * 32, 60 + 100)
        fresh = self.old_file("c" * 32, 5)
        long_lived = self.old_file("d" * 32, 60 + 240 + 10, timeout=10000)
        tmp = os.path.join(os.path.dirname(expired), ".%s.1234.tmp" % ("a" * 32))
        open(tmp, "w").close()
        os.utime(tmp, (0, 0))
        self.cleanup()
        self.assertFalse(os.path.exists(expired))
        self.assertFalse(os.path.exists(tmp))
        for kept in (in_grace, fresh, long_lived):
            self.assertTrue(os.path.exists(kept), kept)
        with open(os.path.join(self.state, "sessions", "mp_sess", "fs_status.txt")) as f:
            self.assertTrue(f.read().startswith("MPFS_3.2 0 0 0 "))

    def test_fast_cleanup_without_verify_goes_by_mtime(self):
        long_lived = self.old_file("d" * 32, 60 + 240 + 10, timeout=10000)
        self.cleanup(verify_cleanup=False)
        self.assertFalse(os.path.exists(long_lived))

    def test_cleanup_options(self):
        expired = self.old_file("a" * 32, 60 + 20)
        req = self.request(options=[("mod_python.file_session.cleanup_grace_period", "10"),
                                    ("mod_python.file_session.enable_fast_cleanup", "no")])
        s = self.make(req, timeout=60)
        self.assertEqual((s._grace_period, s._fast_cleanup, s._verify_cleanup), (10, False, True))
        s.cleanup()
        self.end()
        self.assertFalse(os.path.exists(expired))
        with self.assertRaises(ValueError):
            self.make(self.request(options=[("mod_python.file_session.enable_fast_cleanup", "maybe")]))

    def test_cleanup_time_limit_resumes(self):
        paths = [self.old_file("%02x" % i + "0" * 30, 10000) for i in (1, 2, 3)]
        clock = [time.time()]

        def tick():
            clock[0] += 5  # every look at the clock: 5 s later
            return clock[0]

        req = self.request()
        s = self.make(req, timeout=60)
        s.cleanup()
        with mock.patch("time.time", side_effect=tick):
            self.end()
        gone = [not os.path.exists(p) for p in paths]
        self.assertIn(False, gone)  # stopped after the time limit
        status = os.path.join(self.state, "sessions", "mp_sess", "fs_status.txt")
        with open(status) as f:
            self.assertNotEqual(f.read().split()[1], "0")
        self.cleanup()
        self.assertEqual([os.path.exists(p) for p in paths], [False, False, False])

    def test_loaded_session_is_touched(self):
        s = self.make(self.request())
        s.save()
        path = self.path_of(s.id())
        os.utime(path, (time.time() - 1000, time.time() - 1000))
        self.end()
        self.make(self.request(cookie="pysid=" + s.id()))
        self.assertGreater(os.stat(path).st_mtime, time.time() - 100)

    def test_corrupt_file_is_no_session(self):
        path = self.path_of(SID)
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(b"not a pickle")
        s = self.make(self.request(cookie="pysid=" + SID))
        self.assertTrue(s.is_new())


class DbmSessionTest(CommonBehaviour, SessionTestBase):
    def make(self, req, **kw):
        return Session.DbmSession(req, **kw)

    def test_dumb_database_in_state_directory(self):
        s = self.make(self.request())
        s["k"] = 1
        s.save()
        base = os.path.join(self.state, "sessions", "mp_sess.dbm")
        self.assertTrue(os.path.exists(base + ".dat"))
        import dbm.dumb

        db = dbm.dumb.open(base, "r")
        try:
            record = pickle.loads(db[s.id().encode()])
        finally:
            db.close()
        self.assertEqual((record["_data"], record["_sid"]), ({"k": 1}, s.id()))

    def test_filename_options(self):
        for name, value, expect in (
                ("mod_python.dbm_session.database_filename", "db/s", "db/s"),
                ("session_dbm", os.path.join(self.state, "x"), "x"),
                ("mod_python.dbm_session.database_directory", "d", "d/mp_sess.dbm"),
                ("mod_python.session.database_directory", "e", "e/mp_sess.dbm"),
                ("session_directory", "f", "f/mp_sess.dbm")):
            s = self.make(self.request(options=[(name, value)]))
            s.save()
            self.assertTrue(os.path.exists(os.path.join(self.state, expect) + ".dat"), name)

    def test_filename_options_outside_refused(self):
        for name in ("mod_python.dbm_session.database_filename", "session_dbm",
                     "mod_python.dbm_session.database_directory",
                     "mod_python.session.database_directory"):
            for value in ("/tmp/x", "../x", "/etc/passwd", self.state + "/../y"):
                with self.assertRaises(ValueError, msg=(name, value)):
                    self.make(self.request(options=[(name, value)]))
        with self.assertRaises(ValueError):  # a file cannot be the directory itself
            self.make(self.request(options=[("mod_python.dbm_session.database_filename", ".")]))

    def test_cleanup_and_compaction(self):
        import dbm.dumb

        base = os.path.join(self.state, "sessions", "mp_sess.dbm")
        os.makedirs(os.path.dirname(base))
        now = time.time()
        db = dbm.dumb.open(base, "c")
        for i in range(50):
            sid = "%032x" % i
            accessed = now - (10000 if i % 2 else 0)
            db[sid.encode()] = pickle.dumps({"_data": {"pad": "x" * 2000}, "_created": accessed,
                                             "_accessed": accessed, "_timeout": 60, "_sid": sid})
        db[b"junk"] = b"not a pickle"
        db.close()
        size_before = os.path.getsize(base + ".dat")
        with mock.patch.object(Session, "DBM_COMPACT_MIN_BYTES", 0):
            req = self.request()
            s = self.make(req)
            s.cleanup()
            self.end()
        db = dbm.dumb.open(base, "r")
        try:
            keys = sorted(k.decode() for k in db.keys())
        finally:
            db.close()
        self.assertEqual(keys, sorted("%032x" % i for i in range(0, 50, 2)))
        self.assertLess(os.path.getsize(base + ".dat"), size_before * 0.75)
        self.assertTrue(any("compacted" in m for _, m in self.host.logs))
        s = self.make(self.request(cookie="pysid=%032x" % 4))
        self.assertFalse(s.is_new())
        self.assertEqual(len(s["pad"]), 2000)

    def test_record_of_another_id_is_no_session(self):
        import dbm.dumb

        base = os.path.join(self.state, "sessions", "mp_sess.dbm")
        os.makedirs(os.path.dirname(base))
        db = dbm.dumb.open(base, "c")
        db[SID.encode()] = pickle.dumps({"_data": {"secret": 1}, "_created": time.time(),
                                         "_accessed": time.time(), "_timeout": 60, "_sid": "f" * 32})
        db.close()
        s = self.make(self.request(cookie="pysid=" + SID))
        self.assertTrue(s.is_new())

    def test_dbmtype_argument(self):
        import dbm.dumb

        s = self.make(self.request(), dbm="custom", dbmtype=dbm.dumb)
        s.save()
        self.assertTrue(os.path.exists(os.path.join(self.state, "custom.dat")))


class MemorySessionTest(CommonBehaviour, SessionTestBase):
    def make(self, req, **kw):
        return Session.MemorySession(req, **kw)

    def test_lock_blocks_another_process(self):
        self.skipTest("a MemorySession lives in one instance: another process cannot see it")

    def test_cleanup(self):
        s = self.make(self.request(), timeout=60)
        s.save()
        old = self.make(self.request())
        old.save()
        Session.MemorySession.sdict[old.id()]["_accessed"] -= 10000
        old.cleanup()
        self.end()
        self.assertEqual(list(Session.MemorySession.sdict), [s.id()])

    def test_nothing_on_disk(self):
        self.make(self.request()).save()
        self.assertEqual(os.listdir(self.state), [])


class SessionFactoryTest(SessionTestBase):
    def test_default_is_file_session(self):
        s = Session.Session(self.request())
        self.assertIs(type(s), Session.FileSession)

    def test_types(self):
        for name, cls in (("FileSession", Session.FileSession), ("DbmSession", Session.DbmSession),
                          ("MemorySession", Session.MemorySession)):
            for option in ("mod_python.session.session_type", "session"):
                s = Session.Session(self.request(options=[(option, name)]), timeout=99)
                self.assertIs(type(s), cls)
                self.assertEqual(s.timeout(), 99)
        with self.assertRaises(ValueError):
            Session.Session(self.request(options=[("mod_python.session.session_type", "Nope")]))

    def test_check_sid(self):
        self.assertTrue(Session._check_sid(SID))
        for bad in (SID + "\n", SID.upper(), SID[:-1], None, 5, b"0" * 32, "g" * 32):
            self.assertFalse(Session._check_sid(bad), repr(bad))
        ids = {Session._new_sid(None) for _ in range(100)}
        self.assertEqual(len(ids), 100)
        self.assertTrue(all(Session._check_sid(i) for i in ids))

    def test_tempdir_is_the_default_directory(self):
        self.assertEqual(Session.tempdir, os.path.join(self.state, "sessions"))

    def test_true_or_false(self):
        self.assertTrue(Session.true_or_false("Yes"))
        self.assertFalse(Session.true_or_false("0"))
        with self.assertRaises(ValueError):
            Session.true_or_false("perhaps")

    def test_base_session_stores_nothing(self):
        with self.assertRaises(NotImplementedError):
            Session.BaseSession(self.request(), sid=SID)


if __name__ == "__main__":
    unittest.main()
