"""The live objects of mod_python: `req`, its tables, `req.server`,
`req.connection`, and the standalone `table`.

Where mod_python wraps Apache structures in C, these wrap the host calls of
`_host`. Request fields are fetched once per phase (on first access) and
cached; writes go to the host and update the cache.
"""

import ipaddress
import os
import urllib.parse

from . import _host
from .wsgi import Input

APLOG_ERR = 3


def _not_here(what, why):
    raise NotImplementedError(f"{what} is not available in mod_wasmpy: {why}")


# ---- tables -----------------------------------------------------------------

def _check_str(what, value):
    if not isinstance(value, str):
        raise TypeError(f"table {what} must be str, not {type(value).__name__}")
    return value


class _TableBase:
    """The mapping API of mod_python's table over five primitives:
    _entries(), _values(key), _set(key, value), _add(key, value), _unset(key), _clear().

    Keys are case-insensitive and may repeat; a lookup of a repeated key
    gives a list of its values."""

    __slots__ = ()

    @staticmethod
    def _one(values):
        return values[0] if len(values) == 1 else list(values)

    def __getitem__(self, key):
        values = self._values(_check_str("keys", key))
        if not values:
            raise KeyError(key)
        return self._one(values)

    def get(self, key, default=None):
        values = self._values(_check_str("keys", key))
        return self._one(values) if values else default

    def __setitem__(self, key, value):
        self._set(_check_str("keys", key), _check_str("values", value))

    def add(self, key, value):
        self._add(_check_str("keys", key), _check_str("values", value))

    def __delitem__(self, key):
        if not self._values(_check_str("keys", key)):
            raise KeyError(key)
        self._unset(key)

    def __contains__(self, key):
        return isinstance(key, str) and bool(self._values(key))

    def has_key(self, key):
        return key in self

    def __len__(self):
        return len(self._entries())

    def __iter__(self):
        return iter(self.keys())

    def keys(self):
        return [k for k, _ in self._entries()]

    def values(self):
        return [v for _, v in self._entries()]

    def items(self):
        return [(k, v) for k, v in self._entries()]

    def iterkeys(self):
        return iter(self.keys())

    def itervalues(self):
        return iter(self.values())

    def iteritems(self):
        return iter(self.items())

    def clear(self):
        self._clear()

    def copy(self):
        return table(self.items())

    def update(self, other):
        pairs = other.items() if hasattr(other, "items") else other
        for key, value in list(pairs):
            self[key] = value

    def setdefault(self, key, default=""):
        values = self._values(_check_str("keys", key))
        if values:
            return self._one(values)
        self[key] = default
        return default

    def popitem(self):
        entries = self._entries()
        if not entries:
            raise KeyError("popitem(): table is empty")
        key, value = entries[-1]
        rest = [v for k, v in entries if k.lower() == key.lower()][:-1]
        self._unset(key)
        for v in rest:
            self._add(key, v)
        return key, value

    def __eq__(self, other):
        if isinstance(other, _TableBase):
            return sorted((k.lower(), v) for k, v in self.items()) == sorted(
                (k.lower(), v) for k, v in other.items())
        if isinstance(other, dict):
            return self == table(other)
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self.items()) + "}"


class table(_TableBase):
    """`apache.table`: a local case-insensitive table with repeated keys."""

    __slots__ = ("_list",)

    def __init__(self, initial=None):
        self._list = []
        if initial is not None:
            pairs = initial.items() if hasattr(initial, "items") else initial
            for key, value in pairs:
                self.add(key, value)

    def _entries(self):
        return list(self._list)

    def _values(self, key):
        low = key.lower()
        return [v for k, v in self._list if k.lower() == low]

    def _set(self, key, value):
        self._unset(key)
        self._list.append((key, value))

    def _add(self, key, value):
        self._list.append((key, value))

    def _unset(self, key):
        low = key.lower()
        self._list = [(k, v) for k, v in self._list if k.lower() != low]

    def _clear(self):
        self._list = []


_HEADER_TABLES = ("headers_in", "headers_out", "err_headers_out")


class HostTable(_TableBase):
    """One of the request's tables, live: every operation is a host call."""

    __slots__ = ("_req", "_kind")

    def __init__(self, req, kind):
        self._req = req
        self._kind = kind

    def _rid(self):
        return self._req._wp_id_checked()

    def _check(self, key, value=None):
        if any(c in key for c in "\r\n\0"):
            raise ValueError(f"table key {key!r} has CR, LF or NUL")
        if self._kind in _HEADER_TABLES and (not key or any(c in key for c in ": \t")):
            raise ValueError(f"invalid header name {key!r}")
        if value is not None and any(c in value for c in "\r\n\0"):
            raise ValueError(f"value of {key!r} has CR, LF or NUL")

    def _entries(self):
        return [tuple(e) for e in _host.table_entries(self._rid(), self._kind)]

    def _values(self, key):
        return list(_host.table_get(self._rid(), self._kind, key))

    def _set(self, key, value):
        self._check(key, value)
        _host.table_set(self._rid(), self._kind, key, value)

    def _add(self, key, value):
        self._check(key, value)
        _host.table_add(self._rid(), self._kind, key, value)

    def _unset(self, key):
        _host.table_unset(self._rid(), self._kind, key)

    def _clear(self):
        _host.table_clear(self._rid(), self._kind)

    def __contains__(self, key):
        return isinstance(key, str) and bool(key) and bool(self._values(key))


# ---- server, connection, neighbours -----------------------------------------

class ServerView:
    """`req.server` / `apache.main_server`: read-only, from `server.*` fields."""

    _NAMES = ("server_hostname", "server_admin", "defn_name", "defn_line_number",
              "error_fname", "path", "port", "loglevel", "timeout",
              "keep_alive_timeout", "keep_alive_max", "limit_req_line",
              "limit_req_fieldsize", "limit_req_fields", "is_virtual", "keep_alive",
              "names", "wild_names")

    def __init__(self, source):
        object.__setattr__(self, "_source", source)

    def _req(self):
        return self._source()

    def __getattr__(self, name):
        if name == "pathlen":
            path = self.path
            return len(path) if path else 0
        if name in self._NAMES:
            req = self._req()
            return None if req is None else req._wp_field("server." + name)
        raise AttributeError(f"'mp_server' object has no attribute {name!r}")

    def __setattr__(self, name, value):
        raise AttributeError(f"attribute {name!r} of 'mp_server' objects is not writable")

    def get_config(self):
        req = self._req()
        return table() if req is None else req.get_config()

    def get_options(self):
        req = self._req()
        return table() if req is None else req.get_options()

    def log_error(self, message, level=APLOG_ERR):
        req = self._req()
        if req is None:
            _host.stderr(str(message))
        else:
            req.log_error(message, level)

    def register_cleanup(self, req, callback, data=None):
        _not_here("server.register_cleanup()",
                  "child-exit cleanups need a shutdown hook, and sandbox instances "
                  "are discarded without running Python; use req.register_cleanup()")


class ConnectionView:
    """`req.connection`: read-only, from `connection.*` fields."""

    _NAMES = ("remote_ip", "local_ip", "remote_host", "local_host", "remote_port",
              "local_port", "id", "keepalives", "keepalive", "remote_logname",
              "aborted", "double_reverse")

    def __init__(self, req):
        object.__setattr__(self, "_req", req)

    def __getattr__(self, name):
        req = self._req
        if name in self._NAMES:
            return req._wp_field("connection." + name)
        if name in ("client_ip",):
            return req._wp_field("connection.remote_ip")
        if name in ("remote_addr", "client_addr"):
            return (req._wp_field("connection.remote_ip"), req._wp_field("connection.remote_port"))
        if name == "local_addr":
            return (req._wp_field("connection.local_ip"), req._wp_field("connection.local_port"))
        if name == "base_server":
            return req.server
        if name == "notes":
            _not_here("connection.notes", "the host keeps no per-connection table for tenants")
        raise AttributeError(f"'mp_conn' object has no attribute {name!r}")

    def __setattr__(self, name, value):
        raise AttributeError(f"attribute {name!r} of 'mp_conn' objects is not writable")

    def log_error(self, message, level=APLOG_ERR):
        self._req.log_error(message, level)

    def read(self, *args):
        _not_here("connection.read()", "there are no connection handlers, only request phases")

    readline = read

    def write(self, *args):
        _not_here("connection.write()", "there are no connection handlers, only request phases")


class NeighbourView:
    """`req.main`, `req.prev`, `req.next`: what the host gives of them."""

    def __init__(self, values):
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name):
        if name in ("uri", "method", "status"):
            return self._values.get(name)
        raise AttributeError(f"only uri, method and status of a neighbour request are known, not {name!r}")

    def __setattr__(self, name, value):
        raise AttributeError(f"attribute {name!r} of a neighbour request is not writable")

    def __repr__(self):
        return f"<request {self._values!r}>"


class HandlerList:
    """`req.hlist`: the handlers of the running phase."""

    def __init__(self, entries):
        # entries: [(spec, directory, silent)]
        self._entries = list(entries)
        self._pos = 0

    def _current(self):
        return self._entries[self._pos] if self._pos < len(self._entries) else None

    @property
    def handler(self):
        e = self._current()
        return None if e is None else e[0]

    @property
    def directory(self):
        e = self._current()
        return None if e is None else e[1]

    @property
    def silent(self):
        e = self._current()
        return 0 if e is None else int(bool(e[2]))

    @property
    def is_location(self):
        e = self._current()
        return int(e is not None and not e[1])

    def next(self):
        if self._pos < len(self._entries):
            self._pos += 1

    def append(self, spec, directory, silent=False):
        self._entries.append((spec, directory, silent))


class FileInfo(tuple):
    """`req.finfo` / `apache.stat()`: the FINFO_* tuple with named members."""

    _NAMES = ("mode", "inode", "device", "nlink", "user", "group", "size",
              "atime", "mtime", "ctime", "fname", "name", "filetype")

    def __getattr__(self, name):
        try:
            return self[self._NAMES.index(name)]
        except ValueError:
            raise AttributeError(name) from None

    @property
    def protection(self):
        return self[0]

    @property
    def valid(self):
        return 0 if self[12] == 0 else 0x7FFFFFFF


def stat(fname, wanted=0):
    """A FileInfo for a guest path (filetype APR_NOFILE when it does not exist)."""
    import stat as st

    try:
        s = os.stat(fname)
    except OSError:
        return FileInfo((None,) * 10 + (fname, None, 0))
    mode = s.st_mode
    kind = (1 if st.S_ISREG(mode) else 2 if st.S_ISDIR(mode) else 3 if st.S_ISCHR(mode)
            else 4 if st.S_ISBLK(mode) else 5 if st.S_ISFIFO(mode) else 6 if st.S_ISLNK(mode)
            else 7 if st.S_ISSOCK(mode) else 127)
    return FileInfo((st.S_IMODE(mode), s.st_ino, s.st_dev, s.st_nlink, s.st_uid, s.st_gid,
                     s.st_size, s.st_atime, s.st_mtime, s.st_ctime, fname,
                     os.path.basename(fname), kind))


# ---- the request ------------------------------------------------------------

# Members of mod_python's request read from `fields`.
READ_FIELDS = frozenset([
    "method", "method_number", "the_request", "protocol", "proto_num", "hostname",
    "unparsed_uri", "uri", "args", "path_info", "filename", "canonical_filename",
    "request_time", "header_only", "user", "ap_auth_type", "range", "clength",
    "remaining", "read_length", "status", "status_line", "content_type",
    "content_encoding", "handler", "no_cache", "bytes_sent", "allowed", "mtime",
    "chunked", "assbackwards", "useragent_ip",
    # Members mod_python has that hosts may not give (read as None).
    "proxyreq", "allowed_xmethods", "allowed_methods", "sent_bodyct", "read_body",
    "read_chunked", "expecting_100", "content_languages", "vlist_validator",
    "no_local_copy", "used_path_info", "eos_sent",
])

# Members written through `set-field`.
WRITE_FIELDS = frozenset([
    "status", "status_line", "content_type", "content_encoding", "filename", "uri",
    "path_info", "args", "user", "handler", "no_cache", "canonical_filename",
    "ap_auth_type", "mtime",
])

_COMPUTED = frozenset([
    "parsed_uri", "interpreter", "phase", "hlist", "main", "prev", "next", "server",
    "connection", "headers_in", "headers_out", "err_headers_out", "subprocess_env",
    "notes", "useragent_addr", "extension", "_content_type_set",
])

_TEXT_FIELDS = frozenset(WRITE_FIELDS - {"status", "no_cache", "mtime"})


class Request:
    """mod_python's `req`: one per request id, the same across its phases."""

    def __init__(self, rid):
        d = self.__dict__
        d["_wp_id"] = rid
        d["_wp_ended"] = False
        d["_wp_fields"] = None
        d["_wp_phase"] = None
        d["_wp_interpreter"] = ""
        d["_wp_options"] = ()
        d["_wp_config"] = ()
        d["_wp_hlist"] = HandlerList(())
        d["_wp_hdir"] = ""
        d["_wp_reader"] = None
        d["_wp_cleanups"] = []
        d["_wp_dynamic"] = {}
        d["_wp_announced"] = set()
        d["_wp_ctype_set"] = 0
        d["_wp_tables"] = {}
        d["_wp_finfo"] = None

    # -- plumbing --

    def _wp_id_checked(self):
        if self._wp_ended:
            raise _host.StaleRequestError(
                "this request is over: a req object must not be kept past its request")
        return self._wp_id

    def _wp_invalidate(self):
        self.__dict__["_wp_fields"] = None

    def _wp_all_fields(self):
        fields = self._wp_fields
        if fields is None:
            fields = _host.fields(self._wp_id_checked())
            self.__dict__["_wp_fields"] = fields
        return fields

    def _wp_field(self, name):
        return self._wp_all_fields().get(name)

    def _wp_call(self, op, *args, invalidate=True):
        result = _host.call(self._wp_id_checked(), op, args)
        if invalidate:
            self._wp_invalidate()
        return result

    def _wp_neighbour(self, prefix):
        fields = self._wp_all_fields()
        values = {}
        for name in ("uri", "method", "status"):
            key = prefix + "." + name
            if key in fields:
                values[name] = fields[key]
        return NeighbourView(values) if values else None

    # -- members --

    def __getattr__(self, name):
        if name.startswith("_wp_"):
            raise AttributeError(name)
        if name in READ_FIELDS:
            return self._wp_field(name)
        if name in ("headers_in", "headers_out", "err_headers_out", "subprocess_env", "notes"):
            tables = self._wp_tables
            if name not in tables:
                tables[name] = HostTable(self, name)
            return tables[name]
        if name == "phase":
            return self._wp_phase
        if name == "interpreter":
            return self._wp_interpreter
        if name == "hlist":
            return self._wp_hlist
        if name == "server":
            return ServerView(lambda: self)
        if name == "connection":
            return ConnectionView(self)
        if name in ("main", "prev", "next"):
            return self._wp_neighbour(name)
        if name == "parsed_uri":
            return self._wp_parsed_uri()
        if name == "useragent_addr":
            ip = self._wp_field("useragent_ip")
            return None if ip is None else (ip, self._wp_field("connection.remote_port"))
        if name == "extension":
            filename = self._wp_field("filename") or ""
            base = filename.rsplit("/", 1)[-1]
            return "." + base.split(".", 1)[1] if "." in base else None
        if name == "_content_type_set":
            return self._wp_ctype_set
        if name == "finfo":
            if self._wp_finfo is None:
                filename = self._wp_field("filename")
                self.__dict__["_wp_finfo"] = stat(filename) if filename else None
            return self._wp_finfo
        raise AttributeError(f"'mp_request' object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name in WRITE_FIELDS:
            if name in _TEXT_FIELDS:
                if not isinstance(value, str):
                    raise TypeError(f"req.{name} must be str, not {type(value).__name__}")
                if any(c in value for c in "\r\n\0"):
                    raise ValueError(f"req.{name} must not contain CR, LF or NUL")
            elif name == "status":
                if type(value) is not int and not isinstance(value, int):
                    raise TypeError("req.status must be an int")
                value = int(value)
            elif name == "no_cache":
                value = bool(value)
            elif name == "mtime":
                value = float(value)
            _host.set_field(self._wp_id_checked(), name, value)
            if self._wp_fields is not None:
                # mod_python shows request_rec's int members as ints.
                self._wp_fields[name] = int(value) if name == "no_cache" else value
            if name == "content_type":
                self.__dict__["_wp_ctype_set"] = 1
            if name == "filename":
                self.__dict__["_wp_finfo"] = None
            return
        if name == "finfo":
            self.__dict__["_wp_finfo"] = value
            return
        if name in READ_FIELDS or name in _COMPUTED or name.startswith("_wp_"):
            raise AttributeError(f"attribute {name!r} of 'mp_request' objects is not writable")
        if name == "ssi_globals" and "ssi_globals" not in self.__dict__ and not self._wp_ended:
            # The page's <!--#python --> code must see it: keep this
            # instance for the request until its end (as cleanups do).
            self._wp_call("register_cleanup", invalidate=False)
        self.__dict__[name] = value

    def __delattr__(self, name):
        if name in self.__dict__ and not name.startswith("_wp_"):
            del self.__dict__[name]
        else:
            raise AttributeError(f"cannot delete attribute {name!r}")

    def _wp_parsed_uri(self):
        raw = self._wp_field("unparsed_uri")
        if raw is None:
            return (None,) * 9
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme and parts.netloc:
            try:
                port = parts.port
            except ValueError:
                port = None
            return (parts.scheme, parts.netloc, parts.username, parts.password,
                    parts.hostname, port, parts.path or None, parts.query or None,
                    parts.fragment or None)
        path, _, rest = raw.partition("?")
        query, hash_, fragment = rest.partition("#")
        if not hash_ and "#" in path:
            path, _, fragment = path.partition("#")
        return (None, None, None, None, None, None, path or None,
                query if "?" in raw else None, fragment or None)

    # -- I/O --

    def _wp_input(self):
        if self._wp_reader is None:
            self.__dict__["_wp_reader"] = Input(self._wp_id_checked(), b"", False)
        return self._wp_reader

    def read(self, len=-1):
        self._wp_id_checked()
        try:
            return self._wp_input().read(len)
        finally:
            self._wp_invalidate()

    def readline(self, len=-1):
        self._wp_id_checked()
        try:
            return self._wp_input().readline(len)
        finally:
            self._wp_invalidate()

    def readlines(self, sizehint=-1):
        self._wp_id_checked()
        try:
            return self._wp_input().readlines(sizehint)
        finally:
            self._wp_invalidate()

    def write(self, data, flush=1):
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif not isinstance(data, bytes):
            raise TypeError(f"req.write() takes str or bytes, not {type(data).__name__}")
        _host.write(self._wp_id_checked(), data, bool(flush))

    def flush(self):
        self._wp_call("flush", invalidate=False)

    def sendfile(self, path, offset=0, len=-1):
        if not isinstance(path, str):
            raise TypeError("req.sendfile() path must be str")
        if offset < 0:
            raise ValueError("req.sendfile() offset must not be negative")
        return _host.sendfile(self._wp_id_checked(), path, int(offset),
                              None if len is None or len < 0 else int(len))

    def set_content_length(self, length):
        self._wp_call("set_content_length", int(length))

    def discard_request_body(self):
        return int(self._wp_call("discard_request_body")[0])

    def send_http_header(self):
        """Kept for old handlers: headers go out with the first write."""

    # -- flow --

    def internal_redirect(self, new_uri):
        if not isinstance(new_uri, str):
            raise TypeError("new_uri must be str")
        self._wp_call("internal_redirect", new_uri)

    def add_handler(self, htype, handler, dir=None):
        from . import phases

        phases.add_handler(self, htype, handler, dir)

    def register_cleanup(self, callback, data=None):
        if not callable(callback):
            raise TypeError("register_cleanup() needs a callable")
        if not self._wp_cleanups:
            # Ask the host to call `end-request`, where cleanups run.
            self._wp_call("register_cleanup")
        self._wp_cleanups.append((callback, data))

    # -- configuration --

    def get_options(self):
        return table(self._wp_options)

    def get_config(self):
        return table(self._wp_config)

    def document_root(self):
        return self._wp_field("document_root")

    def construct_url(self, uri):
        return self._wp_call("construct_url", uri, invalidate=False)[0]

    def get_addhandler_exts(self):
        result = self._wp_call("get_addhandler_exts", invalidate=False)
        return result[0] if result else ""

    def requires(self):
        return tuple(self._wp_call("requires", invalidate=False))

    # -- authentication --

    def get_basic_auth_pw(self):
        try:
            result = self._wp_call("get_basic_auth_pw")
        except _host.InvalidRequestError:
            return None
        return result[0] if result else None

    def auth_type(self):
        return self._wp_field("auth_type")

    def auth_name(self):
        return self._wp_field("auth_name")

    def is_https(self):
        return int(bool(self._wp_field("is_https")))

    def ssl_var_lookup(self, var_name):
        result = self._wp_call("ssl_var_lookup", var_name, invalidate=False)
        return result[0] if result else None

    # -- conditional responses --

    def meets_conditions(self):
        return int(self._wp_call("meets_conditions")[0])

    def set_etag(self):
        self._wp_call("set_etag")

    def set_last_modified(self):
        self._wp_call("set_last_modified")

    def update_mtime(self, dependency_mtime):
        self._wp_call("update_mtime", repr(float(dependency_mtime)))

    def allow_methods(self, methods, reset=0):
        if isinstance(methods, str):
            raise TypeError("allow_methods() takes a sequence of method names")
        names = [_check_str("method names", m) for m in methods]
        self._wp_call("allow_methods", "1" if reset else "0", *names)

    # -- environment, logging --

    def log_error(self, message, level=APLOG_ERR):
        _host.log(self._wp_id_checked(), int(level) & 0x7, str(message))

    def add_common_vars(self):
        self._wp_call("add_common_vars", invalidate=False)

    def add_cgi_vars(self):
        self._wp_call("add_cgi_vars", invalidate=False)

    def get_remote_host(self, type=1, str_is_ip=None):
        result = self._wp_call("get_remote_host", int(type), invalidate=False)
        host = result[0] if result else None
        if str_is_ip is None:
            return host
        if host is None:
            return None
        try:
            ipaddress.ip_address(host)
            is_ip = 1
        except ValueError:
            is_ip = 0
        return (host, is_ip)

    # -- what a sandbox has not --

    # -- filters --

    def add_input_filter(self, filter_name):
        """Add the input filter `filter_name` (a PythonInputFilter, one
        registered with register_input_filter, or an Apache filter)."""
        self._wp_call("add_input_filter", _check_str("filter_name", filter_name),
                      invalidate=False)

    def add_output_filter(self, filter_name):
        """Add the output filter `filter_name` to this request."""
        self._wp_call("add_output_filter", _check_str("filter_name", filter_name),
                      invalidate=False)

    def register_input_filter(self, filter_name, filter, dir=None):
        """Make `filter` (module[::object]) the input filter `filter_name`
        for this request (add it with add_input_filter)."""
        self._wp_register_filter("input", filter_name, filter, dir)

    def register_output_filter(self, filter_name, filter, dir=None):
        """Make `filter` (module[::object]) the output filter `filter_name`
        for this request (add it with add_output_filter)."""
        self._wp_register_filter("output", filter_name, filter, dir)

    def _wp_register_filter(self, kind, filter_name, handler, dir):
        if dir is None:
            dir = self._wp_hdir or ""
        self._wp_call(f"register_{kind}_filter", _check_str("filter_name", filter_name),
                      _check_str("filter", handler), _check_str("dir", dir), invalidate=False)

    def build_wsgi_env(self):
        """The PEP 3333 environ of this request (mod_python.wsgi), or None
        when req.uri is outside `mod_python.wsgi.base_uri`."""
        from mod_python import wsgi

        return wsgi.build_env(self)

    def wsgi_start_response(self, status, headers, exc_info=None):
        """PEP 3333's start_response over this request; returns write()."""
        from mod_python import wsgi

        return wsgi.start_response(self, status, headers, exc_info)

    def __repr__(self):
        return f"<mp_request {self._wp_id}{' (over)' if self._wp_ended else ''}>"
