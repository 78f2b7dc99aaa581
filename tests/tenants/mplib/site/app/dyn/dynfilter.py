"""A handler that registers an output filter for its own request
(req.register_output_filter + req.add_output_filter; tests/tests/mplib.rs)."""

import os

from mod_python import apache

# The filter's module is in the directory above (put on sys.path for it).
APP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def handler(req):
    req.register_output_filter("SHOUT", "filters::upper", APP)
    req.add_output_filter("SHOUT")
    req.content_type = "text/plain"
    req.write("quiet words")
    return apache.OK
