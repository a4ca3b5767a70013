//! Consumer lag: how many records each group has yet to process, per partition, from
//! librdkafka's statistics (every few seconds), as the gauge `shrike_kafka_consumer_lag` and as a
//! readiness signal: a group is falling behind when its lag stayed above a bound for a whole
//! window and did not shrink.

use rdkafka::statistics::Statistics;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often librdkafka reports statistics, milliseconds.
pub(super) const STATISTICS_INTERVAL_MS: u64 = 5_000;

/// The lag of every consumer group of this process. Cheap to clone.
#[derive(Clone, Default)]
pub struct LagBoard(Arc<Mutex<HashMap<String, GroupLag>>>);

#[derive(Default)]
struct GroupLag {
    /// Records to go per (topic, partition) assigned to this process.
    partitions: HashMap<(String, i32), i64>,
    /// Total lag over time, oldest first.
    history: VecDeque<(Instant, i64)>,
}

/// How long lag samples are kept.
const HISTORY: Duration = Duration::from_secs(300);

impl LagBoard {
    /// Takes `group`'s lag from one statistics report.
    pub(super) fn update(&self, group: &str, statistics: &Statistics) {
        let mut partitions = HashMap::new();
        for (topic, stats) in &statistics.topics {
            for partition in stats.partitions.values() {
                if partition.partition < 0 || !partition.desired {
                    continue;
                }
                // The stored offset (what the service has processed) is newer than the
                // committed one; before anything is stored, the committed lag counts; a group
                // that never committed has the whole partition to go.
                let end = if partition.ls_offset >= 0 {
                    partition.ls_offset
                } else {
                    partition.hi_offset
                };
                let lag = if partition.consumer_lag_stored >= 0 {
                    partition.consumer_lag_stored
                } else if partition.consumer_lag >= 0 {
                    partition.consumer_lag
                } else if end >= 0 && partition.lo_offset >= 0 {
                    end - partition.lo_offset
                } else {
                    continue;
                };
                partitions.insert((topic.clone(), partition.partition), lag);
            }
        }
        self.record(group, partitions, Instant::now());
    }

    fn record(&self, group: &str, partitions: HashMap<(String, i32), i64>, now: Instant) {
        let mut board = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let lag = board.entry(group.to_owned()).or_default();
        for ((topic, partition), records) in &partitions {
            gauge(group, topic, *partition).set(*records as f64);
        }
        for (topic, partition) in lag.partitions.keys() {
            if !partitions.contains_key(&(topic.clone(), *partition)) {
                gauge(group, topic, *partition).set(0.0);
            }
        }
        let total = partitions.values().sum();
        lag.partitions = partitions;
        lag.history.push_back((now, total));
        while lag
            .history
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > HISTORY)
        {
            lag.history.pop_front();
        }
    }

    /// `group`'s records to go in its last report, over the partitions this process has.
    pub fn total(&self, group: &str) -> Option<i64> {
        let board = self.0.lock().unwrap_or_else(|p| p.into_inner());
        board.get(group)?.history.back().map(|&(_, total)| total)
    }

    /// The groups falling behind: lag above `max` in every report of the last `over`, not
    /// shrinking, with reports covering all of `over`. A group that was just started, or that
    /// is catching up, is not.
    pub fn behind(&self, max: u64, over: Duration) -> Vec<(String, i64)> {
        self.behind_at(max, over, Instant::now())
    }

    /// Readiness: why this process's consumers are not keeping up (see [`LagBoard::behind`]),
    /// if they are not.
    pub fn keeping_up(&self, max: u64, over: Duration) -> Result<(), String> {
        let behind = self.behind(max, over);
        if behind.is_empty() {
            return Ok(());
        }
        let why: Vec<String> = behind
            .iter()
            .map(|(group, records)| {
                format!("{group} is not keeping up: {records} records behind and not catching up")
            })
            .collect();
        Err(why.join("; "))
    }

    fn behind_at(&self, max: u64, over: Duration, now: Instant) -> Vec<(String, i64)> {
        let board = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut behind = Vec::new();
        for (group, lag) in board.iter() {
            let Some(&(first_at, _)) = lag.history.front() else {
                continue;
            };
            if now.duration_since(first_at) < over {
                continue; // not watched long enough
            }
            let recent: Vec<i64> = lag
                .history
                .iter()
                .filter(|(at, _)| now.duration_since(*at) <= over)
                .map(|&(_, total)| total)
                .collect();
            let (Some(&oldest), Some(&latest)) = (recent.first(), recent.last()) else {
                continue;
            };
            if recent.iter().all(|&total| total > max as i64) && latest >= oldest {
                behind.push((group.clone(), latest));
            }
        }
        behind.sort();
        behind
    }
}

fn gauge(group: &str, topic: &str, partition: i32) -> metrics::Gauge {
    metrics::gauge!(
        "shrike_kafka_consumer_lag",
        "group" => group.to_owned(),
        "topic" => topic.to_owned(),
        "partition" => partition.to_string()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(records: i64) -> HashMap<(String, i32), i64> {
        HashMap::from([
            (("t".to_owned(), 0), records / 2),
            (("t".to_owned(), 1), records - records / 2),
        ])
    }

    #[test]
    fn a_group_is_behind_only_when_its_lag_stays_high_and_does_not_shrink() {
        let board = LagBoard::default();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let over = Duration::from_secs(60);
        // Growing past the bound, but watched for less than the window: not yet.
        for s in (0..=50).step_by(5) {
            board.record("g", lag(1_000 + 100 * s as i64), at(s));
        }
        assert!(board.behind_at(500, over, at(50)).is_empty());
        // A full window above the bound and growing: behind.
        for s in (55..=70).step_by(5) {
            board.record("g", lag(1_000 + 100 * s as i64), at(s));
        }
        assert_eq!(
            board.behind_at(500, over, at(70)),
            vec![("g".to_owned(), 8_000)]
        );
        // Shrinking (catching up): not behind, though still above the bound.
        for s in (75..=140).step_by(5) {
            board.record("g", lag(20_000 - 100 * s as i64), at(s));
        }
        assert!(board.behind_at(500, over, at(140)).is_empty());
        // Under the bound: not behind, however it moves.
        board.record("g", lag(100), at(145));
        assert!(board.behind_at(500, over, at(145)).is_empty());
    }
}
