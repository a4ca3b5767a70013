//! Pure conversion of a normalized event and its grouping hash into the rows Shrike stores.

use crate::fingerprint::issue_id_for_hash;
use shrike_bus::messages::NormalizedEvent;
use shrike_store::{EventRow, IssueRow};

/// Builds the `events` row; `variant` is the grouping variant that produced the hash.
pub fn event_row(event: &NormalizedEvent, primary_hash: &str, variant: &str) -> EventRow {
    let main = event.exceptions.last();
    let frames = main
        .and_then(|e| e.stacktrace.as_ref())
        .or(event.stacktrace.as_ref())
        .map(|s| s.frames.as_slice())
        .unwrap_or_default();
    let (tags_key, tags_value) = event.tags.iter().cloned().unzip();
    EventRow {
        project_id: event.project_id,
        event_id: event.event_id,
        timestamp: secs(event.timestamp_ms),
        received: secs(event.received_ms),
        issue_id: issue_id_for_hash(primary_hash),
        primary_hash: primary_hash.to_owned(),
        platform: event.platform.clone(),
        level: event.level.clone(),
        logger: event.logger.clone(),
        transaction: event.transaction.clone(),
        server_name: event.server_name.clone(),
        release: event.release.clone(),
        environment: event.environment.clone(),
        message: event.message.clone(),
        title: event.title.clone(),
        culprit: event.culprit.clone(),
        exception_type: main.and_then(|e| e.ty.clone()).unwrap_or_default(),
        exception_value: main.and_then(|e| e.value.clone()).unwrap_or_default(),
        frame_filenames: frames
            .iter()
            .map(|f| {
                f.filename
                    .clone()
                    .or(f.abs_path.clone())
                    .unwrap_or_default()
            })
            .collect(),
        frame_functions: frames
            .iter()
            .map(|f| f.function.clone().unwrap_or_default())
            .collect(),
        frame_modules: frames
            .iter()
            .map(|f| f.module.clone().unwrap_or_default())
            .collect(),
        frame_linenos: frames.iter().map(|f| f.lineno.unwrap_or(0)).collect(),
        frame_in_app: frames
            .iter()
            .map(|f| u8::from(f.in_app == Some(true)))
            .collect(),
        tags_key,
        tags_value,
        user_id: event.user_id.clone(),
        user_email: event.user_email.clone(),
        user_username: event.user_username.clone(),
        user_ip: event.user_ip.clone(),
        request_url: event.request_url.clone(),
        request_method: event.request_method.clone(),
        sdk_name: event.sdk_name.clone(),
        sdk_version: event.sdk_version.clone(),
        grouping_variant: variant.to_owned(),
    }
}

/// Builds the `issues` row describing the issue the event opened or updated.
pub fn issue_row(event: &NormalizedEvent, primary_hash: &str, version: u64) -> IssueRow {
    let main = event.exceptions.last();
    IssueRow {
        project_id: event.project_id,
        issue_id: issue_id_for_hash(primary_hash),
        primary_hash: primary_hash.to_owned(),
        title: event.title.clone(),
        culprit: event.culprit.clone(),
        ty: main.and_then(|e| e.ty.clone()).unwrap_or_default(),
        value: main
            .and_then(|e| e.value.clone())
            .unwrap_or_else(|| event.message.clone()),
        level: event.level.clone(),
        platform: event.platform.clone(),
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
    use shrike_protocol::event::{Exception, Frame, Stacktrace};

    #[test]
    fn flattens_the_main_exception_and_tags() {
        let event = NormalizedEvent {
            project_id: 3,
            timestamp_ms: 1_700_000_000_999,
            exceptions: vec![
                Exception {
                    ty: Some("Cause".into()),
                    ..Default::default()
                },
                Exception {
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
                },
            ],
            tags: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
            ..Default::default()
        };
        let fp = fingerprint(&event);
        let row = event_row(&event, &fp.hash, "app");
        assert_eq!(row.grouping_variant, "app");
        assert_eq!(row.timestamp, 1_700_000_000);
        assert_eq!(row.exception_type, "Main");
        assert_eq!(row.frame_filenames, vec!["/a.py"]);
        assert_eq!(row.frame_linenos, vec![4]);
        assert_eq!(row.frame_in_app, vec![1]);
        assert_eq!(row.tags_key, vec!["a", "b"]);
        assert_eq!(row.tags_value, vec!["1", "2"]);
        assert_eq!(row.issue_id, fp.issue_id());
        let issue = issue_row(&event, &fp.hash, 7);
        assert_eq!(
            (issue.ty.as_str(), issue.value.as_str(), issue.version),
            ("Main", "v", 7)
        );
    }
}
