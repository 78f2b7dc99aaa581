"""mod_python.Session for mod_wasmpy: mod_python 3.5's sessions, kept in the
tenant's private state directory and locked across instances.

- `BaseSession(req, sid=None, secret=None, lock=1, timeout=0)`: a dict with
  is_new(), id(), created(), last_accessed(), timeout(), set_timeout(),
  invalidate(), load(), save(), delete(), init_lock(), lock(), unlock(),
  cleanup(); storage classes implement do_load(), do_save(dict),
  do_delete() and do_cleanup().
- `FileSession` (one file per session), `DbmSession` (one `dbm.dumb`
  database), `MemorySession` (a dict of the instance), and
  `Session(req, sid=0, secret=None, timeout=0, lock=1)`, which picks one by
  `PythonOption mod_python.session.session_type` (FileSession by default).

The session id comes from the cookie `pysid` (PythonOption
`mod_python.session.cookie_name`, or the older `session_cookie_name`); a
cookie signed with the secret when there is one (the `secret` argument, or
PythonOption `mod_python.session.secret`). An id is 32 lower-case hex
digits, the rule of mod_python's `validate_sid_re`; any other id from a
cookie is dropped (a new session is made) before anything touches a file,
and an invalid `sid` argument raises ValueError. New ids are 128 bits from
`os.urandom`.

Where sessions live: under `wasmpy.state.DIRECTORY` (`/.wasmpy/state`, the
tenant's private read-write directory): by default `sessions/mp_sess/`
(FileSession) and `sessions/mp_sess.dbm.*` (DbmSession). The options that
name a place (`mod_python.session.database_directory`,
`mod_python.file_session.database_directory`,
`mod_python.dbm_session.database_directory`,
`mod_python.dbm_session.database_filename` and the older `session_directory`,
`session_dbm`) are taken relative to the state directory and must stay
inside it: a path outside raises ValueError.

Locking: `lock()` takes `wasmpy.state.lock("mod_python.session:" + sid)`, a
lock the host holds for the tenant across its instances and Apache children.
It is taken when the session is made (lock=1, the default), so a second
request with the same session waits until the first calls unlock() or ends
(the request's deadline bounds the wait). The lock is re-entrant within an
instance: two session objects of one request do not deadlock.
"""

import os
import pickle
import random
import re
import time
import traceback

from mod_python import Cookie, apache
from wasmpy import state as _state

COOKIE_NAME = "pysid"
DFT_TIMEOUT = 30 * 60  # seconds
DFT_LOCK = True
CLEANUP_CHANCE = 1000  # a cleanup runs with 1 chance in CLEANUP_CHANCE

DFT_FAST_CLEANUP = True
DFT_VERIFY_CLEANUP = True
DFT_GRACE_PERIOD = 240
DFT_CLEANUP_TIME_LIMIT = 2

#: First word of the FileSession cleanup's progress file.
FS_STAT_VERSION = "MPFS_3.2"

#: A DbmSession database is rewritten at cleanup when its data file is more
#: than DBM_COMPACT_RATIO times the live data and DBM_COMPACT_MIN_BYTES.
DBM_COMPACT_RATIO = 2
DBM_COMPACT_MIN_BYTES = 1 << 20

# mod_python's rule for a session id: 32 characters from 0-9a-f. (mod_python
# writes it '[0-9a-f]{32}$' with re.match, which also lets a trailing "\n"
# through; fullmatch does not.)
validate_sid_re = re.compile(r"[0-9a-f]{32}")


def _check_sid(sid):
    """True when `sid` is a valid session id."""
    return isinstance(sid, str) and validate_sid_re.fullmatch(sid) is not None


def _new_sid(req=None):
    """A new session id: 16 bytes of os.urandom as 32 hex digits."""
    return os.urandom(16).hex()


def md5_hash(s):
    """The MD5 hex digest of `s` (str as Latin-1), as mod_python's helper."""
    import hashlib

    if isinstance(s, str):
        s = s.encode("latin-1")
    return hashlib.md5(s).hexdigest()


def true_or_false(item):
    """A PythonOption's boolean value (yes/true/1, no/false/0)."""
    value = item.lower() if isinstance(item, str) else item
    if value in ("yes", "true", "1", 1, True):
        return True
    if value in ("no", "false", "0", 0, None, False):
        return False
    raise ValueError("%r is not a boolean option value (yes/no, true/false, 1/0)" % (item,))


def _lock_key(sid):
    return "mod_python.session:" + sid


def _log_traceback(req, what):
    try:
        req.log_error("%s: %s" % (what, traceback.format_exc()), apache.APLOG_ERR)
    except Exception:  # noqa: BLE001 - logging must not fail the request
        pass


# ---- where sessions live ----------------------------------------------------

def _state_root():
    return os.path.normpath(_state.DIRECTORY)


def _default_directory():
    """The default database directory: `sessions/` of the state directory."""
    return os.path.join(_state_root(), "sessions")


def _inside_state(option, value, is_file=False):
    """The path an option names, relative to the state directory; refused
    (ValueError) when it leaves it."""
    if not isinstance(value, str) or not value or "\0" in value:
        raise ValueError("PythonOption %s: %r is not a path" % (option, value))
    root = _state_root()
    path = os.path.normpath(os.path.join(root, value))
    prefix = root if root.endswith(os.sep) else root + os.sep
    if not (path.startswith(prefix) or (path == root and not is_file)):
        raise ValueError(
            "PythonOption %s %s: sessions are kept in the tenant's state directory %s "
            "(a relative path is taken from there); this path is outside it"
            % (option, value, root))
    return path


def __getattr__(name):
    # mod_python's `tempdir` (its default database directory), computed
    # when asked for: the state directory is only known at run time.
    if name == "tempdir":
        return _default_directory()
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def _option_directory(opts, names):
    """The database directory the first of `names` set gives, or the default."""
    for name in names:
        if name in opts:
            return _inside_state(name, opts.get(name))
    return _default_directory()


def _cookie_name(opts):
    if "mod_python.session.cookie_name" in opts:
        return opts.get("mod_python.session.cookie_name") or COOKIE_NAME
    return opts.get("session_cookie_name") or COOKIE_NAME


# ---- BaseSession ------------------------------------------------------------

class BaseSession(dict):
    """A session: a dict saved between requests under a session id sent to
    the client in a cookie."""

    def __init__(self, req, sid=None, secret=None, lock=1, timeout=0):
        self._req = req
        self._sid = sid
        opts = req.get_options()
        if secret is None:
            secret = opts.get("mod_python.session.secret") or None
        self._secret = secret
        self._lock = lock
        self._new = 1
        self._created = 0
        self._accessed = 0
        self._timeout = 0
        self._locked = 0
        self._invalid = 0
        self._unlock_registered = False
        dict.__init__(self)

        if not self._sid:
            name = _cookie_name(opts)
            if secret:
                cookie = Cookie.get_cookie(req, name, Class=Cookie.SignedCookie, secret=secret,
                                           mismatch=Cookie.Cookie.IGNORE)
            else:
                cookie = Cookie.get_cookie(req, name)
            if cookie:
                self._sid = cookie.value

        if self._sid and not _check_sid(self._sid):
            if sid:
                # Given by the caller: the caller deals with it.
                raise ValueError("Invalid Session ID: sid=%s" % (sid,))
            # From the client's cookie: replaced by a new session.
            self._sid = None

        self.init_lock()

        if self._sid:
            self.lock()
            if self.load():
                self._new = 0

        if self._new:
            if self._sid:
                self.unlock()  # the id that had no (live) session
            self._sid = _new_sid(req)
            self.lock()
            Cookie.add_cookie(req, self.make_cookie())
            self._created = time.time()
            self._timeout = timeout or DFT_TIMEOUT

        self._accessed = time.time()

        if random.randint(1, CLEANUP_CHANCE) == 1:
            self.cleanup()

    def make_cookie(self):
        """The session cookie: name, id (signed when there is a secret),
        domain and path from the options, else the path of the handler's
        directory under the document root, else '/'."""
        opts = self._req.get_options()
        name = _cookie_name(opts)
        if self._secret:
            c = Cookie.SignedCookie(name, self._sid, secret=self._secret)
        else:
            c = Cookie.Cookie(name, self._sid)
        if "mod_python.session.application_domain" in opts:
            c.domain = opts["mod_python.session.application_domain"]
        if "mod_python.session.application_path" in opts:
            c.path = opts["mod_python.session.application_path"]
        elif "ApplicationPath" in opts:
            c.path = opts["ApplicationPath"]
        else:
            path = None
            dirpath = self._req.hlist.directory
            docroot = self._req.document_root()
            if dirpath and docroot and dirpath.startswith(docroot):
                path = dirpath[len(docroot):]
            if not path or not (self._req.uri or "").startswith(path):
                path = "/"
            c.path = path
        return c

    def invalidate(self):
        """Expire the cookie at the client and delete the session."""
        c = self.make_cookie()
        c.expires = 0
        Cookie.add_cookie(self._req, c)
        self.delete()
        self._invalid = 1

    def load(self):
        """Fill the session from storage; 0 when there is none or it expired."""
        record = self.do_load()
        if record is None:
            return 0
        try:
            created, accessed = record["_created"], record["_accessed"]
            timeout, data = record["_timeout"], record["_data"]
            expired = (time.time() - accessed) > timeout
            if not isinstance(data, dict):
                raise TypeError("_data is not a dict")
        except (TypeError, KeyError):
            self._req.log_error("Session %s: unreadable session record, ignored" % self._sid,
                                apache.APLOG_WARNING)
            return 0
        if expired:
            return 0
        self._created = created
        self._accessed = accessed
        self._timeout = timeout
        self.update(data)
        return 1

    def save(self):
        """Store the session (not after invalidate())."""
        if not self._invalid:
            self.do_save({"_data": self.copy(),
                          "_created": self._created,
                          "_accessed": self._accessed,
                          "_timeout": self._timeout})

    def delete(self):
        """Remove the session from storage and empty it."""
        self.do_delete()
        self.clear()

    def init_lock(self):
        pass

    def lock(self):
        """Take the session's lock (when made with lock=1): it holds across
        instances and Apache children until unlock() or the request's end."""
        if self._lock and not self._locked:
            _state.lock(_lock_key(self._sid))
            self._locked = 1
            if not self._unlock_registered:
                self._unlock_registered = True
                self._req.register_cleanup(unlock_session_cleanup, self)

    def unlock(self):
        if self._lock and self._locked:
            self._locked = 0
            _state.unlock(_lock_key(self._sid))

    def is_new(self):
        return bool(self._new)

    def id(self):
        return self._sid

    def created(self):
        return self._created

    def last_accessed(self):
        return self._accessed

    def timeout(self):
        return self._timeout

    def set_timeout(self, secs):
        self._timeout = secs

    def cleanup(self):
        """Remove expired sessions (registered to run when the request ends)."""
        self.do_cleanup()

    # Storage: what subclasses implement.

    def do_load(self):
        raise NotImplementedError("BaseSession stores nothing: use a subclass that has do_load()")

    def do_save(self, dict):
        raise NotImplementedError("BaseSession stores nothing: use a subclass that has do_save()")

    def do_delete(self):
        raise NotImplementedError("BaseSession stores nothing: use a subclass that has do_delete()")

    def do_cleanup(self):
        pass

    def __del__(self):
        try:
            self.unlock()
        except Exception:  # noqa: BLE001 - never from a finaliser
            pass


def unlock_session_cleanup(sess):
    sess.unlock()


# ---- FileSession ------------------------------------------------------------

class FileSession(BaseSession):
    """One pickle file per session: DIR/mp_sess/<first two digits>/<sid>,
    written to a temporary file and renamed into place."""

    def __init__(self, req, sid=0, secret=None, timeout=0, lock=1,
                 fast_cleanup=-1, verify_cleanup=-1):
        opts = req.get_options()

        def option(new, old, default):
            return opts.get(new, default) if new in opts else opts.get(old, default)

        if fast_cleanup == -1:
            fast_cleanup = true_or_false(option("mod_python.file_session.enable_fast_cleanup",
                                                "session_fast_cleanup", DFT_FAST_CLEANUP))
        if verify_cleanup == -1:
            verify_cleanup = true_or_false(option("mod_python.file_session.verify_session_timeout",
                                                  "session_verify_cleanup", DFT_VERIFY_CLEANUP))
        self._fast_cleanup = fast_cleanup
        self._verify_cleanup = verify_cleanup
        self._grace_period = int(option("mod_python.file_session.cleanup_grace_period",
                                        "session_grace_period", DFT_GRACE_PERIOD))
        self._cleanup_time_limit = int(option("mod_python.file_session.cleanup_time_limit",
                                              "session_cleanup_time_limit",
                                              DFT_CLEANUP_TIME_LIMIT))
        directory = _option_directory(opts, ("mod_python.file_session.database_directory",
                                             "mod_python.session.database_directory",
                                             "session_directory"))
        self._sessdir = os.path.join(directory, "mp_sess")
        self._cleanup_timeout = timeout or DFT_TIMEOUT
        self._file_locked = False
        BaseSession.__init__(self, req, sid=sid, secret=secret, timeout=timeout, lock=lock)

    def _filename(self):
        sid = self._sid
        if not _check_sid(sid):  # never a path from an unchecked id
            raise ValueError("Invalid Session ID: sid=%r" % (sid,))
        return os.path.join(self._sessdir, sid[:2], sid)

    def lock_file(self):
        # Without the session lock (lock=0), each file operation takes it.
        if not self._locked:
            _state.lock(_lock_key(self._sid))
            self._locked = 1
            self._file_locked = True

    def unlock_file(self):
        if self._file_locked:
            self._file_locked = False
            self._locked = 0
            _state.unlock(_lock_key(self._sid))

    def do_load(self):
        self.lock_file()
        try:
            filename = self._filename()
            try:
                with open(filename, "rb") as f:
                    record = pickle.load(f)
            except FileNotFoundError:
                return None
            except Exception:  # noqa: BLE001 - a bad file is no session
                _log_traceback(self._req, "Error while loading a session")
                return None
            try:
                if time.time() - record["_accessed"] <= record["_timeout"]:
                    # Fresh for the cleanup's mtime test while this request runs.
                    os.utime(filename, None)
            except Exception:  # noqa: BLE001
                pass
            return record
        finally:
            self.unlock_file()

    def do_save(self, dict):
        self.lock_file()
        try:
            filename = self._filename()
            directory = os.path.dirname(filename)
            tmp = os.path.join(directory, ".%s.%s.tmp" % (self._sid, os.urandom(4).hex()))
            try:
                os.makedirs(directory, 0o700, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    pickle.dump(dict, f, pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, filename)
            except Exception:  # noqa: BLE001 - logged, as mod_python does
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                _log_traceback(self._req, "Error while saving a session")
        finally:
            self.unlock_file()

    def do_delete(self):
        self.lock_file()
        try:
            try:
                os.unlink(self._filename())
            except OSError:
                pass
        finally:
            self.unlock_file()

    def do_cleanup(self):
        self._req.register_cleanup(filesession_cleanup, {
            "req": self._req,
            "sessdir": self._sessdir,
            "fast_cleanup": self._fast_cleanup,
            "verify_cleanup": self._verify_cleanup,
            "timeout": self._cleanup_timeout,
            "grace_period": self._grace_period,
            "cleanup_time_limit": self._cleanup_time_limit,
        })
        self._req.log_error("FileSession: registered filesession cleanup.", apache.APLOG_NOTICE)


def _read_status(path):
    try:
        with open(path) as f:
            parts = f.readline().split()
        if len(parts) == 5 and parts[0] == FS_STAT_VERSION:
            return int(parts[1]) % 256, int(parts[2]), int(parts[3]), float(parts[4])
    except (OSError, ValueError):
        pass
    return 0, 0, 0, 0.0


def _write_status(path, next_i, expired, total, elapsed):
    tmp = "%s.%s.tmp" % (path, os.urandom(4).hex())
    try:
        with open(tmp, "w") as f:
            f.write("%s %d %d %d %f\n" % (FS_STAT_VERSION, next_i, expired, total, elapsed))
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _file_expired(filename, now, timeout, grace, fast, verify):
    """Whether a session file is to be removed."""
    if fast:
        if now - os.stat(filename).st_mtime < timeout + grace:
            return False
        if not verify:
            return True
    try:
        with open(filename, "rb") as f:
            record = pickle.load(f)
        return (now - record["_accessed"]) > (record["_timeout"] + grace)
    except FileNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - unreadable: removed once old enough
        return now - os.stat(filename).st_mtime > timeout + grace


def filesession_cleanup(data):
    """Remove expired FileSession files (a request cleanup).

    A file is removed when the session expired more than the grace period
    ago: with fast cleanup, files touched within timeout + grace are skipped
    without being read; with verification, the others are read and their own
    timeout decides. The walk goes through the 256 subdirectories, stops
    after `cleanup_time_limit` seconds and resumes there next time. One
    cleanup at a time per directory (a tenant-wide lock)."""
    req = data["req"]
    sessdir = data["sessdir"]
    fast, verify = data["fast_cleanup"], data["verify_cleanup"]
    timeout, grace = data["timeout"], data["grace_period"]
    limit = data["cleanup_time_limit"]
    if not os.path.isdir(sessdir):
        return
    req.log_error("FileSession cleanup: (fast=%s, verify=%s) ..." % (fast, verify),
                  apache.APLOG_NOTICE)
    key = "mod_python.file_session.cleanup:" + sessdir
    _state.lock(key)
    try:
        status = os.path.join(sessdir, "fs_status.txt")
        next_i, expired, total, elapsed = _read_status(status)
        start = time.time()
        for i in range(next_i, 256):
            path = os.path.join(sessdir, "%02x" % i)
            try:
                names = os.listdir(path)
            except OSError:
                names = []
            now = time.time()
            for name in names:
                filename = os.path.join(path, name)
                try:
                    if _check_sid(name):
                        total += 1
                        gone = _file_expired(filename, now, timeout, grace, fast, verify)
                    else:
                        # A temporary file left by an interrupted save.
                        gone = (name.startswith(".") and name.endswith(".tmp")
                                and now - os.stat(filename).st_mtime > grace)
                    if gone:
                        os.unlink(filename)
                        if _check_sid(name):
                            expired += 1
                except FileNotFoundError:
                    pass
                except Exception:  # noqa: BLE001 - one file never stops the walk
                    _log_traceback(req, "FileSession cleanup error")
            next_i = (i + 1) % 256
            if limit > 0 and time.time() - start > limit:
                break
        elapsed += time.time() - start
        if next_i == 0:
            req.log_error("FileSession cleanup: deleted %d of %d in %.4f seconds"
                          % (expired, total, elapsed), apache.APLOG_NOTICE)
            expired, total, elapsed = 0, 0, 0.0
        else:
            req.log_error("FileSession cleanup incomplete: next cleanup will start at index "
                          "%d (%02x)" % (next_i, next_i), apache.APLOG_NOTICE)
        _write_status(status, next_i, expired, total, elapsed)
    finally:
        _state.unlock(key)


def make_filesession_dirs(sess_dir):
    """Create the 256 subdirectories of a FileSession directory (they are
    otherwise made as sessions are saved)."""
    for i in range(256):
        os.makedirs(os.path.join(sess_dir, "%02x" % i), 0o700, exist_ok=True)


# ---- DbmSession -------------------------------------------------------------

def _dumb():
    import dbm.dumb

    return dbm.dumb


def _dbm_key(filename):
    return "mod_python.dbm_session:" + os.path.normpath(filename)


def _open_dbm(filename, dbmtype):
    os.makedirs(os.path.dirname(filename) or ".", 0o700, exist_ok=True)
    return dbmtype.open(filename, "c", 0o600)


def _with_dbm(filename, dbmtype, operation):
    """Run operation(db) on the open database under its tenant-wide lock."""
    key = _dbm_key(filename)
    _state.lock(key)
    try:
        db = _open_dbm(filename, dbmtype)
        try:
            return operation(db)
        finally:
            db.close()
    finally:
        _state.unlock(key)


def _compact_dumb(filename, live_bytes):
    """Rewrite a dbm.dumb database that mostly holds dead records (dbm.dumb
    never reuses the space of deleted ones). Runs under the database lock."""
    dumb = _dumb()
    try:
        size = os.path.getsize(filename + ".dat")
    except OSError:
        return False
    if size <= max(DBM_COMPACT_MIN_BYTES, DBM_COMPACT_RATIO * live_bytes):
        return False
    tmp = "%s.compact-%s" % (filename, os.urandom(4).hex())
    old = dumb.open(filename, "r")
    try:
        new = dumb.open(tmp, "n", 0o600)
        try:
            for k in old.keys():
                new[k] = old[k]
        finally:
            new.close()
    finally:
        old.close()
    # Not atomic as a pair: records carry their id, so an index and data file
    # of different generations give "no session", never another one's data.
    os.replace(tmp + ".dat", filename + ".dat")
    os.replace(tmp + ".dir", filename + ".dir")
    for leftover in (tmp + ".bak", filename + ".bak"):
        try:
            os.unlink(leftover)
        except OSError:
            pass
    return True


def dbm_cleanup(data):
    """Remove expired sessions from a DbmSession database (a request
    cleanup); a dbm.dumb database mostly made of dead records is rewritten."""
    filename, dbmtype = data["filename"], data["dbmtype"]
    req = data.get("req")

    def clean(db):
        now = time.time()
        old, live = [], 0
        for key in list(db.keys()):
            try:
                raw = db[key]
                record = pickle.loads(raw)
                if (now - record["_accessed"]) > record["_timeout"]:
                    old.append(key)
                else:
                    live += -(-len(raw) // 512) * 512
            except Exception:  # noqa: BLE001 - unreadable: removed
                old.append(key)
        for key in old:
            try:
                del db[key]
            except KeyError:
                pass
        return old, live

    key = _dbm_key(filename)
    _state.lock(key)
    try:
        db = _open_dbm(filename, dbmtype)
        try:
            old, live = clean(db)
        finally:
            db.close()
        compacted = dbmtype is _dumb() and _compact_dumb(filename, live)
    finally:
        _state.unlock(key)
    if req is not None:
        req.log_error("DbmSession cleanup: deleted %d expired sessions%s"
                      % (len(old), ", database compacted" if compacted else ""),
                      apache.APLOG_NOTICE)


class DbmSession(BaseSession):
    """All sessions in one dbm database (`dbm.dumb` unless `dbmtype` says
    otherwise), each operation under a tenant-wide lock of the database."""

    def __init__(self, req, dbm=None, sid=0, secret=None, dbmtype=None, timeout=0, lock=1):
        if not dbm:
            opts = req.get_options()
            for name in ("mod_python.dbm_session.database_filename", "session_dbm"):
                if name in opts:
                    dbm = _inside_state(name, opts.get(name), is_file=True)
                    break
            else:
                dbm = os.path.join(
                    _option_directory(opts, ("mod_python.dbm_session.database_directory",
                                             "mod_python.session.database_directory",
                                             "session_directory")),
                    "mp_sess.dbm")
        else:
            # Given by the code: a relative path is taken from the state directory.
            dbm = os.path.normpath(os.path.join(_state_root(), dbm))
        self._dbmfile = dbm
        self._dbmtype = dbmtype or _dumb()
        BaseSession.__init__(self, req, sid=sid, secret=secret, timeout=timeout, lock=lock)

    def _key(self):
        if not _check_sid(self._sid):
            raise ValueError("Invalid Session ID: sid=%r" % (self._sid,))
        return self._sid.encode("ascii")

    def do_load(self):
        key = self._key()

        def load(db):
            return db[key] if key in db else None

        raw = _with_dbm(self._dbmfile, self._dbmtype, load)
        if raw is None:
            return None
        try:
            record = pickle.loads(raw)
        except Exception:  # noqa: BLE001 - a bad record is no session
            _log_traceback(self._req, "Error while loading a session")
            return None
        if not isinstance(record, dict) or record.get("_sid", self._sid) != self._sid:
            return None
        return record

    def do_save(self, dict):
        key = self._key()
        record = dict.copy()
        record["_sid"] = self._sid
        raw = pickle.dumps(record, pickle.HIGHEST_PROTOCOL)

        def save(db):
            db[key] = raw

        _with_dbm(self._dbmfile, self._dbmtype, save)

    def do_delete(self):
        key = self._key()

        def delete(db):
            try:
                del db[key]
            except KeyError:
                pass

        _with_dbm(self._dbmfile, self._dbmtype, delete)

    def do_cleanup(self):
        self._req.register_cleanup(dbm_cleanup, {"filename": self._dbmfile,
                                                 "dbmtype": self._dbmtype,
                                                 "req": self._req})
        self._req.log_error("DbmSession: registered database cleanup.", apache.APLOG_NOTICE)


# ---- MemorySession ----------------------------------------------------------

def mem_cleanup(sdict):
    now = time.time()
    for sid in list(sdict):
        try:
            record = sdict[sid]
            if (now - record["_accessed"]) > record["_timeout"]:
                del sdict[sid]
        except Exception:  # noqa: BLE001
            pass


class MemorySession(BaseSession):
    """Sessions in a dict of this instance: not shared with the tenant's
    other instances (other Apache children), lost when the instance is
    recycled."""

    sdict = {}

    def __init__(self, req, sid=0, secret=None, timeout=0, lock=1):
        BaseSession.__init__(self, req, sid=sid, secret=secret, timeout=timeout, lock=lock)

    def do_load(self):
        return MemorySession.sdict.get(self._sid)

    def do_save(self, dict):
        MemorySession.sdict[self._sid] = dict

    def do_delete(self):
        MemorySession.sdict.pop(self._sid, None)

    def do_cleanup(self):
        self._req.register_cleanup(mem_cleanup, MemorySession.sdict)
        self._req.log_error("MemorySession: registered session cleanup.", apache.APLOG_NOTICE)


# ---- Session ----------------------------------------------------------------

_TYPES = {"FileSession": FileSession, "DbmSession": DbmSession, "MemorySession": MemorySession}


def Session(req, sid=0, secret=None, timeout=0, lock=1):
    """A session of the class PythonOption mod_python.session.session_type
    (or the older `session`) names: FileSession (the default), DbmSession
    or MemorySession."""
    opts = req.get_options()
    if "mod_python.session.session_type" in opts:
        kind = opts["mod_python.session.session_type"]
    elif "session" in opts:
        kind = opts["session"]
    else:
        # mod_python picks by MPM (DbmSession under prefork); here instances
        # share no memory and FileSession has no single-file bottleneck.
        kind = "FileSession"
    cls = _TYPES.get(kind)
    if cls is None:
        raise ValueError("Unknown session type %s" % (kind,))
    return cls(req, sid=sid, secret=secret, timeout=timeout, lock=lock)
