//! Fingerprints: client fingerprints (`event.fingerprint`), per-project server-side fingerprint
//! rules, and Shrike's built-in rules.
//!
//! A fingerprint is a list of values. `{{ default }}` stands for the values the default grouping
//! would use (a "hybrid" fingerprint); other variables (`{{ type }}`, `{{ transaction }}`,
//! `{{ tags.NAME }}`, ...) are replaced by the event's values. Server rules use Sentry's syntax
//! (<https://docs.sentry.io/concepts/data-management/event-grouping/fingerprint-rules/>):
//!
//! ```text
//! # matchers -> fingerprint values
//! error.type:DatabaseUnavailable -> system-down
//! message:"*timed out*" level:error -> timeout {{ transaction }}
//! ```
//!
//! The first matching rule wins: project rules before built-in ones. A matching rule replaces
//! the client's fingerprint.

use crate::platform::family;
use regex::Regex;
use shrike_protocol::Event;
use shrike_protocol::event::Frame;

/// A fingerprint rule that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("fingerprint rule {line}: {message}")]
pub struct FingerprintRuleError {
    /// 1-based line (or list index) of the rule.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone)]
struct Matcher {
    key: String,
    negated: bool,
    raw: String,
    pattern: Regex,
}

/// One server-side rule.
#[derive(Debug, Clone)]
pub struct FingerprintRule {
    matchers: Vec<Matcher>,
    /// The fingerprint the rule assigns.
    pub fingerprint: Vec<String>,
    /// Whether the rule is one of Shrike's built-in rules.
    pub builtin: bool,
}

impl FingerprintRule {
    fn new(
        matchers: Vec<Matcher>,
        fingerprint: Vec<String>,
        builtin: bool,
    ) -> Result<Self, String> {
        if matchers.is_empty() || fingerprint.is_empty() {
            return Err("a rule needs matchers and a fingerprint".into());
        }
        Ok(FingerprintRule {
            matchers,
            fingerprint,
            builtin,
        })
    }
}

/// An ordered list of fingerprint rules.
#[derive(Debug, Clone, Default)]
pub struct FingerprintRules {
    rules: Vec<FingerprintRule>,
}

/// Shrike's built-in rules: lazy-loaded JavaScript chunks that fail to load are one problem
/// (network or deploy), whichever chunk it was.
const BUILTIN: &str = r#"
family:javascript type:ChunkLoadError -> chunkloaderror
family:javascript value:"ChunkLoadError*" -> chunkloaderror
"#;

impl FingerprintRules {
    /// Parses rules in Sentry's text syntax.
    pub fn parse(text: &str) -> Result<Self, FingerprintRuleError> {
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            rules.push(
                parse_rule(line, false).map_err(|message| FingerprintRuleError {
                    line: index + 1,
                    message,
                })?,
            );
        }
        Ok(FingerprintRules { rules })
    }

    /// Reads rules in the JSON shape Sentry stores them in:
    /// `[{"matchers": [["type", "X"]], "fingerprint": ["x"]}]`.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, FingerprintRuleError> {
        let mut rules = Vec::new();
        for (index, rule) in value.as_array().into_iter().flatten().enumerate() {
            let error = |message: &str| FingerprintRuleError {
                line: index + 1,
                message: message.to_owned(),
            };
            let mut matchers = Vec::new();
            for pair in rule["matchers"].as_array().into_iter().flatten() {
                let (Some(key), Some(value)) = (pair[0].as_str(), pair[1].as_str()) else {
                    return Err(error("a matcher is a [key, value] pair"));
                };
                matchers.push(matcher(key, value).map_err(|m| error(&m))?);
            }
            let fingerprint: Vec<String> = rule["fingerprint"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            rules.push(FingerprintRule::new(matchers, fingerprint, false).map_err(|m| error(&m))?);
        }
        Ok(FingerprintRules { rules })
    }

    /// Shrike's built-in rules.
    pub fn builtin() -> Self {
        let rules = BUILTIN
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .filter_map(|line| parse_rule(line, true).ok())
            .collect();
        FingerprintRules { rules }
    }

    /// These rules followed by `other`'s (these win).
    pub fn chain(&self, other: &FingerprintRules) -> Self {
        FingerprintRules {
            rules: self.rules.iter().chain(&other.rules).cloned().collect(),
        }
    }

    /// The first rule matching the event.
    pub fn matching(&self, event: &Event) -> Option<&FingerprintRule> {
        self.rules
            .iter()
            .find(|rule| rule.matchers.iter().all(|m| m.matches(event)))
    }
}

fn parse_rule(line: &str, builtin: bool) -> Result<FingerprintRule, String> {
    let (left, right) = line
        .split_once("->")
        .ok_or_else(|| "expected `matchers -> fingerprint`".to_owned())?;
    let mut matchers = Vec::new();
    for token in tokens(left)? {
        let (negated, token) = match token.strip_prefix('!') {
            Some(rest) => (true, rest.to_owned()),
            None => (false, token),
        };
        let (key, value) = token
            .split_once(':')
            .ok_or_else(|| format!("`{token}` is not a matcher (key:value)"))?;
        let mut m = matcher(key, value)?;
        m.negated = negated;
        matchers.push(m);
    }
    let mut fingerprint = Vec::new();
    for token in tokens(right)? {
        // `title="..."` and other attributes do not change grouping.
        if token.contains('=') && !token.starts_with("{{") {
            continue;
        }
        fingerprint.push(token);
    }
    FingerprintRule::new(matchers, fingerprint, builtin)
}

/// Splits on whitespace and commas; quotes and `{{ ... }}` keep their contents together.
fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    Some('\\') => current.extend(chars.next()),
                    Some('"') => break,
                    Some(other) => current.push(other),
                    None => return Err("unclosed quote".into()),
                }
            },
            '{' if chars.peek() == Some(&'{') => {
                current.push_str("{{");
                chars.next();
                loop {
                    match chars.next() {
                        Some('}') if chars.peek() == Some(&'}') => {
                            chars.next();
                            current.push_str("}}");
                            break;
                        }
                        Some(other) => current.push(other),
                        None => return Err("unclosed `{{`".into()),
                    }
                }
            }
            c if c.is_whitespace() || c == ',' => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

fn matcher(key: &str, value: &str) -> Result<Matcher, String> {
    let key = match key {
        "error.type" => "type",
        "error.value" => "value",
        "stack.function" => "function",
        "stack.module" => "module",
        "stack.abs_path" | "stack.path" | "abs_path" => "path",
        "stack.package" => "package",
        "sdk.name" => "sdk",
        other => other,
    };
    let known = [
        "type", "value", "message", "logger", "level", "module", "function", "path", "package",
        "family", "app", "sdk", "release",
    ];
    if !known.contains(&key) && !key.starts_with("tags.") {
        return Err(format!("unknown matcher `{key}`"));
    }
    let case_insensitive = matches!(key, "path" | "package" | "level");
    let mut pattern = String::from(if case_insensitive { "(?si)^" } else { "(?s)^" });
    for c in value.chars() {
        match c {
            '*' => pattern.push_str(".*"),
            '?' => pattern.push('.'),
            c => pattern.push_str(&regex::escape(&c.to_string())),
        }
    }
    pattern.push('$');
    Ok(Matcher {
        key: key.to_owned(),
        negated: false,
        raw: value.to_owned(),
        pattern: Regex::new(&pattern).map_err(|e| e.to_string())?,
    })
}

fn all_frames(event: &Event) -> impl Iterator<Item = &Frame> {
    event
        .exception
        .iter()
        .filter_map(|e| e.stacktrace.as_ref())
        .chain(event.stacktrace.as_ref())
        .chain(event.threads.iter().filter_map(|t| t.stacktrace.as_ref()))
        .flat_map(|s| s.frames.iter())
}

impl Matcher {
    fn matches(&self, event: &Event) -> bool {
        let is = |v: &str| self.pattern.is_match(v);
        let positive = match self.key.as_str() {
            "type" => event
                .exception
                .iter()
                .any(|e| is(e.ty.as_deref().unwrap_or(""))),
            "value" => event
                .exception
                .iter()
                .any(|e| is(e.value.as_deref().unwrap_or(""))),
            "message" => {
                message(event).is_some_and(is)
                    || event
                        .exception
                        .iter()
                        .any(|e| e.value.as_deref().is_some_and(is))
            }
            "logger" => is(event.logger.as_deref().unwrap_or("")),
            "level" => is(event.level.as_deref().unwrap_or("error")),
            "sdk" => is(event
                .sdk
                .as_ref()
                .and_then(|s| s.name.as_deref())
                .unwrap_or("")),
            "release" => is(event.release.as_deref().unwrap_or("")),
            "family" => {
                let f = family(event.platform.as_deref().unwrap_or("other"));
                self.raw.split(',').any(|w| w == "all" || w == f)
            }
            "module" => all_frames(event).any(|f| f.module.as_deref().is_some_and(is)),
            "function" => all_frames(event).any(|f| f.function.as_deref().is_some_and(is)),
            "package" => all_frames(event).any(|f| f.package.as_deref().is_some_and(is)),
            "path" => all_frames(event).any(|f| {
                f.abs_path.as_deref().is_some_and(is) || f.filename.as_deref().is_some_and(is)
            }),
            "app" => {
                let want = matches!(self.raw.to_lowercase().as_str(), "yes" | "true" | "1");
                all_frames(event).any(|f| f.in_app.unwrap_or(false) == want)
            }
            key => key
                .strip_prefix("tags.")
                .and_then(|tag| event.tags.iter().find(|(k, _)| k == tag))
                .is_some_and(|(_, v)| is(v)),
        };
        positive != self.negated
    }
}

fn message(event: &Event) -> Option<&str> {
    event
        .logentry
        .as_ref()
        .and_then(|l| l.formatted.as_deref().or(l.message.as_deref()))
        .or(event.message.as_deref())
}

/// Whether a fingerprint entry is `{{ default }}`.
pub fn is_default(value: &str) -> bool {
    variable(value) == Some("default")
}

fn variable(value: &str) -> Option<&str> {
    value
        .trim()
        .strip_prefix("{{")
        .and_then(|v| v.strip_suffix("}}"))
        .map(str::trim)
}

/// Replaces the variables of one fingerprint entry (all but `{{ default }}`) with the event's
/// values, or a `<no-...>` placeholder when the event has none.
pub fn resolve(value: &str, event: &Event) -> String {
    let Some(name) = variable(value).filter(|n| *n != "default") else {
        return value.to_owned();
    };
    let last = event.exception.last();
    let frame = all_frames(event)
        .filter(|f| f.in_app == Some(true))
        .last()
        .or_else(|| all_frames(event).last());
    let found: Option<String> = match name {
        "transaction" => event.transaction.clone(),
        "message" => message(event).map(str::to_owned),
        "type" | "error.type" => last.and_then(|e| e.ty.clone()),
        "value" | "error.value" => last.and_then(|e| e.value.clone()),
        "function" | "stack.function" => frame.and_then(|f| f.function.clone()),
        "module" | "stack.module" => frame.and_then(|f| f.module.clone()),
        "package" | "stack.package" => frame.and_then(|f| f.package.clone()),
        "level" => Some(event.level.clone().unwrap_or_else(|| "error".into())),
        "logger" => event.logger.clone(),
        "release" => event.release.clone(),
        other => match other.strip_prefix("tags.") {
            Some(tag) => {
                return event
                    .tags
                    .iter()
                    .find(|(k, _)| k == tag)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| format!("<no-value-for-tag-{tag}>"));
            }
            None => return value.to_owned(),
        },
    };
    let placeholder = name.rsplit('.').next().unwrap_or(name);
    found
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("<no-{placeholder}>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Event {
        Event::parse(json.as_bytes()).expect("event")
    }

    #[test]
    fn text_rules_match_and_resolve() {
        let rules = FingerprintRules::parse(
            "# comment\nerror.type:DatabaseUnavailable -> system-down\n\
             message:\"*timed out*\" -> timeout, {{ transaction }} title=\"Timeouts\"\n",
        )
        .expect("parses");
        let e = event(r#"{"exception": [{"type": "DatabaseUnavailable"}]}"#);
        assert_eq!(
            rules.matching(&e).map(|r| r.fingerprint.clone()),
            Some(vec!["system-down".to_owned()])
        );
        let e = event(r#"{"message": "request timed out", "transaction": "/api"}"#);
        let rule = rules.matching(&e).expect("matches");
        assert_eq!(rule.fingerprint, ["timeout", "{{ transaction }}"]);
        assert_eq!(resolve(&rule.fingerprint[1], &e), "/api");
        assert!(rules.matching(&event(r#"{"message": "fine"}"#)).is_none());
        assert!(FingerprintRules::parse("type:X").is_err());
    }

    #[test]
    fn builtin_chunk_load_errors() {
        let builtin = FingerprintRules::builtin();
        let e = event(r#"{"platform": "javascript", "exception": [{"type": "ChunkLoadError"}]}"#);
        assert_eq!(builtin.matching(&e).map(|r| r.builtin), Some(true));
        let python = event(r#"{"platform": "python", "exception": [{"type": "ChunkLoadError"}]}"#);
        assert!(builtin.matching(&python).is_none());
    }

    #[test]
    fn variables_fall_back_to_placeholders() {
        let e = event(r#"{"tags": {"tenant": "a"}}"#);
        assert_eq!(resolve("{{ tags.tenant }}", &e), "a");
        assert_eq!(resolve("{{ tags.other }}", &e), "<no-value-for-tag-other>");
        assert_eq!(resolve("{{ transaction }}", &e), "<no-transaction>");
        assert_eq!(resolve("plain", &e), "plain");
        assert!(is_default("{{default}}"));
    }
}
