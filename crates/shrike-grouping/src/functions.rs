//! Cleaning native function names for grouping: `int foo::bar<int>(char const*) const` and
//! `foo::bar<T>()` are the same function to a user, so both become `foo::bar<T>`.
//!
//! This follows the steps Sentry documents for `trim_native_function_name`
//! (`src/sentry/stacktraces/functions.py`): Objective-C selectors are kept as they are; C++
//! trailers (`const`, `&`), argument lists and return types are dropped; template arguments become
//! `<T>` (a leading `<Foo as Bar>` Rust trait qualifier is kept); compiler-specific lambda names
//! become `lambda`; Rust hash suffixes are removed.

use regex::Regex;
use std::borrow::Cow;
use std::sync::LazyLock;

static CPP_TRAILER: LazyLock<Regex> = LazyLock::new(|| re(r"(\bconst\b|&)$"));
static LAMBDA: LazyLock<Regex> =
    LazyLock::new(|| re(r"\{lambda\(.*?\)#\d+\}|\blambda_[a-f0-9]{32}\b|\$_\d+\b"));
static RUST_HASH: LazyLock<Regex> = LazyLock::new(|| re(r"::h[a-z0-9]{16}$"));
static WINDOWS_DECL: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?:__cdecl|__stdcall|__fastcall|__vectorcall)\s+(.*)$"));

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("built-in pattern {pattern}: {e}"))
}

/// The function name Sentry groups by when the SDK sent no raw name: trimmed for native code,
/// unchanged elsewhere.
pub fn trim_function_name<'a>(function: &'a str, platform: &str) -> Cow<'a, str> {
    if crate::platform::family(platform) == "native" {
        Cow::Owned(trim_native(function))
    } else {
        Cow::Borrowed(function)
    }
}

fn trim_native(original: &str) -> String {
    if original == "<redacted>" || original == "<unknown>" {
        return original.to_owned();
    }
    let mut function = original.trim().to_owned();
    if function.starts_with('[') || function.starts_with("+[") || function.starts_with("-[") {
        return function;
    }
    while let Some(m) = CPP_TRAILER.find(&function) {
        function = function[..m.start()].trim_end().to_owned();
    }
    // Operators and markers that would confuse the bracket balancing get placeholders.
    function = function
        .replace("operator<<", "operator⟨⟨")
        .replace("operator<", "operator⟨")
        .replace("operator()", "operator◯")
        .replace("operator->", "operator⟿")
        .replace(" -> ", " ⟿ ")
        .replace("`anonymous namespace'", "〔anonymousnamespace〕");
    function = LAMBDA.replace_all(&function, "lambda").into_owned();
    function = replace_enclosed(&function, '(', ')', &|inner, _| {
        let inner = inner.trim();
        if inner == "anonymous namespace" || inner == "operator" {
            format!("({inner})")
        } else {
            String::new()
        }
    });
    function = replace_enclosed(&function, '<', '>', &generics);
    let mut tokens = split_tokens(&function);
    if tokens.len() > 1 && tokens.last().map(String::as_str) == Some("<T>") {
        tokens.pop();
        if let Some(last) = tokens.last_mut() {
            last.push_str(" <T>");
        }
    }
    let token = match tokens.iter().position(|t| t == "⟿") {
        Some(i) if i > 0 => Some(tokens[i - 1].clone()),
        _ => tokens.last().cloned(),
    };
    let function = match token {
        Some(token) => token
            .replace('⟨', "<")
            .replace('◯', "()")
            .replace('⟿', "->")
            .replace("〔anonymousnamespace〕", "`anonymous namespace'"),
        None => original.to_owned(),
    };
    let function = RUST_HASH.replace(&function, "").into_owned();
    WINDOWS_DECL.replace(&function, "$1").into_owned()
}

fn generics(inner: &str, start: usize) -> String {
    // A generic at the very start is a Rust trait qualifier (`<Foo as Bar>::baz`): keep it.
    if start == 0 {
        format!("<{}>", replace_enclosed(inner, '<', '>', &generics))
    } else {
        "<T>".to_owned()
    }
}

/// Replaces every outermost `open ... close` section by `replace(inner, start_of_section)`.
fn replace_enclosed(
    text: &str,
    open: char,
    close: char,
    replace: &dyn Fn(&str, usize) -> String,
) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut depth = 0usize;
    let mut section_start = 0usize;
    let mut inner = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == open {
            if depth == 0 {
                section_start = i;
                inner.clear();
            } else {
                inner.push(c);
            }
            depth += 1;
        } else if c == close && depth > 0 {
            depth -= 1;
            if depth == 0 {
                out.push_str(&replace(&inner, section_start));
            } else {
                inner.push(c);
            }
        } else if depth > 0 {
            inner.push(c);
        } else {
            out.push(c);
        }
    }
    if depth > 0 {
        // Unbalanced: keep the unclosed rest as it was.
        out.push(open);
        out.push_str(&inner);
    }
    out
}

/// Splits on spaces outside brackets.
fn split_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '(' | '<' | '[' | '{' => depth += 1,
            ')' | '>' | ']' | '}' => depth -= 1,
            _ => {}
        }
        if c == ' ' && depth <= 0 {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_names_are_trimmed() {
        assert_eq!(
            trim_native("int foo::bar<int>(char const*) const"),
            "foo::bar<T>"
        );
        assert_eq!(
            trim_native("-[NSObject doesNotRecognizeSelector:]"),
            "-[NSObject doesNotRecognizeSelector:]"
        );
        assert_eq!(
            trim_native("std::panicking::begin_panic::h0123456789abcdef"),
            "std::panicking::begin_panic"
        );
        assert_eq!(trim_native("<Foo as Bar>::baz"), "<Foo as Bar>::baz");
        assert_eq!(
            trim_native("main::$_0::operator()(int) const"),
            "main::lambda::operator()"
        );
        assert_eq!(trim_native("@objc Foo.bar(x: Int) -> Int"), "Foo.bar");
    }
}
