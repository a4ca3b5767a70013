//! Helpers for end-to-end tests: processes that die with the test, ports, polling, and the real
//! tools the tests drive (the `shrike` binary, `clickhouse-client`, Python with sentry-sdk,
//! Django and aiosmtpd, installed by `deploy/scripts/setup.sh --test`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process killed when the guard drops.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, command: &mut Command) -> Proc {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_owned(),
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self, timeout: Duration) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "{} exited with {status} after SIGTERM",
                    self.name
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not exit within {timeout:?} of SIGTERM", self.name);
    }
}

impl Drop for Proc {
    /// SIGTERM first, so that a `shrike up` left by a failing test stops its ClickHouse too; then
    /// SIGKILL after a few seconds.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Polls `f` every 100 ms until it returns `Some`, or panics naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The Python interpreter with the test packages.
pub fn python() -> PathBuf {
    let python = std::env::var_os("SHRIKE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import sentry_sdk, django, decouple, aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} lacks sentry-sdk/Django/python-decouple/aiosmtpd: run `bash deploy/scripts/test.sh` \
         (or set SHRIKE_TEST_PYTHON to a Python that has them)",
        python.display()
    );
    python
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    // At run time: a test binary built from another checkout sharing the target directory must
    // not use that checkout.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// How a test reaches a ClickHouse server with `clickhouse-client`: its native port and the
/// password of its one user.
pub struct Ch {
    pub tcp: u16,
    pub password: String,
}

impl Ch {
    /// A server the test started.
    pub fn of(server: &shrike_store::local::LocalClickHouse) -> Ch {
        Ch {
            tcp: server.tcp_port,
            password: server.password.clone(),
        }
    }

    /// The server `shrike up` runs with its data under `data_dir`.
    pub fn of_up(data_dir: &Path, tcp: u16) -> Ch {
        let password = std::fs::read_to_string(data_dir.join("clickhouse/password"))
            .expect("the local clickhouse's password");
        Ch {
            tcp,
            password: password.trim().to_owned(),
        }
    }
}

/// The `[clickhouse]` section of a config using `server` (a ClickHouse the test started).
pub fn clickhouse_section(server: &shrike_store::local::LocalClickHouse) -> String {
    format!(
        "[clickhouse]\nurl = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\n",
        server.url,
        shrike_store::local::USER,
        server.password
    )
}

/// Runs a query with `clickhouse-client` and returns its output.
pub fn clickhouse(ch: &Ch, sql: &str) -> String {
    let out = Command::new("clickhouse-client")
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &ch.tcp.to_string(),
            "--user",
            shrike_store::local::USER,
            "--password",
            &ch.password,
            "--query",
            sql,
        ])
        .output()
        .expect("clickhouse-client runs");
    assert!(
        out.status.success(),
        "query failed: {sql}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks, straight from ClickHouse, that the events of load-harness run `run_id` are exactly
/// `events` distinct events in `issues` distinct issues.
pub fn assert_run_stored(ch: &Ch, run_id: &str, events: u64, issues: u32) {
    let counted = clickhouse(
        ch,
        &format!(
            "SELECT uniqExact(event_id), uniqExact(issue_id) FROM shrike.events \
             WHERE tags.value[indexOf(tags.key, 'shrike_load_run')] = '{run_id}'"
        ),
    );
    assert_eq!(counted.trim(), format!("{events}\t{issues}"));
}

/// A minimal HTTP/1.0 request; returns the status code (0 when nothing listens) and body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    stream.write_all(body).expect("write body");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A running `shrike up` and the lines it printed.
pub struct Shrike {
    pub proc: Proc,
    pub dsn: String,
}

/// `shrike --config CONFIG` with `RUST_LOG=info` and standard error appended to `log`.
fn shrike_command(config: &Path, log: &Path) -> Command {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_shrike"));
    command
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(stderr);
    command
}

/// Writes a `shrike up` config under `dir`: data in `dir/data`, the managed ClickHouse on
/// `ch_http`/`ch_tcp`, ingest on `ingest`, the API on a free port (`web_port`); `extra` is TOML appended as is (the test's own
/// sections). Returns the file's path.
pub fn write_up_config(dir: &Path, ingest: u16, ch_http: u16, ch_tcp: u16, extra: &str) -> PathBuf {
    let path = dir.join("shrike.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"{data}\"\nops_listen = \"127.0.0.1:{ops}\"\nsettings_refresh_secs = 1\n\
             [clickhouse]\nlocal_http_port = {ch_http}\nlocal_tcp_port = {ch_tcp}\n\
             [web]\nlisten = \"127.0.0.1:{web}\"\n\
             [ingest]\nlisten = \"127.0.0.1:{ingest}\"\n{extra}",
            data = dir.join("data").display(),
            ops = free_port(),
            web = free_port()
        ),
    )
    .expect("write config");
    path
}

/// The API's port in a config `write_up_config` wrote.
pub fn web_port(config: &Path) -> u16 {
    let text = std::fs::read_to_string(config).expect("config reads");
    let value: toml::Value = toml::from_str(&text).expect("config parses");
    value["web"]["listen"]
        .as_str()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("web.listen")
}

/// Starts `shrike --config CONFIG up` and waits for its DSN line.
pub fn start_shrike(config: &Path, log: &Path) -> Shrike {
    let mut proc = Proc::spawn(
        "shrike up",
        shrike_command(config, log)
            .arg("up")
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    );
    let stdout = proc.child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(dsn) = line.strip_prefix("DSN: ") {
                    return Shrike {
                        proc,
                        dsn: dsn.trim().to_owned(),
                    };
                }
            }
            Err(_) => panic!(
                "shrike up printed no DSN; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }
}

/// Runs `shrike --config CONFIG ARGS`; returns (success, stdout, stderr).
pub fn shrike_cli_output(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shrike"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("shrike runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the `shrike` CLI with a config and returns stdout (panics on failure).
pub fn shrike_cli(config: &Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = shrike_cli_output(config, args);
    assert!(ok, "shrike {args:?} failed: {stderr}");
    stdout
}

/// The messages an aiosmtpd Mailbox handler delivered, oldest first, with quoted-printable soft
/// breaks and `=3D` undone so assertions can read the text.
pub fn mailbox(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("new")) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| {
            (
                e.metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH),
                e.path(),
            )
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|(_, path)| {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .replace("=\r\n", "")
                .replace("=\n", "")
                .replace("=3D", "=")
        })
        .collect()
}

/// tansu, a Kafka-protocol broker that keeps what it accepted (SQLite under `dir`), on `port`;
/// installed by `deploy/scripts/setup.sh --test` (its path in `SHRIKE_TEST_TANSU`).
pub struct Tansu {
    pub proc: Option<Proc>,
    pub dir: PathBuf,
    pub port: u16,
}

impl Tansu {
    /// Starts the broker and waits until it accepts connections.
    pub fn start(dir: &Path) -> Tansu {
        std::fs::create_dir_all(dir).expect("tansu dir");
        let mut tansu = Tansu {
            proc: None,
            dir: dir.to_owned(),
            port: free_port(),
        };
        tansu.restart();
        tansu
    }

    /// `host:port` for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker (again) on the same port and storage.
    pub fn restart(&mut self) {
        let binary = std::env::var_os("SHRIKE_TEST_TANSU").map_or_else(
            || {
                PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                    .join(".cache/shrike/tansu/bin/tansu")
            },
            PathBuf::from,
        );
        assert!(
            binary.exists(),
            "tansu not found at {}: run `bash deploy/scripts/test.sh` (or deploy/scripts/tansu.sh)",
            binary.display()
        );
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .expect("tansu log");
        self.proc = Some(Proc::spawn(
            "tansu",
            Command::new(binary)
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "sqlite://tansu.db"])
                .current_dir(&self.dir)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log),
        ));
        wait_for("tansu to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port))
                .ok()
                .map(|_| ())
        });
    }

    /// Kills the broker outright.
    pub fn kill_9(&mut self) {
        if let Some(proc) = self.proc.take() {
            kill_9(proc);
        }
    }
}

/// A running `shrike dev kafka` with a handle on its standard input (for `down` / `up`).
pub struct DevKafka {
    pub proc: Proc,
    pub bootstrap: String,
    pub stdin: std::process::ChildStdin,
}

impl DevKafka {
    /// Sends a command line (`down` or `up`) to the mock cluster.
    pub fn command(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to dev kafka");
        self.stdin.flush().expect("flush");
    }
}

/// Starts `shrike dev kafka` with the topics of `config`'s prefix.
pub fn start_dev_kafka(config: &Path, log: &Path, partitions: u32) -> DevKafka {
    let mut proc = Proc::spawn(
        "shrike dev kafka",
        shrike_command(config, log)
            .args(["dev", "kafka", "--partitions", &partitions.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let stdin = proc.child.stdin.take().expect("stdin");
    let stdout = proc.child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let bootstrap = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(address) = line.strip_prefix("BOOTSTRAP: ") {
                    break address.trim().to_owned();
                }
            }
            _ => panic!("shrike dev kafka printed no bootstrap address"),
        }
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    DevKafka {
        proc,
        bootstrap,
        stdin,
    }
}

/// Starts a per-service command (`ingest`, `normalizer`, `grouper`, `alerter`) against Kafka.
pub fn start_service(service: &str, config: &Path, bootstrap: &str, log: &Path) -> Proc {
    Proc::spawn(
        service,
        shrike_command(config, log)
            .args(["--kafka", bootstrap, service])
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    )
}

/// Kills a process with SIGKILL (no chance to flush or commit).
pub fn kill_9(proc: Proc) {
    let pid = proc.child.id().to_string();
    let status = Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -9 {pid} failed");
    drop(proc);
}

/// Starts a real SMTP server (aiosmtpd) that stores each message as a file under `maildir/new`.
pub fn start_smtp(python: &Path, port: u16, maildir: &Path) -> Proc {
    Proc::spawn(
        "aiosmtpd",
        Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// Runs `python -c SCRIPT DSN` (a real SDK sending to Shrike) and asserts it succeeded.
pub fn run_python(python: &Path, script: &str, dsn: &str) {
    let out = Command::new(python)
        .args(["-c", script, dsn])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
