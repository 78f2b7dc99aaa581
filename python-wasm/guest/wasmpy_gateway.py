"""The mod_wasmpy runtime's exports: `load`, `handle`, `run-phase`, `run-filter`,
`end-request`.

This module's top level runs once, at build time, inside componentize-py;
the resulting interpreter state is snapshotted into the runtime component.
Everything imported here is therefore free at run time. The tenant's code is
imported later, at run time, from the read-only preopen `/app`.

The work is done in `wasmpy` (WSGI, the mod_python dispatcher, the host
calls) and `mod_python`; this class only delegates and turns results into
records. No exception ever escapes an export (that would trap the
instance): every export catches BaseException.
"""

import gc
import io
import os
import sys
import traceback

# Commonly needed modules are imported at build time so that they are part of
# the snapshot; the rest of the standard library is read from /python.
import base64  # noqa: F401
import codecs  # noqa: F401
import collections  # noqa: F401
import datetime  # noqa: F401
import encodings.idna  # noqa: F401
import encodings.latin_1  # noqa: F401
import encodings.utf_8  # noqa: F401
import functools  # noqa: F401
import hashlib  # noqa: F401
import html  # noqa: F401
import importlib  # noqa: F401
import ipaddress  # noqa: F401
import json  # noqa: F401
import random
import re  # noqa: F401
import urllib.parse  # noqa: F401

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import Failure

# The guest library and mod_python, in the snapshot too.
import mod_python  # noqa: F401
import mod_python.apache  # noqa: F401
# mod_python's standard handlers and modules: only what is imported here is
# in the runtime (the guest directory exists at build time only).
import mod_python.Cookie  # noqa: F401
import mod_python.Session  # noqa: F401
import mod_python.cgihandler  # noqa: F401
import mod_python.psp  # noqa: F401
import mod_python.publisher  # noqa: F401
import mod_python.util  # noqa: F401
import mod_python.wsgi  # noqa: F401
import wasmpy.ssi  # noqa: F401
import wasmpy.state  # noqa: F401
import wasmpy  # noqa: F401
from wasmpy import _host

# The generated bindings exist only at build time (under /world): load them
# now so that they are part of the snapshot.
_host._load()
_host._load_state()
from wasmpy import filters, phases, wsgi
import wasmpy.request  # noqa: F401

# Where the host mounts the read-only standard library and the tenant's code.
STDLIB_DIR = "/python"
APP_DIR = "/app"
# The host mounts a per-tenant writable bytecode cache here when it has one.
PYCACHE_DIR = "/.wasmpy/pycache"

_FAILURES = {
    None: None,
    "exception": Failure.EXCEPTION,
    "memory": Failure.MEMORY,
    "import-failed": Failure.IMPORT_FAILED,
}


class _State:
    """The loaded application; kept across requests (the instance is persistent)."""

    app = None
    entry = None
    loaded = False


def _set_output_streams():
    """Line-buffered stdout/stderr over buffered writers: a large write is
    passed to the host in pieces instead of being cut at the first one."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        raw = io.FileIO(fd, "w", closefd=False)
        stream = io.TextIOWrapper(
            io.BufferedWriter(raw), encoding="utf-8", errors="backslashreplace", line_buffering=True
        )
        setattr(sys, name, stream)


def _set_import_path():
    """sys.path: the app, its optional vendor dir, then the standard library."""
    paths = [APP_DIR]
    vendor = APP_DIR + "/vendor"
    if os.path.isdir(vendor):
        paths.append(vendor)
    paths.append(STDLIB_DIR)
    sys.path[:] = paths
    sys.path_importer_cache.clear()
    if os.path.isdir(PYCACHE_DIR):
        sys.pycache_prefix = PYCACHE_DIR
        sys.dont_write_bytecode = False
    else:
        sys.dont_write_bytecode = True


def _import_entry(entry):
    module_name, _, callable_name = entry.partition(":")
    module = __import__(module_name)
    for part in module_name.split(".")[1:]:
        module = getattr(module, part)
    app = module
    for part in callable_name.split("."):
        app = getattr(app, part)
    if not callable(app):
        raise TypeError(f"{entry} is not callable")
    return app


def _flush_streams():
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass


def _record(response):
    return wit_world.WsgiResponse(
        status=response.status,
        headers=response.headers,
        body=response.body,
        streamed=response.streamed,
        failure=_FAILURES[response.failure],
    )


def _fresh_entropy():
    """Reseed what a snapshot (the runtime's, or a tenant's) froze: the
    `random` module's PRNG and `tempfile`'s name sequence."""
    random.seed()
    tempfile = sys.modules.get("tempfile")
    if tempfile is not None:
        tempfile._name_sequence = None


class WitWorld(wit_world.WitWorld):
    """The exports of the runtime component."""

    def load(self, entry: str, env: list) -> None:
        if _State.loaded and _State.entry == entry:
            # An instance restored from the tenant's snapshot: the import is
            # done, but what the snapshot froze must differ per instance.
            _fresh_entropy()
            return
        try:
            wsgi.environment(env)
            _set_output_streams()
            _set_import_path()
            _fresh_entropy()
            _State.app = _import_entry(entry) if entry else None
            _State.entry = entry
            _State.loaded = True
        except BaseException:  # noqa: BLE001 - nothing may escape the gateway
            # The host logs the traceback with the tenant's name.
            raise Err(traceback.format_exc())

    def handle(self, req: wit_world.WsgiRequest) -> wit_world.WsgiResponse:
        try:
            if _State.app is None:
                sys.stderr.write("mod_wasmpy: WSGI request without a loaded application\n")
                return _record(wsgi.error_response(500, "import-failed"))
            try:
                return _record(wsgi.run(_State.app, req))
            except wsgi.StreamFailure as failure:
                return _record(wsgi.Response(failure.status or 500, [], b"", True, failure.failure))
            except MemoryError:
                gc.collect()
                _host.log_exception("mod_wasmpy: MemoryError in the application")
                return _record(wsgi.error_response(500, "memory"))
            except BaseException:  # noqa: BLE001 - nothing may escape the gateway
                _host.log_exception("mod_wasmpy: exception in the application")
                return _record(wsgi.error_response(500, "exception"))
            finally:
                _flush_streams()
        except BaseException:  # noqa: BLE001 - last resort: never trap
            return wit_world.WsgiResponse(500, [], b"", False, Failure.EXCEPTION)

    def run_phase(self, id: int, call: wit_world.PhaseCall) -> wit_world.PhaseResult:
        try:
            try:
                status, failure = phases.run_phase(id, call)
            except MemoryError:
                gc.collect()
                _host.log_exception("mod_wasmpy: MemoryError in a mod_python phase")
                status, failure = 500, "memory"
            except BaseException:  # noqa: BLE001
                _host.log_exception("mod_wasmpy: exception in the mod_python dispatcher")
                status, failure = 500, "exception"
            finally:
                _flush_streams()
            if not -2 <= status <= -1 and status != 0 and not 100 <= status <= 599:
                status = 500
            return wit_world.PhaseResult(status=status, failure=_FAILURES.get(failure))
        except BaseException:  # noqa: BLE001 - last resort: never trap
            return wit_world.PhaseResult(status=500, failure=Failure.EXCEPTION)

    def run_filter(self, id: int, call: wit_world.FilterCall) -> wit_world.FilterResult:
        try:
            try:
                output, closed, disabled, flush, failure = filters.run_filter(id, call)
            except MemoryError:
                gc.collect()
                _host.log_exception("mod_wasmpy: MemoryError in a mod_python filter")
                output, closed, disabled, flush, failure = b"", False, True, False, "memory"
            finally:
                _flush_streams()
            return wit_world.FilterResult(
                output=output.decode("latin-1"), closed=closed, disabled=disabled, flush=flush,
                failure=_FAILURES.get(failure))
        except BaseException:  # noqa: BLE001 - last resort: never trap
            return wit_world.FilterResult(output="", closed=False, disabled=True, flush=False,
                                          failure=Failure.EXCEPTION)

    def end_request(self, id: int) -> None:
        try:
            phases.end_request(id)
        except BaseException:  # noqa: BLE001
            _host.log_exception("mod_wasmpy: exception while ending a request")
        finally:
            _flush_streams()
