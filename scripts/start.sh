#!/usr/bin/env bash
# Build what is missing, then run the Debian Apache with mod_wasmpy serving
# the example tenants on http://127.0.0.1:8080/ (foreground; Ctrl-C stops).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
scripts/setup.sh
cargo build
port="${PORT:-8080}"
# The mod_python example site (examples/modpython), bound by WasmPyTenant.
site="$top/examples/modpython/greeter"
sed -e "s|@SITE@|$site|g" -e "s|@TENANTS@|$top/examples/tenants|g" examples/modpython/site.conf.in > build/modpython-site.conf
echo "Apache + mod_wasmpy on http://127.0.0.1:$port/ : try /hello/, /flask/, /notes/, /mp/ and /modpython/ (mod_python), /wasmpy-status"
exec target/debug/wasmpy apache examples/tenants --port "$port" --run-dir build/apache-run \
  --conf "$top/build/modpython-site.conf"
