"""The tenant's private state: a directory and locks, nothing shared.

Every instance of a tenant sees the same read-write directory at
`DIRECTORY` (`/.wasmpy/state`); no other tenant can see it. The host keeps
it under `WasmPyStateDir` (docs/mod_python.md, "State"). Sessions, PSP's
compiled pages and `FieldStorage` uploads live here.

`lock(key)` takes a lock that holds across this tenant's instances and
Apache children (the host takes an `flock` on its behalf, outside the
directory the guest can write). It waits at most until the request's
deadline, is re-entrant within one instance, and is released by `unlock`
or when the request ends.
"""

import os

#: The tenant's private read-write directory, as the guest sees it.
DIRECTORY = "/.wasmpy/state"


def directory(*parts):
    """`DIRECTORY/parts...`, created if missing."""
    path = os.path.join(DIRECTORY, *parts)
    os.makedirs(path, exist_ok=True)
    return path


def tempdir():
    """A directory for temporary files (uploads) inside the state directory."""
    return directory("tmp")


def lock(key):
    """Take the tenant-wide lock named `key` (a str); blocks until it is free
    or the request's deadline passes (then raises wasmpy.RequestIOError)."""
    from . import _host

    _host.state_lock(str(key))


def unlock(key):
    """Release the lock named `key`; releasing a lock not held is a no-op."""
    from . import _host

    _host.state_unlock(str(key))
