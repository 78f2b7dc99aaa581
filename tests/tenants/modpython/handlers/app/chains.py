"""Handler chains: return codes and mod_python's rules for the next handler."""
from mod_python import apache


def one(req):
    req.content_type = "text/plain"
    req.write("one ")
    return apache.OK


def two(req):
    req.content_type = "text/plain"
    req.write("two ")
    return apache.OK


def declines(req):
    return apache.DECLINED


def done(req):
    req.content_type = "text/plain"
    req.write("done ")
    return apache.DONE


def forbidden(req):
    return apache.HTTP_FORBIDDEN


def raises(req):
    raise apache.SERVER_RETURN(apache.HTTP_NOT_IMPLEMENTED)


def raises_ok(req):
    req.content_type = "text/plain"
    req.write("raised ok ")
    raise apache.SERVER_RETURN(apache.OK)


def _note(req, name):
    req.notes["chain"] = req.notes.get("chain", "") + name + " "


def fix_declined(req):
    _note(req, "fix_declined")
    return apache.DECLINED


def fix_ok(req):
    _note(req, "fix_ok")
    return apache.OK


def fix_gone(req):
    _note(req, "fix_gone")
    return apache.HTTP_GONE


def report(req):
    req.content_type = "text/plain"
    req.write("chain: " + req.notes.get("chain", ""))
    return apache.OK


def txt(req):
    req.content_type = "text/plain"
    req.write("txt handler for " + req.filename.rsplit("/", 1)[-1])
    return apache.OK


def py(req):
    req.content_type = "text/plain"
    req.write("py handler for " + req.filename.rsplit("/", 1)[-1])
    return apache.OK


def interp(req):
    req.content_type = "text/plain"
    req.write("interpreter=%s" % req.interpreter)
    return apache.OK


def imported(req):
    import sys
    req.content_type = "text/plain"
    mod = sys.modules.get("preloaded")
    req.write("preloaded=%s" % (getattr(mod, "LOADED", None),))
    return apache.OK
