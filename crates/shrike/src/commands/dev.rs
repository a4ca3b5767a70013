//! `shrike dev kafka`: librdkafka's mock cluster as a standalone broker for short trials and
//! outage tests. It keeps at most 5 MiB per partition, in memory, and must never hold data anyone
//! needs (`deploy/scripts/kafka.sh` runs a broker that keeps what it accepted).
//! `shrike dev clickhouse`: the local ClickHouse of `shrike up` on its own, for the services run
//! one per process on this machine.

use crate::config::Config;
use shrike_bus::kafka::mock::MockKafka;
use std::io::Write;
use tokio::io::AsyncBufReadExt;

/// Runs the mock cluster until Ctrl-C or SIGTERM.
pub async fn kafka(config: &Config, brokers: i32, partitions: i32) -> anyhow::Result<()> {
    let mock = MockKafka::start(brokers.max(1))?;
    let bootstrap = mock.bootstrap_servers();
    let mut kafka = config.kafka.clone();
    kafka.bootstrap_servers = bootstrap.clone();
    mock.create_topics(&kafka, &shrike_messages::Topic::NAMES, partitions.max(1))?;
    println!("BOOTSTRAP: {bootstrap}");
    let _ = std::io::stdout().flush();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            () = crate::runtime::shutdown_signal() => return Ok(()),
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => match line.trim() {
                    "down" => { mock.set_down(true)?; println!("brokers down"); }
                    "up" => { mock.set_down(false)?; println!("brokers up"); }
                    "" => {}
                    other => eprintln!("unknown command {other:?} (use down or up)"),
                },
                _ => stdin_open = false,
            },
        }
        let _ = std::io::stdout().flush();
    }
}

/// Runs the local ClickHouse server until Ctrl-C or SIGTERM, then stops it.
pub async fn clickhouse(config: &Config) -> anyhow::Result<()> {
    let (_store, server) = crate::store::start(config).await?;
    let Some(server) = server else {
        anyhow::bail!(
            "clickhouse.url is set, or another shrike process runs the local server: nothing to start"
        );
    };
    println!(
        "CLICKHOUSE: {} (user shrike, password in {})",
        server.url,
        config.local_clickhouse_dir().join("password").display()
    );
    let _ = std::io::stdout().flush();
    crate::runtime::shutdown_signal().await;
    drop(server);
    Ok(())
}
