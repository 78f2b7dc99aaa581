#!/usr/bin/env bash
# Build the two components of the crossing benchmark into build/crossing/:
#   records.wasm  the runtime's gateway world (plain records), a copy of
#                 build/runtime/gateway.wasm (built by python-wasm/build.sh if missing);
#   http.wasm     guest/http_hello.py for the wasi:http/proxy world.
# The wasi:http WIT files are the ones shipped in the wasmtime-wasi-http crate
# this benchmark links (componentize-py does not bundle them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../.." && pwd)"
out="$top/build/crossing"
venv="$top/build/venv"

if [ ! -x "$venv/bin/componentize-py" ] || ! "$venv/bin/pip" freeze 2>/dev/null | grep -qx 'componentize-py==0.25.1'; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check componentize-py==0.25.1
fi
[ -f "$top/build/runtime/gateway.wasm" ] || "$top/python-wasm/build.sh"

mkdir -p "$out"
cp "$top/build/runtime/gateway.wasm" "$out/records.wasm"

wit="$(cd "$top" && cargo metadata --format-version 1 --manifest-path "$here/Cargo.toml" |
  "$venv/bin/python" -c 'import json, sys, os
pkg = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "wasmtime-wasi-http")
print(os.path.join(os.path.dirname(pkg["manifest_path"]), "wit"))')"
"$venv/bin/componentize-py" -q -d "$wit" -w wasi:http/proxy@0.2.12 componentize \
  -p "$here/guest" http_hello -o "$out/http.wasm.tmp"
mv "$out/http.wasm.tmp" "$out/http.wasm"
ls -l "$out"/*.wasm
