"""mod_python 3.5's Python API for handlers running in a mod_wasmpy sandbox.

Written for mod_wasmpy from mod_python's documentation and behaviour
(docs/mod_python.md): `apache` (with the `req` object), `util`
(FieldStorage), `publisher`, `psp`, `Session`, `Cookie`, `wsgi` and
`cgihandler`. Filters are served by `wasmpy.filters`.
"""

__all__ = ["apache", "version", "util", "publisher", "psp", "Session", "Cookie", "wsgi",
           "cgihandler"]

from . import version

mp_version = version.version

from . import apache  # noqa: E402
