//! Search queries as Sentry's issue stream takes them: free text plus `key:value` filters
//! (`is:unresolved`, `environment:production`, `release:shop@1.4`, any tag; a value may be
//! quoted: `browser:"Mobile Safari"`).

use crate::error::ApiError;

/// A parsed query.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Search {
    /// The free text, words joined by one space.
    pub text: Option<String>,
    /// `is:` — a status name.
    pub status: Option<String>,
    /// `environment:`.
    pub environment: Option<String>,
    /// `release:`.
    pub release: Option<String>,
    /// Every other `key:value`.
    pub tags: Vec<(String, String)>,
}

/// Parses a query; an unclosed quote is refused naming `query`.
pub fn parse(query: &str) -> Result<Search, ApiError> {
    let mut search = Search::default();
    let mut words = Vec::new();
    let mut rest = query.trim_start();
    while !rest.is_empty() {
        let (token, after) = next_token(rest)?;
        rest = after.trim_start();
        match token {
            Token::Word(word) => words.push(word),
            Token::Filter(key, value) => match key.as_str() {
                "is" => {
                    search.status = Some(match value.as_str() {
                        "muted" => "ignored".to_owned(),
                        _ => value,
                    })
                }
                "environment" => search.environment = Some(value),
                "release" => search.release = Some(value),
                _ => search.tags.push((key, value)),
            },
        }
    }
    if !words.is_empty() {
        search.text = Some(words.join(" "));
    }
    Ok(search)
}

enum Token {
    Word(String),
    Filter(String, String),
}

fn next_token(input: &str) -> Result<(Token, &str), ApiError> {
    if let Some(quoted) = input.strip_prefix('"') {
        let (value, after) = closing_quote(quoted)?;
        return Ok((Token::Word(value), after));
    }
    let end = input.find(char::is_whitespace).unwrap_or(input.len());
    let word = &input[..end];
    match word.split_once(':') {
        Some((key, _)) if is_key(key) => {
            let value_start = key.len() + 1;
            let after_colon = &input[value_start..];
            if let Some(quoted) = after_colon.strip_prefix('"') {
                let (value, after) = closing_quote(quoted)?;
                return Ok((Token::Filter(key.to_owned(), value), after));
            }
            let value = &input[value_start..end];
            // `KeyError:` or `http://...` are words, not filters.
            if value.is_empty() || value.starts_with("//") {
                return Ok((Token::Word(word.to_owned()), &input[end..]));
            }
            Ok((
                Token::Filter(key.to_owned(), value.to_owned()),
                &input[end..],
            ))
        }
        _ => Ok((Token::Word(word.to_owned()), &input[end..])),
    }
}

fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn closing_quote(quoted: &str) -> Result<(String, &str), ApiError> {
    let close = quoted
        .find('"')
        .ok_or_else(|| ApiError::bad("query", "a quote is not closed"))?;
    Ok((quoted[..close].to_owned(), &quoted[close + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_text_from_filters() {
        let search =
            parse(r#"KeyError is:unresolved release:shop@1.4 browser:"Mobile Safari" cart"#)
                .expect("parses");
        assert_eq!(
            search,
            Search {
                text: Some("KeyError cart".into()),
                status: Some("unresolved".into()),
                environment: None,
                release: Some("shop@1.4".into()),
                tags: vec![("browser".into(), "Mobile Safari".into())],
            }
        );
    }

    #[test]
    fn text_with_colons_that_are_not_filters_stays_text() {
        let search = parse("http://x/y environment:prod").expect("parses");
        assert_eq!(search.text.as_deref(), Some("http://x/y"));
        assert_eq!(search.environment.as_deref(), Some("prod"));
        assert_eq!(
            parse("is:muted").expect("parses").status.as_deref(),
            Some("ignored")
        );
        assert_eq!(parse("  ").expect("parses"), Search::default());
    }

    #[test]
    fn refuses_open_quotes_and_keeps_valueless_words() {
        assert_eq!(
            parse("KeyError: boom").expect("parses").text.as_deref(),
            Some("KeyError: boom")
        );
        assert!(parse(r#"browser:"Mobile"#).is_err());
        assert!(parse(r#""open"#).is_err());
    }
}
