//! An event's `_meta`: what normalization changed, in Sentry's shape, so that a reader knows a
//! value was filtered or cut. The tree mirrors the event (array indices become object keys: `"0"`,
//! `"1"`, ...); the key `""` of a node holds the notes about that value:
//!
//! ```json
//! {"request": {"headers": {"Authorization": {"": {"rem": [["@password:filter", "s", 0, 10]], "len": 21}}}}}
//! ```
//!
//! `rem` lists the rules that changed the value, each as `[rule, kind, start, end]`: kind `s` for
//! a part substituted (the range is where the substitute now sits), `x` for a part removed (no
//! range); `len` is the value's original length (characters of a string, items of an array). See
//! <https://develop.sentry.dev/sdk/data-model/event-payloads/#meta> and Relay's `relay-protocol`
//! `Meta`.

use serde_json::{Map, Value, json};

/// The path of a value inside the event: object keys and array indices, kept in one buffer so
/// that walking an event allocates nothing per value.
#[derive(Debug, Default, Clone)]
pub struct Path {
    text: String,
    ends: Vec<usize>,
}

impl Path {
    /// Runs `f` one level deeper, at `segment`.
    pub fn with<R>(
        &mut self,
        segment: impl std::fmt::Display,
        f: impl FnOnce(&mut Path) -> R,
    ) -> R {
        use std::fmt::Write as _;
        let start = self.text.len();
        let _ = write!(self.text, "{segment}");
        self.ends.push(self.text.len());
        let result = f(self);
        self.ends.pop();
        self.text.truncate(start);
        result
    }

    /// The segments, outermost first.
    fn segments(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.text[start..end])
    }
}

/// `{"values": [...]}` or a bare list: `f` on each object item, at its path.
pub(crate) fn each_item(
    container: &mut Value,
    path: &mut Path,
    mut f: impl FnMut(&mut Map<String, Value>, &mut Path),
) {
    let mut each = |list: &mut Vec<Value>, p: &mut Path| {
        for (i, item) in list.iter_mut().enumerate() {
            if let Value::Object(item) = item {
                p.with(i, |p| f(item, p));
            }
        }
    };
    match container {
        Value::Object(map) => {
            if let Some(Value::Array(list)) = map.get_mut("values") {
                path.with("values", |p| each(list, p));
            }
        }
        Value::Array(list) => each(list, path),
        _ => {}
    }
}

/// The `_meta` tree being built while an event is normalized.
#[derive(Debug, Default)]
pub struct Meta(Map<String, Value>);

impl Meta {
    /// Notes that `rule` changed the value at `path`: `kind` `s` (substituted, at `range` of the
    /// new value) or `x` (removed); `original_len` is recorded the first time.
    pub fn remark(
        &mut self,
        path: &Path,
        rule: &str,
        kind: &str,
        range: Option<(usize, usize)>,
        original_len: Option<usize>,
    ) {
        let notes = self.notes(path);
        let rem = notes
            .entry("rem")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(rem) = rem {
            rem.push(match range {
                Some((start, end)) => json!([rule, kind, start, end]),
                None => json!([rule, kind]),
            });
        }
        if let Some(len) = original_len {
            notes.entry("len").or_insert_with(|| json!(len));
        }
    }

    /// Notes the original length of the value at `path` (an array cut to fewer items).
    pub fn original_len(&mut self, path: &Path, len: usize) {
        self.notes(path).entry("len").or_insert_with(|| json!(len));
    }

    /// Whether nothing was noted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tree, for the event's `_meta` member.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    fn notes(&mut self, path: &Path) -> &mut Map<String, Value> {
        let mut node = &mut self.0;
        for segment in path.segments().chain([""]) {
            let child = node
                .entry(segment)
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            node = match child {
                Value::Object(map) => map,
                _ => unreachable!("made an object above"),
            };
        }
        node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_mirror_the_path_with_indices_as_keys() {
        let mut meta = Meta::default();
        let mut path = Path::default();
        path.with("exception", |p| {
            p.with("values", |p| {
                p.with(0, |p| {
                    p.with("value", |p| {
                        meta.remark(p, "!limit", "s", Some((7, 10)), Some(90))
                    })
                })
            })
        });
        path.with("extra", |p| {
            p.with("password", |p| {
                meta.remark(p, "@password:filter", "s", Some((0, 10)), Some(6))
            })
        });
        assert_eq!(
            meta.into_value(),
            json!({
                "exception": {"values": {"0": {"value": {"": {"rem": [["!limit", "s", 7, 10]], "len": 90}}}}},
                "extra": {"password": {"": {"rem": [["@password:filter", "s", 0, 10]], "len": 6}}},
            })
        );
    }

    #[test]
    fn a_second_remark_keeps_the_first_length() {
        let mut meta = Meta::default();
        let mut path = Path::default();
        path.with("message", |p| {
            meta.remark(p, "@creditcard:filter", "s", Some((4, 14)), Some(30));
            meta.remark(p, "!limit", "s", Some((20, 23)), Some(24));
        });
        assert_eq!(
            meta.into_value(),
            json!({"message": {"": {"rem": [["@creditcard:filter", "s", 4, 14], ["!limit", "s", 20, 23]], "len": 30}}})
        );
    }
}
