//! systemd integration through a real `NOTIFY_SOCKET`: `READY=1` only once
//! the broker link is online, `STATUS=` lines, `WATCHDOG=1` at half of
//! `WatchdogSec`, and no `WATCHDOG=1` while the main loop is stuck.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

mod common;

use common::{Daemon, TempDir, free_port};

/// A service manager's notification socket.
struct NotifySocket {
    socket: UnixDatagram,
    path: String,
    _dir: TempDir,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = TempDir::new("notify");
        let path = dir.0.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket {
            socket,
            path: path.to_str().unwrap().to_owned(),
            _dir: dir,
        }
    }

    /// Lines received until `deadline`, or up to and including `stop`.
    fn read(&self, deadline: Instant, stop: Option<&str>) -> Vec<(Instant, String)> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let at = Instant::now();
            for line in String::from_utf8_lossy(&buf[..n]).lines() {
                seen.push((at, line.to_owned()));
                if Some(line) == stop {
                    return seen;
                }
            }
        }
        seen
    }

    /// Every line in the next `time`.
    fn collect(&self, time: Duration) -> Vec<(Instant, String)> {
        self.read(Instant::now() + time, None)
    }

    /// Lines up to one equal to `want`, within `timeout`; panics otherwise.
    fn until_line(&self, want: &str, timeout: Duration) -> Vec<(Instant, String)> {
        let seen = self.read(Instant::now() + timeout, Some(want));
        assert!(
            seen.last().is_some_and(|(_, line)| line == want),
            "no {want} within {timeout:?}; saw {seen:?}"
        );
        seen
    }
}

fn config(broker: &str) -> String {
    format!(
        r#"
[device]
id = "svc"
[mqtt]
broker = "{broker}"
[video]
width = 160
height = 120
bitrate_kbps = 100
[webrtc]
interfaces = ["lo"]
[http]
listen = ""
"#
    )
}

fn watchdog_times(lines: &[(Instant, String)]) -> Vec<Instant> {
    lines
        .iter()
        .filter(|(_, line)| line == "WATCHDOG=1")
        .map(|(at, _)| *at)
        .collect()
}

fn largest_gap(times: &[Instant]) -> Duration {
    times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

#[test]
fn ready_waits_for_the_broker_and_the_watchdog_keeps_pace() {
    let notify = NotifySocket::new();
    let port = free_port();
    let _daemon = Daemon::start(
        &config(&format!("mqtt://127.0.0.1:{port}")),
        &[
            ("NOTIFY_SOCKET", &notify.path),
            ("WATCHDOG_USEC", "2000000"),
        ],
    );

    let before = notify.collect(Duration::from_secs(3));
    assert!(
        before.iter().all(|(_, line)| line != "READY=1"),
        "not ready while the broker is unreachable: {before:?}"
    );
    assert!(
        before
            .iter()
            .any(|(_, line)| line.starts_with("STATUS=broker unreachable")),
        "{before:?}"
    );
    assert!(
        watchdog_times(&before).len() >= 2,
        "the watchdog is fed while waiting for the broker: {before:?}"
    );

    let _broker = common::Mosquitto::start(port);
    let until_ready = notify.until_line("READY=1", Duration::from_secs(20));
    let after = notify.collect(Duration::from_secs(4));
    assert!(
        until_ready
            .iter()
            .chain(&after)
            .any(|(_, line)| line == "STATUS=broker online; 0 viewers; camera streaming"),
        "{until_ready:?} {after:?}"
    );
    let pings = watchdog_times(&after);
    assert!(
        (3..=6).contains(&pings.len()),
        "about one WATCHDOG=1 a second for WatchdogSec=2: {after:?}"
    );
    assert!(
        largest_gap(&pings) < Duration::from_secs(2),
        "never a gap as long as WatchdogSec: {after:?}"
    );
}

#[test]
fn a_stuck_main_loop_stops_feeding_the_watchdog() {
    let notify = NotifySocket::new();
    let _daemon = Daemon::start(
        &format!(
            "{}\n[mqtt.embedded]\nlisten = \"127.0.0.1:{}\"\nws_listen = \"127.0.0.1:{}\"\n",
            config("embedded"),
            free_port(),
            free_port()
        ),
        &[
            ("NOTIFY_SOCKET", &notify.path),
            ("WATCHDOG_USEC", "1000000"),
            ("PEERCAM_TEST_STALL_MAIN_LOOP_SECS", "4"),
        ],
    );
    let mut lines = notify.until_line("READY=1", Duration::from_secs(20));
    lines.extend(notify.collect(Duration::from_secs(7)));
    let pings = watchdog_times(&lines);
    assert!(
        largest_gap(&pings) >= Duration::from_secs(3),
        "no WATCHDOG=1 while the loop is stuck: {lines:?}"
    );
    assert!(
        pings.len() >= 2,
        "the watchdog resumes once the loop runs again: {lines:?}"
    );
}
