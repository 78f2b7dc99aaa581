"""The one door to the live request: `wit_world.imports.request`.

Every other module of the guest calls the host through the functions here.
They turn the component-model results into Python values and exceptions:

    stale        -> StaleRequestError      (RuntimeError)
    invalid      -> InvalidRequestError    (ValueError)
    denied       -> RequestDeniedError     (PermissionError)
    too-large    -> RequestTooLarge        (OSError / IOError)
    io           -> RequestIOError         (OSError / IOError)
    unsupported  -> UnsupportedError       (NotImplementedError)

The bindings are imported on first use, so that the native unit tests can put
a fake `wit_world` package in `sys.modules` before anything calls the host.
"""

import sys
import traceback


class StaleRequestError(RuntimeError):
    """The request this object belongs to is over (a `req` kept past its request)."""


class InvalidRequestError(ValueError):
    """The host refused an argument (CR/LF/NUL in a header, an unknown field, ...)."""


class RequestDeniedError(PermissionError):
    """Outside the tenant's grants (a path, an operation)."""


class RequestTooLarge(OSError):
    """Over a size bound: the request body over max_body, a table, a write."""


class RequestIOError(OSError):
    """The client went away or Apache reported an I/O error."""


class UnsupportedError(NotImplementedError):
    """Not available in this host (e.g. the dev server) or in a sandbox."""


_BY_KIND = {
    "STALE": StaleRequestError,
    "INVALID": InvalidRequestError,
    "DENIED": RequestDeniedError,
    "TOO_LARGE": RequestTooLarge,
    "IO": RequestIOError,
    "UNSUPPORTED": UnsupportedError,
}

_TABLES = {
    "headers_in": "HEADERS_IN",
    "headers_out": "HEADERS_OUT",
    "err_headers_out": "ERR_HEADERS_OUT",
    "subprocess_env": "SUBPROCESS_ENV",
    "notes": "NOTES",
}

# Loaded on first use: (request module, types module, Err class).
_bindings = None


def _load():
    global _bindings
    if _bindings is None:
        from componentize_py_types import Err
        from wit_world.imports import request, types

        _bindings = (request, types, Err)
    return _bindings


# The `state` interface, loaded with the others (the bindings exist only at
# build time, when the gateway imports this module).
_state = None


def _load_state():
    global _state
    if _state is None:
        _load()
        from wit_world.imports import state

        _state = state
    return _state


def _invoke_state(name, *args):
    state = _state or _load_state()
    try:
        return getattr(state, name)(*args)
    except _bindings[2] as err:
        _raise(err)


def reset_bindings():
    """Forget the loaded bindings (tests swap fake hosts)."""
    global _bindings, _state
    _bindings = None
    _state = None


def _raise(err):
    """Turn a componentize-py `Err(error)` into the matching Python exception."""
    value = err.value
    kind = getattr(getattr(value, "kind", None), "name", None)
    message = getattr(value, "message", None) or str(value)
    cls = _BY_KIND.get(kind, RequestIOError)
    raise cls(message) from None


def _invoke(name, *args):
    request, _types, Err = _bindings or _load()
    try:
        return getattr(request, name)(*args)
    except Err as err:
        _raise(err)


def _table_kind(table):
    _request, types, _err = _bindings or _load()
    try:
        return getattr(types.TableKind, _TABLES[table])
    except KeyError:
        raise ValueError(f"unknown table {table!r}") from None


# ---- values of fields -------------------------------------------------------

def to_python(value):
    """A `field-value` variant as a Python value (None, str, int, float, bool)."""
    name = type(value).__name__
    if name.startswith("FieldValue_None"):
        return None
    return value.value


def from_python(value):
    """A Python value as a `field-value` variant."""
    _request, types, _err = _bindings or _load()
    if value is None:
        return types.FieldValue_None_()
    if isinstance(value, bool):
        return types.FieldValue_Flag(value)
    if isinstance(value, int):
        if not -(1 << 63) <= value < (1 << 63):
            raise OverflowError(f"{value} does not fit a 64-bit field")
        return types.FieldValue_Int(value)
    if isinstance(value, float):
        return types.FieldValue_Float(value)
    if isinstance(value, str):
        return types.FieldValue_Text(value)
    raise TypeError(f"a request field cannot hold a {type(value).__name__}")


# ---- the calls --------------------------------------------------------------

def read(rid, size):
    size = max(0, min(int(size), 0xFFFFFFFF))
    return _invoke("read", rid, size)


def _latin1(data):
    # Bytes cross as Latin-1 text: componentize-py 0.25.1 never frees the
    # guest memory of a `list<u8>` import argument (strings it frees).
    return bytes(data).decode("latin-1")


def start_response(rid, status, headers):
    return _invoke("start_response", rid, status,
                   [(name, _latin1(value)) for name, value in headers])


def write(rid, data, flush=True):
    return _invoke("write", rid, _latin1(data), bool(flush))


def sendfile(rid, path, offset=0, length=None):
    return _invoke("sendfile", rid, path, offset, length)


def table_entries(rid, table):
    return _invoke("table_entries", rid, _table_kind(table))


def table_get(rid, table, key):
    return _invoke("table_get", rid, _table_kind(table), key)


def table_set(rid, table, key, value):
    return _invoke("table_set", rid, _table_kind(table), key, value)


def table_add(rid, table, key, value):
    return _invoke("table_add", rid, _table_kind(table), key, value)


def table_unset(rid, table, key):
    return _invoke("table_unset", rid, _table_kind(table), key)


def table_clear(rid, table):
    return _invoke("table_clear", rid, _table_kind(table))


def fields(rid):
    """The request's fields as a dict of Python values."""
    return {name: to_python(value) for name, value in _invoke("fields", rid)}


def set_field(rid, name, value):
    return _invoke("set_field", rid, name, from_python(value))


def log(rid, level, message):
    level = max(0, min(int(level), 7))
    return _invoke("log", rid, level, message)


def call(rid, op, args=()):
    return _invoke("call", rid, op, [str(a) for a in args])


def state_lock(key):
    return _invoke_state("lock", key)


def state_unlock(key):
    return _invoke_state("unlock", key)


def stderr(text):
    """Write to the tenant's log (stderr) and never raise."""
    try:
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - logging must never raise
        pass


def log_exception(prefix):
    """Write `prefix` and the traceback being handled to the tenant's log;
    never raise."""
    try:
        text = prefix + "\n" + traceback.format_exc()
    except BaseException:  # noqa: BLE001 - logging must never raise
        text = prefix
    stderr(text)
