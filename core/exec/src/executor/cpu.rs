//! The CPU runtime: where DataFusion plans, runs and writes each step, apart from the runtime
//! the process started on (the IO runtime: HTTP, server-sent events, the automation loop,
//! heartbeats, leases, cancel checks and store writes).
//!
//! DataFusion's operators compute on whatever tokio worker polls them, for as long as a batch
//! takes. On one runtime, a step that keeps every worker busy delays every request and every
//! heartbeat behind it: long enough, on a loaded machine, for another process to take the run
//! for dead. So a step's DataFusion work is spawned here ([`on_cpu`]), on a runtime of its own
//! with one worker per core, and the IO runtime only waits for its answer. This is the split
//! DataFusion's `thread_pools` example describes. The object stores' HTTP requests are issued on
//! the IO runtime (`engine.rs` gives the cloud stores a `SpawnedReqwestConnector`), and local
//! disk is written on the blocking pool, so neither waits for a busy CPU worker.
//!
//! Tasks are dropped, not left running: the future [`on_cpu`] returns aborts its task when it
//! is dropped (a cancel, a time limit, a SIGTERM), and the task is dropped when it next gives
//! its worker back. DataFusion's sources do so every 128 batches they produce; an operator that
//! multiplies rows (a cross join) can compute for a good while between two.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

use crate::policy::default_concurrency;
use crate::{Error, Result};

/// The process's CPU runtime, started on first use and kept for the process's life.
static CPU: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

/// The CPU runtime's handle.
pub(crate) fn cpu_handle() -> Result<Handle> {
    let runtime = CPU.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(default_concurrency())
            .thread_name("freshet-cpu")
            // DataFusion clones and plans a query's expressions recursively; the deepest a SQL
            // file may hold needs more than tokio's 2 MiB in a debug build (see `sql.rs`).
            .thread_stack_size(32 << 20)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match runtime {
        Ok(runtime) => Ok(runtime.handle().clone()),
        Err(e) => Err(Error::Storage {
            message: format!("cannot start the CPU runtime: {e}"),
            retryable: false,
        }),
    }
}

/// Runs `work` on the CPU runtime; the answer is awaited wherever the caller is. Dropping the
/// returned future aborts the task.
pub(crate) fn on_cpu<F>(work: F) -> Result<OnCpu<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let ended = Ended::default();
    let guard = SetOnDrop(ended.0.clone());
    let task = cpu_handle()?.spawn(async move {
        let _ended = guard;
        work.await
    });
    Ok(OnCpu { task, ended })
}

/// A task on the CPU runtime, aborted when dropped.
#[derive(Debug)]
pub(crate) struct OnCpu<T> {
    task: JoinHandle<T>,
    ended: Ended,
}

impl<T> OnCpu<T> {
    /// Turns true once the task's future has been dropped (finished, or aborted and let go by
    /// the runtime): nothing of it runs any more.
    pub(crate) fn ended(&self) -> Ended {
        self.ended.clone()
    }
}

/// Set once the task's future has been dropped.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ended(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Ended {
    /// Whether the task has ended.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits, at most `limit`, for the task to end.
    pub(crate) async fn wait(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.is_set() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// Held by the task's future: sets the flag when it is dropped with it.
struct SetOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

impl<T> Future for OnCpu<T> {
    type Output = std::result::Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task).poll(cx)
    }
}

impl<T> Drop for OnCpu<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A CPU task that never yields on its own (a busy loop that only yields when told to)
    /// leaves the IO runtime free: a timer there fires on time while every CPU worker spins.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn busy_cpu_workers_do_not_delay_the_io_runtime() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut spinners = Vec::new();
        for _ in 0..default_concurrency() {
            let stop = stop.clone();
            spinners.push(
                on_cpu(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
                .expect("cpu runtime"),
            );
        }
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let late = started.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for spinner in spinners {
            spinner.await.expect("spinner");
        }
        assert!(
            late < Duration::from_secs(2),
            "the IO runtime waited {late:?}"
        );
    }

    /// Dropping the future stops the task at its next await.
    #[tokio::test]
    async fn dropping_aborts_the_task() {
        let (tell, told) = tokio::sync::oneshot::channel::<()>();
        let task = on_cpu(async move {
            let _tell = tell;
            std::future::pending::<()>().await;
        })
        .expect("cpu runtime");
        drop(task);
        // The sender is dropped with the aborted task.
        let ended = tokio::time::timeout(Duration::from_secs(5), told).await;
        assert!(matches!(ended, Ok(Err(_))), "the task still runs");
    }
}
