//! The service manager's view of `peercam run` (systemd `Type=notify`):
//! `READY=1` once the broker link is online, `STATUS=` lines saying what
//! works and what does not (broker, viewers, camera, media addresses, what
//! was dropped), and `WATCHDOG=1` from the main loop itself while the camera
//! thread is alive, so a hung loop or camera is restarted and a busy one is not.

use std::time::{Duration, Instant};

use crate::media::video::CameraState;

/// How often the main loop reports to [`ServiceNotifier::tick`].
pub(crate) const TICK: Duration = Duration::from_millis(250);
/// Drop counters are logged at most this often, when they changed.
const DROPS_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Longest camera failure reason shown in `STATUS=`.
const MAX_REASON: usize = 160;

/// What was dropped so far: evidence of bad input or an overloaded link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Drops {
    /// Inbound payloads dropped (bad, over a bound, duplicate, queue full).
    pub(crate) inbound: u64,
    /// Publishes dropped (too large, or queued while the broker was away).
    pub(crate) outbound: u64,
    /// Errors not sent because of the one-per-second rule.
    pub(crate) errors: u64,
}

/// What the daemon looks like at one main-loop tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Health {
    /// Sessions currently connected.
    pub(crate) viewers: usize,
    /// Whether the MQTT link is connected.
    pub(crate) broker_online: bool,
    /// What the camera is doing.
    pub(crate) camera: CameraState,
    /// Whether the camera thread looked up recently.
    pub(crate) camera_alive: bool,
    /// Addresses media can use; 0 means no call can connect.
    pub(crate) media_addresses: usize,
    /// What was dropped so far.
    pub(crate) drops: Drops,
}

/// One message to the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// Start-up is complete.
    Ready,
    /// A human-readable state line (`systemctl status`).
    Status(String),
    /// The main loop and the camera thread are alive.
    Watchdog,
    /// A line for the log: drop counters that changed.
    Log(String),
}

/// Decides what to tell the service manager at each tick (pure: time is
/// passed in).
#[derive(Debug)]
pub(crate) struct NoticePlan {
    watchdog_interval: Option<Duration>,
    ready: bool,
    last_status: Option<String>,
    last_ping: Option<Instant>,
    last_drops: (Option<Instant>, Drops),
}

impl NoticePlan {
    /// A plan pinging every half of `watchdog` (systemd's `WatchdogSec`), if set.
    pub(crate) fn new(watchdog: Option<Duration>) -> Self {
        NoticePlan {
            watchdog_interval: watchdog.map(|w| w / 2),
            ready: false,
            last_status: None,
            last_ping: None,
            last_drops: (None, Drops::default()),
        }
    }

    /// The notices due at `now` for `health`.
    pub(crate) fn tick(&mut self, health: &Health, now: Instant) -> Vec<Notice> {
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
            && health.camera_alive
            && self
                .last_ping
                .is_none_or(|last| now.saturating_duration_since(last) >= interval)
        {
            self.last_ping = Some(now);
            notices.push(Notice::Watchdog);
        }
        let (logged_at, logged) = self.last_drops;
        if health.drops != logged
            && logged_at.is_none_or(|at| now.saturating_duration_since(at) >= DROPS_LOG_INTERVAL)
        {
            self.last_drops = (Some(now), health.drops);
            notices.push(Notice::Log(format!(
                "dropped so far: {}",
                drops_text(health.drops)
            )));
        }
        notices
    }

    /// Whether `READY=1` has been sent.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn is_ready(&self) -> bool {
        self.ready
    }
}

/// The `STATUS=` line for `health`.
fn status_line(health: &Health) -> String {
    let broker = if health.broker_online {
        "broker online"
    } else {
        "broker unreachable, retrying"
    };
    let viewers = match health.viewers {
        1 => "1 viewer".to_owned(),
        n => format!("{n} viewers"),
    };
    let camera = match &health.camera {
        CameraState::Starting => "camera starting".to_owned(),
        CameraState::Streaming => "camera streaming".to_owned(),
        CameraState::Retrying(why) => {
            let why: String = why.chars().take(MAX_REASON).collect();
            format!("camera failing, retrying: {why}")
        }
    };
    let mut line = format!("{broker}; {viewers}; {camera}");
    if health.media_addresses == 0 {
        line.push_str("; no network address for media, waiting for one");
    }
    if health.drops != Drops::default() {
        line.push_str(&format!("; dropped {}", drops_text(health.drops)));
    }
    line
}

/// The drop counters in words.
fn drops_text(drops: Drops) -> String {
    format!(
        "{} inbound, {} outbound, {} errors held back",
        drops.inbound, drops.outbound, drops.errors
    )
}

/// Sends the plan's notices over `$NOTIFY_SOCKET`; does nothing when the
/// daemon is not run by a service manager.
pub(crate) struct ServiceNotifier {
    plan: NoticePlan,
    enabled: bool,
}

impl ServiceNotifier {
    /// A notifier configured from the environment systemd sets up.
    pub(crate) fn from_env() -> Self {
        ServiceNotifier {
            plan: NoticePlan::new(sd_notify::watchdog_enabled()),
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    /// Called by the main loop every [`TICK`].
    pub(crate) fn tick(&mut self, health: &Health) {
        for notice in self.plan.tick(health, Instant::now()) {
            let state = match &notice {
                Notice::Log(line) => {
                    tracing::warn!("{line}");
                    continue;
                }
                Notice::Ready => sd_notify::NotifyState::Ready,
                Notice::Status(line) => sd_notify::NotifyState::Status(line),
                Notice::Watchdog => sd_notify::NotifyState::Watchdog,
            };
            if self.enabled
                && let Err(e) = sd_notify::notify(&[state])
            {
                tracing::warn!("cannot notify the service manager: {e}");
            }
        }
        #[cfg(feature = "test-hooks")]
        if self.plan.is_ready() {
            crate::test_hooks::main_loop_ticked();
        }
    }

    /// Tells the service manager the daemon is stopping.
    pub(crate) fn stopping(&self) {
        if self.enabled {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(viewers: usize, broker_online: bool) -> Health {
        Health {
            viewers,
            broker_online,
            camera: CameraState::Streaming,
            camera_alive: true,
            media_addresses: 1,
            drops: Drops::default(),
        }
    }

    #[test]
    fn ready_only_once_the_broker_is_online() {
        let t0 = Instant::now();
        let mut plan = NoticePlan::new(None);
        let offline = health(0, false);
        assert_eq!(
            plan.tick(&offline, t0),
            vec![Notice::Status(
                "broker unreachable, retrying; 0 viewers; camera streaming".into()
            )]
        );
        assert_eq!(plan.tick(&offline, t0 + TICK), vec![]);
        assert_eq!(
            plan.tick(&health(0, true), t0 + TICK * 2),
            vec![
                Notice::Ready,
                Notice::Status("broker online; 0 viewers; camera streaming".into())
            ]
        );
        assert_eq!(
            plan.tick(&offline, t0 + TICK * 3),
            vec![Notice::Status(
                "broker unreachable, retrying; 0 viewers; camera streaming".into()
            )],
            "READY=1 is sent once; losing the broker later only changes STATUS"
        );
    }

    #[test]
    fn status_says_what_does_not_work() {
        let t0 = Instant::now();
        let mut plan = NoticePlan::new(None);
        plan.tick(&health(0, true), t0);
        assert_eq!(
            plan.tick(&health(1, true), t0),
            vec![Notice::Status(
                "broker online; 1 viewer; camera streaming".into()
            )]
        );
        assert_eq!(plan.tick(&health(1, true), t0), vec![]);
        let troubled = Health {
            camera: CameraState::Retrying("camera /dev/video0 cannot be opened".into()),
            media_addresses: 0,
            ..health(1, true)
        };
        assert_eq!(
            plan.tick(&troubled, t0),
            vec![Notice::Status(
                "broker online; 1 viewer; camera failing, retrying: camera /dev/video0 \
                 cannot be opened; no network address for media, waiting for one"
                    .into()
            )]
        );
    }

    #[test]
    fn drops_show_in_the_status_and_the_log_at_most_once_a_minute() {
        let t0 = Instant::now();
        let mut plan = NoticePlan::new(None);
        let dropping = |inbound| Health {
            drops: Drops {
                inbound,
                outbound: 1,
                errors: 2,
            },
            ..health(0, true)
        };
        let notices = plan.tick(&dropping(3), t0);
        assert!(
            notices.contains(&Notice::Status(
                "broker online; 0 viewers; camera streaming; dropped 3 inbound, 1 outbound, \
             2 errors held back"
                    .into()
            ))
        );
        assert!(notices.contains(&Notice::Log(
            "dropped so far: 3 inbound, 1 outbound, 2 errors held back".into()
        )));
        let logs = |notices: Vec<Notice>| notices.iter().any(|n| matches!(n, Notice::Log(_)));
        assert!(!logs(plan.tick(&dropping(4), t0 + TICK)));
        assert!(logs(plan.tick(&dropping(5), t0 + DROPS_LOG_INTERVAL)));
        assert!(!logs(plan.tick(&dropping(5), t0 + DROPS_LOG_INTERVAL * 3)));
    }

    #[test]
    fn watchdog_pings_at_half_the_timeout_while_the_camera_thread_lives() {
        let t0 = Instant::now();
        let mut plan = NoticePlan::new(Some(Duration::from_secs(2)));
        let pings = (0..=16)
            .filter(|i| {
                plan.tick(&health(0, false), t0 + TICK * *i)
                    .contains(&Notice::Watchdog)
            })
            .count();
        assert_eq!(pings, 5, "at 0, 1, 2, 3 and 4 s");
        let stuck = Health {
            camera_alive: false,
            ..health(0, true)
        };
        assert!(
            !plan
                .tick(&stuck, t0 + TICK * 40)
                .contains(&Notice::Watchdog),
            "a stuck camera thread starves the watchdog"
        );
        assert!(
            !NoticePlan::new(None)
                .tick(&health(0, true), t0)
                .contains(&Notice::Watchdog),
            "no watchdog configured, no pings"
        );
    }
}
