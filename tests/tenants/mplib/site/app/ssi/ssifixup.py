"""Fills the globals of the page's <!--#python --> code (tests/tests/mplib.rs)."""

from mod_python import apache


def fixuphandler(req):
    req.ssi_globals = {"prefilled": "from the fixup handler"}
    return apache.OK
