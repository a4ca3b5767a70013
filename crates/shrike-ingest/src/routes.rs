//! HTTP routes: `POST /api/{project_id}/envelope/`, `POST /api/{project_id}/store/` and the
//! cron check-in URL.
//!
//! Every request is authenticated before its body is read, and before it takes one of the
//! `max_concurrent_requests` slots: a request with bad credentials costs a cache lookup and a
//! small answer, never a slot that valid traffic needs, nor memory for its body. Only an envelope
//! without header or query credentials has a few KiB of its body read first, for the `dsn` in its
//! header.

use crate::auth::{self, FailureBudget};
use crate::body::{self, MemoryBudget};
use crate::error::{add_rate_limit_headers, detail};
use crate::keys::Lookup;
use crate::quotas::Limited;
use crate::{IngestConfig, IngestError, KeyCache, Outcomes, RateLimiter, publish};
use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use shrike_bus::Producer;
use shrike_protocol::category;
use shrike_protocol::checkin::CheckIn;
use shrike_protocol::encoding::Decoder;
use shrike_protocol::envelope::Envelope;
use shrike_protocol::{AuthError, ClientAuth};
use shrike_store::ProjectKey;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::cors::{Any, CorsLayer};
use uuid::Uuid;

/// What a pre-authentication peek at envelope headers may hold in memory, all requests together.
const PEEK_BUDGET_BYTES: usize = 20 << 20;

/// The address of the client a request came from (set by [`crate::serve`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// What ingest needs to serve requests.
pub struct IngestState<P> {
    /// Where accepted events go.
    pub producer: P,
    /// Which keys are valid.
    pub keys: KeyCache,
    /// Limits.
    pub config: IngestConfig,
    /// Outcome counters (flushed by [`Outcomes::spawn_flusher`]).
    pub outcomes: Outcomes,
    limiter: RateLimiter,
    failures: FailureBudget,
    slots: Arc<Semaphore>,
    memory: MemoryBudget,
    peek_memory: MemoryBudget,
}

impl<P> IngestState<P> {
    /// Everything ingest needs; the rate limiter is built from `config.quotas`.
    pub fn new(producer: P, keys: KeyCache, config: IngestConfig, outcomes: Outcomes) -> Self {
        IngestState {
            producer,
            keys,
            limiter: RateLimiter::new(config.quotas.clone()),
            failures: FailureBudget::new(config.auth_failure_burst, config.auth_failures_per_sec),
            slots: Arc::new(Semaphore::new(config.max_concurrent_requests.max(1))),
            memory: MemoryBudget::new(config.request_memory_bytes()),
            peek_memory: MemoryBudget::new(PEEK_BUDGET_BYTES),
            config,
            outcomes,
        }
    }

    /// The budget request bodies are read and decoded within.
    pub fn memory(&self) -> &MemoryBudget {
        &self.memory
    }

    fn admit(&self, project_id: u64, key: &str, category: &str) -> Result<(), Limited> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        self.limiter
            .admit(project_id, key, category, 1, now)
            .inspect_err(|limited| {
                self.outcomes
                    .record(project_id, category, "rate_limited", &limited.reason, 1);
            })
    }

    /// The key named by `auth`, when it is known, active and belongs to `project_id`. An address
    /// over its failure budget gets cached answers only.
    async fn authorize(
        &self,
        project_id: u64,
        auth: &ClientAuth,
        client: IpAddr,
    ) -> Result<ProjectKey, IngestError> {
        let lookup = if self.failures.exhausted(client) {
            self.keys.lookup_cached(&auth.public_key)
        } else {
            self.keys.lookup(&auth.public_key).await
        };
        let key = match lookup {
            Lookup::Found(key) if key.active => key,
            Lookup::Found(_) | Lookup::Unknown => return Err(IngestError::UnknownKey),
            Lookup::Unavailable => return Err(IngestError::KeysUnavailable),
        };
        if key.project_id != project_id {
            return Err(IngestError::ProjectMismatch(project_id));
        }
        Ok(key)
    }

    /// Counts a refused authentication: an outcome of the project when it exists, and a failure
    /// of the client's address (beyond its budget, the answer is 429 and a closed connection).
    fn auth_failed(
        &self,
        project_id: u64,
        category: &str,
        client: IpAddr,
        error: IngestError,
    ) -> IngestError {
        if !error.is_auth_failure() {
            return error;
        }
        if let Some(reason) = error.outcome_reason()
            && self.keys.knows_project(project_id)
        {
            self.outcomes
                .record(project_id, category, "invalid", reason, 1);
        }
        if self.failures.fail(client) {
            metrics::counter!("shrike_ingest_auth_budget_exceeded_total").increment(1);
            return IngestError::TooManyAuthFailures;
        }
        error
    }

    /// Counts a refused request as an `invalid` outcome (when the refusal is about its content).
    fn record_invalid(&self, project_id: u64, category: &str, error: &IngestError) {
        if let Some(reason) = error.outcome_reason() {
            self.outcomes
                .record(project_id, category, "invalid", reason, 1);
        }
    }
}

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
    fn category(self) -> &'static str {
        match self {
            Endpoint::Envelope => "default",
            Endpoint::Store => "error",
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
    .map_err(|error| state.auth_failed(project_id, "monitor", client, error))?;
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
        .inspect_err(|error| state.record_invalid(project_id, "monitor", error))?;
    state
        .admit(project_id, &key.public_key, "monitor")
        .map_err(|limited| IngestError::RateLimited(vec![limited]))?;
    publish::check_in(&state, project_id, &check_in, bytes).await?;
    state
        .outcomes
        .record(project_id, "monitor", "accepted", "", 1);
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Checks that an event payload is a JSON object within the size limit, and returns the event id
/// the SDK chose (read without building the whole event).
fn check_event(payload: &[u8], limit: usize) -> Result<Option<Uuid>, IngestError> {
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(default)]
        event_id: Option<serde_json::Value>,
    }
    if payload.len() > limit {
        return Err(IngestError::EventTooLarge(limit));
    }
    if payload.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(IngestError::Event("not a json object".into()));
    }
    // JSON is UTF-8; serde would skip over invalid bytes inside fields it does not read here.
    std::str::from_utf8(payload).map_err(|e| IngestError::Event(format!("invalid utf-8: {e}")))?;
    let id: Id = serde_json::from_slice(payload).map_err(|e| IngestError::Event(e.to_string()))?;
    Ok(id
        .event_id
        .and_then(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok())))
}

fn id_response(event_id: Option<Uuid>) -> Response {
    let body = match event_id {
        Some(id) => serde_json::json!({ "id": id.simple().to_string() }),
        None => serde_json::json!({}),
    };
    (StatusCode::OK, axum::Json(body)).into_response()
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

/// Client reports: what the SDK dropped itself (rate limit back-off, full queues, sampling).
#[derive(serde::Deserialize)]
struct ClientReport {
    #[serde(default)]
    discarded_events: Vec<Discarded>,
}

#[derive(serde::Deserialize)]
struct Discarded {
    reason: String,
    category: String,
    quantity: u64,
}

async fn envelope_items<P: Producer>(
    state: &IngestState<P>,
    project_id: u64,
    key: &str,
    body: Bytes,
) -> Result<Response, IngestError> {
    let envelope = Envelope::parse(body)?;
    // Validate everything first, so a request is accepted or refused as a whole.
    if envelope.items.iter().filter(|i| i.ty == "event").count() > 1 {
        return Err(IngestError::DuplicateEvent);
    }
    let mut events = Vec::new();
    let mut check_ins = Vec::new();
    let mut others = Vec::new();
    let mut attachments = Vec::new();
    for item in &envelope.items {
        match item.ty.as_str() {
            "event" => {
                let sdk_id = check_event(&item.payload, state.config.max_event_bytes)?;
                let id = envelope
                    .header
                    .event_id
                    .or(sdk_id)
                    .unwrap_or_else(Uuid::new_v4);
                events.push((id, item.payload.clone()));
            }
            "check_in" => {
                if item.payload.len() > state.config.max_check_in_bytes {
                    return Err(IngestError::CheckInTooLarge(
                        state.config.max_check_in_bytes,
                    ));
                }
                check_ins.push((CheckIn::parse(&item.payload)?, item.payload.clone()));
            }
            "attachment" => {
                if item.payload.len() > state.config.max_attachment_bytes {
                    return Err(IngestError::AttachmentTooLarge(
                        state.config.max_attachment_bytes,
                    ));
                }
                attachments.push(item);
            }
            "client_report" => {
                // A malformed report is the SDK's bookkeeping, not the user's data: skip it.
                if let Ok(report) = serde_json::from_slice::<ClientReport>(&item.payload) {
                    for d in report.discarded_events {
                        state.outcomes.record(
                            project_id,
                            &d.category,
                            "client_discard",
                            &d.reason,
                            d.quantity,
                        );
                    }
                }
            }
            other => others.extend(category::for_item(other)),
        }
    }
    let response_id = envelope
        .header
        .event_id
        .or(events.first().map(|(id, _)| *id));
    let attachment_event = match (attachments.is_empty(), response_id) {
        (true, _) => None,
        (false, Some(id)) => Some(id),
        (false, None) => return Err(IngestError::AttachmentWithoutEvent),
    };

    // Rate limits, per item: limited items are dropped; if nothing is left, 429.
    let mut limits: Vec<Limited> = Vec::new();
    let counted = events.len() + check_ins.len() + others.len() + attachments.len();
    let mut keep = |category: &str| match state.admit(project_id, key, category) {
        Ok(()) => true,
        Err(limited) => {
            if !limits.contains(&limited) {
                limits.push(limited);
            }
            false
        }
    };
    events.retain(|_| keep("error"));
    check_ins.retain(|_| keep("monitor"));
    others.retain(|category| keep(category));
    attachments.retain(|_| keep("attachment"));
    let nothing_left =
        events.is_empty() && check_ins.is_empty() && others.is_empty() && attachments.is_empty();
    if counted > 0 && nothing_left {
        return Err(IngestError::RateLimited(limits));
    }

    for (event_id, payload) in events {
        publish::event(state, project_id, event_id, payload).await?;
        state
            .outcomes
            .record(project_id, "error", "accepted", "", 1);
    }
    for (check_in, payload) in check_ins {
        publish::check_in(state, project_id, &check_in, payload).await?;
        state
            .outcomes
            .record(project_id, "monitor", "accepted", "", 1);
    }
    if let Some(event_id) = attachment_event {
        for item in attachments {
            publish::attachment(state, project_id, event_id, item).await?;
            let bytes = item.payload.len() as u64;
            state
                .outcomes
                .record(project_id, "attachment", "accepted", "", bytes);
        }
    }
    for category in others {
        // Accepted and counted; not stored until Shrike supports the item type.
        state
            .outcomes
            .record(project_id, category, "accepted", "", 1);
    }
    let mut response = id_response(response_id);
    if !limits.is_empty() {
        add_rate_limit_headers(&mut response, &limits);
    }
    Ok(response)
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
            .admit(project_id, &admitted.key.public_key, "error")
            .map_err(|limited| IngestError::RateLimited(vec![limited]))?;
        publish::event(&state, project_id, event_id, body).await?;
        state
            .outcomes
            .record(project_id, "error", "accepted", "", 1);
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
