//! HTTP routes: `POST /api/{project_id}/envelope/`, `POST /api/{project_id}/store/` and the
//! cron check-in URL.
//!
//! Every request is authenticated before its body is read, and before it takes one of the
//! `max_concurrent_requests` slots: a request with bad credentials costs a cache lookup and a
//! small answer, never a slot that valid traffic needs, nor memory for its body. Only an envelope
//! without header or query credentials has a few KiB of its body read first, for the `dsn` in its
//! header.

use crate::auth;
use crate::body;
use crate::error::detail;
use crate::items::{check_event, envelope_items, id_response};
use crate::state::{ClientAddr, IngestState};
use crate::{IngestError, publish};
use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use shrike_bus::Producer;
use shrike_protocol::category::DataCategory;
use shrike_protocol::checkin::CheckIn;
use shrike_protocol::encoding::Decoder;
use shrike_protocol::{AuthError, ClientAuth};
use shrike_store::ProjectKey;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tower_http::cors::{Any, CorsLayer};
use uuid::Uuid;

/// The ingest routes.
pub fn router<P: Producer>(state: IngestState<P>) -> Router {
    let state = Arc::new(state);
    // Browser SDKs send cross-origin requests; Relay allows any origin on these endpoints.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(
            [
                "x-sentry-auth",
                "x-requested-with",
                "origin",
                "accept",
                "content-type",
                "authentication",
                "authorization",
                "content-encoding",
                "transfer-encoding",
                "sentry-trace",
                "baggage",
            ]
            .map(HeaderName::from_static),
        )
        .expose_headers(
            ["x-sentry-error", "x-sentry-rate-limits", "retry-after"].map(HeaderName::from_static),
        )
        .max_age(std::time::Duration::from_secs(3600));
    Router::new()
        .route("/api/{project_id}/envelope/", post(envelope::<P>))
        .route("/api/{project_id}/envelope", post(envelope::<P>))
        .route("/api/{project_id}/store/", post(store::<P>))
        .route("/api/{project_id}/store", post(store::<P>))
        .route(
            "/api/{project_id}/cron/{monitor_slug}/{sentry_key}/",
            get(cron::<P>).post(cron::<P>),
        )
        .route(
            "/api/{project_id}/cron/{monitor_slug}/{sentry_key}",
            get(cron::<P>).post(cron::<P>),
        )
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { detail(StatusCode::NOT_FOUND, "not found") })
        .layer(cors)
        .layer(axum::middleware::map_response(detail_bodies))
        .with_state(state)
}

/// Which endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Envelope,
    Store,
}

impl Endpoint {
    /// The data category its refusals are counted in.
    fn category(self) -> DataCategory {
        match self {
            Endpoint::Envelope => DataCategory::Default,
            Endpoint::Store => DataCategory::Error,
        }
    }
}

/// A request that passed authentication and holds a request slot.
struct Admitted {
    project_id: u64,
    key: ProjectKey,
    /// The body as received (not yet decoded).
    body: Bytes,
    encoding: Option<String>,
    share: body::Share,
    _slot: OwnedSemaphorePermit,
}

/// Authenticates a request, takes a request slot and reads its body within the memory budget.
async fn accept<P: Producer>(
    state: &IngestState<P>,
    project: &str,
    query: Option<&str>,
    request: Request,
    endpoint: Endpoint,
) -> Result<Admitted, IngestError> {
    let project_id: u64 = project.parse().map_err(|_| IngestError::BadProjectId)?;
    let client = request
        .extensions()
        .get::<ClientAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
    let (parts, mut body) = request.into_parts();
    let encoding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let category = endpoint.category();
    let mut peeked = None;
    let auth = match auth::from_headers(&parts.headers, query) {
        Ok(Some(auth)) => Ok(auth),
        // A client over its failure budget does not get its body read.
        Ok(None) if state.failures.exhausted(client) => Err(AuthError::Missing),
        Ok(None) if endpoint == Endpoint::Envelope => {
            let peek =
                body::peek_envelope_dsn(&mut body, encoding.as_deref(), &state.peek_memory).await?;
            let auth = auth::from_dsn(peek.dsn.as_deref());
            peeked = Some(peek);
            auth
        }
        Ok(None) => Err(AuthError::Missing),
        Err(error) => Err(error),
    };
    let key = match auth {
        Ok(auth) => state.authorize(project_id, &auth, client).await,
        Err(error) => Err(error.into()),
    }
    .map_err(|error| state.auth_failed(project_id, category, client, error))?;
    let slot = state
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| IngestError::Busy)?;
    let content_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let mut share = state.memory.share();
    // What the peek read stays counted in the pre-authentication budget until `read` counts it.
    let (start, _peek_share) = match peeked {
        Some(peek) => (peek.start, Some(peek.share)),
        None => (Vec::new(), None),
    };
    let raw = body::read(
        start,
        body,
        content_length,
        state.config.max_body_bytes,
        &mut share,
    )
    .await
    .inspect_err(|error| state.record_invalid(project_id, category, error))?;
    Ok(Admitted {
        project_id,
        key,
        body: raw,
        encoding,
        share,
        _slot: slot,
    })
}

impl Admitted {
    /// The body decoded by its `Content-Encoding`, up to `limit` bytes.
    async fn decode(&mut self, limit: usize) -> Result<Bytes, IngestError> {
        let raw = std::mem::take(&mut self.body);
        let encoded = raw.len();
        let decoder = Decoder::new(self.encoding.as_deref(), raw)?;
        body::decode(decoder, encoded, limit, &mut self.share).await
    }
}

/// `GET|POST /api/{project_id}/cron/{monitor_slug}/{sentry_key}/?status=ok`: a check-in without an
/// SDK (curl at the end of a crontab line). Answers 202 like Sentry.
async fn cron<P: Producer>(
    State(state): State<Arc<IngestState<P>>>,
    Path((project, slug, key)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, IngestError> {
    let project_id: u64 = project.parse().map_err(|_| IngestError::BadProjectId)?;
    let client = request
        .extensions()
        .get::<ClientAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
    let key = match ClientAuth::resolve([Ok(ClientAuth {
        public_key: key,
        ..Default::default()
    })]) {
        Ok(auth) => state.authorize(project_id, &auth, client).await,
        Err(error) => Err(error.into()),
    }
    .map_err(|error| state.auth_failed(project_id, DataCategory::Monitor, client, error))?;
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut payload = serde_json::json!({
        "monitor_slug": slug,
        "status": params.get("status").cloned().unwrap_or_default(),
    });
    for field in ["check_in_id", "environment", "release"] {
        if let Some(value) = params.get(field) {
            payload[field] = serde_json::Value::String(value.clone());
        }
    }
    if let Some(duration) = params.get("duration").and_then(|d| d.parse::<f64>().ok()) {
        payload["duration"] = serde_json::json!(duration);
    }
    let bytes = Bytes::from(serde_json::to_vec(&payload).unwrap_or_default());
    let check_in = CheckIn::parse(&bytes)
        .map_err(IngestError::from)
        .inspect_err(|error| state.record_invalid(project_id, DataCategory::Monitor, error))?;
    state
        .admit(project_id, &key.public_key, DataCategory::Monitor)
        .map_err(|limited| IngestError::RateLimited(vec![limited]))?;
    publish::check_in(&state, project_id, &check_in, bytes).await?;
    state.accepted(project_id, DataCategory::Monitor, 1);
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn envelope<P: Producer>(
    State(state): State<Arc<IngestState<P>>>,
    Path(project): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, IngestError> {
    let endpoint = Endpoint::Envelope;
    let mut admitted = accept(&state, &project, query.as_deref(), request, endpoint).await?;
    let project_id = admitted.project_id;
    let result = async {
        let body = admitted.decode(state.config.max_decompressed_bytes).await?;
        envelope_items(&state, project_id, &admitted.key.public_key, body).await
    }
    .await;
    result.inspect_err(|error| state.record_invalid(project_id, endpoint.category(), error))
}

async fn store<P: Producer>(
    State(state): State<Arc<IngestState<P>>>,
    Path(project): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, IngestError> {
    let endpoint = Endpoint::Store;
    let mut admitted = accept(&state, &project, query.as_deref(), request, endpoint).await?;
    let project_id = admitted.project_id;
    let result = async {
        let body = admitted.decode(state.config.max_decompressed_bytes).await?;
        // Old SDKs send base64 of zlib-compressed JSON; decoding it copies the body twice (without
        // white space, then base64-decoded), which is counted while it happens.
        let limit = state.config.max_event_bytes;
        let copies = 2 * body.len();
        admitted.share.grow(copies).await?;
        let decoder = Decoder::legacy_store(body)?;
        let body = body::decode(decoder, 0, limit, &mut admitted.share).await?;
        admitted.share.shrink(copies);
        let event_id =
            check_event(&body, state.config.max_event_bytes)?.unwrap_or_else(Uuid::new_v4);
        state
            .admit(project_id, &admitted.key.public_key, DataCategory::Error)
            .map_err(|limited| IngestError::RateLimited(vec![limited]))?;
        publish::event(&state, project_id, event_id, body).await?;
        state.accepted(project_id, DataCategory::Error, 1);
        Ok::<_, IngestError>(id_response(Some(event_id)))
    }
    .await;
    result.inspect_err(|error| state.record_invalid(project_id, endpoint.category(), error))
}

/// Gives every error response without a body of its own (404 for an unknown path, 405 for a
/// wrong method) the `{"detail": ...}` body every refusal has.
pub async fn detail_bodies(response: Response) -> Response {
    let status = response.status();
    let bare = (status.is_client_error() || status.is_server_error())
        && !response.headers().contains_key(header::CONTENT_TYPE);
    if !bare {
        return response;
    }
    let mut refusal = detail(status, status.canonical_reason().unwrap_or("error"));
    let (parts, _) = response.into_parts();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_LENGTH {
            refusal.headers_mut().insert(name, value.clone());
        }
    }
    refusal
}
