#!/usr/bin/env bash
# New instance to first response, with and without per-tenant snapshots.
#
#   bash benches/snapshots/run.sh            (REQUESTS=30 by default)
#
# Copies the hello and Flask example tenants with `recycle_after = 1` (every
# request meets a new instance), serves them with `wasmpy apache` (one
# event child) and times REQUESTS sequential requests to each: first with
# snapshots off (WASMPY_SNAPSHOTS=0: every new instance imports the app),
# then with snapshots on, once the tenant's snapshot is built. Prints p50
# and p90 per tenant, the snapshot's build time and files, and native
# CPython's import of the same app for reference.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../.." && pwd)"
REQUESTS="${REQUESTS:-30}"
WASMPY="${WASMPY:-$top/target/debug/wasmpy}"
root="$(mktemp -d "${TMPDIR:-/tmp}/wasmpy-snapshot-bench.XXXXXX")"
trap 'kill "$(cat "$root"/run/httpd.pid 2>/dev/null)" 2>/dev/null || true; sleep 1; [ "${KEEP:-0}" = 1 ] || rm -rf "$root"' EXIT
mkdir -p "$root/tenants"
for t in hello flask; do
  cp -R "$top/examples/tenants/$t" "$root/tenants/$t"
  python3 - "$root/tenants/$t/policy.toml" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
if "[limits]" not in s:
    s += "\n[limits]\n"
s = s.replace("[limits]\n", "[limits]\nrecycle_after = 1\n", 1)
open(p, "w").write(s)
PY
done
cp -R "$top/target/wasmpy-test-cache" "$root/cache"
# As root, Apache's children run as www-data: let them in.
chmod 755 "$root"
chmod -R a+rX "$root"
rm -f "$root"/cache/snapshots/hello-* "$root"/cache/snapshots/flask-*
serve() {
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  rm -rf "$root/run"
  WASMPY_SNAPSHOTS="$1" "$WASMPY" apache "$root/tenants" --port "$port" --run-dir "$root/run" \
    --cache-dir "$root/cache" --processes 1 >"$root/apache.out" 2>&1 &
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/hello/" && return; sleep 0.2; done
  echo "Apache did not start" >&2; cat "$root/apache.out" >&2; exit 1
}
stop() {
  local pid
  pid="$(cat "$root/run/httpd.pid")"
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
}

# times URL: REQUESTS sequential request times in ms, sorted.
times() {
  for _ in $(seq "$REQUESTS"); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$1"
  done | awk '$1 != 200 { print "request failed: " $0 > "/dev/stderr"; exit 1 } { print $2 }'  | awk '{ printf "%.1f\n", $1 * 1000 }' | sort -n
}
pct() { awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p + 0.5); if (i < 1) i = 1; print v[i] }'; }

declare -A p50 p90
measure() {
  local label="$1" t out
  for t in hello flask; do
    out="$(times "http://127.0.0.1:$port/$t/")"
    p50["$label $t"]="$(pct 0.5 <<<"$out")"
    p90["$label $t"]="$(pct 0.9 <<<"$out")"
  done
}

serve 0
measure import
stop
serve 1
started=$SECONDS
for t in hello flask; do
  until ls "$root"/cache/snapshots/"$t"-*-m0.cwasm >/dev/null 2>&1; do
    [ $((SECONDS - started)) -lt 300 ] || { echo "no snapshot of $t after 300 s" >&2; exit 1; }
    sleep 0.5
  done
done
built=$((SECONDS - started))
sleep 1
measure snapshot
grep -h "tenant snapshot built" "$root/run/error.log" | sed 's/^.*tenant=/  built: tenant=/' || true
stop

native_flask="$(cd "$root/tenants/flask/app" && PYTHONPATH=vendor python3 -c 'import time; t = time.perf_counter(); import wsgi; print("%.0f" % ((time.perf_counter() - t) * 1000))')"
native_hello="$(cd "$root/tenants/hello/app" && python3 -c 'import time; t = time.perf_counter(); import wsgi; print("%.1f" % ((time.perf_counter() - t) * 1000))')"

echo
echo "new instance to first response, $REQUESTS sequential requests, recycle_after = 1, 1 event child, $(nproc) CPUs"
printf '%-8s %22s %22s %18s\n' tenant "import p50/p90 ms" "snapshot p50/p90 ms" "native import ms"
printf '%-8s %22s %22s %18s\n' hello "${p50[import hello]}/${p90[import hello]}" "${p50[snapshot hello]}/${p90[snapshot hello]}" "$native_hello"
printf '%-8s %22s %22s %18s\n' flask "${p50[import flask]}/${p90[import flask]}" "${p50[snapshot flask]}/${p90[snapshot flask]}" "$native_flask"
echo "snapshots of both tenants ready ${built} s after start"
ls -l "$root"/cache/snapshots/ | awk '/(hello|flask)-.*cwasm$/ { printf "  %s %.1f MB\n", $9, $5 / 1e6 }'
