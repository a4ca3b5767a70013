#!/usr/bin/env bash
# The README's first command: builds Shrike, makes sure ClickHouse is installed, and runs
# `shrike up` (ingest, normalizer, grouper and alerter in one process; a local ClickHouse is started
# under ./.shrike when no URL is configured). Prints the DSN of the default project.
# Extra arguments go to `shrike` before `up`, e.g. `--config my.toml`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bash deploy/scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shrike/target}"
cargo build --release -p shrike
exec "$CARGO_TARGET_DIR/release/shrike" "$@" up
