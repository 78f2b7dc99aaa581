"""A handler that raises: PythonDebug decides who sees the traceback."""
from mod_python import apache


def handler(req):
    raise ValueError("failing-handler-marker")
