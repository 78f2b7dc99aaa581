"""Imports every module of sys.stdlib_module_names and reports the failures:
the whole usable standard library must be importable at run time."""

import json
import sys

# Modules with side effects on import (printing, opening a browser).
SKIP = {"this", "antigravity"}


def application(environ, start_response):
    failed = {}
    for name in sorted(sys.stdlib_module_names - SKIP):
        if name in sys.modules:
            continue
        try:
            __import__(name)
        except BaseException as e:  # noqa: BLE001 - report everything
            failed[name] = f"{type(e).__name__}: {e}"
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(failed, sort_keys=True).encode()]
