#!/usr/bin/env bash
# The README's second command: installs what the tests need, then runs every test — formatting,
# lints, unit tests and the end-to-end tests (real ClickHouse, real SMTP server, real sentry-sdk
# with the Django example, the real `shrike` binary).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bash deploy/scripts/setup.sh --test
export SHRIKE_TEST_PYTHON="${SHRIKE_VENV:-$HOME/.cache/shrike/venv}/bin/python"
export SHRIKE_TEST_NODE_MODULES="${SHRIKE_NODE_DIR:-$HOME/.cache/shrike/node}/node_modules"
SHRIKE_TEST_TANSU="$(bash deploy/scripts/tansu.sh)"
export SHRIKE_TEST_TANSU
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shrike/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# A bounded fuzzing run of what sees untrusted bytes first (libFuzzer via cargo-fuzz;
# RUSTC_BOOTSTRAP lets the stable toolchain take the sanitizer flags): envelopes, body decoding,
# and the normalizer (event parsing, grouping, normalization). Each target starts from the seeds in
# fuzz/seeds and keeps what it finds in ~/.cache/shrike/fuzz-corpus. SHRIKE_FUZZ_SECONDS (per
# target) = 0 skips it.
fuzz_seconds="${SHRIKE_FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" != 0 ]; then
  for target in envelope decode normalize; do
    corpus="$HOME/.cache/shrike/fuzz-corpus/$target"
    mkdir -p "$corpus"
    if ! out="$(cd fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$HOME/.cache/shrike/fuzz-target" \
        cargo fuzz run "$target" "$corpus" "seeds/$target" -- -max_total_time="$fuzz_seconds" 2>&1)"; then
      printf '%s\n' "$out" | tail -n 60
      echo "fuzz $target failed (the crashing input is under fuzz/artifacts/$target)" >&2
      exit 1
    fi
    echo "fuzz $target: $(printf '%s\n' "$out" | tail -n 1)"
  done
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
