"""Python in server-side includes: `<!--#python exec="..." -->` and
`<!--#python eval="..." -->` in pages mod_include parses (the INCLUDES filter).

The host runs each directive as a filter call (`run-filter`) whose data is
the code. As in mod_python 3.5, the code runs with `req.ssi_globals` as its
globals (a new dict if no handler set one; a fixup handler may fill it), with
`filter` in them: `exec` writes its output with `filter.write` (or
`print(..., file=filter)`), `eval` is replaced by `str()` of its value. Globals
live for the request: later directives of the page see what earlier ones
defined.
"""


def _run(filter, mode):
    code = (filter.read() or b"").decode("utf-8").replace("\r\n", "\n")
    req = filter.req
    scope = req.__dict__.get("ssi_globals")
    if scope is None:
        scope = {}
        req.__dict__["ssi_globals"] = scope
    scope["filter"] = filter
    where = "<!--#python %s --> in %s" % (mode, req.uri)
    if mode == "eval":
        value = eval(compile(code.strip(), where, "eval"), scope)
        filter.write(str(value))
    else:
        exec(compile(code, where, "exec"), scope)


def exec_code(filter):
    _run(filter, "exec")


def eval_code(filter):
    _run(filter, "eval")
