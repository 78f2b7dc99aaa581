"""A handler in every phase: each records its phase in req.notes["trail"]
and in a custom req attribute; the content handler reports both, the log
and cleanup handlers write them to the scratch directory."""
import json
import os

from mod_python import apache


def _mark(req, name):
    if not req.uri.startswith("/py/phases"):
        return False
    req.notes["trail"] = req.notes.get("trail", "") + name + " "
    if not hasattr(req, "mp_trail"):
        req.mp_trail = []
    req.mp_trail.append(name)
    return True


def postreadrequesthandler(req):
    _mark(req, "postread")
    return apache.OK


def transhandler(req):
    _mark(req, "trans")
    return apache.DECLINED


def inithandler(req):
    _mark(req, "init")
    return apache.OK


def headerparserhandler(req):
    _mark(req, "headerparser")
    return apache.OK


def accesshandler(req):
    _mark(req, "access")
    return apache.OK


def authenhandler(req):
    _mark(req, "authen")
    password = req.get_basic_auth_pw()
    if password == "secret":
        return apache.OK
    return apache.HTTP_UNAUTHORIZED


def authzhandler(req):
    _mark(req, "authz")
    return apache.OK if req.user == "alice" else apache.HTTP_FORBIDDEN


def typehandler(req):
    _mark(req, "type")
    return apache.DECLINED


def fixuphandler(req):
    _mark(req, "fixup")
    return apache.OK


def handler(req):
    _mark(req, "handler")
    req.content_type = "application/json"
    req.write(json.dumps({
        "notes": req.notes.get("trail", "").split(),
        "attr": getattr(req, "mp_trail", None),
        "phase": req.phase,
        "user": req.user,
    }))
    return apache.OK


def _record(req, name):
    if _mark(req, name):
        path = os.path.join(req.get_options()["scratch"], "phases-%s.txt" % name)
        with open(path, "w") as f:
            f.write(" ".join(getattr(req, "mp_trail", [])) + "|" + req.phase)


def loghandler(req):
    _record(req, "log")
    return apache.OK


def cleanuphandler(req):
    _record(req, "cleanup")
    return apache.OK
