//! Rate limits: per-key and per-project quotas by data category, in fixed windows, answered the
//! way Sentry does so SDKs back off by themselves: 429 with `Retry-After` and
//! `X-Sentry-Rate-Limits: {retry_after}:{categories}:{scope}:{reason}` (see
//! <https://develop.sentry.dev/sdk/expected-features/rate-limiting/>). Counters live in this
//! process: with several ingest replicas, each enforces the quota on its own share of traffic.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// What a quota counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One project key (DSN).
    Key,
    /// A whole project.
    Project,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Project => "project",
        }
    }
}

/// One quota (`[[ingest.quotas]]` in `shrike.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// What it counts against.
    pub scope: Scope,
    /// Data categories it applies to (`error`, `monitor`, `session`, ...); empty: all.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Items allowed per window.
    pub limit: u64,
    /// Window length, seconds.
    pub window_secs: u64,
    /// Only for this project; unset: every project.
    #[serde(default)]
    pub project_id: Option<u64>,
    /// Reason code reported to SDKs and in outcomes.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A quota that refused items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// Seconds until the window ends.
    pub retry_after: u64,
    /// The quota's categories (empty: all).
    pub categories: Vec<String>,
    /// `key` or `project`.
    pub scope: &'static str,
    /// Reason code.
    pub reason: String,
}

impl Limited {
    /// One entry of the `X-Sentry-Rate-Limits` header.
    pub fn header_entry(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.retry_after,
            self.categories.join(";"),
            self.scope,
            self.reason
        )
    }
}

/// Enforces the configured quotas.
#[derive(Debug, Default)]
pub struct RateLimiter {
    quotas: Vec<Quota>,
    /// (quota index, scope id, window start) -> items counted.
    counters: Mutex<HashMap<(usize, String, u64), u64>>,
}

impl RateLimiter {
    /// A limiter for `quotas`.
    pub fn new(quotas: Vec<Quota>) -> Self {
        RateLimiter {
            quotas,
            counters: Mutex::default(),
        }
    }

    /// Admits `quantity` items of `category` for a project key at `now` (Unix seconds), counting
    /// them against every matching quota, or reports the first quota they would exceed (then
    /// nothing is counted).
    pub fn admit(
        &self,
        project_id: u64,
        key: &str,
        category: &str,
        quantity: u64,
        now: u64,
    ) -> Result<(), Limited> {
        let matching: Vec<(usize, &Quota)> = self
            .quotas
            .iter()
            .enumerate()
            .filter(|(_, q)| q.project_id.is_none_or(|p| p == project_id))
            .filter(|(_, q)| q.categories.is_empty() || q.categories.iter().any(|c| c == category))
            .collect();
        if matching.is_empty() {
            return Ok(());
        }
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if counters.len() > 100_000 {
            counters.retain(|(i, _, start), _| now < start + self.quotas[*i].window_secs.max(1));
        }
        let slot = |index: usize, quota: &Quota| {
            let window = quota.window_secs.max(1);
            let scope_id = match quota.scope {
                Scope::Key => key.to_owned(),
                Scope::Project => project_id.to_string(),
            };
            (index, scope_id, now - now % window)
        };
        for (index, quota) in &matching {
            let used = counters.get(&slot(*index, quota)).copied().unwrap_or(0);
            if used + quantity > quota.limit {
                let window = quota.window_secs.max(1);
                return Err(Limited {
                    retry_after: (now - now % window + window).saturating_sub(now).max(1),
                    categories: quota.categories.clone(),
                    scope: quota.scope.name(),
                    reason: quota
                        .reason
                        .clone()
                        .unwrap_or_else(|| format!("{}_quota", quota.scope.name())),
                });
            }
        }
        for (index, quota) in matching {
            *counters.entry(slot(index, quota)).or_default() += quantity;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(scope: Scope, categories: &[&str], limit: u64) -> Quota {
        Quota {
            scope,
            categories: categories.iter().map(|c| c.to_string()).collect(),
            limit,
            window_secs: 60,
            project_id: None,
            reason: None,
        }
    }

    #[test]
    fn limits_per_key_within_a_window() {
        let limiter = RateLimiter::new(vec![quota(Scope::Key, &["error"], 2)]);
        assert!(limiter.admit(1, "a", "error", 1, 120).is_ok());
        assert!(limiter.admit(1, "a", "error", 1, 130).is_ok());
        let limited = limiter
            .admit(1, "a", "error", 1, 150)
            .expect_err("third error is limited");
        assert_eq!(limited.header_entry(), "30:error:key:key_quota");
        assert!(
            limiter.admit(1, "b", "error", 1, 150).is_ok(),
            "another key has its own quota"
        );
        assert!(
            limiter.admit(1, "a", "session", 1, 150).is_ok(),
            "other categories are not limited"
        );
        assert!(
            limiter.admit(1, "a", "error", 1, 180).is_ok(),
            "a new window starts afresh"
        );
    }

    #[test]
    fn project_quotas_span_keys_and_may_target_one_project() {
        let mut q = quota(Scope::Project, &[], 1);
        q.project_id = Some(7);
        q.reason = Some("spike".into());
        let limiter = RateLimiter::new(vec![q]);
        assert!(limiter.admit(7, "a", "error", 1, 0).is_ok());
        let limited = limiter
            .admit(7, "b", "monitor", 1, 0)
            .expect_err("limited across keys and categories");
        assert_eq!(limited.header_entry(), "60::project:spike");
        assert!(
            limiter.admit(8, "a", "error", 5, 0).is_ok(),
            "other projects are not limited"
        );
    }
}
