"""What an instance restored from a snapshot must look like (tests/tests/snapshots.rs):
module state as right after the import, the policy's environment, fresh
entropy per instance. Each import appends a line to /scratch/imports.log,
so the test can tell an import from a restore."""

import json
import os
import random
import sys
import tempfile
import time

IMPORTED_AT = time.time()
RANDOM_AT_IMPORT = random.random()
COUNTER = [0]
with open("/scratch/imports.log", "a") as log:
    log.write("imported\n")


def application(environ, start_response):
    COUNTER[0] += 1
    with open("/app/data.txt") as data:
        text = data.read().strip()
    body = json.dumps({
        "counter": COUNTER[0],
        "random": random.random(),
        "random_at_import": RANDOM_AT_IMPORT,
        "temp_name": next(tempfile._get_candidate_names()),
        "greeting": os.environ.get("GREETING"),
        "data": text,
        "hash": hash("a string"),
        "modules": len(sys.modules),
        "imported_at": IMPORTED_AT,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
