//! The issue lifecycle rules: statuses, ignore conditions and when an event reopens a resolved
//! issue. Pure functions over the rows of `issue_status`, shared by the CLI (which writes status
//! changes), the grouper (which decides regressions) and the alerter (which skips ignored and
//! resolved issues), so all three agree.
//!
//! The store writes and reads these rows; this module never does I/O.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The status of an issue as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IssueStatus {
    /// Open: alerts are sent for its events.
    #[default]
    Unresolved,
    /// Fixed: the next event received after the resolution reopens it (a regression).
    Resolved,
    /// Fixed in the next release: an event from a release other than the one current at the
    /// resolution reopens it.
    ResolvedInNextRelease,
    /// Muted: no alerts while the ignore condition holds (forever, until N more events, until a
    /// date).
    Ignored,
}

impl IssueStatus {
    /// Every status.
    pub const ALL: [IssueStatus; 4] = [
        IssueStatus::Unresolved,
        IssueStatus::Resolved,
        IssueStatus::ResolvedInNextRelease,
        IssueStatus::Ignored,
    ];

    /// The stored and printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStatus::Unresolved => "unresolved",
            IssueStatus::Resolved => "resolved",
            IssueStatus::ResolvedInNextRelease => "resolved_in_next_release",
            IssueStatus::Ignored => "ignored",
        }
    }

    /// Parses a stored name; unknown names read as unresolved (never hide an issue by mistake).
    pub fn parse(name: &str) -> Self {
        IssueStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .unwrap_or_default()
    }

    /// Whether the status counts as resolved (either kind).
    pub fn is_resolved(self) -> bool {
        matches!(
            self,
            IssueStatus::Resolved | IssueStatus::ResolvedInNextRelease
        )
    }
}

impl std::fmt::Display for IssueStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Substatus of an unresolved issue reopened by an event after a resolution.
pub const REGRESSED: &str = "regressed";
/// Substatus of an unresolved issue whose ignore condition was met.
pub const IGNORE_LAPSED: &str = "ignore_lapsed";

/// A row of `issue_status`: one status change. The row with the highest `version` of an issue is
/// its current status; an issue without rows is unresolved.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct IssueStatusRow {
    /// Project.
    pub project_id: u64,
    /// Issue.
    pub issue_id: u64,
    /// [`IssueStatus::as_str`].
    pub status: String,
    /// [`REGRESSED`] for an issue an event reopened, otherwise empty.
    pub substatus: String,
    /// For a resolved issue: when it was resolved (Unix ms), which also identifies the
    /// resolution; for a regressed issue: the resolution the regression reopened.
    pub resolution: u64,
    /// For [`IssueStatus::ResolvedInNextRelease`]: the issue's latest release at the resolution.
    pub resolved_in_release: String,
    /// For an ignored issue: it lapses after this many more events (0: no count condition).
    pub ignore_until_count: u64,
    /// The issue's event count when it was ignored.
    pub ignore_count_base: u64,
    /// For an ignored issue: it lapses at this time, Unix seconds (0: no date condition).
    pub ignore_until: u32,
    /// For a regressed issue: the event that reopened it.
    #[cfg_attr(feature = "clickhouse", serde(with = "clickhouse::serde::uuid"))]
    pub regression_event: Uuid,
    /// Row version; the highest wins.
    pub version: u64,
}

/// The current status row of an issue, with the server time it was written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IssueState {
    /// The latest row.
    pub row: IssueStatusRow,
    /// When ClickHouse received the row, Unix seconds (server clock).
    pub changed_at: u32,
}

/// What an issue's status means now, given its event count and the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveStatus {
    /// The status, with lapsed ignores turned back into unresolved.
    pub status: IssueStatus,
    /// [`REGRESSED`], [`IGNORE_LAPSED`] or empty.
    pub substatus: &'static str,
}

impl Default for EffectiveStatus {
    fn default() -> Self {
        EffectiveStatus {
            status: IssueStatus::Unresolved,
            substatus: "",
        }
    }
}

impl IssueState {
    /// The stored status.
    pub fn status(&self) -> IssueStatus {
        IssueStatus::parse(&self.row.status)
    }

    /// Whether the ignore condition has been met: `times_seen` (exact, merged) events in total,
    /// `now` in Unix seconds. An ignore without conditions never lapses.
    pub fn ignore_lapsed(&self, times_seen: u64, now: u32) -> bool {
        let row = &self.row;
        let by_count = row.ignore_until_count > 0
            && times_seen >= row.ignore_count_base.saturating_add(row.ignore_until_count);
        let by_date = row.ignore_until > 0 && now >= row.ignore_until;
        by_count || by_date
    }

    /// The status as the CLI and the alerter see it.
    pub fn effective(&self, times_seen: u64, now: u32) -> EffectiveStatus {
        match self.status() {
            IssueStatus::Ignored if self.ignore_lapsed(times_seen, now) => EffectiveStatus {
                status: IssueStatus::Unresolved,
                substatus: IGNORE_LAPSED,
            },
            IssueStatus::Unresolved if self.row.substatus == REGRESSED => EffectiveStatus {
                status: IssueStatus::Unresolved,
                substatus: REGRESSED,
            },
            status => EffectiveStatus {
                status,
                substatus: "",
            },
        }
    }

    /// Whether an event received at `received_ms` from `release` reopens this issue. Only events
    /// received after the resolution count, so a redelivered older event never reopens it.
    pub fn regressed_by(&self, received_ms: i64, release: &str) -> bool {
        let after = u64::try_from(received_ms).unwrap_or(0) >= self.row.resolution;
        match self.status() {
            IssueStatus::Resolved => after,
            IssueStatus::ResolvedInNextRelease => after && release != self.row.resolved_in_release,
            IssueStatus::Unresolved | IssueStatus::Ignored => false,
        }
    }

    /// The row that reopens this issue because of `event_id` (see [`Self::regressed_by`]). Its
    /// version is just above the current one, so a status change the CLI writes meanwhile (with
    /// a clock-based version) wins.
    pub fn regression(&self, event_id: Uuid) -> IssueStatusRow {
        IssueStatusRow {
            project_id: self.row.project_id,
            issue_id: self.row.issue_id,
            status: IssueStatus::Unresolved.as_str().into(),
            substatus: REGRESSED.into(),
            resolution: self.row.resolution,
            regression_event: event_id,
            version: self.row.version + 1,
            ..Default::default()
        }
    }
}

/// A status change requested by a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    /// Reopen.
    Unresolve,
    /// Resolve now.
    Resolve,
    /// Resolve in the next release.
    ResolveInNextRelease,
    /// Ignore until a condition holds (both `None`: forever).
    Ignore {
        /// Lapse after this many more events.
        count: Option<u64>,
        /// Lapse at this time, Unix seconds.
        until: Option<u32>,
    },
}

/// What an issue looked like when a user changed its status; input to [`status_row`].
#[derive(Debug, Clone, Default)]
pub struct StatusContext {
    /// Project.
    pub project_id: u64,
    /// Issue.
    pub issue_id: u64,
    /// The current row's version (0: none).
    pub current_version: u64,
    /// Exact event count.
    pub times_seen: u64,
    /// The latest release seen.
    pub last_release: String,
    /// Unix ms now.
    pub now_ms: u64,
}

/// The row recording `change`. Its version (and, for resolutions, its resolution id) is the
/// current time, kept above the current version so it always wins.
pub fn status_row(change: &StatusChange, context: &StatusContext) -> IssueStatusRow {
    let version = context.now_ms.max(context.current_version + 1);
    let mut row = IssueStatusRow {
        project_id: context.project_id,
        issue_id: context.issue_id,
        version,
        ..Default::default()
    };
    match change {
        StatusChange::Unresolve => row.status = IssueStatus::Unresolved.as_str().into(),
        StatusChange::Resolve => {
            row.status = IssueStatus::Resolved.as_str().into();
            row.resolution = version;
        }
        StatusChange::ResolveInNextRelease => {
            row.status = IssueStatus::ResolvedInNextRelease.as_str().into();
            row.resolution = version;
            row.resolved_in_release = context.last_release.clone();
        }
        StatusChange::Ignore { count, until } => {
            row.status = IssueStatus::Ignored.as_str().into();
            row.ignore_until_count = count.unwrap_or(0);
            row.ignore_count_base = context.times_seen;
            row.ignore_until = until.unwrap_or(0);
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> StatusContext {
        StatusContext {
            project_id: 1,
            issue_id: 7,
            current_version: 5,
            times_seen: 10,
            last_release: "1.0".into(),
            now_ms: 1_000,
        }
    }

    fn state(change: StatusChange) -> IssueState {
        IssueState {
            row: status_row(&change, &context()),
            changed_at: 0,
        }
    }

    #[test]
    fn statuses_round_trip_and_unknown_is_unresolved() {
        for status in IssueStatus::ALL {
            assert_eq!(IssueStatus::parse(status.as_str()), status);
        }
        assert_eq!(IssueStatus::parse("???"), IssueStatus::Unresolved);
    }

    #[test]
    fn resolved_reopens_only_for_events_received_after_the_resolution() {
        let resolved = state(StatusChange::Resolve);
        assert_eq!(resolved.row.resolution, 1_000);
        assert!(!resolved.regressed_by(999, "1.0"));
        assert!(resolved.regressed_by(1_000, "1.0"));
        let regression = resolved.regression(Uuid::nil());
        assert_eq!(
            (
                regression.status.as_str(),
                regression.substatus.as_str(),
                regression.resolution,
                regression.version
            ),
            ("unresolved", REGRESSED, 1_000, 1_001)
        );
    }

    #[test]
    fn next_release_reopens_only_for_another_release() {
        let resolved = state(StatusChange::ResolveInNextRelease);
        assert_eq!(resolved.row.resolved_in_release, "1.0");
        assert!(!resolved.regressed_by(2_000, "1.0"));
        assert!(resolved.regressed_by(2_000, "1.1"));
        assert!(!state(StatusChange::Unresolve).regressed_by(2_000, "1.1"));
        assert!(
            !state(StatusChange::Ignore {
                count: None,
                until: None
            })
            .regressed_by(2_000, "1.1")
        );
    }

    #[test]
    fn ignores_lapse_by_count_or_date() {
        let forever = state(StatusChange::Ignore {
            count: None,
            until: None,
        });
        assert_eq!(
            forever.effective(1_000_000, u32::MAX).status,
            IssueStatus::Ignored
        );
        let by_count = state(StatusChange::Ignore {
            count: Some(3),
            until: None,
        });
        assert_eq!(by_count.effective(12, 0).status, IssueStatus::Ignored);
        assert_eq!(
            by_count.effective(13, 0),
            EffectiveStatus {
                status: IssueStatus::Unresolved,
                substatus: IGNORE_LAPSED
            }
        );
        let by_date = state(StatusChange::Ignore {
            count: None,
            until: Some(500),
        });
        assert_eq!(by_date.effective(10, 499).status, IssueStatus::Ignored);
        assert_eq!(by_date.effective(10, 500).status, IssueStatus::Unresolved);
    }

    #[test]
    fn versions_always_move_forward() {
        let mut ctx = context();
        ctx.current_version = 5_000;
        assert_eq!(status_row(&StatusChange::Resolve, &ctx).version, 5_001);
    }
}
