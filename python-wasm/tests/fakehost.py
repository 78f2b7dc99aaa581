"""A fake host for the guest's native tests.

Puts modules shaped like componentize-py 0.25.1's bindings of the gateway
world (`componentize_py_types`, `wit_world`, `wit_world.imports.types`,
`wit_world.imports.request`) in `sys.modules`, with the `request` functions
served by an in-memory `FakeHost`. Import this module before the guest.
"""

import enum
import os
import sys
import types
from dataclasses import dataclass
from typing import Generic, List, Optional, Tuple, TypeVar

GUEST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "guest")

E = TypeVar("E")


@dataclass(frozen=True)
class Err(Generic[E], Exception):
    value: E


class ErrorKind(enum.Enum):
    STALE = 0
    INVALID = 1
    DENIED = 2
    TOO_LARGE = 3
    IO = 4
    UNSUPPORTED = 5


@dataclass
class Error:
    kind: ErrorKind
    message: str


class TableKind(enum.Enum):
    HEADERS_IN = 0
    HEADERS_OUT = 1
    ERR_HEADERS_OUT = 2
    SUBPROCESS_ENV = 3
    NOTES = 4


@dataclass
class FieldValue_None_:
    pass


@dataclass
class FieldValue_Text:
    value: str


@dataclass
class FieldValue_Int:
    value: int


@dataclass
class FieldValue_Float:
    value: float


@dataclass
class FieldValue_Flag:
    value: bool


class Failure(enum.Enum):
    EXCEPTION = 0
    MEMORY = 1
    IMPORT_FAILED = 2


@dataclass
class WsgiRequest:
    id: int
    method: str
    script_name: str
    path_info: bytes
    query_string: str
    request_uri: str
    headers: List[Tuple[str, bytes]]
    body: bytes
    body_complete: bool
    remote_addr: str
    remote_port: int
    server_name: str
    server_port: int
    server_protocol: str
    url_scheme: str


@dataclass
class WsgiResponse:
    status: int
    headers: List[Tuple[str, bytes]]
    body: bytes
    streamed: bool
    failure: Optional[Failure]


@dataclass
class Handler:
    spec: str
    directory: str
    extensions: List[str]
    silent: bool


@dataclass
class PhaseCall:
    phase: str
    handlers: List[Handler]
    options: List[Tuple[str, str]]
    config: List[Tuple[str, str]]
    imports: List[str]
    interpreter: str


@dataclass
class PhaseResult:
    status: int
    failure: Optional[Failure]


@dataclass
class FilterCall:
    handler: Handler
    name: str
    is_input: bool
    data: str
    eos: bool
    options: List[Tuple[str, str]]
    config: List[Tuple[str, str]]
    interpreter: str


@dataclass
class FilterResult:
    output: str
    closed: bool
    disabled: bool
    flush: bool
    failure: Optional[Failure]


class WitWorld:
    pass


def _fail(kind, message):
    raise Err(Error(kind, message))


class FakeHost:
    """One live request at a time, as the sandbox has it."""

    def __init__(self, rid=1, fields=None, body=b"", tables=None, max_body=None):
        self.rid = rid
        self.fields = dict(fields or {})
        self.body = body
        self.max_body = max_body
        self.read_sizes = []
        self.tables = {kind: [] for kind in TableKind}
        for kind, entries in (tables or {}).items():
            self.tables[kind] = list(entries)
        self.events = []  # ("start", status, headers) / ("write", data, flush) / ...
        self.logs = []
        self.calls = []
        self.set_fields = []
        self.ops = {}

    def _check(self, rid):
        if rid != self.rid:
            _fail(ErrorKind.STALE, f"request {rid} is over")

    # the interface
    def read(self, rid, size):
        self._check(rid)
        self.read_sizes.append(size)
        consumed = self.fields.get("read_length", 0)
        if self.max_body is not None and consumed >= self.max_body and self.body:
            _fail(ErrorKind.TOO_LARGE, "request body over max_body")
        data, self.body = self.body[:size], self.body[size:]
        self.fields["read_length"] = consumed + len(data)
        return data

    def start_response(self, rid, status, headers):
        self._check(rid)
        self.events.append(("start", status, [(n, v.encode("latin-1")) for n, v in headers]))

    def write(self, rid, data, flush):
        self._check(rid)
        assert isinstance(data, str), "bytes cross as Latin-1 text"
        self.events.append(("write", data.encode("latin-1"), flush))

    def sendfile(self, rid, path, offset, length):
        self._check(rid)
        self.events.append(("sendfile", path, offset, length))
        return length or 0

    def table_entries(self, rid, table):
        self._check(rid)
        return list(self.tables[table])

    def table_get(self, rid, table, key):
        self._check(rid)
        return [v for k, v in self.tables[table] if k.lower() == key.lower()]

    def table_set(self, rid, table, key, value):
        self.table_unset(rid, table, key)
        self.tables[table].append((key, value))

    def table_add(self, rid, table, key, value):
        self._check(rid)
        if table in (TableKind.HEADERS_OUT, TableKind.HEADERS_IN, TableKind.ERR_HEADERS_OUT) and ":" in key:
            _fail(ErrorKind.INVALID, "bad header name")
        self.tables[table].append((key, value))

    def table_unset(self, rid, table, key):
        self._check(rid)
        self.tables[table] = [(k, v) for k, v in self.tables[table] if k.lower() != key.lower()]

    def table_clear(self, rid, table):
        self._check(rid)
        self.tables[table] = []

    def fields_(self, rid):
        self._check(rid)
        self.events.append(("fields",))
        out = []
        for name, value in self.fields.items():
            if value is None:
                out.append((name, FieldValue_None_()))
            elif isinstance(value, bool):
                out.append((name, FieldValue_Flag(value)))
            elif isinstance(value, int):
                out.append((name, FieldValue_Int(value)))
            elif isinstance(value, float):
                out.append((name, FieldValue_Float(value)))
            else:
                out.append((name, FieldValue_Text(value)))
        return out

    def set_field(self, rid, name, value):
        self._check(rid)
        if name not in ("status", "status_line", "content_type", "content_encoding", "handler",
                        "user", "ap_auth_type", "uri", "args", "path_info", "filename",
                        "canonical_filename", "no_cache", "mtime"):
            _fail(ErrorKind.INVALID, f"{name} is not writable")
        self.set_fields.append((name, value))
        self.fields[name] = getattr(value, "value", None)

    def log(self, rid, level, message):
        self._check(rid)
        self.logs.append((level, message))

    def call(self, rid, op, args):
        self._check(rid)
        self.calls.append((op, list(args)))
        handler = self.ops.get(op)
        if handler is None:
            if op in ("add_handler", "flush", "set_etag", "set_last_modified", "register_cleanup"):
                return []
            _fail(ErrorKind.UNSUPPORTED, f"unknown op {op}")
        return handler(*args)

    # helpers for tests
    def body_written(self):
        return b"".join(e[1] for e in self.events if e[0] == "write")


HOST = FakeHost()


def use(host):
    global HOST
    HOST = host
    return host


def _make_request_module():
    mod = types.ModuleType("wit_world.imports.request")

    def bind(name, method):
        def f(*args):
            return getattr(HOST, method)(*args)
        f.__name__ = name
        setattr(mod, name, f)

    for name in ("read", "start_response", "write", "sendfile", "table_entries", "table_get",
                 "table_set", "table_add", "table_unset", "table_clear", "set_field", "log", "call"):
        bind(name, name)
    bind("fields", "fields_")
    return mod


class FakeState:
    """The `state` interface: real `flock`s on files in a temporary directory,
    re-entrant per key, as the host's."""

    def __init__(self):
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="wasmpy-state-")
        self.held = {}

    def lock(self, key):
        import fcntl
        import hashlib

        if key in self.held:
            self.held[key][1] += 1
            return
        name = hashlib.sha256(key.encode()).hexdigest()[:16]
        fd = os.open(os.path.join(self.dir, name), os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.held[key] = [fd, 1]

    def unlock(self, key):
        entry = self.held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            os.close(entry[0])
            del self.held[key]


STATE = FakeState()


def _make_state_module():
    mod = types.ModuleType("wit_world.imports.state")
    mod.lock = lambda key: STATE.lock(key)
    mod.unlock = lambda key: STATE.unlock(key)
    return mod


def install():
    cpt = types.ModuleType("componentize_py_types")
    cpt.Err = Err
    t = types.ModuleType("wit_world.imports.types")
    for obj in (ErrorKind, Error, TableKind, FieldValue_None_, FieldValue_Text, FieldValue_Int,
                FieldValue_Float, FieldValue_Flag, Failure):
        setattr(t, obj.__name__, obj)
    imports = types.ModuleType("wit_world.imports")
    imports.types = t
    imports.request = _make_request_module()
    imports.state = _make_state_module()
    world = types.ModuleType("wit_world")
    world.imports = imports
    for obj in (WsgiRequest, WsgiResponse, Handler, PhaseCall, PhaseResult, FilterCall,
                FilterResult, WitWorld):
        setattr(world, obj.__name__, obj)
    sys.modules.update({
        "componentize_py_types": cpt,
        "wit_world": world,
        "wit_world.imports": imports,
        "wit_world.imports.types": t,
        "wit_world.imports.request": imports.request,
        "wit_world.imports.state": imports.state,
    })
    if GUEST not in sys.path:
        sys.path.insert(0, GUEST)


install()
