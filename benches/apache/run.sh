#!/usr/bin/env bash
# Comparative load benchmark: the same hello-world WSGI app
# (benches/apache/hello/app/wsgi.py) served by Apache httpd three ways, and the
# same hello-world mod_python handler (benches/apache/modpython/app/hello.py)
# two ways, measured with wrk on loopback, in one run:
#
#   1. mod_wsgi embedded mode  (Debian libapache2-mod-wsgi-py3)
#   2. mod_wsgi daemon mode    (WSGIDaemonProcess processes=2 threads=15), the baseline
#   3. mod_wasmpy              (`target/debug/wasmpy apache`, tenant "hello")
#   4. mod_python 3.5          (Debian libapache2-mod-python: SetHandler mod_python,
#                               PythonHandler hello)
#   5. mod_wasmpy (mod_python handler): the same directives plus WasmPyTenant,
#                               through `wasmpy apache --conf`
#
# rows 4 and 5 also measure a publisher call (app/pub/index.py: hello) and a
# PSP page (app/psp/hello.psp), each answering "Hello, World!";
#
# then the streaming figures of mod_wasmpy (tenant "stream", 64 MiB memory cap):
# a generator response of STREAM_BYTES in 64 KiB chunks (time to first byte,
# total time, MB/s) and an upload of STREAM_BYTES hashed by the app (MB/s),
# with the tenant's memory (status page) and the PSS of Apache before/after.
#
# Usage:
#   bash benches/apache/run.sh
#   DURATION=10 CONNECTIONS=32 MPM=prefork bash benches/apache/run.sh
#
# Environment knobs:
#   DURATION     seconds of each measured wrk run        (default 5)
#   CONNECTIONS  wrk connections (-c); wrk uses 2 threads (default 16)
#   MPM          event | prefork                         (default event)
#   WASMPY       the wasmpy binary      (default $top/target/debug/wasmpy)
#   STREAM_BYTES bytes of the streamed response and upload (default 314572800, 300 MiB)
#   SEED_CACHE   compiled-runtime cache copied into each mod_wasmpy server's own
#                cache dir, to skip compiling the runtime (default
#                $top/target/wasmpy-test-cache; compiled on start when absent)
#   KEEP=1       keep the temporary run directory (configs, logs, wrk output);
#                it is always kept when the script fails
#
# Needs: apache2, libapache2-mod-wsgi-py3, wrk, curl, python3 (free port).
# Rows 1-2 use an httpd.conf generated here into a mktemp -d run dir (nothing
# under /etc/apache2 is read except as ServerRoot). Row 3 is skipped when
# `wasmpy apache --help` fails (not built yet). As root, Apache's children
# run as www-data, so everything they read or write lives in the run dir,
# owned by / readable for www-data. Each server gets a 1 s wrk warm-up first,
# and the URL is checked to answer 200 "Hello, World!" before measuring.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../.." && pwd)"

DURATION="${DURATION:-5}"
CONNECTIONS="${CONNECTIONS:-16}"
MPM="${MPM:-event}"
WASMPY="${WASMPY:-$top/target/debug/wasmpy}"
STREAM_BYTES="${STREAM_BYTES:-314572800}"
SEED_CACHE="${SEED_CACHE:-$top/target/wasmpy-test-cache}"
THREADS=2

apache_bin=/usr/sbin/apache2
modules=/usr/lib/apache2/modules

case "$MPM" in
  event | prefork) ;;
  *) echo "MPM must be event or prefork, not '$MPM'" >&2; exit 2 ;;
esac
for tool in "$apache_bin" wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
[ -f "$modules/mod_wsgi.so" ] || { echo "missing $modules/mod_wsgi.so (apt-get install libapache2-mod-wsgi-py3)" >&2; exit 2; }
[ "$CONNECTIONS" -ge "$THREADS" ] || { echo "CONNECTIONS must be >= $THREADS" >&2; exit 2; }

# --- run directory ------------------------------------------------------------
# $root/tenants/hello   copy of benches/apache/hello (app + policy), world-readable
# $root/<row>/          one run dir per server: httpd.conf, error.log, pid, sockets
root="$(mktemp -d "${TMPDIR:-/tmp}/wasmpy-apache-bench.XXXXXX")"
chmod 755 "$root"
tenants_dir="$root/tenants"
mkdir -p "$tenants_dir"
cp -R "$here/hello" "$tenants_dir/hello"
find "$tenants_dir" -name __pycache__ -prune -exec rm -rf {} +
chmod -R a+rX "$tenants_dir"
app="$tenants_dir/hello/app/wsgi.py"
# $root/handler-tenants/modpython  the mod_python handler's tenant; outside
#   $tenants_dir, because `wasmpy apache` mounts every tenant there with WasmPyApp
#   and this one is used only through WasmPyTenant + PythonHandler.
# $root/stream-tenants/stream      the streaming tenant (its own server)
handler_tenant="$root/handler-tenants/modpython"
mkdir -p "$root/handler-tenants" "$root/stream-tenants"
cp -R "$here/modpython" "$handler_tenant"
cp -R "$here/stream" "$root/stream-tenants/stream"
find "$root" -name __pycache__ -prune -exec rm -rf {} +
chmod -R a+rX "$root"

is_root=0
[ "$(id -u)" -eq 0 ] && is_root=1

server_pid=""
cleanup() {
  local rc=$?
  stop_server
  if [ "${KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
    echo "run dir kept: $root" >&2
  else
    rm -rf "$root"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP port on 127.0.0.1 (bound then released; good enough on loopback).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A fresh run dir for one server, writable by the user Apache's children run as.
make_run_dir() {
  local dir="$root/$1"
  mkdir -p "$dir"
  chmod 755 "$dir"
  [ "$is_root" = 1 ] && chown www-data:www-data "$dir"
  echo "$dir"
}

# Tail of every log of the server that just failed, then exit.
fail() {
  local run_dir="$1"; shift
  echo "ERROR: $*" >&2
  local log
  find "$run_dir" -type f \( -name '*.log' -o -name '*.out' \) -print | sort |
    while read -r log; do
      echo "--- tail of $log" >&2
      tail -n 30 "$log" >&2
    done
  exit 1
}

# --- mod_wsgi configuration ----------------------------------------------------
# write_wsgi_conf RUN_DIR PORT MODE: a complete, self-contained httpd.conf.
# MODE is "embedded" or "daemon".
write_wsgi_conf() {
  local run_dir="$1" port="$2" mode="$3"
  local conf="$run_dir/httpd.conf"
  {
    echo "# Generated by benches/apache/run.sh: mod_wsgi $mode mode, MPM $MPM."
    echo "ServerRoot /etc/apache2"
    echo "ServerName localhost"
    echo "Listen 127.0.0.1:$port"
    echo "PidFile $run_dir/httpd.pid"
    echo "ErrorLog $run_dir/error.log"
    echo "LogLevel warn"
    echo "DefaultRuntimeDir $run_dir"
    echo "Mutex file:$run_dir default"
    # Statically compiled in (apache2 -l): core, mod_so, mod_watchdog,
    # http_core, mod_log_config, mod_logio, mod_version, mod_unixd.
    echo "LoadModule mpm_${MPM}_module $modules/mod_mpm_${MPM}.so"
    echo "LoadModule authz_core_module $modules/mod_authz_core.so"
    echo "LoadModule wsgi_module $modules/mod_wsgi.so"
    if [ "$is_root" = 1 ]; then
      echo "User www-data"
      echo "Group www-data"
    fi
    echo "WSGISocketPrefix $run_dir/wsgi"
    if [ "$mode" = daemon ]; then
      # home=: the daemons chdir to it; the default, the User's home
      # directory, may not exist (nobody: /nonexistent) and then every
      # daemon start fails and requests hang.
      echo "WSGIDaemonProcess hello processes=2 threads=15 home=$(dirname "$app")"
      echo "WSGIProcessGroup hello"
    fi
    echo "WSGIApplicationGroup %{GLOBAL}"
    echo "WSGIScriptAlias /hello/ $app"
    echo "<Directory $(dirname "$app")>"
    echo "    Require all granted"
    echo "</Directory>"
  } >"$conf"
  [ "$is_root" = 1 ] && chown www-data:www-data "$conf"
  echo "$conf"
}

# --- mod_python configurations -----------------------------------------------
# The handler's <Directory>: mod_python's own directives. mod_python puts the
# directory of the <Directory> on sys.path, so "PythonHandler hello" imports
# app/hello.py (under mod_wasmpy: /app/hello.py in the tenant's sandbox).
# handler_section BIND: BIND is "" (mod_python) or a WasmPyTenant line.
handler_section() {
  local bind="$1"
  echo "Alias /mpy \"$handler_tenant/app\""
  echo "<Directory \"$handler_tenant/app\">"
  [ -n "$bind" ] && echo "    $bind"
  echo "    Require all granted"
  echo "    SetHandler mod_python"
  echo "    PythonHandler hello"
  echo "</Directory>"
  echo "<Directory \"$handler_tenant/app/pub\">"
  [ -n "$bind" ] && echo "    $bind"
  echo "    PythonHandler mod_python.publisher"
  echo "</Directory>"
  echo "<Directory \"$handler_tenant/app/psp\">"
  [ -n "$bind" ] && echo "    $bind"
  echo "    PythonHandler mod_python.psp"
  echo "</Directory>"
}

# write_modpython_conf RUN_DIR PORT: real mod_python 3.5, a complete,
# self-contained httpd.conf like the mod_wsgi rows (MPM at Apache's defaults).
write_modpython_conf() {
  local run_dir="$1" port="$2"
  local conf="$run_dir/httpd.conf"
  {
    echo "# Generated by benches/apache/run.sh: mod_python 3.5, MPM $MPM."
    echo "ServerRoot /etc/apache2"
    echo "ServerName localhost"
    echo "Listen 127.0.0.1:$port"
    echo "PidFile $run_dir/httpd.pid"
    echo "ErrorLog $run_dir/error.log"
    echo "LogLevel warn"
    echo "DefaultRuntimeDir $run_dir"
    echo "Mutex file:$run_dir default"
    echo "LoadModule mpm_${MPM}_module $modules/mod_mpm_${MPM}.so"
    echo "LoadModule authz_core_module $modules/mod_authz_core.so"
    echo "LoadModule alias_module $modules/mod_alias.so"
    # mod_python's publisher needs mod_mime (without it the child crashes).
    echo "LoadModule mime_module $modules/mod_mime.so"
    echo "TypesConfig /etc/mime.types"
    echo "LoadModule python_module $modules/mod_python.so"
    if [ "$is_root" = 1 ]; then
      echo "User www-data"
      echo "Group www-data"
    fi
    handler_section ""
  } >"$conf"
  [ "$is_root" = 1 ] && chown www-data:www-data "$conf"
  echo "$conf"
}

# write_wasmpy_handler_conf RUN_DIR: the same section plus WasmPyTenant, for
# `wasmpy apache --conf` (which loads mod_wasmpy and everything else).
write_wasmpy_handler_conf() {
  local run_dir="$1"
  local conf="$run_dir/modpython.conf"
  {
    echo "# Generated by benches/apache/run.sh: mod_python's directives under mod_wasmpy."
    echo "LoadModule alias_module $modules/mod_alias.so"
    echo "LoadModule mime_module $modules/mod_mime.so"
    echo "TypesConfig /etc/mime.types"
    handler_section "WasmPyTenant \"$handler_tenant\""
  } >"$conf"
  echo "$conf"
}

# --- server lifecycle ----------------------------------------------------------
# start_apache RUN_DIR CONF: check the config, then run Apache in the foreground
# (in the background of this script). Sets server_pid.
start_apache() {
  local run_dir="$1" conf="$2"
  "$apache_bin" -t -f "$conf" >"$run_dir/configtest.out" 2>&1 ||
    fail "$run_dir" "apache2 -t rejected $conf"
  # The embedded Python must not pick up the caller's Python environment.
  set -m # own process group: see stop_server
  env -u PYTHONHOME -u PYTHONPATH "$apache_bin" -f "$conf" -DFOREGROUND >"$run_dir/apache.out" 2>&1 &
  server_pid=$!
  set +m
}

# start_wasmpy RUN_DIR PORT TENANTS_DIR [ARG...]: `wasmpy apache` (generates its
# own httpd.conf for every tenant under TENANTS_DIR and runs apache2 in the
# foreground); further ARGs are passed on (--conf FILE). Each server has its own
# cache dir (so its status page counts only its own children), seeded with the
# compiled runtime of $SEED_CACHE when there is one.
start_wasmpy() {
  local run_dir="$1" port="$2" tdir="$3"; shift 3
  mkdir -p "$run_dir/cache"
  if compgen -G "$SEED_CACHE/*.cwasm" >/dev/null; then
    cp "$SEED_CACHE"/*.cwasm "$SEED_CACHE"/*.cwasm.sha256 "$run_dir/cache/"
  fi
  [ "$is_root" = 1 ] && chown -R www-data:www-data "$run_dir/cache"
  local args=(apache "$tdir" --port "$port" --run-dir "$run_dir" --cache-dir "$run_dir/cache" "$@")
  [ "$MPM" = prefork ] && args+=(--mpm prefork)
  set -m # own process group: see stop_server
  "$WASMPY" "${args[@]}" >"$run_dir/wasmpy.out" 2>&1 &
  server_pid=$!
  set +m
}

# stop_server: SIGTERM the server started last and wait for it to exit.
# Servers are started in their own process group (set -m) because the prefork
# MPM shuts down with killpg(getpgrp(), SIGTERM), which would otherwise also
# hit this script (and whatever started it).
stop_server() {
  [ -n "$server_pid" ] || return 0
  [ -n "${sched_dir:-}" ] && sched_check "$sched_dir"
  sched_dir=""
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# apache_pids RUN_DIR: Apache's parent and children of the server in RUN_DIR.
apache_pids() {
  local parent
  parent="$(cat "$1/httpd.pid" 2>/dev/null)" || return 0
  echo "$parent"
  pgrep -P "$parent" || true
}

# sched_check RUN_DIR: threads of the server's Apache processes whose scheduling
# policy (field 41 of /proc/PID/task/TID/stat) is not SCHED_OTHER (0), e.g. left
# in SCHED_IDLE (5). Appends to sched_report; run before stopping the server.
sched_report=""
sched_dir=""
sched_check() {
  local run_dir="$1" pid tid stat total=0 odd=0 list=""
  for pid in $(apache_pids "$run_dir"); do
    for stat in /proc/"$pid"/task/*/stat; do
      [ -r "$stat" ] || continue
      total=$((total + 1))
      # field 41 counted after the ")" closing the command name
      local policy
      policy="$(sed 's/^.*) //' "$stat" 2>/dev/null | awk '{ print $(41 - 2) }')" || continue
      if [ -n "$policy" ] && [ "$policy" != 0 ]; then
        odd=$((odd + 1))
        tid="${stat%/stat}"; tid="${tid##*/}"
        [ "$odd" -le 4 ] && list+=" $pid/$tid:policy=$policy"
      fi
    done
  done
  [ "$odd" -gt 4 ] && list+=" ..."
  # RLIMIT_NICE of a child: a demoted thread can go back to SCHED_OTHER only
  # when it allows nice 0 (soft limit 20).
  local child nice=""
  child="$(apache_pids "$run_dir" | sed -n 2p)"
  [ -n "$child" ] && nice="$(awk '/^Max nice priority/ { print $4 "/" $5 }' /proc/"$child"/limits 2>/dev/null)"
  sched_report+="$(basename "$run_dir"): $odd of $total Apache threads not SCHED_OTHER (5 = SCHED_IDLE), RLIMIT_NICE of a child ${nice:-?}${list}"$'\n'
}

# wait_port RUN_DIR URL: wait (up to 30 s) until the server answers HTTP at all
# (any status: check_hello judges the answer).
wait_port() {
  local run_dir="$1" url="$2" deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    if curl -s -o /dev/null --max-time 2 "$url"; then
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null ||
      fail "$run_dir" "server exited before listening ($url)"
    sleep 0.1
  done
  fail "$run_dir" "no answer from $url after 30 s"
}

# check_hello RUN_DIR URL: the app must answer 200 "Hello, World!".
check_hello() {
  local run_dir="$1" url="$2" out status body
  out="$(curl -s --max-time 30 -w '\n%{http_code}' "$url")" || fail "$run_dir" "curl $url failed (exit $?)"
  status="${out##*$'\n'}"
  body="${out%$'\n'*}"
  if [ "$status" != 200 ] || [ "$body" != "Hello, World!" ]; then
    fail "$run_dir" "$url answered $status '$body', expected 200 'Hello, World!'"
  fi
}

# --- measurement ---------------------------------------------------------------
# to_ms VALUE: wrk latency (e.g. 850.00us, 1.23ms, 1.05s, 1.20m) in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : (u == "h") ? 3600000 : -1
    if (f < 0) { print "nan"; exit 1 }
    printf "%.2f", n * f
  }'
}

# run_wrk RUN_DIR URL SECONDS: one wrk run; prints "req/s p50_ms p99_ms errors".
# errors = non-2xx/3xx responses + socket errors (connect, read, write, timeout).
run_wrk() {
  local run_dir="$1" url="$2" secs="$3" out rps p50 p99 errors
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --latency "$url" 2>&1)" ||
    fail "$run_dir" "wrk failed: $out"
  echo "$out" >>"$run_dir/wrk.out"
  rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
  p50="$(awk '$1 == "50%" { print $2 }' <<<"$out")"
  p99="$(awk '$1 == "99%" { print $2 }' <<<"$out")"
  [ -n "$rps" ] && [ -n "$p50" ] && [ -n "$p99" ] || fail "$run_dir" "cannot parse wrk output: $out"
  errors="$(awk '
    /Non-2xx or 3xx responses:/ { n += $NF }
    /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i + 0 }
    END { print n + 0 }' <<<"$out")"
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") $errors"
}

# measure NAME RUN_DIR URL: check the app, warm up 1 s, measure; stores the
# result in result[NAME] ("req/s p50 p99 errors").
declare -A result
measure() {
  local name="$1" run_dir="$2" url="$3"
  check_hello "$run_dir" "$url"
  echo "  $name: warm-up 1 s, then ${DURATION} s at $CONNECTIONS connections ($url)" >&2
  run_wrk "$run_dir" "$url" 1 >/dev/null
  check_hello "$run_dir" "$url"
  result[$name]="$(run_wrk "$run_dir" "$url" "$DURATION")"
}

# bench_mod_wsgi MODE NAME: one mod_wsgi row.
bench_mod_wsgi() {
  local mode="$1" name="$2" run_dir port conf url
  run_dir="$(make_run_dir "mod_wsgi-$mode")"
  port="$(free_port)"
  conf="$(write_wsgi_conf "$run_dir" "$port" "$mode")"
  url="http://127.0.0.1:$port/hello/"
  start_apache "$run_dir" "$conf"
  wait_port "$run_dir" "$url"
  measure "$name" "$run_dir" "$url"
  stop_server
}

# bench_wasmpy NAME: the mod_wasmpy row, or "skipped" when not built.
bench_wasmpy() {
  local name="$1" run_dir port url
  if ! "$WASMPY" apache --help >/dev/null 2>&1; then
    result[$name]="skipped"
    return 0
  fi
  run_dir="$(make_run_dir mod_wasmpy)"
  port="$(free_port)"
  url="http://127.0.0.1:$port/hello/"
  start_wasmpy "$run_dir" "$port" "$tenants_dir"
  sched_dir="$run_dir"
  wait_port "$run_dir" "$url"
  measure "$name" "$run_dir" "$url"
  stop_server
}

# measure_handlers NAME RUN_DIR BASE: the handler, publisher and PSP rows of
# one server (NAME, "NAME publisher", "NAME PSP").
measure_handlers() {
  local name="$1" run_dir="$2" base="$3"
  measure "$name" "$run_dir" "$base/"
  measure "$name publisher" "$run_dir" "$base/pub/hello"
  measure "$name PSP" "$run_dir" "$base/psp/hello.psp"
}

# bench_modpython NAME: real mod_python 3.5 (a hello-world handler, a
# publisher call, a PSP page), or "skipped" without mod_python.so.
bench_modpython() {
  local name="$1" run_dir port conf url
  if [ ! -f "$modules/mod_python.so" ]; then
    result[$name]="skipped"
    result["$name publisher"]="skipped"
    result["$name PSP"]="skipped"
    return 0
  fi
  run_dir="$(make_run_dir mod_python)"
  port="$(free_port)"
  conf="$(write_modpython_conf "$run_dir" "$port")"
  url="http://127.0.0.1:$port/mpy"
  start_apache "$run_dir" "$conf"
  sched_dir="$run_dir"
  wait_port "$run_dir" "$url/"
  measure_handlers "$name" "$run_dir" "$url"
  stop_server
}

# bench_wasmpy_handler NAME: the same handler, publisher and PSP page under
# mod_wasmpy (--conf).
bench_wasmpy_handler() {
  local name="$1" run_dir port url conf
  if ! "$WASMPY" apache --help 2>/dev/null | grep -q -- --conf; then
    result[$name]="skipped"
    result["$name publisher"]="skipped"
    result["$name PSP"]="skipped"
    return 0
  fi
  run_dir="$(make_run_dir mod_wasmpy-handler)"
  port="$(free_port)"
  conf="$(write_wasmpy_handler_conf "$run_dir")"
  url="http://127.0.0.1:$port/mpy"
  start_wasmpy "$run_dir" "$port" "$tenants_dir" --conf "$conf"
  sched_dir="$run_dir"
  wait_port "$run_dir" "$url/"
  measure_handlers "$name" "$run_dir" "$url"
  stop_server
}

# --- streaming -----------------------------------------------------------------
# tenant_memory RUN_DIR PORT: memory_bytes of tenant "stream" on the status page
# (children publish once a second: wait for the next publication first).
tenant_memory() {
  sleep 1.5
  curl -s --max-time 10 "http://127.0.0.1:$2/wasmpy-status?json" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["tenants"]["stream"]["memory_bytes"])' 2>/dev/null ||
    echo "?"
}

# pss_kb RUN_DIR: summed PSS (kB) of the server's Apache processes.
pss_kb() {
  local pid sum=0 v
  for pid in $(apache_pids "$1"); do
    v="$(awk '/^Pss:/ { print $2 }' /proc/"$pid"/smaps_rollup 2>/dev/null)" || v=0
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

# sample_pss RUN_DIR OUT: PSS every 0.2 s into OUT until killed (peak during a transfer).
sample_pss() {
  while :; do pss_kb "$1" >>"$2"; sleep 0.2; done
}

# transfer NAME RUN_DIR PORT CURL_ARGS...: one curl transfer with PSS sampled
# alongside; stores "code ttfb total bytes body pss_before pss_peak pss_after
# mem_before mem_after" in stream[NAME].
declare -A stream
transfer() {
  local name="$1" run_dir="$2" port="$3"; shift 3
  local mem0 mem1 pss0 pss1 peak sampler out samples="$run_dir/pss-$name.txt"
  mem0="$(tenant_memory "$run_dir" "$port")"
  pss0="$(pss_kb "$run_dir")"
  : >"$samples"
  sample_pss "$run_dir" "$samples" &
  sampler=$!
  out="$(curl -s --max-time 600 -o "$run_dir/body-$name" \
    -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download} %{size_upload}' "$@")" || true
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  pss1="$(pss_kb "$run_dir")"
  peak="$(sort -n "$samples" | tail -n 1)"
  mem1="$(tenant_memory "$run_dir" "$port")"
  local body
  body="$(head -c 200 "$run_dir/body-$name" | tr -c '[:print:]' '?' | tr ' ' '_')"
  [ "$name" = download ] && body="-"
  stream[$name]="$out ${body:--} $pss0 ${peak:-0} $pss1 $mem0 $mem1"
}

# bench_stream: the streaming figures (tenant "stream", its own server).
bench_stream() {
  if ! "$WASMPY" apache --help >/dev/null 2>&1; then
    stream[skipped]=1
    return 0
  fi
  local run_dir port base upload
  run_dir="$(make_run_dir mod_wasmpy-stream)"
  port="$(free_port)"
  base="http://127.0.0.1:$port/stream"
  start_wasmpy "$run_dir" "$port" "$root/stream-tenants"
  sched_dir="$run_dir"
  wait_port "$run_dir" "$base/"
  curl -s --max-time 30 "$base/" >/dev/null # start the instance
  echo "  streaming: GET of $STREAM_BYTES bytes in 64 KiB chunks ($base/download)" >&2
  transfer download "$run_dir" "$port" "$base/download?bytes=$STREAM_BYTES"
  upload="$root/upload.bin"
  head -c "$STREAM_BYTES" /dev/zero >"$upload"
  stream[upload_sha]="$(sha256sum "$upload" | cut -d' ' -f1)"
  echo "  streaming: POST of $STREAM_BYTES bytes hashed by the app ($base/upload)" >&2
  transfer upload "$run_dir" "$port" -X POST -T "$upload" -H 'Content-Type: application/octet-stream' "$base/upload"
  rm -f "$upload"
  grep -h 'tenant stream' "$run_dir/error.log" 2>/dev/null | tail -n 3 >"$run_dir/stream-errors.txt" || true
  stop_server
  stream[errors]="$run_dir/stream-errors.txt"
}

# --- report --------------------------------------------------------------------
# ratio A B NOTE: "A / B = X.XXx (NOTE)" from the req/s of two rows.
ratio() {
  local a b note=""
  [ -n "$3" ] && note=" ($3)"
  if [ "${result[$1]:-skipped}" = skipped ] || [ "${result[$2]:-skipped}" = skipped ]; then
    echo "$1 / $2 = n/a (skipped)$note"
    return 0
  fi
  read -r a _ <<<"${result[$1]}"
  read -r b _ <<<"${result[$2]}"
  echo "$1 / $2 = $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", a / b }')$note"
}

# report_stream: the streaming figures.
report_stream() {
  echo
  if [ -n "${stream[skipped]:-}" ]; then
    echo "streaming: skipped (wasmpy apache not built)"
    return 0
  fi
  echo "mod_wasmpy streaming, tenant \"stream\" (memory = 64MiB), $STREAM_BYTES bytes, 64 KiB chunks"
  printf '%-9s %5s %9s %9s %12s %8s  %-26s %s\n' transfer status "ttfb s" "total s" bytes "MB/s" \
    "PSS kB before/peak/after" "tenant memory before -> after"
  local name code ttfb total down up body pss0 peak pss1 mem0 mem1 bytes
  for name in download upload; do
    read -r code ttfb total down up body pss0 peak pss1 mem0 mem1 <<<"${stream[$name]}"
    bytes="$down"; [ "$name" = upload ] && bytes="$up"
    printf '%-9s %5s %9s %9s %12s %8s  %-26s %s\n' "$name" "$code" "$ttfb" "$total" "$bytes" \
      "$(awk -v b="$bytes" -v t="$total" 'BEGIN { if (t > 0) printf "%.0f", b / t / 1e6; else print "?" }')" \
      "$pss0/$peak/$pss1" "$mem0 -> $mem1"
  done
  read -r code _ _ down _ _ _ _ _ _ _ <<<"${stream[download]}"
  [ "$code" = 200 ] && [ "$down" = "$STREAM_BYTES" ] ||
    echo "WARNING: download incomplete: status $code, $down of $STREAM_BYTES bytes"
  read -r code _ _ _ up body _ <<<"${stream[upload]}"
  if [ "$code" = 200 ] && [ "$body" = "${STREAM_BYTES}_${stream[upload_sha]}" ]; then
    echo "upload: the app read $STREAM_BYTES bytes, sha256 matches"
  else
    echo "WARNING: upload: status $code, app answered '$body', expected '${STREAM_BYTES}_${stream[upload_sha]}'"
  fi
  if [ -s "${stream[errors]}" ]; then
    echo "error log (tenant stream):"
    sed 's/^/  /' "${stream[errors]}"
  fi
}

# report BASELINE NAME...: the table, each row's req/s relative to BASELINE.
report() {
  local base="$1"; shift
  local base_rps name rps p50 p99 errors
  read -r base_rps _ <<<"${result[$base]}"
  echo
  echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on 127.0.0.1, MPM $MPM, $(nproc) CPUs"
  printf '%-44s %10s %8s %8s  %-20s %s\n' server "req/s" "p50 ms" "p99 ms" "vs mod_wsgi daemon" errors
  for name in "$@"; do
    if [ "${result[$name]}" = skipped ]; then
      echo "$name: skipped (not built or not installed)"
      continue
    fi
    read -r rps p50 p99 errors <<<"${result[$name]}"
    printf '%-44s %10.0f %8s %8s  %-20s %s\n' "$name" "$rps" "$p50" "$p99" \
      "$(awk -v a="$rps" -v b="$base_rps" 'BEGIN { printf "%.2fx", a / b }')" "$errors"
  done
  echo
  if [ "${result[mod_wasmpy]}" = skipped ]; then
    echo "mod_wasmpy / mod_wsgi daemon = n/a (mod_wasmpy skipped; target >= 0.7x)"
  else
    read -r rps _ <<<"${result[mod_wasmpy]}"
    echo "mod_wasmpy / mod_wsgi daemon = $(awk -v a="$rps" -v b="$base_rps" 'BEGIN { printf "%.2fx", a / b }') (target >= 0.7x)"
  fi
  ratio "mod_wasmpy (mod_python handler)" "mod_python 3.5" "goal >= 1.0x"
  ratio "mod_wasmpy (mod_python handler) publisher" "mod_python 3.5 publisher" ""
  ratio "mod_wasmpy (mod_python handler) PSP" "mod_python 3.5 PSP" ""
  ratio mod_wasmpy "mod_wsgi embedded" ""
  for name in "$@"; do
    [ "${result[$name]}" = skipped ] && continue
    read -r _ _ _ errors <<<"${result[$name]}"
    [ "$errors" = 0 ] || echo "WARNING: $name had $errors errors (non-2xx or socket errors); its req/s is not comparable"
  done
}

echo "benchmarking (run dir $root)" >&2
bench_mod_wsgi embedded "mod_wsgi embedded"
bench_mod_wsgi daemon "mod_wsgi daemon"
bench_wasmpy mod_wasmpy
bench_modpython "mod_python 3.5"
bench_wasmpy_handler "mod_wasmpy (mod_python handler)"
bench_stream
report "mod_wsgi daemon" "mod_wsgi embedded" "mod_wsgi daemon" mod_wasmpy "mod_python 3.5" \
  "mod_wasmpy (mod_python handler)" "mod_python 3.5 publisher" "mod_wasmpy (mod_python handler) publisher" \
  "mod_python 3.5 PSP" "mod_wasmpy (mod_python handler) PSP"
report_stream
echo
echo "scheduling policy of Apache's threads at the end of each server's run:"
printf '%s' "$sched_report"
