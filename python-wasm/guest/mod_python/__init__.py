"""mod_python 3.5's Python API for handlers running in a mod_wasmpy sandbox.

Only `apache` and `version` are provided so far; util, publisher, psp,
Session and Cookie are not (importing them fails with ImportError).
"""

__all__ = ["apache", "version"]

from . import version

mp_version = version.version

from . import apache  # noqa: E402
