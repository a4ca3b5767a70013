//! Scenarios: what to send, how fast and for how long, read from TOML (the shipped ones are
//! compiled in, see `scenarios/`). Validation happens here, once, with errors naming the key; a
//! valid scenario is always bounded in time or count, so a run always stops by itself.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::LoadError;

/// The scenarios shipped in `load-tests/scenarios/`, by name.
const SHIPPED: &[(&str, &str)] = &[
    ("smoke", include_str!("../scenarios/smoke.toml")),
    ("steady-1k", include_str!("../scenarios/steady-1k.toml")),
    ("max-ingest", include_str!("../scenarios/max-ingest.toml")),
    ("burst", include_str!("../scenarios/burst.toml")),
    (
        "python-5k-max",
        include_str!("../scenarios/python-5k-max.toml"),
    ),
    (
        "python-5k-steady",
        include_str!("../scenarios/python-5k-steady.toml"),
    ),
    ("api-5m", include_str!("../scenarios/api-5m.toml")),
];

/// The names of the shipped scenarios.
pub fn shipped_names() -> Vec<&'static str> {
    SHIPPED.iter().map(|(name, _)| *name).collect()
}

/// The longest run a scenario may ask for.
pub const MAX_DURATION_SECS: f64 = 24.0 * 3600.0;
/// The smallest event size a scenario may ask for: an event with its stack trace trimmed to the
/// minimum still needs about this much.
pub const MIN_EVENT_BYTES: usize = 4096;
/// The largest event size a scenario may ask for.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A constant (or phased) arrival rate, independent of how fast the server answers.
    OpenLoop,
    /// `connections` workers, each sending its next event as soon as the previous one is answered.
    MaxThroughput,
}

/// One stretch of an open-loop run at one rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// How long the phase lasts.
    pub duration_secs: f64,
    /// Events per second during the phase.
    pub rate: f64,
}

/// An inclusive range of counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountRange {
    /// Smallest value.
    pub min: usize,
    /// Largest value.
    pub max: usize,
}

/// Event sizes: each event draws a target size log-uniformly from `[min_bytes, max_bytes]`
/// (the size of the event JSON before compression) and is trimmed or padded to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeRange {
    /// Smallest event payload, bytes.
    pub min_bytes: usize,
    /// Largest event payload, bytes.
    pub max_bytes: usize,
}

/// Relative weights of the SDK platforms the events imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlatformWeights {
    /// Python (Django) events.
    pub python: u32,
    /// JavaScript (Node, Express) events.
    pub javascript: u32,
    /// Java (Spring) events.
    pub java: u32,
    /// Rust (axum, tokio) events.
    pub rust: u32,
}

impl Default for PlatformWeights {
    fn default() -> Self {
        PlatformWeights {
            python: 4,
            javascript: 3,
            java: 2,
            rust: 1,
        }
    }
}

/// What the events look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventMix {
    /// Platform weights; each issue belongs to one platform.
    pub platforms: PlatformWeights,
    /// Distinct issues (grouping hashes) the events fall into.
    pub issues: u32,
    /// How skewed events are over issues: issue k gets weight `1 / (k + 1)^skew` (0: uniform).
    /// The first `issues` events visit every issue once whatever the skew.
    pub issue_skew: f64,
    /// Stack-trace length.
    pub frames: CountRange,
    /// Event payload sizes.
    pub size: SizeRange,
    /// Distinct releases events are spread over.
    pub releases: u32,
    /// Gzip request bodies (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// Pre-generate this many events before the run and send them over and over, each time with
    /// a fresh `event_id` (0: generate every event). Generating a realistic event costs more CPU
    /// than a server spends ingesting it; on a machine shared with the server a pool keeps the
    /// harness from being what is measured.
    pub pool: usize,
}

impl Default for EventMix {
    fn default() -> Self {
        EventMix {
            platforms: PlatformWeights::default(),
            issues: 100,
            issue_skew: 1.0,
            frames: CountRange { min: 5, max: 60 },
            size: SizeRange {
                min_bytes: 4 * 1024,
                max_bytes: 64 * 1024,
            },
            releases: 5,
            gzip: false,
            pool: 0,
        }
    }
}

/// A load scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in report file names.
    pub name: String,
    /// What the scenario is for.
    #[serde(default)]
    pub description: String,
    /// Pacing.
    pub mode: Mode,
    /// Open loop: events per second (ignored when `phases` is set).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Open loop: successive rates (a burst scenario); the run ends after the last phase.
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// Max throughput: concurrent connections, each with one request in flight.
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Open loop: requests in flight at most; an event due while this many are outstanding is
    /// counted as dropped instead of being sent late.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Stop after this long (whichever of `duration_secs` and `events` comes first).
    #[serde(default)]
    pub duration_secs: Option<f64>,
    /// Stop after this many events.
    #[serde(default)]
    pub events: Option<u64>,
    /// Per-request timeout; a timed-out request counts as a transport error.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: f64,
    /// Seed of the event generator: the same seed yields the same events (ids and times aside).
    #[serde(default)]
    pub seed: u64,
    /// Event contents.
    #[serde(default)]
    pub mix: EventMix,
}

fn default_connections() -> usize {
    16
}

fn default_max_in_flight() -> usize {
    512
}

fn default_request_timeout() -> f64 {
    10.0
}

/// Command-line overrides of a scenario's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// New duration bound.
    pub duration_secs: Option<f64>,
    /// New event count bound.
    pub events: Option<u64>,
    /// New constant rate (replaces phases; switches nothing else).
    pub rate: Option<f64>,
    /// New connection count.
    pub connections: Option<usize>,
    /// New seed.
    pub seed: Option<u64>,
    /// Force gzip on or off.
    pub gzip: Option<bool>,
    /// New pool size.
    pub pool: Option<usize>,
}

impl Scenario {
    /// Parses and validates scenario TOML; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, LoadError> {
        let scenario: Scenario =
            toml::from_str(text).map_err(|source| LoadError::ScenarioParse {
                name: origin.to_owned(),
                source,
            })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// A shipped scenario by name.
    pub fn shipped(name: &str) -> Result<Self, LoadError> {
        let (_, text) = SHIPPED
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| LoadError::UnknownScenario(name.to_owned()))?;
        Self::from_toml(text, name)
    }

    /// A shipped scenario name, or a path to a TOML file.
    pub fn load(name_or_path: &str) -> Result<Self, LoadError> {
        if SHIPPED.iter().any(|(n, _)| *n == name_or_path) {
            return Self::shipped(name_or_path);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(LoadError::UnknownScenario(name_or_path.to_owned()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::ScenarioRead {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Applies command-line overrides, then validates again.
    pub fn apply(&mut self, overrides: &Overrides) -> Result<(), LoadError> {
        if let Some(d) = overrides.duration_secs {
            self.duration_secs = Some(d);
        }
        if let Some(n) = overrides.events {
            self.events = Some(n);
        }
        if let Some(rate) = overrides.rate {
            self.rate = Some(rate);
            self.phases.clear();
        }
        if let Some(c) = overrides.connections {
            self.connections = c;
        }
        if let Some(seed) = overrides.seed {
            self.seed = seed;
        }
        if let Some(gzip) = overrides.gzip {
            self.mix.gzip = gzip;
        }
        if let Some(pool) = overrides.pool {
            self.mix.pool = pool;
        }
        self.validate()
    }

    /// The open-loop phases: `phases`, or one phase at `rate` lasting `duration_secs` (unbounded
    /// when only the event count bounds the run).
    pub fn open_loop_phases(&self) -> Vec<Phase> {
        if !self.phases.is_empty() {
            return self.phases.clone();
        }
        vec![Phase {
            duration_secs: self.duration_secs.unwrap_or(f64::INFINITY),
            rate: self.rate.unwrap_or(0.0),
        }]
    }

    /// The time bound: `duration_secs`, or the phases' total, whichever is shorter.
    pub fn time_bound(&self) -> Option<Duration> {
        let phases: f64 = self.phases.iter().map(|p| p.duration_secs).sum();
        let bound = match (self.duration_secs, self.phases.is_empty()) {
            (Some(d), true) => d,
            (Some(d), false) => d.min(phases),
            (None, false) => phases,
            (None, true) => return None,
        };
        Some(Duration::from_secs_f64(bound))
    }

    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |key: &'static str, reason: String| LoadError::ScenarioInvalid {
            name: self.name.clone(),
            key,
            reason,
        };
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("name", "letters, digits, '-' and '_' only".into()));
        }
        if let Some(d) = self.duration_secs
            && !(positive(d) && d <= MAX_DURATION_SECS)
        {
            return Err(bad(
                "duration_secs",
                format!("must be in (0, {MAX_DURATION_SECS}], got {d}"),
            ));
        }
        if self.events == Some(0) {
            return Err(bad("events", "must be at least 1".into()));
        }
        if self.duration_secs.is_none() && self.events.is_none() && self.phases.is_empty() {
            return Err(bad(
                "duration_secs",
                "set duration_secs, events or phases: a run must be bounded".into(),
            ));
        }
        if !(positive(self.request_timeout_secs) && self.request_timeout_secs <= 600.0) {
            return Err(bad("request_timeout_secs", "must be in (0, 600]".into()));
        }
        match self.mode {
            Mode::OpenLoop => {
                if self.phases.is_empty() {
                    match self.rate {
                        Some(r) if positive(r) => {}
                        _ => {
                            return Err(bad(
                                "rate",
                                "open-loop needs a positive rate or phases".into(),
                            ));
                        }
                    }
                }
                for p in &self.phases {
                    if !(positive(p.duration_secs) && positive(p.rate)) {
                        return Err(bad(
                            "phases",
                            "every phase needs a positive duration_secs and rate".into(),
                        ));
                    }
                }
                if self.phases.iter().map(|p| p.duration_secs).sum::<f64>() > MAX_DURATION_SECS {
                    return Err(bad("phases", "longer than 24 h in total".into()));
                }
                if self.max_in_flight == 0 || self.max_in_flight > 100_000 {
                    return Err(bad("max_in_flight", "must be in [1, 100000]".into()));
                }
            }
            Mode::MaxThroughput => {
                if !self.phases.is_empty() {
                    return Err(bad("phases", "only open-loop scenarios have phases".into()));
                }
            }
        }
        if self.connections == 0 || self.connections > 10_000 {
            return Err(bad("connections", "must be in [1, 10000]".into()));
        }
        let mix = &self.mix;
        let w = mix.platforms;
        if u64::from(w.python) + u64::from(w.javascript) + u64::from(w.java) + u64::from(w.rust)
            == 0
        {
            return Err(bad(
                "mix.platforms",
                "at least one weight must be > 0".into(),
            ));
        }
        if mix.issues == 0 {
            return Err(bad("mix.issues", "must be at least 1".into()));
        }
        if !(mix.issue_skew.is_finite() && (0.0..=4.0).contains(&mix.issue_skew)) {
            return Err(bad("mix.issue_skew", "must be in [0, 4]".into()));
        }
        if mix.frames.min < 3 || mix.frames.min > mix.frames.max || mix.frames.max > 250 {
            return Err(bad("mix.frames", "need 3 <= min <= max <= 250".into()));
        }
        if mix.size.min_bytes < MIN_EVENT_BYTES
            || mix.size.min_bytes > mix.size.max_bytes
            || mix.size.max_bytes > MAX_EVENT_BYTES
        {
            return Err(bad(
                "mix.size",
                format!("need {MIN_EVENT_BYTES} <= min_bytes <= max_bytes <= {MAX_EVENT_BYTES}"),
            ));
        }
        if mix.releases == 0 {
            return Err(bad("mix.releases", "must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_parses_and_is_bounded() {
        assert_eq!(
            shipped_names(),
            [
                "smoke",
                "steady-1k",
                "max-ingest",
                "burst",
                "python-5k-max",
                "python-5k-steady",
                "api-5m"
            ]
        );
        for name in shipped_names() {
            let s = Scenario::shipped(name).expect(name);
            assert_eq!(s.name, name);
            assert!(!s.description.is_empty(), "{name}");
            assert!(s.time_bound().is_some() || s.events.is_some(), "{name}");
        }
        let smoke = Scenario::shipped("smoke").expect("smoke");
        assert_eq!(smoke.mode, Mode::OpenLoop);
        assert!(smoke.time_bound().expect("bound") <= Duration::from_secs(10));
        let steady = Scenario::shipped("steady-1k").expect("steady");
        assert_eq!(steady.rate, Some(1000.0));
        assert_eq!(steady.duration_secs, Some(60.0));
        let max = Scenario::shipped("max-ingest").expect("max");
        assert_eq!(max.mode, Mode::MaxThroughput);
        assert_eq!(max.connections, 64);
        let burst = Scenario::shipped("burst").expect("burst");
        assert_eq!(burst.phases.len(), 3);
        assert!(burst.phases[1].rate > burst.phases[0].rate * 5.0);
        assert_eq!(burst.phases[0].rate, burst.phases[2].rate);
    }

    #[test]
    fn load_accepts_names_and_files() {
        assert!(Scenario::load("smoke").is_ok());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mine.toml");
        std::fs::write(
            &path,
            "name = \"mine\"\nmode = \"max-throughput\"\nconnections = 4\nevents = 10\n[mix]\nissues = 3\ngzip = true\n",
        )
        .expect("write");
        let s = Scenario::load(path.to_str().expect("utf-8")).expect("file");
        assert_eq!(s.connections, 4);
        assert_eq!(s.mix.issues, 3);
        assert!(s.mix.gzip);
        assert_eq!(s.mix.frames, EventMix::default().frames);
        assert!(matches!(
            Scenario::load("no-such-scenario"),
            Err(LoadError::UnknownScenario(_))
        ));
    }

    #[test]
    fn invalid_scenarios_name_the_key() {
        let cases = [
            (
                "name = \"x\"\nmode = \"open-loop\"\nrate = 10.0\n",
                "duration_secs",
            ),
            ("name = \"x\"\nmode = \"open-loop\"\nevents = 5\n", "rate"),
            (
                "name = \"x\"\nmode = \"max-throughput\"\nevents = 5\nconnections = 0\n",
                "connections",
            ),
            (
                "name = \"x\"\nmode = \"max-throughput\"\nevents = 5\n[mix]\nsize = { min_bytes = 100, max_bytes = 200 }\n",
                "mix.size",
            ),
            (
                "name = \"x\"\nmode = \"max-throughput\"\nevents = 5\n[mix]\nframes = { min = 9, max = 5 }\n",
                "mix.frames",
            ),
            (
                "name = \"x\"\nmode = \"max-throughput\"\nevents = 5\n[[phases]]\nduration_secs = 1.0\nrate = 1.0\n",
                "phases",
            ),
        ];
        for (text, key) in cases {
            match Scenario::from_toml(text, "x") {
                Err(LoadError::ScenarioInvalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            Scenario::from_toml("name = \"x\"\nmode = \"open-loop\"\nrte = 1\n", "x"),
            Err(LoadError::ScenarioParse { .. })
        ));
    }

    #[test]
    fn overrides_replace_bounds_and_rate() {
        let mut s = Scenario::shipped("burst").expect("burst");
        s.apply(&Overrides {
            rate: Some(50.0),
            duration_secs: Some(2.0),
            events: Some(70),
            gzip: Some(true),
            ..Overrides::default()
        })
        .expect("valid");
        assert!(s.phases.is_empty());
        assert_eq!(s.rate, Some(50.0));
        assert_eq!(s.time_bound(), Some(Duration::from_secs(2)));
        assert_eq!(s.events, Some(70));
        assert!(s.mix.gzip);
        assert!(
            s.apply(&Overrides {
                duration_secs: Some(-1.0),
                ..Overrides::default()
            })
            .is_err()
        );
    }
}
