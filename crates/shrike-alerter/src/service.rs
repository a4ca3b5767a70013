//! The alerter service: runs the check on its schedule until shut down.

use crate::Schedule;
use crate::email::{AlertEmail, render};
use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use shrike_consumer::Backoff;
use shrike_issues::IssueStatus;
use shrike_store::{IssueActivity, Store, StoreError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (local relays and test servers).
    #[default]
    None,
    /// STARTTLS upgrade, required.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// The SMTP server alerts are sent through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name, when the server requires authentication.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Connection security.
    pub tls: SmtpTls,
    /// Seconds to wait for the server.
    pub timeout_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: 25,
            username: None,
            password: None,
            tls: SmtpTls::None,
            timeout_secs: 30,
        }
    }
}

/// Settings of the alerter (`[alerter]` in `shrike.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlerterConfig {
    /// Whether the check runs at all.
    pub enabled: bool,
    /// When the check runs: cron syntax, UTC, optional seconds field.
    pub schedule: String,
    /// Who gets the emails; no recipients, no emails (the check still runs and logs).
    pub recipients: Vec<String>,
    /// The sender address.
    pub from: String,
    /// Seconds an insert may take to become visible; the window ends this long before "now".
    pub settle_secs: u32,
    /// The SMTP server.
    pub smtp: SmtpConfig,
}

impl Default for AlerterConfig {
    fn default() -> Self {
        AlerterConfig {
            enabled: true,
            schedule: "*/5 * * * *".into(),
            recipients: Vec::new(),
            from: "Shrike <shrike@localhost>".into(),
            settle_secs: 2,
            smtp: SmtpConfig::default(),
        }
    }
}

/// Errors of the alerter.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The schedule does not parse.
    #[error(transparent)]
    Schedule(#[from] crate::schedule::ScheduleError),
    /// An address does not parse.
    #[error("invalid email address {0:?}")]
    Address(String),
    /// ClickHouse failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Building the message failed.
    #[error("cannot build email: {0}")]
    Message(#[from] lettre::error::Error),
    /// The SMTP server refused or could not be reached.
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// The name under which the check's progress is stored.
pub const CHECK_NAME: &str = "new-errors";

/// A configured alerter.
pub struct Alerter {
    store: Store,
    config: AlerterConfig,
    schedule: Schedule,
    from: Mailbox,
    recipients: Vec<Mailbox>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

/// What one run did for one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRun {
    /// Project id.
    pub project_id: u64,
    /// Issues reported.
    pub issues: usize,
    /// Whether an email was sent.
    pub emailed: bool,
}

impl Alerter {
    /// Validates the config and prepares the SMTP transport (no connection yet).
    pub fn new(store: Store, config: AlerterConfig) -> Result<Self, AlertError> {
        let schedule = Schedule::parse(&config.schedule)?;
        let parse = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|_| AlertError::Address(a.to_owned()))
        };
        let from = parse(&config.from)?;
        let recipients = config
            .recipients
            .iter()
            .map(|r| parse(r))
            .collect::<Result<Vec<_>, _>>()?;
        let smtp = &config.smtp;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .timeout(Some(Duration::from_secs(smtp.timeout_secs)));
        builder = match smtp.tls {
            SmtpTls::None => builder.tls(Tls::None),
            SmtpTls::Starttls => builder.tls(Tls::Required(TlsParameters::new(smtp.host.clone())?)),
            SmtpTls::Tls => builder.tls(Tls::Wrapper(TlsParameters::new(smtp.host.clone())?)),
        };
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Alerter {
            store,
            schedule,
            from,
            recipients,
            transport: builder.build(),
            config,
        })
    }

    /// Runs the check at every scheduled time until `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            schedule = self.schedule.as_str(),
            recipients = self.recipients.len(),
            "alerter started"
        );
        loop {
            let now = Utc::now();
            let Some(next) = self.schedule.next_after(now) else {
                tracing::error!(
                    schedule = self.schedule.as_str(),
                    "schedule never fires again"
                );
                return;
            };
            let wait = (next - now).to_std().unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return,
            }
            match self.run_once().await {
                Ok(runs) => {
                    let emailed = runs.iter().filter(|r| r.emailed).count();
                    tracing::info!(projects = runs.len(), emailed, "alert check done");
                }
                Err(error) => {
                    tracing::warn!(%error, "alert check failed; will retry at the next run")
                }
            }
        }
    }

    /// One check over every project.
    pub async fn run_once(&self) -> Result<Vec<ProjectRun>, AlertError> {
        let to = self
            .store
            .server_now()
            .await?
            .saturating_sub(self.config.settle_secs);
        let mut runs = Vec::new();
        for project in self.store.projects().await? {
            let from = self
                .store
                .alert_watermark(CHECK_NAME, project.id)
                .await?
                .unwrap_or(0);
            if to <= from {
                continue;
            }
            let activity = alertable(self.store.issue_activity(project.id, from, to).await?);
            let mut run = ProjectRun {
                project_id: project.id,
                issues: activity.len(),
                emailed: false,
            };
            if !activity.is_empty() && !self.recipients.is_empty() {
                let window = describe_window(from, to);
                self.send(render(&project.name, &activity, &window)).await?;
                metrics::counter!("shrike_alerter_emails_total").increment(1);
                run.emailed = true;
            } else if !activity.is_empty() {
                tracing::warn!(
                    project = project.name,
                    issues = activity.len(),
                    "issues to report but no recipients configured"
                );
            }
            self.save_watermark(project.id, to, run.emailed).await?;
            runs.push(run);
        }
        Ok(runs)
    }

    /// Persists progress; after an email went out, retries hard, since failing here means the
    /// same alert is sent again at the next run.
    async fn save_watermark(
        &self,
        project_id: u64,
        watermark: u32,
        emailed: bool,
    ) -> Result<(), AlertError> {
        let attempts = if emailed { 10 } else { 1 };
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        for attempt in 1..=attempts {
            match self
                .store
                .set_alert_watermark(CHECK_NAME, project_id, watermark)
                .await
            {
                Ok(()) => return Ok(()),
                Err(error) if attempt < attempts => {
                    tracing::warn!(%error, attempt, "cannot save alert progress; retrying");
                    backoff.wait().await;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    async fn send(&self, email: AlertEmail) -> Result<(), AlertError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(email.subject);
        for to in &self.recipients {
            builder = builder.to(to.clone());
        }
        let message =
            builder.multipart(MultiPart::alternative_plain_html(email.text, email.html))?;
        self.transport.send(message).await?;
        Ok(())
    }
}

/// The issues worth an alert: unresolved ones (regressed, lapsed ignores and new included);
/// issues ignored while the ignore holds, and resolved issues no event reopened, are skipped.
pub fn alertable(activity: Vec<IssueActivity>) -> Vec<IssueActivity> {
    activity
        .into_iter()
        .filter(|a| a.status.status == IssueStatus::Unresolved)
        .collect()
}

fn describe_window(from: u32, to: u32) -> String {
    let fmt = |t: u32| {
        DateTime::<Utc>::from_timestamp(i64::from(t), 0)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default()
    };
    if from == 0 {
        format!("up to {}", fmt(to))
    } else {
        format!("between {} and {}", fmt(from), fmt(to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shrike_issues::EffectiveStatus;

    #[test]
    fn only_unresolved_issues_are_alerted() {
        let activity = |issue_id, status, substatus| IssueActivity {
            issue_id,
            events_in_window: 1,
            times_seen: 1,
            is_new: false,
            is_regression: substatus == "regressed",
            status: EffectiveStatus { status, substatus },
            title: String::new(),
            culprit: String::new(),
        };
        let kept = alertable(vec![
            activity(1, IssueStatus::Unresolved, ""),
            activity(2, IssueStatus::Ignored, ""),
            activity(3, IssueStatus::Resolved, ""),
            activity(4, IssueStatus::ResolvedInNextRelease, ""),
            activity(5, IssueStatus::Unresolved, "regressed"),
            activity(6, IssueStatus::Unresolved, "ignore_lapsed"),
        ]);
        let ids: Vec<u64> = kept.iter().map(|a| a.issue_id).collect();
        assert_eq!(ids, vec![1, 5, 6]);
    }
}
