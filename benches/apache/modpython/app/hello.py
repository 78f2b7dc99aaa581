"""Hello world as a mod_python handler, served by benches/apache/run.sh.

The same file runs under real mod_python 3.5 (SetHandler mod_python +
PythonHandler hello) and under mod_wasmpy (the same directives plus
WasmPyTenant), so the two rows differ only in the module.
"""
from mod_python import apache


def handler(req):
    req.content_type = "text/plain"
    req.write("Hello, World!")
    return apache.OK
