"""The neighbour: tries to reach `site`'s sessions, PSP pages and uploads
(tests/tests/mplib.rs). Published with mod_python.publisher."""

import os

from mod_python import Session


def _try(what):
    try:
        return repr(what())
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__


def look(req):
    out = []
    out.append("state=" + _try(lambda: sorted(os.listdir("/.wasmpy/state"))))
    for path in ("/.wasmpy/state/../../site", "/.wasmpy/state/../..", "/.wasmpy",
                 "/.wasmpy/state/sessions", "/.wasmpy/state/psp", "/.wasmpy/state/tmp"):
        out.append(path + "=" + _try(lambda: sorted(os.listdir(path))))
    return "\n".join(out)


def counter(req):
    session = Session.Session(req)
    session["n"] = session.get("n", 0) + 1
    session.save()
    return "%d %s" % (session["n"], bool(session.is_new()))
