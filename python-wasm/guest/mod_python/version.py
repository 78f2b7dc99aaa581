"""The mod_python version this API follows, and the runtime that provides it."""

version = "3.5.0"
# Not mod_python's build constants: nothing of the host is exposed here.
HTTPD = ""
HTTPD_VERSION = ""
APR_VERSION = ""
LIBEXECDIR = ""
SYSCONFDIR = ""
PYTHON_BIN = ""
RUNTIME = "mod_wasmpy"
