//! Calls through NATs in the lab of `tests/common/lab.rs`: the device with
//! the `test` source behind NAT D, a str0m viewer behind NAT V, Mosquitto
//! and coturn on the public side. Each cell must connect and decode video.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::Daemon;
use common::lab::{
    Lab, MQTT_PORT, Nat, PUBLIC_SERVICES, TURN_PORT, TURN_SHARED_SECRET, TURN_TLS_PORT, TURN_USER,
};
use common::viewer::{Mqtt, Viewer, session_id, try_call_trickling, try_call_via};

const DEVICE: &str = "natcam";

/// What a call through the lab showed.
struct Call {
    /// The types of the candidates the device trickled.
    kinds: Vec<String>,
    /// The daemon's log, once it stopped.
    log: String,
}

/// Starts the daemon (test source, 320×240) in the lab's device namespace,
/// media on the device's address; `webrtc` goes into its `[webrtc]`
/// section (ICE servers and the like).
fn lab_daemon(lab: &Lab, webrtc: &str, env: &[(&str, &str)]) -> Daemon {
    let (ns, device_ip) = (lab.ns("dev"), &lab.device_ip);
    Daemon::start_in(
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
interfaces = ["{device_ip}"]
{webrtc}
[http]
listen = ""
[doorbell]
control_socket = ""
"#
        ),
        env,
    )
}

/// A `[[webrtc.ice_servers]]` entry for `urls` (a TOML array) with the
/// lab's long-term TURN user.
fn user_servers(urls: &str) -> String {
    let (user, password) = TURN_USER;
    format!(
        "[[webrtc.ice_servers]]\nurls = {urls}\nusername = \"{user}\"\ncredential = \"{password}\"\n"
    )
}

/// Builds the lab, starts the daemon behind `device` (gathering from coturn
/// over STUN and TURN over UDP) and calls it from a viewer behind `viewer`.
fn call_through(device: Nat, viewer: Nat) -> Call {
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
fn call_gathering_from(device: Nat, viewer: Nat, urls: &[&str]) -> Call {
    let urls = serde_json::to_string(urls).unwrap();
    let mut lab = Lab::new(device, viewer);
    lab.start_services();
    let ca = lab.turn_certificate();
    let ca = ca.display();
    let viewer_ip = lab.viewer_ip.clone();
    let webrtc = format!("turn_ca_file = \"{ca}\"\n{}", user_servers(&urls));
    let mut daemon = lab_daemon(&lab, &webrtc, &[]);
    let log_file = daemon.log_file();
    let kinds = lab.inside("view", move || {
        let mqtt = Mqtt::connect_to(PUBLIC_SERVICES, MQTT_PORT);
        let status = format!("peercam/{DEVICE}/status");
        mqtt.subscribe(&status);
        mqtt.wait_for(&status, Duration::from_secs(30), |v| v["online"] == true);
        let stun = format!("{PUBLIC_SERVICES}:{TURN_PORT}").parse().unwrap();
        let (mut call, candidates) =
            try_call_via(&mqtt, DEVICE, &session_id(), &viewer_ip, Some(stun))
                .unwrap_or_else(|error| panic!("refused: {error}"));
        let frames = call.receive(45, Duration::from_secs(30));
        assert_eq!(
            frames.len(),
            45,
            "decoded through {device:?} × {viewer:?}: {candidates:?}"
        );
        receive_until_logged(&mut call, &log_file, |log| log.contains("media path"));
        candidates
            .iter()
            .filter_map(|c| c.split(" typ ").nth(1))
            .map(|t| t.split_whitespace().next().unwrap_or_default().to_owned())
            .collect()
    });
    Call {
        kinds,
        log: daemon.stop_and_log(),
    }
}

/// Keeps `viewer`'s call going until the daemon's log (`log_file`) shows
/// what `logged` looks for, or 30 s passed: the device names its media
/// path once a second, so how many frames that takes varies.
fn receive_until_logged(viewer: &mut Viewer, log_file: &Path, logged: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !logged(&std::fs::read_to_string(log_file).unwrap_or_default())
        && Instant::now() < deadline
    {
        viewer.receive(1, Duration::from_millis(200));
    }
}

/// The media path the daemon logged for the call.
fn path(log: &str) -> &str {
    log.lines()
        .find_map(|line| line.split_once("media path ").map(|(_, path)| path))
        .unwrap_or_else(|| panic!("no media path logged:\n{log}"))
}

#[test]
fn port_restricted_behind_port_restricted_connects_with_the_reflexive_candidate() {
    let call = call_through(Nat::PortRestricted, Nat::PortRestricted);
    assert!(call.kinds.iter().any(|k| k == "srflx"), "{:?}", call.kinds);
    assert!(path(&call.log).starts_with("host "), "{}", path(&call.log));
}

#[test]
fn symmetric_behind_symmetric_connects_through_the_relay() {
    let call = call_through(Nat::Symmetric, Nat::Symmetric);
    assert!(call.kinds.iter().any(|k| k == "relay"), "{:?}", call.kinds);
    assert!(
        path(&call.log).starts_with("relay ") || path(&call.log).contains("<-> relay"),
        "a relay carries the call: {}",
        path(&call.log)
    );
}

#[test]
fn a_device_whose_network_blocks_udp_connects_through_turn_over_tcp() {
    let call = call_gathering_from(
        Nat::UdpBlocked,
        Nat::PortRestricted,
        &[&format!("turn:{PUBLIC_SERVICES}:{TURN_PORT}?transport=tcp")],
    );
    assert_eq!(
        call.kinds
            .iter()
            .filter(|k| *k != "host")
            .collect::<Vec<_>>(),
        ["relay"],
        "{:?}",
        call.kinds
    );
    assert!(
        path(&call.log).contains("(TURN over tcp)"),
        "{}",
        path(&call.log)
    );
}

/// `peercam nat` run on the device's side of a lab whose device NAT is `device`.
fn nat_report(device: Nat) -> String {
    let mut lab = Lab::new(device, Nat::PortRestricted);
    lab.start_services();
    let dir = common::TempDir::new("nat");
    let config = dir.0.join("peercam.toml");
    let (user, password) = TURN_USER;
    let ca = lab.turn_certificate();
    let ca = ca.display();
    std::fs::write(
        &config,
        format!(
            r#"
[webrtc]
turn_ca_file = "{ca}"
[[webrtc.ice_servers]]
urls = ["stun:{PUBLIC_SERVICES}:{TURN_PORT}", "turn:{PUBLIC_SERVICES}:{TURN_PORT}",
        "turn:{PUBLIC_SERVICES}:{TURN_PORT}?transport=tcp",
        "turns:{PUBLIC_SERVICES}:{TURN_TLS_PORT}"]
username = "{user}"
credential = "{password}"
"#
        ),
    )
    .unwrap();
    let output = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.ns("dev")])
        .arg(env!("CARGO_BIN_EXE_peercam"))
        .args(["nat", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

#[test]
fn peercam_nat_tells_each_nat_of_the_lab_apart() {
    let home = nat_report(Nat::PortRestricted);
    assert!(home.contains("mapping: endpoint-independent"), "{home}");
    assert!(
        home.contains("filtering: address-and-port-dependent"),
        "{home}"
    );
    assert!(home.contains("except from symmetric NATs"), "{home}");
    assert!(
        home.lines()
            .filter(|l| l.starts_with("TURN over") && l.contains("relay allocated"))
            .count()
            == 3,
        "over UDP, TCP and TLS: {home}"
    );
    let carrier = nat_report(Nat::Symmetric);
    assert!(
        carrier.contains("mapping: address-and-port-dependent (symmetric)"),
        "{carrier}"
    );
    assert!(carrier.contains("need a relay"), "{carrier}");
    let open = nat_report(Nat::None);
    assert!(open.contains("mapping: none (no NAT)"), "{open}");
    let cone = nat_report(Nat::FullCone);
    assert!(cone.contains("mapping: endpoint-independent"), "{cone}");
    assert!(cone.contains("filtering: endpoint-independent"), "{cone}");
    let behind_carrier = nat_report(Nat::Carrier);
    assert!(
        behind_carrier.contains("mapping: address-and-port-dependent (symmetric)"),
        "a home NAT behind a symmetric carrier NAT maps symmetrically: {behind_carrier}"
    );
    let blocked = nat_report(Nat::UdpBlocked);
    assert!(blocked.contains("UDP: blocked"), "{blocked}");
    let line = |prefix: &str| {
        blocked
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line("TURN over TCP").contains("relay allocated"),
        "TURN over TCP still works: {blocked}"
    );
    assert!(
        !line("TURN over UDP").contains("relay allocated"),
        "TURN over UDP does not: {blocked}"
    );
}

#[test]
fn peercam_check_names_the_nat_and_a_wrong_turn_password() {
    let mut lab = Lab::new(Nat::PortRestricted, Nat::PortRestricted);
    lab.start_services();
    let dir = common::TempDir::new("check");
    let config = dir.0.join("peercam.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[mqtt]
broker = "mqtt://{PUBLIC_SERVICES}:{MQTT_PORT}"
[[webrtc.ice_servers]]
urls = ["stun:{PUBLIC_SERVICES}:{TURN_PORT}", "turn:{PUBLIC_SERVICES}:{TURN_PORT}"]
username = "{}"
credential = "not-the-password"
[http]
listen = ""
[doorbell]
control_socket = ""
"#,
            TURN_USER.0
        ),
    )
    .unwrap();
    let output = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.ns("dev")])
        .arg(env!("CARGO_BIN_EXE_peercam"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "a relay that fails fails the check: {report}"
    );
    assert!(report.contains("hole punching works"), "{report}");
    let turn = report
        .lines()
        .skip_while(|l| !l.contains("TURN over UDP"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(turn.contains("wrong credentials"), "{report}");
    assert!(turn.contains("username/credential"), "the fix: {report}");
}

#[test]
fn a_relayed_call_survives_its_turn_server_restarting_through_an_ice_restart() {
    let mut lab = Lab::new(Nat::Symmetric, Nat::Symmetric);
    lab.start_services();
    let viewer_ip = lab.viewer_ip.clone();
    let servers = serde_json::to_string(&[
        format!("stun:{PUBLIC_SERVICES}:{TURN_PORT}"),
        format!("turn:{PUBLIC_SERVICES}:{TURN_PORT}"),
    ])
    .unwrap();
    let mut daemon = lab_daemon(&lab, &user_servers(&servers), &[]);
    let log_file = daemon.log_file();
    let first_log_file = log_file.clone();
    let (mqtt, session, mut viewer) = lab.inside("view", move || {
        let mqtt = Mqtt::connect_to(PUBLIC_SERVICES, MQTT_PORT);
        let status = format!("peercam/{DEVICE}/status");
        mqtt.subscribe(&status);
        mqtt.wait_for(&status, Duration::from_secs(30), |v| v["online"] == true);
        let stun = format!("{PUBLIC_SERVICES}:{TURN_PORT}").parse().unwrap();
        let session = session_id();
        let (mut viewer, _) = try_call_via(&mqtt, DEVICE, &session, &viewer_ip, Some(stun))
            .unwrap_or_else(|error| panic!("refused: {error}"));
        assert_eq!(viewer.receive(45, Duration::from_secs(30)).len(), 45);
        // The relay is named before its TURN server goes away.
        receive_until_logged(&mut viewer, &first_log_file, |log| {
            relayed_paths_named(log) >= 1
        });
        (mqtt, session, viewer)
    });
    lab.restart_turn();
    let resumed = lab.inside("view", move || {
        let candidates = viewer
            .restart_ice(&mqtt, DEVICE, &session)
            .unwrap_or_else(|error| panic!("restart refused: {error}"));
        assert!(
            candidates.iter().any(|c| c.contains("typ relay")),
            "a new relay: {candidates:?}"
        );
        // Frames still queued from the dead relay come first, so only
        // those after the new path is named show that video came back.
        receive_until_logged(&mut viewer, &log_file, |log| relayed_paths_named(log) >= 2);
        viewer.receive(30, Duration::from_secs(30)).len()
    });
    let log = daemon.stop_and_log();
    assert!(relayed_paths_named(&log) >= 2, "{log}");
    assert_eq!(resumed, 30, "video came back on the same call");
}

/// How many times the device's log names a media path through a relay
/// (its own or the viewer's).
fn relayed_paths_named(log: &str) -> usize {
    log.lines()
        .filter(|line| line.contains("media path") && line.contains("relay"))
        .count()
}

/// The full matrix (a benchmark: `bench/nat-matrix`; it prints, it does
/// not assert): every device NAT against every viewer NAT, with what
/// connected, over which path, how fast, and what gathering and a relayed
/// call cost.
#[test]
#[ignore = "benchmark: bench/nat-matrix"]
fn nat_matrix() {
    let devices = [
        Nat::None,
        Nat::FullCone,
        Nat::PortRestricted,
        Nat::Symmetric,
        Nat::UdpBlocked,
        Nat::Carrier,
    ];
    let viewers = [
        Nat::None,
        Nat::FullCone,
        Nat::PortRestricted,
        Nat::Symmetric,
    ];
    println!(
        "{:<16} {:<16} {:<9} {:>8} {:>8} {:>8} {:>6}  path",
        "device", "viewer", "decoded", "ttff ms", "srflx ms", "relay ms", "cpu %"
    );
    for device in devices {
        for viewer in viewers {
            println!("{}", matrix_cell(device, viewer));
        }
    }
}

/// One row of the matrix.
fn matrix_cell(device: Nat, viewer: Nat) -> String {
    let mut lab = Lab::new(device, viewer);
    lab.start_services();
    let viewer_ip = lab.viewer_ip.clone();
    let servers = serde_json::to_string(&[
        format!("stun:{PUBLIC_SERVICES}:{TURN_PORT}"),
        format!("turn:{PUBLIC_SERVICES}:{TURN_PORT}"),
        format!("turn:{PUBLIC_SERVICES}:{TURN_PORT}?transport=tcp"),
    ])
    .unwrap();
    let webrtc = format!("connect_timeout_secs = 10\n{}", user_servers(&servers));
    let mut daemon = lab_daemon(
        &lab,
        &webrtc,
        &[("RUST_LOG", "warn,peercam::rtc::driver=info")],
    );
    let pid = daemon.child.id();
    let outcome = lab.try_inside("view", move || {
        let mqtt = Mqtt::connect_to(PUBLIC_SERVICES, MQTT_PORT);
        let status = format!("peercam/{DEVICE}/status");
        mqtt.subscribe(&status);
        mqtt.wait_for(&status, Duration::from_secs(30), |v| v["online"] == true);
        let stun = format!("{PUBLIC_SERVICES}:{TURN_PORT}").parse().unwrap();
        let offered = std::time::Instant::now();
        let session = session_id();
        let out = format!("peercam/{DEVICE}/out/{session}");
        let mut call = try_call_trickling(&mqtt, DEVICE, &session, &viewer_ip, stun).ok()?;
        let trickle = Some((&mqtt, out.as_str()));
        let first = call.receive_trickling(trickle, 1, Duration::from_secs(12));
        let ttff = offered.elapsed();
        if first.is_empty() {
            return None;
        }
        let cpu_before = cpu_ticks(pid);
        let decoded = call
            .receive_trickling(trickle, 60, Duration::from_secs(4))
            .len();
        let cpu = (cpu_ticks(pid) - cpu_before) as f64 / 2.0;
        let first_of = |kind: &str| {
            call.candidate_times
                .iter()
                .find(|(line, _)| line.contains(&format!("typ {kind}")))
                .map_or("-".to_owned(), |(_, at)| at.as_millis().to_string())
        };
        Some((decoded, ttff, first_of("srflx"), first_of("relay"), cpu))
    });
    let log = daemon.stop_and_log();
    let path = log
        .lines()
        .filter_map(|line| line.split_once("media path ").map(|(_, p)| p.to_owned()))
        .next_back()
        .unwrap_or_else(|| "-".into());
    match outcome {
        Ok(Some((decoded, ttff, srflx, relay, cpu))) => format!(
            "{:<16} {:<16} {:<9} {:>8} {:>8} {:>8} {:>6.1}  {path}",
            format!("{device:?}"),
            format!("{viewer:?}"),
            format!("yes ({decoded})"),
            ttff.as_millis(),
            srflx,
            relay,
            cpu
        ),
        _ => format!(
            "{:<16} {:<16} no",
            format!("{device:?}"),
            format!("{viewer:?}")
        ),
    }
}

/// CPU time process `pid` has used, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
}

#[test]
fn a_device_whose_network_blocks_udp_connects_through_turn_over_tls() {
    let call = call_gathering_from(
        Nat::UdpBlocked,
        Nat::PortRestricted,
        &[&format!("turns:{PUBLIC_SERVICES}:{TURN_TLS_PORT}")],
    );
    assert_eq!(
        call.kinds
            .iter()
            .filter(|k| *k != "host")
            .collect::<Vec<_>>(),
        ["relay"],
        "{:?}",
        call.kinds
    );
    assert!(
        path(&call.log).contains("(TURN over tls)"),
        "{}",
        path(&call.log)
    );
}

#[test]
fn a_call_relays_with_credentials_minted_from_the_shared_secret() {
    let mut lab = Lab::new(Nat::Symmetric, Nat::Symmetric);
    lab.start_services_with_shared_secret();
    let viewer_ip = lab.viewer_ip.clone();
    let webrtc = format!(
        "[[webrtc.ice_servers]]\nurls = [\"turn:{PUBLIC_SERVICES}:{TURN_PORT}\"]\n\
         username = \"front-door\"\nsecret = \"{TURN_SHARED_SECRET}\"\n\
         credential_lifetime_secs = 600\n"
    );
    let mut daemon = lab_daemon(&lab, &webrtc, &[]);
    let ice_servers = lab.inside("view", move || {
        let mqtt = Mqtt::connect_to(PUBLIC_SERVICES, MQTT_PORT);
        let status = format!("peercam/{DEVICE}/status");
        mqtt.subscribe(&status);
        mqtt.wait_for(&status, Duration::from_secs(30), |v| v["online"] == true);
        let stun = format!("{PUBLIC_SERVICES}:{TURN_PORT}").parse().unwrap();
        let session = session_id();
        let (mut call, candidates) = try_call_via(&mqtt, DEVICE, &session, &viewer_ip, Some(stun))
            .unwrap_or_else(|error| panic!("refused: {error}"));
        assert!(
            candidates.iter().any(|c| c.contains("typ relay")),
            "{candidates:?}"
        );
        assert_eq!(call.receive(10, Duration::from_secs(30)).len(), 10);
        let out = format!("peercam/{DEVICE}/out/{session}");
        mqtt.publish(
            &format!("peercam/{DEVICE}/in/{session}"),
            &serde_json::json!({"v":1,"type":"ice-servers"}),
        );
        mqtt.wait_for(&out, Duration::from_secs(10), |v| {
            v["type"] == "ice-servers"
        })
    });
    let server = &ice_servers["ice_servers"][0];
    let username = server["username"].as_str().unwrap();
    assert!(username.ends_with(":front-door"), "{server}");
    let expires: u64 = username.split(':').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 500..=now + 700).contains(&expires),
        "{expires} vs {now}"
    );
    let log = daemon.stop_and_log();
    assert!(
        !log.contains(TURN_SHARED_SECRET),
        "the secret stays out of the log"
    );
}
