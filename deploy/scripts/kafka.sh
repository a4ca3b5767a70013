#!/usr/bin/env bash
# A local Kafka-protocol broker that keeps what it accepted, for trying Kafka mode on one machine:
# tansu (a broker written in Rust) with SQLite storage, listening on 127.0.0.1:PORT (default 9092),
# data under DATA_DIR (default ./.shrike/kafka). Installs tansu on first use (`cargo install`, about
# 12 minutes, kept in ~/.cache/shrike/tansu), creates Shrike's topics once the broker answers, and
# serves until Ctrl-C. Unlike `shrike dev kafka` (librdkafka's mock: 5 MiB per partition, in memory),
# it keeps every record across restarts.
#
#   deploy/scripts/kafka.sh [DATA_DIR] [PORT]
#   SHRIKE__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 shrike ingest   # and normalizer, grouper, ...
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
data="${1:-$root/.shrike/kafka}"
port="${2:-9092}"
tansu="$(bash "$root/deploy/scripts/tansu.sh")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shrike/target}"
(cd "$root" && cargo build --release -p shrike)
mkdir -p "$data"
chmod 700 "$data"
cd "$data"
"$tansu" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine sqlite://tansu.db &
broker=$!
trap 'kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 100); do
    if "$CARGO_TARGET_DIR/release/shrike" --kafka "127.0.0.1:$port" topics create 2>/dev/null; then
        echo "BOOTSTRAP: 127.0.0.1:$port (data in $data)"
        wait "$broker"
        exit
    fi
    sleep 0.2
done
echo "tansu did not answer on 127.0.0.1:$port" >&2
exit 1
