//! Secrets scrubbed before an event is stored: Sentry's default data scrubbing ("Data Scrubber"
//! with "Use Default Scrubbers"), facts from Relay's `relay-pii` (`regexes.rs`, `convert.rs`).
//!
//! Only the parts of an event that carry user data are scrubbed (Relay's `pii = true` fields):
//! `extra`, `contexts`, `request` (data, query string, headers, cookies, env), `user.data`,
//! breadcrumbs' message and data, and each frame's `vars`. Frame paths, exception values and the
//! log message are not.
//!
//! - A value under a key that looks secret (`password`, `secret`, `passwd`, `api_key`, `auth`,
//!   `credentials`, `token`, ..., or one of the project's sensitive fields) becomes `[Filtered]`
//!   if it is a string or number, and is removed (`null`) if it is an object or array.
//! - The `Authorization` and `Cookie` headers, and session and CSRF cookies, become `[Filtered]`.
//! - In any string: credit-card numbers, PEM key bodies, the password of a URL
//!   (`pg://user:[Filtered]@host`), bearer tokens, US social security numbers and IBANs.
//! - A key in the project's safe fields (case-insensitive) keeps its own value.
//!
//! Every change is noted in the event's `_meta` ([`Meta`]).

use crate::meta::{Meta, Path, each_item};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::LazyLock;

/// What a scrubbed value becomes.
pub const FILTERED: &str = "[Filtered]";

/// A project's scrubbing settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrubSettings {
    /// Scrub at all (Sentry's "Data Scrubber"; on by default).
    pub enabled: bool,
    /// More keys whose values are filtered (matched case-insensitively anywhere in a key).
    pub sensitive_fields: Vec<String>,
    /// Keys whose own values are never filtered (case-insensitive, whole key).
    pub safe_fields: Vec<String>,
}

impl Default for ScrubSettings {
    fn default() -> Self {
        ScrubSettings {
            enabled: true,
            sensitive_fields: Vec::new(),
            safe_fields: Vec::new(),
        }
    }
}

/// `[scrubbing]`: the settings of every project (`[scrubbing.default]`) and of projects with their
/// own (`[scrubbing.projects.<id>]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrubbingConfig {
    /// Every project's settings unless it has its own.
    pub default: ScrubSettings,
    /// Project id → its settings.
    pub projects: std::collections::BTreeMap<String, ScrubSettings>,
}

impl ScrubbingConfig {
    /// A scrubber per project; an error names a key that is not a project id.
    pub fn scrubbers(&self) -> Result<Scrubbers, String> {
        let mut projects = std::collections::HashMap::new();
        for (id, settings) in &self.projects {
            let project: u64 = id
                .parse()
                .map_err(|_| format!("scrubbing.projects.{id}: not a project id"))?;
            projects.insert(project, Scrubber::new(settings));
        }
        Ok(Scrubbers {
            default: Scrubber::new(&self.default),
            projects,
        })
    }
}

/// Every project's scrubber.
#[derive(Debug, Default)]
pub struct Scrubbers {
    default: Scrubber,
    projects: std::collections::HashMap<u64, Scrubber>,
}

impl Scrubbers {
    /// The scrubber of `project`.
    pub fn get(&self, project: u64) -> &Scrubber {
        self.projects.get(&project).unwrap_or(&self.default)
    }
}

/// Keys whose values are secrets (Relay's `PASSWORD_KEY_REGEX`, with `token` anywhere in a key).
static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)password|secret|passwd|api[-_]?key|auth|credentials|mysql_pwd|private[-_]?key|token|^otp$|^two[-_]factor$",
    )
    .expect("valid")
});

/// Cookies holding a session or a CSRF token (Relay's list of sensitive cookie names).
const SESSION_COOKIES: &[&str] = &[
    "sentrysid",
    "sudo",
    "su",
    "session",
    "__session",
    "sessionid",
    "user_session",
    "symfony",
    "phpsessid",
    "fasthttpsessionid",
    "mysession",
    "irissessionid",
    "_vercel_jwt",
    "csrf",
    "xsrf",
    "_xsrf",
    "_csrf",
    "csrf-token",
    "csrf_token",
    "csrftoken",
    "xsrf-token",
    "xsrf_token",
    "fastcsrf",
    "_iris_csrf",
];

/// A pattern found inside strings: the rule named in `_meta`, the regex, and which group is
/// replaced (0: the whole match).
struct ValueRule {
    rule: &'static str,
    regex: Regex,
    group: usize,
    /// A cheap test every string with a match passes, run before the regex.
    may_match: fn(&str) -> bool,
}

fn digits(text: &str) -> usize {
    text.bytes().filter(u8::is_ascii_digit).count()
}

static VALUE_RULES: LazyLock<Vec<ValueRule>> = LazyLock::new(|| {
    let rule = |rule, pattern: &str, group, may_match| ValueRule {
        rule,
        regex: Regex::new(pattern).expect("valid"),
        group,
        may_match,
    };
    vec![
        // Vendor prefixes and a 15- or 16-digit length, dashes or spaces between digits.
        rule(
            "@creditcard:filter",
            r"\b(?:3[47]\d|4\d{3}|5[1-5]\d\d|65\d\d|6011)(?:[-\s]?\d){12}\b",
            0,
            |t| digits(t) >= 15,
        ),
        rule(
            "@pemkey:filter",
            r"(?s)-----BEGIN[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----[\t ]*\r?\n?(.+?)\r?\n?-----END[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----",
            1,
            |t| t.contains("-----BEGIN"),
        ),
        rule(
            "@urlauth:legacy",
            r"\b(?:[a-zA-Z0-9+.-]+:)?//[a-zA-Z0-9%_.-]+:([a-zA-Z0-9%_.~!$&'()*+,;=-]+)@",
            1,
            |t| t.contains("//") && t.contains('@'),
        ),
        rule("@bearer:filter", r"(?i)\bBearer\s+(\S+)", 1, |t| {
            t.as_bytes()
                .windows(6)
                .any(|w| w.eq_ignore_ascii_case(b"bearer"))
        }),
        rule("@usssn:filter", r"\b\d{3}-\d{2}-\d{4}\b", 0, |t| {
            t.contains('-') && digits(t) >= 9
        }),
        rule(
            "@iban:filter",
            r"\b(?:AT|BE|BG|CH|CY|CZ|DE|DK|EE|ES|FI|FR|GB|GR|HR|HU|IE|IS|IT|LI|LT|LU|LV|MT|NL|NO|PL|PT|RO|SE|SI|SK)\d{2}[a-zA-Z0-9]{11,29}\b",
            0,
            |t| t.len() >= 15 && digits(t) >= 2,
        ),
    ]
});

/// Scrubs an event (a JSON object as an SDK sent it) with a project's settings.
#[derive(Debug)]
pub struct Scrubber {
    enabled: bool,
    sensitive: Vec<String>,
    safe: Vec<String>,
}

impl Default for Scrubber {
    fn default() -> Self {
        Scrubber::new(&ScrubSettings::default())
    }
}

impl Scrubber {
    /// A scrubber with `settings`.
    pub fn new(settings: &ScrubSettings) -> Self {
        let lower = |fields: &[String]| {
            fields
                .iter()
                .map(|f| f.trim().to_lowercase())
                .filter(|f| !f.is_empty())
                .collect()
        };
        Scrubber {
            enabled: settings.enabled,
            sensitive: lower(&settings.sensitive_fields),
            safe: lower(&settings.safe_fields),
        }
    }

    /// Scrubs the parts of `event` that carry user data, noting each change in `meta`.
    pub fn scrub(&self, event: &mut Map<String, Value>, meta: &mut Meta) {
        if !self.enabled {
            return;
        }
        let mut path = Path::default();
        for key in ["extra", "contexts"] {
            if let Some(value) = event.get_mut(key) {
                path.with(key, |p| self.any(value, p, meta));
            }
        }
        if let Some(Value::Object(user)) = event.get_mut("user") {
            path.with("user", |p| {
                if let Some(data) = user.get_mut("data") {
                    p.with("data", |p| self.any(data, p, meta));
                }
            });
        }
        if let Some(Value::Object(request)) = event.get_mut("request") {
            path.with("request", |p| self.request(request, p, meta));
        }
        if let Some(breadcrumbs) = event.get_mut("breadcrumbs") {
            path.with("breadcrumbs", |p| {
                each_item(breadcrumbs, p, |crumb, p| {
                    for key in ["message", "data"] {
                        if let Some(value) = crumb.get_mut(key) {
                            p.with(key, |p| self.any(value, p, meta));
                        }
                    }
                });
            });
        }
        for key in ["exception", "threads"] {
            if let Some(container) = event.get_mut(key) {
                path.with(key, |p| {
                    each_item(container, p, |item, p| {
                        if let Some(Value::Object(trace)) = item.get_mut("stacktrace") {
                            p.with("stacktrace", |p| self.frames(trace, p, meta));
                        }
                    });
                });
            }
        }
        if let Some(Value::Object(trace)) = event.get_mut("stacktrace") {
            path.with("stacktrace", |p| self.frames(trace, p, meta));
        }
    }

    fn frames(&self, trace: &mut Map<String, Value>, path: &mut Path, meta: &mut Meta) {
        let Some(Value::Array(frames)) = trace.get_mut("frames") else {
            return;
        };
        path.with("frames", |p| {
            for (i, frame) in frames.iter_mut().enumerate() {
                if let Value::Object(frame) = frame
                    && let Some(vars) = frame.get_mut("vars")
                {
                    p.with(i, |p| p.with("vars", |p| self.any(vars, p, meta)));
                }
            }
        });
    }

    fn request(&self, request: &mut Map<String, Value>, path: &mut Path, meta: &mut Meta) {
        if let Some(Value::String(url)) = request.get_mut("url") {
            path.with("url", |p| self.url(url, p, meta));
        }
        for key in ["data", "env", "query_string"] {
            if let Some(value) = request.get_mut(key) {
                path.with(key, |p| {
                    if let Value::String(query) = value
                        && key == "query_string"
                    {
                        self.query_string(query, p, meta);
                    } else {
                        self.any(value, p, meta);
                    }
                });
            }
        }
        if let Some(headers) = request.get_mut("headers") {
            path.with("headers", |p| {
                self.pairs(headers, p, meta, &|key| {
                    key.eq_ignore_ascii_case("cookie") || key.eq_ignore_ascii_case("set-cookie")
                })
            });
        }
        if let Some(cookies) = request.get_mut("cookies") {
            path.with("cookies", |p| {
                if let Value::String(cookies) = cookies {
                    self.cookie_string(cookies, p, meta);
                } else {
                    self.pairs(cookies, p, meta, &|key| {
                        SESSION_COOKIES.iter().any(|c| key.eq_ignore_ascii_case(c))
                    });
                }
            });
        }
    }

    /// Any value, with no key filtered whole.
    fn any(&self, value: &mut Value, path: &mut Path, meta: &mut Meta) {
        self.pairs(value, path, meta, &|_| false);
    }

    /// Any value: an object by key and a list of `[key, value]` pairs by their keys (the values
    /// under keys `filter_key` accepts filtered whole, `@anything:filter`, the rest scrubbed as
    /// usual), other lists item by item, strings by their contents.
    fn pairs(
        &self,
        value: &mut Value,
        path: &mut Path,
        meta: &mut Meta,
        filter_key: &dyn Fn(&str) -> bool,
    ) {
        match value {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    path.with(key, |p| self.keyed(key, value, p, meta, filter_key));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.with(i, |p| match pair(item) {
                        Some((key, value)) => {
                            p.with(1, |p| self.keyed(&key, value, p, meta, filter_key))
                        }
                        None => self.any(item, p, meta),
                    });
                }
            }
            Value::String(text) => self.string(text, path, meta),
            _ => {}
        }
    }

    /// The value of `key` in a container whose keys `filter_key` accepts are filtered whole.
    fn keyed(
        &self,
        key: &str,
        value: &mut Value,
        path: &mut Path,
        meta: &mut Meta,
        filter_key: &dyn Fn(&str) -> bool,
    ) {
        if filter_key(key) && !self.is_safe(key) {
            filter(value, path, meta, "@anything:filter");
        } else {
            self.member(key, value, path, meta);
        }
    }

    /// The value of `key`.
    fn member(&self, key: &str, value: &mut Value, path: &mut Path, meta: &mut Meta) {
        if self.is_safe(key) {
            // Only the key's own value is safe: what it holds is scrubbed as usual.
            if !matches!(value, Value::String(_)) {
                self.any(value, path, meta);
            }
            return;
        }
        if let Some(rule) = self.key_rule(key) {
            filter(value, path, meta, rule);
        } else {
            self.any(value, path, meta);
        }
    }

    fn key_rule(&self, key: &str) -> Option<&'static str> {
        if SECRET_KEY.is_match(key) {
            return Some("@password:filter");
        }
        let key = key.to_lowercase();
        self.sensitive
            .iter()
            .any(|field| key.contains(field.as_str()))
            .then_some("strip-fields")
    }

    fn is_safe(&self, key: &str) -> bool {
        self.safe.iter().any(|safe| key.eq_ignore_ascii_case(safe))
    }

    /// A string: filtered whole when it names a secret, else the secrets inside it replaced.
    fn string(&self, text: &mut String, path: &mut Path, meta: &mut Meta) {
        if text.len() < 4 {
            return;
        }
        if SECRET_KEY.is_match(text) {
            filter_string(text, path, meta, "@password:filter");
            return;
        }
        let original = text.chars().count();
        self.patterns(text, path, meta, original);
    }

    /// Replaces what [`VALUE_RULES`] find in `text` (`original` characters long before any change).
    fn patterns(&self, text: &mut String, path: &mut Path, meta: &mut Meta, original: usize) {
        for rule in VALUE_RULES.iter() {
            if !(rule.may_match)(text) || !rule.regex.is_match(text) {
                continue;
            }
            let mut out = String::with_capacity(text.len());
            let mut last = 0;
            let mut ranges = Vec::new();
            for captures in rule.regex.captures_iter(text) {
                let Some(part) = captures.get(rule.group) else {
                    continue;
                };
                out.push_str(&text[last..part.start()]);
                ranges.push((out.len(), out.len() + FILTERED.len()));
                out.push_str(FILTERED);
                last = part.end();
            }
            out.push_str(&text[last..]);
            *text = out;
            for range in ranges {
                meta.remark(path, rule.rule, "s", Some(range), Some(original));
            }
        }
    }

    /// A URL: its password and the secret values of its query string filtered; a path that
    /// happens to contain `auth` or `token` stays.
    fn url(&self, url: &mut String, path: &mut Path, meta: &mut Meta) {
        let original = url.chars().count();
        if let Some(start) = url.find('?') {
            let mut query = url[start + 1..].to_owned();
            let changed = self.separated(&mut query, '&', |_| false);
            url.truncate(start + 1);
            url.push_str(&query);
            for (rule, from, to) in changed {
                let range = (start + 1 + from, start + 1 + to);
                meta.remark(path, rule, "s", Some(range), Some(original));
            }
        }
        self.patterns(url, path, meta, original);
    }

    /// `a=1&password=2`: the values of secret keys filtered, then patterns replaced.
    fn query_string(&self, query: &mut String, path: &mut Path, meta: &mut Meta) {
        let original = query.chars().count();
        for (rule, from, to) in self.separated(query, '&', |_| false) {
            meta.remark(path, rule, "s", Some((from, to)), Some(original));
        }
        self.patterns(query, path, meta, original);
    }

    /// `sessionid=...; theme=dark`: session cookies and secret keys filtered.
    fn cookie_string(&self, cookies: &mut String, path: &mut Path, meta: &mut Meta) {
        let original = cookies.chars().count();
        let changed = self.separated(cookies, ';', |key| {
            SESSION_COOKIES.iter().any(|c| key.eq_ignore_ascii_case(c))
        });
        for (rule, from, to) in changed {
            meta.remark(path, rule, "s", Some((from, to)), Some(original));
        }
    }

    /// A string of `key=value` parts: the values of secret keys (and of keys `filter_key`
    /// accepts) are replaced in place and the string keeps its shape. Returns each replaced
    /// range of the new string with its rule.
    fn separated(
        &self,
        text: &mut String,
        separator: char,
        filter_key: impl Fn(&str) -> bool,
    ) -> Vec<(&'static str, usize, usize)> {
        let mut out = String::with_capacity(text.len());
        let mut changed = Vec::new();
        for (i, part) in text.split(separator).enumerate() {
            if i > 0 {
                out.push(separator);
            }
            let Some((key, value)) = part.split_once('=') else {
                out.push_str(part);
                continue;
            };
            let name = key.trim();
            let rule = if self.is_safe(name) || value.is_empty() {
                None
            } else if filter_key(name) {
                Some("@anything:filter")
            } else {
                self.key_rule(name)
            };
            out.push_str(key);
            out.push('=');
            match rule {
                Some(rule) => {
                    changed.push((rule, out.len(), out.len() + FILTERED.len()));
                    out.push_str(FILTERED);
                }
                None => out.push_str(value),
            }
        }
        if !changed.is_empty() {
            *text = out;
        }
        changed
    }
}

/// `[key, value]` with a string key.
fn pair(item: &mut Value) -> Option<(String, &mut Value)> {
    match item {
        Value::Array(pair) if pair.len() == 2 => {
            let key = pair[0].as_str()?.to_owned();
            Some((key, &mut pair[1]))
        }
        _ => None,
    }
}

/// Filters a value found under a secret key: strings and numbers become `[Filtered]`, objects and
/// arrays are removed; booleans, null and empty or placeholder strings stay.
fn filter(value: &mut Value, path: &mut Path, meta: &mut Meta, rule: &str) {
    match value {
        Value::String(text) => filter_string(text, path, meta, rule),
        Value::Number(number) => {
            let len = number.to_string().len();
            *value = Value::String(FILTERED.to_owned());
            meta.remark(path, rule, "s", Some((0, FILTERED.len())), Some(len));
        }
        Value::Object(_) | Value::Array(_) => {
            *value = Value::Null;
            meta.remark(path, rule, "x", None, None);
        }
        Value::Bool(_) | Value::Null => {}
    }
}

fn filter_string(text: &mut String, path: &mut Path, meta: &mut Meta, rule: &str) {
    if matches!(
        text.as_str(),
        "" | "true" | "false" | "null" | "undefined" | FILTERED
    ) {
        return;
    }
    let len = text.chars().count();
    *text = FILTERED.to_owned();
    meta.remark(path, rule, "s", Some((0, FILTERED.len())), Some(len));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scrubbed(event: Value, settings: &ScrubSettings) -> (Value, Value) {
        let Value::Object(mut event) = event else {
            panic!("an object")
        };
        let mut meta = Meta::default();
        Scrubber::new(settings).scrub(&mut event, &mut meta);
        (Value::Object(event), meta.into_value())
    }

    #[test]
    fn secret_keys_in_vars_extra_and_headers_are_filtered_and_noted() {
        let (event, meta) = scrubbed(
            json!({
                "exception": {"values": [{"type": "E", "value": "password wrong", "stacktrace": {"frames": [
                    {"filename": "app.py", "vars": {"password": "hunter2", "user": "ann", "retries": 3, "api_key": 12345}}
                ]}}]},
                "extra": {"DB_PASSWORD": "x1", "nested": {"client_secret": {"a": 1}}, "flag": true},
                "request": {"headers": [["Authorization", "Basic YWxhZGRpbjpvcGVu"], ["Cookie", "theme=dark"], ["Accept", "text/html"]]},
            }),
            &ScrubSettings::default(),
        );
        let frame = &event["exception"]["values"][0]["stacktrace"]["frames"][0];
        assert_eq!(frame["vars"]["password"], FILTERED);
        assert_eq!(frame["vars"]["api_key"], FILTERED);
        assert_eq!(frame["vars"]["user"], "ann");
        assert_eq!(frame["vars"]["retries"], 3);
        assert_eq!(
            event["exception"]["values"][0]["value"], "password wrong",
            "exception values are not scrubbed"
        );
        assert_eq!(event["extra"]["DB_PASSWORD"], FILTERED);
        assert_eq!(event["extra"]["nested"]["client_secret"], Value::Null);
        assert_eq!(event["extra"]["flag"], true);
        assert_eq!(
            event["request"]["headers"],
            json!([
                ["Authorization", FILTERED],
                ["Cookie", FILTERED],
                ["Accept", "text/html"]
            ])
        );
        assert_eq!(
            meta["exception"]["values"]["0"]["stacktrace"]["frames"]["0"]["vars"]["password"][""],
            json!({"rem": [["@password:filter", "s", 0, 10]], "len": 7})
        );
        assert_eq!(
            meta["extra"]["nested"]["client_secret"][""],
            json!({"rem": [["@password:filter", "x"]]})
        );
        assert_eq!(
            meta["request"]["headers"]["1"]["1"][""]["rem"][0][0],
            "@anything:filter"
        );
    }

    #[test]
    fn secrets_inside_strings_are_replaced_where_they_are() {
        let (event, meta) = scrubbed(
            json!({"extra": {
                "dsn": "postgres://app:s3cr3t@db:5432/main",
                "card": "paid with 4111 1111 1111 1111 today",
                "key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----",
                "header": "Bearer abc.def.ghi",
                "plain": "nothing here, 1234",
            }}),
            &ScrubSettings::default(),
        );
        assert_eq!(
            event["extra"]["dsn"],
            "postgres://app:[Filtered]@db:5432/main"
        );
        assert_eq!(event["extra"]["card"], "paid with [Filtered] today");
        assert_eq!(
            event["extra"]["key"],
            "-----BEGIN RSA PRIVATE KEY-----\n[Filtered]\n-----END RSA PRIVATE KEY-----"
        );
        assert_eq!(event["extra"]["header"], "Bearer [Filtered]");
        assert_eq!(event["extra"]["plain"], "nothing here, 1234");
        assert_eq!(
            meta["extra"]["dsn"][""],
            json!({"rem": [["@urlauth:legacy", "s", 15, 25]], "len": 34})
        );
        assert_eq!(meta["extra"]["card"][""]["rem"][0][0], "@creditcard:filter");
        assert!(meta["extra"].get("plain").is_none());
    }

    #[test]
    fn cookies_query_strings_and_breadcrumbs() {
        let (event, _) = scrubbed(
            json!({
                "request": {
                    "cookies": "sessionid=abc123; theme=dark; csrftoken=zz",
                    "query_string": "page=2&access_token=xyz",
                    "data": {"username": "ann", "password": "pw"},
                },
                "breadcrumbs": {"values": [{"message": "GET /", "data": {"auth_header": "x"}}]},
            }),
            &ScrubSettings::default(),
        );
        assert_eq!(
            event["request"]["cookies"],
            "sessionid=[Filtered]; theme=dark; csrftoken=[Filtered]"
        );
        assert_eq!(
            event["request"]["query_string"],
            "page=2&access_token=[Filtered]"
        );
        assert_eq!(event["request"]["data"]["password"], FILTERED);
        assert_eq!(event["request"]["data"]["username"], "ann");
        assert_eq!(
            event["breadcrumbs"]["values"][0]["data"]["auth_header"],
            FILTERED
        );
    }

    #[test]
    fn project_settings_add_sensitive_fields_protect_safe_ones_or_turn_it_off() {
        let event = json!({"extra": {"iban_note": "x", "my_token": "t", "customer_ref": "c1"}});
        let settings = ScrubSettings {
            enabled: true,
            sensitive_fields: vec!["Customer".into()],
            safe_fields: vec!["MY_TOKEN".into()],
        };
        let (scrubbed_event, meta) = scrubbed(event.clone(), &settings);
        assert_eq!(scrubbed_event["extra"]["customer_ref"], FILTERED);
        assert_eq!(
            meta["extra"]["customer_ref"][""]["rem"][0][0],
            "strip-fields"
        );
        assert_eq!(scrubbed_event["extra"]["my_token"], "t");
        let off = ScrubSettings {
            enabled: false,
            ..ScrubSettings::default()
        };
        let (unchanged, meta) = scrubbed(event.clone(), &off);
        assert_eq!(unchanged, event);
        assert_eq!(meta, json!({}));
    }
}
