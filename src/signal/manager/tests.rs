use std::sync::Mutex;

use bytes::Bytes;

use super::*;
use crate::media::fanout::Fanout;
use crate::rtc::session::{AudioCaps, SessionLimits};
use crate::signal::outbox::Publish;

/// Keeps what the manager publishes.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Vec<u8>)>>);

impl Publish for Recorder {
    fn publish(&self, topic: String, payload: Vec<u8>) {
        self.0.lock().unwrap().push((topic, payload));
    }

    fn set_status(&self, payload: Vec<u8>) {
        self.publish("status".into(), payload);
    }
}

fn manager() -> SessionManager {
    manager_recording(Arc::new(Recorder::default()))
}

fn manager_recording(recorder: Arc<Recorder>) -> SessionManager {
    manager_with(recorder, SecurityMode::Auto, None)
}

fn manager_with(
    recorder: Arc<Recorder>,
    security: SecurityMode,
    sealing: Option<Sealing>,
) -> SessionManager {
    let limits = SessionLimits {
        connect_timeout: Duration::from_secs(30),
        peer_timeout: Duration::from_secs(30),
    };
    let setup = ManagerSetup {
        name: "test".into(),
        max_viewers: 2,
        session: SessionConfig::new(
            limits,
            AudioCaps::default(),
            crate::rtc::ice::servers::Gathering {
                servers: Vec::new().into(),
                tls: crate::rtc::ice::servers::tls_config(None).unwrap(),
            },
        )
        .unwrap(),
        interfaces: vec!["lo".into()],
        ports: None,
        ice_servers: Vec::new(),
        security,
        plain_talkback: false,
    };
    let topics = Topics::new("peercam", "cam");
    let outbox = Outbox::new(topics.clone(), recorder, sealing);
    let media = SessionMedia {
        video: Fanout::new(),
        audio: Fanout::new(),
        talkback: None,
    };
    SessionManager::new(setup, topics, outbox, media)
}

/// Inputs with `inbound` as the broker side; the other senders are returned
/// so the channels stay open.
#[allow(clippy::type_complexity)]
fn inputs(
    inbound: Receiver<Inbound>,
) -> (
    ManagerInputs,
    async_channel::Sender<()>,
    (
        async_channel::Sender<Command>,
        async_channel::Sender<Arc<str>>,
        async_channel::Sender<Keyring>,
    ),
) {
    let (commands_tx, commands) = async_channel::bounded(1);
    let (voice_tx, voice) = async_channel::bounded(1);
    let (keys_tx, keys) = async_channel::bounded(1);
    let (shutdown_tx, shutdown) = async_channel::bounded(1);
    let inputs = ManagerInputs {
        inbound,
        commands,
        voice,
        keys,
        shutdown,
    };
    (inputs, shutdown_tx, (commands_tx, voice_tx, keys_tx))
}

/// What `recorder` holds: (topic, JSON payload).
fn published(recorder: &Recorder) -> Vec<(String, serde_json::Value)> {
    let published = recorder.0.lock().unwrap();
    published
        .iter()
        .map(|(topic, payload)| (topic.clone(), serde_json::from_slice(payload).unwrap()))
        .collect()
}

#[test]
fn the_heartbeat_fires_while_an_inbound_flood_is_queued() {
    let (inbound_tx, inbound) = async_channel::unbounded();
    for n in 0..5000 {
        inbound_tx
            .try_send(Inbound {
                topic: format!("peercam/cam/in/session-{n:010}"),
                payload: Bytes::from_static(b"not json"),
                retain: false,
            })
            .unwrap();
    }
    let (inputs, shutdown, _open) = inputs(inbound);
    let mut queued_at_beats = Vec::new();
    smol::block_on(manager().run(inputs, Duration::ZERO, |_| {
        queued_at_beats.push(inbound_tx.len());
        if queued_at_beats.len() == 3 {
            shutdown.try_send(()).unwrap();
        }
    }))
    .unwrap();
    assert_eq!(queued_at_beats.len(), 3);
    assert!(
        queued_at_beats.iter().all(|queued| *queued > 4000),
        "the heartbeat and shutdown did not wait for the flood: {queued_at_beats:?}"
    );
}

#[test]
fn a_dead_broker_link_ends_the_manager_with_an_error() {
    let (inbound_tx, inbound) = async_channel::unbounded::<Inbound>();
    drop(inbound_tx);
    let (inputs, _shutdown, _open) = inputs(inbound);
    let outcome = smol::block_on(manager().run(inputs, Duration::from_secs(1), |_| {}));
    let error = outcome.unwrap_err().to_string();
    assert!(error.contains("MQTT link stopped"), "{error}");
}

#[test]
fn the_status_goes_out_at_start() {
    let recorder = Arc::new(Recorder::default());
    let (_inbound_tx, inbound) = async_channel::unbounded();
    let (inputs, shutdown, _open) = inputs(inbound);
    let mut beats = 0;
    smol::block_on(manager_recording(Arc::clone(&recorder)).run(
        inputs,
        Duration::from_millis(1),
        |_| {
            beats += 1;
            if beats == 3 {
                shutdown.try_send(()).unwrap();
            }
        },
    ))
    .unwrap();
    let published = recorder.0.lock().unwrap();
    let statuses: Vec<serde_json::Value> = published
        .iter()
        .filter(|(topic, _)| topic == "status")
        .map(|(_, payload)| serde_json::from_slice(payload).unwrap())
        .collect();
    assert_eq!(statuses.len(), 1, "once, not once per wake-up");
    assert_eq!(statuses[0]["online"], true);
    assert_eq!(statuses[0]["viewers"], 0);
}

#[test]
fn a_sealed_device_publishes_its_nonce_and_tells_an_unsealed_sender_once() {
    let recorder = Arc::new(Recorder::default());
    let mut keyring = Keyring::default();
    keyring
        .add(crate::signal::keyring::new_viewer("alice").unwrap())
        .unwrap();
    let sealing = Sealing::new(keyring, Instant::now());
    let nonce = sealing.nonce().to_owned();
    let manager = manager_with(Arc::clone(&recorder), SecurityMode::Auto, Some(sealing));
    let (inbound_tx, inbound) = async_channel::unbounded();
    for _ in 0..3 {
        inbound_tx
            .try_send(Inbound {
                topic: "peercam/cam/in/session-0000000001".into(),
                payload: Bytes::from_static(br#"{"v":1,"type":"offer","sdp":"v=0"}"#),
                retain: false,
            })
            .unwrap();
    }
    let (inputs, shutdown, _open) = inputs(inbound);
    let mut dropped = 0;
    smol::block_on(manager.run(inputs, Duration::from_millis(1), |tally| {
        dropped = tally.dropped;
        if inbound_tx.is_empty() {
            shutdown.try_send(()).unwrap();
        }
    }))
    .unwrap();
    let published = published(&recorder);
    let status = &published.iter().find(|(t, _)| t == "status").unwrap().1;
    assert_eq!(
        (status["sealed"].clone(), status["nonce"].clone()),
        (true.into(), nonce.into())
    );
    let replies: Vec<_> = published
        .iter()
        .filter(|(t, _)| t == "peercam/cam/out/session-0000000001")
        .map(|(_, payload)| payload.clone())
        .collect();
    assert_eq!(
        replies.len(),
        1,
        "unauthorized once per session: {replies:?}"
    );
    assert_eq!(replies[0]["type"], "error");
    assert_eq!(replies[0]["code"], "unauthorized");
    assert_eq!(dropped, 3, "each one counted");
}

#[test]
fn pairing_the_first_viewer_seals_an_auto_device() {
    let recorder = Arc::new(Recorder::default());
    let manager = manager_with(Arc::clone(&recorder), SecurityMode::Auto, None);
    let (_inbound_tx, inbound) = async_channel::unbounded();
    let (inputs, shutdown, (_, _, keys)) = inputs(inbound);
    let mut keyring = Keyring::default();
    keyring
        .add(crate::signal::keyring::new_viewer("alice").unwrap())
        .unwrap();
    let mut keyring = Some(keyring);
    let sealed_status = |recorder: &Recorder| {
        published(recorder)
            .iter()
            .any(|(t, status)| t == "status" && status["sealed"] == true)
    };
    // Statuses go out at most once a second: bounded by beats, not by a sleep.
    let mut beats = 0;
    smol::block_on(manager.run(inputs, Duration::from_millis(1), |_| {
        beats += 1;
        if let Some(keyring) = keyring.take() {
            keys.try_send(keyring).unwrap();
        }
        if sealed_status(&recorder) || beats == 10_000 {
            shutdown.try_send(()).unwrap();
        }
    }))
    .unwrap();
    let sealed: Vec<_> = published(&recorder)
        .into_iter()
        .filter(|(t, _)| t == "status")
        .map(|(_, status)| status["sealed"].clone())
        .collect();
    assert_eq!(sealed, [false, true]);
}
