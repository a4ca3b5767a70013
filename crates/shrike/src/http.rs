//! Operational HTTP routes served next to ingest: `/healthz`, `/readyz` and Prometheus `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use shrike_store::Store;

#[derive(Clone)]
struct Ops {
    store: Store,
    metrics: PrometheusHandle,
}

/// The operational routes.
pub fn router(store: Store, metrics: PrometheusHandle) -> Router {
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
    match ops.store.server_now().await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "clickhouse unreachable"),
    }
}
