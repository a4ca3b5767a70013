//! Client authentication: the `sentry_key` an SDK presents with every request.
//!
//! SDKs send it in the `X-Sentry-Auth` header (`Sentry sentry_key=..., sentry_version=7, ...`), in an
//! `Authorization: Sentry ...` header, or as `sentry_key`/`sentry_version` query parameters (browser
//! SDKs). See <https://develop.sentry.dev/sdk/overview/#authentication>. This module only parses; it
//! never decides whether a key is valid.

/// The credentials a request carried.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientAuth {
    /// The public key (`sentry_key`).
    pub public_key: String,
    /// Protocol version (`sentry_version`), when given.
    pub version: Option<String>,
    /// SDK identification (`sentry_client`), when given.
    pub client: Option<String>,
}

/// Why a request's credentials cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials at all.
    #[error("missing authorization information")]
    Missing,
    /// An auth header that does not start with `Sentry ` or lacks `sentry_key`.
    #[error("invalid authorization header")]
    Malformed,
    /// Credentials given in several places that name different keys.
    #[error("multiple conflicting authorization values")]
    Conflict,
    /// A key that cannot be a public key (empty, too long, or not alphanumeric).
    #[error("invalid public key")]
    BadKey,
}

impl ClientAuth {
    /// Parses a header value of the form `Sentry k=v, k=v`.
    pub fn from_header(value: &str) -> Result<Self, AuthError> {
        let rest = value
            .trim()
            .strip_prefix("Sentry ")
            .or_else(|| value.trim().strip_prefix("sentry "))
            .ok_or(AuthError::Malformed)?;
        let pairs = rest
            .split(',')
            .filter_map(|part| part.trim().split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()));
        Self::from_pairs(pairs).ok_or(AuthError::Malformed)
    }

    /// Reads credentials from decoded query parameters; `None` when there is no `sentry_key`.
    pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        Self::from_pairs(pairs)
    }

    fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        let mut auth = ClientAuth::default();
        for (key, value) in pairs {
            match key {
                "sentry_key" => auth.public_key = value.to_owned(),
                "sentry_version" => auth.version = Some(value.to_owned()),
                "sentry_client" => auth.client = Some(value.to_owned()),
                _ => {}
            }
        }
        (!auth.public_key.is_empty()).then_some(auth)
    }

    /// Combines every place credentials may come from into one, as Relay does: a request may repeat
    /// the same key, but two different keys are a conflict.
    pub fn resolve(
        candidates: impl IntoIterator<Item = Result<Self, AuthError>>,
    ) -> Result<Self, AuthError> {
        let mut found: Option<ClientAuth> = None;
        for candidate in candidates {
            let candidate = candidate?;
            match &found {
                Some(existing) if existing.public_key != candidate.public_key => {
                    return Err(AuthError::Conflict);
                }
                Some(_) => {}
                None => found = Some(candidate),
            }
        }
        let auth = found.ok_or(AuthError::Missing)?;
        if !is_valid_public_key(&auth.public_key) {
            return Err(AuthError::BadKey);
        }
        Ok(auth)
    }
}

/// Public keys are 32 hex characters in Sentry; Shrike accepts any ASCII alphanumeric key of 1 to 64
/// characters so keys migrated from elsewhere keep working.
pub fn is_valid_public_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_python_sdk_header() {
        let auth = ClientAuth::from_header(
            "Sentry sentry_key=0123abcd, sentry_version=7, sentry_client=sentry.python/2.75.0",
        )
        .expect("valid header");
        assert_eq!(auth.public_key, "0123abcd");
        assert_eq!(auth.version.as_deref(), Some("7"));
        assert_eq!(auth.client.as_deref(), Some("sentry.python/2.75.0"));
    }

    #[test]
    fn rejects_headers_without_key_or_prefix() {
        assert_eq!(
            ClientAuth::from_header("Bearer x"),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            ClientAuth::from_header("Sentry sentry_version=7"),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn resolve_detects_missing_and_conflicting_keys() {
        assert_eq!(ClientAuth::resolve([]), Err(AuthError::Missing));
        let a = ClientAuth {
            public_key: "a".into(),
            ..Default::default()
        };
        let b = ClientAuth {
            public_key: "b".into(),
            ..Default::default()
        };
        assert_eq!(
            ClientAuth::resolve([Ok(a.clone()), Ok(b)]),
            Err(AuthError::Conflict)
        );
        assert_eq!(ClientAuth::resolve([Ok(a.clone()), Ok(a.clone())]), Ok(a));
        let bad = ClientAuth {
            public_key: "a-b".into(),
            ..Default::default()
        };
        assert_eq!(ClientAuth::resolve([Ok(bad)]), Err(AuthError::BadKey));
    }

    #[test]
    fn reads_query_parameters() {
        let auth =
            ClientAuth::from_query([("sentry_key", "k1"), ("sentry_version", "7")]).expect("key");
        assert_eq!(auth.public_key, "k1");
        assert!(ClientAuth::from_query([("other", "x")]).is_none());
    }
}
