#!/usr/bin/env bash
# Vendor the Flask example's pure-Python dependencies into its app/vendor
# directory (the sandbox puts /app/vendor on sys.path). Native extension
# modules are removed: the packages fall back to their pure-Python code.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
vendor="$here/tenants/flask/app/vendor"
stamp="$vendor/.requirements"
if [ -f "$stamp" ] && cmp -s "$stamp" "$here/requirements-flask.txt"; then
  exit 0
fi
rm -rf "$vendor"
python3 -m pip install --quiet --disable-pip-version-check --no-compile --no-deps \
  --target "$vendor" -r "$here/requirements-flask.txt"
find "$vendor" \( -name '*.so' -o -name '__pycache__' -o -name 'bin' \) -prune -exec rm -rf {} +
cp "$here/requirements-flask.txt" "$stamp"
echo "vendored Flask into $vendor"
