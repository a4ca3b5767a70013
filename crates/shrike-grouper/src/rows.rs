//! Pure conversion of a normalized event's stored fields and its grouping hash into rows.

use crate::fingerprint::issue_id_for_hash;
use shrike_bus::messages::pb;
use shrike_store::{EventRow, IssueRow};
use uuid::Uuid;

/// Which event a row is about: the message header's ids and receive time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventKey {
    /// The project.
    pub project_id: u64,
    /// The event id.
    pub event_id: Uuid,
    /// When ingest received the event, Unix milliseconds.
    pub received_ms: i64,
}

/// Builds the `events` row; `variant` is the grouping variant that produced the hash.
pub fn event_row(
    key: EventKey,
    fields: pb::EventFields,
    primary_hash: &str,
    variant: &str,
) -> EventRow {
    EventRow {
        project_id: key.project_id,
        event_id: key.event_id,
        timestamp: secs(fields.timestamp_ms),
        received: secs(key.received_ms),
        issue_id: issue_id_for_hash(primary_hash),
        primary_hash: primary_hash.to_owned(),
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
        grouping_variant: variant.to_owned(),
    }
}

/// Builds the `issues` row describing the issue the event of `project_id` opened.
pub fn issue_row(
    project_id: u64,
    fields: &pb::EventSummary,
    primary_hash: &str,
    version: u64,
) -> IssueRow {
    let value = if fields.exception_value.is_empty() {
        &fields.message
    } else {
        &fields.exception_value
    };
    IssueRow {
        project_id,
        issue_id: issue_id_for_hash(primary_hash),
        primary_hash: primary_hash.to_owned(),
        title: fields.title.clone(),
        culprit: fields.culprit.clone(),
        ty: fields.exception_type.clone(),
        value: value.clone(),
        level: fields.level.clone(),
        platform: fields.platform.clone(),
        version,
    }
}

fn secs(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint;
    use shrike_bus::messages::{self, NormalizedEvent};
    use shrike_protocol::event::{Exception, Frame, Stacktrace};

    #[test]
    fn rows_carry_the_fields_and_the_hash() {
        let event = NormalizedEvent {
            project_id: 3,
            timestamp_ms: 1_700_000_000_999,
            exceptions: vec![Exception {
                ty: Some("Main".into()),
                value: Some("v".into()),
                stacktrace: Some(Stacktrace {
                    frames: vec![Frame {
                        abs_path: Some("/a.py".into()),
                        function: Some("f".into()),
                        lineno: Some(4),
                        in_app: Some(true),
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }],
            tags: vec![("a".into(), "1".into())],
            ..Default::default()
        };
        let fp = fingerprint(&event);
        let key = EventKey {
            project_id: 3,
            event_id: Uuid::new_v4(),
            received_ms: 1_700_000_001_000,
        };
        let fields = messages::event_fields(event.clone());
        let issue = issue_row(3, &messages::event_summary(&fields), &fp.hash, 7);
        let row = event_row(key, fields, &fp.hash, "app");
        assert_eq!(row.grouping_variant, "app");
        assert_eq!(
            (row.timestamp, row.received),
            (1_700_000_000, 1_700_000_001)
        );
        assert_eq!(row.event_id, key.event_id);
        assert_eq!(row.exception_type, "Main");
        assert_eq!(row.frame_filenames, vec!["/a.py"]);
        assert_eq!(row.frame_linenos, vec![4]);
        assert_eq!(row.frame_in_app, vec![1]);
        assert_eq!(row.tags_key, vec!["a"]);
        assert_eq!(row.issue_id, fp.issue_id());
        assert_eq!(
            (issue.ty.as_str(), issue.value.as_str(), issue.version),
            ("Main", "v", 7)
        );

        // A message event's issue is described by its message.
        let message = NormalizedEvent {
            message: "disk full".into(),
            ..Default::default()
        };
        let summary = messages::event_summary(&messages::event_fields(message));
        let issue = issue_row(3, &summary, &fp.hash, 7);
        assert_eq!((issue.ty.as_str(), issue.value.as_str()), ("", "disk full"));
    }
}
