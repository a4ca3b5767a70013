"""A ClickHouse HTTP endpoint backed by chdb-core (current ClickHouse, 26.x, in process), for the
store tests that prove the schema and the queries on a modern server, where Debian ships 18.16.

It speaks the part of ClickHouse's HTTP interface the `clickhouse` crate uses: the SQL in the
body (or the `query` parameter), `database` and `default_format` parameters, results in the
format the SQL names, and inserts `INSERT INTO t(cols) FORMAT RowBinary` with the rows as the
body (loaded through a temporary file and the `file()` table function, typed from the table's own
columns). Errors answer 500 with ClickHouse's message. Prints `PORT: n` once it listens.

Usage: python chdb_http.py DATA_DIR
"""

import http.server
import os
import re
import sys
import tempfile
import threading
import urllib.parse

import chdb.session

SESSION = chdb.session.Session(sys.argv[1])
LOCK = threading.Lock()
FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+`?(?:(\w+)`?\.`?)?(\w+)`?\s*\(([^)]*)\)\s*FORMAT\s+RowBinary\s*$",
    re.IGNORECASE | re.DOTALL,
)


def run(sql, fmt):
    result = SESSION.query(sql, fmt)
    data = result.bytes() if hasattr(result, "bytes") else bytes(result)
    return bytes(data)


def insert(database, match, body):
    db = match.group(1) or database
    table = match.group(2)
    columns = [c.strip().strip("`") for c in match.group(3).split(",")]
    described = run(
        f"SELECT name, type FROM system.columns WHERE database = '{db}' AND table = '{table}'",
        "TabSeparated",
    ).decode()
    types = dict(line.split("\t", 1) for line in described.splitlines() if line)
    structure = ", ".join(f"`{c}` {types[c]}" for c in columns)
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as rows:
        rows.write(body)
        path = rows.name
    try:
        names = ", ".join(f"`{c}`" for c in columns)
        run(
            f"INSERT INTO `{db}`.`{table}` ({names}) SELECT * FROM file('{path}', 'RowBinary', '{structure}')",
            "TabSeparated",
        )
    finally:
        os.unlink(path)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.answer(200, b"Ok.\n")

    def do_POST(self):
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        body = self.body()
        database = params.get("database", "default")
        try:
            with LOCK:
                if "query" in params:
                    match = INSERT.match(params["query"])
                    if match:
                        insert(database, match, body)
                        self.answer(200, b"")
                        return
                    sql = params["query"] + " " + body.decode()
                else:
                    sql = body.decode()
                fmt = params.get("default_format", "TabSeparated")
                found = FORMAT.search(sql)
                if found:
                    fmt = found.group(1)
                    sql = sql[: found.start()]
                if database != "default":
                    SESSION.query(f"CREATE DATABASE IF NOT EXISTS `{database}`")
                    SESSION.query(f"USE `{database}`")
                else:
                    SESSION.query("USE default")
                self.answer(200, run(sql, fmt))
        except Exception as error:  # ClickHouse's message, as the server would send it
            self.answer(500, f"Code: 1. DB::Exception: {error}".encode())

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def answer(self, status, data):
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"PORT: {server.server_address[1]}", flush=True)
server.serve_forever()
