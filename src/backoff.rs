//! Capped exponential backoff with jitter, for reconnecting to the broker
//! and restarting the camera pipeline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Delays that double from `first` up to `max`, each jittered to 50–100 %.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Backoff starting at `first`, never above `max`.
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            current: first,
        }
    }

    /// The next delay; `jitter` in `[0, 1)` picks where in the 50–100 % band it lands.
    pub(crate) fn next_delay(&mut self, jitter: f64) -> Duration {
        let delay = self.current.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        self.current = (self.current * 2).min(self.max);
        delay
    }

    /// Start again from the first delay, after a success.
    pub(crate) fn reset(&mut self) {
        self.current = self.first;
    }
}

/// Sleeps `delay` in short steps, returning early once `stop` is set, so a
/// thread waiting to retry still stops promptly.
pub(crate) fn sleep_unless_stopped(delay: Duration, stop: &AtomicBool) {
    let until = Instant::now() + delay;
    while !stop.load(Ordering::Relaxed) {
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            return;
        };
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let full: Vec<u64> = (0..6)
            .map(|_| backoff.next_delay(1.0).as_millis() as u64)
            .collect();
        assert_eq!(full, [1000, 2000, 4000, 8000, 8000, 8000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0), Duration::from_millis(500));
        assert_eq!(backoff.next_delay(0.5), Duration::from_millis(1500));
    }
}
