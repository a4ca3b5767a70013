//! The open-loop schedule: the intended send time of every event, fixed before the run starts, so
//! a slow server can never slow the sender down (no coordinated omission). Pure arithmetic.

use std::time::Duration;

use crate::scenario::Phase;

/// Intended send offsets (from the run's start) of an open-loop run.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// (start offset in seconds, first event index, event count, rate) per phase.
    phases: Vec<(f64, u64, u64, f64)>,
    /// At most this many events.
    limit_events: u64,
    /// No event at or after this offset.
    limit_secs: f64,
}

impl Schedule {
    /// A schedule over `phases` (an infinite last phase is allowed when `limit_events` is set),
    /// stopping at whichever of `limit_events` and `limit` comes first.
    pub fn new(phases: &[Phase], limit_events: Option<u64>, limit: Option<Duration>) -> Self {
        let mut out = Vec::with_capacity(phases.len());
        let (mut start, mut index) = (0.0, 0u64);
        for phase in phases {
            let count = if phase.duration_secs.is_finite() {
                // Events whose intended time falls inside the phase: i / rate < duration.
                (phase.duration_secs * phase.rate - 1e-9).ceil().max(0.0) as u64
            } else {
                u64::MAX
            };
            out.push((start, index, count, phase.rate));
            start += phase.duration_secs;
            index = index.saturating_add(count);
        }
        Schedule {
            phases: out,
            limit_events: limit_events.unwrap_or(u64::MAX),
            limit_secs: limit.map_or(f64::INFINITY, |d| d.as_secs_f64()),
        }
    }

    /// The intended send time of event `index`, or `None` past the end of the run.
    pub fn intended(&self, index: u64) -> Option<Duration> {
        if index >= self.limit_events {
            return None;
        }
        let &(start, first, count, rate) = self
            .phases
            .iter()
            .find(|(_, first, count, _)| index < first.saturating_add(*count))?;
        debug_assert!(index >= first && index - first < count);
        let offset = start + (index - first) as f64 / rate;
        (offset < self.limit_secs).then(|| Duration::from_nanos((offset * 1e9).round() as u64))
    }

    /// How many events the schedule holds (`u64::MAX` when unbounded, which a validated scenario
    /// never is).
    pub fn planned(&self) -> u64 {
        // Intended times increase with the index, so search for the first index past the end.
        let (mut lo, mut hi) = (0u64, self.limit_events);
        if hi == u64::MAX && self.limit_secs.is_infinite() {
            let last = self.phases.last().map_or(0, |p| p.1.saturating_add(p.2));
            hi = last;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.intended(mid).is_some() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Every intended offset, in order.
    pub fn iter(&self) -> impl Iterator<Item = Duration> + '_ {
        (0u64..).map_while(|i| self.intended(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(duration_secs: f64, rate: f64) -> Phase {
        Phase {
            duration_secs,
            rate,
        }
    }

    #[test]
    fn constant_rate_spaces_events_evenly() {
        let s = Schedule::new(&[phase(2.0, 100.0)], None, None);
        assert_eq!(s.planned(), 200);
        assert_eq!(s.intended(0), Some(Duration::ZERO));
        assert_eq!(s.intended(1), Some(Duration::from_millis(10)));
        assert_eq!(s.intended(150), Some(Duration::from_millis(1500)));
        assert_eq!(s.intended(199), Some(Duration::from_millis(1990)));
        assert_eq!(s.intended(200), None);
        let all: Vec<Duration> = s.iter().collect();
        assert_eq!(all.len(), 200);
        assert!(
            all.windows(2)
                .all(|w| w[1] - w[0] == Duration::from_millis(10))
        );
    }

    #[test]
    fn count_and_duration_bound_whichever_comes_first() {
        let by_count = Schedule::new(&[phase(10.0, 100.0)], Some(50), None);
        assert_eq!(by_count.planned(), 50);
        assert_eq!(by_count.intended(50), None);
        let by_time = Schedule::new(
            &[phase(f64::INFINITY, 100.0)],
            Some(1_000_000),
            Some(Duration::from_millis(2500)),
        );
        assert_eq!(by_time.planned(), 250);
        let only_count = Schedule::new(&[phase(f64::INFINITY, 1000.0)], Some(1234), None);
        assert_eq!(only_count.planned(), 1234);
        assert_eq!(only_count.intended(1233), Some(Duration::from_millis(1233)));
    }

    #[test]
    fn phases_follow_each_other() {
        let s = Schedule::new(
            &[phase(2.0, 10.0), phase(1.0, 1000.0), phase(2.0, 10.0)],
            None,
            None,
        );
        assert_eq!(s.planned(), 20 + 1000 + 20);
        assert_eq!(s.intended(19), Some(Duration::from_millis(1900)));
        assert_eq!(s.intended(20), Some(Duration::from_secs(2)));
        assert_eq!(s.intended(21), Some(Duration::from_millis(2001)));
        assert_eq!(s.intended(1020), Some(Duration::from_secs(3)));
        assert_eq!(s.intended(1039), Some(Duration::from_millis(4900)));
        assert_eq!(s.intended(1040), None);
        // A fractional rate still lands every event inside its phase.
        let odd = Schedule::new(&[phase(1.0, 3.0), phase(1.0, 1.0)], None, None);
        let times: Vec<f64> = odd.iter().map(|d| d.as_secs_f64()).collect();
        assert_eq!(times.len(), 4);
        assert!((times[2] - 2.0 / 3.0).abs() < 1e-9);
        assert!((times[3] - 1.0).abs() < 1e-9);
        // A time bound cuts the phases short.
        let cut = Schedule::new(
            &[phase(2.0, 10.0), phase(1.0, 1000.0)],
            None,
            Some(Duration::from_millis(2500)),
        );
        assert_eq!(cut.planned(), 20 + 500);
    }
}
