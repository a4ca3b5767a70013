#!/usr/bin/env bash
# Reproduces the end-to-end figures of BENCHMARKS.md on this machine: starts a release `shrike up`
# with its own ClickHouse under a temporary directory, runs the load harness against it, and
# prints the harness reports plus ClickHouse's disk use per stored event.
#
#   bash deploy/scripts/bench.sh [ingest|e2e|latency|memory|all|backlog]   (default: all)
#
# all = ingest, e2e, latency, memory, in that order. backlog (not in all) sends as fast as possible
# for 60 s with the end-to-end check: ingest outpaces the pipeline, and the check waits for the
# backlog to drain.
#
# Needs what `deploy/scripts/setup.sh` installs. Each run's JSON, Markdown and SVG reports go to
# $BENCH_DIR/results (default /tmp/shrike-bench/results).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
bench_dir="${BENCH_DIR:-/tmp/shrike-bench}"
what="${1:-all}"
http_port=28123
ingest="127.0.0.1:8400"
ops="127.0.0.1:8401"

cargo build --release --locked -p shrike -p shrike-load --manifest-path "$repo/Cargo.toml"
shrike="$target/release/shrike"
load="$target/release/shrike-load"

# A fresh start: no events of earlier runs for ClickHouse to merge, no journal to resume.
rm -rf "$bench_dir/data"
mkdir -p "$bench_dir/results"
cat > "$bench_dir/shrike.toml" <<TOML
data_dir = "$bench_dir/data"
ops_listen = "$ops"
[clickhouse]
local_http_port = $http_port
local_tcp_port = 29000
[ingest]
listen = "$ingest"
[alerter]
schedule = "0 0 1 1 *"
TOML

"$shrike" --config "$bench_dir/shrike.toml" up > "$bench_dir/up.log" 2>&1 &
up_pid=$!
cleanup() {
    kill "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 120); do
    grep -q '^DSN:' "$bench_dir/up.log" && break
    kill -0 "$up_pid" 2>/dev/null || { cat "$bench_dir/up.log"; exit 1; }
    sleep 1
done
dsn="$(grep '^DSN:' "$bench_dir/up.log" | awk '{print $2}')"
ch_pid="$(pgrep -f "clickhouse-server --config-file=$bench_dir" | head -1)"
echo "shrike up: pid $up_pid, clickhouse pid $ch_pid, $dsn"

# Waits until the bus holds nothing: a closed-loop run can leave a backlog in the bus journal (the
# pipeline runs at a lower priority than ingest), which must not eat into the next run's CPU.
drained() {
    for _ in $(seq 600); do
        held="$(curl -s "http://$ops/metrics" | awk '/^shrike_bus_held_records/ {s += $2} END {print s + 0}')"
        [ "$held" = 0 ] && return
        sleep 1
    done
    echo "the bus still holds $held records after 10 minutes" >&2
}

run() {
    drained
    RUST_BACKTRACE=0 "$load" run "$@" --dsn "$dsn" --no-progress --out-dir "$bench_dir/results" \
        --process-pid "$up_pid" --process-pid "$ch_pid"
}
e2e=(--clickhouse-url "http://127.0.0.1:$http_port" --clickhouse-database shrike)
# The password of the ClickHouse `shrike up` runs, for the harness's end-to-end check.
SHRIKE_LOAD_CLICKHOUSE_PASSWORD="$(cat "$bench_dir/data/clickhouse/password")"
export SHRIKE_LOAD_CLICKHOUSE_PASSWORD

case "$what" in
    ingest | all) run python-5k-max --duration 30 ;;&
    e2e | all) run python-5k-steady --rate 11000 --duration 60 "${e2e[@]}" ;;&
    latency | all) run python-5k-steady --rate 1000 --duration 60 "${e2e[@]}" ;;&
    memory | all) run python-5k-steady --rate 10000 --duration 60 "${e2e[@]}" ;;&
    backlog) run python-5k-max --duration 60 "${e2e[@]}" ;;&
    *) ;;
esac

echo "ClickHouse disk per stored event (table events, active parts):"
clickhouse-client --port 29000 --user shrike --password "$SHRIKE_LOAD_CLICKHOUSE_PASSWORD" --query "
    SELECT sum(rows) AS events, sum(bytes_on_disk) AS bytes,
           round(sum(bytes_on_disk) / sum(rows), 1) AS bytes_per_event
    FROM system.parts WHERE database = 'shrike' AND table = 'events' AND active"
