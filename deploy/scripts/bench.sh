#!/usr/bin/env bash
# Reproduces the end-to-end figures of BENCHMARKS.md on this machine: starts a release `shrike up`
# with its own ClickHouse under a temporary directory, runs the load harness against it, and
# prints the harness reports plus ClickHouse's disk use per stored event.
#
#   bash deploy/scripts/bench.sh [ingest|e2e|latency|memory|all|backlog|kafka|api]   (default: all)
#
# all = ingest, e2e, latency, memory, in that order. backlog (not in all) sends as fast as possible
# for 60 s with the end-to-end check: ingest outpaces the pipeline, and the check waits for the
# backlog to drain.
#
# kafka (not in all): the same closed-loop bursts ($KAFKA_EVENTS events, default 100,000, with the
# end-to-end check; 32 connections, then 128) against `shrike up`, then against the services run
# one per process over `shrike dev kafka` (librdkafka's mock broker, $KAFKA_PARTITIONS partitions,
# default 64; the normalizer and grouper as SCHED_IDLE, see docs/operations.md), then
# $TANSU_EVENTS events (default 20,000) over tansu (SQLite), beside what a plain Kafka client moves
# through that tansu over the same two hops (examples/kafka_two_hops.rs).
#
# api (not in all): 5 million events in 10,000 issues through `shrike up` (scenario api-5m, 8 min
# at 10,500/s), then the API's latency with them stored (`shrike-load api`: issue lists, an
# issue's detail, one event by id; p50/p95/max over 100 requests each).
#
# BENCH_WHOLE_EVENT=true runs `shrike up` with `[normalizer] keep_whole_event` on.
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
if [ "$what" = kafka ]; then
    cargo build --release --locked -p shrike-bus --features kafka --example kafka_two_hops \
        --manifest-path "$repo/Cargo.toml"
fi

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
[normalizer]
keep_whole_event = ${BENCH_WHOLE_EVENT:-false}
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

# Kafka mode: ClickHouse, a broker and the services, each a process of its own; `run_kafka NAME
# BOOTSTRAP EVENTS` sends EVENTS through them.
kafka_dir="$bench_dir/kafka"
kafka_pids=()
stop_kafka_services() {
    for pid in "${kafka_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${kafka_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    kafka_pids=()
}
kafka_cleanup() {
    stop_kafka_services
    for pid in ${broker_pid:-} ${kch_pid:-}; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    cleanup
}
start_kafka_clickhouse() {
    rm -rf "$kafka_dir"
    mkdir -p "$kafka_dir"
    cat > "$kafka_dir/shrike.toml" <<TOML
data_dir = "$kafka_dir/data"
[clickhouse]
local_http_port = 28124
local_tcp_port = 29001
[ingest]
listen = "$ingest"
[alerter]
enabled = false
TOML
    "$shrike" --config "$kafka_dir/shrike.toml" dev clickhouse > "$kafka_dir/clickhouse.log" 2>&1 &
    kch_pid=$!
    for _ in $(seq 60); do grep -q '^CLICKHOUSE:' "$kafka_dir/clickhouse.log" && break; sleep 1; done
    kch_server="$(pgrep -f "clickhouse-server --config-file=$kafka_dir" | head -1)"
}
# `run_kafka NAME BOOTSTRAP EVENTS [HARNESS ARGS]...`: the services over BOOTSTRAP, then each
# burst (one per `--connections N` given, or one with the scenario's 32).
run_kafka() {
    local name="$1" bootstrap="$2" events="$3" config="$kafka_dir/shrike.toml" n=0 pids=()
    shift 3
    dsn_k="$("$shrike" --config "$config" --kafka "$bootstrap" project create "$name" | tail -n 1)"
    for service in ingest normalizer grouper; do
        n=$((n + 1))
        local priority=(chrt --idle 0)
        [ "$service" = ingest ] && priority=()
        SHRIKE__OPS_LISTEN="127.0.0.1:84$((10 + n))" "${priority[@]}" "$shrike" --config "$config" \
            --kafka "$bootstrap" "$service" > "$kafka_dir/$name-$service.log" 2>&1 &
        kafka_pids+=($!)
        pids+=(--process-pid $!)
    done
    for _ in $(seq 60); do curl -sf "http://$ingest/healthz" > /dev/null && break; sleep 0.5; done
    for connections in "${@:-32}"; do
        SHRIKE_LOAD_CLICKHOUSE_PASSWORD="$(cat "$kafka_dir/data/clickhouse/password")" \
            RUST_BACKTRACE=0 "$load" run python-5k-max --events "$events" --connections "$connections" \
            --dsn "$dsn_k" --no-progress --out-dir "$bench_dir/results" \
            --clickhouse-url http://127.0.0.1:28124 --e2e-timeout 600 \
            "${pids[@]}" --process-pid "$broker_pid" --process-pid "$kch_server"
    done
    echo "grouper: the fenced produce-and-commit per batch (seconds):"
    curl -s http://127.0.0.1:8413/metrics | grep '^shrike_grouper_fence_seconds' || true
    stop_kafka_services
}

case "$what" in
    kafka)
        events="${KAFKA_EVENTS:-100000}"
        partitions="${KAFKA_PARTITIONS:-64}"
        for connections in 32 128; do
            echo "== shrike up: $events events, $connections connections"
            run python-5k-max --events "$events" --connections "$connections" "${e2e[@]}" \
                --e2e-timeout 600
        done
        cleanup
        trap kafka_cleanup EXIT
        start_kafka_clickhouse
        echo "== Kafka mode over shrike dev kafka ($partitions partitions): $events events, 32 then 128 connections"
        "$shrike" --config "$kafka_dir/shrike.toml" dev kafka --partitions "$partitions" \
            > "$kafka_dir/mock.log" 2>&1 < <(sleep infinity) &
        broker_pid=$!
        for _ in $(seq 60); do grep -q '^BOOTSTRAP:' "$kafka_dir/mock.log" && break; sleep 0.5; done
        run_kafka mock "$(awk '/^BOOTSTRAP:/ {print $2}' "$kafka_dir/mock.log")" "$events" 32 128
        kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true
        tansu_events="${TANSU_EVENTS:-20000}"
        echo "== over tansu (SQLite): a plain Kafka client's two hops, then Kafka mode: $tansu_events events"
        tansu="$(bash "$here/tansu.sh")"
        mkdir -p "$kafka_dir/tansu"
        (cd "$kafka_dir/tansu" && exec "$tansu" broker --listener-url tcp://127.0.0.1:19092 \
            --advertised-listener-url tcp://127.0.0.1:19092 --storage-engine sqlite://tansu.db \
            > tansu.log 2>&1) &
        broker_pid=$!
        for _ in $(seq 100); do
            "$shrike" --config "$kafka_dir/shrike.toml" --kafka 127.0.0.1:19092 topics create \
                > /dev/null 2>&1 && break
            sleep 0.2
        done
        "$load" sample python-5k-max --count 3000 > "$kafka_dir/payloads.txt"
        "$target/release/examples/kafka_two_hops" 127.0.0.1:19092 "$tansu_events" 8 \
            "$kafka_dir/payloads.txt"
        run_kafka tansu 127.0.0.1:19092 "$tansu_events"
        exit 0
        ;;
esac

case "$what" in
    api)
        run api-5m "${e2e[@]}" --e2e-timeout 900
        token="$("$shrike" --config "$bench_dir/shrike.toml" token create --scope read --name bench)"
        echo "== the API with $(clickhouse-client --port 29000 --user shrike \
            --password "$SHRIKE_LOAD_CLICKHOUSE_PASSWORD" \
            --query 'SELECT count() FROM shrike.events') events stored"
        SHRIKE_LOAD_API_TOKEN="$token" "$load" api --url "http://127.0.0.1:8380" --requests 100
        ;;
esac

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
echo "ClickHouse disk per stored event, every table (indexes and per-hash aggregates included):"
clickhouse-client --port 29000 --user shrike --password "$SHRIKE_LOAD_CLICKHOUSE_PASSWORD" --query "
    SELECT sumIf(rows, table = 'events') AS events, sum(bytes_on_disk) AS bytes,
           round(sum(bytes_on_disk) / sumIf(rows, table = 'events'), 1) AS bytes_per_event
    FROM system.parts WHERE database = 'shrike' AND active"
