"""Echoes the request body's length and digest (behind the SWAPA input filter)."""

import hashlib

from mod_python import apache


def handler(req):
    req.content_type = "text/plain"
    digest = hashlib.sha256()
    total = 0
    while True:
        chunk = req.read(65536)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
    req.write("%d %s" % (total, digest.hexdigest()))
    return apache.OK
