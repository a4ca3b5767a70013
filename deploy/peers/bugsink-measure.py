#!/usr/bin/env python3
"""Run shrike-load against Bugsink and measure how much of what was accepted Bugsink fully processed.

    deploy/peers/bugsink-measure.py [--db PATH] [--project 1] [--quiet-secs 10] -- \
        shrike-load run python-5k-max --dsn $DSN --duration 30 --connections 16 --out-dir DIR \
        $(for p in $(deploy/peers/bugsink.sh pids); do echo --process-pid $p; done)

Bugsink answers 200 once an event is written to its ingest directory and queued; the snappea worker
digests it later (grouping, issue, tags, event row). This script:
  * counts the project's digested events (`events_event` rows with an issue) before the run,
  * starts the harness and polls the SQLite database (read-only) every 0.25 s until the count has not
    grown for --quiet-secs after the harness ended and snappea's task queue is empty,
  * reads utime+stime and RSS of every Bugsink process (gunicorn master + workers, snappea foreman)
    from /proc before, during and after, so digestion after the harness stops is included.
It prints a JSON summary: stored/grouped events, drain time (harness start to the last growth),
fully-processed events/s, CPU ms per process and per stored event, peak RSS per process.
"""
import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time

HOME = os.environ.get("BUGSINK_HOME", os.path.expanduser("~/.cache/shrike/bugsink"))
TICK = os.sysconf("SC_CLK_TCK")


def bugsink_pids():
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([os.path.join(here, "bugsink.sh"), "pids"], capture_output=True, text=True, check=True)
    return [int(p) for p in out.stdout.split()]


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / TICK  # utime + stime


def rss_mib(pid):
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                vals[k] = int(v.split()[0]) / 1024
    return vals.get("VmRSS", 0.0), vals.get("VmHWM", 0.0)


def connect(path):
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def counts(db, project):
    cur = db.execute("SELECT count(*), count(issue_id) FROM events_event WHERE project_id = ?", (project,))
    return cur.fetchone()


def queued(snappea_db):
    try:
        return snappea_db.execute("SELECT count(*) FROM snappea_task").fetchone()[0]
    except sqlite3.Error:
        return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=os.path.join(HOME, "data", "db.sqlite3"))
    ap.add_argument("--snappea-db", default=os.path.join(HOME, "data", "snappea.sqlite3"))
    ap.add_argument("--project", type=int, default=1)
    ap.add_argument("--quiet-secs", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--json-out")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("give the harness command after --")

    pids = bugsink_pids()
    db, sdb = connect(args.db), connect(args.snappea_db)
    base_stored, base_grouped = counts(db, args.project)
    cpu0 = {p: cpu_ms(p) for p in pids}
    peak = {p: 0.0 for p in pids}
    peak_total = 0.0

    start = time.time()
    proc = subprocess.Popen(cmd)
    harness_end = None
    last = (base_stored, base_grouped)
    last_growth = start
    first_growth = None
    series = []
    while True:
        time.sleep(0.25)
        now = time.time()
        total_rss = 0.0
        for p in pids:
            try:
                r = rss_mib(p)[0]
            except FileNotFoundError:
                continue
            peak[p] = max(peak[p], r)
            total_rss += r
        peak_total = max(peak_total, total_rss)
        c = counts(db, args.project)
        if c != last:
            last, last_growth = c, now
            if first_growth is None:
                first_growth = now
        series.append((round(now - start, 2), c[0] - base_stored))
        if harness_end is None and proc.poll() is not None:
            harness_end = now
        if harness_end is not None and now - last_growth >= args.quiet_secs and queued(sdb) == 0:
            break
        if now - start > args.timeout:
            print("timeout waiting for Bugsink to drain", file=sys.stderr)
            break

    cpu1 = {p: cpu_ms(p) for p in pids}
    hwm = {p: rss_mib(p)[1] for p in pids}
    stored, grouped = last[0] - base_stored, last[1] - base_grouped
    drain = last_growth - start
    cpu = {p: round(cpu1[p] - cpu0[p]) for p in pids}
    total_cpu = sum(cpu.values())
    summary = {
        "harness_exit": proc.returncode,
        "harness_secs": round(harness_end - start, 2),
        "stored": stored,
        "grouped": grouped,
        "first_stored_after_secs": round(first_growth - start, 2) if first_growth else None,
        "last_stored_after_secs": round(drain, 2),
        "processed_per_sec": round(stored / drain, 1) if drain > 0 else None,
        "snappea_queue_left": queued(sdb),
        "cpu_ms": {str(p): cpu[p] for p in pids},
        "cpu_ms_total": total_cpu,
        "cpu_ms_per_stored_event": round(total_cpu / stored, 2) if stored else None,
        "peak_rss_mib": {str(p): round(peak[p], 1) for p in pids},
        "hwm_rss_mib": {str(p): round(hwm[p], 1) for p in pids},
        "peak_rss_mib_sum": round(peak_total, 1),  # largest sum of simultaneous samples
        "stored_series": series[:: max(1, len(series) // 200)],
    }
    text = json.dumps(summary, indent=1)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text)
    print(json.dumps({k: v for k, v in summary.items() if k != "stored_series"}, indent=1))


if __name__ == "__main__":
    main()
