use super::*;
use crate::signal::keyring::new_viewer;
use crate::signal::seal::ViewerKey;

const PREFIX: &str = "peercam/cam1";

fn topic_in(session: &str) -> String {
    format!("{PREFIX}/in/{session}")
}

fn session(n: usize) -> String {
    format!("session-{n:010}")
}

/// A device with `alice` and `bob` paired, and their keys.
fn device(now: Instant) -> (Sealing, ViewerKey, ViewerKey) {
    let alice = new_viewer("alice").unwrap();
    let bob = new_viewer("bob").unwrap();
    let keys = (
        ViewerKey::parse(&alice.key.key_string()).unwrap(),
        ViewerKey::parse(&bob.key.key_string()).unwrap(),
    );
    let mut keyring = Keyring::default();
    keyring.add(alice).unwrap();
    keyring.add(bob).unwrap();
    (Sealing::new(keyring, now), keys.0, keys.1)
}

/// What a viewer holding `key` publishes on `in/<session>`.
fn sealed(key: &ViewerKey, session: &str, body: Value) -> Vec<u8> {
    key.seal(
        Direction::ViewerToDevice,
        &topic_in(session),
        body.to_string().as_bytes(),
    )
}

fn offer(nonce: &str, seq: u64) -> Value {
    serde_json::json!({"v": 1, "type": "offer", "sdp": "v=0", "nonce": nonce, "seq": seq})
}

fn open(device: &mut Sealing, now: Instant, session: &str, payload: &[u8]) -> Opened {
    device.open(now, &topic_in(session), session, payload)
}

fn code(opened: Opened) -> ErrorCode {
    match opened {
        Opened::Refuse(error) => error.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_paired_viewers_offer_opens_and_binds_the_session() {
    let now = Instant::now();
    let (mut device, alice, _) = device(now);
    let s = session(1);
    let nonce = device.nonce().to_owned();
    let body = offer(&nonce, 1);
    let opened = open(&mut device, now, &s, &sealed(&alice, &s, body.clone()));
    assert_eq!(opened, Opened::Body(body.to_string().into_bytes()));
    assert_eq!(device.viewer_name(&s), Some("alice"));
    let later = serde_json::json!({"v": 1, "type": "candidate", "candidate": "", "seq": 2});
    assert!(matches!(
        open(&mut device, now, &s, &sealed(&alice, &s, later)),
        Opened::Body(_)
    ));
}

#[test]
fn replayed_and_reordered_seq_are_dropped() {
    let now = Instant::now();
    let (mut device, alice, _) = device(now);
    let s = session(1);
    let first = sealed(&alice, &s, offer(device.nonce(), 1));
    assert!(matches!(
        open(&mut device, now, &s, &first),
        Opened::Body(_)
    ));
    assert_eq!(
        open(&mut device, now, &s, &first),
        Opened::Drop(Dropped::Replayed),
        "an MQTT duplicate or a replay"
    );
    let talk = |seq| {
        sealed(
            &alice,
            &s,
            serde_json::json!({"v":1,"type":"talk","on":true,"seq":seq}),
        )
    };
    assert!(matches!(
        open(&mut device, now, &s, &talk(5)),
        Opened::Body(_)
    ));
    assert_eq!(
        open(&mut device, now, &s, &talk(4)),
        Opened::Drop(Dropped::Replayed)
    );
    let no_seq = sealed(
        &alice,
        &s,
        serde_json::json!({"v":1,"type":"talk","on":true}),
    );
    assert_eq!(
        code(open(&mut device, now, &s, &no_seq)),
        ErrorCode::BadRequest
    );
}

#[test]
fn unsealed_unknown_and_forged_payloads_get_unauthorized_once_per_session() {
    let now = Instant::now();
    let (mut device, alice, _) = device(now);
    let plain = br#"{"v":1,"type":"offer","sdp":"v=0"}"#;
    let s = session(1);
    assert_eq!(
        open(&mut device, now, &s, plain),
        Opened::Unauthorized(Dropped::Unsealed)
    );
    assert_eq!(
        open(&mut device, now, &s, plain),
        Opened::Drop(Dropped::Unsealed)
    );
    let stranger = ViewerKey::generate().unwrap();
    let t = session(2);
    let unknown = sealed(&stranger, &t, offer(device.nonce(), 1));
    assert_eq!(
        open(&mut device, now, &t, &unknown),
        Opened::Unauthorized(Dropped::UnknownKey)
    );
    let u = session(3);
    let mut forged = sealed(&alice, &u, offer(device.nonce(), 1));
    let at = forged.len() - 10;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        open(&mut device, now, &u, &forged),
        Opened::Unauthorized(Dropped::BadSeal)
    );
    for garbage in [&b"not json"[..], b"[]", br#"{"v":"1"}"#] {
        assert!(matches!(
            open(&mut device, now, &session(4), garbage),
            Opened::Drop(Dropped::Unsealed) | Opened::Unauthorized(Dropped::Unsealed)
        ));
    }
    let big = vec![b' '; protocol::MAX_PAYLOAD + 1];
    assert!(matches!(
        open(&mut device, now, &session(5), &big),
        Opened::Drop(_)
    ));
}

#[test]
fn unauthorized_replies_are_rate_limited_across_sessions() {
    let now = Instant::now();
    let (mut device, _, _) = device(now);
    let plain = br#"{"v":1,"type":"ice-servers"}"#;
    let replies = (0..100)
        .filter(|&n| {
            matches!(
                open(&mut device, now, &session(n), plain),
                Opened::Unauthorized(_)
            )
        })
        .count();
    assert_eq!(replies, UNAUTHORIZED_BURST as usize);
    let second = now + Duration::from_secs(1);
    let replies = (100..200)
        .filter(|&n| {
            matches!(
                open(&mut device, second, &session(n), plain),
                Opened::Unauthorized(_)
            )
        })
        .count();
    assert_eq!(replies, UNAUTHORIZED_PER_SEC as usize);
}

#[test]
fn another_viewers_seal_never_opens_on_a_session() {
    let now = Instant::now();
    let (mut device, alice, bob) = device(now);
    let (a, b) = (session(1), session(2));
    let nonce = device.nonce().to_owned();
    let alices = sealed(&alice, &a, offer(&nonce, 1));
    assert!(matches!(
        open(&mut device, now, &a, &alices),
        Opened::Body(_)
    ));
    assert!(matches!(
        open(&mut device, now, &b, &sealed(&bob, &b, offer(&nonce, 1))),
        Opened::Body(_)
    ));
    assert_eq!(
        open(&mut device, now, &b, &alices),
        Opened::Drop(Dropped::OtherViewersKey),
        "alice's valid seal replayed onto bob's session"
    );
    let alice_on_b = sealed(&alice, &b, serde_json::json!({"v":1,"type":"bye","seq":9}));
    assert_eq!(
        open(&mut device, now, &b, &alice_on_b),
        Opened::Drop(Dropped::OtherViewersKey),
        "alice sealing for bob's session"
    );
    let c = session(3);
    assert_eq!(
        open(&mut device, now, &c, &alices),
        Opened::Unauthorized(Dropped::BadSeal),
        "moved to another session's topic, the seal does not open"
    );
}

#[test]
fn first_offers_need_the_current_or_previous_nonce_and_a_fresh_session_id() {
    let now = Instant::now();
    let (mut device, alice, _) = device(now);
    let old = device.nonce().to_owned();
    device.rotate_nonce(now);
    let s = session(1);
    assert!(
        matches!(
            open(&mut device, now, &s, &sealed(&alice, &s, offer(&old, 1))),
            Opened::Body(_)
        ),
        "the previous nonce is still good"
    );
    let renegotiation = sealed(
        &alice,
        &s,
        serde_json::json!({"v":1,"type":"offer","sdp":"v=0","seq":2}),
    );
    assert!(
        matches!(open(&mut device, now, &s, &renegotiation), Opened::Body(_)),
        "a call outlives rotations: later offers carry no nonce"
    );
    device.rotate_nonce(now);
    let t = session(2);
    assert_eq!(
        code(open(
            &mut device,
            now,
            &t,
            &sealed(&alice, &t, offer(&old, 1))
        )),
        ErrorCode::Stale,
        "two rotations ago"
    );
    let u = session(3);
    let missing = serde_json::json!({"v":1,"type":"offer","sdp":"v=0","seq":1});
    assert_eq!(
        code(open(&mut device, now, &u, &sealed(&alice, &u, missing))),
        ErrorCode::Stale
    );
}

#[test]
fn a_first_offer_replayed_on_a_used_session_id_is_stale() {
    let now = Instant::now();
    let (mut device, alice, _) = device(now);
    let nonce = device.nonce().to_owned();
    let s = session(0);
    let first = sealed(&alice, &s, offer(&nonce, 1));
    assert!(matches!(
        open(&mut device, now, &s, &first),
        Opened::Body(_)
    ));
    // Enough other sessions that the device no longer remembers `s`'s seq.
    for n in 1..=MAX_BINDINGS {
        let t = session(n);
        let ask = sealed(
            &alice,
            &t,
            serde_json::json!({"v":1,"type":"ice-servers","seq":1}),
        );
        assert!(matches!(open(&mut device, now, &t, &ask), Opened::Body(_)));
    }
    assert_eq!(device.viewer_name(&s), None, "evicted");
    assert_eq!(code(open(&mut device, now, &s, &first)), ErrorCode::Stale);
}

#[test]
fn seals_replies_with_rising_seq_for_the_bound_viewer_only() {
    let now = Instant::now();
    let (mut device, alice, _) = device(now);
    let s = session(1);
    let out = format!("{PREFIX}/out/{s}");
    let bye = DeviceMessage::Bye { reason: None };
    assert_eq!(device.seal(&out, &s, &bye), None, "nobody bound yet");
    let nonce = device.nonce().to_owned();
    open(&mut device, now, &s, &sealed(&alice, &s, offer(&nonce, 1)));
    for seq in 1..=3u64 {
        let payload = device.seal(&out, &s, &bye).unwrap();
        let object: serde_json::Map<String, Value> = serde_json::from_slice(&payload).unwrap();
        let fields = seal::sealed_fields(&object).unwrap();
        assert_eq!(fields.kid, alice.kid());
        let body = alice
            .open(Direction::DeviceToViewer, &out, fields.seal)
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, serde_json::json!({"v": 1, "type": "bye", "seq": seq}));
    }
}

#[test]
fn revoking_a_viewer_names_its_live_calls_and_refuses_it_after() {
    let now = Instant::now();
    let (mut device, alice, bob) = device(now);
    let nonce = device.nonce().to_owned();
    let (a1, a2, b) = (session(1), session(2), session(3));
    for (key, s) in [(&alice, &a1), (&alice, &a2), (&bob, &b)] {
        assert!(matches!(
            open(&mut device, now, s, &sealed(key, s, offer(&nonce, 1))),
            Opened::Body(_)
        ));
        device.started(s);
    }
    device.ended(&a2);
    let mut keyring = Keyring::default();
    let bob_again = PairedViewer {
        name: "bob".into(),
        key: ViewerKey::parse(&bob.key_string()).unwrap(),
        paired: String::new(),
    };
    keyring.add(bob_again).unwrap();
    assert_eq!(device.set_keyring(keyring), vec![a1.clone()]);
    assert_eq!(
        device.viewer_name(&a1),
        Some("alice"),
        "kept until its bye is sealed"
    );
    assert_eq!(device.viewer_name(&a2), None);
    let out = format!("{PREFIX}/out/{a1}");
    assert!(
        device
            .seal(&out, &a1, &DeviceMessage::Bye { reason: None })
            .is_some()
    );
    let more = sealed(
        &alice,
        &a1,
        serde_json::json!({"v":1,"type":"talk","on":true,"seq":2}),
    );
    assert_eq!(
        open(&mut device, now, &a1, &more),
        Opened::Drop(Dropped::UnknownKey)
    );
    let c = session(4);
    assert_eq!(
        open(&mut device, now, &c, &sealed(&alice, &c, offer(&nonce, 1))),
        Opened::Unauthorized(Dropped::UnknownKey)
    );
    assert_eq!(device.viewer_name(&b), Some("bob"), "bob's call goes on");
}

/// What sealing costs the device per message (a benchmark: `bench/sealing`
/// runs it in release; it prints, it does not assert).
#[test]
#[ignore = "benchmark: bench/sealing"]
fn sealing_cost() {
    const MESSAGES: u32 = 20_000;
    let now = Instant::now();
    let (mut device, alice, _) = device(now);
    let sdp = "a=candidate:1 1 udp 2130706431 192.168.1.20 50000 typ host\r\n".repeat(60);
    let nonce = device.nonce().to_owned();
    let offers: Vec<(String, Vec<u8>)> = (0..MESSAGES as usize)
        .map(|n| {
            let s = session(n % 400);
            let body =
                serde_json::json!({"v":1,"type":"offer","sdp":sdp,"nonce":nonce,"seq":n + 1});
            let payload = sealed(&alice, &s, body);
            (s, payload)
        })
        .collect();
    let started = Instant::now();
    for (s, payload) in &offers {
        std::hint::black_box(open(&mut device, now, s, payload));
    }
    let each = started.elapsed() / MESSAGES;
    println!(
        "device, open a sealed {}-byte offer: {each:?} per message",
        offers[0].1.len()
    );
    let candidate = DeviceMessage::Bye {
        reason: Some("candidate:1 1 udp 2130706431 192.168.1.20 50000 typ host".into()),
    };
    let out = format!("{PREFIX}/out/{}", session(0));
    let started = Instant::now();
    for _ in 0..MESSAGES {
        std::hint::black_box(device.seal(&out, &session(0), &candidate));
    }
    let each = started.elapsed() / MESSAGES;
    println!("device, seal a candidate-sized reply: {each:?} per message");
    let plain: Vec<u8> = serde_json::json!({"v":1,"type":"offer","sdp":sdp})
        .to_string()
        .into_bytes();
    let started = Instant::now();
    for _ in 0..MESSAGES {
        std::hint::black_box(protocol::parse_viewer_message(&plain).is_ok());
    }
    let each = started.elapsed() / MESSAGES;
    println!("device, parse the same offer unsealed (for scale): {each:?} per message");
}
