from mod_python import apache


def handler(req):
    req.content_type = "text/plain"
    req.write("htaccess handler; option=%s; filename=%s"
              % (req.get_options().get("from-htaccess"), req.filename))
    return apache.OK
