//! The device's [`Session`] and a str0m viewer exchanging datagrams in
//! memory on a simulated clock, in the style of str0m's own tests: no
//! sockets, no sleeps, every run the same.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind, MediaTime};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::*;
use crate::media::EncodedFrame;
use crate::media::fanout::Fanout;

const DEVICE: &str = "192.0.2.1:40000";
const VIEWER: &str = "198.51.100.7:50000";
/// Simulated steps a test may take before it gives up.
const MAX_STEPS: usize = 20_000;
/// The first bytes of a STUN binding success response.
const STUN_SUCCESS_RESPONSE: [u8; 2] = [0x01, 0x01];

/// Both ends of one call and what came out of them.
struct Pair {
    now: Instant,
    device: Session,
    viewer: Rtc,
    device_addr: SocketAddr,
    viewer_addr: SocketAddr,
    /// Whether the viewer's datagrams reach the device (a vanished viewer: no).
    viewer_reaches_device: bool,
    /// The viewer's answers to ICE checks, held back on the way while `Some`.
    held_stun_responses: Option<Vec<Vec<u8>>>,
    /// DTLS datagrams the viewer sent.
    viewer_dtls_sent: usize,
    device_deadline: Instant,
    viewer_deadline: Instant,
    /// What the device reported, in order (transmits left out).
    device_events: Vec<String>,
    /// Frames the viewer decoded, as Annex-B NAL unit types.
    viewer_frames: Vec<Vec<u8>>,
    viewer_connected: bool,
    talk: Vec<Arc<[u8]>>,
    /// The viewer's audio m-line, if it offered one.
    audio_mid: Option<str0m::media::Mid>,
}

impl Pair {
    /// A call from a viewer offering `media`, to a device with `audio`.
    fn call(media: &[(MediaKind, Direction)], audio: AudioCaps) -> Pair {
        let now = Instant::now();
        let device_addr: SocketAddr = DEVICE.parse().unwrap();
        let viewer_addr: SocketAddr = VIEWER.parse().unwrap();
        let mut viewer = Rtc::builder().build(now);
        viewer.add_local_candidate(Candidate::host(viewer_addr, Protocol::Udp).unwrap());
        let mut change = viewer.sdp_api();
        let mut audio_mid = None;
        for (kind, direction) in media {
            let mid = change.add_media(*kind, *direction, None, None, None);
            if *kind == MediaKind::Audio {
                audio_mid = Some(mid);
            }
        }
        let (offer, pending) = change.apply().unwrap();
        let config = SessionConfig {
            audio,
            ..test_config()
        };
        let (mut device, answer) =
            Session::accept(&offer.to_sdp_string(), &[device_addr], &config, now).unwrap();
        viewer
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer.sdp).unwrap())
            .unwrap();
        for candidate in &answer.candidates {
            viewer.add_remote_candidate(Candidate::from_sdp_string(&candidate.line).unwrap());
        }
        let viewer_candidate = Candidate::host(viewer_addr, Protocol::Udp).unwrap();
        device
            .add_remote_candidate(&viewer_candidate.to_sdp_string(), None)
            .unwrap();
        Pair {
            now,
            device,
            viewer,
            device_addr,
            viewer_addr,
            viewer_reaches_device: true,
            held_stun_responses: None,
            viewer_dtls_sent: 0,
            device_deadline: now,
            viewer_deadline: now,
            device_events: Vec::new(),
            viewer_frames: Vec::new(),
            viewer_connected: false,
            talk: Vec::new(),
            audio_mid,
        }
    }

    /// Lets both ends do everything they want now, then moves the clock
    /// to the earlier of their deadlines.
    fn step(&mut self) {
        loop {
            let mut moved = false;
            loop {
                match self.device.poll_output() {
                    SessionOutput::Transmit {
                        destination,
                        contents,
                        ..
                    } => {
                        moved = true;
                        assert_eq!(destination, self.viewer_addr);
                        let input = Input::Receive(
                            self.now,
                            Receive {
                                proto: Protocol::Udp,
                                source: self.device_addr,
                                destination: self.viewer_addr,
                                contents: contents.as_slice().try_into().unwrap(),
                            },
                        );
                        self.viewer.handle_input(input).unwrap();
                    }
                    SessionOutput::Timeout(at) => {
                        self.device_deadline = at;
                        break;
                    }
                    SessionOutput::TalkAudio { data, .. } => self.talk.push(data),
                    other => self.device_events.push(format!("{other:?}")),
                }
            }
            loop {
                match self.viewer.poll_output().unwrap() {
                    Output::Transmit(t) => {
                        moved = true;
                        if is_dtls(&t.contents) {
                            self.viewer_dtls_sent += 1;
                        }
                        if let Some(held) = &mut self.held_stun_responses
                            && t.contents.starts_with(&STUN_SUCCESS_RESPONSE)
                        {
                            held.push(t.contents.to_vec());
                        } else if self.viewer_reaches_device {
                            self.device.handle_datagram(
                                self.now,
                                self.viewer_addr,
                                self.device_addr,
                                &t.contents,
                            );
                        }
                    }
                    Output::Timeout(at) => {
                        self.viewer_deadline = at;
                        break;
                    }
                    Output::Event(Event::Connected) => self.viewer_connected = true,
                    Output::Event(Event::MediaData(data)) => {
                        self.viewer_frames.push(nal_types(&data.data))
                    }
                    Output::Event(_) => {}
                }
            }
            if !moved {
                break;
            }
        }
        let next = self.device_deadline.min(self.viewer_deadline);
        self.now = next.max(self.now + Duration::from_millis(1));
        self.device.handle_timeout(self.now);
        self.viewer.handle_input(Input::Timeout(self.now)).unwrap();
    }

    /// Steps until `done`, within [`MAX_STEPS`].
    fn until(&mut self, what: &str, done: impl Fn(&Pair) -> bool) {
        for _ in 0..MAX_STEPS {
            if done(self) {
                return;
            }
            self.step();
        }
        panic!("never {what}; device said {:?}", self.device_events);
    }

    fn device_said(&self, what: &str) -> bool {
        self.device_events.iter().any(|e| e.starts_with(what))
    }
}

/// NAL unit types of an Annex-B access unit.
fn nal_types(access_unit: &[u8]) -> Vec<u8> {
    access_unit
        .windows(4)
        .filter(|w| w[..3] == [0, 0, 1])
        .map(|w| w[3] & 0x1f)
        .collect()
}

/// A small Annex-B access unit: SPS, PPS and IDR for a keyframe, else one slice.
fn frame(n: u64, keyframe: bool) -> EncodedFrame {
    let mut data = Vec::new();
    if keyframe {
        data.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0x8c, 0x8d, 0x40]);
        data.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        data.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x33]);
    } else {
        data.extend_from_slice(&[0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x03, 0x04]);
    }
    EncodedFrame {
        data: data.into(),
        pts_90khz: n * 3000,
        captured: Instant::now(),
        keyframe,
    }
}

fn video_only() -> Vec<(MediaKind, Direction)> {
    vec![(MediaKind::Video, Direction::RecvOnly)]
}

#[test]
fn connects_and_the_first_frame_a_viewer_sees_is_a_keyframe() {
    let mut pair = Pair::call(&video_only(), AudioCaps::default());
    pair.until("connected", |p| {
        p.device_said("Connected") && p.viewer_connected
    });
    assert!(pair.device_said("Heard"), "{:?}", pair.device_events);
    // The driver subscribes to the camera's fan-out once connected; the
    // fan-out starts every new viewer at a keyframe.
    let camera = Fanout::new();
    let subscription = camera.subscribe(8);
    for n in 0..6 {
        camera.publish(frame(n, n == 2));
    }
    while let Some(frame) = subscription.try_recv() {
        pair.device.write_video(&frame);
        pair.step();
    }
    pair.until("frames decoded", |p| p.viewer_frames.len() >= 4);
    assert!(
        pair.viewer_frames[0].contains(&5) && pair.viewer_frames[0].contains(&7),
        "first frame: {:?}",
        pair.viewer_frames
    );
}

#[test]
fn dtls_that_arrives_before_the_devices_own_check_succeeds_is_kept() {
    let mut plain = Pair::call(&video_only(), AudioCaps::default());
    plain.until("connected", |p| p.device_said("Connected"));
    let mut pair = Pair::call(&video_only(), AudioCaps::default());
    // The viewer's checks succeed; its answers to the device's checks are
    // late, so its DTLS comes from a source the device has not confirmed.
    pair.held_stun_responses = Some(Vec::new());
    pair.until("the viewer starts DTLS", |p| p.viewer_dtls_sent > 0);
    assert_eq!(pair.device.early_dtls.len(), pair.viewer_dtls_sent, "kept");
    for response in pair.held_stun_responses.take().unwrap() {
        let (now, from, to) = (pair.now, pair.viewer_addr, pair.device_addr);
        pair.device.handle_datagram(now, from, to, &response);
    }
    assert!(pair.device.early_dtls.is_empty(), "fed once ICE confirmed");
    pair.until("connected", |p| p.device_said("Connected"));
    // Dropped, the ClientHello would have to be sent again: a second
    // later for str0m, 50 ms or more for Chromium.
    assert_eq!(
        pair.viewer_dtls_sent, plain.viewer_dtls_sent,
        "the viewer sent nothing twice"
    );
}

#[test]
fn a_viewer_that_vanishes_is_reaped_at_the_peer_timeout() {
    let mut pair = Pair::call(&video_only(), AudioCaps::default());
    pair.until("connected", |p| p.device_said("Connected"));
    pair.viewer_reaches_device = false;
    let vanished = pair.now;
    pair.until("ended", |p| p.device_said("Ended"));
    assert!(
        pair.device_said("Ended(PeerLost)"),
        "{:?}",
        pair.device_events
    );
    let waited = pair.now - vanished;
    assert!(
        waited >= LIMITS.peer_timeout && waited <= LIMITS.peer_timeout + Duration::from_secs(1),
        "reaped after {waited:?}"
    );
}

#[test]
fn a_renegotiation_restarts_ice_and_the_call_goes_on() {
    let mut pair = Pair::call(&video_only(), AudioCaps::default());
    pair.until("connected", |p| p.device_said("Connected"));
    let mut change = pair.viewer.sdp_api();
    change.ice_restart(true);
    let (offer, pending) = change.apply().unwrap();
    let answer = pair
        .device
        .renegotiate(&offer.to_sdp_string(), pair.now)
        .unwrap();
    assert!(answer.candidates.iter().all(|c| c.ufrag.is_some()));
    pair.viewer
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer.sdp).unwrap())
        .unwrap();
    for candidate in &answer.candidates {
        pair.viewer
            .add_remote_candidate(Candidate::from_sdp_string(&candidate.line).unwrap());
    }
    for n in 0..20 {
        pair.device.write_video(&frame(n, n == 0));
        for _ in 0..5 {
            pair.step();
        }
    }
    pair.until("frames after the restart", |p| p.viewer_frames.len() >= 10);
    assert!(!pair.device_said("Ended"), "{:?}", pair.device_events);
}

#[test]
fn talk_back_audio_comes_out_only_on_a_sendrecv_call() {
    let both = AudioCaps {
        send: true,
        receive: true,
    };
    for (direction, expect_talk) in [(Direction::SendRecv, true), (Direction::RecvOnly, false)] {
        let media = [
            (MediaKind::Video, Direction::RecvOnly),
            (MediaKind::Audio, direction),
        ];
        let mut pair = Pair::call(&media, both);
        pair.until("connected", |p| {
            p.device_said("Connected") && p.viewer_connected
        });
        let audio_mid = pair.audio_mid;
        for n in 0..20u64 {
            if let Some(writer) = audio_mid.and_then(|mid| pair.viewer.writer(mid)) {
                let pt = writer.payload_params().next().map(|p| p.pt());
                if let Some(pt) = pt {
                    let time = MediaTime::new(n * 960, str0m::media::Frequency::FORTY_EIGHT_KHZ);
                    let _ = writer.write(pt, pair.now, time, vec![0xf8, 0xff, 0xfe]);
                }
            }
            pair.step();
        }
        for _ in 0..50 {
            pair.step();
        }
        assert_eq!(
            !pair.talk.is_empty(),
            expect_talk,
            "{direction:?}: {} talk-back packets",
            pair.talk.len()
        );
    }
}
