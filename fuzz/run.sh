#!/usr/bin/env bash
# Short fuzzing run of every cargo-fuzz target (what CI runs), or a longer one.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]      default 20
#
# Installs the pinned cargo-fuzz if missing, builds all targets once (stable
# toolchain: RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo-fuzz needs), copies
# the committed seeds (fuzz/seeds/<target>/) into the corpus (fuzz/corpus/<target>/,
# not committed), runs each target for SECONDS_PER_TARGET seconds, and prints
# the executions per target. Exits non-zero if any target crashed, leaked,
# timed out or failed an assertion; the input is then in fuzz/artifacts/<target>/.
#
# Environment: FUZZ_TARGETS="policy_parse http_path" to run a subset;
# FUZZ_SANITIZER=none|address (default address); FUZZ_JOBS=N parallel jobs per target.
# Long runs: see docs/fuzzing.md.
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
SECONDS_PER_TARGET=${1:-20}
TARGETS=${FUZZ_TARGETS:-policy_parse http_response http_path guest_args}
SANITIZER=${FUZZ_SANITIZER:-address}
JOBS=${FUZZ_JOBS:-1}

FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$FUZZ_DIR/.."

export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# Same flags for build and run, so `run` does not rebuild.
BUILD_FLAGS=(--fuzz-dir "$FUZZ_DIR" --sanitizer "$SANITIZER" --debug-assertions)

echo "== building fuzz targets (sanitizer: $SANITIZER)"
start=$(date +%s)
cargo fuzz build "${BUILD_FLAGS[@]}"
echo "== built in $(( $(date +%s) - start ))s"

LOG_DIR="$FUZZ_DIR/target/run-logs"
mkdir -p "$LOG_DIR"
failed=()
summary=()
for target in $TARGETS; do
    corpus="$FUZZ_DIR/corpus/$target"
    mkdir -p "$corpus" "$FUZZ_DIR/artifacts/$target"
    if [ -d "$FUZZ_DIR/seeds/$target" ]; then
        cp -p "$FUZZ_DIR/seeds/$target"/* "$corpus/" 2>/dev/null || true
    fi
    log="$LOG_DIR/$target.log"
    echo "== $target: ${SECONDS_PER_TARGET}s, corpus $(ls "$corpus" | wc -l) files, log $log"
    status=0
    libfuzzer_flags=(-max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -timeout=10)
    if [ "$JOBS" -gt 1 ]; then
        libfuzzer_flags+=(-fork="$JOBS")
    fi
    cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "$corpus" -- "${libfuzzer_flags[@]}" \
        >"$log" 2>&1 || status=$?
    execs=$( (grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" || true) |
        awk '{ n += $NF } END { print n + 0 }')
    if [ "$execs" = 0 ]; then
        # -fork mode prints no final stats; take the last status line.
        execs=$( (grep -oE '^#[0-9]+' "$log" || true) | tail -n 1 | tr -d '#')
        execs=${execs:-0}
    fi
    line="$target: $execs executions in ${SECONDS_PER_TARGET}s, corpus $(ls "$corpus" | wc -l) files"
    if [ "$status" -ne 0 ]; then
        line+=" -- FAILED (exit $status)"
        failed+=("$target")
        tail -n 60 "$log"
        ls -l "$FUZZ_DIR/artifacts/$target" || true
    fi
    echo "$line"
    summary+=("$line")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "== FAILED: ${failed[*]} (inputs in $FUZZ_DIR/artifacts/)" >&2
    exit 1
fi
