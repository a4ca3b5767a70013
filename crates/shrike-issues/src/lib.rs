//! Issue decisions: which issue a grouping hash makes ([`issue_id_for_hash`]), the status
//! lifecycle ([`lifecycle`]: resolve, ignore, when an event reopens an issue), and what a batch of
//! events opens, reopens and announces ([`plan`]).
//!
//! Pure: no I/O, no clock (callers pass the time). The grouper asks the store and the bus, then
//! lets [`plan`] decide; the CLI and the alerter read statuses through [`lifecycle`], so all three
//! agree. The rows here are those of the `issues` and `issue_status` tables (with the `clickhouse`
//! feature they are ClickHouse rows too).

pub mod lifecycle;
mod plan;

pub use lifecycle::{EffectiveStatus, IssueState, IssueStatus, IssueStatusRow, StatusChange};
pub use plan::{Announced, IssueEvent, Lookups, Plan, issue_row, plan};

use serde::{Deserialize, Serialize};

/// The issue id of a hash (its first 16 hex digits, top bit cleared). Deterministic, so every
/// grouper replica assigns the same id without coordination.
pub fn issue_id_for_hash(hash: &str) -> u64 {
    u64::from_str_radix(hash.get(..16).unwrap_or("0"), 16).unwrap_or(0) & (u64::MAX >> 1)
}

/// A row of `issues`: what describes an issue, written by the batch that opened it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct IssueRow {
    /// Project id.
    pub project_id: u64,
    /// Issue id.
    pub issue_id: u64,
    /// The hash that opened the issue.
    pub primary_hash: String,
    /// Title.
    pub title: String,
    /// Culprit.
    pub culprit: String,
    /// Exception type (or empty).
    #[serde(rename = "type")]
    pub ty: String,
    /// Exception value or message.
    pub value: String,
    /// Level.
    pub level: String,
    /// Platform.
    pub platform: String,
    /// Row version (Unix ms).
    pub version: u64,
}

#[cfg(test)]
mod tests {
    #[test]
    fn issue_ids_are_the_hashs_first_63_bits() {
        assert_eq!(
            super::issue_id_for_hash("ffffffffffffffff0000"),
            u64::MAX >> 1
        );
        assert_eq!(super::issue_id_for_hash("0000000000000001ffff"), 1);
        assert_eq!(super::issue_id_for_hash("nothex"), 0);
    }
}
