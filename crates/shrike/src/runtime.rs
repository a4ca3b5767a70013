//! How the process runs and stops: the shutdown signal, and the runtime `shrike up` gives its
//! pipeline, on threads of a lower priority than ingest's.

use anyhow::Context;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops shrike");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The runtime the pipeline of `shrike up` runs on (everything but ingest): worker threads of its
/// own at a lower priority, so that when the CPU is short ingest keeps answering SDKs while the
/// backlog waits in the bus. Shut down without blocking when dropped.
pub struct LowPriority {
    handle: tokio::runtime::Handle,
    /// Taken only when dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl LowPriority {
    /// Starts the runtime; its threads' nice value is `nice` above the caller's.
    pub fn start(nice: i32) -> anyhow::Result<LowPriority> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("pipeline")
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()
            .context("starting the pipeline's runtime")?;
        Ok(LowPriority {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// Runs `task` on the runtime.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }
}

impl Drop for LowPriority {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which async code must not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The calling thread's nice value (Linux keeps it per thread).
fn thread_nice() -> i32 {
    #[allow(unsafe_code)]
    // SAFETY: both calls take and return plain integers and touch no memory.
    unsafe {
        libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
    }
}

/// Raises the calling thread's nice value by `nice`.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    let lower = thread_nice().saturating_add(nice);
    #[allow(unsafe_code)]
    // SAFETY: gettid and setpriority take and return plain integers and touch no memory.
    let result =
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, lower) };
    if result != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, "cannot lower the pipeline threads' priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_runs_at_a_lower_priority_than_its_caller() {
        let own = thread_nice();
        let pipeline = LowPriority::start(3).expect("pipeline runtime");
        let theirs = pipeline
            .handle
            .block_on(pipeline.spawn(async { thread_nice() }))
            .expect("task ran");
        assert_eq!(theirs, (own + 3).min(19));
        assert_eq!(thread_nice(), own, "the caller's priority is unchanged");
        drop(pipeline);
        let equal = LowPriority::start(0).expect("pipeline runtime");
        let theirs = equal
            .handle
            .block_on(equal.spawn(async { thread_nice() }))
            .expect("task ran");
        assert_eq!(theirs, own);
    }
}
