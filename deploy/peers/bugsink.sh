#!/usr/bin/env bash
# Install and run Bugsink (PyPI `bugsink`, a Django Sentry-compatible tracker) locally as a peer to
# benchmark Shrike against. Idempotent: re-running reuses the venv, config, database and project.
#
#   deploy/peers/bugsink.sh          # install if needed, migrate, start; prints "DSN: ..."
#   deploy/peers/bugsink.sh start    # same
#   deploy/peers/bugsink.sh pids     # PIDs of every Bugsink process (gunicorn master + workers, snappea)
#   deploy/peers/bugsink.sh status   # running or not, DSN
#   deploy/peers/bugsink.sh stop     # stop gunicorn and snappea
#
# Environment: BUGSINK_HOME (default ~/.cache/shrike/bugsink), BUGSINK_PORT (8500),
# BUGSINK_VERSION (pip spec, default: latest), BUGSINK_WORKERS (gunicorn workers; default as in the
# package's gunicorn.docker.conf.py: min(cpu count, 4)), BUGSINK_SNAPPEA_WORKERS (digest threads, 4).
#
# Layout follows Bugsink's "singleserver" production template (SQLite database, background digestion
# by the snappea worker, gunicorn), started the way its Docker image does:
#   migrate snappea --database=snappea; migrate; prestart; gunicorn ... bugsink.wsgi ||| bugsink-runsnappea
# Changes from the template, all for a local benchmark (appended to bugsink_conf.py, see below):
#   plain http on 127.0.0.1 (no reverse proxy), no phone-home, and the ingest quotas raised (the
#   defaults, 1,000 events per 5 minutes per project, would reject a load test after 1,000 events).
# The benchmark project's retention (default 10,000 events, then eviction) is raised to 100M.
set -euo pipefail

BUGSINK_HOME=${BUGSINK_HOME:-$HOME/.cache/shrike/bugsink}
PORT=${BUGSINK_PORT:-8500}
HOST=127.0.0.1
VENV=$BUGSINK_HOME/venv
DATA=$BUGSINK_HOME/data
RUN=$BUGSINK_HOME/run
CONF=$BUGSINK_HOME/bugsink_conf.py
PIDFILE=$RUN/bugsink.pids          # line 1: gunicorn master, line 2: snappea foreman
PROJECT_NAME=shrike-bench

log() { printf 'bugsink.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# Read PIDs from the pid file (only those still alive).
read_pids() {
    [[ -f $PIDFILE ]] || return 0
    local pid
    while read -r pid; do
        alive "$pid" && echo "$pid"
    done <"$PIDFILE"
}

# All Bugsink PIDs: gunicorn master, its workers, snappea.
all_pids() {
    local pid
    for pid in $(read_pids); do
        echo "$pid"
        pgrep -P "$pid" 2>/dev/null || true
    done
}

manage() { (cd "$BUGSINK_HOME" && "$VENV/bin/bugsink-manage" "$@"); }

cmd_stop() {
    local pids pid
    pids=$(read_pids)
    if [[ -z $pids ]]; then
        log "not running"
        rm -f "$PIDFILE"
        return 0
    fi
    log "stopping PIDs: $(echo $pids)"
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 150); do   # snappea finishes running tasks (GRACEFUL_TIMEOUT 10 s)
        local left=""
        for pid in $pids; do alive "$pid" && left="$left $pid"; done
        [[ -z $left ]] && break
        sleep 0.1
    done
    for pid in $pids; do
        if alive "$pid"; then log "PID $pid did not stop; sending KILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    done
    rm -f "$PIDFILE"
    log "stopped"
}

install() {
    command -v python3 >/dev/null || die "python3 not found"
    mkdir -p "$BUGSINK_HOME" "$DATA" "$RUN"
    if [[ ! -x $VENV/bin/python ]]; then
        log "creating virtualenv $VENV"
        python3 -m venv "$VENV"
    fi
    if [[ ! -x $VENV/bin/bugsink-manage ]]; then
        log "installing ${BUGSINK_VERSION:-bugsink} from PyPI"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "${BUGSINK_VERSION:-bugsink}"
    fi
    log "$("$VENV/bin/bugsink-show-version" 2>/dev/null | tr '\n' ' ')"
}

configure() {
    [[ -f $CONF ]] && return 0
    log "creating $CONF (template singleserver, data in $DATA)"
    local tmp=$BUGSINK_HOME/bugsink_conf.py.tmp
    rm -f "$tmp"
    "$VENV/bin/bugsink-create-conf" --template=singleserver --host="$HOST" --port="$PORT" \
        --base-dir="$DATA" --output-file="$tmp" >/dev/null
    cat >>"$tmp" <<EOF


# ---- Local benchmark overrides (deploy/peers/bugsink.sh) -------------------------------------------
# No reverse proxy in front: plain http on $HOST:$PORT.
SECURE_PROXY_SSL_HEADER = None
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
USE_X_REAL_IP = False
BUGSINK["BASE_URL"] = "http://$HOST:$PORT"
ALLOWED_HOSTS = ["$HOST", "localhost"]
FORCE_SCRIPT_NAME = None
STATIC_URL = "/static/"
BUGSINK["PHONEHOME"] = False  # no internet here

# The default quotas (1,000 events / 5 min, 5,000 / hour per project and installation-wide) would
# reject (429, and drop at digest) everything after the first 1,000 events of a load test.
for _k in ["MAX_EVENTS_PER_PROJECT_PER_5_MINUTES", "MAX_EVENTS_PER_PROJECT_PER_HOUR",
           "MAX_EVENTS_PER_PROJECT_PER_MONTH", "MAX_EVENTS_PER_5_MINUTES", "MAX_EVENTS_PER_HOUR",
           "MAX_EVENTS_PER_MONTH"]:
    BUGSINK[_k] = 1_000_000_000

# Background digestion by the snappea foreman (the singleserver default, TASK_ALWAYS_EAGER False).
SNAPPEA["NUM_WORKERS"] = int(os.environ.get("BUGSINK_SNAPPEA_WORKERS", "4"))
SNAPPEA["PID_FILE"] = "$DATA/snappea/snappea.pid"
EOF
    # the template does not import os itself
    sed -i '0,/^from bugsink.settings.default import \*/s//import os\nfrom bugsink.settings.default import */' "$tmp"
    mv "$tmp" "$CONF"
}

setup_db() {
    log "migrating (snappea queue database, then main database)"
    manage migrate snappea --database=snappea >/dev/null
    manage migrate >/dev/null
    local pwfile=$BUGSINK_HOME/admin-password
    if [[ ! -s $pwfile ]]; then
        (umask 077; "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(18))' >"$pwfile")
    fi
    # prestart creates the superuser from CREATE_SUPERUSER if no user exists yet (as the Docker image does)
    CREATE_SUPERUSER="admin@example.org:$(cat "$pwfile")" manage prestart >/dev/null
    log "admin login: admin@example.org, password in $pwfile"
}

ensure_project() {
    # Team + project via the Django ORM; prints the project's DSN.
    manage shell -c "
from django.contrib.auth import get_user_model
from teams.models import Team, TeamMembership, TeamRole
from projects.models import Project, ProjectMembership, ProjectRole
user = get_user_model().objects.get(username='admin@example.org')
team, _ = Team.objects.get_or_create(name='$PROJECT_NAME')
TeamMembership.objects.get_or_create(team=team, user=user, defaults=dict(role=TeamRole.ADMIN, accepted=True))
project, created = Project.objects.get_or_create(team=team, name='$PROJECT_NAME',
    defaults=dict(retention_max_event_count=100_000_000))
ProjectMembership.objects.get_or_create(project=project, user=user, defaults=dict(role=ProjectRole.ADMIN, accepted=True))
print(project.dsn)
" | tail -1
}

wait_ready() {
    for _ in $(seq 1 100); do
        if "$VENV/bin/python" - "$HOST" "$PORT" <<'EOF' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/health/ready", timeout=1).read()
EOF
        sleep 0.2
    done
    return 1
}

cmd_start() {
    install
    configure
    if [[ -n $(read_pids) ]]; then
        log "already running (PIDs $(echo $(all_pids)))"
        echo "DSN: $(ensure_project)"
        return 0
    fi
    setup_db
    local dsn
    dsn=$(ensure_project)
    [[ $dsn == http://*@$HOST:$PORT/* ]] || die "unexpected DSN: $dsn"
    if (echo >/dev/tcp/$HOST/"$PORT") 2>/dev/null; then die "port $PORT is already in use"; fi

    local workers=${BUGSINK_WORKERS:-}
    local gconf=$("$VENV/bin/python" -c 'import bugsink, os; print(os.path.join(os.path.dirname(bugsink.__file__), "gunicorn.docker.conf.py"))')
    log "starting gunicorn on $HOST:$PORT and the snappea foreman (logs in $RUN)"
    cd "$BUGSINK_HOME"
    PYTHONUNBUFFERED=1 setsid "$VENV/bin/gunicorn" --config "$gconf" ${workers:+--workers "$workers"} \
        --bind "$HOST:$PORT" --access-logfile - bugsink.wsgi >"$RUN/gunicorn.log" 2>&1 </dev/null &
    local gpid=$!
    PYTHONUNBUFFERED=1 setsid "$VENV/bin/bugsink-runsnappea" >"$RUN/snappea.log" 2>&1 </dev/null &
    local spid=$!
    printf '%s\n%s\n' "$gpid" "$spid" >"$PIDFILE"
    if ! wait_ready; then
        log "gunicorn did not become ready; last log lines:"; tail -20 "$RUN/gunicorn.log" >&2
        cmd_stop; exit 1
    fi
    alive "$spid" || { tail -20 "$RUN/snappea.log" >&2; cmd_stop; die "snappea exited"; }
    log "running: PIDs $(echo $(all_pids)) (pid file $PIDFILE)"
    log "database: $DATA/db.sqlite3"
    echo "DSN: $dsn"
}

case ${1:-start} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    pids) all_pids ;;
    status)
        if [[ -n $(read_pids) ]]; then echo "running: $(echo $(all_pids))"; echo "DSN: $(ensure_project)"
        else echo "not running"; exit 1; fi ;;
    *) die "usage: $0 [start|stop|pids|status]" ;;
esac
