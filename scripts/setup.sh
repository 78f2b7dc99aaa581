#!/usr/bin/env bash
# Install what mod_wasmpy needs on a Debian machine and build the runtime.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"

packages=(apache2 apache2-dev libclang-dev clang wrk libapache2-mod-wsgi-py3 libapache2-mod-python python3-venv curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The runtime component: rebuilt when the WIT world or the gateway changed.
runtime="$top/build/runtime/gateway.wasm"
if [ ! -f "$runtime" ] || [ -n "$(find "$top/python-wasm" -newer "$runtime" -type f -print -quit)" ]; then
  "$top/python-wasm/build.sh"
fi

# The Flask example's vendored dependencies.
"$top/examples/vendor.sh"
