//! The one conversion from a normalized-event message to its `events` row, and the partial
//! decoding a batch keeps until it is written.

use shrike_consumer::ProcessError;
use shrike_issues::{IssueEvent, issue_id_for_hash};
use shrike_messages::pb;
use shrike_store::{EventKey, EventRow};

/// What a batch keeps of a normalized-event record until the batch is written: what decides about
/// its issue, and the index of its record, from which its row is decoded at write time (so a
/// batch holds each event once, as the bytes of its record, not also decoded: an estimated 4–5 KB
/// per 5 KB event).
#[derive(Debug, Clone)]
pub struct Pending {
    /// What decides about the event's issue.
    pub event: IssueEvent,
    /// Index of its record in the batch.
    pub record: usize,
}

/// Decodes what a batch keeps of a normalized-event record, the batch's `record`th: its header,
/// hash and summary, skipping frames and tags.
pub fn pending(payload: &[u8], record: usize) -> Result<Pending, ProcessError> {
    let message = shrike_messages::decode::<pb::NormalizedEventSummary>(payload)?;
    let (meta, event_id) = shrike_messages::check_meta(message.meta.as_ref())?;
    Ok(Pending {
        event: IssueEvent {
            meta: meta.clone(),
            event_id,
            hash: message.primary_hash,
            summary: message.fields.unwrap_or_default(),
        },
        record,
    })
}

/// Where a pending event goes in `events`: its project, timestamp (as its row has it) and id.
pub fn event_key(pending: &Pending) -> EventKey {
    let event = &pending.event;
    (
        event.meta.project_id,
        secs(event.summary.timestamp_ms),
        event.event_id,
    )
}

/// The `events` row of a normalized-event message.
pub fn event_row(payload: &[u8]) -> Result<EventRow, ProcessError> {
    let message = shrike_messages::decode::<pb::NormalizedEvent>(payload)?;
    let (meta, event_id) = shrike_messages::check_meta(message.meta.as_ref())?;
    let fields = message.fields.unwrap_or_default();
    Ok(EventRow {
        project_id: meta.project_id,
        event_id,
        timestamp: secs(fields.timestamp_ms),
        received: secs(meta.received_ms),
        issue_id: issue_id_for_hash(&message.primary_hash),
        primary_hash: message.primary_hash,
        platform: fields.platform,
        level: fields.level,
        logger: fields.logger,
        transaction: fields.transaction,
        server_name: fields.server_name,
        release: fields.release,
        environment: fields.environment,
        message: fields.message,
        title: fields.title,
        culprit: fields.culprit,
        exception_type: fields.exception_type,
        exception_value: fields.exception_value,
        frame_filenames: fields.frame_filenames,
        frame_functions: fields.frame_functions,
        frame_modules: fields.frame_modules,
        frame_linenos: fields.frame_linenos,
        frame_in_app: fields.frame_in_app.into_iter().map(u8::from).collect(),
        tags_key: fields.tag_keys,
        tags_value: fields.tag_values,
        user_id: fields.user_id,
        user_email: fields.user_email,
        user_username: fields.user_username,
        user_ip: fields.user_ip,
        request_url: fields.request_url,
        request_method: fields.request_method,
        sdk_name: fields.sdk_name,
        sdk_version: fields.sdk_version,
        grouping_variant: message.grouping_variant,
        body: String::from_utf8(message.body)
            .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned()),
        // The store stamps the project's retention when it inserts.
        retention_days: 0,
    })
}

/// Entries of a batch whose full message did not decode, with why, by index.
pub type Undecodable = std::sync::Mutex<std::collections::BTreeMap<usize, ProcessError>>;

/// The `events` rows of a batch, decoded one at a time as the insert consumes them. An entry whose
/// full message does not decode (its summary did, but the two read different fields) is left out
/// and recorded in `undecodable`, to be dead-lettered.
pub fn event_rows<'a>(
    pending: &'a [Pending],
    records: &'a [shrike_bus::Record],
    undecodable: &'a Undecodable,
) -> impl Iterator<Item = EventRow> + Send + 'a {
    pending.iter().enumerate().filter_map(move |(i, p)| {
        match event_row(&records[p.record].payload) {
            Ok(row) => Some(row),
            Err(error) => {
                undecodable
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(i, error);
                None
            }
        }
    })
}

fn secs(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use shrike_bus::Record;
    use uuid::Uuid;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn message(hash: &str, fields: pb::EventFields) -> Bytes {
        shrike_messages::encode(&pb::NormalizedEvent {
            meta: Some(shrike_messages::meta(
                3,
                Uuid::from_u128(9),
                1_700_000_001_000,
            )),
            primary_hash: hash.into(),
            grouping_variant: "app".into(),
            fields: Some(fields),
            body: br#"{"title":"Main: v"}"#.to_vec(),
        })
    }

    #[test]
    fn a_row_carries_the_fields_header_and_hash_and_a_summary_describes_its_issue() {
        let payload = message(
            A,
            pb::EventFields {
                timestamp_ms: 1_700_000_000_999,
                title: "Main: v".into(),
                exception_type: "Main".into(),
                exception_value: "v".into(),
                frame_filenames: vec!["/a.py".into()],
                frame_linenos: vec![4],
                frame_in_app: vec![true],
                tag_keys: vec!["a".into()],
                tag_values: vec!["1".into()],
                ..Default::default()
            },
        );
        let row = event_row(&payload).expect("row");
        assert_eq!((row.project_id, row.event_id), (3, Uuid::from_u128(9)));
        assert_eq!(
            (row.timestamp, row.received),
            (1_700_000_000, 1_700_000_001)
        );
        assert_eq!(
            (row.issue_id, row.grouping_variant.as_str()),
            (issue_id_for_hash(A), "app")
        );
        assert_eq!(row.frame_in_app, vec![1]);
        assert_eq!(row.tags_key, vec!["a"]);
        assert_eq!(row.body, r#"{"title":"Main: v"}"#);
        let kept = pending(&payload, 5).expect("summary");
        assert_eq!((kept.record, kept.event.hash.as_str()), (5, A));
        assert_eq!(kept.event.summary.title, "Main: v");
        let issue = shrike_issues::issue_row(&kept.event, 7);
        assert_eq!((issue.ty.as_str(), issue.value.as_str()), ("Main", "v"));
    }

    #[test]
    fn refuses_newer_versions() {
        let mut meta = shrike_messages::meta(3, Uuid::nil(), 0);
        meta.version = shrike_messages::VERSION + 1;
        let newer = shrike_messages::encode(&pb::NormalizedEvent {
            meta: Some(meta),
            ..Default::default()
        });
        assert!(matches!(
            event_row(&newer),
            Err(ProcessError::Undecodable(_))
        ));
        assert!(matches!(
            pending(&newer, 0),
            Err(ProcessError::Undecodable(_))
        ));
    }

    #[test]
    fn an_entry_whose_full_message_does_not_decode_is_reported_not_lost() {
        // A message whose summary decodes but whose frame file name is not UTF-8.
        let meta =
            shrike_messages::encode(&shrike_messages::meta(1, Uuid::new_v4(), 1_700_000_000_000));
        let fields = [&[0x52, 1, b't'][..], &[0x72, 1, 0xff]].concat(); // title, frame_filenames
        let mut payload = vec![0x0a, meta.len() as u8];
        payload.extend(&meta);
        payload.extend([0x12, 32]);
        payload.extend(A.as_bytes());
        payload.extend([0x2a, fields.len() as u8]);
        payload.extend(&fields);
        let payload = Bytes::from(payload);
        let kept = pending(&payload, 0).expect("the summary decodes");
        assert_eq!(kept.event.summary.title, "t");
        assert!(event_row(&payload).is_err());

        let good = message(B, pb::EventFields::default());
        let batch = vec![kept, pending(&good, 1).expect("decodes")];
        let records: Vec<Record> = [payload, good]
            .into_iter()
            .enumerate()
            .map(|(offset, payload)| Record {
                topic: "events-normalized",
                partition: 0,
                offset: offset as i64,
                generation: 0,
                key: Bytes::new(),
                payload,
            })
            .collect();
        let undecodable = Undecodable::default();
        let rows: Vec<EventRow> = event_rows(&batch, &records, &undecodable).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].primary_hash, B);
        let undecodable = undecodable.into_inner().expect("lock");
        assert_eq!(undecodable.keys().copied().collect::<Vec<_>>(), vec![0]);
    }
}
