#!/usr/bin/env bash
# Build what is missing, then run the Debian Apache with mod_wasmpy serving
# the example tenants on http://127.0.0.1:8080/ (foreground; Ctrl-C stops).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
scripts/setup.sh
cargo build
port="${PORT:-8080}"
echo "Apache + mod_wasmpy on http://127.0.0.1:$port/ : try /hello/, /flask/, /notes/, /wasmpy-status"
exec target/debug/wasmpy apache examples/tenants --port "$port" --run-dir build/apache-run
