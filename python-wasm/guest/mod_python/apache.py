"""mod_python.apache for mod_wasmpy: the constants, `SERVER_RETURN`, `table`,
`import_module`, `log_error` and the other module-level API of mod_python 3.5.

The request object, its tables and views are in `wasmpy.request`; the
dispatcher of the phases in `wasmpy.phases`. What has no meaning inside a
sandbox (server-lifetime cleanups, Apache's configuration tree, ...) raises
NotImplementedError saying why.
"""

import importlib
import importlib.util
import os
import sys
import time

from wasmpy import _host
from wasmpy._host import (  # noqa: F401 - part of the API
    InvalidRequestError,
    RequestDeniedError,
    RequestIOError,
    RequestTooLarge,
    StaleRequestError,
    UnsupportedError,
)
from wasmpy.request import ServerView, table  # noqa: F401
from wasmpy.request import stat as _stat


class SERVER_RETURN(Exception):
    """Raise with `code` or `(code, status)` to end a handler with that result."""


# ---- results of handlers ----------------------------------------------------

OK = REQ_PROCEED = 0
DECLINED = REQ_NOACTION = -1
DONE = -2

# ---- HTTP status codes ------------------------------------------------------

HTTP_CONTINUE = 100
HTTP_SWITCHING_PROTOCOLS = 101
HTTP_PROCESSING = 102
HTTP_OK = 200
HTTP_CREATED = 201
HTTP_ACCEPTED = 202
HTTP_NON_AUTHORITATIVE = 203
HTTP_NO_CONTENT = 204
HTTP_RESET_CONTENT = 205
HTTP_PARTIAL_CONTENT = 206
HTTP_MULTI_STATUS = 207
HTTP_MULTIPLE_CHOICES = 300
HTTP_MOVED_PERMANENTLY = 301
HTTP_MOVED_TEMPORARILY = 302
HTTP_SEE_OTHER = 303
HTTP_NOT_MODIFIED = 304
HTTP_USE_PROXY = 305
HTTP_TEMPORARY_REDIRECT = 307
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_PAYMENT_REQUIRED = 402
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_METHOD_NOT_ALLOWED = 405
HTTP_NOT_ACCEPTABLE = 406
HTTP_PROXY_AUTHENTICATION_REQUIRED = 407
HTTP_REQUEST_TIME_OUT = 408
HTTP_CONFLICT = 409
HTTP_GONE = 410
HTTP_LENGTH_REQUIRED = 411
HTTP_PRECONDITION_FAILED = 412
HTTP_REQUEST_ENTITY_TOO_LARGE = 413
HTTP_REQUEST_URI_TOO_LARGE = 414
HTTP_UNSUPPORTED_MEDIA_TYPE = 415
HTTP_RANGE_NOT_SATISFIABLE = 416
HTTP_EXPECTATION_FAILED = 417
HTTP_IM_A_TEAPOT = 418
HTTP_UNPROCESSABLE_ENTITY = 422
HTTP_LOCKED = 423
HTTP_FAILED_DEPENDENCY = 424
HTTP_UPGRADE_REQUIRED = 426
HTTP_INTERNAL_SERVER_ERROR = 500
HTTP_NOT_IMPLEMENTED = 501
HTTP_BAD_GATEWAY = 502
HTTP_SERVICE_UNAVAILABLE = 503
HTTP_GATEWAY_TIME_OUT = 504
HTTP_VERSION_NOT_SUPPORTED = 505
HTTP_VARIANT_ALSO_VARIES = 506
HTTP_INSUFFICIENT_STORAGE = 507
HTTP_NOT_EXTENDED = 510

REQ_ABORTED = HTTP_INTERNAL_SERVER_ERROR
REQ_EXIT = "REQ_EXIT"

# ---- log levels (syslog's) --------------------------------------------------

APLOG_EMERG = 0
APLOG_ALERT = 1
APLOG_CRIT = 2
APLOG_ERR = 3
APLOG_WARNING = 4
APLOG_NOTICE = 5
APLOG_INFO = 6
APLOG_DEBUG = 7
APLOG_NOERRNO = 0  # deprecated, kept for old code

# ---- req.get_remote_host() --------------------------------------------------

REMOTE_HOST = 0
REMOTE_NAME = 1
REMOTE_NOLOOKUP = 2
REMOTE_DOUBLE_REV = 3

# ---- req.finfo / apache.stat() ----------------------------------------------

FINFO_MODE = 0
FINFO_INO = 1
FINFO_DEV = 2
FINFO_NLINK = 3
FINFO_UID = 4
FINFO_GID = 5
FINFO_SIZE = 6
FINFO_ATIME = 7
FINFO_MTIME = 8
FINFO_CTIME = 9
FINFO_FNAME = 10
FINFO_NAME = 11
FINFO_FILETYPE = 12

APR_NOFILE = 0
APR_REG = 1
APR_DIR = 2
APR_CHR = 3
APR_BLK = 4
APR_PIPE = 5
APR_LNK = 6
APR_SOCK = 7
APR_UNKFILE = 127

APR_FINFO_LINK = 0x00000001
APR_FINFO_MTIME = 0x00000010
APR_FINFO_CTIME = 0x00000020
APR_FINFO_ATIME = 0x00000040
APR_FINFO_SIZE = 0x00000100
APR_FINFO_CSIZE = 0x00000200
APR_FINFO_DEV = 0x00001000
APR_FINFO_INODE = 0x00002000
APR_FINFO_NLINK = 0x00004000
APR_FINFO_TYPE = 0x00008000
APR_FINFO_USER = 0x00010000
APR_FINFO_GROUP = 0x00020000
APR_FINFO_UPROT = 0x00100000
APR_FINFO_GPROT = 0x00200000
APR_FINFO_WPROT = 0x00400000
APR_FINFO_ICASE = 0x01000000
APR_FINFO_NAME = 0x02000000
APR_FINFO_MIN = 0x00008170
APR_FINFO_IDENT = 0x00003000
APR_FINFO_OWNER = 0x00030000
APR_FINFO_PROT = 0x00700000
APR_FINFO_NORM = 0x0073B170
APR_FINFO_DIRENT = 0x02000000

# ---- req.parsed_uri ---------------------------------------------------------

URI_SCHEME = 0
URI_HOSTINFO = 1
URI_USER = 2
URI_PASSWORD = 3
URI_HOSTNAME = 4
URI_PORT = 5
URI_PATH = 6
URI_QUERY = 7
URI_FRAGMENT = 8

# ---- req.proxyreq -----------------------------------------------------------

PROXYREQ_NONE = 0
PROXYREQ_PROXY = 1
PROXYREQ_REVERSE = 2
PROXYREQ_RESPONSE = 3

# ---- method numbers (req.method_number, req.allow_methods) -------------------

M_GET = 0
M_PUT = 1
M_POST = 2
M_DELETE = 3
M_CONNECT = 4
M_OPTIONS = 5
M_TRACE = 6
M_PATCH = 7
M_PROPFIND = 8
M_PROPPATCH = 9
M_MKCOL = 10
M_COPY = 11
M_MOVE = 12
M_LOCK = 13
M_UNLOCK = 14
M_VERSION_CONTROL = 15
M_CHECKOUT = 16
M_UNCHECKOUT = 17
M_CHECKIN = 18
M_UPDATE = 19
M_LABEL = 20
M_REPORT = 21
M_MKWORKSPACE = 22
M_MKACTIVITY = 23
M_BASELINE_CONTROL = 24
M_MERGE = 25
M_INVALID = 26

# ---- req.used_path_info -----------------------------------------------------

AP_REQ_ACCEPT_PATH_INFO = 0
AP_REQ_REJECT_PATH_INFO = 1
AP_REQ_DEFAULT_PATH_INFO = 2

# ---- mpm_query() ------------------------------------------------------------

AP_MPMQ_NOT_SUPPORTED = 0
AP_MPMQ_STATIC = 1
AP_MPMQ_DYNAMIC = 2

AP_MPMQ_MAX_DAEMON_USED = 1
AP_MPMQ_IS_THREADED = 2
AP_MPMQ_IS_FORKED = 3
AP_MPMQ_HARD_LIMIT_DAEMONS = 4
AP_MPMQ_HARD_LIMIT_THREADS = 5
AP_MPMQ_MAX_THREADS = 6
AP_MPMQ_MIN_SPARE_DAEMONS = 7
AP_MPMQ_MIN_SPARE_THREADS = 8
AP_MPMQ_MAX_SPARE_DAEMONS = 9
AP_MPMQ_MAX_SPARE_THREADS = 10
AP_MPMQ_MAX_REQUESTS_DAEMON = 11
AP_MPMQ_MAX_DAEMONS = 12

# ---- magic MIME types -------------------------------------------------------

CGI_MAGIC_TYPE = "application/x-httpd-cgi"
INCLUDES_MAGIC_TYPE = "text/x-server-parsed-html"
INCLUDES_MAGIC_TYPE3 = "text/x-server-parsed-html3"
DIR_MAGIC_TYPE = "httpd/unix-directory"

# ---- req.read_body ----------------------------------------------------------

REQUEST_NO_BODY = 0
REQUEST_CHUNKED_ERROR = 1
REQUEST_CHUNKED_DECHUNK = 2

# ---- req.connection.keepalive -----------------------------------------------

AP_CONN_UNKNOWN = 0
AP_CONN_CLOSE = 1
AP_CONN_KEEPALIVE = 2

# The httpd 2.4 API version mod_python reports (Debian's httpd 2.4).
MODULE_MAGIC_NUMBER_MAJOR = 20120211
MODULE_MAGIC_NUMBER_MINOR = 0

# ---- functions --------------------------------------------------------------

make_table = table


def _current():
    from wasmpy import phases

    return phases.current_request()


def _need_request(what):
    req = _current()
    if req is None:
        raise RuntimeError(f"apache.{what}() needs a running request (it asks the host)")
    return req


#: The server of the running request (read-only); its members are None outside a request.
main_server = ServerView(_current)


def __getattr__(name):
    if name == "interpreter":
        req = _current()
        return None if req is None else req.interpreter
    raise AttributeError(f"module 'mod_python.apache' has no attribute {name!r}")


def log_error(message, level=APLOG_ERR, server=None):
    """Log through the running request when there is one, else to stderr
    (which the host writes to the tenant's log)."""
    req = _current()
    if req is not None:
        req.log_error(message, level)
    else:
        _host.stderr(str(message))


def exists_config_define(name):
    req = _need_request("exists_config_define")
    return req._wp_call("exists_config_define", name, invalidate=False) == ["1"]


def mpm_query(code):
    req = _need_request("mpm_query")
    return int(req._wp_call("mpm_query", int(code), invalidate=False)[0])


def stat(fname, wanted=APR_FINFO_MIN):
    """Information on a file of the sandbox (a guest path), as req.finfo."""
    return _stat(fname, wanted)


def register_cleanup(callback, data=None):
    raise NotImplementedError(
        "apache.register_cleanup() is not available in mod_wasmpy: cleanups at child exit "
        "need a shutdown hook, and sandbox instances are discarded without running Python; "
        "use req.register_cleanup() for per-request cleanups")


def config_tree():
    raise NotImplementedError(
        "apache.config_tree() is not available in mod_wasmpy: the server's configuration "
        "is not visible to tenants")


def server_root():
    raise NotImplementedError(
        "apache.server_root() is not available in mod_wasmpy: host paths are not visible "
        "to tenants")


def init(name, server):
    raise NotImplementedError(
        "apache.init() is not available in mod_wasmpy: the runtime starts the dispatcher itself")


# ---- importing handler modules ----------------------------------------------

# How often (seconds) a module's file is checked for a change: at every
# request, so that an edit is used by the next one (mod_python 3.5: once a second).
MTIME_CHECK_INTERVAL = 0.0


def module_mtime(module):
    """The modification time of a module's source (0 when it has no file)."""
    filepath = getattr(module, "__file__", None)
    mtime = 0
    if filepath:
        try:
            mtime = os.path.getmtime(filepath)
        except OSError:
            pass
        module.__dict__["__mtime_check__"] = time.time()
    return mtime


def _forget_bytecode(module):
    """Remove the cached bytecode of a module about to be reloaded: it is
    validated by the source's mtime in whole seconds and its size, so an edit
    within the same second that keeps the size would load the old code."""
    filepath = getattr(module, "__file__", None)
    if not filepath or not filepath.endswith(".py"):
        return
    try:
        os.remove(importlib.util.cache_from_source(filepath))
    except (OSError, ValueError, NotImplementedError):
        pass


def import_module(module_name, autoreload=1, log=0, path=None):
    """Import `module_name`; with autoreload, import it again when its file
    changed since it was imported.
    `path` restricts where the module may come from."""
    module = sys.modules.get(module_name)
    reload = False
    if module is None:
        reload = None
    elif autoreload:
        filepath = getattr(module, "__file__", None)
        if not filepath:
            # Built-in and namespace modules are never reloaded.
            return module
        if path and not any(filepath.startswith(p) for p in path):
            reload = True
        elif time.time() - module.__dict__.get("__mtime_check__", 0) > MTIME_CHECK_INTERVAL:
            reload = module_mtime(module) != module.__dict__.get("__mtime__", 0)
    if reload is False:
        return module
    if log:
        where = f" with path set to '{path}'" if path else ""
        log_error(f"mod_python: (Re)importing module '{module_name}'{where}", APLOG_NOTICE)
    saved = None
    if path:
        saved = sys.path[:]
        sys.path[:0] = list(path)
    try:
        # Forget the directory listings of sys.path (a file may be new); not
        # importlib.invalidate_caches(), which first imports importlib.metadata
        # (measured: 180 ms on an instance's first handler).
        for finder in list(sys.path_importer_cache.values()):
            invalidate = getattr(finder, "invalidate_caches", None)
            if invalidate is not None:
                invalidate()
        if reload is None:
            module = importlib.import_module(module_name)
        else:
            _forget_bytecode(module)
            module = importlib.reload(module)
    finally:
        if saved is not None:
            sys.path[:] = saved
    module.__dict__["__mtime__"] = module_mtime(module)
    return module
