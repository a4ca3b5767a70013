//! The store's cases against current ClickHouse (26.x, chdb-core behind `chdb_http.py`), beside
//! Debian's 18.16 in `clickhouse.rs`: the schema with the features only new servers have (codecs),
//! and every query, must work on both.

mod cases;

use shrike_store::{Store, StoreConfig};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The chdb endpoint of one test; stopped when dropped.
pub struct Chdb(Child);

impl Drop for Chdb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> std::path::PathBuf {
    std::env::var_os("SHRIKE_TEST_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|| "python3".into())
}

async fn start() -> (tempfile::TempDir, Chdb, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chdb_http.py");
    let mut child = Command::new(python())
        .arg(&script)
        .arg(dir.path().join("chdb"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("reads");
    let chdb = Chdb(child);
    let port = line
        .strip_prefix("PORT: ")
        .map(str::trim)
        .unwrap_or_else(|| {
            panic!(
                "chdb_http.py did not start ({line:?}): chdb-core missing? run \
                 `bash deploy/scripts/setup.sh --test` (or set SHRIKE_TEST_PYTHON)"
            )
        })
        .to_owned();
    let store = Store::new(&StoreConfig {
        url: format!("http://127.0.0.1:{port}"),
        database: "shrike_test".into(),
        user: "default".into(),
        password: String::new(),
        compression: false,
    })
    .expect("store");
    assert_eq!(
        store.migrate().await.expect("migrate"),
        (1..=10).collect::<Vec<u32>>()
    );
    (dir, chdb, store)
}

#[tokio::test]
async fn the_server_is_current_and_gets_the_new_features() {
    let (_dir, _chdb, store) = start().await;
    let version = store.server_version().await.expect("version");
    assert!(version.0 >= 25, "{version:?}");
    assert!(
        store
            .column_codec("events", "body")
            .await
            .expect("codec")
            .contains("ZSTD"),
        "the whole event's column is compressed with zstd on current servers"
    );
}
