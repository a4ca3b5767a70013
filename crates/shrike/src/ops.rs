//! Operational HTTP routes on a listener of their own (`ops_listen`, loopback by default), apart
//! from the port SDKs reach: `/healthz`, `/readyz` and Prometheus `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use shrike_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// How long `/readyz` waits for ClickHouse before answering "not ready".
const READY_TIMEOUT: Duration = Duration::from_millis(500);

/// A service's own readiness check: why it is not ready, if it is not.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct Ops {
    store: Option<Store>,
    readiness: Option<Readiness>,
    metrics: PrometheusHandle,
}

/// Installs the Prometheus recorder (once per process).
pub fn metrics() -> anyhow::Result<PrometheusHandle> {
    use anyhow::Context;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")
}

/// The operational routes; `/readyz` checks ClickHouse when the service uses it, and the
/// service's own `readiness` (a consumer keeping up).
pub fn router(
    store: Option<Store>,
    readiness: Option<Readiness>,
    metrics: PrometheusHandle,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route(
            "/metrics",
            get(|State(ops): State<Ops>| async move { ops.metrics.render() }),
        )
        .with_state(Ops {
            store,
            readiness,
            metrics,
        })
}

async fn ready(State(ops): State<Ops>) -> (StatusCode, String) {
    let unavailable = |why: String| (StatusCode::SERVICE_UNAVAILABLE, why);
    if let Some(Err(why)) = ops.readiness.as_ref().map(|ready| ready()) {
        return unavailable(why);
    }
    let Some(store) = ops.store else {
        return (StatusCode::OK, "ready".into());
    };
    match tokio::time::timeout(READY_TIMEOUT, store.server_now()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready".into()),
        Ok(Err(_)) => unavailable("clickhouse unreachable".into()),
        Err(_) => unavailable("clickhouse does not answer".into()),
    }
}

/// Serves the operational routes on `listen` (nothing when it is empty) until the process ends.
pub async fn serve(
    listen: &str,
    store: Option<Store>,
    readiness: Option<Readiness>,
    metrics: PrometheusHandle,
) -> anyhow::Result<()> {
    use anyhow::Context;
    if listen.is_empty() {
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("ops_listen: binding {listen}"))?;
    let app = router(store, readiness, metrics);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "ops server failed");
        }
    });
    Ok(())
}
