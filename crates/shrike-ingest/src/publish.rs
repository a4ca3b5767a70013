//! Handing accepted items to the bus: raw events, check-ins and attachment chunks, each with
//! the metadata every bus message carries.

use crate::{IngestError, IngestState};
use bytes::Bytes;
use shrike_bus::Producer;
use shrike_messages::{BusMessage, pb};
use shrike_protocol::checkin::CheckIn;
use uuid::Uuid;

/// Produces `message` on its topic, with its key; resolves once the bus accepted it.
async fn produce<P: Producer, M: BusMessage>(producer: &P, message: &M) -> Result<(), IngestError> {
    let (topic, key, payload) = message.record();
    Ok(producer.send(topic, &key, payload).await?)
}

/// Attachments travel in chunks of this size, well under Kafka's default 1 MB message limit.
const ATTACHMENT_CHUNK_BYTES: usize = 512 * 1024;

/// Produces an attachment in chunks, each keyed by its event.
pub(crate) async fn attachment<P: Producer>(
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
            meta: Some(shrike_messages::meta(project_id, event_id, received_ms)),
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
        produce(&state.producer, &message).await?;
    }
    Ok(())
}

/// Produces a check-in, keyed by its monitor.
pub(crate) async fn check_in<P: Producer>(
    state: &IngestState<P>,
    project_id: u64,
    check_in: &CheckIn,
    payload: Bytes,
) -> Result<(), IngestError> {
    let id = check_in.check_in_id.unwrap_or_else(Uuid::new_v4);
    let message = pb::CheckIn {
        meta: Some(shrike_messages::meta(
            project_id,
            id,
            chrono::Utc::now().timestamp_millis(),
        )),
        monitor_slug: check_in.monitor_slug.clone(),
        status: check_in.status.clone(),
        payload: payload.to_vec(),
    };
    produce(&state.producer, &message).await?;
    metrics::counter!("shrike_ingest_check_ins_total").increment(1);
    Ok(())
}

/// Produces a raw event, keyed by its id.
pub(crate) async fn event<P: Producer>(
    state: &IngestState<P>,
    project_id: u64,
    event_id: Uuid,
    payload: Bytes,
) -> Result<(), IngestError> {
    let message = pb::RawEvent {
        meta: Some(shrike_messages::meta(
            project_id,
            event_id,
            chrono::Utc::now().timestamp_millis(),
        )),
        payload,
    };
    produce(&state.producer, &message).await?;
    metrics::counter!("shrike_ingest_events_total").increment(1);
    Ok(())
}
