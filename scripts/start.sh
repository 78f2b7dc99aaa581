#!/usr/bin/env bash
# Build what is missing, then serve the example tenants on localhost.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
scripts/setup.sh
cargo build
port="${PORT:-8000}"
echo "serving examples/tenants on http://127.0.0.1:$port/ (try /hello/, /flask/, /notes/)"
exec target/debug/wasmpy serve examples/tenants --listen "127.0.0.1:$port" --cache-dir build/cache
