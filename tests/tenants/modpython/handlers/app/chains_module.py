"""PythonHandlerModule: the phases it defines run, the others are skipped."""
from mod_python import apache


def fixuphandler(req):
    req.notes["module"] = "fixup ran"
    return apache.OK


def handler(req):
    req.content_type = "text/plain"
    req.write("module handler; " + req.notes.get("module", "no fixup"))
    return apache.OK
