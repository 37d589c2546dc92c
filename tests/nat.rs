//! Calls through NATs in the lab of `tests/common/lab.rs`: the device with
//! the `test` source behind NAT D, a str0m viewer behind NAT V, Mosquitto
//! and coturn on the public side. Each cell must connect and decode video.

use std::time::Duration;

mod common;

use common::Daemon;
use common::lab::{
    DEVICE_LAN_IP, Lab, MQTT_PORT, Nat, PUBLIC_SERVICES, TURN_PORT, TURN_USER, VIEWER_LAN_IP,
};
use common::viewer::{Mqtt, session_id, try_call_via};

const DEVICE: &str = "natcam";

/// Builds the lab, starts the daemon behind `device` (gathering from coturn
/// over STUN and TURN over UDP) and calls it from a viewer behind `viewer`;
/// returns the device's candidate types.
fn call_through(device: Nat, viewer: Nat) -> Vec<String> {
    call_gathering_from(
        device,
        viewer,
        &[
            &format!("stun:{PUBLIC_SERVICES}:{TURN_PORT}"),
            &format!("turn:{PUBLIC_SERVICES}:{TURN_PORT}"),
        ],
    )
}

/// [`call_through`] with the device gathering from `urls`.
fn call_gathering_from(device: Nat, viewer: Nat, urls: &[&str]) -> Vec<String> {
    let urls = serde_json::to_string(urls).unwrap();
    let mut lab = Lab::new(device, viewer);
    lab.start_services();
    let ns = lab.ns("dev");
    let (user, password) = TURN_USER;
    let _daemon = Daemon::start_in(
        &["ip", "netns", "exec", &ns],
        &format!(
            r#"
[device]
id = "{DEVICE}"
[mqtt]
broker = "mqtt://{PUBLIC_SERVICES}:{MQTT_PORT}"
[video]
width = 320
height = 240
bitrate_kbps = 300
[webrtc]
interfaces = ["{DEVICE_LAN_IP}"]
[[webrtc.ice_servers]]
urls = {urls}
username = "{user}"
credential = "{password}"
[http]
listen = ""
[doorbell]
control_socket = ""
"#
        ),
        &[],
    );
    lab.inside("view", move || {
        let mqtt = Mqtt::connect_to(PUBLIC_SERVICES, MQTT_PORT);
        let status = format!("peercam/{DEVICE}/status");
        mqtt.subscribe(&status);
        mqtt.wait_for(&status, Duration::from_secs(30), |v| v["online"] == true);
        let stun = format!("{PUBLIC_SERVICES}:{TURN_PORT}").parse().unwrap();
        let (mut call, candidates) =
            try_call_via(&mqtt, DEVICE, &session_id(), VIEWER_LAN_IP, Some(stun))
                .unwrap_or_else(|error| panic!("refused: {error}"));
        let frames = call.receive(10, Duration::from_secs(30));
        assert_eq!(
            frames.len(),
            10,
            "decoded through {device:?} × {viewer:?}: {candidates:?}"
        );
        candidates
            .iter()
            .filter_map(|c| c.split(" typ ").nth(1))
            .map(|t| t.split_whitespace().next().unwrap_or_default().to_owned())
            .collect()
    })
}

#[test]
fn port_restricted_behind_port_restricted_connects_with_the_reflexive_candidate() {
    let kinds = call_through(Nat::PortRestricted, Nat::PortRestricted);
    assert!(kinds.iter().any(|k| k == "srflx"), "{kinds:?}");
}

#[test]
fn symmetric_behind_symmetric_connects_through_the_relay() {
    let kinds = call_through(Nat::Symmetric, Nat::Symmetric);
    assert!(kinds.iter().any(|k| k == "relay"), "{kinds:?}");
}

#[test]
fn a_device_whose_network_blocks_udp_connects_through_turn_over_tcp() {
    let kinds = call_gathering_from(
        Nat::UdpBlocked,
        Nat::PortRestricted,
        &[&format!("turn:{PUBLIC_SERVICES}:{TURN_PORT}?transport=tcp")],
    );
    assert_eq!(
        kinds.iter().filter(|k| *k != "host").collect::<Vec<_>>(),
        ["relay"],
        "{kinds:?}"
    );
}
