//! CPU time and memory of the server under test, sampled from `/proc/PID/stat` and
//! `/proc/PID/status` (Linux only) while a run is going, so benchmarks can report CPU ms per
//! accepted event and peak RSS. Sampling never fails the run: a process that exits keeps its last
//! sample.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::LoadError;

/// Clock ticks per second in `/proc/PID/stat` (Linux's `USER_HZ`, 100 on every architecture the
/// kernel's ABI documents for user space).
pub const CLOCK_TICKS_PER_SEC: u64 = 100;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Peak resident set size the kernel recorded (`VmHWM`), KiB.
    pub hwm_kib: Option<u64>,
}

/// `utime + stime` from the text of `/proc/PID/stat` (fields 14 and 15, counted after the
/// parenthesized command name, which may contain spaces).
pub fn parse_stat(text: &str) -> Option<u64> {
    let after_comm = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // After the command: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` and `VmHWM` (KiB) from the text of `/proc/PID/status`.
pub fn parse_status(text: &str) -> Option<(u64, Option<u64>)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")))
}

/// Reads one sample of `pid`.
pub fn sample(pid: u32) -> Result<Sample, LoadError> {
    let read = |file: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .map_err(|source| LoadError::Process { pid, source })
    };
    let invalid = |what: &str| LoadError::Process {
        pid,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned()),
    };
    let cpu_ticks = parse_stat(&read("stat")?).ok_or_else(|| invalid("unreadable stat"))?;
    let (rss_kib, hwm_kib) =
        parse_status(&read("status")?).ok_or_else(|| invalid("unreadable status"))?;
    Ok(Sample {
        cpu_ticks,
        rss_kib,
        hwm_kib,
    })
}

/// What a monitored process used during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessReport {
    /// Process id.
    pub pid: u32,
    /// Command name (`/proc/PID/comm`).
    pub name: String,
    /// CPU time used between the first and the last sample, ms.
    pub cpu_ms: f64,
    /// `cpu_ms` divided by the accepted events.
    pub cpu_ms_per_accepted_event: Option<f64>,
    /// Largest sampled RSS, MiB.
    pub peak_rss_mib: f64,
    /// The kernel's peak RSS (`VmHWM`) at the last sample, MiB.
    pub hwm_rss_mib: Option<f64>,
    /// Samples taken.
    pub samples: u64,
}

#[derive(Debug)]
struct State {
    pid: u32,
    name: String,
    first: Sample,
    last: Sample,
    peak_rss_kib: u64,
    samples: u64,
}

/// Samples processes on an interval until stopped.
#[derive(Debug)]
pub struct Monitor {
    states: Arc<Mutex<Vec<State>>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Monitor {
    /// Takes a first sample of every process (an unreadable one is an error) and starts sampling.
    pub fn start(pids: &[u32], interval: Duration) -> Result<Self, LoadError> {
        let mut states = Vec::with_capacity(pids.len());
        for &pid in pids {
            let first = sample(pid)?;
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default();
            states.push(State {
                pid,
                name,
                first,
                last: first,
                peak_rss_kib: first.rss_kib,
                samples: 1,
            });
        }
        let states = Arc::new(Mutex::new(states));
        let (stop, mut stopped) = watch::channel(false);
        let shared = Arc::clone(&states);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = ticker.tick() => take_samples(&shared),
                    _ = stopped.changed() => break,
                }
            }
        });
        Ok(Monitor { states, stop, task })
    }

    /// Takes a last sample and reports; `accepted` divides the CPU time.
    pub async fn stop(self, accepted: u64) -> Vec<ProcessReport> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        take_samples(&self.states);
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states
            .iter()
            .map(|s| {
                let ticks = s.last.cpu_ticks.saturating_sub(s.first.cpu_ticks);
                let cpu_ms = ticks as f64 * 1000.0 / CLOCK_TICKS_PER_SEC as f64;
                ProcessReport {
                    pid: s.pid,
                    name: s.name.clone(),
                    cpu_ms,
                    cpu_ms_per_accepted_event: (accepted > 0).then(|| cpu_ms / accepted as f64),
                    peak_rss_mib: s.peak_rss_kib as f64 / 1024.0,
                    hwm_rss_mib: s.last.hwm_kib.map(|k| k as f64 / 1024.0),
                    samples: s.samples,
                }
            })
            .collect()
    }
}

fn take_samples(states: &Mutex<Vec<State>>) {
    let mut states = states.lock().unwrap_or_else(|e| e.into_inner());
    for state in states.iter_mut() {
        if let Ok(s) = sample(state.pid) {
            state.last = s;
            state.peak_rss_kib = state.peak_rss_kib.max(s.rss_kib);
            state.samples += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_and_status() {
        let stat = "4242 (shrike (up) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 1000000 5000 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(325));
        assert_eq!(parse_stat("garbage"), None);
        let status = "Name:\tshrike\nVmPeak:\t  900 kB\nVmHWM:\t  51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(parse_status(status), Some((40960, Some(51200))));
        assert_eq!(parse_status("Name: kthread\n"), None);
    }

    #[tokio::test]
    async fn samples_this_process() {
        let pid = std::process::id();
        let monitor = Monitor::start(&[pid], Duration::from_millis(10)).expect("own process");
        // Burn a little CPU so the counters move.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let reports = monitor.stop(10).await;
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].pid, pid);
        assert!(reports[0].samples >= 2);
        assert!(reports[0].peak_rss_mib > 1.0);
        assert!(reports[0].cpu_ms_per_accepted_event.is_some());
        assert!(Monitor::start(&[u32::MAX], Duration::from_millis(10)).is_err());
    }
}
