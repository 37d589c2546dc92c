//! Sealed signaling end to end: the daemon with two viewers paired by
//! `peercam pair`, reaching a real Mosquitto over TLS (a CA made by the
//! test), str0m viewers that seal as docs/protocol.md §8 says, and an
//! observer subscribed to `#` that must learn nothing. Every bad-input rule
//! of sealed mode is exercised against the running daemon, and broker
//! certificate problems are clear errors.

use std::process::Command;
use std::time::Duration;

mod common;

use common::seal::TestKey;
use common::tls::TestCa;
use common::viewer::{Mqtt, Viewer, nal_types, session_id, try_call};
use common::{Daemon, Mosquitto, TempDir, free_port};
use serde_json::{Value, json};

const DEVICE: &str = "sealcam";
const WAIT: Duration = Duration::from_secs(10);

/// Mosquitto, the daemon with `alice` and `bob` paired, and their links.
struct Bench {
    port: u16,
    config: std::path::PathBuf,
    alice: String,
    bob: String,
    _daemon: Daemon,
    _broker: Mosquitto,
    _ca: TestCa,
    dir: TempDir,
}

fn peercam(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(args)
        .output()
        .unwrap()
}

/// The pairing link `peercam pair` printed.
fn link_in(stdout: &[u8]) -> String {
    String::from_utf8_lossy(stdout)
        .lines()
        .find(|l| l.starts_with("http") && l.contains("#v=1&"))
        .expect("peercam pair prints the link on a line of its own")
        .to_owned()
}

/// The `k` parameter of a pairing link.
fn key_of(link: &str) -> String {
    let fragment = link.split_once('#').unwrap().1;
    fragment
        .split('&')
        .find_map(|p| p.strip_prefix("k="))
        .unwrap()
        .to_owned()
}

/// The configuration of a device reaching the broker at `broker` with
/// `mqtt_extra` in `[mqtt]`, its keys in `keys`.
fn device_config(broker: &str, mqtt_extra: &str, keys: &std::path::Path) -> String {
    device_config_in(broker, mqtt_extra, keys, "auto")
}

/// [`device_config`] in security mode `mode`.
fn device_config_in(broker: &str, mqtt_extra: &str, keys: &std::path::Path, mode: &str) -> String {
    format!(
        r#"
[device]
id = "{DEVICE}"
name = "Sealed camera"
[mqtt]
broker = "{broker}"
{mqtt_extra}
[video]
width = 320
height = 240
bitrate_kbps = 300
[webrtc]
interfaces = ["lo"]
[http]
listen = ""
broker_url = "ws://127.0.0.1:9"
[security]
mode = "{mode}"
keys_file = "{}"
viewer_url = "https://viewer.example/"
"#,
        keys.display()
    )
}

fn bench() -> Bench {
    let (port, tls_port) = (free_port(), free_port());
    let ca = TestCa::new();
    let broker = Mosquitto::start_with("127.0.0.1", port, &ca.mosquitto_listener(tls_port));
    let dir = TempDir::new("sealed");
    let config_text = device_config(
        &format!("mqtts://127.0.0.1:{tls_port}"),
        &format!("ca_file = \"{}\"", ca.ca.display()),
        &dir.0.join("viewers.toml"),
    );
    let config = dir.0.join("peercam.toml");
    std::fs::write(&config, &config_text).unwrap();
    let png = dir.0.join("alice.png");
    let cfg = config.to_str().unwrap();
    let paired = peercam(&["pair", "alice", "-c", cfg, "--png", png.to_str().unwrap()]);
    assert!(paired.status.success(), "{paired:?}");
    let alice = link_in(&paired.stdout);
    let paired = peercam(&["pair", "bob", "-c", cfg]);
    assert!(paired.status.success(), "{paired:?}");
    let bob = link_in(&paired.stdout);
    let daemon = Daemon::start(&config_text, &[]);
    Bench {
        port,
        config,
        alice,
        bob,
        _daemon: daemon,
        _broker: broker,
        _ca: ca,
        dir,
    }
}

impl Bench {
    /// A client for the viewer of pairing `link`, with the status read.
    fn viewer(&self, link: &str) -> Mqtt {
        let mqtt = Mqtt::connect_sealed(self.port, &key_of(link));
        let status = format!("peercam/{DEVICE}/status");
        mqtt.subscribe(&status);
        mqtt.wait_for(&status, Duration::from_secs(20), |v| {
            v["online"] == true && v["sealed"] == true && v["nonce"].is_string()
        });
        mqtt
    }

    fn keys(&self, args: &[&str]) -> String {
        let mut all = vec!["keys", "-c", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = peercam(&all);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }
}

fn topics(session: &str) -> (String, String) {
    (
        format!("peercam/{DEVICE}/in/{session}"),
        format!("peercam/{DEVICE}/out/{session}"),
    )
}

/// Calls and checks that video decodes from a keyframe.
fn watch(mqtt: &Mqtt, session: &str) -> Viewer {
    let mut viewer = try_call(mqtt, DEVICE, session, "127.0.0.1")
        .unwrap_or_else(|e| panic!("sealed call refused: {e}"));
    let frames = viewer.receive(5, Duration::from_secs(20));
    assert!(frames.len() >= 5, "video flows");
    assert!(nal_types(&frames[0]).contains(&5), "starts on a keyframe");
    viewer
}

#[test]
fn pairing_prints_a_link_whose_qr_code_decodes_to_it() {
    let bench = bench();
    let png = std::fs::File::open(bench.dir.0.join("alice.png")).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(png))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (width, height) = (info.width as usize, info.height as usize);
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, decoded) = grids[0].decode().unwrap();
    assert_eq!(decoded, bench.alice);
    assert!(bench.alice.starts_with(
        "https://viewer.example/#v=1&b=ws%3A%2F%2F127.0.0.1%3A9&p=peercam&d=sealcam&k="
    ));
    assert!(bench.alice.ends_with("&n=alice"));
    TestKey::parse(&key_of(&bench.alice));
    let listed = bench.keys(&[]);
    assert!(
        listed.contains("alice  key ") && listed.contains("bob  key "),
        "{listed}"
    );
    let mode = std::fs::metadata(bench.dir.0.join("viewers.toml")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
}

#[test]
fn paired_viewers_watch_and_an_observer_of_everything_learns_nothing() {
    let bench = bench();
    let observer = Mqtt::connect(bench.port);
    observer.subscribe("#");
    let alice = bench.viewer(&bench.alice);
    let bob = bench.viewer(&bench.bob);
    let mut alices = watch(&alice, &session_id());
    let mut bobs = watch(&bob, &session_id());
    assert!(alices.receive(3, WAIT).len() >= 3, "alice still decodes");
    assert!(bobs.receive(3, WAIT).len() >= 3);
    let seen = observer.drain();
    assert!(
        seen.iter().any(|(t, _)| t.contains("/in/")),
        "the observer saw the calls"
    );
    for (topic, mut payload) in seen {
        // The seal is random base64url: it may spell "sdp" by chance.
        if let Some(seal) = payload.get_mut("seal") {
            *seal = "…".into();
        }
        let text = payload.to_string();
        for secret in [
            "v=0",
            "candidate",
            "127.0.0.1",
            "sdp",
            "fingerprint",
            "ice-ufrag",
        ] {
            assert!(
                !text.contains(secret),
                "{topic} shows {secret:?} in clear: {text}"
            );
        }
        if topic.contains("/in/") || topic.contains("/out/") {
            let fields: Vec<_> = payload.as_object().unwrap().keys().cloned().collect();
            assert_eq!(fields, ["kid", "seal", "v"], "{topic}: {text}");
        }
    }
}

#[test]
fn unpaired_plain_and_revoked_viewers_are_refused() {
    let bench = bench();
    let plain = Mqtt::connect(bench.port);
    let status = format!("peercam/{DEVICE}/status");
    plain.subscribe(&status);
    plain.wait_for(&status, Duration::from_secs(20), |v| v["online"] == true);
    let error = try_call(&plain, DEVICE, &session_id(), "127.0.0.1")
        .err()
        .unwrap();
    assert_eq!(error["code"], "unauthorized", "{error}");
    assert!(error.get("seq").is_none(), "unauthorized goes unsealed");

    let stranger = bench.viewer(&format!("x#k={}", TestKey::stranger()));
    let error = try_call(&stranger, DEVICE, &session_id(), "127.0.0.1")
        .err()
        .unwrap();
    assert_eq!(error["code"], "unauthorized", "{error}");

    let alice = bench.viewer(&bench.alice);
    let bob = bench.viewer(&bench.bob);
    let session = session_id();
    let _alices = watch(&alice, &session);
    let bobs_session = session_id();
    let mut bobs = watch(&bob, &bobs_session);
    let revoked = bench.keys(&["revoke", "alice"]);
    assert!(revoked.contains("Revoked \"alice\""), "{revoked}");
    let (_, out) = topics(&session);
    let bye = alice.wait_for(&out, WAIT, |v| v["type"] == "bye");
    assert!(bye["reason"].as_str().unwrap().contains("revoked"), "{bye}");
    assert!(bye["seq"].is_u64(), "the bye is sealed for alice: {bye}");
    assert!(bobs.receive(5, WAIT).len() >= 5, "bob's call goes on");
    let error = try_call(&alice, DEVICE, &session_id(), "127.0.0.1")
        .err()
        .unwrap();
    assert_eq!(error["code"], "unauthorized", "{error}");
    assert!(!bench.keys(&[]).contains("alice"));
}

/// Asks for ICE servers on `session` and returns the reply's `seq`: what the
/// device answered before comes first on the same connection, so a reply
/// to anything published earlier would have taken this `seq`.
fn probe(mqtt: &Mqtt, session: &str) -> u64 {
    let (inbound, out) = topics(session);
    mqtt.publish(&inbound, &json!({"v":1,"type":"ice-servers"}));
    let reply = mqtt.wait_for(&out, WAIT, |_| true);
    assert_eq!(reply["type"], "ice-servers", "{reply}");
    reply["seq"].as_u64().unwrap()
}

#[test]
fn replayed_moved_forged_and_stale_messages_are_dropped_or_answered_as_specified() {
    let bench = bench();
    let alice = bench.viewer(&bench.alice);
    let bob = bench.viewer(&bench.bob);
    let (a, b) = (session_id(), session_id());
    let (a_in, a_out) = topics(&a);
    alice.subscribe(&a_out);
    let (b_in, b_out) = topics(&b);
    bob.subscribe(&b_out);

    let (_viewer, offer, _pending) = Viewer::new();
    let first = alice.publish(
        &a_in,
        &json!({"v":1,"type":"offer","sdp":offer.to_sdp_string()}),
    );
    let answer = alice.wait_for(&a_out, WAIT, |_| true);
    assert_eq!(
        (answer["type"].clone(), answer["seq"].clone()),
        ("answer".into(), 1.into())
    );
    let end = alice.wait_for(&a_out, WAIT, |v| v["candidate"] == "");
    let last = end["seq"].as_u64().unwrap();

    alice.publish_raw(&a_in, first.clone());
    let unsealed = json!({"v":1,"type":"bye"}).to_string().into_bytes();
    alice.publish_raw(&a_in, unsealed);
    assert_eq!(
        probe(&alice, &a),
        last + 1,
        "the replayed first offer and an unsealed bye on alice's live call got no reply"
    );

    assert_eq!(probe(&bob, &b), 1);
    bob.publish_raw(&b_in, first.clone());
    assert_eq!(
        probe(&bob, &b),
        2,
        "alice's seal replayed onto bob's session: dropped"
    );

    let fresh = session_id();
    let (fresh_in, fresh_out) = topics(&fresh);
    alice.subscribe(&fresh_out);
    alice.publish_raw(&fresh_in, first.clone());
    let refused = alice.wait_for(&fresh_out, WAIT, |_| true);
    assert_eq!(
        refused["code"], "unauthorized",
        "moved to another topic: {refused}"
    );

    let forged_session = session_id();
    let (forged_in, forged_out) = topics(&forged_session);
    alice.subscribe(&forged_out);
    let mut forged: Value = serde_json::from_slice(&first).unwrap();
    let seal = forged["seal"].as_str().unwrap().to_owned();
    let flipped = if seal.ends_with('A') { "B" } else { "A" };
    forged["seal"] = format!("{}{flipped}", &seal[..seal.len() - 1]).into();
    alice.publish_raw(&forged_in, forged.to_string().into_bytes());
    let refused = alice.wait_for(&forged_out, WAIT, |_| true);
    assert_eq!(refused["code"], "unauthorized", "forged: {refused}");

    let stale = session_id();
    let (stale_in, stale_out) = topics(&stale);
    alice.subscribe(&stale_out);
    alice.publish(
        &stale_in,
        &json!({"v":1,"type":"offer","sdp":offer.to_sdp_string(),"nonce":"AAAAAAAAAAAAAAAAAAAAAA"}),
    );
    let refused = alice.wait_for(&stale_out, WAIT, |_| true);
    assert_eq!(refused["code"], "stale", "an old nonce: {refused}");
    assert_eq!(refused["seq"], 1, "stale is sealed");
}

/// `peercam check` of a device reaching `broker` with `mqtt_extra` in
/// `[mqtt]`, its configuration written to `dir`/`name`.
fn check_device(dir: &TempDir, name: &str, broker: &str, mqtt_extra: &str) -> std::process::Output {
    let path = dir.0.join(name);
    let keys = dir.0.join("viewers.toml");
    std::fs::write(&path, device_config(broker, mqtt_extra, &keys)).unwrap();
    peercam(&["check", "-c", path.to_str().unwrap()])
}

#[test]
fn broker_certificate_problems_are_clear_errors_and_check_findings() {
    let (port, tls_port) = (free_port(), free_port());
    let ca = TestCa::new();
    let _broker = Mosquitto::start_with("127.0.0.1", port, &ca.mosquitto_listener(tls_port));
    let dir = TempDir::new("badtls");
    let keys = dir.0.join("viewers.toml");
    let broker = format!("mqtts://127.0.0.1:{tls_port}");
    let check = |name: &str, mqtt_extra: &str| {
        let out = check_device(&dir, name, &broker, mqtt_extra);
        assert!(!out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let at = text.find("broker").unwrap_or_else(|| panic!("{text}"));
        text[at..].lines().take(2).collect::<Vec<_>>().join("\n")
    };
    let untrusted = check("untrusted.toml", "");
    assert!(untrusted.contains("TLS failed"), "{untrusted}");
    assert!(untrusted.contains("mqtt.ca_file"), "{untrusted}");
    let garbage = dir.0.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let extra = format!("ca_file = \"{}\"", garbage.display());
    let broken = check("broken.toml", &extra);
    assert!(
        broken.contains("`mqtt.ca_file`") && broken.contains("no certificate"),
        "{broken}"
    );
    let trusted = format!("ca_file = \"{}\"", ca.ca.display());
    let out = check_device(&dir, "trusted.toml", &broker, &trusted);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("reachable, login accepted"), "{text}");

    let mut daemon = Daemon::start(&device_config(&broker, &extra, &keys), &[]);
    let status = daemon
        .wait_exit(Duration::from_secs(20))
        .expect("exits at once");
    assert_eq!(status.code(), Some(1));
    let log = daemon.stop_and_log();
    assert!(
        log.contains("`mqtt.ca_file`") && !log.contains("panicked"),
        "{log}"
    );
}

/// Median and 95th percentile of `samples`, in ms.
fn spread(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_millis();
    format!("median {} ms, p95 {} ms", at(0.5), at(0.95))
}

/// Offer to first decoded frame of `calls` calls one after another.
fn time_to_first_frame(mqtt: &Mqtt, calls: usize) -> Vec<Duration> {
    (0..calls)
        .map(|_| {
            let session = session_id();
            let started = std::time::Instant::now();
            let mut viewer = try_call(mqtt, DEVICE, &session, "127.0.0.1").unwrap();
            assert_eq!(viewer.receive(1, Duration::from_secs(20)).len(), 1);
            let ttff = started.elapsed();
            mqtt.publish(&topics(&session).0, &json!({"v":1,"type":"bye"}));
            ttff
        })
        .collect()
}

/// Time to first frame of sealed calls and of plain ones, one daemon of
/// each kind on the same machine (a benchmark: `bench/sealing` runs it in
/// release; it prints, it does not assert).
#[test]
#[ignore = "benchmark: bench/sealing"]
fn time_to_first_frame_sealed_and_plain() {
    let calls = std::env::var("PEERCAM_SEALING_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let sealed = {
        let bench = bench();
        let alice = bench.viewer(&bench.alice);
        time_to_first_frame(&alice, calls)
    };
    let port = free_port();
    let _broker = Mosquitto::start(port);
    let dir = TempDir::new("plain");
    let config = device_config_in(
        &format!("mqtt://127.0.0.1:{port}"),
        "",
        &dir.0.join("viewers.toml"),
        "plain",
    );
    let _daemon = Daemon::start(&config, &[]);
    let mqtt = Mqtt::connect(port);
    let status = format!("peercam/{DEVICE}/status");
    mqtt.subscribe(&status);
    mqtt.wait_for(&status, Duration::from_secs(20), |v| v["online"] == true);
    let plain = time_to_first_frame(&mqtt, calls);
    println!(
        "time to first frame, sealed: {} ({calls} calls)",
        spread(sealed)
    );
    println!(
        "time to first frame, plain:  {} ({calls} calls)",
        spread(plain)
    );
}

#[test]
fn a_broker_that_asks_for_a_client_certificate_gets_the_configured_one() {
    let (port, tls_port) = (free_port(), free_port());
    let ca = TestCa::new();
    let listener = format!(
        "{}require_certificate true\n",
        ca.mosquitto_listener(tls_port)
    );
    let _broker = Mosquitto::start_with("127.0.0.1", port, &listener);
    let (cert, key) = ca.client("door");
    let dir = TempDir::new("clientcert");
    let broker = format!("mqtts://127.0.0.1:{tls_port}");
    let check = |name: &str, mqtt_extra: &str| {
        String::from_utf8(check_device(&dir, name, &broker, mqtt_extra).stdout).unwrap()
    };
    let trusted = format!("ca_file = \"{}\"", ca.ca.display());
    let without = check("without.toml", &trusted);
    assert!(!without.contains("login accepted"), "{without}");
    let with = format!(
        "{trusted}\nclient_cert = \"{}\"\nclient_key = \"{}\"",
        cert.display(),
        key.display()
    );
    let accepted = check("with.toml", &with);
    assert!(accepted.contains("reachable, login accepted"), "{accepted}");
    let swapped = format!(
        "{trusted}\nclient_cert = \"{}\"\nclient_key = \"{}\"",
        cert.display(),
        ca.key.display()
    );
    let mismatched = check("swapped.toml", &swapped);
    assert!(
        mismatched.contains("does not match the certificate"),
        "{mismatched}"
    );
}
