#!/usr/bin/env bash
# Per-request overhead of two builds of mod_wasmpy, alternating in one session:
# `wasmpy bench` (sandbox level, no HTTP) and wrk on the hello-world WSGI tenant
# (benches/apache/hello) under `wasmpy apache`, before/after/before/after.
#
#   BEFORE=/tmp/wasmpy-before-target/debug/wasmpy BEFORE_RUNTIME=/tmp/wasmpy-before/build/runtime \
#     bash benches/apache/before-after.sh
#
# Environment knobs:
#   BEFORE, AFTER                   the two wasmpy binaries (AFTER: $top/target/debug/wasmpy);
#                                   each loads the mod_wasmpy.so built beside it
#   BEFORE_RUNTIME, AFTER_RUNTIME   their runtime dirs (AFTER: $top/build/runtime)
#   BEFORE_CACHE, AFTER_CACHE       their compiled-runtime caches (prepared here if empty;
#                                   defaults /tmp/wasmpy-before-cache, $top/target/wasmpy-test-cache)
#   ROUNDS     before/after pairs (default 2)
#   DURATION   seconds of each measured wrk run (default 8); wrk -t2 -c16, event MPM
#   REQUESTS   requests of `wasmpy bench`'s per-request measurement (default 20000)
#   SKIP_BENCH=1  only the wrk part
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../.." && pwd)"
BEFORE="${BEFORE:?set BEFORE to the wasmpy binary of the earlier build}"
BEFORE_RUNTIME="${BEFORE_RUNTIME:?set BEFORE_RUNTIME}"
BEFORE_CACHE="${BEFORE_CACHE:-/tmp/wasmpy-before-cache}"
AFTER="${AFTER:-$top/target/debug/wasmpy}"
AFTER_RUNTIME="${AFTER_RUNTIME:-$top/build/runtime}"
AFTER_CACHE="${AFTER_CACHE:-$top/target/wasmpy-test-cache}"
ROUNDS="${ROUNDS:-2}"
DURATION="${DURATION:-8}"
REQUESTS="${REQUESTS:-20000}"

root="$(mktemp -d "${TMPDIR:-/tmp}/wasmpy-before-after.XXXXXX")"
chmod 755 "$root"
mkdir -p "$root/tenants"
cp -R "$here/hello" "$root/tenants/hello"
chmod -R a+rX "$root/tenants"
server_pid=""
stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
trap 'stop_server; [ "${KEEP:-0}" = 1 ] && echo "kept $root" >&2 || rm -rf "$root"' EXIT
trap 'exit 130' INT TERM

bin() { [ "$1" = before ] && echo "$BEFORE" || echo "$AFTER"; }
runtime() { [ "$1" = before ] && echo "$BEFORE_RUNTIME" || echo "$AFTER_RUNTIME"; }
cache() { [ "$1" = before ] && echo "$BEFORE_CACHE" || echo "$AFTER_CACHE"; }

for b in before after; do
  mkdir -p "$(cache $b)"
  "$(bin $b)" prepare --runtime "$(runtime $b)" --cache-dir "$(cache $b)" >/dev/null
done

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wrk_once BUILD ROUND: one `wasmpy apache` with the build, 1 s warm-up, measure.
wrk_once() {
  local b="$1" n="$2" port run out
  port="$(free_port)"
  run="$root/run-$b-$n"
  mkdir -p "$run/cache"
  cp "$(cache $b)"/*.cwasm "$(cache $b)"/*.cwasm.sha256 "$run/cache/"
  [ "$(id -u)" = 0 ] && chown -R www-data:www-data "$run"
  set -m
  "$(bin $b)" apache "$root/tenants" --port "$port" --run-dir "$run" --cache-dir "$run/cache" \
    --runtime "$(runtime $b)" >"$run/wasmpy.out" 2>&1 &
  server_pid=$!
  set +m
  for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$port/hello/" && break; sleep 0.1; done
  [ "$(curl -s "http://127.0.0.1:$port/hello/")" = "Hello, World!" ] || { echo "$b: no hello" >&2; tail "$run/error.log" >&2; exit 1; }
  wrk -t2 -c16 -d1s "http://127.0.0.1:$port/hello/" >/dev/null
  out="$(wrk -t2 -c16 -d"${DURATION}s" --latency "http://127.0.0.1:$port/hello/")"
  stop_server
  printf '%-7s %d %10s %8s %8s\n' "$b" "$n" "$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")" \
    "$(awk '$1 == "50%" { print $2 }' <<<"$out")" "$(awk '$1 == "99%" { print $2 }' <<<"$out")"
}

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  for n in $(seq "$ROUNDS"); do
    for b in before after; do
      echo "=== wasmpy bench: $b, round $n"
      "$(bin $b)" bench --requests "$REQUESTS" --runtime "$(runtime $b)" --cache-dir "$(cache $b)" 2>&1
    done
  done
fi

echo "=== wrk -t2 -c16 -d${DURATION}s, event MPM, hello-world WSGI (build round req/s p50 p99)"
declare -A sum
for n in $(seq "$ROUNDS"); do
  for b in before after; do
    line="$(wrk_once "$b" "$n")"
    echo "$line"
    read -r _ _ rps _ <<<"$line"
    sum[$b]="$(awk -v a="${sum[$b]:-0}" -v b="$rps" 'BEGIN { print a + b }')"
  done
done
awk -v a="${sum[after]}" -v b="${sum[before]}" -v r="$ROUNDS" \
  'BEGIN { printf "mean req/s: before %.0f, after %.0f, after/before = %.3f\n", b / r, a / r, a / b }'
