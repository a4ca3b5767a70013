//! Operational HTTP routes served next to ingest: `/healthz`, `/readyz` and Prometheus `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use shrike_store::Store;

#[derive(Clone)]
struct Ops {
    store: Option<Store>,
    metrics: PrometheusHandle,
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
    match store.server_now().await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "clickhouse unreachable"),
    }
}

/// Serves the operational routes alone on `listen` (for services without an HTTP port of their own).
pub async fn serve(
    listen: &str,
    store: Option<Store>,
    metrics: PrometheusHandle,
) -> anyhow::Result<()> {
    use anyhow::Context;
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
