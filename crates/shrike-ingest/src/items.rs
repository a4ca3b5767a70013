//! The items of an accepted envelope: validated as a whole, rate limited one by one, then handed
//! to the bus and counted.

use crate::error::add_rate_limit_headers;
use crate::quotas::Limited;
use crate::{IngestError, IngestState, publish};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use shrike_bus::Producer;
use shrike_protocol::category::{DataCategory, ItemType, Outcome};
use shrike_protocol::checkin::CheckIn;
use shrike_protocol::envelope::Envelope;
use uuid::Uuid;

/// Checks that an event payload is a JSON object within the size limit, and returns the event id
/// the SDK chose (read without building the whole event).
pub(crate) fn check_event(payload: &[u8], limit: usize) -> Result<Option<Uuid>, IngestError> {
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

pub(crate) fn id_response(event_id: Option<Uuid>) -> Response {
    let body = match event_id {
        Some(id) => serde_json::json!({ "id": id.simple().to_string() }),
        None => serde_json::json!({}),
    };
    (StatusCode::OK, axum::Json(body)).into_response()
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

pub(crate) async fn envelope_items<P: Producer>(
    state: &IngestState<P>,
    project_id: u64,
    key: &str,
    body: Bytes,
) -> Result<Response, IngestError> {
    let envelope = Envelope::parse(body)?;
    // Validate everything first, so a request is accepted or refused as a whole.
    if envelope
        .items
        .iter()
        .filter(|i| i.ty == ItemType::Event)
        .count()
        > 1
    {
        return Err(IngestError::DuplicateEvent);
    }
    let mut events = Vec::new();
    let mut check_ins = Vec::new();
    let mut others = Vec::new();
    let mut attachments = Vec::new();
    for item in &envelope.items {
        match &item.ty {
            ItemType::Event => {
                let sdk_id = check_event(&item.payload, state.config.max_event_bytes)?;
                let id = envelope
                    .header
                    .event_id
                    .or(sdk_id)
                    .unwrap_or_else(Uuid::new_v4);
                events.push((id, item.payload.clone()));
            }
            ItemType::CheckIn => {
                if item.payload.len() > state.config.max_check_in_bytes {
                    return Err(IngestError::CheckInTooLarge(
                        state.config.max_check_in_bytes,
                    ));
                }
                check_ins.push((CheckIn::parse(&item.payload)?, item.payload.clone()));
            }
            ItemType::Attachment => {
                if item.payload.len() > state.config.max_attachment_bytes {
                    return Err(IngestError::AttachmentTooLarge(
                        state.config.max_attachment_bytes,
                    ));
                }
                attachments.push(item);
            }
            ItemType::ClientReport => {
                // A malformed report is the SDK's bookkeeping, not the user's data: skip it.
                if let Ok(report) = serde_json::from_slice::<ClientReport>(&item.payload) {
                    for d in report.discarded_events {
                        state.outcomes.record(
                            project_id,
                            &d.category,
                            Outcome::ClientDiscard,
                            &d.reason,
                            d.quantity,
                        );
                    }
                }
            }
            other => others.extend(other.category()),
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
    let mut keep = |category: DataCategory| match state.admit(project_id, key, category) {
        Ok(()) => true,
        Err(limited) => {
            if !limits.contains(&limited) {
                limits.push(limited);
            }
            false
        }
    };
    events.retain(|_| keep(DataCategory::Error));
    check_ins.retain(|_| keep(DataCategory::Monitor));
    others.retain(|category| keep(*category));
    attachments.retain(|_| keep(DataCategory::Attachment));
    let nothing_left =
        events.is_empty() && check_ins.is_empty() && others.is_empty() && attachments.is_empty();
    if counted > 0 && nothing_left {
        return Err(IngestError::RateLimited(limits));
    }

    for (event_id, payload) in events {
        publish::event(state, project_id, event_id, payload).await?;
        state.accepted(project_id, DataCategory::Error, 1);
    }
    for (check_in, payload) in check_ins {
        publish::check_in(state, project_id, &check_in, payload).await?;
        state.accepted(project_id, DataCategory::Monitor, 1);
    }
    if let Some(event_id) = attachment_event {
        for item in attachments {
            publish::attachment(state, project_id, event_id, item).await?;
            // Attachments are counted in bytes.
            state.accepted(
                project_id,
                DataCategory::Attachment,
                item.payload.len() as u64,
            );
        }
    }
    for category in others {
        // Accepted and counted; not stored until Shrike supports the item type.
        state.accepted(project_id, category, 1);
    }
    let mut response = id_response(response_id);
    if !limits.is_empty() {
        add_rate_limit_headers(&mut response, &limits);
    }
    Ok(response)
}
