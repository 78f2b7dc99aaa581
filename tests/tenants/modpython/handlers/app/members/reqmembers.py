"""Every group of mod_python's req members, one URL each (the last path
segment names the group); answers JSON the tests compare with what real
mod_python 3.5 answers."""
import json
import os
import time

from mod_python import apache


def _json(req, data):
    req.content_type = "application/json"
    req.write(json.dumps(data, sort_keys=True, default=repr))
    return apache.OK


def data(req):
    d = {}
    for name in ["method", "method_number", "the_request", "protocol", "proto_num",
                 "hostname", "unparsed_uri", "uri", "args", "path_info", "filename",
                 "canonical_filename", "header_only", "user", "ap_auth_type", "range",
                 "clength", "remaining", "read_length", "interpreter", "phase", "status",
                 "handler", "content_type", "no_cache"]:
        d[name] = getattr(req, name)
    d["parsed_uri.path"] = req.parsed_uri[apache.URI_PATH]
    d["parsed_uri.query"] = req.parsed_uri[apache.URI_QUERY]
    d["request_time_recent"] = abs(req.request_time - time.time()) < 120
    d["main"] = req.main
    d["prev"] = req.prev
    d["next"] = req.next
    d["hlist.handler"] = req.hlist.handler
    return _json(req, d)


def writable(req):
    req.status = 202
    req.content_type = "text/x-mine; charset=utf-8"
    req.no_cache = 1
    req.headers_out["X-Set"] = "yes"
    req.args = "changed=1"
    req.path_info = "/changed"
    req.mine = {"kept": True}
    req.write(json.dumps({
        "args": req.args, "path_info": req.path_info, "mine": req.mine,
        "status": req.status, "content_type": req.content_type, "no_cache": req.no_cache,
    }, sort_keys=True))
    return apache.OK


def _all(table, key):
    """Every value of key: mod_python's table answers a list when it repeats."""
    value = table[key]
    return sorted(value if isinstance(value, list) else [value])


def tables(req):
    hin = req.headers_in
    req.headers_out.add("X-Multi", "a")
    req.headers_out.add("X-Multi", "b")
    req.headers_out["X-One"] = "1"
    req.headers_out["X-Gone"] = "x"
    del req.headers_out["x-gone"]
    req.err_headers_out["X-Err"] = "e"
    req.subprocess_env["MP_VAR"] = "v"
    req.notes["n1"] = "note"
    t = apache.table()
    t["K"] = "v1"
    t.add("k", "v2")
    d = {
        "x-test": hin["x-test"],
        "X-TEST in": "X-TEST" in hin,
        "missing get": hin.get("x-missing", "default"),
        "multi in": _all(hin, "X-Rep"),
        "headers_out X-Multi": _all(req.headers_out, "x-multi"),
        "subprocess_env": req.subprocess_env["MP_VAR"],
        "notes": req.notes["N1"],
        "table keys": list(t.keys()),
        "table k": _all(t, "K"),
        "table len": len(t),
    }
    return _json(req, d)


def io(req):
    out = {
        "read5": req.read(5).decode(),
        "readline": req.readline().decode(),
        "readline3": req.readline(3).decode(),
        "readlines": [l.decode() for l in req.readlines()],
        "rest": req.read().decode(),
    }
    return _json(req, out)


def write(req):
    req.content_type = "text/plain; charset=utf-8"
    body = "caf\u00e9 "
    req.set_content_length(len(body.encode()) + len(b"bytes"))
    req.write(body, 0)
    req.flush()
    req.write(b"bytes")
    return apache.OK


def discard(req):
    status = req.discard_request_body()
    return _json(req, {"discard": status, "rest": req.read().decode()})


def redirect(req):
    req.notes["before"] = "redirect"
    req.internal_redirect("/py/members/target?from=redirect")
    return apache.OK


def target(req):
    return _json(req, {
        "uri": req.uri, "args": req.args,
        "prev.uri": req.prev.uri if req.prev else None,
    })


def added(req):
    req.write("added ran")
    return apache.OK


def add_handler(req):
    req.content_type = "text/plain"
    req.write("first; ")
    req.add_handler("PythonHandler", "reqmembers::added")
    return apache.OK


def _cleanup(path):
    with open(path, "w") as f:
        f.write("cleanup ran")


def cleanup(req):
    req.register_cleanup(_cleanup, os.path.join(req.get_options()["scratch"], "registered.txt"))
    req.content_type = "text/plain"
    req.write("registered")
    return apache.OK


def config(req):
    opts = req.get_options()
    conf = req.get_config()
    return _json(req, {
        "option": opts.get("answer"),
        "options has scratch": "scratch" in opts,
        "PythonDebug": conf.get("PythonDebug"),
        "PythonAutoReload": conf.get("PythonAutoReload"),
        "construct_url": req.construct_url("/x/y?z"),
        # The DocumentRoot is outside the tenant: mod_wasmpy answers None.
        "document_root": req.document_root() is None or isinstance(req.document_root(), str),
        "server.server_hostname": req.server.server_hostname,
        "server.port": req.server.port,
        "connection.remote_ip": req.connection.remote_ip,
        "connection.local_ip": req.connection.local_ip,
        "useragent_ip": getattr(req, "useragent_ip", None),
        "remote_host": req.get_remote_host(apache.REMOTE_NOLOOKUP),
        "is_https": req.is_https(),
    })


def cond(req):
    req.content_type = "text/plain"
    req.update_mtime(1000000000)
    req.set_last_modified()
    req.set_etag()
    status = req.meets_conditions()
    if status != apache.OK:
        return status
    req.write("fresh body")
    return apache.OK


def log(req):
    req.log_error("members-log-marker via req", apache.APLOG_ERR)
    apache.log_error("members-log-marker via apache", apache.APLOG_ERR)
    req.content_type = "text/plain"
    req.write("logged")
    return apache.OK


def vars(req):
    req.add_common_vars()
    req.add_cgi_vars()
    env = req.subprocess_env
    return _json(req, {k: env.get(k) for k in ["REMOTE_ADDR", "REQUEST_METHOD", "QUERY_STRING",
                                              "SERVER_PROTOCOL", "HTTP_X_TEST", "REQUEST_URI",
                                              "GATEWAY_INTERFACE"]})


def _app_dir():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sendfile(req):
    req.content_type = "text/plain"
    sent = req.sendfile(_app_dir() + "/ext/a.txt")
    req.write(" sent=%d" % sent)
    return apache.OK


def misc(req):
    req.allow_methods(["GET", "POST"])
    st = apache.stat(_app_dir() + "/ext/a.txt", apache.APR_FINFO_MIN)
    return _json(req, {
        "exists_config_define FOREGROUND": bool(apache.exists_config_define("FOREGROUND")),
        "exists_config_define NOPE": bool(apache.exists_config_define("NOPE")),
        "mpm_query threaded": apache.mpm_query(apache.AP_MPMQ_IS_THREADED),
        "stat is file": st.filetype == apache.APR_REG,
        "stat size": st.size,
        "import_module": apache.import_module("preloaded").LOADED,
        "main_server": apache.main_server.server_hostname,
        "OK DECLINED DONE": [apache.OK, apache.DECLINED, apache.DONE],
        "HTTP_NOT_FOUND": apache.HTTP_NOT_FOUND,
        "M_POST": apache.M_POST,
    })


def handler(req):
    parts = req.uri.split("/")
    group = parts[parts.index("members") + 1]
    fn = globals().get(group)
    if fn is None or group.startswith("_") or group == "handler":
        return apache.HTTP_NOT_FOUND
    return fn(req)


def authenhandler(req):
    password = req.get_basic_auth_pw()
    if req.user == "alice" and password == "secret":
        req.mp_password = password
        return apache.OK
    return apache.HTTP_UNAUTHORIZED


def auth(req):
    return _json(req, {
        "user": req.user,
        "ap_auth_type": req.ap_auth_type,
        "auth_type": req.auth_type(),
        "auth_name": req.auth_name(),
        "password": getattr(req, "mp_password", None),
        "is_https": req.is_https(),
    })
