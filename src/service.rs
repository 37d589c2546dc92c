//! The service manager's view of `peercam run` (systemd `Type=notify`):
//! `READY=1` once the camera runs and the broker link is online, `STATUS=`
//! lines with the viewer count and broker state, and `WATCHDOG=1` from the
//! main loop itself, so a hung loop is restarted and a busy one is not.

use std::time::{Duration, Instant};

/// How often the main loop reports to [`ServiceNotifier::tick`].
pub const TICK: Duration = Duration::from_millis(250);

/// Test-only fault injection: once ready, the main loop blocks for this many
/// seconds, so tests can see that a stuck loop stops the watchdog pings.
const STALL_ENV: &str = "PEERCAM_TEST_STALL_MAIN_LOOP_SECS";

/// What the daemon looks like at one main-loop tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Sessions currently connected.
    pub viewers: usize,
    /// Whether the MQTT link is connected.
    pub broker_online: bool,
}

/// One message to the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Start-up is complete.
    Ready,
    /// A human-readable state line (`systemctl status`).
    Status(String),
    /// The main loop is alive.
    Watchdog,
}

/// Decides what to tell the service manager at each tick (pure: time is
/// passed in).
#[derive(Debug)]
pub struct NoticePlan {
    watchdog_interval: Option<Duration>,
    ready: bool,
    last_status: Option<String>,
    last_ping: Option<Instant>,
}

impl NoticePlan {
    /// A plan pinging every half of `watchdog` (systemd's `WatchdogSec`), if set.
    pub fn new(watchdog: Option<Duration>) -> Self {
        NoticePlan {
            watchdog_interval: watchdog.map(|w| w / 2),
            ready: false,
            last_status: None,
            last_ping: None,
        }
    }

    /// The notices due at `now` for `health`.
    pub fn tick(&mut self, health: Health, now: Instant) -> Vec<Notice> {
        let mut notices = Vec::new();
        if !self.ready && health.broker_online {
            self.ready = true;
            notices.push(Notice::Ready);
        }
        let status = status_line(health);
        if self.last_status.as_ref() != Some(&status) {
            self.last_status = Some(status.clone());
            notices.push(Notice::Status(status));
        }
        if let Some(interval) = self.watchdog_interval
            && self
                .last_ping
                .is_none_or(|last| now.saturating_duration_since(last) >= interval)
        {
            self.last_ping = Some(now);
            notices.push(Notice::Watchdog);
        }
        notices
    }

    /// Whether `READY=1` has been sent.
    pub fn is_ready(&self) -> bool {
        self.ready
    }
}

/// The `STATUS=` line for `health`.
pub fn status_line(health: Health) -> String {
    let broker = if health.broker_online {
        "broker online"
    } else {
        "broker unreachable, retrying"
    };
    let viewers = match health.viewers {
        1 => "1 viewer".to_owned(),
        n => format!("{n} viewers"),
    };
    format!("{broker}; {viewers}")
}

/// Sends the plan's notices over `$NOTIFY_SOCKET`; does nothing when the
/// daemon is not run by a service manager.
pub struct ServiceNotifier {
    plan: NoticePlan,
    enabled: bool,
    stall: Option<Duration>,
}

impl ServiceNotifier {
    /// A notifier configured from the environment systemd sets up.
    pub fn from_env() -> Self {
        let watchdog = sd_notify::watchdog_enabled();
        let stall = std::env::var(STALL_ENV)
            .ok()
            .and_then(|secs| secs.parse().ok())
            .map(Duration::from_secs);
        ServiceNotifier {
            plan: NoticePlan::new(watchdog),
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            stall,
        }
    }

    /// Called by the main loop every [`TICK`].
    pub fn tick(&mut self, health: Health) {
        let notices = self.plan.tick(health, Instant::now());
        if self.enabled {
            for notice in &notices {
                let state = match notice {
                    Notice::Ready => sd_notify::NotifyState::Ready,
                    Notice::Status(line) => sd_notify::NotifyState::Status(line),
                    Notice::Watchdog => sd_notify::NotifyState::Watchdog,
                };
                if let Err(e) = sd_notify::notify(&[state]) {
                    tracing::warn!("cannot notify the service manager: {e}");
                }
            }
        }
        if self.plan.is_ready()
            && let Some(stall) = self.stall.take()
        {
            tracing::warn!("{STALL_ENV}: blocking the main loop for {stall:?}");
            std::thread::sleep(stall);
        }
    }

    /// Tells the service manager the daemon is stopping.
    pub fn stopping(&self) {
        if self.enabled {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFLINE: Health = Health {
        viewers: 0,
        broker_online: false,
    };
    const ONLINE: Health = Health {
        viewers: 0,
        broker_online: true,
    };

    #[test]
    fn ready_only_once_the_broker_is_online() {
        let t0 = Instant::now();
        let mut plan = NoticePlan::new(None);
        assert_eq!(
            plan.tick(OFFLINE, t0),
            vec![Notice::Status(
                "broker unreachable, retrying; 0 viewers".into()
            )]
        );
        assert_eq!(plan.tick(OFFLINE, t0 + TICK), vec![]);
        assert_eq!(
            plan.tick(ONLINE, t0 + TICK * 2),
            vec![
                Notice::Ready,
                Notice::Status("broker online; 0 viewers".into())
            ]
        );
        assert_eq!(
            plan.tick(OFFLINE, t0 + TICK * 3),
            vec![Notice::Status(
                "broker unreachable, retrying; 0 viewers".into()
            )],
            "READY=1 is sent once; losing the broker later only changes STATUS"
        );
    }

    #[test]
    fn status_changes_with_viewers() {
        let t0 = Instant::now();
        let mut plan = NoticePlan::new(None);
        plan.tick(ONLINE, t0);
        let one = Health {
            viewers: 1,
            broker_online: true,
        };
        assert_eq!(
            plan.tick(one, t0),
            vec![Notice::Status("broker online; 1 viewer".into())]
        );
        assert_eq!(plan.tick(one, t0), vec![]);
    }

    #[test]
    fn watchdog_pings_at_half_the_timeout() {
        let t0 = Instant::now();
        let mut plan = NoticePlan::new(Some(Duration::from_secs(2)));
        let pings = (0..=16)
            .filter(|i| {
                plan.tick(OFFLINE, t0 + TICK * *i)
                    .contains(&Notice::Watchdog)
            })
            .count();
        assert_eq!(pings, 5, "at 0, 1, 2, 3 and 4 s");
        assert!(
            !NoticePlan::new(None)
                .tick(ONLINE, t0)
                .contains(&Notice::Watchdog),
            "no watchdog configured, no pings"
        );
    }
}
