#!/usr/bin/env bash
# Run every test of mod_wasmpy (the command README.md and .ci/run use).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
scripts/setup.sh
cargo build
python3 -m unittest discover -s python-wasm/tests -t python-wasm
# Compile the runtime once into the cache the tests share.
target/debug/wasmpy prepare --cache-dir target/wasmpy-test-cache
cargo test
# A short fuzz run of every target (long runs: docs/fuzzing.md).
fuzz/run.sh 20
cargo fmt --check
cargo clippy --all-targets -- -D warnings
