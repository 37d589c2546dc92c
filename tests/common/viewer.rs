//! A viewer for the Rust end-to-end tests: an MQTT client that signals
//! exactly as docs/protocol.md says, and a str0m peer that receives video.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc};
use turn_client_proto::types::stun::message::TransactionId;

use super::seal::TestKey;

/// Reconnect attempts of a test client before it gives up.
const RECONNECTS: u32 = 300;
/// Pause between a test client's reconnect attempts.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// An MQTT client that collects every message on its subscriptions.
pub(crate) struct Mqtt {
    port: u16,
    client: Client,
    messages: mpsc::Receiver<(String, Value)>,
    subscribed: mpsc::Receiver<()>,
    sealing: Option<Arc<Sealing>>,
}

/// A paired viewer's sealing: its key, the `seq` sent per topic, and the
/// device's latest status nonce.
struct Sealing {
    key: TestKey,
    sent: Mutex<HashMap<String, u64>>,
    nonce: Mutex<Option<String>>,
}

impl Mqtt {
    /// Connects to the broker on 127.0.0.1:`port`.
    pub(crate) fn connect(port: u16) -> Mqtt {
        Mqtt::connect_to("127.0.0.1", port)
    }

    /// Connects as the paired viewer holding `key` (`<kid>.<secret>`): it
    /// seals what it publishes on `…/in/…` and hands over the opened body
    /// of what arrives sealed (unsealed payloads as they are).
    pub(crate) fn connect_sealed(port: u16, key: &str) -> Mqtt {
        Mqtt::connect_with(
            "127.0.0.1",
            port,
            Some(Arc::new(Sealing {
                key: TestKey::parse(key),
                sent: Mutex::default(),
                nonce: Mutex::default(),
            })),
        )
    }

    /// Connects to the broker at `host`:`port`.
    pub(crate) fn connect_to(host: &str, port: u16) -> Mqtt {
        Mqtt::connect_with(host, port, None)
    }

    fn connect_with(host: &str, port: u16, sealing: Option<Arc<Sealing>>) -> Mqtt {
        let id = format!("test-{}", rand::random::<u32>());
        let mut options = MqttOptions::new(id, host, port);
        options.set_max_packet_size(8 << 20, 8 << 20);
        let (client, mut connection) = Client::new(options, 64);
        let (tx, messages) = mpsc::channel();
        let (acks, subscribed) = mpsc::channel();
        let opener = sealing.clone();
        std::thread::spawn(move || {
            let mut failures = 0;
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let mut value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        if let Some(sealing) = &opener {
                            value = sealing.receive(&p.topic, value);
                        }
                        if tx.send((p.topic, value)).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = acks.send(());
                    }
                    Ok(_) => {}
                    // rumqttc retries at once: a reconnect backoff, bounded
                    // in count so a broker that never comes ends the thread
                    // (and the test's waits fail with what they saw).
                    Err(_) if failures < RECONNECTS => {
                        failures += 1;
                        std::thread::sleep(RECONNECT_BACKOFF);
                    }
                    Err(_) => return,
                }
            }
        });
        Mqtt {
            port,
            client,
            messages,
            subscribed,
            sealing,
        }
    }

    /// Subscribes to `topic` and waits for the broker's acknowledgement, so
    /// nothing published afterwards can be missed.
    pub(crate) fn subscribe(&self, topic: &str) {
        self.client.subscribe(topic, QoS::AtLeastOnce).unwrap();
        self.subscribed
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no SUBACK for {topic} within 10 s"));
    }

    /// Publishes `value` on `topic` (QoS 1, not retained): sealed, with the
    /// next `seq` (and an offer with the status nonce), for a paired
    /// viewer. Returns the payload as published.
    pub(crate) fn publish(&self, topic: &str, value: &Value) -> Vec<u8> {
        let payload = match &self.sealing {
            Some(sealing) if topic.contains("/in/") => sealing.seal(topic, value.clone()),
            _ => value.to_string().into_bytes(),
        };
        self.publish_raw(topic, payload.clone());
        payload
    }

    /// Publishes raw bytes on `topic` (QoS 1, not retained).
    pub(crate) fn publish_raw(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .unwrap();
    }

    /// Every message that arrived so far, without waiting.
    pub(crate) fn drain(&self) -> Vec<(String, Value)> {
        self.messages.try_iter().collect()
    }

    /// The next message on `topic` matching `want`, within `timeout`.
    pub(crate) fn wait_for(
        &self,
        topic: &str,
        timeout: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut seen = Vec::new();
        self.next_matching(topic, timeout, want, &mut seen)
            .unwrap_or_else(|| {
                panic!("nothing matching on {topic} within {timeout:?}; saw {seen:?}")
            })
    }

    /// The next message on `topic` matching `want` within `timeout`, if any.
    pub(crate) fn try_wait_for(
        &self,
        topic: &str,
        timeout: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        self.next_matching(topic, timeout, want, &mut Vec::new())
    }

    fn next_matching(
        &self,
        topic: &str,
        timeout: Duration,
        want: impl Fn(&Value) -> bool,
        seen: &mut Vec<(String, Value)>,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.messages.recv_timeout(left) {
                Ok((t, value)) if t == topic && want(&value) => return Some(value),
                Ok(other) => seen.push(other),
                Err(_) => break,
            }
        }
        None
    }

    /// The broker port this client talks to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Sealing {
    fn seal(&self, topic: &str, mut body: Value) -> Vec<u8> {
        let mut sent = self.sent.lock().unwrap();
        let seq = sent.entry(topic.to_owned()).or_default();
        *seq += 1;
        body["seq"] = (*seq).into();
        if body["type"] == "offer" && body.get("nonce").is_none() {
            let nonce = self.nonce.lock().unwrap().clone();
            body["nonce"] = nonce
                .expect("the device's status nonce: subscribe to its status first")
                .into();
        }
        self.key.seal(topic, &body)
    }

    /// The opened body of a sealed payload; notes a status nonce.
    fn receive(&self, topic: &str, value: Value) -> Value {
        if topic.ends_with("/status")
            && let Some(nonce) = value["nonce"].as_str()
        {
            *self.nonce.lock().unwrap() = Some(nonce.to_owned());
        }
        if value.get("seal").is_some() {
            return self
                .key
                .open(topic, &value)
                .unwrap_or(json!({"unopened": value}));
        }
        value
    }
}

/// A str0m viewer: receives video, counts access units.
pub(crate) struct Viewer {
    pub(crate) rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    /// The candidates this viewer trickles.
    candidates: Vec<Candidate>,
    /// When each device candidate arrived, after the answer.
    pub(crate) candidate_times: Vec<(String, Duration)>,
    /// When the latest answer arrived.
    answered: Option<Instant>,
    /// Access units that arrived beyond what the last receive asked for
    /// (one datagram can complete several); the next receive starts with them.
    held: Vec<Vec<u8>>,
}

impl Viewer {
    /// A viewer on loopback, with its offer.
    pub(crate) fn new() -> (Viewer, SdpOffer, str0m::change::SdpPendingOffer) {
        Viewer::on("127.0.0.1")
    }

    /// A viewer with its socket on address `ip`, with its offer.
    pub(crate) fn on(ip: &str) -> (Viewer, SdpOffer, str0m::change::SdpPendingOffer) {
        let mut rtc = Rtc::builder().build(Instant::now());
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        let local = socket.local_addr().unwrap();
        rtc.add_local_candidate(Candidate::host(local, Protocol::Udp).unwrap());
        let mut change = rtc.sdp_api();
        change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let candidates = vec![Candidate::host(local, Protocol::Udp).unwrap()];
        (
            Viewer {
                rtc,
                socket,
                local,
                candidates,
                candidate_times: Vec::new(),
                answered: None,
                held: Vec::new(),
            },
            offer,
            pending,
        )
    }

    /// This viewer's public address as STUN server `stun` sees it
    /// (RFC 8489 Binding, retried a bounded number of times).
    fn reflexive_address(&self, stun: SocketAddr) -> SocketAddr {
        use turn_client_proto::types::stun::attribute::XorMappedAddress;
        use turn_client_proto::types::stun::message::Message;
        let (transaction, request) = binding_request();
        let mut buf = [0u8; 1500];
        self.socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        for _ in 0..25 {
            self.socket.send_to(&request, stun).unwrap();
            let Ok((n, from)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            let Ok(response) = Message::from_bytes(&buf[..n]) else {
                continue;
            };
            if from == stun && response.transaction_id() == transaction {
                let mapped = response.attribute::<XorMappedAddress>().unwrap();
                self.socket
                    .set_read_timeout(Some(Duration::from_millis(5)))
                    .unwrap();
                return mapped.addr(transaction);
            }
        }
        panic!("no STUN answer from {stun}");
    }

    /// Runs the viewer until `frames` access units arrived or `timeout`;
    /// returns them, at most `frames`.
    pub(crate) fn receive(&mut self, frames: usize, timeout: Duration) -> Vec<Vec<u8>> {
        self.receive_trickling(None, frames, timeout)
    }

    /// [`Viewer::receive`], taking the device's candidates from `trickle`
    /// (the client and the session's `out/S` topic) as they arrive, as a
    /// browser does: the call starts before gathering ends.
    pub(crate) fn receive_trickling(
        &mut self,
        trickle: Option<(&Mqtt, &str)>,
        frames: usize,
        timeout: Duration,
    ) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut received: Vec<_> = self.held.drain(..self.held.len().min(frames)).collect();
        let mut buf = vec![0u8; 2048];
        while received.len() < frames && Instant::now() < deadline {
            if let Some((mqtt, out)) = trickle {
                for (topic, message) in mqtt.drain() {
                    let line = message["candidate"].as_str().unwrap_or_default();
                    if topic == out && message["type"] == "candidate" && !line.is_empty() {
                        if let Ok(candidate) = Candidate::from_sdp_string(line) {
                            self.rtc.add_remote_candidate(candidate);
                        }
                        let since = self.answered.map(|a| a.elapsed()).unwrap_or_default();
                        self.candidate_times.push((line.to_owned(), since));
                    }
                }
            }
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
                // What str0m cannot take is dropped, as a browser drops it:
                // a STUN server's late answer to a repeated reflexive-address
                // request is one (it carries no MESSAGE-INTEGRITY).
                Ok((n, source)) => match buf[..n].try_into() {
                    Ok(contents) => Input::Receive(
                        Instant::now(),
                        Receive {
                            proto: Protocol::Udp,
                            source,
                            destination: self.local,
                            contents,
                        },
                    ),
                    Err(_) => continue,
                },
                Err(_) if Instant::now() >= wait => Input::Timeout(Instant::now()),
                Err(_) => continue,
            };
            self.rtc.handle_input(input).unwrap();
        }
        self.held
            .extend(received.drain(frames.min(received.len())..));
        received
    }
}

pub(crate) fn nal_types(access_unit: &[u8]) -> Vec<u8> {
    access_unit
        .windows(4)
        .filter(|w| w[..3] == [0, 0, 1])
        .map(|w| w[3] & 0x1f)
        .collect()
}

/// A STUN Binding request (RFC 8489) and its transaction id.
pub(crate) fn binding_request() -> (TransactionId, Vec<u8>) {
    use turn_client_proto::types::stun::message::{
        BINDING, Message, MessageClass, MessageType, MessageWriteVec,
    };
    use turn_client_proto::types::stun::prelude::MessageWrite;
    let transaction = TransactionId::generate();
    let request = Message::builder(
        MessageType::from_class_method(MessageClass::Request, BINDING),
        transaction,
        MessageWriteVec::new(),
    )
    .finish();
    (transaction, request)
}

pub(crate) fn session_id() -> String {
    format!("rustviewer{:016x}", rand::random::<u64>())
}

/// Calls device `device` (prefix `peercam`): offer, answer, candidates both
/// ways. Returns the viewer.
pub(crate) fn call(mqtt: &Mqtt, device: &str, session: &str) -> Viewer {
    call_from(mqtt, device, session, "127.0.0.1")
}

/// [`call`] from a viewer whose socket is on address `ip`.
pub(crate) fn call_from(mqtt: &Mqtt, device: &str, session: &str, ip: &str) -> Viewer {
    try_call(mqtt, device, session, ip).unwrap_or_else(|error| panic!("offer refused: {error}"))
}

/// [`call_from`], or the device's `error` when it refuses the offer.
pub(crate) fn try_call(
    mqtt: &Mqtt,
    device: &str,
    session: &str,
    ip: &str,
) -> Result<Viewer, Value> {
    try_call_via(mqtt, device, session, ip, None).map(|(viewer, _)| viewer)
}

/// [`try_call`] from a viewer that also learns its public address from the
/// STUN server `stun` (as a browser does from its ICE servers) and signals
/// it. Returns the viewer and the device's candidates.
pub(crate) fn try_call_via(
    mqtt: &Mqtt,
    device: &str,
    session: &str,
    ip: &str,
    stun: Option<SocketAddr>,
) -> Result<(Viewer, Vec<String>), Value> {
    let out = format!("peercam/{device}/out/{session}");
    let inbound = format!("peercam/{device}/in/{session}");
    mqtt.subscribe(&out);
    let (mut viewer, offer, pending) = Viewer::on(ip);
    if let Some(stun) = stun {
        let mapped = viewer.reflexive_address(stun);
        let reflexive = Candidate::server_reflexive(mapped, viewer.local, Protocol::Udp).unwrap();
        viewer.rtc.add_local_candidate(reflexive.clone());
        viewer.candidates.push(reflexive);
    }
    let device_candidates = viewer.negotiate(mqtt, &out, &inbound, offer, pending, true)?;
    Ok((viewer, device_candidates))
}

/// [`try_call_via`] that returns once the answer is in and its own
/// candidates are sent: the device's come through
/// [`Viewer::receive_trickling`].
pub(crate) fn try_call_trickling(
    mqtt: &Mqtt,
    device: &str,
    session: &str,
    ip: &str,
    stun: SocketAddr,
) -> Result<Viewer, Value> {
    let out = format!("peercam/{device}/out/{session}");
    let inbound = format!("peercam/{device}/in/{session}");
    mqtt.subscribe(&out);
    let (mut viewer, offer, pending) = Viewer::on(ip);
    let mapped = viewer.reflexive_address(stun);
    let reflexive = Candidate::server_reflexive(mapped, viewer.local, Protocol::Udp).unwrap();
    viewer.rtc.add_local_candidate(reflexive.clone());
    viewer.candidates.push(reflexive);
    viewer.negotiate(mqtt, &out, &inbound, offer, pending, false)?;
    Ok(viewer)
}

impl Viewer {
    /// Restarts ICE on the live call (as a browser does when its path
    /// fails): a new offer on the same session, the answer, candidates.
    /// Returns the device's candidates of the new generation.
    pub(crate) fn restart_ice(
        &mut self,
        mqtt: &Mqtt,
        device: &str,
        session: &str,
    ) -> Result<Vec<String>, Value> {
        let out = format!("peercam/{device}/out/{session}");
        let inbound = format!("peercam/{device}/in/{session}");
        let mut change = self.rtc.sdp_api();
        change.ice_restart(true);
        let (offer, pending) = change.apply().unwrap();
        self.negotiate(mqtt, &out, &inbound, offer, pending, true)
    }

    /// Offers, takes the answer, trickles this viewer's candidates and,
    /// with `all`, takes the device's up to end-of-candidates; returns those.
    fn negotiate(
        &mut self,
        mqtt: &Mqtt,
        out: &str,
        inbound: &str,
        offer: SdpOffer,
        pending: str0m::change::SdpPendingOffer,
        all: bool,
    ) -> Result<Vec<String>, Value> {
        let viewer = self;
        mqtt.publish(
            inbound,
            &json!({"v":1,"type":"offer","sdp":offer.to_sdp_string()}),
        );
        let answer = mqtt.wait_for(out, Duration::from_secs(10), |v| {
            v["type"] == "answer" || v["type"] == "error"
        });
        if answer["type"] == "error" {
            return Err(answer);
        }
        let answered = Instant::now();
        viewer.answered = Some(answered);
        let answer = SdpAnswer::from_sdp_string(answer["sdp"].as_str().unwrap()).unwrap();
        viewer.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        let ufrag = viewer.rtc.direct_api().local_ice_credentials().ufrag;
        for local in &viewer.candidates {
            mqtt.publish(
                inbound,
                &json!({"v":1,"type":"candidate","candidate":local.to_sdp_string(),
                    "sdpMid":"0","sdpMLineIndex":0,"usernameFragment":ufrag}),
            );
        }
        let mut device_candidates = Vec::new();
        if !all {
            return Ok(device_candidates);
        }
        loop {
            let candidate = mqtt.wait_for(out, CANDIDATES_WAIT, |v| v["type"] == "candidate");
            let line = candidate["candidate"].as_str().unwrap();
            if line.is_empty() {
                break;
            }
            viewer
                .rtc
                .add_remote_candidate(Candidate::from_sdp_string(line).unwrap());
            device_candidates.push(line.to_owned());
            viewer
                .candidate_times
                .push((line.to_owned(), answered.elapsed()));
        }
        Ok(device_candidates)
    }
}

/// How long the device may take to trickle all its candidates: its
/// gathering gives up after 5 s.
const CANDIDATES_WAIT: Duration = Duration::from_secs(10);
