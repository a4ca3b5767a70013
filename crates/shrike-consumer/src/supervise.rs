//! Restarting a consumer after a failure, as if its process had been restarted: it resumes from
//! the last commit.

use shrike_bus::Fatal;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs `service` until it returns cleanly (shutdown); restarts it a second after a failure, but
/// not after a fatal one, which it returns: the process must stop and an operator decide.
pub async fn supervise<F, Fut, E>(
    name: &'static str,
    shutdown: CancellationToken,
    mut service: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> anyhow::Result<Fut>,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display + Fatal + Send + Sync + 'static,
{
    loop {
        let error = match service() {
            Ok(running) => match running.await {
                Ok(()) => return Ok(()),
                Err(error) if error.is_fatal() => {
                    return Err(anyhow::anyhow!("{error}").context(format!("{name} stopped")));
                }
                Err(error) => error.to_string(),
            },
            Err(error) => format!("{error:#}"),
        };
        tracing::error!(service = name, %error, "service failed; restarting from the last commit");
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
    }
}
