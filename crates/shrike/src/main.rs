//! `shrike`: the one binary of Shrike, a Sentry-compatible error tracker.
//!
//! `shrike up` runs every service in one process; `shrike ingest|normalizer|grouper|alerter` one
//! service each over Kafka; the other commands administer projects, issues, the schema and topics
//! ([`commands`]). Errors reach the user through `anyhow` with context; nothing below the CLI
//! prints.

mod cli;
mod commands;
mod config;
mod ops;
mod pipeline;
mod runtime;
mod settings;
mod store;

use clap::Parser;

// mimalloc: grouping and parsing allocate many small strings per event, which glibc's malloc
// makes a third of the CPU time (measured in BENCHMARKS.md). The `system-allocator` feature
// leaves it out, so that heap profilers such as heaptrack see every allocation.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // Every command has finished its own cleanup; what may still run is a blocked read of
    // standard input (`shrike dev kafka`), which must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
