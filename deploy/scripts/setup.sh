#!/usr/bin/env bash
# Installs what Shrike needs on a Debian/Ubuntu machine with Rust: ClickHouse (Debian's package),
# the build tools of the bundled librdkafka (cmake, libcurl, zlib, OpenSSL headers),
# and with --test also the Python tools the end-to-end tests drive (sentry-sdk, Django,
# python-decouple, aiosmtpd) in a virtualenv, @sentry/node, cargo-fuzz and the tansu broker.
# Idempotent: installs only what is missing.
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)

apt_packages=()
command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/bin/clickhouse-server ] || apt_packages+=(clickhouse-server)
command -v clickhouse-client >/dev/null 2>&1 || apt_packages+=(clickhouse-client)
# Building rdkafka's bundled librdkafka needs cmake, a C compiler and these headers.
command -v cmake >/dev/null 2>&1 || apt_packages+=(cmake)
command -v cc >/dev/null 2>&1 || apt_packages+=(build-essential)
dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || apt_packages+=(libcurl4-openssl-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || apt_packages+=(zlib1g-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || apt_packages+=(libssl-dev)
dpkg -s pkg-config >/dev/null 2>&1 || apt_packages+=(pkg-config)
if [ "$want_test" = 1 ]; then
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_packages+=(python3-venv)
  command -v node >/dev/null 2>&1 || apt_packages+=(nodejs)
  command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  echo "setup: installing ${apt_packages[*]}" >&2
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

if [ "$want_test" = 1 ]; then
  venv="${SHRIKE_VENV:-$HOME/.cache/shrike/venv}"
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  stamp="$venv/.shrike-requirements"
  extra=('aiosmtpd>=1.4' 'sentry-cli>=2.0' 'schemathesis>=4.3,<5' 'chdb-core>=26.9,<27')
  reqs="$(cat "$here/examples/django/requirements.txt"; printf '%s\n' "${extra[@]}")"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$reqs" ]; then
    echo "setup: installing python test dependencies into $venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/examples/django/requirements.txt" "${extra[@]}"
    printf '%s' "$reqs" > "$stamp"
  fi
  # cargo-fuzz for the bounded fuzzing run of the envelope parser.
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "setup: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --quiet
  fi
  # tansu, the persistent Kafka-protocol broker of the Kafka mode tests (built once, ~12 min).
  bash "$here/deploy/scripts/tansu.sh" >/dev/null
  # The JavaScript SDK for the protocol tests.
  node_dir="${SHRIKE_NODE_DIR:-$HOME/.cache/shrike/node}"
  if [ ! -f "$node_dir/node_modules/@sentry/node/package.json" ]; then
    echo "setup: installing @sentry/node into $node_dir" >&2
    mkdir -p "$node_dir"
    (cd "$node_dir" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --silent --no-audit --no-fund @sentry/node >/dev/null)
  fi
fi
