//! Fault injection against the real daemon (test source or a FIFO-fed
//! pipeline), a real Mosquitto and a str0m viewer: a panic, a stalled
//! camera, oversized and endless input, an offer flood. The daemon must
//! fail loudly where it cannot go on, and keep every viewer going where it can.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::viewer::{Mqtt, Viewer, call, session_id, try_call};
use common::{Daemon, Mosquitto, TempDir, free_port};
use serde_json::{Value, json};

const DEVICE: &str = "faultcam";
/// How much the daemon's memory may grow under the input floods: the
/// protocol's bounds hold it to a few MiB; this leaves room for allocator
/// noise while catching anything that keeps what it is sent.
const RSS_GROWTH_BOUND_KIB: u64 = 48 * 1024;

/// A daemon on a real Mosquitto, online, with a client watching its status.
struct Bench {
    mqtt: Mqtt,
    daemon: Daemon,
    _broker: Mosquitto,
}

impl Bench {
    /// Starts Mosquitto and the daemon with `video` as its `[video]` body
    /// and `env`; returns once the device is online.
    fn start(video: &str, env: &[(&str, &str)]) -> Bench {
        let port = free_port();
        let broker = Mosquitto::start(port);
        let daemon = Daemon::start(
            &format!(
                r#"
[device]
id = "{DEVICE}"
max_viewers = 2
[mqtt]
broker = "mqtt://127.0.0.1:{port}"
keep_alive_secs = 5
[video]
{video}
[webrtc]
interfaces = ["lo"]
[http]
listen = ""
[doorbell]
control_socket = ""
"#
            ),
            env,
        );
        let mqtt = Mqtt::connect(port);
        mqtt.subscribe(&status_topic());
        mqtt.wait_for(&status_topic(), Duration::from_secs(30), |v| {
            v["online"] == true
        });
        Bench {
            mqtt,
            daemon,
            _broker: broker,
        }
    }
}

fn status_topic() -> String {
    format!("peercam/{DEVICE}/status")
}

fn inbound(session: &str) -> String {
    format!("peercam/{DEVICE}/in/{session}")
}

fn outbound(session: &str) -> String {
    format!("peercam/{DEVICE}/out/{session}")
}

const SMALL_TEST_VIDEO: &str = "width = 320\nheight = 240\nbitrate_kbps = 300";

#[test]
fn a_panic_in_a_session_ends_the_process_with_a_failure() {
    let mut bench = Bench::start(SMALL_TEST_VIDEO, &[("PEERCAM_TEST_PANIC_IN_SESSION", "1")]);
    let session = session_id();
    bench.mqtt.subscribe(&outbound(&session));
    let (_viewer, offer, _) = Viewer::new();
    bench.mqtt.publish(
        &inbound(&session),
        &json!({"v":1,"type":"offer","sdp":offer.to_sdp_string()}),
    );
    let status = bench
        .daemon
        .wait_exit(Duration::from_secs(20))
        .expect("the daemon ends instead of leaving a zombie session");
    assert!(!status.success(), "exit status {status:?}");
}

/// A process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A GStreamer encoder writing H.264 into the FIFO at `path` (it waits for
/// a reader), like a camera driver feeding the daemon.
fn fifo_writer(path: &Path) -> Process {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
    let child = Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "is-live=true", "!"])
        .args(["video/x-raw,width=320,height=240,framerate=30/1", "!"])
        .args([
            "x264enc",
            "tune=zerolatency",
            "speed-preset=ultrafast",
            "key-int-max=15",
            "!",
        ])
        .args([
            "video/x-h264,profile=constrained-baseline,stream-format=byte-stream",
            "!",
        ])
        .arg("filesink")
        .arg(format!("location={}", path.display()))
        .args(["buffer-mode=2", "sync=false"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 is installed (gstreamer1.0-tools)");
    Process(child)
}

fn signal(process: &Process, name: &str) {
    let sent = Command::new("kill")
        .args([name, &process.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[test]
fn a_camera_that_stalls_without_an_error_comes_back_for_a_connected_viewer() {
    let dir = TempDir::new("stall");
    let fifo: PathBuf = dir.0.join("camera.h264");
    let first_writer = fifo_writer(&fifo);
    let video = format!(
        "source = \"pipeline\"\npipeline = \"filesrc location={} ! video/x-h264,stream-format=byte-stream \
         ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! appsink name=sink sync=false\"",
        fifo.display()
    );
    let bench = Bench::start(&video, &[]);
    let session = session_id();
    let mut viewer = call(&bench.mqtt, DEVICE, &session);
    assert_eq!(viewer.receive(10, Duration::from_secs(20)).len(), 10);

    // The camera stops: its writer is frozen, so the daemon's read never
    // returns and no error or end of stream comes. Only a new pipeline,
    // opening the camera anew, can see the replacement.
    signal(&first_writer, "-STOP");
    std::fs::remove_file(&fifo).unwrap();
    let _second_writer = fifo_writer(&fifo);
    let resumed = viewer.receive(30, Duration::from_secs(40));
    assert_eq!(resumed.len(), 30, "video came back on the same call");
    let said: Vec<(String, Value)> = bench.mqtt.drain();
    assert!(
        !said
            .iter()
            .any(|(topic, v)| *topic == outbound(&session) && v["type"] == "bye"),
        "the call was never ended: {said:?}"
    );
    drop(first_writer);
}

#[test]
fn oversized_publishes_and_endless_candidates_take_no_viewer_off() {
    let bench = Bench::start(SMALL_TEST_VIDEO, &[]);
    let watcher = Mqtt::connect(bench_port(&bench));
    watcher.subscribe(&status_topic());
    let session = session_id();
    let mut viewer = call(&bench.mqtt, DEVICE, &session);
    assert_eq!(viewer.receive(10, Duration::from_secs(20)).len(), 10);
    let before = bench.daemon.rss_kib();

    bench
        .mqtt
        .publish_raw(&inbound(&session_id()), vec![b'x'; 2 << 20]);
    bench
        .mqtt
        .publish_raw(&inbound(&session), vec![b'{'; 2 << 20]);
    for n in 0..10_000u32 {
        let line = format!(
            "candidate:{n} 1 udp 2122260223 10.{}.{}.{} {} typ host",
            n >> 16,
            (n >> 8) & 0xff,
            n & 0xff,
            1024 + n % 60_000
        );
        bench.mqtt.publish(
            &inbound(&session),
            &json!({"v":1,"type":"candidate","candidate":line,"sdpMid":"0","sdpMLineIndex":0}),
        );
    }
    answered_after_the_backlog(&bench.mqtt, &session);
    assert_eq!(
        viewer.receive(30, Duration::from_secs(20)).len(),
        30,
        "the viewer kept decoding"
    );
    let after = bench.daemon.rss_kib();
    eprintln!("RSS before {before} KiB, after 2 MiB publishes and 10 000 candidates {after} KiB");
    assert!(
        after < before + RSS_GROWTH_BOUND_KIB,
        "RSS grew from {before} KiB to {after} KiB"
    );
    let statuses = watcher.drain();
    assert!(
        statuses.iter().all(|(_, v)| v["online"] != false),
        "the device never went offline: {statuses:?}"
    );
}

/// The broker port of `bench`'s own client, to connect a second one.
fn bench_port(bench: &Bench) -> u16 {
    bench.mqtt.port()
}

/// Waits until the device has worked through what was published before on
/// `session`: it answers an `ice-servers` request only after all of it.
/// Broker or device queues may drop a request under the flood, so it is
/// asked again, a bounded number of times.
fn answered_after_the_backlog(mqtt: &Mqtt, session: &str) {
    for _ in 0..30 {
        mqtt.publish(&inbound(session), &json!({"v":1,"type":"ice-servers"}));
        if mqtt
            .try_wait_for(&outbound(session), Duration::from_secs(2), |v| {
                v["type"] == "ice-servers"
            })
            .is_some()
        {
            return;
        }
    }
    panic!("the device never got through the backlog");
}

#[test]
fn after_an_offer_flood_a_real_viewer_gets_in_at_once() {
    let bench = Bench::start(SMALL_TEST_VIDEO, &[]);
    let (_, flood_offer, _) = Viewer::new();
    let offer = json!({"v":1,"type":"offer","sdp":flood_offer.to_sdp_string()});
    let started = Instant::now();
    let flood = 500;
    for n in 0..flood {
        // Load generation, not synchronization: 50 offers a second for 10 s.
        let due = started + Duration::from_millis(20 * n);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        bench
            .mqtt
            .publish(&inbound(&format!("flood{n:016}")), &offer);
    }
    let flood_ended = Instant::now();
    // A viewer told `busy` ("too many calls are starting") calls again on a
    // fresh session, as the message asks.
    let mut attempts = 0;
    let mut viewer = loop {
        attempts += 1;
        match try_call(&bench.mqtt, DEVICE, &session_id(), "127.0.0.1") {
            Ok(viewer) => break viewer,
            Err(error) if error["code"] == "busy" && attempts < 20 => {}
            Err(error) => panic!("refused: {error}"),
        }
    };
    let answered = flood_ended.elapsed();
    let frames = viewer.receive(5, Duration::from_secs(20));
    let decoding = flood_ended.elapsed();
    eprintln!(
        "after {flood} offers at 50/s: answered {answered:?} and decoding {decoding:?} after the \
         flood, {attempts} offer(s)"
    );
    assert_eq!(frames.len(), 5);
    assert!(
        answered < Duration::from_secs(2),
        "answered {answered:?} after the flood"
    );
}
