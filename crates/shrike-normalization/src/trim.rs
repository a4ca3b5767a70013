//! Size limits on the stored event, as Relay applies them (facts from Relay's
//! `relay-event-normalization` trimming and `relay-event-schema` field limits):
//!
//! - A stack trace keeps its newest 250 frames (the crash is the newest); with more than 50, the
//!   frames in the middle lose `vars`, `pre_context` and `post_context` (library frames first).
//! - Long strings are cut to their field's limit and end in `...` (messages and exception values
//!   8,192 characters, culprit and transaction 200, logger and environment 64, ...).
//! - Free-form data ("bags": `extra`, `contexts`, `request.data`, breadcrumbs' data, frames'
//!   `vars`) is cut to a depth and a byte budget: a container at the last level becomes its JSON
//!   text, and the items past the budget are removed.
//!
//! Every cut is noted in `_meta`: `!limit` for a string, `len` for the original count of a list.
//! Runs after scrubbing, so that no secret is cut in half where its pattern no longer matches.

use crate::meta::{Meta, Path, each_item};
use serde_json::{Map, Value};

/// Frames kept per stack trace (the newest).
pub const MAX_FRAMES: usize = 250;
/// Frames above which the middle ones lose their variables and context lines.
pub const SLIM_FRAMES: usize = 50;

/// A bag's depth and byte budget.
#[derive(Debug, Clone, Copy)]
struct Bag {
    depth: usize,
    bytes: usize,
}

const MEDIUM: Bag = Bag {
    depth: 5,
    bytes: 2048,
};
const LARGE: Bag = Bag {
    depth: 7,
    bytes: 8192,
};
const LARGER: Bag = Bag {
    depth: 7,
    bytes: 16 * 1024,
};
const MASSIVE: Bag = Bag {
    depth: 7,
    bytes: 256 * 1024,
};

/// `(field, limit, allowance)`: a string longer than limit + allowance characters is cut to
/// `limit` (with the `...`).
const EVENT_STRINGS: &[(&str, usize, usize)] = &[
    ("culprit", 200, 0),
    ("transaction", 200, 0),
    ("release", 200, 0),
    ("dist", 64, 0),
    ("logger", 64, 0),
    ("environment", 64, 0),
    ("server_name", 256, 20),
    ("message", 8192, 200),
];

/// Applies the size limits to `event`, noting each cut in `meta`.
pub fn trim(event: &mut Map<String, Value>, meta: &mut Meta) {
    let mut path = Path::default();
    for &(field, limit, allowance) in EVENT_STRINGS {
        if let Some(Value::String(text)) = event.get_mut(field) {
            path.with(field, |p| trim_string(text, limit, allowance, p, meta));
        }
    }
    if let Some(Value::Object(logentry)) = event.get_mut("logentry") {
        path.with("logentry", |p| {
            for field in ["message", "formatted"] {
                if let Some(Value::String(text)) = logentry.get_mut(field) {
                    p.with(field, |p| trim_string(text, 8192, 200, p, meta));
                }
            }
            if let Some(params) = logentry.get_mut("params") {
                p.with("params", |p| bag(params, MEDIUM, p, meta));
            }
        });
    }
    if let Some(Value::Object(tags)) = event.get_mut("tags") {
        path.with("tags", |p| {
            for (key, value) in tags.iter_mut() {
                if let Value::String(text) = value {
                    p.with(key, |p| trim_string(text, 200, 0, p, meta));
                }
            }
        });
    }
    if let Some(extra) = event.get_mut("extra") {
        path.with("extra", |p| {
            // The whole first, then each value: a container stringified at the whole's last
            // level is not stringified again.
            bag(extra, MASSIVE, p, meta);
            if let Value::Object(members) = extra {
                for (key, value) in members.iter_mut() {
                    p.with(key, |p| bag(value, LARGER, p, meta));
                }
            }
        });
    }
    for (field, size) in [("contexts", LARGE), ("modules", LARGE)] {
        if let Some(value) = event.get_mut(field) {
            path.with(field, |p| bag(value, size, p, meta));
        }
    }
    if let Some(Value::Object(request)) = event.get_mut("request")
        && let Some(data) = request.get_mut("data")
    {
        path.with("request", |p| p.with("data", |p| bag(data, LARGE, p, meta)));
    }
    if let Some(breadcrumbs) = event.get_mut("breadcrumbs") {
        path.with("breadcrumbs", |p| {
            each_item(breadcrumbs, p, |crumb, p| {
                if let Some(Value::String(text)) = crumb.get_mut("message") {
                    p.with("message", |p| trim_string(text, 8192, 200, p, meta));
                }
                for field in ["type", "category"] {
                    if let Some(Value::String(text)) = crumb.get_mut(field) {
                        p.with(field, |p| trim_string(text, 128, 0, p, meta));
                    }
                }
                if let Some(data) = crumb.get_mut("data") {
                    p.with("data", |p| bag(data, MEDIUM, p, meta));
                }
            });
        });
    }
    for field in ["exception", "threads"] {
        if let Some(container) = event.get_mut(field) {
            path.with(field, |p| {
                each_item(container, p, |item, p| {
                    if let Some(Value::String(text)) = item.get_mut("value") {
                        p.with("value", |p| trim_string(text, 8192, 200, p, meta));
                    }
                    if let Some(Value::Object(trace)) = item.get_mut("stacktrace") {
                        p.with("stacktrace", |p| stacktrace(trace, p, meta));
                    }
                });
            });
        }
    }
    if let Some(Value::Object(trace)) = event.get_mut("stacktrace") {
        path.with("stacktrace", |p| stacktrace(trace, p, meta));
    }
}

fn stacktrace(trace: &mut Map<String, Value>, path: &mut Path, meta: &mut Meta) {
    let Some(Value::Array(frames)) = trace.get_mut("frames") else {
        return;
    };
    path.with("frames", |p| {
        if frames.len() > MAX_FRAMES {
            meta.original_len(p, frames.len());
            frames.drain(..frames.len() - MAX_FRAMES);
        }
        slim(frames);
        for (i, frame) in frames.iter_mut().enumerate() {
            if let Value::Object(frame) = frame
                && let Some(vars) = frame.get_mut("vars")
            {
                p.with(i, |p| p.with("vars", |p| bag(vars, MEDIUM, p, meta)));
            }
        }
    });
}

/// With more than [`SLIM_FRAMES`] frames, the middle ones lose their variables and context
/// lines: library frames first, keeping as many at each end as the allowance leaves, then app
/// frames the same way if still too many.
fn slim(frames: &mut [Value]) {
    if frames.len() <= SLIM_FRAMES {
        return;
    }
    let in_app = |frame: &Value| frame.get("in_app").and_then(Value::as_bool) == Some(true);
    let app: Vec<usize> = (0..frames.len()).filter(|&i| in_app(&frames[i])).collect();
    let other: Vec<usize> = (0..frames.len()).filter(|&i| !in_app(&frames[i])).collect();
    let strip_middle = |frames: &mut [Value], indices: &[usize], keep: usize| {
        let keep_each_end = keep / 2;
        if indices.len() <= keep_each_end * 2 {
            return;
        }
        for &i in &indices[keep_each_end..indices.len() - keep_each_end] {
            if let Value::Object(frame) = &mut frames[i] {
                frame.remove("vars");
                frame.remove("pre_context");
                frame.remove("post_context");
            }
        }
    };
    let other_allowance = SLIM_FRAMES.saturating_sub(app.len());
    strip_middle(frames, &other, other_allowance);
    let kept_other = other.len().min(other_allowance);
    if app.len() + kept_other > SLIM_FRAMES {
        strip_middle(frames, &app, SLIM_FRAMES.saturating_sub(kept_other));
    }
}

/// Cuts a string longer than `limit + allowance` characters to `limit`, ending in `...`.
fn trim_string(text: &mut String, limit: usize, allowance: usize, path: &Path, meta: &mut Meta) {
    let chars = text.chars().count();
    if chars <= limit + allowance {
        return;
    }
    let keep = limit.saturating_sub(3);
    let cut = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    text.truncate(cut);
    text.push_str("...");
    meta.remark(path, "!limit", "s", Some((cut, cut + 3)), Some(chars));
}

/// Cuts free-form data to `size`'s depth and byte budget.
fn bag(value: &mut Value, size: Bag, path: &mut Path, meta: &mut Meta) {
    let mut budget = size.bytes;
    cut(value, size.depth, &mut budget, path, meta);
}

fn cut(value: &mut Value, depth: usize, budget: &mut usize, path: &mut Path, meta: &mut Meta) {
    if depth == 0 && (value.is_object() || value.is_array()) {
        // At the last level, a container is kept as its JSON text.
        *value = Value::String(value.to_string());
    }
    match value {
        Value::String(text) => {
            if text.len() > *budget {
                let chars = text.chars().count();
                let mut cut_at = *budget;
                while !text.is_char_boundary(cut_at) {
                    cut_at -= 1;
                }
                text.truncate(cut_at);
                text.push_str("...");
                meta.remark(path, "!limit", "s", Some((cut_at, cut_at + 3)), Some(chars));
            }
            *budget = budget.saturating_sub(text.len() + 2);
        }
        // Numbers cost what a short one costs; an exact count would format each.
        Value::Number(_) => *budget = budget.saturating_sub(8),
        Value::Bool(_) | Value::Null => *budget = budget.saturating_sub(4),
        Value::Object(map) => {
            let original = map.len();
            let mut over = Vec::new();
            for (key, item) in map.iter_mut() {
                if *budget == 0 {
                    over.push(key.clone());
                    continue;
                }
                *budget = budget.saturating_sub(key.len() + 3);
                path.with(key, |p| cut(item, depth - 1, budget, p, meta));
            }
            if !over.is_empty() {
                for key in &over {
                    map.remove(key);
                }
                meta.original_len(path, original);
            }
        }
        Value::Array(items) => {
            let original = items.len();
            let mut kept = items.len();
            for (i, item) in items.iter_mut().enumerate() {
                if *budget == 0 {
                    kept = i;
                    break;
                }
                *budget = budget.saturating_sub(1);
                path.with(i, |p| cut(item, depth - 1, budget, p, meta));
            }
            if kept < original {
                items.truncate(kept);
                meta.original_len(path, original);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trimmed(event: Value) -> (Value, Value) {
        let Value::Object(mut event) = event else {
            panic!("an object")
        };
        let mut meta = Meta::default();
        trim(&mut event, &mut meta);
        (Value::Object(event), meta.into_value())
    }

    fn frame(i: usize, in_app: bool) -> Value {
        json!({"function": format!("f{i}"), "in_app": in_app, "vars": {"i": i}, "pre_context": ["a"], "context_line": "b", "post_context": ["c"]})
    }

    #[test]
    fn keeps_the_newest_250_frames_and_notes_how_many_there_were() {
        let frames: Vec<Value> = (0..300).map(|i| frame(i, false)).collect();
        let (event, meta) =
            trimmed(json!({"exception": {"values": [{"stacktrace": {"frames": frames}}]}}));
        let frames = event["exception"]["values"][0]["stacktrace"]["frames"]
            .as_array()
            .expect("frames");
        assert_eq!(frames.len(), MAX_FRAMES);
        assert_eq!(frames[0]["function"], "f50");
        assert_eq!(frames[249]["function"], "f299");
        assert_eq!(
            meta["exception"]["values"]["0"]["stacktrace"]["frames"][""],
            json!({"len": 300})
        );
        // The middle frames lost their variables and context, both ends kept them.
        assert!(frames[0].get("vars").is_some());
        assert!(frames[249].get("vars").is_some());
        assert!(frames[125].get("vars").is_none());
        assert!(frames[125].get("pre_context").is_none());
        assert_eq!(frames[125]["context_line"], "b");
    }

    #[test]
    fn app_frames_keep_their_variables_before_library_frames_do() {
        let frames: Vec<Value> = (0..80).map(|i| frame(i, i % 8 == 0)).collect();
        let (event, _) = trimmed(json!({"stacktrace": {"frames": frames}}));
        let frames = event["stacktrace"]["frames"].as_array().expect("frames");
        assert_eq!(frames.len(), 80);
        for frame in frames.iter().filter(|f| f["in_app"] == true) {
            assert!(frame.get("vars").is_some(), "{frame}");
        }
        let stripped = frames.iter().filter(|f| f.get("vars").is_none()).count();
        assert_eq!(stripped, 80 - SLIM_FRAMES);
    }

    #[test]
    fn long_strings_end_in_an_ellipsis_and_meta_says_how_long_they_were() {
        let (event, meta) = trimmed(json!({
            "culprit": "c".repeat(300),
            "exception": {"values": [{"value": "v".repeat(9000)}]},
            "message": "short",
        }));
        assert_eq!(event["culprit"].as_str().map(str::len), Some(200));
        assert!(
            event["culprit"]
                .as_str()
                .is_some_and(|c| c.ends_with("..."))
        );
        assert_eq!(
            meta["culprit"][""],
            json!({"rem": [["!limit", "s", 197, 200]], "len": 300})
        );
        assert_eq!(
            event["exception"]["values"][0]["value"]
                .as_str()
                .map(str::len),
            Some(8192)
        );
        assert_eq!(event["message"], "short");
        assert!(meta.get("message").is_none());
    }

    #[test]
    fn deep_and_large_extra_is_cut_to_its_depth_and_budget() {
        let deep = json!({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}});
        let big: Vec<Value> = (0..10_000).map(|i| json!(format!("item {i}"))).collect();
        let (event, meta) = trimmed(json!({"extra": {"deep": deep, "big": big}}));
        // Depth 7 from each extra value: the container at the last level became its text.
        assert_eq!(
            event["extra"]["deep"]["a"]["b"]["c"]["d"]["e"]["f"],
            json!("{\"g\":{\"h\":1}}")
        );
        let kept = event["extra"]["big"].as_array().expect("array").len();
        assert!(kept < 10_000 && kept > 100, "{kept}");
        assert_eq!(meta["extra"]["big"][""], json!({"len": 10_000}));
        let text = serde_json::to_string(&event["extra"]["big"]).expect("json");
        assert!(text.len() <= LARGER.bytes + 64, "{}", text.len());
    }

    #[test]
    fn multibyte_strings_are_cut_on_character_boundaries() {
        let (event, meta) = trimmed(json!({"logger": "é".repeat(100)}));
        let logger = event["logger"].as_str().expect("string");
        assert_eq!(logger.chars().count(), 64);
        assert_eq!(meta["logger"][""]["len"], 100);
    }
}
