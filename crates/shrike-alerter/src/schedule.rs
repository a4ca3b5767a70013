//! Cron schedules: standard five-field cron syntax (`*/5 * * * *`), with an optional leading seconds
//! field (`*/10 * * * * *`) so tests need not wait minutes. Times are UTC.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    text: String,
}

/// A schedule that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid cron schedule {text:?}: {reason}")]
pub struct ScheduleError {
    text: String,
    reason: String,
}

impl Schedule {
    /// Parses a cron expression.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        let cron = parser.parse(text.trim()).map_err(|e| ScheduleError {
            text: text.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Schedule {
            cron,
            text: text.trim().to_owned(),
        })
    }

    /// The first time strictly after `after` that the schedule fires.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, m, s)
            .single()
            .expect("valid time")
    }

    #[test]
    fn five_field_schedules_fire_on_minutes() {
        let every5 = Schedule::parse("*/5 * * * *").expect("valid");
        assert_eq!(every5.next_after(at(10, 2, 30)), Some(at(10, 5, 0)));
        assert_eq!(every5.next_after(at(10, 5, 0)), Some(at(10, 10, 0)));
    }

    #[test]
    fn six_field_schedules_have_seconds() {
        let every10s = Schedule::parse("*/10 * * * * *").expect("valid");
        assert_eq!(every10s.next_after(at(10, 0, 1)), Some(at(10, 0, 10)));
    }

    #[test]
    fn rejects_nonsense() {
        assert!(Schedule::parse("every five minutes").is_err());
        assert!(Schedule::parse("61 * * * *").is_err());
    }
}
