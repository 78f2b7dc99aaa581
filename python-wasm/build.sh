#!/usr/bin/env bash
# Reproducible build of the mod_wasmpy runtime component.
#
#   python-wasm/build.sh [OUT_DIR]      (default: build/runtime at the repo top)
#
# Produces OUT_DIR/gateway.wasm (CPython 3.14 + the gateway, pre-initialised)
# and OUT_DIR/python/ (the matching standard library, mounted read-only at
# /python in every instance). The tools are pinned and installed into a
# private venv; nothing is taken from the system Python but the interpreter.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/.." && pwd)"
out="${1:-$top/build/runtime}"
venv="$top/build/venv"

if [ ! -x "$venv/bin/componentize-py" ] || ! "$venv/bin/pip" freeze 2>/dev/null | grep -qx 'componentize-py==0.25.1'; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements-build.txt"
fi

mkdir -p "$out"
"$venv/bin/python" "$here/extract_stdlib.py" "$out/python"
"$venv/bin/componentize-py" -q -d "$here/wit" -w gateway componentize \
  -p "$here/guest" wasmpy_gateway -o "$out/gateway.wasm.tmp"
mv "$out/gateway.wasm.tmp" "$out/gateway.wasm"
sha256sum "$out/gateway.wasm" | sed "s|$out/||" > "$out/gateway.wasm.sha256"
echo "runtime built: $out/gateway.wasm ($(du -h "$out/gateway.wasm" | cut -f1))"
