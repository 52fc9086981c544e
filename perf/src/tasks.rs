//! Where client tasks run: one thread per client with its own current-thread
//! runtime (no work stealing, no cross-thread wake-ups), or one multi-thread
//! runtime with a fixed number of workers. `--threads` picks; see the README
//! numbers for which is faster where.

use std::future::Future;
use std::pin::Pin;
use std::thread::JoinHandle;

pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Starts every task; the returned handles finish when the tasks do.
pub fn spawn_all(threads: usize, tasks: Vec<Task>) -> Vec<JoinHandle<()>> {
    if threads == 0 {
        return tasks
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                std::thread::Builder::new()
                    .name(format!("client-{i}"))
                    .spawn(move || current_thread().block_on(t))
                    .expect("spawn client thread")
            })
            .collect();
    }
    let handle = std::thread::Builder::new()
        .name("clients".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let joins: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
                for j in joins {
                    let _ = j.await;
                }
            });
        })
        .expect("spawn runtime thread");
    vec![handle]
}

/// A current-thread runtime with I/O and timers.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
