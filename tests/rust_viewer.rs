//! Fast end-to-end test in Rust alone: the real daemon binary with the test
//! source and its embedded broker, watched by a str0m viewer that signals
//! over MQTT exactly as PROTOCOL.md says. Catches most regressions in seconds.

use std::process::Command;
use std::time::Duration;

mod common;

use common::viewer::{Mqtt, Viewer, call, nal_types, session_id};
use common::{Daemon, free_port};
use serde_json::{Value, json};
use str0m::change::SdpAnswer;

const DEVICE: &str = "rustcam";

fn start_daemon(mqtt_port: u16, extra: &str) -> Daemon {
    start_daemon_with(mqtt_port, extra, &[])
}

/// [`start_daemon`] with extra environment `env`.
fn start_daemon_with(mqtt_port: u16, extra: &str, env: &[(&str, &str)]) -> Daemon {
    Daemon::start(
        &format!(
            r#"
[device]
id = "{DEVICE}"
name = "Rust test camera"
max_viewers = 2
[mqtt]
broker = "embedded"
[mqtt.embedded]
listen = "127.0.0.1:{mqtt_port}"
ws_listen = "127.0.0.1:{}"
[video]
width = 320
height = 240
fps = 30
bitrate_kbps = 300
[webrtc]
interfaces = ["lo"]
{extra}
[http]
listen = ""
"#,
            free_port()
        ),
        env,
    )
}

/// A running daemon, a test client watching its status, and the status topic.
struct Bench {
    port: u16,
    mqtt: Mqtt,
    status_topic: String,
    daemon: Daemon,
}

/// Starts the daemon (`extra` goes into `[webrtc]`) and waits until it is online.
fn online_device(extra: &str) -> (Bench, Value) {
    let port = free_port();
    let daemon = start_daemon(port, extra);
    let mqtt = Mqtt::connect(port);
    let status_topic = format!("peercam/{DEVICE}/status");
    mqtt.subscribe(&status_topic);
    let status = mqtt.wait_for(&status_topic, Duration::from_secs(20), |v| {
        v["online"] == true
    });
    let bench = Bench {
        port,
        mqtt,
        status_topic,
        daemon,
    };
    (bench, status)
}

#[test]
fn a_str0m_viewer_gets_keyframe_first_video_and_the_status_follows() {
    let (bench, status) = online_device("");
    let (mqtt, status_topic) = (&bench.mqtt, &bench.status_topic);
    assert_eq!(status["video"], json!(["H264"]));
    assert_eq!(status["viewers"], 0);

    let first_session = session_id();
    let mut first = call(mqtt, DEVICE, &first_session);
    let frames = first.receive(30, Duration::from_secs(15));
    assert_eq!(frames.len(), 30, "30 frames within 15 s");
    let first_types = nal_types(&frames[0]);
    assert!(
        first_types.contains(&7) && first_types.contains(&5),
        "starts at an IDR with SPS: {first_types:?}"
    );
    mqtt.wait_for(status_topic, Duration::from_secs(5), |v| v["viewers"] == 1);

    let mut second = call(mqtt, DEVICE, &session_id());
    let frames = second.receive(10, Duration::from_secs(15));
    assert_eq!(frames.len(), 10);
    assert!(
        nal_types(&frames[0]).contains(&5),
        "the second viewer also starts at a keyframe"
    );
    assert!(
        first.receive(5, Duration::from_secs(5)).len() == 5,
        "the first viewer keeps receiving"
    );
    mqtt.wait_for(status_topic, Duration::from_secs(5), |v| v["viewers"] == 2);

    let (_third, offer, _) = Viewer::new();
    let busy_session = session_id();
    let busy_out = format!("peercam/{DEVICE}/out/{busy_session}");
    mqtt.subscribe(&busy_out);
    mqtt.publish(
        &format!("peercam/{DEVICE}/in/{busy_session}"),
        &json!({"v":1,"type":"offer","sdp":offer.to_sdp_string()}),
    );
    let busy = mqtt.wait_for(&busy_out, Duration::from_secs(5), |v| v["type"] == "error");
    assert_eq!(
        (busy["code"].as_str(), busy["re"].as_str()),
        (Some("busy"), Some("offer"))
    );

    mqtt.publish(
        &format!("peercam/{DEVICE}/in/{first_session}"),
        &json!({"v":1,"type":"bye"}),
    );
    mqtt.wait_for(status_topic, Duration::from_secs(5), |v| v["viewers"] == 1);
    assert_eq!(
        second.receive(5, Duration::from_secs(5)).len(),
        5,
        "the other viewer is untouched"
    );
}

#[test]
fn a_silent_viewer_is_reaped_and_said_bye_to() {
    let (bench, _) = online_device("peer_timeout_secs = 3");
    let (mqtt, status_topic) = (&bench.mqtt, &bench.status_topic);
    let session = session_id();
    let mut viewer = call(mqtt, DEVICE, &session);
    assert_eq!(viewer.receive(5, Duration::from_secs(15)).len(), 5);
    mqtt.wait_for(status_topic, Duration::from_secs(5), |v| v["viewers"] == 1);
    drop(viewer);
    let out = format!("peercam/{DEVICE}/out/{session}");
    let bye = mqtt.wait_for(&out, Duration::from_secs(20), |v| v["type"] == "bye");
    assert!(
        bye["reason"]
            .as_str()
            .unwrap()
            .contains("stopped responding"),
        "{bye}"
    );
    mqtt.wait_for(status_topic, Duration::from_secs(5), |v| v["viewers"] == 0);
}

#[test]
fn a_new_offer_on_a_live_call_restarts_ice_and_the_call_goes_on() {
    let (bench, _) = online_device("");
    let (mqtt, status_topic) = (&bench.mqtt, &bench.status_topic);
    let session = session_id();
    let mut viewer = call(mqtt, DEVICE, &session);
    assert_eq!(viewer.receive(5, Duration::from_secs(15)).len(), 5);

    let mut change = viewer.rtc.sdp_api();
    change.ice_restart(true);
    let (offer, pending) = change.apply().unwrap();
    let out = format!("peercam/{DEVICE}/out/{session}");
    mqtt.publish(
        &format!("peercam/{DEVICE}/in/{session}"),
        &json!({"v":1,"type":"offer","sdp":offer.to_sdp_string()}),
    );
    let answer = mqtt.wait_for(&out, Duration::from_secs(5), |v| v["type"] == "answer");
    let answer = SdpAnswer::from_sdp_string(answer["sdp"].as_str().unwrap()).unwrap();
    viewer.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    let candidate = mqtt.wait_for(&out, Duration::from_secs(5), |v| v["type"] == "candidate");
    assert!(candidate["usernameFragment"].is_string(), "{candidate}");
    assert_eq!(
        viewer.receive(30, Duration::from_secs(15)).len(),
        30,
        "media after the restart"
    );
    let fresh = Mqtt::connect(bench.port);
    fresh.subscribe(status_topic);
    let status = fresh.wait_for(status_topic, Duration::from_secs(5), |_| true);
    assert_eq!(status["viewers"], 1, "still one call, not two");
}

#[test]
fn stopping_the_daemon_says_bye_to_every_call_and_goes_offline() {
    let (bench, _) = online_device("");
    let (mqtt, status_topic) = (&bench.mqtt, &bench.status_topic);
    let session = session_id();
    let mut viewer = call(mqtt, DEVICE, &session);
    assert_eq!(viewer.receive(5, Duration::from_secs(15)).len(), 5);
    let stopped = Command::new("kill")
        .args(["-TERM", &bench.daemon.child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let out = format!("peercam/{DEVICE}/out/{session}");
    let bye = mqtt.wait_for(&out, Duration::from_secs(5), |v| v["type"] == "bye");
    assert!(
        bye["reason"].as_str().unwrap().contains("shutting down"),
        "{bye}"
    );
    mqtt.wait_for(status_topic, Duration::from_secs(5), |v| {
        v["online"] == false
    });
}

#[test]
fn a_calls_setup_stages_are_logged_in_order() {
    let port = free_port();
    let mut daemon = start_daemon_with(
        port,
        "",
        &[(
            "RUST_LOG",
            "info,peercam::rtc::driver=debug,peercam::signal::manager=debug",
        )],
    );
    let mqtt = Mqtt::connect(port);
    let status_topic = format!("peercam/{DEVICE}/status");
    mqtt.subscribe(&status_topic);
    mqtt.wait_for(&status_topic, Duration::from_secs(20), |v| {
        v["online"] == true
    });
    let session = session_id();
    let mut viewer = call(&mqtt, DEVICE, &session);
    let frames = viewer.receive(1, Duration::from_secs(15));
    assert!(
        nal_types(&frames[0]).contains(&5),
        "the first frame is a keyframe"
    );
    let log = daemon.stop_and_log();
    let stages = [
        "offer received",
        "answer published",
        "ICE connected",
        "DTLS connected",
        "first video frame sent",
    ];
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&session)).collect();
    let at: Vec<usize> = stages
        .iter()
        .map(|stage| {
            lines
                .iter()
                .position(|l| l.contains(&format!("{stage} at +")))
                .unwrap_or_else(|| panic!("no \"{stage}\" line in {lines:#?}"))
        })
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "out of order: {lines:#?}"
    );
}
