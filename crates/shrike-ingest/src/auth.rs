//! Who may send: the credentials of a request, read from its headers and query (before its body)
//! and, failing those, from its envelope header's `dsn`; and a budget of failed attempts per
//! client address, so that a client sending bad credentials fast is cut off cheaply without
//! slowing anyone else down.

use axum::http::HeaderMap;
use shrike_protocol::{AuthError, ClientAuth};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// The credentials in a request's `X-Sentry-Auth` or `Authorization: Sentry ...` headers and its
/// `sentry_key` query parameter; `None` when there are none.
pub fn from_headers(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<ClientAuth>, AuthError> {
    let mut candidates = Vec::new();
    for name in ["x-sentry-auth", "authorization"] {
        for value in headers.get_all(name) {
            let value = value.to_str().map_err(|_| AuthError::Malformed)?;
            if name == "authorization"
                && !value
                    .trim_start()
                    .get(..7)
                    .is_some_and(|p| p.eq_ignore_ascii_case("sentry "))
            {
                continue;
            }
            candidates.push(ClientAuth::from_header(value));
        }
    }
    if let Some(query) = query {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        if let Some(auth) =
            ClientAuth::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            candidates.push(Ok(auth));
        }
    }
    if candidates.is_empty() {
        return Ok(None);
    }
    ClientAuth::resolve(candidates).map(Some)
}

/// The credentials of an envelope's `dsn` header.
pub fn from_dsn(dsn: Option<&str>) -> Result<ClientAuth, AuthError> {
    let dsn = dsn
        .and_then(|d| d.parse::<shrike_protocol::Dsn>().ok())
        .ok_or(AuthError::Missing)?;
    ClientAuth::resolve([Ok(ClientAuth {
        public_key: dsn.public_key,
        ..Default::default()
    })])
}

/// A token bucket per client address of failed authentication attempts: `burst` failures at
/// once, refilled at `per_second`. An address over its budget is answered 429 and disconnected
/// at its next failure, and its unknown keys are no longer looked up in the store.
pub struct FailureBudget {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<IpKey, Bucket>>,
}

/// The most addresses tracked; beyond it, full buckets (addresses that stopped failing) go.
const MAX_ADDRESSES: usize = 100_000;

/// IPv4 addresses one by one; IPv6 by /64, what one host usually controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum IpKey {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for IpKey {
    fn from(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => IpKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey::V4(u32::from(v4)),
                None => IpKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl FailureBudget {
    /// `burst` failures at once per address, refilled at `per_second`.
    pub fn new(burst: u32, per_second: f64) -> Self {
        FailureBudget {
            burst: f64::from(burst.max(1)),
            per_second: per_second.max(0.0),
            buckets: Mutex::default(),
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }

    /// Whether `addr` has used up its budget.
    pub fn exhausted(&self, addr: IpAddr) -> bool {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .get(&IpKey::from(addr))
            .is_some_and(|bucket| self.refilled(*bucket, Instant::now()) < 1.0)
    }

    /// Counts a failure of `addr`; returns whether it was over its budget.
    pub fn fail(&self, addr: IpAddr) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_ADDRESSES {
            buckets.retain(|_, bucket| self.refilled(*bucket, now) < self.burst);
            if buckets.len() >= MAX_ADDRESSES {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(IpKey::from(addr)).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = self.refilled(*bucket, now);
        let over = tokens < 1.0;
        *bucket = Bucket {
            tokens: if over { tokens } else { tokens - 1.0 },
            at: now,
        };
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn reads_headers_and_query_and_ignores_other_authorization_schemes() {
        let mut headers = HeaderMap::new();
        assert_eq!(from_headers(&headers, None), Ok(None));
        headers.insert("authorization", HeaderValue::from_static("Bearer token"));
        assert_eq!(from_headers(&headers, None), Ok(None));
        headers.insert(
            "authorization",
            HeaderValue::from_static("Sentry sentry_key=abc, sentry_version=7"),
        );
        let auth = from_headers(&headers, None).expect("valid").expect("some");
        assert_eq!(auth.public_key, "abc");
        assert_eq!(
            from_headers(&headers, Some("sentry_key=def")),
            Err(AuthError::Conflict)
        );
        let auth = from_headers(&HeaderMap::new(), Some("sentry_version=7&sentry_key=def"))
            .expect("valid")
            .expect("some");
        assert_eq!(auth.public_key, "def");
        assert_eq!(
            from_dsn(Some("http://abc@example.com/1")).map(|a| a.public_key),
            Ok("abc".to_owned())
        );
        assert_eq!(from_dsn(Some("nonsense")), Err(AuthError::Missing));
    }

    #[test]
    fn an_address_over_its_budget_is_refused_until_it_refills() {
        let budget = FailureBudget::new(3, 0.0);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        assert!(!budget.exhausted(a));
        assert!(!budget.fail(a) && !budget.fail(a) && !budget.fail(a));
        assert!(budget.exhausted(a));
        assert!(budget.fail(a));
        assert!(!budget.exhausted(b), "another address has its own budget");
        let refilling = FailureBudget::new(1, 1000.0);
        assert!(!refilling.fail(a));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(!refilling.exhausted(a), "refilled");
        // IPv6 addresses of one /64 share a budget; IPv4-mapped ones count as IPv4.
        let budget = FailureBudget::new(1, 0.0);
        budget.fail("2001:db8::1".parse().expect("ip"));
        assert!(budget.exhausted("2001:db8::ffff".parse().expect("ip")));
        assert!(!budget.exhausted("2001:db8:0:1::1".parse().expect("ip")));
        budget.fail(a);
        assert!(budget.exhausted("::ffff:10.0.0.1".parse().expect("ip")));
    }
}
