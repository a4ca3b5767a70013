//! Parsing rules in Sentry's text syntax.

use super::{Action, Field, Glob, Matcher, Range, Rule};
use regex::Regex;

pub(super) fn strip_comment(line: &str) -> &str {
    // `#` starts a comment unless it is inside quotes.
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

pub(super) fn parse_rule(line: &str) -> Result<Rule, String> {
    let tokens = tokenize(line)?;
    let mut rule = Rule {
        text: line.split_whitespace().collect::<Vec<_>>().join(" "),
        caller: Vec::new(),
        frame: Vec::new(),
        callee: Vec::new(),
        actions: Vec::new(),
        families: None,
        needs_category: false,
        modifies_frames: false,
        groups: false,
    };
    let mut i = 0;
    // Optional caller: `[ matchers ] |`
    if tokens.get(i).map(String::as_str) == Some("[") {
        let (matchers, next) = bracketed(&tokens, i)?;
        rule.caller = matchers;
        i = next;
        if tokens.get(i).map(String::as_str) != Some("|") {
            return Err("expected `|` after the caller matcher".into());
        }
        i += 1;
    }
    while let Some(token) = tokens.get(i) {
        if token == "|" || is_action(token) {
            break;
        }
        rule.frame.push(parse_matcher(token)?);
        i += 1;
    }
    if tokens.get(i).map(String::as_str) == Some("|") {
        let (matchers, next) = bracketed(&tokens, i + 1)?;
        rule.callee = matchers;
        i = next;
    }
    for token in &tokens[i..] {
        rule.actions.push(parse_action(token)?);
    }
    // Cheap matchers first: a rule for another family is rejected before any glob runs.
    for matchers in [&mut rule.caller, &mut rule.frame, &mut rule.callee] {
        matchers.sort_by_key(|m| match m.field {
            Field::Family | Field::App => 0,
            Field::Category => 1,
            _ => 2,
        });
    }
    rule.families = rule
        .frame
        .iter()
        .find(|m| m.field == Field::Family && !m.negated)
        .map(|m| m.words.clone());
    rule.needs_category = rule
        .frame
        .iter()
        .any(|m| m.field == Field::Category && !m.negated);
    rule.modifies_frames = rule
        .actions
        .iter()
        .any(|a| matches!(a, Action::App(..) | Action::Category(_)));
    rule.groups = rule.actions.iter().any(|a| matches!(a, Action::Group(..)));
    if rule.frame.is_empty() && rule.caller.is_empty() && rule.callee.is_empty() {
        return Err("a rule needs at least one matcher".into());
    }
    if rule.actions.is_empty() {
        return Err("a rule needs at least one action".into());
    }
    Ok(rule)
}

pub(super) fn bracketed(tokens: &[String], start: usize) -> Result<(Vec<Matcher>, usize), String> {
    if tokens.get(start).map(String::as_str) != Some("[") {
        return Err("expected `[`".into());
    }
    let mut matchers = Vec::new();
    let mut i = start + 1;
    loop {
        match tokens.get(i).map(String::as_str) {
            Some("]") => return Ok((matchers, i + 1)),
            Some(token) => matchers.push(parse_matcher(token)?),
            None => return Err("unclosed `[`".into()),
        }
        i += 1;
    }
}

/// Splits a rule into tokens; quoted values keep their spaces, `[`, `]` and `|` stand alone.
pub(super) fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    Some('\\') => {
                        if let Some(escaped) = chars.next() {
                            current.push(escaped);
                        }
                    }
                    Some('"') => break,
                    Some(other) => current.push(other),
                    None => return Err("unclosed quote".into()),
                }
            },
            // Brackets and bars stand alone between tokens; inside a value they are part of
            // the glob (`function:?[[]Sentry*`).
            '[' | ']' | '|' if current.is_empty() => tokens.push(c.to_string()),
            c if c.is_whitespace() => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    Ok(tokens)
}

pub(super) fn is_action(token: &str) -> bool {
    let body = token.trim_start_matches(['^', 'v']);
    body.starts_with('+') || body.starts_with('-') && !body.contains(':') || token.contains('=')
}

pub(super) fn parse_matcher(token: &str) -> Result<Matcher, String> {
    let (negated, token) = match token.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let (key, value) = token
        .split_once(':')
        .ok_or_else(|| format!("`{token}` is not a matcher (key:value)"))?;
    let key = key
        .strip_prefix("stack.")
        .or_else(|| key.strip_prefix("error."))
        .unwrap_or(key);
    let field = match key {
        "family" => Field::Family,
        "path" | "abs_path" => Field::Path,
        "package" => Field::Package,
        "module" => Field::Module,
        "function" => Field::Function,
        "category" => Field::Category,
        "app" => Field::App,
        "type" => Field::Type,
        "value" => Field::Value,
        "mechanism" => Field::Mechanism,
        other => return Err(format!("unknown matcher `{other}`")),
    };
    let words: Vec<String> = match field {
        Field::Family => value.split(',').map(str::to_owned).collect(),
        Field::App => vec![value.to_lowercase()],
        _ => Vec::new(),
    };
    let pattern = match field {
        Field::Family | Field::App => None,
        Field::Path | Field::Package => Some(Glob::new(&value.replace('\\', "/"), true)?),
        _ => Some(Glob::new(value, false)?),
    };
    Ok(Matcher {
        field,
        negated,
        words,
        pattern,
    })
}

pub(super) fn parse_action(token: &str) -> Result<Action, String> {
    if let Some((key, value)) = token.split_once('=') {
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("`{token}`: expected a number"))
        };
        return match key {
            "category" => Ok(Action::Category(value.to_owned())),
            "min-frames" => Ok(Action::MinFrames(number()?)),
            "max-frames" => Ok(Action::MaxFrames(number()?)),
            "invert-stacktrace" => Ok(Action::Invert(matches!(value, "1" | "true" | "yes"))),
            other => Err(format!("unknown variable `{other}`")),
        };
    }
    let (range, rest) = match token.chars().next() {
        Some('^') => (Range::Callees, &token[1..]),
        Some('v') => (Range::Callers, &token[1..]),
        _ => (Range::Frame, token),
    };
    let flag = match rest.chars().next() {
        Some('+') => true,
        Some('-') => false,
        _ => return Err(format!("unknown action `{token}`")),
    };
    match &rest[1..] {
        "app" => Ok(Action::App(range, flag)),
        "group" => Ok(Action::Group(range, flag)),
        other => Err(format!("unknown flag `{other}`")),
    }
}

/// Translates a glob to an anchored regex. Path globs are case-insensitive and `*` stops at `/`
/// while `**` crosses it; other globs are case-sensitive and `*` matches anything.
pub(super) fn glob_regex(glob: &str, path: bool) -> Result<Regex, String> {
    let mut out = String::from(if path { "(?si)^" } else { "(?s)^" });
    let chars: Vec<char> = glob.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                out.push_str(".*");
                i += 1;
            }
            '*' => out.push_str(if path { "[^/]*" } else { ".*" }),
            '?' => out.push_str(if path { "[^/]" } else { "." }),
            '[' => {
                // A character class, copied as is up to its closing bracket.
                let end = chars[i + 1..]
                    .iter()
                    .enumerate()
                    .skip(1)
                    .find(|(_, c)| **c == ']')
                    .map(|(j, _)| i + 1 + j);
                match end {
                    Some(end) => {
                        let class: String = chars[i + 1..end].iter().collect();
                        let class = class.replacen('!', "^", usize::from(class.starts_with('!')));
                        out.push('[');
                        out.push_str(&class.replace('\\', "\\\\").replace('[', "\\["));
                        out.push(']');
                        i = end;
                    }
                    None => out.push_str("\\["),
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    out.push('$');
    Regex::new(&out).map_err(|e| format!("bad pattern `{glob}`: {e}"))
}
