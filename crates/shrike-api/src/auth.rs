//! API tokens: every call carries one in `Authorization: Bearer <token>` (a DSN key never opens
//! the API). Tokens have one scope; `admin` includes `write`, which includes `read`. A valid
//! token is remembered for [`CACHE_FOR`], so a revocation takes effect within that time.

use crate::error::ApiError;
use axum::http::HeaderMap;
use shrike_store::{Store, TOKEN_PREFIX, token_hash};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a checked token is trusted without asking ClickHouse again.
pub const CACHE_FOR: Duration = Duration::from_secs(10);

/// Most tokens remembered at once (the cache is emptied when full).
const CACHE_MAX: usize = 10_000;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read projects, issues and events.
    Read,
    /// Also change issues (resolve, ignore, merge, ...).
    Write,
    /// Also manage projects and keys.
    Admin,
}

impl Scope {
    /// Every scope, weakest first.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Sentry's names for what this scope allows (for `/api/0/`'s auth info).
    pub fn sentry_scopes(self) -> Vec<&'static str> {
        let mut scopes = vec!["org:read", "project:read", "event:read", "team:read"];
        if self >= Scope::Write {
            scopes.extend(["event:write", "project:releases"]);
        }
        if self >= Scope::Admin {
            scopes.extend(["project:write", "project:admin", "org:write"]);
        }
        scopes
    }
}

/// The token a call was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Token id.
    pub token_id: u64,
    /// Its scope.
    pub scope: Scope,
}

impl Caller {
    /// Fails with 403 unless the caller's scope includes `needed`.
    pub fn require(self, needed: Scope) -> Result<(), ApiError> {
        if self.scope >= needed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(needed.as_str()))
        }
    }
}

/// Checks tokens against the store, remembering valid ones for a little while.
pub struct Tokens {
    store: Store,
    cache: Mutex<HashMap<String, (Caller, Instant)>>,
}

impl Tokens {
    /// Checks tokens against `store`.
    pub fn new(store: Store) -> Self {
        Tokens {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The caller of a request, from its `Authorization: Bearer` header; 401 without a valid one.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let token = bearer(headers).ok_or(ApiError::Unauthorized)?;
        // Only what `shrike token create` makes is looked up: garbage costs no query.
        if !well_formed(token) {
            return Err(ApiError::Unauthorized);
        }
        let hash = token_hash(token);
        if let Some(caller) = self.cached(&hash) {
            return Ok(caller);
        }
        let row = self
            .store
            .token_by_hash(&hash)
            .await
            .map_err(ApiError::Unavailable)?
            .ok_or(ApiError::Unauthorized)?;
        let scope = Scope::parse(&row.scope).ok_or(ApiError::Unauthorized)?;
        let caller = Caller {
            token_id: row.id,
            scope,
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(hash, (caller, Instant::now()));
        Ok(caller)
    }

    fn cached(&self, hash: &str) -> Option<Caller> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_FOR)
            .map(|(caller, _)| *caller)
    }
}

/// `shrike_` and 64 lowercase hex digits, as `Store::create_token` makes them.
fn well_formed(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            value.parse().expect("header value"),
        );
        headers
    }

    #[test]
    fn reads_bearer_tokens_only() {
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn only_well_formed_tokens_are_looked_up() {
        assert!(well_formed(&format!("shrike_{}", "ab12".repeat(16))));
        assert!(!well_formed(&format!("shrike_{}", "AB12".repeat(16))));
        assert!(!well_formed(&format!("shrike_{}", "ab1".repeat(16))));
        assert!(!well_formed(&format!("sntrys_{}", "ab12".repeat(16))));
        assert!(!well_formed("shrike_"));
    }

    #[test]
    fn scopes_include_the_weaker_ones() {
        let admin = Caller {
            token_id: 1,
            scope: Scope::Admin,
        };
        let read = Caller {
            token_id: 2,
            scope: Scope::Read,
        };
        assert!(admin.require(Scope::Write).is_ok());
        assert!(read.require(Scope::Read).is_ok());
        assert!(matches!(
            read.require(Scope::Write),
            Err(ApiError::Forbidden("write"))
        ));
        assert_eq!(Scope::parse("write"), Some(Scope::Write));
        assert_eq!(Scope::parse("root"), None);
        assert!(Scope::Read.sentry_scopes().contains(&"project:read"));
        assert!(!Scope::Read.sentry_scopes().contains(&"event:write"));
    }
}
