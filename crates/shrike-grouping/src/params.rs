//! Message parameterization: values that differ between occurrences of one error (numbers, ids,
//! hashes, dates, addresses) are replaced by placeholders such as `<int>` and `<uuid>`, so that
//! `user 42 not found` and `user 43 not found` group together.
//!
//! The kinds and their precedence follow Sentry's `normalize_message_for_grouping`
//! (`src/sentry/grouping/parameterization.py`): email, url, hostname, ip, uuid, sha1, md5, date,
//! duration, hex, float, int; at each position the first kind that matches wins. Double-quoted
//! identifiers (`SAVEPOINT "s1400_x7"`, as in database errors) become `<quoted_identifier>`, which
//! is what Sentry's recorded results show. Messages are cut to their first two non-empty lines
//! first (with `...` when something was cut).

use regex::Regex;
use std::sync::LazyLock;

const IPV4: &str =
    r"((25[0-5]|(2[0-4]|1{0,1}[0-9]){0,1}[0-9])\.){3,3}(25[0-5]|(2[0-4]|1{0,1}[0-9]){0,1}[0-9])";

const TLDS: &str = "com|net|org|jp|de|uk|fr|br|it|ru|es|me|gov|pl|ca|au|cn|co|in|nl|edu|info|eu|ch|id|at|kr|cz|mx|be|tv|se|tr|tw|al|ua|ir|vn|cl|sk|ly|cc|to|no|fi|us|pt|dk|ar|hu|tk|gr|il|news|ro|my|biz|ie|za|nz|sg|ee|th|io|xyz|pe|bg|hk|rs|lt|link|ph|club|si|site|mobi|by|cat|wiki|la|ga|xxx|cf|hr|ng|jobs|online|kz|ug|gq|ae|is|lv|pro|fm|tips|ms|sa|app";

const MONTHS: &str = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec";
const DAYS: &str = "Sun|Mon|Tue|Wed|Thu|Fri|Sat";
const ZONES: &str = "UT|GMT|(?:E|C|M|P)(?:ST|DT)|[A-IK-Z]";

/// The kinds of value replaced, in order of precedence.
const KINDS: &[&str] = &[
    "email",
    "url",
    "hostname",
    "ip",
    "uuid",
    "sha1",
    "md5",
    "date",
    "duration",
    "hex",
    "float",
    "int",
    "quoted_identifier",
];

fn pattern(kind: &str) -> String {
    match kind {
        "email" => r"[a-zA-Z0-9._-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}".to_owned(),
        "url" => r"\b(wss?|https?|ftp)://[^\s/$.?#].[^\s]*".to_owned(),
        "hostname" => format!(r"\b([a-zA-Z0-9\-]{{1,63}}\.)+?(({}))\b", {
            let upper = TLDS.to_uppercase();
            format!("{upper}|{TLDS}")
        }),
        "ip" => {
            let h = "[0-9a-fA-F]{1,4}";
            let v6 = [
                format!("({h}:){{7,7}}{h}"),
                format!("({h}:){{1,7}}:"),
                format!("({h}:){{1,6}}:{h}"),
                format!("({h}:){{1,5}}(:{h}){{1,2}}"),
                format!("({h}:){{1,4}}(:{h}){{1,3}}"),
                format!("({h}:){{1,3}}(:{h}){{1,4}}"),
                format!("({h}:){{1,2}}(:{h}){{1,5}}"),
                format!("{h}:((:{h}){{1,6}})"),
                format!(":((:{h}){{1,7}}|:)"),
                "fe80:(:[0-9a-fA-F]{0,4}){0,4}%[0-9a-zA-Z]{1,}".to_owned(),
                format!("::([fF]{{4}}(:0{{1,4}}){{0,1}}:){{0,1}}{IPV4}"),
                format!("({h}:){{1,4}}:{IPV4}"),
            ]
            .join("|");
            format!(r"({v6})|(\b{IPV4}\b)")
        }
        "uuid" => {
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
                .to_owned()
        }
        "sha1" => r"\b[0-9a-fA-F]{40}\b".to_owned(),
        "md5" => r"\b[0-9a-fA-F]{32}\b".to_owned(),
        "date" => {
            let iso_time =
                r"(\d{4}-\d{2}-\d{2})T?(\d{2}:\d{2}:\d{2}(\.\d+)?)(([+-]\d{2}:\d{2})|Z)?";
            [
                // RFC 822 / 1123
                format!(r"((?:{DAYS}),\s\d{{1,2}}\s(?:{MONTHS})\s\d{{2,4}}\s\d{{1,2}}:\d{{1,2}}(:\d{{1,2}})?\s([-\+][\d]{{2}}[0-5][\d]|(?:{ZONES})))"),
                // "Mon Jan 02, 1999", "Jan 02, 1999"
                format!(r"(((?:{DAYS})\s)?(?:{MONTHS})\s[0-3]\d,\s\d{{2,4}})"),
                // RFC 850
                format!(r"((?:Sunday|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday),\s\d{{2}}-(?:{MONTHS})-\d{{2}}\s\d{{2}}:\d{{2}}:\d{{2}}\s(?:{ZONES}))"),
                // RFC 3339 with and without fractions and seconds
                r"(\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-5]\d\.\d+([+-][0-2]\d:[0-5]\d|Z))".to_owned(),
                r"(\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-5]\d([+-][0-2]\d:[0-5]\d|Z))".to_owned(),
                r"(\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d([+-][0-2]\d:[0-5]\d|Z))".to_owned(),
                // date and time
                r"(\d{4}-\d{2}-\d{2}\s\d{2}:\d{2}:\d{2}(\.\d+)?)".to_owned(),
                // kitchen clock
                r"([1-9]\d?:\d{2}(:\d{2})?(?: [aApP][Mm])?)".to_owned(),
                // date, time
                r"(\d{4}-[01]\d-[0-3]\d)".to_owned(),
                r"([0-2]\d:[0-5]\d:[0-5]\d)".to_owned(),
                format!("({iso_time})"),
                // ctime: "Wed Apr 17 22:31:45 2019"
                format!(r"(\b(?:({DAYS})\s+)?({MONTHS})\s+([\d]{{1,2}})\s+([\d]{{2}}:[\d]{{2}}:[\d]{{2}})\s+[\d]{{4}})"),
                r"(datetime\.datetime\(.*?\))".to_owned(),
            ]
            .join("|")
        }
        "duration" => r"\b(\d+ms)|(\d+(\.\d+)?s)\b".to_owned(),
        "hex" => r"\b0[xX][0-9a-fA-F]+\b".to_owned(),
        "float" => r"-\d+\.\d+\b|\b\d+\.\d+\b".to_owned(),
        "int" => r"-\d+\b|\b\d+\b".to_owned(),
        // A double-quoted SQL identifier (`SAVEPOINT "s1400_x7"`): generated names in database errors.
        "quoted_identifier" => r#""[A-Za-z_][A-Za-z0-9_$]*""#.to_owned(),
        _ => unreachable!("unknown kind {kind}"),
    }
}

static COMBINED: LazyLock<Regex> = LazyLock::new(|| {
    let alternatives: Vec<String> = KINDS
        .iter()
        .map(|kind| format!("(?P<{kind}>{})", pattern(kind)))
        .collect();
    // The alternation is large; a bigger lazy-DFA cache keeps it from being rebuilt per search.
    regex::RegexBuilder::new(&alternatives.join("|"))
        .dfa_size_limit(64 << 20)
        .build()
        .unwrap_or_else(|e| panic!("parameterization regex: {e}"))
});

/// Replaces event-specific values in a message with placeholders and keeps its first two
/// non-empty lines.
pub fn parameterize(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .filter(|line| !line.trim().is_empty())
        .take(2)
        .collect();
    let mut trimmed = lines.join("\n");
    if trimmed != message {
        trimmed.push_str("...");
    }
    COMBINED
        .replace_all(&trimmed, |caps: &regex::Captures<'_>| {
            let kind = KINDS
                .iter()
                .find(|kind| caps.name(kind).is_some())
                .copied()
                .unwrap_or("int");
            format!("<{kind}>")
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_event_specific_values() {
        assert_eq!(
            parameterize("testing testing 1, 2, 3"),
            "testing testing <int>, <int>, <int>"
        );
        assert_eq!(
            parameterize("Failed to start component [Connector[HTTP/1.1-8080]]"),
            "Failed to start component [Connector[HTTP/<float><int>]]"
        );
        assert_eq!(
            parameterize(
                "Wed Apr 17 22:31:45 2019: a.b@example.invalid logged in (error 42) at 0xfeedbeef"
            ),
            "<date>: <email> logged in (error <int>) at <hex>"
        );
        assert_eq!(
            parameterize("from 127.0.0.1 via 2001:0db8:85a3:0000:0000:8a2e:0370:7334 via ::1"),
            "from <ip> via <ip> via <ip>"
        );
        assert_eq!(
            parameterize(
                "id 88ee7c66-29a9-4a4a-bc26-c72d76c5de14 sum d41d8cd98f00b204e9800998ecf8427e took 15ms"
            ),
            "id <uuid> sum <md5> took <duration>"
        );
        assert_eq!(
            parameterize("GET https://x.io/a?b=1 failed"),
            "GET <url> failed"
        );
        assert_eq!(
            parameterize("SQL: RELEASE SAVEPOINT \"s140078941939520_x761\" ('it''s')"),
            "SQL: RELEASE SAVEPOINT <quoted_identifier> ('it''s')"
        );
    }

    #[test]
    fn keeps_two_lines() {
        assert_eq!(parameterize("a\n\nb\nc"), "a\nb...");
        assert_eq!(parameterize("a\nb"), "a\nb");
    }
}
