//! Benchmarks that print numbers (run by `bench/soak`, never in CI): a long
//! join/leave soak for leaks, and what an offer flood does to a real
//! viewer's time to first frame. `#[ignore]`d so `cargo test` skips them.

use std::time::{Duration, Instant};

mod common;

use common::viewer::{Mqtt, Viewer, session_id, try_call};
use common::{Daemon, Mosquitto, free_port};
use serde_json::json;

const DEVICE: &str = "soakcam";

/// The daemon's resources at one moment.
struct Footprint {
    rss_kib: u64,
    fds: usize,
    threads: usize,
}

impl std::fmt::Display for Footprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSS {} KiB, {} open fds, {} threads",
            self.rss_kib, self.fds, self.threads
        )
    }
}

fn footprint(daemon: &Daemon) -> Footprint {
    let pid = daemon.child.id();
    let count = |dir: &str| {
        std::fs::read_dir(format!("/proc/{pid}/{dir}"))
            .unwrap()
            .count()
    };
    Footprint {
        rss_kib: daemon.rss_kib(),
        fds: count("fd"),
        threads: count("task"),
    }
}

/// Mosquitto, the daemon (test source, 320×240) and a client, online.
fn online() -> (Mosquitto, Daemon, Mqtt) {
    let port = free_port();
    let broker = Mosquitto::start(port);
    let daemon = Daemon::start(
        &format!(
            r#"
[device]
id = "{DEVICE}"
max_viewers = 4
[mqtt]
broker = "mqtt://127.0.0.1:{port}"
[video]
width = 320
height = 240
bitrate_kbps = 300
keyframe_interval = 300
[webrtc]
interfaces = ["lo"]
[http]
listen = ""
[doorbell]
control_socket = ""
"#
        ),
        &[("RUST_LOG", "warn")],
    );
    let mqtt = Mqtt::connect(port);
    let status = format!("peercam/{DEVICE}/status");
    mqtt.subscribe(&status);
    mqtt.wait_for(&status, Duration::from_secs(30), |v| v["online"] == true);
    (broker, daemon, mqtt)
}

/// One call from offer to the first decoded frame; returns how long that took.
fn time_to_first_frame(mqtt: &Mqtt) -> (String, Viewer, Duration) {
    let started = Instant::now();
    for _ in 0..50 {
        let session = session_id();
        match try_call(mqtt, DEVICE, &session, "127.0.0.1") {
            Ok(mut viewer) => {
                assert_eq!(viewer.receive(1, Duration::from_secs(20)).len(), 1);
                return (session, viewer, started.elapsed());
            }
            Err(error) if error["code"] == "busy" => {}
            Err(error) => panic!("refused: {error}"),
        }
    }
    panic!("busy 50 times in a row");
}

/// Returns once the device has handled everything sent before: it answers
/// an `ice-servers` request on a fresh session only after all of it.
fn settle(mqtt: &Mqtt) {
    let session = session_id();
    let out = format!("peercam/{DEVICE}/out/{session}");
    mqtt.subscribe(&out);
    mqtt.publish(
        &format!("peercam/{DEVICE}/in/{session}"),
        &json!({"v":1,"type":"ice-servers"}),
    );
    mqtt.wait_for(&out, Duration::from_secs(10), |v| {
        v["type"] == "ice-servers"
    });
}

fn hang_up(mqtt: &Mqtt, session: &str) {
    mqtt.publish(
        &format!("peercam/{DEVICE}/in/{session}"),
        &json!({"v":1,"type":"bye"}),
    );
}

#[test]
#[ignore = "benchmark: bench/soak"]
fn join_leave_soak() {
    let calls: usize = std::env::var("PEERCAM_SOAK_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let (_broker, daemon, mqtt) = online();
    let (session, viewer, _) = time_to_first_frame(&mqtt);
    hang_up(&mqtt, &session);
    drop(viewer);
    settle(&mqtt);
    let before = footprint(&daemon);
    let started = Instant::now();
    let mut ttff = Vec::with_capacity(calls);
    for _ in 0..calls {
        let (session, viewer, took) = time_to_first_frame(&mqtt);
        ttff.push(took);
        hang_up(&mqtt, &session);
        drop(viewer);
    }
    settle(&mqtt);
    let after = footprint(&daemon);
    ttff.sort();
    println!(
        "{calls} calls in {:.1} s; time to first frame median {:?}, p95 {:?}",
        started.elapsed().as_secs_f64(),
        ttff[calls / 2],
        ttff[calls * 95 / 100]
    );
    println!("before: {before}");
    println!("after:  {after}");
}

#[test]
#[ignore = "benchmark: bench/soak"]
fn offer_flood_and_time_to_first_frame() {
    let (_broker, _daemon, mqtt) = online();
    let mut quiet = Vec::new();
    for _ in 0..5 {
        let (session, viewer, took) = time_to_first_frame(&mqtt);
        quiet.push(took);
        hang_up(&mqtt, &session);
        drop(viewer);
    }
    let (_, offer, _) = Viewer::new();
    let offer = json!({"v":1,"type":"offer","sdp":offer.to_sdp_string()});
    let started = Instant::now();
    for n in 0..500u32 {
        let due = started + Duration::from_millis(20 * u64::from(n));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        mqtt.publish(&format!("peercam/{DEVICE}/in/flood{n:016}"), &offer);
    }
    let (_, _viewer, after_flood) = time_to_first_frame(&mqtt);
    quiet.sort();
    println!(
        "time to first frame: quiet median {:?} (of 5); right after 500 offers at 50/s: {after_flood:?}",
        quiet[2]
    );
}
