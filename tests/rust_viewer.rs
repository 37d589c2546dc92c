//! Fast end-to-end test in Rust alone: the real daemon binary with the test
//! source and its embedded broker, watched by a str0m viewer that signals
//! over MQTT exactly as PROTOCOL.md says. Catches most regressions in seconds.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::{Daemon, free_port};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc};

const DEVICE: &str = "rustcam";

fn start_daemon(mqtt_port: u16, extra: &str) -> Daemon {
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
        &[],
    )
}

/// An MQTT client that collects every message on its subscriptions.
struct Mqtt {
    client: Client,
    messages: mpsc::Receiver<(String, Value)>,
}

impl Mqtt {
    fn connect(port: u16) -> Mqtt {
        let id = format!("test-{}", rand::random::<u32>());
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut connection) = Client::new(options, 64);
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        if tx.send((p.topic, value)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        Mqtt { client, messages }
    }

    fn subscribe(&self, topic: &str) {
        self.client.subscribe(topic, QoS::AtLeastOnce).unwrap();
    }

    fn publish(&self, topic: &str, value: &Value) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, value.to_string())
            .unwrap();
    }

    /// The next message on `topic` matching `want`, within `timeout`.
    fn wait_for(&self, topic: &str, timeout: Duration, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.messages.recv_timeout(left) {
                Ok((t, value)) if t == topic && want(&value) => return value,
                Ok(other) => seen.push(other),
                Err(_) => break,
            }
        }
        panic!("nothing matching on {topic} within {timeout:?}; saw {seen:?}");
    }
}

/// A str0m viewer: receives video, counts access units.
struct Viewer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
}

impl Viewer {
    fn new() -> (Viewer, SdpOffer, str0m::change::SdpPendingOffer) {
        let mut rtc = Rtc::builder().build(Instant::now());
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = socket.local_addr().unwrap();
        rtc.add_local_candidate(Candidate::host(local, Protocol::Udp).unwrap());
        let mut change = rtc.sdp_api();
        change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        (Viewer { rtc, socket, local }, offer, pending)
    }

    /// Runs the viewer until `frames` access units arrived or `timeout`;
    /// returns them.
    fn receive(&mut self, frames: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut received = Vec::new();
        let mut buf = vec![0u8; 2048];
        while received.len() < frames && Instant::now() < deadline {
            let wait = loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Transmit(t) => {
                        let _ = self.socket.send_to(&t.contents, t.destination);
                    }
                    Output::Event(str0m::Event::MediaData(data)) => {
                        received.push(data.data.to_vec())
                    }
                    Output::Event(_) => {}
                    Output::Timeout(at) => break at,
                }
            };
            let input = match self.socket.recv_from(&mut buf) {
                Ok((n, source)) => Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.local,
                        contents: buf[..n].try_into().unwrap(),
                    },
                ),
                Err(_) if Instant::now() >= wait => Input::Timeout(Instant::now()),
                Err(_) => continue,
            };
            self.rtc.handle_input(input).unwrap();
        }
        received
    }
}

fn nal_types(access_unit: &[u8]) -> Vec<u8> {
    access_unit
        .windows(4)
        .filter(|w| w[..3] == [0, 0, 1])
        .map(|w| w[3] & 0x1f)
        .collect()
}

fn session_id() -> String {
    format!("rustviewer{:016x}", rand::random::<u64>())
}

/// Calls the device: offer, answer, candidates both ways. Returns the viewer.
fn call(mqtt: &Mqtt, session: &str) -> Viewer {
    let out = format!("peercam/{DEVICE}/out/{session}");
    let inbound = format!("peercam/{DEVICE}/in/{session}");
    mqtt.subscribe(&out);
    std::thread::sleep(Duration::from_millis(200));
    let (mut viewer, offer, pending) = Viewer::new();
    mqtt.publish(
        &inbound,
        &json!({"v":1,"type":"offer","sdp":offer.to_sdp_string()}),
    );
    let answer = mqtt.wait_for(&out, Duration::from_secs(10), |v| v["type"] == "answer");
    let answer = SdpAnswer::from_sdp_string(answer["sdp"].as_str().unwrap()).unwrap();
    viewer.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    let local = Candidate::host(viewer.local, Protocol::Udp).unwrap();
    mqtt.publish(
        &inbound,
        &json!({"v":1,"type":"candidate","candidate":local.to_sdp_string(),"sdpMid":"0","sdpMLineIndex":0}),
    );
    let candidate = mqtt.wait_for(&out, Duration::from_secs(5), |v| {
        v["type"] == "candidate" && v["candidate"] != ""
    });
    let remote = Candidate::from_sdp_string(candidate["candidate"].as_str().unwrap()).unwrap();
    viewer.rtc.add_remote_candidate(remote);
    mqtt.wait_for(&out, Duration::from_secs(5), |v| {
        v["type"] == "candidate" && v["candidate"] == ""
    });
    viewer
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
    let mut first = call(mqtt, &first_session);
    let frames = first.receive(30, Duration::from_secs(15));
    assert_eq!(frames.len(), 30, "30 frames within 15 s");
    let first_types = nal_types(&frames[0]);
    assert!(
        first_types.contains(&7) && first_types.contains(&5),
        "starts at an IDR with SPS: {first_types:?}"
    );
    mqtt.wait_for(status_topic, Duration::from_secs(5), |v| v["viewers"] == 1);

    let mut second = call(mqtt, &session_id());
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
    std::thread::sleep(Duration::from_millis(200));
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
    let mut viewer = call(mqtt, &session);
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
    let mut viewer = call(mqtt, &session);
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
    let mut viewer = call(mqtt, &session);
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
