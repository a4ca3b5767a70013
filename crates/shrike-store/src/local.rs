//! A ClickHouse server started and owned by Shrike, for `shrike up` and for tests.
//!
//! When no ClickHouse URL is configured, Shrike runs Debian's `clickhouse-server` with a config of its
//! own: loopback only, data under the given directory (mode 0700), UTC, and one user, `shrike`,
//! whose password is generated on first start and kept in `password` (mode 0600) beside the data:
//! no other local user or process can read the database. There is no `default` user.
//!
//! One process owns the server at a time (a lock file): it stops the server when its handle is
//! dropped. A server left running by an owner that was killed outright (its pid is recorded in
//! `server.pid`) is adopted by the next owner when its config is unchanged, and stopped and
//! started anew otherwise, so a clean stop always leaves nothing running. This module must never
//! touch a system-wide ClickHouse installation's data.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The one user of a local server.
pub const USER: &str = "shrike";

/// Why the local server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalServerError {
    /// The `clickhouse-server` binary is not installed.
    #[error(
        "clickhouse-server not found (install it with `apt-get install clickhouse-server`): {0}"
    )]
    NotInstalled(#[source] std::io::Error),
    /// Writing the config or creating the data directory failed.
    #[error("cannot prepare clickhouse data dir {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server exited or did not answer `/ping` in time.
    #[error("clickhouse-server did not become ready on port {port}; see {log}")]
    NotReady {
        /// The HTTP port it was told to use.
        port: u16,
        /// Its log file.
        log: String,
    },
    /// Another process (a running `shrike up`) owns the server of this directory.
    #[error("the clickhouse server in {0} is owned by another shrike process")]
    Owned(PathBuf),
    /// Something that is not this directory's server answers on its port.
    #[error(
        "port {0} is taken by another program (set clickhouse.local_http_port, or clickhouse.url to use that server)"
    )]
    PortTaken(u16),
}

/// How the server runs: started by this process, or adopted from an owner that died.
enum Process {
    Child(Child),
    Adopted(u32),
}

/// A running local ClickHouse server; stopped on drop.
pub struct LocalClickHouse {
    process: Process,
    /// The HTTP URL of the server.
    pub url: String,
    /// The HTTP port.
    pub http_port: u16,
    /// The native protocol port.
    pub tcp_port: u16,
    /// The password of [`USER`].
    pub password: String,
    dir: PathBuf,
    /// Held for as long as this process owns the server.
    _owner: File,
}

impl LocalClickHouse {
    /// Starts `clickhouse-server` with data under `dir`, listening on 127.0.0.1 at `http_port` and
    /// `tcp_port` (0 picks free ports), and waits until it answers; or adopts the server a killed
    /// owner left running there. Fails with [`LocalServerError::Owned`] while another process
    /// owns it.
    pub async fn start(
        dir: &Path,
        http_port: u16,
        tcp_port: u16,
    ) -> Result<Self, LocalServerError> {
        // Ports picked by the OS can be taken by someone else before the server binds them;
        // with picked ports, try a few times.
        let attempts = if http_port == 0 || tcp_port == 0 {
            3
        } else {
            1
        };
        let mut result = Self::start_once(dir, http_port, tcp_port).await;
        for _ in 1..attempts {
            if !matches!(result, Err(LocalServerError::NotReady { .. })) {
                break;
            }
            result = Self::start_once(dir, http_port, tcp_port).await;
        }
        result
    }

    /// A store handle on this server for `database`.
    pub fn store(&self, database: &str) -> Result<crate::Store, crate::StoreError> {
        crate::Store::new(&crate::StoreConfig {
            url: self.url.clone(),
            database: database.to_owned(),
            user: USER.into(),
            password: self.password.clone(),
            compression: false,
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        match &self.process {
            Process::Child(child) => child.id(),
            Process::Adopted(pid) => *pid,
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The password of the server under `dir`, generated (and stored, mode 0600) when there is
    /// none yet.
    pub fn password(dir: &Path) -> Result<String, LocalServerError> {
        let io = |source| LocalServerError::Io {
            path: dir.to_owned(),
            source,
        };
        create_private_dir(dir).map_err(io)?;
        let path = dir.join("password");
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io(error)),
        }
        let password = hex::encode(rand::random::<[u8; 24]>());
        let temporary = dir.join("password.new");
        write_private(&temporary, password.as_bytes()).map_err(io)?;
        std::fs::rename(&temporary, &path).map_err(io)?;
        Ok(password)
    }

    async fn start_once(
        dir: &Path,
        http_port: u16,
        tcp_port: u16,
    ) -> Result<Self, LocalServerError> {
        let io = |source| LocalServerError::Io {
            path: dir.to_owned(),
            source,
        };
        create_private_dir(dir).map_err(io)?;
        let dir = dir.canonicalize().map_err(io)?;
        let owner = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(dir.join("owner.lock"))
            .map_err(io)?;
        match owner.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(LocalServerError::Owned(dir)),
            Err(std::fs::TryLockError::Error(error)) => return Err(io(error)),
        }
        let password = Self::password(&dir)?;
        let http_port = if http_port == 0 {
            free_port().map_err(io)?
        } else {
            http_port
        };
        let tcp_port = if tcp_port == 0 {
            free_port().map_err(io)?
        } else {
            tcp_port
        };
        let config_path = dir.join("config.xml");
        let config = config_xml(&dir, http_port, tcp_port);
        let users = users_xml(&password);
        let url = format!("http://127.0.0.1:{http_port}");
        if let Some(pid) = left_running(&dir) {
            let unchanged = std::fs::read_to_string(&config_path).is_ok_and(|c| c == config)
                && std::fs::read_to_string(dir.join("users.xml")).is_ok_and(|u| u == users);
            if unchanged && ping(http_port).await {
                tracing::info!(
                    pid,
                    "adopting the clickhouse server a previous run left running"
                );
                return Ok(LocalClickHouse {
                    process: Process::Adopted(pid),
                    url,
                    http_port,
                    tcp_port,
                    password,
                    dir,
                    _owner: owner,
                });
            }
            tracing::info!(
                pid,
                "stopping the clickhouse server a previous run left running"
            );
            stop(pid);
        }
        if ping(http_port).await {
            return Err(LocalServerError::PortTaken(http_port));
        }
        create_private_dir(&dir.join("data")).map_err(io)?;
        write_private(&config_path, config.as_bytes()).map_err(io)?;
        write_private(&dir.join("users.xml"), users.as_bytes()).map_err(io)?;
        let log = dir.join("clickhouse-server.log");
        let stderr = std::fs::File::create(dir.join("clickhouse-server.stderr")).map_err(io)?;
        let child = Command::new(server_binary())
            .arg(format!("--config-file={}", config_path.display()))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(LocalServerError::NotInstalled)?;
        write_private(&dir.join("server.pid"), child.id().to_string().as_bytes()).map_err(io)?;
        let mut server = LocalClickHouse {
            process: Process::Child(child),
            url,
            http_port,
            tcp_port,
            password,
            dir,
            _owner: owner,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Process::Child(child) = &mut server.process
                && matches!(child.try_wait(), Ok(Some(_)))
            {
                break;
            }
            if ping(http_port).await {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(LocalServerError::NotReady {
            port: http_port,
            log: log.display().to_string(),
        })
    }
}

impl Drop for LocalClickHouse {
    fn drop(&mut self) {
        match &mut self.process {
            Process::Child(child) => {
                stop(child.id());
                let _ = child.wait();
            }
            // Only if it still is our server: a pid is reused once its process is gone.
            Process::Adopted(pid) if is_server_of(*pid, &self.dir) => stop(*pid),
            Process::Adopted(_) => {}
        }
        let _ = std::fs::remove_file(self.dir.join("server.pid"));
    }
}

/// Creates `dir` (and its parents) readable by this user only.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // An existing directory keeps its mode unless told.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = File::options()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)
}

/// The pid in `dir/server.pid`, when that process is still this directory's server.
fn left_running(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join("server.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    is_server_of(pid, dir).then_some(pid)
}

/// Whether process `pid` is a clickhouse-server running with `dir`'s config.
fn is_server_of(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let config = format!("--config-file={}", dir.join("config.xml").display());
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == config.as_bytes())
}

/// Stops process `pid` and waits until it is gone. SIGKILL, as before this module adopted servers:
/// ClickHouse writes each part whole and renames it into place, so a killed server keeps every
/// insert it acknowledged, and a graceful stop waits out its clients' keep-alive connections.
fn stop(pid: u32) {
    let Ok(id) = libc::pid_t::try_from(pid) else {
        return;
    };
    signal(id, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
        if Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(pid: libc::pid_t, signal: libc::c_int) {
    #[allow(unsafe_code)]
    // SAFETY: kill takes plain integers and touches no memory of this process.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// A child that exited but was not waited for yet.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(") ")?.1.to_owned();
            after.chars().next()
        })
        == Some('Z')
}

fn server_binary() -> PathBuf {
    for candidate in ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    PathBuf::from("clickhouse-server")
}

/// Asks the OS for a free loopback port.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = b"GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut response)).await;
    matches!(read, Ok(Ok(_))) && response.ends_with(b"Ok.\n")
}

fn config_xml(dir: &Path, http_port: u16, tcp_port: u16) -> String {
    let d = dir.display();
    format!(
        r#"<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{d}/clickhouse-server.log</log>
        <errorlog>{d}/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>10</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>{d}/data/</path>
    <tmp_path>{d}/data/tmp/</tmp_path>
    <user_files_path>{d}/data/user_files/</user_files_path>
    <format_schema_path>{d}/data/format_schemas/</format_schema_path>
    <users_config>{d}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
"#
    )
}

fn users_xml(password: &str) -> String {
    use sha2::Digest as _;
    let hash = hex::encode(sha2::Sha256::digest(password.as_bytes()));
    format!(
        r#"<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <{USER}>
            <password_sha256_hex>{hash}</password_sha256_hex>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </{USER}>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"#
    )
}
