"""The mod_wasmpy guest library.

- `wasmpy._host`: the only importer of the `request` interface; host calls
  as Python calls and exceptions;
- `wasmpy.wsgi`: PEP 3333 over `wsgi-request` records, with streaming,
  on-demand request bodies and `wsgi.file_wrapper` as sendfile;
- `wasmpy.request`: mod_python's `req`, tables and views over the host calls;
- `wasmpy.phases`: the mod_python handler dispatcher (`run-phase`, `end-request`).
"""

from ._host import (  # noqa: F401
    InvalidRequestError,
    RequestDeniedError,
    RequestIOError,
    RequestTooLarge,
    StaleRequestError,
    UnsupportedError,
)
