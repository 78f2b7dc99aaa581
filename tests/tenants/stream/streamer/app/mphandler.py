"""The same tenant through a mod_python handler: req.write flushes."""
import time

from mod_python import apache


def handler(req):
    req.content_type = "application/octet-stream"
    req.write("first\n")
    time.sleep(1)
    req.write("second\n")
    return apache.OK
