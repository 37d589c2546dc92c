//! The doorbell button: a GPIO line read through the Linux GPIO character
//! device, debounced in software so a bouncing contact or a child mashing
//! the button rings once. Each accepted press is handed to the session
//! manager, which publishes the `ring` event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use gpiocdev::line::{EdgeDetection, EdgeKind, Value};

use crate::backoff::{Backoff, sleep_unless_stopped};
use crate::config::DoorbellConfig;
use crate::signal::manager::Command;
use crate::worker::Worker;

/// Presses closer together than this ring only once.
pub(crate) const HOLD_OFF: Duration = Duration::from_secs(2);

/// Turns raw edges of a noisy contact into presses: a level counts only
/// once it has been stable for the debounce period, and a press within
/// [`HOLD_OFF`] of the previous one is ignored.
#[derive(Debug, Clone)]
pub(crate) struct Debouncer {
    period: Duration,
    hold_off: Duration,
    stable_active: bool,
    pending: Option<(bool, Instant)>,
    last_press: Option<Instant>,
}

impl Debouncer {
    /// A debouncer for a line currently at `active`.
    pub(crate) fn new(period: Duration, hold_off: Duration, active: bool) -> Self {
        Debouncer {
            period,
            hold_off,
            stable_active: active,
            pending: None,
            last_press: None,
        }
    }

    /// The line changed to `active` at `at`.
    pub(crate) fn edge(&mut self, active: bool, at: Instant) {
        self.pending = if active == self.stable_active {
            None
        } else {
            Some((active, at))
        };
    }

    /// When [`Debouncer::poll`] may next report something.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.pending.map(|(_, at)| at + self.period)
    }

    /// Whether a press completed by `now`.
    pub(crate) fn poll(&mut self, now: Instant) -> bool {
        let Some((active, at)) = self.pending else {
            return false;
        };
        if now < at + self.period {
            return false;
        }
        self.pending = None;
        self.stable_active = active;
        let pressed = active
            && self
                .last_press
                .is_none_or(|last| at.saturating_duration_since(last) >= self.hold_off);
        if pressed {
            self.last_press = Some(at);
        }
        pressed
    }
}

/// A line that stayed watched this long counts as healthy (backoff resets).
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// How long one wait for an edge lasts before the thread looks up.
const EDGE_WAIT: Duration = Duration::from_millis(500);

/// Watches the configured line on its own thread, sending a ring per press
/// to `rings`, until the returned worker is dropped. A line that cannot be
/// requested or fails later is retried with capped backoff: a GPIO error
/// must not end the doorbell for good. `None` when no line is configured.
pub(crate) fn start(
    config: &DoorbellConfig,
    rings: async_channel::Sender<Command>,
) -> anyhow::Result<Option<Worker>> {
    let Some(line) = config.gpio_line else {
        return Ok(None);
    };
    let config = config.clone();
    let worker = Worker::spawn("doorbell", move |stop| {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        while !stop.load(Ordering::Relaxed) {
            let began = Instant::now();
            let Err(error) = request(&config, line)
                .and_then(|(request, debouncer)| watch(&request, debouncer, &rings, stop))
            else {
                return;
            };
            if began.elapsed() >= HEALTHY_AFTER {
                backoff.reset();
            }
            let delay = backoff.next_delay(rand::random());
            tracing::error!(
                "doorbell button ({} line {line}): {error:#}; retrying in {delay:?}",
                config.gpio_chip.display()
            );
            sleep_unless_stopped(delay, stop);
        }
    })
    .context("cannot start the doorbell thread")?;
    Ok(Some(worker))
}

/// Requests `line` for edge events; returns it with a debouncer that
/// starts from the line's current level.
fn request(config: &DoorbellConfig, line: u32) -> anyhow::Result<(gpiocdev::Request, Debouncer)> {
    let mut builder = gpiocdev::Request::builder();
    builder
        .on_chip(&config.gpio_chip)
        .with_consumer("peercam doorbell")
        .with_line(line)
        .as_input()
        .with_edge_detection(EdgeDetection::BothEdges);
    if config.active_low {
        builder.as_active_low();
    }
    let request = builder.request().with_context(|| {
        format!(
            "cannot watch GPIO line {line} on {}: is the user in group `gpio`?",
            config.gpio_chip.display()
        )
    })?;
    let active = request.value(line).map(|v| v == Value::Active)?;
    tracing::info!("doorbell button on GPIO line {line}");
    let debounce = Duration::from_millis(config.debounce_ms);
    Ok((request, Debouncer::new(debounce, HOLD_OFF, active)))
}

/// Turns the line's edges into rings until `stop` (Ok) or a GPIO error.
fn watch(
    request: &gpiocdev::Request,
    mut debouncer: Debouncer,
    rings: &async_channel::Sender<Command>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) && !rings.is_closed() {
        let now = Instant::now();
        let wait = debouncer
            .deadline()
            .map_or(EDGE_WAIT, |d| d.saturating_duration_since(now));
        if request.wait_edge_event(wait)? {
            let event = request.read_edge_event()?;
            debouncer.edge(event.kind == EdgeKind::Rising, Instant::now());
        }
        if debouncer.poll(Instant::now()) {
            tracing::info!("doorbell pressed");
            let _ = rings.try_send(Command::Ring);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_bouncing_press_rings_once_after_it_settles() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(30), HOLD_OFF, false);
        for (n, active) in [true, false, true, false, true].into_iter().enumerate() {
            d.edge(active, t0 + ms(n as u64 * 3));
            assert!(!d.poll(t0 + ms(n as u64 * 3 + 1)));
        }
        assert_eq!(d.deadline(), Some(t0 + ms(42)));
        assert!(!d.poll(t0 + ms(41)));
        assert!(d.poll(t0 + ms(42)));
        assert!(!d.poll(t0 + ms(100)), "one press, one ring");
        d.edge(false, t0 + ms(300));
        assert!(!d.poll(t0 + ms(400)), "releasing is no press");
    }

    #[test]
    fn a_glitch_shorter_than_the_period_is_ignored() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(30), HOLD_OFF, false);
        d.edge(true, t0);
        d.edge(false, t0 + ms(5));
        assert_eq!(d.deadline(), None);
        assert!(!d.poll(t0 + ms(100)));
    }

    #[test]
    fn presses_inside_the_hold_off_ring_once() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(10), HOLD_OFF, false);
        let mut rings = 0;
        for n in 0..10u64 {
            let at = t0 + ms(n * 300);
            d.edge(true, at);
            rings += u32::from(d.poll(at + ms(10)));
            d.edge(false, at + ms(100));
            d.poll(at + ms(110));
        }
        assert_eq!(rings, 2, "3 s of mashing with a 2 s hold-off");
    }

    #[test]
    fn an_active_low_line_held_at_start_is_not_a_press() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(10), HOLD_OFF, true);
        d.edge(true, t0);
        assert!(!d.poll(t0 + ms(20)));
    }
}
