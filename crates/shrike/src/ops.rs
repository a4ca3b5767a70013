//! Operational HTTP routes on a listener of their own (`ops_listen`, loopback by default), apart
//! from the port SDKs reach: `/healthz`, `/readyz` and Prometheus `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use shrike_store::Store;
use std::time::Duration;

/// How long `/readyz` waits for ClickHouse before answering "not ready".
const READY_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone)]
struct Ops {
    store: Option<Store>,
    metrics: PrometheusHandle,
}

/// Installs the Prometheus recorder (once per process).
pub fn metrics() -> anyhow::Result<PrometheusHandle> {
    use anyhow::Context;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")
}

/// The operational routes; `/readyz` checks ClickHouse when the service uses it.
pub fn router(store: Option<Store>, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route(
            "/metrics",
            get(|State(ops): State<Ops>| async move { ops.metrics.render() }),
        )
        .with_state(Ops { store, metrics })
}

async fn ready(State(ops): State<Ops>) -> (StatusCode, &'static str) {
    let Some(store) = ops.store else {
        return (StatusCode::OK, "ready");
    };
    match tokio::time::timeout(READY_TIMEOUT, store.server_now()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready"),
        Ok(Err(_)) => (StatusCode::SERVICE_UNAVAILABLE, "clickhouse unreachable"),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "clickhouse does not answer",
        ),
    }
}

/// Serves the operational routes on `listen` (nothing when it is empty) until the process ends.
pub async fn serve(
    listen: &str,
    store: Option<Store>,
    metrics: PrometheusHandle,
) -> anyhow::Result<()> {
    use anyhow::Context;
    if listen.is_empty() {
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("ops_listen: binding {listen}"))?;
    let app = router(store, metrics);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "ops server failed");
        }
    });
    Ok(())
}
