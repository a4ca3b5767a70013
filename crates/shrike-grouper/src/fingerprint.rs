//! Fingerprinting: the values that decide an event's issue, and their md5 hash.
//!
//! This first grouping strategy follows the shape of Sentry's: for errors, each exception's type plus
//! the module (or file name) and function of its in-app frames — all frames when none is in-app, and
//! the exception value when there is no stack trace; for messages, the message. A client
//! fingerprint replaces these values, with `{{ default }}` standing for them. The hash is the md5 of
//! the contributing values, 32 hex characters, like Sentry's `primary_hash`.

use md5::{Digest, Md5};
use shrike_bus::messages::NormalizedEvent;
use shrike_protocol::event::Frame;

/// The outcome of fingerprinting one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Which strategy contributed: `app`, `system`, `exception`, `message`, `fingerprint`, `fallback`.
    pub variant: &'static str,
    /// The contributing values, in hashing order.
    pub values: Vec<String>,
    /// md5 of the values, lowercase hex.
    pub hash: String,
}

impl Fingerprint {
    /// The issue id derived from the hash: its first 63 bits. Deterministic, so every grouper
    /// replica assigns the same id without coordination.
    pub fn issue_id(&self) -> u64 {
        issue_id_for_hash(&self.hash)
    }
}

/// The issue id of a hash (its first 16 hex digits, top bit cleared).
pub fn issue_id_for_hash(hash: &str) -> u64 {
    u64::from_str_radix(hash.get(..16).unwrap_or("0"), 16).unwrap_or(0) & (u64::MAX >> 1)
}

/// Fingerprints an event.
pub fn fingerprint(event: &NormalizedEvent) -> Fingerprint {
    let (variant, default_values) = default_values(event);
    match event.fingerprint.as_deref().filter(|f| !f.is_empty()) {
        Some(custom) if custom.iter().any(|v| !is_default(v)) => {
            let mut values = Vec::new();
            for value in custom {
                if is_default(value) {
                    values.extend(default_values.iter().cloned());
                } else {
                    values.push(value.clone());
                }
            }
            finish("fingerprint", values)
        }
        _ => finish(variant, default_values),
    }
}

fn is_default(value: &str) -> bool {
    let inner = value
        .trim()
        .trim_start_matches("{{")
        .trim_end_matches("}}")
        .trim();
    value.trim().starts_with("{{") && inner == "default"
}

fn default_values(event: &NormalizedEvent) -> (&'static str, Vec<String>) {
    let mut values = Vec::new();
    let mut variant = "exception";
    // Sentry's component order: an exception's stack trace (its frames, oldest first), then its
    // type; the value counts only when no frame does.
    for exception in &event.exceptions {
        let frames: &[Frame] = exception
            .stacktrace
            .as_ref()
            .map(|s| s.frames.as_slice())
            .unwrap_or_default();
        let in_app: Vec<&Frame> = frames.iter().filter(|f| f.in_app == Some(true)).collect();
        let contributing: Vec<&Frame> = if in_app.is_empty() {
            frames.iter().collect()
        } else {
            variant = "app";
            in_app
        };
        if !contributing.is_empty() && variant != "app" {
            variant = "system";
        }
        for frame in &contributing {
            values.push(frame_location(frame));
            values.push(frame.function.clone().unwrap_or_default());
            // Python frames also group by their source line (as Sentry's snapshots show).
            if event.platform == "python"
                && let Some(line) = frame.context_line.as_deref()
            {
                values.push(line.trim().to_owned());
            }
        }
        values.push(exception.ty.clone().unwrap_or_default());
        if contributing.is_empty() {
            values.push(exception.value.clone().unwrap_or_default());
        }
    }
    if !values.is_empty() {
        return (variant, values);
    }
    if !event.message.is_empty() {
        return ("message", vec![event.message.clone()]);
    }
    // Nothing to group by: every such event shares Sentry's fallback hash, md5("").
    ("fallback", Vec::new())
}

/// The module, or else the file name's base name lowercased (paths differ between machines).
fn frame_location(frame: &Frame) -> String {
    if let Some(module) = frame.module.as_deref().filter(|m| !m.is_empty()) {
        return module.to_owned();
    }
    let path = frame
        .filename
        .as_deref()
        .or(frame.abs_path.as_deref())
        .unwrap_or_default();
    path.rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

fn finish(variant: &'static str, values: Vec<String>) -> Fingerprint {
    // Sentry hashes the contributing values' UTF-8 bytes, concatenated without separators.
    let mut md5 = Md5::new();
    for value in &values {
        md5.update(value.as_bytes());
    }
    let hash = hex::encode(md5.finalize());
    Fingerprint {
        variant,
        values,
        hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shrike_protocol::event::{Exception, Stacktrace};

    fn frame(module: &str, function: &str, in_app: bool) -> Frame {
        Frame {
            module: Some(module.into()),
            function: Some(function.into()),
            in_app: Some(in_app),
            lineno: Some(1),
            ..Default::default()
        }
    }

    fn error(ty: &str, value: &str, frames: Vec<Frame>) -> NormalizedEvent {
        NormalizedEvent {
            exceptions: vec![Exception {
                ty: Some(ty.into()),
                value: Some(value.into()),
                stacktrace: Some(Stacktrace { frames }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn same_error_same_hash_despite_value_and_line_numbers() {
        let a = error(
            "ZeroDivisionError",
            "division by zero",
            vec![frame("app.views", "boom", true)],
        );
        let mut b = error(
            "ZeroDivisionError",
            "other text",
            vec![frame("app.views", "boom", true)],
        );
        if let Some(f) = b.exceptions[0]
            .stacktrace
            .as_mut()
            .map(|s| &mut s.frames[0])
        {
            f.lineno = Some(99);
        }
        assert_eq!(fingerprint(&a).hash, fingerprint(&b).hash);
        assert_eq!(fingerprint(&a).variant, "app");
        assert_eq!(fingerprint(&a).hash.len(), 32);
    }

    #[test]
    fn different_type_or_in_app_function_differs() {
        let base = fingerprint(&error("E", "v", vec![frame("m", "f", true)]));
        assert_ne!(
            base.hash,
            fingerprint(&error("F", "v", vec![frame("m", "f", true)])).hash
        );
        assert_ne!(
            base.hash,
            fingerprint(&error("E", "v", vec![frame("m", "g", true)])).hash
        );
        // Library frames do not matter when there are in-app ones.
        let with_lib = error(
            "E",
            "v",
            vec![frame("django", "x", false), frame("m", "f", true)],
        );
        assert_eq!(base.hash, fingerprint(&with_lib).hash);
    }

    #[test]
    fn falls_back_to_system_frames_then_value() {
        let system = fingerprint(&error("E", "v", vec![frame("lib", "f", false)]));
        assert_eq!(system.variant, "system");
        assert_eq!(system.values, vec!["lib", "f", "E"]);
        let bare = fingerprint(&error("E", "v", vec![]));
        assert_eq!(bare.variant, "exception");
        assert_eq!(bare.values, vec!["E", "v"]);
    }

    #[test]
    fn messages_and_fallback() {
        let m = NormalizedEvent {
            message: "hello".into(),
            ..Default::default()
        };
        assert_eq!(fingerprint(&m).variant, "message");
        let f = NormalizedEvent {
            title: "<unlabeled event>".into(),
            ..Default::default()
        };
        assert_eq!(fingerprint(&f).variant, "fallback");
        assert_eq!(fingerprint(&f).hash, "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn client_fingerprints_replace_or_extend_the_default() {
        let mut e = error("E", "v", vec![frame("m", "f", true)]);
        let default = fingerprint(&e);
        e.fingerprint = Some(vec!["{{ default }}".into()]);
        assert_eq!(fingerprint(&e).hash, default.hash);
        e.fingerprint = Some(vec!["{{default}}".into(), "tenant-a".into()]);
        let hybrid = fingerprint(&e);
        assert_eq!(hybrid.variant, "fingerprint");
        assert_eq!(hybrid.values, vec!["m", "f", "E", "tenant-a"]);
        e.fingerprint = Some(vec!["my-group".into()]);
        assert_eq!(fingerprint(&e).values, vec!["my-group"]);
    }

    #[test]
    fn file_names_are_basenames_lowercased() {
        let f = Frame {
            filename: Some("C:\\App\\Views.PY".into()),
            ..Default::default()
        };
        assert_eq!(frame_location(&f), "views.py");
    }

    #[test]
    fn issue_ids_come_from_the_hash() {
        assert_eq!(
            issue_id_for_hash("ffffffffffffffff0000000000000000"),
            u64::MAX >> 1
        );
        assert_eq!(issue_id_for_hash("0000000000000001ffff"), 1);
    }
}
