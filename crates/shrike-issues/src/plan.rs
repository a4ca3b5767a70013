//! What a batch of events opens, reopens and announces.
//!
//! A hash owned by another issue (merged) never opens an issue of its own. An event received after
//! an issue's resolution reopens it (a status row, written before the events) and announces a
//! regression once per (project, issue, resolution). If the grouper died after writing that row
//! but before announcing, the redelivered event finds the issue regressed by itself and announces
//! then. Ignore conditions are not decided here: readers compute when they lapse.

use crate::lifecycle::{IssueState, REGRESSED};
use crate::{IssueRow, IssueStatusRow, issue_id_for_hash};
use shrike_messages::pb;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// What decides about an event's issue: its header, id, hash and the fields that describe an issue.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueEvent {
    /// The message header (copied into activity).
    pub meta: pb::Meta,
    /// The event id.
    pub event_id: Uuid,
    /// Its grouping hash.
    pub hash: String,
    /// What describes its issue.
    pub summary: pb::EventSummary,
}

/// What was announced on the issue-activity topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announced {
    /// (project, issue) pairs announced as new.
    pub new: HashSet<(u64, u64)>,
    /// (project, issue, resolution) triples announced as regressions.
    pub regressions: HashSet<(u64, u64, u64)>,
}

impl Announced {
    /// Adds what `other` announced.
    pub fn extend(&mut self, other: Announced) {
        self.new.extend(other.new);
        self.regressions.extend(other.regressions);
    }

    /// Records what one issue-activity message announced.
    pub fn record(&mut self, activity: &pb::IssueActivity) {
        let Some(meta) = activity.meta.as_ref() else {
            return;
        };
        // Any activity for a hash means the hash's own issue was announced as new.
        let own = if activity.primary_hash.is_empty() {
            activity.issue_id
        } else {
            issue_id_for_hash(&activity.primary_hash)
        };
        self.new.insert((meta.project_id, own));
        if activity.kind == pb::issue_activity::Kind::Regression as i32 {
            self.regressions
                .insert((meta.project_id, activity.issue_id, activity.resolution));
        }
    }
}

/// What the store said about a batch's hashes and issues.
#[derive(Debug, Clone, Default)]
pub struct Lookups {
    /// The issue owning each merged hash, by (project, hash).
    pub targets: HashMap<(u64, String), u64>,
    /// Current statuses, by (project, issue).
    pub states: HashMap<(u64, u64), IssueState>,
}

/// What a closed batch writes and announces.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Rows for `issues` (issues opened by this batch).
    pub issues: Vec<IssueRow>,
    /// Rows for `issue_status` (regressions).
    pub statuses: Vec<IssueStatusRow>,
    /// Activity to produce.
    pub activity: Vec<pb::IssueActivity>,
    /// What the activity announces.
    pub announcing: Announced,
}

/// The `issues` row describing the issue `event` opened; `version` is the time, Unix ms.
pub fn issue_row(event: &IssueEvent, version: u64) -> IssueRow {
    let fields = &event.summary;
    let value = if fields.exception_value.is_empty() {
        &fields.message
    } else {
        &fields.exception_value
    };
    IssueRow {
        project_id: event.meta.project_id,
        issue_id: issue_id_for_hash(&event.hash),
        primary_hash: event.hash.clone(),
        title: fields.title.clone(),
        culprit: fields.culprit.clone(),
        ty: fields.exception_type.clone(),
        value: value.clone(),
        level: fields.level.clone(),
        platform: fields.platform.clone(),
        version,
    }
}

/// Decides what a batch writes and announces, given what was announced before and the store's
/// lookups; `now_ms` versions the rows it opens.
pub fn plan<'a>(
    events: impl IntoIterator<Item = &'a IssueEvent>,
    lookups: &Lookups,
    announced: &Announced,
    now_ms: u64,
) -> Plan {
    let mut plan = Plan::default();
    let mut states = lookups.states.clone();
    for event in events {
        let project = event.meta.project_id;
        let own = issue_id_for_hash(&event.hash);
        let issue = lookups
            .targets
            .get(&(project, event.hash.clone()))
            .copied()
            .unwrap_or(own);
        let activity = |kind: pb::issue_activity::Kind, resolution: u64| pb::IssueActivity {
            meta: Some(event.meta.clone()),
            kind: kind as i32,
            issue_id: issue,
            primary_hash: event.hash.clone(),
            title: event.summary.title.clone(),
            culprit: event.summary.culprit.clone(),
            level: event.summary.level.clone(),
            resolution,
        };
        // A hash merged into another issue belongs to that issue and opens none of its own.
        let key = (project, own);
        if issue == own && !announced.new.contains(&key) && !plan.announcing.new.contains(&key) {
            plan.issues.push(issue_row(event, now_ms));
            plan.activity
                .push(activity(pb::issue_activity::Kind::New, 0));
            plan.announcing.new.insert(key);
        }
        if let Some(state) = states.get_mut(&(project, issue)) {
            let resolution = state.row.resolution;
            let triple = (project, issue, resolution);
            let unannounced = !announced.regressions.contains(&triple)
                && !plan.announcing.regressions.contains(&triple);
            if state.regressed_by(event.meta.received_ms, &event.summary.release) {
                let row = state.regression(event.event_id);
                state.row = row.clone();
                plan.statuses.push(row);
                if unannounced {
                    plan.activity
                        .push(activity(pb::issue_activity::Kind::Regression, resolution));
                    plan.announcing.regressions.insert(triple);
                }
            } else if unannounced
                && state.row.substatus == REGRESSED
                && state.row.regression_event == event.event_id
            {
                // This event reopened the issue before a crash kept the news from going out.
                plan.activity
                    .push(activity(pb::issue_activity::Kind::Regression, resolution));
                plan.announcing.regressions.insert(triple);
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{self, IssueStatus, StatusChange};

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn event(hash: &str, received_ms: i64) -> IssueEvent {
        let event_id = Uuid::new_v4();
        IssueEvent {
            meta: shrike_messages::meta(1, event_id, received_ms),
            event_id,
            hash: hash.into(),
            summary: pb::EventSummary::default(),
        }
    }

    fn resolved(issue: u64, at_ms: u64) -> IssueState {
        let context = lifecycle::StatusContext {
            project_id: 1,
            issue_id: issue,
            now_ms: at_ms,
            ..Default::default()
        };
        IssueState {
            row: lifecycle::status_row(&StatusChange::Resolve, &context),
            changed_at: 0,
        }
    }

    #[test]
    fn a_new_hash_opens_its_issue_once() {
        let batch = [event(A, 1), event(A, 2)];
        let plan = plan(&batch, &Lookups::default(), &Announced::default(), 77);
        assert_eq!(plan.issues.len(), 1);
        assert_eq!(
            (plan.issues[0].issue_id, plan.issues[0].version),
            (issue_id_for_hash(A), 77)
        );
        assert_eq!(plan.activity.len(), 1);
        assert_eq!(plan.activity[0].kind, pb::issue_activity::Kind::New as i32);
        let mut announced = Announced::default();
        announced.extend(plan.announcing);
        let again = super::plan(&batch, &Lookups::default(), &announced, 78);
        assert!(again.issues.is_empty() && again.activity.is_empty());
    }

    #[test]
    fn a_merged_hash_opens_no_issue_and_reopens_its_target_once() {
        let target = issue_id_for_hash(A);
        let mut lookups = Lookups::default();
        lookups.targets.insert((1, B.to_owned()), target);
        lookups.states.insert((1, target), resolved(target, 1_000));
        let batch = vec![event(B, 500), event(B, 2_000), event(B, 3_000)];
        let plan = plan(&batch, &lookups, &Announced::default(), 0);
        assert!(plan.issues.is_empty());
        assert_eq!(plan.statuses.len(), 1);
        assert_eq!(plan.statuses[0].regression_event, batch[1].event_id);
        assert_eq!(plan.activity.len(), 1);
        assert!(plan.announcing.regressions.contains(&(1, target, 1_000)));
        assert_eq!(
            IssueStatus::parse(&plan.statuses[0].status),
            IssueStatus::Unresolved
        );
    }

    #[test]
    fn an_announced_regression_is_not_announced_again_but_a_lost_one_is() {
        let issue = issue_id_for_hash(A);
        let event = event(A, 2_000);
        let mut state = resolved(issue, 1_000);
        state.row = state.regression(event.event_id);
        let mut lookups = Lookups::default();
        lookups.states.insert((1, issue), state);
        let mut announced = Announced::default();
        announced.new.insert((1, issue));
        let lost = plan([&event], &lookups, &announced, 0);
        assert_eq!((lost.activity.len(), lost.statuses.len()), (1, 0));
        announced.extend(lost.announcing);
        let again = plan([&event], &lookups, &announced, 0);
        assert!(again.activity.is_empty());
        let other = plan(&[super::tests::event(A, 3_000)], &lookups, &announced, 0);
        assert!(other.activity.is_empty() && other.statuses.is_empty());
    }
}
