#!/usr/bin/env bash
# Installs tansu 0.6 (a Kafka-protocol broker with SQLite storage, the persistent broker the Kafka
# mode tests run against) into ~/.cache/shrike/tansu when it is missing, and prints its path.
# The build takes about 12 minutes on two cores; the binary is kept between runs.
set -euo pipefail
root="${SHRIKE_TANSU_ROOT:-$HOME/.cache/shrike/tansu}"
bin="$root/bin/tansu"
if [ ! -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -q 'tansu 0\.6\.0'; then
    echo "setup: installing tansu 0.6 (a Kafka-protocol broker) into $root" >&2
    cargo install tansu --version 0.6.0 --locked --features libsql --root "$root" --quiet >&2
fi
echo "$bin"
