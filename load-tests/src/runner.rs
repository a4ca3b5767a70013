//! Runs a scenario: a generator thread produces request bodies ahead of the senders; the open-loop
//! dispatcher sends each on its intended time with at most `max_in_flight` outstanding (an event
//! due beyond that is dropped and counted, never sent late), the closed loop keeps `connections`
//! requests outstanding. Then the optional ClickHouse check and process sampling, and the report.
//! Every run is bounded by the scenario's count and time; it never retries a request.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::LoadError;
use crate::generator::{GeneratedEvent, Generator, Platform, Template};
use crate::procstat::Monitor;
use crate::report::{Report, SentMix};
use crate::scenario::{Mode, Scenario};
use crate::schedule::Schedule;
use crate::stats::{Outcome, Recorder, TransportError};
use crate::target::Target;
use crate::verify::{ClickHouseCheck, Verifier};

/// How and where to run a scenario.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The DSN of the server under load.
    pub dsn: String,
    /// Allow a target that is not on this machine.
    pub allow_remote: bool,
    /// Show a progress bar (only when standard error is a terminal).
    pub progress: bool,
    /// Check Shrike's ClickHouse for the run's events after sending.
    pub clickhouse: Option<ClickHouseCheck>,
    /// Processes whose CPU time and RSS to sample.
    pub process_pids: Vec<u32>,
    /// Write the JSON report here.
    pub json_path: Option<PathBuf>,
    /// Write the Markdown summary here.
    pub markdown_path: Option<PathBuf>,
    /// Write the SVG plot here.
    pub svg_path: Option<PathBuf>,
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Shared by every sender.
struct Sender {
    client: reqwest::Client,
    target: Target,
    auth: String,
    recorder: Recorder,
    platforms: [AtomicU64; 4],
    payload_min: AtomicU64,
    payload_max: AtomicU64,
}

impl Sender {
    async fn send(&self, event: GeneratedEvent, intended: Instant) {
        let sent_at = Instant::now();
        let sent_unix_ms = unix_ms(SystemTime::now());
        self.recorder
            .sent(sent_at, event.body.len(), event.payload_len);
        let index = Platform::ALL
            .iter()
            .position(|p| *p == event.platform)
            .unwrap_or(0);
        self.platforms[index].fetch_add(1, Ordering::Relaxed);
        self.payload_min
            .fetch_min(event.payload_len as u64, Ordering::Relaxed);
        self.payload_max
            .fetch_max(event.payload_len as u64, Ordering::Relaxed);
        let mut request = self
            .client
            .post(self.target.envelope_url.clone())
            .header("X-Sentry-Auth", &self.auth)
            .header("Content-Type", "application/x-sentry-envelope");
        if event.gzip {
            request = request.header("Content-Encoding", "gzip");
        }
        let outcome = match request.body(event.body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the answer so the connection goes back to the pool.
                let _ = response.bytes().await;
                Outcome::Status(status)
            }
            Err(e) if e.is_timeout() => Outcome::Transport(TransportError::Timeout),
            Err(e) if e.is_connect() => Outcome::Transport(TransportError::Connect),
            Err(_) => Outcome::Transport(TransportError::Other),
        };
        self.recorder.done(
            intended,
            Instant::now(),
            outcome,
            event.event_id,
            sent_unix_ms,
        );
    }
}

/// Starts the generator thread: events `0..limit` into a bounded channel, until the receiver goes.
/// With a pool, the pool's events are generated here, before the run, and the thread only gives
/// them fresh ids.
fn start_generator(
    generator: Generator,
    limit: u64,
    pool: usize,
) -> (mpsc::Receiver<GeneratedEvent>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1024);
    let now = || {
        let now = SystemTime::now();
        let timestamp = now
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let sent_at = chrono::DateTime::<chrono::Utc>::from(now)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        (timestamp, sent_at)
    };
    let templates: Vec<Template> = (0..(pool as u64).min(limit))
        .map(|seq| {
            let (timestamp, sent_at) = now();
            generator.template(seq, timestamp, &sent_at)
        })
        .collect();
    let handle = std::thread::spawn(move || {
        for seq in 0..limit {
            let event = if templates.is_empty() {
                let (timestamp, sent_at) = now();
                generator.generate(seq, Uuid::new_v4(), timestamp, &sent_at)
            } else {
                templates[(seq % templates.len() as u64) as usize].instantiate(seq, Uuid::new_v4())
            };
            if tx.blocking_send(event).is_err() {
                break;
            }
        }
    });
    (rx, handle)
}

fn progress_bar(show: bool, planned: Option<u64>) -> ProgressBar {
    let bar = match planned {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    if show && std::io::stderr().is_terminal() {
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(5));
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// Runs `scenario` against `options.dsn` and returns (and writes, where asked) the report.
pub async fn run(scenario: &Scenario, options: &RunOptions) -> Result<Report, LoadError> {
    scenario.validate()?;
    let target = Target::parse(&options.dsn)?;
    target.check_allowed(options.allow_remote)?;
    let project_id: u64 = target.project.parse().map_err(|_| LoadError::Dsn {
        dsn: options.dsn.clone(),
        reason: "project id out of range".into(),
    })?;
    let run_id = Uuid::new_v4().simple().to_string();
    let verifier = options
        .clickhouse
        .as_ref()
        .map(|check| Verifier::new(check, project_id, &run_id))
        .transpose()?;

    let pool = match scenario.mode {
        Mode::OpenLoop => scenario.max_in_flight.max(scenario.connections),
        Mode::MaxThroughput => scenario.connections,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .pool_idle_timeout(Duration::from_secs(90))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs_f64(scenario.request_timeout_secs))
        .tcp_nodelay(true)
        .user_agent(crate::target::CLIENT_NAME)
        .build()
        .map_err(LoadError::Client)?;

    let schedule = Schedule::new(
        &scenario.open_loop_phases(),
        scenario.events,
        scenario.time_bound(),
    );
    let planned = match scenario.mode {
        Mode::OpenLoop => Some(schedule.planned()),
        Mode::MaxThroughput => scenario.events,
    };
    let generator = Generator::new(&scenario.mix, scenario.seed, &run_id);
    let (rx, generator_thread) =
        start_generator(generator, planned.unwrap_or(u64::MAX), scenario.mix.pool);

    let monitor = if options.process_pids.is_empty() {
        None
    } else {
        Some(Monitor::start(
            &options.process_pids,
            Duration::from_millis(200),
        )?)
    };

    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // A short lead lets the generator fill its buffer before the first intended send.
    let start = Instant::now() + Duration::from_millis(50);
    let start_unix_ms = unix_ms(SystemTime::now()) + 50;
    let sender = Arc::new(Sender {
        client,
        auth: target.auth_header(),
        target: target.clone(),
        recorder: Recorder::new(start),
        platforms: Default::default(),
        payload_min: AtomicU64::new(u64::MAX),
        payload_max: AtomicU64::new(0),
    });

    let bar = progress_bar(options.progress, planned);
    let ticker = {
        let sender = Arc::clone(&sender);
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                let p = sender.recorder.progress();
                bar.set_position(p.completed + p.dropped);
                bar.set_message(format!(
                    "accepted {} failed {} dropped {}",
                    p.accepted,
                    p.completed - p.accepted,
                    p.dropped
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    match scenario.mode {
        Mode::OpenLoop => open_loop(&sender, &schedule, start, scenario.max_in_flight, rx).await,
        Mode::MaxThroughput => {
            let deadline = scenario.time_bound().map(|d| start + d);
            closed_loop(&sender, start, deadline, scenario.connections, rx).await;
        }
    }
    ticker.abort();
    bar.finish_and_clear();
    // The receiver is gone, so the generator stops at its next event.
    let _ = generator_thread.join();

    let mut summary = sender.recorder.summary();
    let end_to_end = match &verifier {
        Some(v) if !summary.accepted_events.is_empty() => {
            let first_send_unix_ms =
                start_unix_ms + summary.first_send.map_or(0, |d| d.as_millis() as u64);
            Some(
                v.verify(project_id, &summary.accepted_events, first_send_unix_ms)
                    .await?,
            )
        }
        _ => None,
    };
    let processes = match monitor {
        Some(m) => m.stop(summary.totals.accepted).await,
        None => Vec::new(),
    };
    if let Some(e) = &end_to_end {
        let start_secs = start_unix_ms / 1000;
        for (&second, &count) in &e.stored_per_second {
            // Rows inserted before the run's second 0 (clock skew) count in second 0.
            let index = second.saturating_sub(start_secs) as usize;
            while summary.seconds.len() <= index {
                let second = summary.seconds.len() as u64;
                summary.seconds.push(crate::stats::SecondPoint {
                    second,
                    ..Default::default()
                });
            }
            let point = &mut summary.seconds[index];
            point.stored = Some(point.stored.unwrap_or(0) + count);
        }
        for point in &mut summary.seconds {
            point.stored.get_or_insert(0);
        }
    }

    let sent = summary.totals.sent;
    let by_platform: BTreeMap<String, u64> = Platform::ALL
        .iter()
        .zip(&sender.platforms)
        .map(|(p, n)| (p.name().to_owned(), n.load(Ordering::Relaxed)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let mean = |total: u64| {
        if sent > 0 {
            total as f64 / sent as f64
        } else {
            0.0
        }
    };
    let mix = SentMix {
        by_platform,
        payload_min_bytes: if sent > 0 {
            sender.payload_min.load(Ordering::Relaxed)
        } else {
            0
        },
        payload_max_bytes: sender.payload_max.load(Ordering::Relaxed),
        payload_mean_bytes: mean(summary.totals.payload_bytes),
        body_mean_bytes: mean(summary.totals.bytes_sent),
    };
    let report = Report {
        tool: format!("shrike-load {}", env!("CARGO_PKG_VERSION")),
        scenario: scenario.clone(),
        target: target.envelope_url.to_string(),
        run_id,
        started_at,
        planned,
        totals: summary.totals,
        statuses: summary.statuses,
        latency: summary.latency,
        mix,
        per_second: summary.seconds,
        end_to_end,
        processes,
    };
    if let Some(path) = &options.json_path {
        report.write_json(path)?;
    }
    if let Some(path) = &options.markdown_path {
        report.write_markdown(path)?;
    }
    if let Some(path) = &options.svg_path {
        crate::plot::write_svg(&report, path)?;
    }
    Ok(report)
}

/// Sends every scheduled event at its intended time; drops those due while `max_in_flight`
/// requests are outstanding.
async fn open_loop(
    sender: &Arc<Sender>,
    schedule: &Schedule,
    start: Instant,
    max_in_flight: usize,
    mut rx: mpsc::Receiver<GeneratedEvent>,
) {
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let mut tasks = JoinSet::new();
    for offset in schedule.iter() {
        let intended = start + offset;
        tokio::time::sleep_until(intended.into()).await;
        let Some(event) = rx.recv().await else {
            break;
        };
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                let sender = Arc::clone(sender);
                tasks.spawn(async move {
                    sender.send(event, intended).await;
                    drop(permit);
                });
            }
            Err(_) => sender.recorder.dropped(intended),
        }
        while tasks.try_join_next().is_some() {}
    }
    drop(rx);
    while tasks.join_next().await.is_some() {}
}

/// `connections` workers, each sending the next event as soon as its previous one is answered,
/// until the events run out or the deadline passes.
async fn closed_loop(
    sender: &Arc<Sender>,
    start: Instant,
    deadline: Option<Instant>,
    connections: usize,
    rx: mpsc::Receiver<GeneratedEvent>,
) {
    tokio::time::sleep_until(start.into()).await;
    let rx = Arc::new(Mutex::new(rx));
    let mut workers = JoinSet::new();
    for _ in 0..connections {
        let (sender, rx) = (Arc::clone(sender), Arc::clone(&rx));
        workers.spawn(async move {
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let Some(event) = rx.lock().await.recv().await else {
                    break;
                };
                sender.send(event, Instant::now()).await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
}
