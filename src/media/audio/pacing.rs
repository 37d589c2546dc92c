//! Capture pacing: the ALSA clock sets the pace, but a device that returns
//! samples far faster than real time (file PCMs, broken drivers) is slowed
//! to it, and one that stalls leaves a gap in the RTP timeline instead of
//! compressing time, so receivers play audio at the rate it was captured.

use std::time::{Duration, Instant};

use super::SAMPLE_RATE;

/// How far ahead of real time a device may run before the reader sleeps.
/// A real device is never that far ahead: it can only hand over what its
/// buffer holds (4 periods, 80 ms), so only devices that are not paced at
/// all (file PCMs, broken drivers) are slowed, and a backlog on a real one
/// is read at once instead of becoming latency.
pub(crate) const MAX_LEAD: Duration = Duration::from_millis(100);
/// A device this far behind real time has stalled: the samples it did not
/// deliver become a gap in the timeline.
pub(crate) const STALL: Duration = Duration::from_millis(120);

/// What the reader does after one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Paced {
    /// RTP timestamp (48 kHz) of the frame just read.
    pub(crate) rtp: u64,
    /// Sleep this long before reading the next frame.
    pub(crate) wait: Duration,
}

/// Keeps one capture stream's timeline.
#[derive(Debug, Clone)]
pub(crate) struct CapturePacer {
    /// When sample 0 of the current run would have been captured.
    origin: Instant,
    /// Samples delivered since `origin`.
    samples: u64,
    /// RTP timestamp of the next frame.
    next_rtp: u64,
}

impl CapturePacer {
    /// A timeline starting at `now`, with RTP timestamps starting at `first_rtp`.
    pub(crate) fn new(now: Instant, first_rtp: u64) -> Self {
        CapturePacer {
            origin: now,
            samples: 0,
            next_rtp: first_rtp,
        }
    }

    /// RTP timestamp the next frame will get.
    #[cfg(test)]
    fn next_rtp(&self) -> u64 {
        self.next_rtp
    }

    /// A frame of `samples` samples finished reading at `now`.
    pub(crate) fn frame_read(&mut self, samples: u64, now: Instant) -> Paced {
        let rtp = self.next_rtp;
        self.samples += samples;
        self.next_rtp += samples;
        let due = self.origin + samples_to_duration(self.samples);
        if let Some(lead) = due.checked_duration_since(now) {
            // Back to the limit, no further: an unpaced device then yields
            // one frame per frame time, not bursts.
            let wait = lead.saturating_sub(MAX_LEAD);
            return Paced { rtp, wait };
        }
        let lag = now - due;
        if lag >= STALL {
            // Samples the device never delivered: skip them in the timeline.
            self.next_rtp += duration_to_samples(lag);
        }
        // Either way the device's own clock rules from here.
        self.origin = now;
        self.samples = 0;
        Paced {
            rtp,
            wait: Duration::ZERO,
        }
    }
}

/// Duration of `samples` samples at 48 kHz.
pub(crate) fn samples_to_duration(samples: u64) -> Duration {
    Duration::from_nanos(samples * 1_000_000_000 / u64::from(SAMPLE_RATE))
}

/// Samples at 48 kHz in `duration`.
pub(crate) fn duration_to_samples(duration: Duration) -> u64 {
    (duration.as_nanos() * u128::from(SAMPLE_RATE) / 1_000_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::audio::FRAME_SAMPLES;

    const FRAME: u64 = FRAME_SAMPLES as u64;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_device_at_real_time_never_waits_and_counts_samples() {
        let t0 = Instant::now();
        let mut pacer = CapturePacer::new(t0, 1000);
        for n in 0..50u64 {
            let paced = pacer.frame_read(FRAME, t0 + ms(20 * (n + 1)));
            assert_eq!(paced.rtp, 1000 + n * FRAME);
            assert_eq!(paced.wait, Duration::ZERO);
        }
    }

    #[test]
    fn a_device_that_returns_at_once_is_slowed_to_real_time() {
        let t0 = Instant::now();
        let mut pacer = CapturePacer::new(t0, 0);
        let mut now = t0;
        let mut waited = Duration::ZERO;
        for n in 0..100 {
            let paced = pacer.frame_read(FRAME, now);
            if n >= 6 {
                assert_eq!(paced.wait, ms(20), "steady, one frame per frame time");
            }
            now += paced.wait;
            waited += paced.wait;
        }
        let elapsed = now - t0;
        assert!(
            elapsed >= ms(2000) - MAX_LEAD && elapsed <= ms(2000),
            "100 frames took {elapsed:?}"
        );
        assert_eq!(waited, elapsed);
        assert_eq!(pacer.next_rtp(), 100 * FRAME);
    }

    #[test]
    fn a_backlog_on_a_real_device_is_read_at_once() {
        let t0 = Instant::now();
        let mut pacer = CapturePacer::new(t0, 0);
        for n in 0..10u64 {
            pacer.frame_read(FRAME, t0 + ms(20 * (n + 1)));
        }
        // The reader was held up 70 ms; the device buffered what it missed.
        let late = t0 + ms(270);
        for n in 0..4u64 {
            let paced = pacer.frame_read(FRAME, late);
            assert_eq!(paced.wait, Duration::ZERO, "backlog frame {n}");
            assert_eq!(paced.rtp, (10 + n) * FRAME, "no gap: nothing was lost");
        }
    }

    #[test]
    fn a_slow_device_keeps_a_continuous_timeline() {
        let t0 = Instant::now();
        let mut pacer = CapturePacer::new(t0, 0);
        for n in 0..10u64 {
            let paced = pacer.frame_read(FRAME, t0 + ms(25 * (n + 1)));
            assert_eq!(paced.rtp, n * FRAME, "jitter and drift are no gaps");
            assert_eq!(paced.wait, Duration::ZERO);
        }
    }

    #[test]
    fn a_stall_leaves_a_gap_of_the_missing_time() {
        let t0 = Instant::now();
        let mut pacer = CapturePacer::new(t0, 0);
        pacer.frame_read(FRAME, t0 + ms(20));
        let after_stall = pacer.frame_read(FRAME, t0 + ms(540));
        assert_eq!(after_stall.rtp, FRAME);
        assert_eq!(
            pacer.next_rtp(),
            2 * FRAME + duration_to_samples(ms(500)),
            "the 500 ms not delivered are skipped"
        );
        let next = pacer.frame_read(FRAME, t0 + ms(560));
        assert_eq!(next.wait, Duration::ZERO);
        assert_eq!(next.rtp, 2 * FRAME + 24_000);
    }
}
