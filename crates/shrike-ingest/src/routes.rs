//! HTTP routes: `POST /api/{project_id}/envelope/` and `POST /api/{project_id}/store/`.

use crate::body::{self, BodyError};
use crate::quotas::Limited;
use crate::{IngestConfig, KeyCache, Outcomes, RateLimiter};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::http::{HeaderName, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use shrike_bus::messages::{self, pb};
use shrike_bus::{BusError, Producer, Topic};
use shrike_protocol::category;
use shrike_protocol::checkin::{CheckIn, CheckInError};
use shrike_protocol::envelope::{Envelope, EnvelopeError};
use shrike_protocol::{AuthError, ClientAuth, Dsn};
use shrike_store::ProjectKey;
use std::sync::Arc;
use tower_http::cors::{Any, CorsLayer};
use uuid::Uuid;

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
}

impl<P> IngestState<P> {
    /// Everything ingest needs; the rate limiter is built from `config.quotas`.
    pub fn new(producer: P, keys: KeyCache, config: IngestConfig, outcomes: Outcomes) -> Self {
        let limiter = RateLimiter::new(config.quotas.clone());
        IngestState {
            producer,
            keys,
            config,
            outcomes,
            limiter,
        }
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
}

/// Why a request was refused; each maps to the status Relay answers with.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The project id in the path is not a number.
    #[error("invalid project id")]
    BadProjectId,
    /// Credentials missing, malformed or conflicting.
    #[error("{0}")]
    Auth(#[from] AuthError),
    /// The key is unknown or disabled.
    #[error("unknown or disabled project key")]
    UnknownKey,
    /// The key belongs to another project.
    #[error("project key does not belong to project {0}")]
    ProjectMismatch(u64),
    /// The body could not be decompressed.
    #[error("{0}")]
    Body(#[from] BodyError),
    /// The envelope is malformed.
    #[error("invalid envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// An event payload is not a JSON object.
    #[error("invalid event payload: {0}")]
    Event(String),
    /// An envelope carries more than one event (Sentry allows one per envelope).
    #[error("envelope contains more than one event item")]
    DuplicateEvent,
    /// A check-in is malformed.
    #[error("{0}")]
    CheckIn(#[from] CheckInError),
    /// An attachment is larger than allowed.
    #[error("attachment exceeds {0} bytes")]
    AttachmentTooLarge(usize),
    /// Attachments without an event id in the envelope header cannot be stored.
    #[error("attachments need the envelope header's event_id")]
    AttachmentWithoutEvent,
    /// A check-in payload is larger than allowed.
    #[error("check-in exceeds {0} bytes")]
    CheckInTooLarge(usize),
    /// An event payload is larger than allowed.
    #[error("event exceeds {0} bytes")]
    EventTooLarge(usize),
    /// Every item of the request exceeded a quota.
    #[error("rate limited")]
    RateLimited(Vec<Limited>),
    /// The bus did not accept the event.
    #[error("temporarily unable to accept events")]
    Unavailable(#[from] BusError),
}

impl IngestError {
    fn status(&self) -> StatusCode {
        match self {
            IngestError::BadProjectId
            | IngestError::Envelope(_)
            | IngestError::Event(_)
            | IngestError::DuplicateEvent
            | IngestError::CheckIn(_) => StatusCode::BAD_REQUEST,
            IngestError::CheckInTooLarge(_) | IngestError::AttachmentTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            IngestError::AttachmentWithoutEvent => StatusCode::BAD_REQUEST,
            IngestError::Auth(AuthError::BadKey) => StatusCode::BAD_REQUEST,
            IngestError::Auth(_) => StatusCode::UNAUTHORIZED,
            IngestError::UnknownKey | IngestError::ProjectMismatch(_) => StatusCode::FORBIDDEN,
            IngestError::Body(BodyError::TooLarge(_)) | IngestError::EventTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            IngestError::Body(BodyError::UnsupportedEncoding(_)) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            IngestError::Body(BodyError::Corrupt) => StatusCode::BAD_REQUEST,
            IngestError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Unavailable(BusError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let status = self.status();
        metrics::counter!("shrike_ingest_rejected_total", "status" => status.as_str().to_owned())
            .increment(1);
        let body = serde_json::json!({ "detail": self.to_string() });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let IngestError::RateLimited(limits) = &self {
            add_rate_limit_headers(&mut response, limits);
        }
        response
    }
}

impl IngestError {
    /// The reason recorded in the `invalid` outcome of a refused request.
    fn outcome_reason(&self) -> Option<&'static str> {
        Some(match self {
            IngestError::Body(BodyError::TooLarge(_))
            | IngestError::EventTooLarge(_)
            | IngestError::CheckInTooLarge(_) => "too_large",
            IngestError::Body(_) => "invalid_compression",
            IngestError::Envelope(_) => "invalid_envelope",
            IngestError::Event(_) => "invalid_json",
            IngestError::DuplicateEvent => "duplicate_item",
            IngestError::AttachmentTooLarge(_) => "too_large",
            IngestError::AttachmentWithoutEvent => "missing_event_id",
            IngestError::CheckIn(_) => "invalid_check_in",
            _ => return None,
        })
    }
}

fn add_rate_limit_headers(response: &mut Response, limits: &[Limited]) {
    let retry_after = limits.iter().map(|l| l.retry_after).max().unwrap_or(1);
    let header_value = limits
        .iter()
        .map(Limited::header_entry)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(value) = HeaderValue::from_str(&header_value) {
        response.headers_mut().insert("x-sentry-rate-limits", value);
    }
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
}

/// The ingest routes.
pub fn router<P: Producer>(state: IngestState<P>) -> Router {
    let limit = state.config.max_body_bytes;
    let concurrency = state.config.max_concurrent_requests.max(1);
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
        .layer(DefaultBodyLimit::max(limit))
        .layer(cors)
        // One limit shared by every route (a per-route limit would multiply it).
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(concurrency))
        .with_state(state)
}

/// Everything the two endpoints share: project id, auth, decompression.
async fn prepare<P: Producer>(
    state: &IngestState<P>,
    project: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
    envelope_dsn: impl FnOnce(&Bytes) -> Option<String>,
) -> Result<(u64, String, Bytes), IngestError> {
    let project_id: u64 = project.parse().map_err(|_| IngestError::BadProjectId)?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limit = state.config.max_decompressed_bytes;
    let body = if encoding.is_none() && body.len() < 64 * 1024 {
        body::decode(None, body, limit)?
    } else {
        // Decompressing up to `limit` bytes must not stall the async runtime.
        tokio::task::spawn_blocking(move || body::decode(encoding.as_deref(), body, limit))
            .await
            .map_err(|_| BodyError::Corrupt)??
    };
    let mut candidates = Vec::new();
    for name in ["x-sentry-auth", "authorization"] {
        for value in headers.get_all(name) {
            let value = value.to_str().map_err(|_| AuthError::Malformed)?;
            if name == "authorization"
                && !value
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("sentry ")
            {
                continue;
            }
            candidates.push(ClientAuth::from_header(value));
        }
    }
    if let Some(query) = query {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        if let Some(auth) =
            ClientAuth::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            candidates.push(Ok(auth));
        }
    }
    if let Some(dsn) = envelope_dsn(&body).and_then(|d| d.parse::<Dsn>().ok()) {
        candidates.push(Ok(ClientAuth {
            public_key: dsn.public_key,
            ..Default::default()
        }));
    }
    let auth = ClientAuth::resolve(candidates)?;
    let key = authorize(state, project_id, &auth.public_key).await?;
    Ok((project_id, key.public_key, body))
}

/// The key, when it is known, active and belongs to `project_id`.
async fn authorize<P>(
    state: &IngestState<P>,
    project_id: u64,
    public_key: &str,
) -> Result<ProjectKey, IngestError> {
    let key = state
        .keys
        .get(public_key)
        .await
        .filter(|k| k.active)
        .ok_or(IngestError::UnknownKey)?;
    if key.project_id != project_id {
        return Err(IngestError::ProjectMismatch(project_id));
    }
    Ok(key)
}

/// Attachments travel in chunks of this size, well under Kafka's default 1 MB message limit.
const ATTACHMENT_CHUNK_BYTES: usize = 512 * 1024;

async fn publish_attachment<P: Producer>(
    state: &IngestState<P>,
    project_id: u64,
    event_id: Uuid,
    item: &shrike_protocol::Item,
) -> Result<(), IngestError> {
    let attachment_id = Uuid::new_v4();
    let received_ms = chrono::Utc::now().timestamp_millis();
    let chunks: Vec<&[u8]> = if item.payload.is_empty() {
        vec![&[][..]]
    } else {
        item.payload.chunks(ATTACHMENT_CHUNK_BYTES).collect()
    };
    let chunk_count = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
    for (index, data) in chunks.into_iter().enumerate() {
        let message = pb::AttachmentChunk {
            meta: Some(messages::meta(project_id, event_id, received_ms)),
            attachment_id: attachment_id.as_bytes().to_vec(),
            filename: item.filename.clone().unwrap_or_default(),
            content_type: item.content_type.clone().unwrap_or_default(),
            attachment_type: item
                .attachment_type
                .clone()
                .unwrap_or_else(|| "event.attachment".into()),
            chunk_index: u32::try_from(index).unwrap_or(u32::MAX),
            chunk_count,
            size: item.payload.len() as u64,
            data: data.to_vec(),
        };
        let key = event_id.as_bytes();
        state
            .producer
            .send(Topic::Attachments, key, messages::encode(&message))
            .await?;
    }
    Ok(())
}

async fn publish_check_in<P: Producer>(
    state: &IngestState<P>,
    project_id: u64,
    check_in: &CheckIn,
    payload: Bytes,
) -> Result<(), IngestError> {
    let id = check_in.check_in_id.unwrap_or_else(Uuid::new_v4);
    let message = pb::CheckIn {
        meta: Some(messages::meta(
            project_id,
            id,
            chrono::Utc::now().timestamp_millis(),
        )),
        monitor_slug: check_in.monitor_slug.clone(),
        status: check_in.status.clone(),
        payload: payload.to_vec(),
    };
    let key = format!("{project_id}:{}", check_in.monitor_slug);
    state
        .producer
        .send(Topic::CheckIns, key.as_bytes(), messages::encode(&message))
        .await?;
    metrics::counter!("shrike_ingest_check_ins_total").increment(1);
    Ok(())
}

/// `GET|POST /api/{project_id}/cron/{monitor_slug}/{sentry_key}/?status=ok`: a check-in without an
/// SDK (curl at the end of a crontab line). Answers 202 like Sentry.
async fn cron<P: Producer>(
    State(state): State<Arc<IngestState<P>>>,
    Path((project, slug, key)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, IngestError> {
    let project_id: u64 = project.parse().map_err(|_| IngestError::BadProjectId)?;
    let auth = ClientAuth::resolve([Ok(ClientAuth {
        public_key: key,
        ..Default::default()
    })])?;
    let key = authorize(&state, project_id, &auth.public_key).await?;
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
    let check_in = CheckIn::parse(&bytes)?;
    state
        .admit(project_id, &key.public_key, "monitor")
        .map_err(|limited| IngestError::RateLimited(vec![limited]))?;
    publish_check_in(&state, project_id, &check_in, bytes).await?;
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

async fn publish<P: Producer>(
    state: &IngestState<P>,
    project_id: u64,
    event_id: Uuid,
    payload: Bytes,
) -> Result<(), IngestError> {
    let message = pb::RawEvent {
        meta: Some(messages::meta(
            project_id,
            event_id,
            chrono::Utc::now().timestamp_millis(),
        )),
        payload,
    };
    state
        .producer
        .send(
            Topic::RawEvents,
            event_id.as_bytes(),
            messages::encode(&message),
        )
        .await?;
    metrics::counter!("shrike_ingest_events_total").increment(1);
    Ok(())
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
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, IngestError> {
    let header_dsn = |body: &Bytes| {
        let line = body.split(|b| *b == b'\n').next()?;
        serde_json::from_slice::<shrike_protocol::envelope::EnvelopeHeader>(line)
            .ok()?
            .dsn
    };
    let (project_id, key, body) = prepare(
        &state,
        &project,
        query.as_deref(),
        &headers,
        body,
        header_dsn,
    )
    .await?;
    let result = envelope_items(&state, project_id, &key, body).await;
    record_invalid(&state, project_id, "default", result)
}

/// Counts a refused request as an `invalid` outcome (when the refusal is about its content).
fn record_invalid<P>(
    state: &IngestState<P>,
    project_id: u64,
    category: &str,
    result: Result<Response, IngestError>,
) -> Result<Response, IngestError> {
    if let Err(error) = &result
        && let Some(reason) = error.outcome_reason()
    {
        state
            .outcomes
            .record(project_id, category, "invalid", reason, 1);
    }
    result
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
        publish(state, project_id, event_id, payload).await?;
        state
            .outcomes
            .record(project_id, "error", "accepted", "", 1);
    }
    for (check_in, payload) in check_ins {
        publish_check_in(state, project_id, &check_in, payload).await?;
        state
            .outcomes
            .record(project_id, "monitor", "accepted", "", 1);
    }
    if let Some(event_id) = attachment_event {
        for item in attachments {
            publish_attachment(state, project_id, event_id, item).await?;
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
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, IngestError> {
    let (project_id, key, body) =
        prepare(&state, &project, query.as_deref(), &headers, body, |_| None).await?;
    let result = async {
        // Old SDKs send base64 of zlib-compressed JSON.
        let body = body::decode_legacy_store(body, state.config.max_event_bytes)?;
        let event_id =
            check_event(&body, state.config.max_event_bytes)?.unwrap_or_else(Uuid::new_v4);
        state
            .admit(project_id, &key, "error")
            .map_err(|limited| IngestError::RateLimited(vec![limited]))?;
        publish(&state, project_id, event_id, body).await?;
        state
            .outcomes
            .record(project_id, "error", "accepted", "", 1);
        Ok::<_, IngestError>(id_response(Some(event_id)))
    }
    .await;
    record_invalid(&state, project_id, "error", result)
}
