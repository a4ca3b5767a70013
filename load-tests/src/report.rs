//! The run's report: one serializable structure written as JSON (for machines and the benchmark
//! table) and rendered as a Markdown summary (for people). Rendering never does I/O; `write_*`
//! only writes the files it is given.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::LoadError;
use crate::procstat::ProcessReport;
use crate::scenario::{Mode, Scenario};
use crate::stats::{LatencySummary, SecondPoint, StatusCounts, Totals};
use crate::verify::EndToEnd;

/// What was generated and sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SentMix {
    /// Events sent per platform.
    pub by_platform: BTreeMap<String, u64>,
    /// Smallest event JSON sent, bytes.
    pub payload_min_bytes: u64,
    /// Largest event JSON sent, bytes.
    pub payload_max_bytes: u64,
    /// Mean event JSON size, bytes.
    pub payload_mean_bytes: f64,
    /// Mean request body size (compressed when gzip is on), bytes.
    pub body_mean_bytes: f64,
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `shrike-load` and its version.
    pub tool: String,
    /// The scenario, after command-line overrides.
    pub scenario: Scenario,
    /// The envelope endpoint.
    pub target: String,
    /// The run id, in every event's `shrike_load_run` tag.
    pub run_id: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// Events the schedule planned (open loop) or the count bound (max throughput).
    pub planned: Option<u64>,
    /// Totals and rates.
    pub totals: Totals,
    /// Answers by status.
    pub statuses: StatusCounts,
    /// Latency from intended send time to answer.
    pub latency: LatencySummary,
    /// What was sent.
    pub mix: SentMix,
    /// Per-second series.
    pub per_second: Vec<SecondPoint>,
    /// The ClickHouse end-to-end check, when requested.
    pub end_to_end: Option<EndToEnd>,
    /// Monitored processes, when requested.
    pub processes: Vec<ProcessReport>,
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> Result<String, LoadError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: &Path) -> Result<(), LoadError> {
        write_file(path, self.to_json()?.as_bytes())
    }

    /// Writes the Markdown summary.
    pub fn write_markdown(&self, path: &Path) -> Result<(), LoadError> {
        write_file(path, self.markdown().as_bytes())
    }

    /// The Markdown summary.
    pub fn markdown(&self) -> String {
        let s = &self.scenario;
        let t = &self.totals;
        let mut out = String::new();
        let pacing = match s.mode {
            Mode::OpenLoop if s.phases.is_empty() => {
                format!("open loop at {} events/s", s.rate.unwrap_or(0.0))
            }
            Mode::OpenLoop => format!(
                "open loop in phases {}",
                s.phases
                    .iter()
                    .map(|p| format!("{}/s for {} s", p.rate, p.duration_secs))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Mode::MaxThroughput => format!("max throughput, {} connections", s.connections),
        };
        let _ = writeln!(out, "## shrike-load: {}\n", s.name);
        let _ = writeln!(
            out,
            "{} against `{}`, run `{}`, started {}; {} issues, {}-{} frames, {}-{} byte events{}.\n",
            pacing,
            self.target,
            self.run_id,
            self.started_at,
            s.mix.issues,
            s.mix.frames.min,
            s.mix.frames.max,
            s.mix.size.min_bytes,
            s.mix.size.max_bytes,
            if s.mix.gzip { ", gzip" } else { "" }
        );
        let _ = writeln!(out, "| metric | value |\n| --- | --- |");
        if let Some(planned) = self.planned {
            let _ = writeln!(out, "| planned | {planned} |");
        }
        let _ = writeln!(out, "| sent | {} |", t.sent);
        let _ = writeln!(out, "| accepted (2xx) | {} |", t.accepted);
        let _ = writeln!(out, "| dropped (in-flight limit) | {} |", t.dropped);
        let _ = writeln!(out, "| elapsed | {:.2} s |", t.elapsed_secs);
        let _ = writeln!(out, "| sent rate | {:.1} /s |", t.sent_per_sec);
        let _ = writeln!(out, "| accepted rate | {:.1} /s |", t.accepted_per_sec);
        let _ = writeln!(
            out,
            "| event size (mean, min-max) | {:.0} B, {}-{} B |",
            self.mix.payload_mean_bytes, self.mix.payload_min_bytes, self.mix.payload_max_bytes
        );
        let _ = writeln!(
            out,
            "| request body (mean) | {:.0} B |",
            self.mix.body_mean_bytes
        );
        let platforms: Vec<String> = self
            .mix
            .by_platform
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        let _ = writeln!(out, "| platforms | {} |", platforms.join(", "));

        let st = &self.statuses;
        let _ = writeln!(
            out,
            "\n**Statuses**\n\n| 2xx | 429 | 413 | 5xx | other | transport errors |\n| --- | --- | --- | --- | --- | --- |"
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            st.ok_2xx,
            st.rate_limited_429,
            st.too_large_413,
            st.server_error_5xx,
            st.other_status,
            st.transport_errors
        );
        let l = &self.latency;
        let _ = writeln!(
            out,
            "\n**Latency** (ms, from the intended send time)\n\n| p50 | p90 | p99 | p99.9 | max | mean |\n| --- | --- | --- | --- | --- | --- |"
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            ms(l.p50_ms),
            ms(l.p90_ms),
            ms(l.p99_ms),
            ms(l.p999_ms),
            ms(l.max_ms),
            ms(l.mean_ms)
        );
        if let Some(e) = &self.end_to_end {
            let _ = writeln!(
                out,
                "\n**End to end** (ClickHouse database `{}`, project {})\n",
                e.database, e.project_id
            );
            let _ = writeln!(out, "| metric | value |\n| --- | --- |");
            let _ = writeln!(out, "| stored / accepted | {} / {} |", e.stored, e.expected);
            let _ = writeln!(out, "| grouped | {} |", e.grouped);
            let _ = writeln!(
                out,
                "| issues (generated issues seen) | {} ({}) |",
                e.issues, e.generated_issues
            );
            let _ = writeln!(
                out,
                "| split / merged issues | {} / {} |",
                e.split_issues, e.merged_issues
            );
            let _ = writeln!(
                out,
                "| all stored after first send | {} |",
                e.all_stored_after_secs
                    .map_or_else(|| "timed out".to_owned(), |s| format!("{s:.2} s"))
            );
            if let Some(s) = e.last_inserted_after_secs {
                let _ = writeln!(
                    out,
                    "| last insert after first send (1 s resolution) | {s:.0} s |"
                );
            }
            if let Some(r) = e.processed_per_sec {
                let _ = writeln!(out, "| fully processed rate | {r:.1} events/s |");
            }
            if let Some(q) = &e.queryable_latency {
                let _ = writeln!(
                    out,
                    "| send to queryable p50 / p90 / p99 / max ({} sampled, upper bounds) | {} / {} / {} / {} ms |",
                    q.sampled,
                    ms(q.p50_ms),
                    ms(q.p90_ms),
                    ms(q.p99_ms),
                    ms(q.max_ms)
                );
            }
        }
        if !self.processes.is_empty() {
            let _ = writeln!(
                out,
                "\n**Processes**\n\n| pid | name | CPU ms | CPU ms / accepted event | peak RSS MiB |\n| --- | --- | --- | --- | --- |"
            );
            for p in &self.processes {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {} | {:.1} |",
                    p.pid,
                    p.name,
                    p.cpu_ms,
                    p.cpu_ms_per_accepted_event
                        .map_or_else(|| "-".to_owned(), |v| format!("{v:.3}")),
                    p.hwm_rss_mib.unwrap_or(0.0).max(p.peak_rss_mib)
                );
            }
        }
        out
    }
}

/// Writes `bytes` to `path`, creating its directory.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    let io = |source| LoadError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, bytes).map_err(io)
}
