"""A tenant misusing the live request; each case reports what happened."""
import json
import os

from mod_python import apache
from wasmpy import _host

KEPT = None


def _report(req, data):
    req.content_type = "application/json"
    req.write(json.dumps(data, sort_keys=True))
    return apache.OK


def _try(fn):
    try:
        return "ok: %r" % (fn(),)
    except Exception as e:
        return "refused: %s: %s" % (type(e).__name__, e)


def keep(req):
    global KEPT
    KEPT = req
    return _report(req, {"kept": True})


def stale(req):
    if KEPT is None:
        return _report(req, {"stale": "nothing kept"})
    return _report(req, {
        "write": _try(lambda: KEPT.write("leak")),
        "uri": _try(lambda: KEPT.uri),
        "headers_out": _try(lambda: KEPT.headers_out.__setitem__("X-Stale", "1")),
        "same": KEPT is req,
    })


def headers(req):
    many = 0
    try:
        for i in range(5000):
            req.headers_out.add("X-Many-%d" % i, "v")
            many += 1
        many_error = None
    except Exception as e:
        many_error = type(e).__name__
    req.headers_out.clear()
    big = _try(lambda: req.headers_out.__setitem__("X-Big", "x" * (2 << 20)))
    crlf = _try(lambda: req.headers_out.__setitem__("X-Split", "a\r\nSet-Cookie: evil=1"))
    name = _try(lambda: req.headers_out.__setitem__("Bad Name:", "v"))
    return _report(req, {"many": many, "many_error": many_error, "big": big,
                         "crlf": crlf, "name": name})


def _late(req):
    result = _try(lambda: req.write("late write from cleanup"))
    with open("/scratch/late.txt", "w") as f:
        f.write(result)


def late(req):
    req.register_cleanup(_late, req)
    req.content_type = "text/plain"
    req.write("response body")
    return apache.OK


def loop(req):
    req.internal_redirect(req.uri + "?again")
    return apache.OK


def sendfile(req):
    return _report(req, {
        "passwd": _try(lambda: req.sendfile("/etc/passwd")),
        "dotdot": _try(lambda: req.sendfile("/app/../../../../etc/passwd")),
        "symlink": _try(lambda: req.sendfile("/app/hostile/passwd-link")),
        "scratch-link": _try(lambda: req.sendfile("/scratch/passwd-link")),
    })


def filename(req):
    return _report(req, {
        "outside": _try(lambda: setattr(req, "filename", "/etc/passwd")),
        "dotdot": _try(lambda: setattr(req, "filename", "/app/../etc/passwd")),
        "inside": _try(lambda: setattr(req, "filename", "/app/hostile/rogue.py")),
        # Apache expects these to exist: unsetting them is refused by the
        # host, even when the library's own check is bypassed.
        "uri-none": _try(lambda: _host.set_field(req._wp_id_checked(), "uri", None)),
        "path-info-none": _try(lambda: _host.set_field(req._wp_id_checked(), "path_info", None)),
        "now": req.filename,
    })


def handler(req):
    case = req.uri.rsplit("/", 1)[-1]
    fn = globals().get(case)
    if fn is None or case.startswith("_") or case == "handler":
        return apache.HTTP_NOT_FOUND
    return fn(req)


def whoami(req):
    """PythonInterpreter naming another tenant reaches nothing of it."""
    return _report(req, {"interpreter": req.interpreter,
                         "app": sorted(os.listdir("/app")),
                         "secret": _try(lambda: open("/app/secret.txt").read())})


def hijack(req):
    """Try to hand the request to another module's handler or to another
    tenant (the module routes by a request note)."""
    return _report(req, {
        "status-page": _try(lambda: setattr(req, "handler", "wasmpy-status")),
        "wsgi-app": _try(lambda: setattr(req, "handler", "wasmpy-app")),
        "proxy": _try(lambda: setattr(req, "handler", "proxy-server")),
        "server-status": _try(lambda: setattr(req, "handler", "server-status")),
        "note": _try(lambda: req.notes.__setitem__("wasmpy-tenant", "neighbour")),
        "note-add": _try(lambda: req.notes.add("WASMPY-script-name", "/")),
        "mod_python": _try(lambda: setattr(req, "handler", "mod_python")),
    })
