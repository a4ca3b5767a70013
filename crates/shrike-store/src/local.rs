//! A ClickHouse server started and owned by Shrike, for `shrike up` and for tests.
//!
//! When no ClickHouse URL is configured, Shrike runs Debian's `clickhouse-server` with a config of its
//! own: loopback only, data under the given directory, UTC. The server is stopped when the handle
//! is dropped. This module must never touch a system-wide ClickHouse installation's data.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
}

/// A running local ClickHouse server; killed on drop.
pub struct LocalClickHouse {
    child: Child,
    /// The HTTP URL of the server.
    pub url: String,
    /// The HTTP port.
    pub http_port: u16,
}

impl LocalClickHouse {
    /// Starts `clickhouse-server` with data under `dir`, listening on 127.0.0.1 at `http_port` and
    /// `tcp_port` (0 picks free ports), and waits until it answers.
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

    /// A store handle on this server for `database` (user `default`, no password).
    pub fn store(&self, database: &str) -> Result<crate::Store, crate::StoreError> {
        crate::Store::new(&crate::StoreConfig {
            url: self.url.clone(),
            database: database.to_owned(),
            user: "default".into(),
            password: String::new(),
            compression: false,
        })
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
        std::fs::create_dir_all(dir.join("data")).map_err(io)?;
        let dir = dir.canonicalize().map_err(io)?;
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
        std::fs::write(
            dir.join("config.xml"),
            config_xml(&dir, http_port, tcp_port),
        )
        .map_err(io)?;
        std::fs::write(dir.join("users.xml"), USERS_XML).map_err(io)?;
        let log = dir.join("clickhouse-server.log");
        let stderr = std::fs::File::create(dir.join("clickhouse-server.stderr")).map_err(io)?;
        let child = Command::new(server_binary())
            .arg(format!(
                "--config-file={}",
                dir.join("config.xml").display()
            ))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(LocalServerError::NotInstalled)?;
        let mut server = LocalClickHouse {
            child,
            url: format!("http://127.0.0.1:{http_port}"),
            http_port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(server.child.try_wait(), Ok(Some(_))) {
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

const USERS_XML: &str = r#"<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
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
"#;
