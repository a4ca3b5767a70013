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
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shrike/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# A bounded fuzzing run of the protocol parsers (libFuzzer via cargo-fuzz; RUSTC_BOOTSTRAP lets
# the stable toolchain take the sanitizer flags). SHRIKE_FUZZ_SECONDS=0 skips it.
fuzz_seconds="${SHRIKE_FUZZ_SECONDS:-30}"
if [ "$fuzz_seconds" != 0 ]; then
  (cd fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$HOME/.cache/shrike/fuzz-target" \
    cargo fuzz run envelope -- -max_total_time="$fuzz_seconds" 2>&1 | tail -n 3)
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
