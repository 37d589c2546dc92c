//! Threads at the edges (camera, microphone, speaker) that run until asked
//! to stop. Stopping waits a bounded time: a driver stuck in a read must not
//! hang the daemon's shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// How long stopping waits for the thread to finish.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// A running named thread; asks it to stop, and waits for it, when dropped.
pub(crate) struct Worker {
    name: String,
    stop: Arc<AtomicBool>,
    finished: mpsc::Receiver<()>,
}

impl Worker {
    /// Runs `body` on a thread called `name`; `body` returns once the flag
    /// it is given is set.
    pub(crate) fn spawn(
        name: &str,
        body: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (finished_tx, finished) = mpsc::channel::<()>();
        std::thread::Builder::new().name(name.to_owned()).spawn({
            let stop = Arc::clone(&stop);
            move || {
                body(&stop);
                drop(finished_tx);
            }
        })?;
        Ok(Worker {
            name: name.to_owned(),
            stop,
            finished,
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Err(RecvTimeoutError::Timeout) = self.finished.recv_timeout(STOP_WAIT) {
            tracing::warn!(
                "thread {} did not stop within {STOP_WAIT:?}; leaving it",
                self.name
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_a_cooperative_thread_and_leaves_a_stuck_one() {
        let worker = Worker::spawn("cooperative", |stop| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .unwrap();
        drop(worker);
        let stuck =
            Worker::spawn("stuck", |_| std::thread::sleep(Duration::from_secs(60))).unwrap();
        let started = std::time::Instant::now();
        drop(stuck);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "shutdown was not held up"
        );
    }
}
