//! A comparator for the peercam benchmarks: the camera of peercam's `test`
//! preset served to browsers with GStreamer's `webrtcbin`, signaled over
//! MQTT in peercam's plain mode (docs/protocol.md), enough for peercam's
//! bundled web viewer.
//!
//! One source pipeline encodes once and ends in a `tee` of RTP; every
//! viewer gets its own branch, `queue ! webrtcbin`, added when its offer
//! arrives and removed on `bye`. A force-key-unit event goes upstream
//! when a viewer's webrtcbin connects.
//!
//! Threads: the MQTT event loop runs on its own (a current-thread tokio
//! runtime, as in peercam); webrtcbin's callbacks and the MQTT thread only
//! send [`Event`]s to the main thread, which owns the sessions and does all
//! signaling in order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use gst::prelude::*;
use gst_video::prelude::*;
use gstreamer as gst;
use gstreamer_sdp as gst_sdp;
use gstreamer_video as gst_video;
use gstreamer_webrtc as gst_webrtc;
use rumqttc::{AsyncClient, Event as MqttEvent, LastWill, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

/// A session that has not connected this long after its offer is ended.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A connected session that has heard nothing from its viewer this long
/// is ended (libnice here does no consent checks, so webrtcbin never sees
/// a vanished viewer go).
const PEER_TIMEOUT: Duration = Duration::from_secs(30);
/// Session ids remembered after their session ended (later messages are dropped).
const ENDED_MEMORY: usize = 256;
/// Viewer candidates kept for a session whose offer has not arrived yet.
const EARLY_CANDIDATES: usize = 32;
/// The payload type the shared payloader stamps; each branch rewrites it
/// to the one its answer negotiated.
const SOURCE_PT: u8 = 96;

/// Extra logs (answers, queue levels) with `PEERCAM_WEBRTCBIN_DEBUG=1`.
fn debug() -> bool {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("PEERCAM_WEBRTCBIN_DEBUG").is_some())
}

fn log(msg: impl AsRef<str>) {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    eprintln!(
        "[{}.{:03}] {}",
        t.as_secs(),
        t.subsec_millis(),
        msg.as_ref()
    );
}

/// The command line every comparator shares.
#[derive(Debug, Clone)]
struct Args {
    broker: String,
    prefix: String,
    device: String,
    width: u32,
    height: u32,
    fps: u32,
    bitrate_kbps: u32,
    max_viewers: usize,
}

impl Args {
    fn parse() -> anyhow::Result<Args> {
        let mut args = Args {
            broker: "mqtt://127.0.0.1:1883".into(),
            prefix: "peercam".into(),
            device: "cam".into(),
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 2000,
            max_viewers: 20,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                println!(
                    "usage: peercam-webrtcbin --broker mqtt://HOST:PORT --prefix P --device D \
                     --width W --height H --fps F --bitrate-kbps B --max-viewers N"
                );
                std::process::exit(0);
            }
            let value = it.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<u32>()
                    .with_context(|| format!("{flag} {value}"))
            };
            match flag.as_str() {
                "--broker" => args.broker = value.clone(),
                "--prefix" => args.prefix = value.clone(),
                "--device" => args.device = value.clone(),
                "--width" => args.width = number()?,
                "--height" => args.height = number()?,
                "--fps" => args.fps = number()?,
                "--bitrate-kbps" => args.bitrate_kbps = number()?,
                "--max-viewers" => args.max_viewers = number()? as usize,
                other => bail!("unknown option {other}"),
            }
        }
        Ok(args)
    }

    fn base(&self) -> String {
        format!("{}/{}", self.prefix, self.device)
    }
}

/// What the main thread acts on, in arrival order.
enum Event {
    /// A publish on `P/D/in/+`.
    Mqtt {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    /// The branch of session `id` has its caps at webrtcbin.
    BranchReady { id: u64 },
    /// webrtcbin made the answer for session `id`.
    Answer {
        id: u64,
        answer: gst_webrtc::WebRTCSessionDescription,
    },
    /// webrtcbin failed to take the offer or to answer it.
    AnswerFailed { id: u64, why: String },
    /// A local ICE candidate of session `id`.
    LocalCandidate {
        id: u64,
        mline: u32,
        candidate: String,
    },
    /// Session `id` finished gathering.
    GatheringDone { id: u64 },
    /// Session `id`'s peer connection state changed.
    ConnectionState {
        id: u64,
        state: gst_webrtc::WebRTCPeerConnectionState,
    },
    /// SIGINT or SIGTERM.
    Shutdown,
}

/// The source pipeline, encoded once and fanned out by a tee.
struct Source {
    pipeline: gst::Pipeline,
    tee: gst::Element,
}

impl Source {
    fn new(args: &Args) -> anyhow::Result<Source> {
        let (w, h, fps, kbps) = (args.width, args.height, args.fps, args.bitrate_kbps);
        let description = format!(
            "videotestsrc is-live=true pattern=smpte ! video/x-raw,width={w},height={h},framerate={fps}/1 \
             ! videoconvert ! video/x-raw,format=I420 \
             ! x264enc name=enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} key-int-max=60 \
             ! video/x-h264,profile=constrained-baseline \
             ! h264parse config-interval=-1 \
             ! rtph264pay name=pay config-interval=-1 aggregate-mode=zero-latency pt={SOURCE_PT} \
             ! application/x-rtp,media=video,encoding-name=H264,payload={SOURCE_PT} \
             ! tee name=tee allow-not-linked=true"
        );
        let pipeline = gst::parse::launch(&description)
            .context("cannot build the source pipeline (gstreamer1.0-plugins-{base,good,bad,ugly} installed?)")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("the source is not a pipeline"))?;
        let enc = pipeline.by_name("enc").context("no encoder")?;
        let tee = pipeline.by_name("tee").context("no tee")?;
        install_glass_stamp(&enc.static_pad("sink").context("encoder has no sink pad")?);
        Ok(Source { pipeline, tee })
    }

    /// Asks the encoder for a keyframe with SPS/PPS, from the payloader's
    /// source pad (the path a viewer's PLI takes, minus the tee).
    fn force_keyframe(&self) {
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        if let Some(pad) = self
            .pipeline
            .by_name("pay")
            .and_then(|p| p.static_pad("src"))
        {
            pad.send_event(event);
        }
    }
}

/// Side of a glass-stamp block for a frame `width` wide.
fn stamp_block(width: u32) -> u32 {
    (width / 40).max(4)
}

/// Writes the glass stamp into an I420 frame: 34 blocks of side b from
/// (0,0), white, black, then the 32 bits of `ms` MSB first (1 white, 0
/// black), chroma under them neutral.
fn stamp_frame(frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>, ms: u32) {
    let (width, height) = (frame.width(), frame.height());
    let b = stamp_block(width);
    let blocks = 34u32.min(width / b);
    let rows = b.min(height);
    let luma = |i: u32| -> u8 {
        match i {
            0 => 235,
            1 => 16,
            _ => {
                if (ms >> (31 - (i - 2))) & 1 == 1 {
                    235
                } else {
                    16
                }
            }
        }
    };
    let stride = frame.plane_stride()[0] as usize;
    if let Ok(y) = frame.plane_data_mut(0) {
        for row in 0..rows as usize {
            let line = &mut y[row * stride..];
            for i in 0..blocks {
                let start = (i * b) as usize;
                line[start..start + b as usize].fill(luma(i));
            }
        }
    }
    let (cw, ch) = ((blocks * b).div_ceil(2) as usize, rows.div_ceil(2) as usize);
    for plane in 1..=2u32 {
        let stride = frame.plane_stride()[plane as usize] as usize;
        if let Ok(c) = frame.plane_data_mut(plane) {
            for row in 0..ch {
                c[row * stride..row * stride + cw].fill(128);
            }
        }
    }
}

/// A buffer probe on the encoder's sink pad that stamps the wall clock
/// into every raw frame.
fn install_glass_stamp(pad: &gst::Pad) {
    let info: Mutex<Option<(gst::Caps, gst_video::VideoInfo)>> = Mutex::new(None);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
        let Some(gst::PadProbeData::Buffer(buffer)) = probe.data.as_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let mut cached = info.lock().unwrap_or_else(|e| e.into_inner());
        let caps = pad.current_caps();
        let fresh = match (&*cached, &caps) {
            (Some((c, _)), Some(now)) => c != now,
            (None, Some(_)) => true,
            _ => false,
        };
        if fresh {
            let caps = caps.expect("checked above");
            *cached = gst_video::VideoInfo::from_caps(&caps)
                .ok()
                .map(|i| (caps, i));
        }
        let Some((_, video_info)) = cached.as_ref() else {
            return gst::PadProbeReturn::Ok;
        };
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64 as u32)
            .unwrap_or(0);
        let buffer = buffer.make_mut();
        if let Ok(mut frame) =
            gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, video_info)
        {
            stamp_frame(&mut frame, ms);
        }
        gst::PadProbeReturn::Ok
    });
}

/// One viewer: its branch of the pipeline and where its call stands.
struct Session {
    id: u64,
    sid: String,
    webrtc: gst::Element,
    queue: gst::Element,
    tee_src: gst::Pad,
    started: Instant,
    /// The offer, until webrtcbin has it (see [`Event::BranchReady`]).
    offer: Option<gst_webrtc::WebRTCSessionDescription>,
    /// Viewer candidates that came before webrtcbin had the offer.
    pending_remote: Vec<String>,
    answered: bool,
    connected: bool,
    eoc_sent: bool,
    /// Local candidates that came before the answer went out.
    pending_local: Vec<(u32, String)>,
    /// Media ids of the answer, by m-line.
    mids: Vec<String>,
    last_offer: Vec<u8>,
    last_candidate: Vec<u8>,
    /// Media enters the branch only once the call is connected.
    gate: Arc<AtomicBool>,
    /// When the last datagram from the viewer arrived, in ms since [`epoch`].
    last_heard: Arc<AtomicU64>,
}

/// The process's clock origin for [`Session::last_heard`].
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The signaling side and the sessions, owned by the main thread.
struct Device {
    args: Args,
    base: String,
    client: AsyncClient,
    status: Arc<Mutex<Vec<u8>>>,
    source: Source,
    events: Sender<Event>,
    sessions: HashMap<String, Session>,
    ids: HashMap<u64, String>,
    next_id: u64,
    ended: VecDeque<String>,
    ended_set: HashSet<String>,
    early: HashMap<String, Vec<String>>,
    last_viewers: usize,
    teardowns: Vec<std::thread::JoinHandle<()>>,
}

fn status_payload(args: &Args, viewers: usize) -> Vec<u8> {
    json!({
        "v": 1, "online": true, "name": "webrtcbin", "sealed": false, "video": ["H264"],
        "audio": null, "viewers": viewers, "max_viewers": args.max_viewers, "ice_servers": [],
    })
    .to_string()
    .into_bytes()
}

fn offline_payload() -> Vec<u8> {
    br#"{"v":1,"online":false}"#.to_vec()
}

fn valid_session_id(s: &str) -> bool {
    (16..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The H.264 format this camera sends, as the offer numbers it: payload
/// type and `profile-level-id` of the first H.264 constrained baseline
/// format with packetization-mode 1 on the first usable video m-line.
fn offered_h264(offer: &gst_sdp::SDPMessageRef) -> Option<(u8, String)> {
    let media = offer
        .medias()
        .find(|m| m.media() == Some("video") && m.port() != 0)?;
    for format in media.formats() {
        let Ok(pt) = format.parse::<u8>() else {
            continue;
        };
        let rtpmap_prefix = format!("{pt} ");
        let h264 = media.attributes().any(|a| {
            a.key() == "rtpmap"
                && a.value().is_some_and(|v| {
                    v.strip_prefix(&rtpmap_prefix)
                        .is_some_and(|rest| rest.to_ascii_uppercase().starts_with("H264/90000"))
                })
        });
        if !h264 {
            continue;
        }
        let fmtp = media
            .attributes()
            .filter(|a| a.key() == "fmtp")
            .filter_map(|a| a.value())
            .find_map(|v| v.strip_prefix(&rtpmap_prefix))
            .unwrap_or("");
        let params: HashMap<String, String> = fmtp
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let profile = params
            .get("profile-level-id")
            .map(|p| p.to_ascii_lowercase());
        if params.get("packetization-mode").map(String::as_str) == Some("1")
            && let Some(profile) = profile
            && (profile == "42e01f" || profile == "42001f")
        {
            return Some((pt, profile));
        }
    }
    None
}

/// The branch's view of the shared RTP caps: the viewer's payload type
/// and profile instead of the payloader's. webrtcbin answers with the
/// intersection of the offer's caps and these, and reads the offer's
/// `profile-level-id` as a `profile` name (42001f is "baseline", 42e01f
/// "constrained-baseline"), so both fields must agree with the offer.
fn branch_caps(caps: &gst::CapsRef, pt: u8, profile_level_id: &str) -> gst::Caps {
    let mut caps = caps.to_owned();
    if let Some(s) = caps.make_mut().structure_mut(0) {
        s.set("payload", pt as i32);
        s.set("profile-level-id", profile_level_id);
        let profile = if profile_level_id.eq_ignore_ascii_case("42001f") {
            "baseline"
        } else {
            "constrained-baseline"
        };
        s.set("profile", profile);
    }
    caps
}

impl Device {
    fn publish(&self, sid: &str, body: Value) {
        let topic = format!("{}/out/{sid}", self.base);
        let _ = self.client.try_publish(
            topic,
            QoS::AtLeastOnce,
            false,
            body.to_string().into_bytes(),
        );
    }

    fn error(&self, sid: &str, code: &str, message: &str, re: &str) {
        self.publish(
            sid,
            json!({"v":1,"type":"error","code":code,"message":message,"re":re}),
        );
    }

    fn connected_count(&self) -> usize {
        self.sessions.values().filter(|s| s.connected).count()
    }

    fn update_status(&mut self) {
        let viewers = self.connected_count();
        if viewers == self.last_viewers {
            return;
        }
        self.last_viewers = viewers;
        let payload = status_payload(&self.args, viewers);
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = payload.clone();
        let _ = self.client.try_publish(
            format!("{}/status", self.base),
            QoS::AtLeastOnce,
            true,
            payload,
        );
        log(format!("viewers: {viewers}"));
    }

    fn remember_ended(&mut self, sid: &str) {
        if self.ended_set.insert(sid.to_owned()) {
            self.ended.push_back(sid.to_owned());
            if self.ended.len() > ENDED_MEMORY
                && let Some(old) = self.ended.pop_front()
            {
                self.ended_set.remove(&old);
            }
        }
    }

    fn on_mqtt(&mut self, topic: &str, payload: &[u8], retain: bool) {
        if retain {
            return;
        }
        let Some(sid) = topic
            .strip_prefix(&self.base)
            .and_then(|t| t.strip_prefix("/in/"))
        else {
            return;
        };
        if !valid_session_id(sid) || self.ended_set.contains(sid) {
            return;
        }
        let sid = sid.to_owned();
        let Ok(message) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        let Some(v) = message.get("v").and_then(Value::as_f64) else {
            return;
        };
        let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
        if v != 1.0 {
            self.error(&sid, "unsupported", "this device speaks protocol v1", kind);
            return;
        }
        match kind {
            "ice-servers" => {
                self.publish(&sid, json!({"v":1,"type":"ice-servers","ice_servers":[]}))
            }
            "offer" => {
                let Some(sdp) = message
                    .get("sdp")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                else {
                    self.error(
                        &sid,
                        "bad-request",
                        "an offer needs a non-empty sdp",
                        "offer",
                    );
                    return;
                };
                self.on_offer(&sid, sdp, payload);
            }
            "candidate" => self.on_remote_candidate(&sid, &message, payload),
            "bye" => {
                if self.sessions.contains_key(&sid) {
                    log(format!("{sid}: bye from the viewer"));
                    self.end(&sid, None);
                }
                self.early.remove(&sid);
            }
            "talk" => self.error(&sid, "unsupported", "this camera has no talk-back", "talk"),
            other => self.error(
                &sid,
                "unsupported",
                &format!("unknown message type {other:?}"),
                other,
            ),
        }
    }

    fn on_remote_candidate(&mut self, sid: &str, message: &Value, payload: &[u8]) {
        let Some(candidate) = message.get("candidate").and_then(Value::as_str) else {
            self.error(
                sid,
                "bad-request",
                "a candidate needs a candidate string",
                "candidate",
            );
            return;
        };
        if !candidate.is_empty() && !candidate.starts_with("candidate:") {
            self.error(
                sid,
                "bad-request",
                "a candidate starts with candidate:",
                "candidate",
            );
            return;
        }
        let Some(session) = self.sessions.get_mut(sid) else {
            let list = self.early.entry(sid.to_owned()).or_default();
            if list.len() < EARLY_CANDIDATES {
                list.push(candidate.to_owned());
            }
            return;
        };
        if session.last_candidate == payload {
            return;
        }
        session.last_candidate = payload.to_vec();
        if session.offer.is_some() {
            session.pending_remote.push(candidate.to_owned());
        } else {
            add_remote_candidate(&session.webrtc, candidate);
        }
    }

    fn on_offer(&mut self, sid: &str, sdp: &str, payload: &[u8]) {
        if let Some(session) = self.sessions.get(sid) {
            if session.last_offer != payload {
                self.error(
                    sid,
                    "unsupported",
                    "this comparator does not renegotiate a live call",
                    "offer",
                );
            }
            return;
        }
        if self.sessions.len() >= self.args.max_viewers {
            self.error(
                sid,
                "busy",
                "the camera already serves as many viewers as it allows",
                "offer",
            );
            self.remember_ended(sid);
            return;
        }
        let Ok(offer) = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()) else {
            self.error(
                sid,
                "bad-request",
                "the offer's SDP cannot be read",
                "offer",
            );
            self.remember_ended(sid);
            return;
        };
        let Some((pt, profile)) = offered_h264(&offer) else {
            self.error(
                sid,
                "unsupported",
                "no video m-line receives H.264 constrained baseline with packetization-mode 1",
                "offer",
            );
            self.remember_ended(sid);
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        match self.add_branch(id, sid, offer, pt, &profile) {
            Ok(mut session) => {
                session.last_offer = payload.to_vec();
                session.pending_remote = self.early.remove(sid).unwrap_or_default();
                log(format!(
                    "{sid}: offer taken (session {id}, H.264 {profile} as payload type {pt})"
                ));
                self.ids.insert(id, sid.to_owned());
                self.sessions.insert(sid.to_owned(), session);
            }
            Err(e) => {
                log(format!("{sid}: cannot add a webrtcbin: {e:#}"));
                self.error(sid, "internal", &format!("{e:#}"), "offer");
                self.remember_ended(sid);
            }
        }
    }

    /// Adds `queue ! webrtcbin` to the tee for a new viewer. The offer goes
    /// to webrtcbin once the branch's caps have reached it
    /// ([`Event::BranchReady`]): webrtcbin answers with what its sink pad
    /// received.
    fn add_branch(
        &mut self,
        id: u64,
        sid: &str,
        offer: gst_sdp::SDPMessage,
        pt: u8,
        profile: &str,
    ) -> anyhow::Result<Session> {
        let pipeline = &self.source.pipeline;
        let queue = gst::ElementFactory::make("queue")
            .name(format!("queue-{id}"))
            .property_from_str("leaky", "downstream")
            .build()?;
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .name(format!("webrtc-{id}"))
            .property_from_str("bundle-policy", "max-bundle")
            .build()
            .context("webrtcbin is missing (gstreamer1.0-plugins-bad, gstreamer1.0-nice)")?;
        // Host candidates on loopback only: libnice gathers on every
        // interface but loopback unless told which addresses to use.
        let ice = webrtc.property::<gst_webrtc::WebRTCICE>("ice-agent");
        if !ice.emit_by_name::<bool>("add-local-ip-address", &[&"127.0.0.1"]) {
            bail!("webrtcbin's ICE agent refused 127.0.0.1");
        }
        // UDP only, as peercam (libnice would add ICE-TCP host candidates).
        ice.set_property("ice-tcp", false);

        // Every datagram from the viewer comes out of webrtcbin's nicesrc:
        // note when, for PEER_TIMEOUT.
        let last_heard = Arc::new(AtomicU64::new(epoch().elapsed().as_millis() as u64));
        let heard = last_heard.clone();
        webrtc
            .downcast_ref::<gst::Bin>()
            .context("webrtcbin is not a bin")?
            .connect_deep_element_added(move |_, _, element| {
                let is_nicesrc = element.factory().is_some_and(|f| f.name() == "nicesrc");
                if let (true, Some(pad)) = (is_nicesrc, element.static_pad("src")) {
                    let heard = heard.clone();
                    pad.add_probe(
                        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                        move |_, _| {
                            heard.store(epoch().elapsed().as_millis() as u64, Ordering::Relaxed);
                            gst::PadProbeReturn::Ok
                        },
                    );
                }
            });

        let events = self.events.clone();
        webrtc.connect("on-ice-candidate", false, move |values| {
            let mline = values[1].get::<u32>().unwrap_or(0);
            let candidate = values[2].get::<String>().unwrap_or_default();
            let _ = events.send(Event::LocalCandidate {
                id,
                mline,
                candidate,
            });
            None
        });
        let events = self.events.clone();
        webrtc.connect_notify(Some("ice-gathering-state"), move |webrtc, _| {
            let state =
                webrtc.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
            if state == gst_webrtc::WebRTCICEGatheringState::Complete {
                let _ = events.send(Event::GatheringDone { id });
            }
        });
        let events = self.events.clone();
        webrtc.connect_notify(Some("connection-state"), move |webrtc, _| {
            let state =
                webrtc.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
            let _ = events.send(Event::ConnectionState { id, state });
        });
        // An m-line this device has no transceiver for (the viewer's
        // audio) gets a new one from webrtcbin: inactive, as this camera
        // has no audio.
        webrtc.connect("on-new-transceiver", false, |values| {
            if let Ok(trans) = values[1].get::<gst_webrtc::WebRTCRTPTransceiver>() {
                trans.set_property(
                    "direction",
                    gst_webrtc::WebRTCRTPTransceiverDirection::Inactive,
                );
            }
            None
        });

        pipeline.add_many([&queue, &webrtc])?;
        let template = webrtc
            .pad_template("sink_%u")
            .context("webrtcbin has no sink_%u template")?;
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", "H264")
            .build();
        let sink = webrtc
            .request_pad(&template, None, Some(&caps))
            .context("webrtcbin gave no sink pad")?;
        let transceiver = sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
        transceiver.set_property(
            "direction",
            gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly,
        );

        // The shared payloader numbers H.264 as SOURCE_PT; this viewer's
        // offer has its own number (and profile string). The branch
        // rewrites both: in the caps webrtcbin answers from, and in every
        // RTP header.
        let queue_src = queue.static_pad("src").context("queue has no src")?;
        let events = self.events.clone();
        let profile = profile.to_owned();
        let ready = AtomicBool::new(false);
        queue_src.add_probe(
            gst::PadProbeType::BUFFER
                | gst::PadProbeType::BUFFER_LIST
                | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, probe| {
                match probe.data.as_mut() {
                    Some(gst::PadProbeData::Buffer(buffer)) if pt != SOURCE_PT => {
                        set_payload_type(buffer.make_mut(), pt);
                    }
                    Some(gst::PadProbeData::BufferList(list)) if pt != SOURCE_PT => {
                        list.make_mut().foreach_mut(|mut buffer, _| {
                            set_payload_type(buffer.make_mut(), pt);
                            std::ops::ControlFlow::Continue(Some(buffer))
                        });
                    }
                    Some(gst::PadProbeData::Event(event)) => {
                        if let gst::EventView::Caps(c) = event.view() {
                            let caps = branch_caps(c.caps(), pt, &profile);
                            *event = gst::event::Caps::new(&caps);
                            if !ready.swap(true, Ordering::Relaxed) {
                                let _ = events.send(Event::BranchReady { id });
                            }
                        }
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
        // webrtcbin holds media back until DTLS is up; the queue would fill
        // with up to a second of stale packets meanwhile and burst them at
        // the viewer on connect. Nothing enters the branch (events aside)
        // until the call connects; then a fresh keyframe follows.
        let gate = Arc::new(AtomicBool::new(false));
        let open = gate.clone();
        queue
            .static_pad("sink")
            .context("queue has no sink")?
            .add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                move |_, probe| {
                    if open.load(Ordering::Relaxed) {
                        gst::PadProbeReturn::Ok
                    } else {
                        // Handled: gstreamer-rs drops the buffer (list).
                        probe.data.take();
                        gst::PadProbeReturn::Handled
                    }
                },
            );
        queue_src
            .link(&sink)
            .map_err(|e| anyhow!("queue ! webrtcbin: {e:?}"))?;
        webrtc.sync_state_with_parent()?;
        queue.sync_state_with_parent()?;
        let tee_src = self
            .source
            .tee
            .request_pad_simple("src_%u")
            .context("tee gave no src pad")?;
        tee_src
            .link(&queue.static_pad("sink").context("queue has no sink")?)
            .map_err(|e| anyhow!("tee ! queue: {e:?}"))?;

        Ok(Session {
            id,
            sid: sid.to_owned(),
            webrtc,
            queue,
            tee_src,
            started: Instant::now(),
            offer: Some(gst_webrtc::WebRTCSessionDescription::new(
                gst_webrtc::WebRTCSDPType::Offer,
                offer,
            )),
            pending_remote: Vec::new(),
            answered: false,
            connected: false,
            eoc_sent: false,
            pending_local: Vec::new(),
            mids: Vec::new(),
            last_offer: Vec::new(),
            last_candidate: Vec::new(),
            gate,
            last_heard,
        })
    }

    /// The branch's caps reached webrtcbin: hand it the offer, then the
    /// viewer's candidates so far; the answer comes back as [`Event::Answer`].
    fn on_branch_ready(&mut self, id: u64) {
        if debug() {
            log(format!("session {id}: branch ready"));
        }
        let events = self.events.clone();
        let Some(session) = self.session_by_id(id) else {
            return;
        };
        let Some(offer) = session.offer.take() else {
            return;
        };
        let webrtc_weak = session.webrtc.downgrade();
        let remote_set = gst::Promise::with_change_func(move |reply| {
            if let Err(why) = promise_ok(reply) {
                let _ = events.send(Event::AnswerFailed {
                    id,
                    why: format!("offer refused: {why}"),
                });
                return;
            }
            let Some(webrtc) = webrtc_weak.upgrade() else {
                return;
            };
            let events = events.clone();
            let answered = gst::Promise::with_change_func(move |reply| {
                let answer = promise_ok(reply).and_then(|s| {
                    s.and_then(|s| s.get::<gst_webrtc::WebRTCSessionDescription>("answer").ok())
                        .ok_or_else(|| "webrtcbin made no answer".to_owned())
                });
                let _ = events.send(match answer {
                    Ok(answer) => Event::Answer { id, answer },
                    Err(why) => Event::AnswerFailed { id, why },
                });
            });
            webrtc.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &answered]);
        });
        session
            .webrtc
            .emit_by_name::<()>("set-remote-description", &[&offer, &remote_set]);
        for candidate in std::mem::take(&mut session.pending_remote) {
            add_remote_candidate(&session.webrtc, &candidate);
        }
    }

    fn session_by_id(&mut self, id: u64) -> Option<&mut Session> {
        let sid = self.ids.get(&id)?;
        self.sessions.get_mut(sid).filter(|s| s.id == id)
    }

    fn on_answer(&mut self, id: u64, answer: gst_webrtc::WebRTCSessionDescription) {
        let Some(session) = self.session_by_id(id) else {
            return;
        };
        let sdp = answer.sdp();
        if debug() {
            log(sdp.as_text().unwrap_or_default());
        }
        let mids: Vec<String> = sdp
            .medias()
            .map(|m| m.attribute_val("mid").unwrap_or("0").to_owned())
            .collect();
        let sends_video = sdp.medias().any(|m| {
            m.media() == Some("video")
                && m.port() != 0
                && m.attributes().any(|a| a.key() == "sendonly")
        });
        let sid = session.sid.clone();
        if !sends_video {
            log(format!("{sid}: webrtcbin's answer sends no video"));
            self.error(
                &sid,
                "unsupported",
                "no video m-line receives H.264 constrained baseline with packetization-mode 1",
                "offer",
            );
            self.end(&sid, None);
            return;
        }
        session.mids = mids;
        session.answered = true;
        let pending = std::mem::take(&mut session.pending_local);
        let webrtc = session.webrtc.clone();
        let text = sdp.as_text().unwrap_or_default();
        self.publish(&sid, json!({"v":1,"type":"answer","sdp":text}));
        log(format!("{sid}: answer sent"));
        webrtc.emit_by_name::<()>("set-local-description", &[&answer, &None::<gst::Promise>]);
        for (mline, candidate) in pending {
            self.send_candidate(&sid, mline, &candidate);
        }
    }

    fn send_candidate(&self, sid: &str, mline: u32, candidate: &str) {
        let Some(session) = self.sessions.get(sid) else {
            return;
        };
        let mid = session
            .mids
            .get(mline as usize)
            .cloned()
            .unwrap_or_else(|| "0".into());
        self.publish(
            sid,
            json!({"v":1,"type":"candidate","candidate":candidate,"sdpMid":mid,"sdpMLineIndex":mline}),
        );
    }

    fn on_local_candidate(&mut self, id: u64, mline: u32, candidate: String) {
        let Some(session) = self.session_by_id(id) else {
            return;
        };
        // webrtcbin signals the end of gathering as an empty candidate too;
        // end-of-candidates goes out once, from the gathering state.
        if candidate.is_empty() {
            return;
        }
        if !session.answered {
            session.pending_local.push((mline, candidate));
            return;
        }
        let sid = session.sid.clone();
        self.send_candidate(&sid, mline, &candidate);
    }

    fn on_gathering_done(&mut self, id: u64) {
        let Some(session) = self.session_by_id(id) else {
            return;
        };
        if session.eoc_sent || !session.answered {
            return;
        }
        session.eoc_sent = true;
        let sid = session.sid.clone();
        let mid = session.mids.first().cloned().unwrap_or_else(|| "0".into());
        self.publish(
            &sid,
            json!({"v":1,"type":"candidate","candidate":"","sdpMid":mid,"sdpMLineIndex":0}),
        );
    }

    fn on_connection_state(&mut self, id: u64, state: gst_webrtc::WebRTCPeerConnectionState) {
        use gst_webrtc::WebRTCPeerConnectionState as S;
        let max = self.args.max_viewers;
        let connected_now = self.connected_count();
        let Some(session) = self.session_by_id(id) else {
            return;
        };
        let sid = session.sid.clone();
        log(format!("{sid}: connection {state:?}"));
        match state {
            S::Connected if !session.connected => {
                if connected_now >= max {
                    self.end(
                        &sid,
                        Some("the camera is full: it already serves as many viewers as it allows"),
                    );
                    return;
                }
                session.connected = true;
                session.gate.store(true, Ordering::Relaxed);
                if debug() {
                    let level = session.queue.property::<u64>("current-level-time");
                    let buffers = session.queue.property::<u32>("current-level-buffers");
                    log(format!(
                        "{sid}: queue holds {buffers} buffers, {} ms",
                        level / 1_000_000
                    ));
                }
                // The new viewer needs a keyframe now, not at the next
                // key-int-max boundary.
                self.source.force_keyframe();
                self.update_status();
            }
            S::Failed => self.end(&sid, Some("internal WebRTC error: the connection failed")),
            S::Closed => self.end(&sid, Some("the viewer closed the connection")),
            _ => {}
        }
    }

    /// Ends `sid`'s call: a `bye` with `reason` when the device ends it,
    /// and its branch comes off the tee.
    fn end(&mut self, sid: &str, reason: Option<&str>) {
        let Some(session) = self.sessions.remove(sid) else {
            return;
        };
        self.ids.remove(&session.id);
        self.remember_ended(sid);
        if let Some(reason) = reason {
            self.publish(sid, json!({"v":1,"type":"bye","reason":reason}));
        }
        log(format!(
            "{sid}: ended{}",
            reason.map(|r| format!(" ({r})")).unwrap_or_default()
        ));
        self.teardowns.retain(|t| !t.is_finished());
        self.teardowns.push(remove_branch(&self.source, session));
        self.update_status();
    }

    fn expire(&mut self) {
        let late: Vec<String> = self
            .sessions
            .values()
            .filter(|s| !s.connected && s.started.elapsed() > CONNECT_TIMEOUT)
            .map(|s| s.sid.clone())
            .collect();
        for sid in late {
            self.end(&sid, Some("could not connect in time (no network path?)"));
        }
        let now = epoch().elapsed().as_millis() as u64;
        let silent: Vec<String> = self
            .sessions
            .values()
            .filter(|s| {
                s.connected
                    && now.saturating_sub(s.last_heard.load(Ordering::Relaxed))
                        > PEER_TIMEOUT.as_millis() as u64
            })
            .map(|s| s.sid.clone())
            .collect();
        for sid in silent {
            self.end(&sid, Some("the viewer stopped responding"));
        }
    }
}

/// Rewrites the payload type in an RTP packet's header (marker bit kept).
fn set_payload_type(buffer: &mut gst::BufferRef, pt: u8) {
    if let Ok(mut map) = buffer.map_writable()
        && map.len() >= 12
    {
        map[1] = (map[1] & 0x80) | (pt & 0x7f);
    }
}

fn add_remote_candidate(webrtc: &gst::Element, candidate: &str) {
    // Everything is BUNDLEd on m-line 0; an empty candidate is the end of
    // the viewer's candidates.
    webrtc.emit_by_name::<()>("add-ice-candidate", &[&0u32, &candidate]);
}

fn promise_ok(
    reply: Result<Option<&gst::StructureRef>, gst::PromiseError>,
) -> Result<Option<&gst::StructureRef>, String> {
    match reply {
        Ok(Some(s)) if s.has_field("error") => Err(s
            .get::<gst::glib::Error>("error")
            .map(|e| e.to_string())
            .unwrap_or_else(|_| format!("{s}"))),
        Ok(s) => Ok(s),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// Takes a branch off the tee, on a thread of its own (stopping a
/// webrtcbin takes a while, and signaling for the others goes on).
fn remove_branch(source: &Source, session: Session) -> std::thread::JoinHandle<()> {
    let pipeline = source.pipeline.clone();
    let tee = source.tee.clone();
    std::thread::spawn(move || {
        let (done_tx, done_rx) = mpsc::channel();
        session
            .tee_src
            .add_probe(gst::PadProbeType::IDLE, move |pad, _| {
                if let Some(peer) = pad.peer() {
                    let _ = pad.unlink(&peer);
                }
                let _ = done_tx.send(());
                gst::PadProbeReturn::Remove
            });
        let _ = done_rx.recv_timeout(Duration::from_secs(2));
        tee.release_request_pad(&session.tee_src);
        let _ = session.webrtc.set_state(gst::State::Null);
        let _ = session.queue.set_state(gst::State::Null);
        let _ = pipeline.remove_many([&session.webrtc, &session.queue]);
    })
}

/// The MQTT link: rumqttc's event loop on its own thread, subscribing and
/// republishing the retained status after every (re)connect.
fn start_mqtt(
    args: &Args,
    status: Arc<Mutex<Vec<u8>>>,
    events: Sender<Event>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(AsyncClient, std::thread::JoinHandle<()>)> {
    let rest = args
        .broker
        .strip_prefix("mqtt://")
        .ok_or_else(|| anyhow!("--broker must be mqtt://HOST:PORT"))?;
    let (host, port) = match rest.trim_end_matches('/').rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse::<u16>().context("broker port")?),
        None => (rest.to_owned(), 1883),
    };
    let client_id = format!("webrtcbin-{}-{}", args.device, std::process::id());
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    options.set_max_packet_size(4 * 1024 * 1024, 1024 * 1024);
    let base = args.base();
    options.set_last_will(LastWill::new(
        format!("{base}/status"),
        offline_payload(),
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(options, 512);
    let handle_client = client.clone();
    let thread = std::thread::Builder::new()
        .name("mqtt".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let status_topic = format!("{base}/status");
                let mut was_online = false;
                while !stop.load(Ordering::Relaxed) {
                    let event =
                        match tokio::time::timeout(Duration::from_millis(200), eventloop.poll())
                            .await
                        {
                            Ok(event) => event,
                            Err(_) => continue,
                        };
                    match event {
                        Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                            was_online = true;
                            log("MQTT connected");
                            let _ = handle_client
                                .try_subscribe(format!("{base}/in/+"), QoS::AtLeastOnce);
                            let payload = status.lock().unwrap_or_else(|e| e.into_inner()).clone();
                            let _ = handle_client.try_publish(
                                status_topic.clone(),
                                QoS::AtLeastOnce,
                                true,
                                payload,
                            );
                        }
                        Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                            let _ = events.send(Event::Mqtt {
                                topic: p.topic,
                                payload: p.payload.to_vec(),
                                retain: p.retain,
                            });
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if was_online {
                                log(format!("MQTT connection lost: {e}"));
                            }
                            was_online = false;
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
                // Stopping: the offline status, then a clean disconnect
                // (bounded), after whatever the main thread queued (the byes).
                let _ = handle_client.try_publish(
                    status_topic,
                    QoS::AtLeastOnce,
                    true,
                    offline_payload(),
                );
                let _ = handle_client.try_disconnect();
                let flush = async {
                    while let Ok(event) = eventloop.poll().await {
                        if matches!(event, MqttEvent::Outgoing(rumqttc::Outgoing::Disconnect)) {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
            });
        })?;
    Ok((client, thread))
}

/// Logs the pipeline's errors and warnings (a viewer's webrtcbin failing
/// does not stop the camera).
fn watch_bus(pipeline: &gst::Pipeline, events: Sender<Event>) {
    let Some(bus) = pipeline.bus() else { return };
    std::thread::Builder::new()
        .name("bus".into())
        .spawn(move || {
            for message in bus.iter_timed(gst::ClockTime::NONE) {
                match message.view() {
                    gst::MessageView::Error(e) => {
                        let from = e
                            .src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_default();
                        log(format!(
                            "GStreamer error from {from}: {} ({:?})",
                            e.error(),
                            e.debug()
                        ));
                        // The source itself failing is fatal; a branch is not.
                        if !from.contains("webrtc-") && !from.contains("queue-") {
                            let _ = events.send(Event::Shutdown);
                        }
                    }
                    gst::MessageView::Warning(w) => {
                        let from = w
                            .src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_default();
                        log(format!("GStreamer warning from {from}: {}", w.error()));
                    }
                    _ => {}
                }
            }
        })
        .expect("bus thread");
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    gst::init()?;
    // webrtcbin's DTLS certificate (RSA) is made by the first dtls element
    // in the process and shared after; make it now rather than during the
    // first viewer's call.
    let started = Instant::now();
    drop(
        gst::ElementFactory::make("dtlsdec")
            .build()
            .context("GStreamer's dtls elements are missing (gstreamer1.0-plugins-bad)")?,
    );
    log(format!(
        "DTLS certificate ready in {} ms",
        started.elapsed().as_millis()
    ));
    let source = Source::new(&args)?;
    let (events, inbox) = mpsc::channel::<Event>();
    let shutdown = events.clone();
    ctrlc::set_handler(move || {
        let _ = shutdown.send(Event::Shutdown);
    })?;
    watch_bus(&source.pipeline, events.clone());
    source
        .pipeline
        .set_state(gst::State::Playing)
        .context("the source pipeline does not start")?;

    let status = Arc::new(Mutex::new(status_payload(&args, 0)));
    let stop = Arc::new(AtomicBool::new(false));
    let (client, mqtt_thread) = start_mqtt(&args, status.clone(), events.clone(), stop.clone())?;
    log(format!(
        "webrtcbin comparator: {}x{}@{} {} kb/s, device {} on {}",
        args.width,
        args.height,
        args.fps,
        args.bitrate_kbps,
        args.base(),
        args.broker
    ));

    let mut device = Device {
        base: args.base(),
        args,
        client,
        status,
        source,
        events,
        sessions: HashMap::new(),
        ids: HashMap::new(),
        next_id: 1,
        ended: VecDeque::new(),
        ended_set: HashSet::new(),
        early: HashMap::new(),
        last_viewers: 0,
        teardowns: Vec::new(),
    };
    loop {
        match inbox.recv_timeout(Duration::from_secs(1)) {
            Ok(Event::Mqtt {
                topic,
                payload,
                retain,
            }) => device.on_mqtt(&topic, &payload, retain),
            Ok(Event::BranchReady { id }) => device.on_branch_ready(id),
            Ok(Event::Answer { id, answer }) => device.on_answer(id, answer),
            Ok(Event::AnswerFailed { id, why }) => {
                if let Some(sid) = device.ids.get(&id).cloned() {
                    log(format!("{sid}: {why}"));
                    device.error(&sid, "bad-request", &why, "offer");
                    device.end(&sid, None);
                }
            }
            Ok(Event::LocalCandidate {
                id,
                mline,
                candidate,
            }) => device.on_local_candidate(id, mline, candidate),
            Ok(Event::GatheringDone { id }) => device.on_gathering_done(id),
            Ok(Event::ConnectionState { id, state }) => device.on_connection_state(id, state),
            Ok(Event::Shutdown) => break,
            Err(RecvTimeoutError::Timeout) => device.expire(),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }

    log("stopping");
    let sids: Vec<String> = device.sessions.keys().cloned().collect();
    for sid in sids {
        device.end(&sid, Some("the camera is shutting down"));
    }
    stop.store(true, Ordering::Relaxed);
    for teardown in device.teardowns.drain(..) {
        let _ = teardown.join();
    }
    let _ = mqtt_thread.join();
    let _ = device.source.pipeline.set_state(gst::State::Null);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn block_side() {
        assert_eq!(stamp_block(1280), 32);
        assert_eq!(stamp_block(640), 16);
        assert_eq!(stamp_block(100), 4);
    }

    /// The shape of Chromium's offer: VP8 first, H.264 baseline pm1 at
    /// 102, pm0 at 104, constrained baseline pm1 at 106.
    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 102 104 106\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
        a=rtpmap:96 VP8/90000\r\n\
        a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
        a=rtpmap:104 H264/90000\r\na=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
        a=rtpmap:106 H264/90000\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn picks_the_first_constrained_baseline_h264_with_packetization_mode_1() {
        gst::init().unwrap();
        let offer = gst_sdp::SDPMessage::parse_buffer(OFFER.as_bytes()).unwrap();
        assert_eq!(offered_h264(&offer), Some((102, "42001f".to_owned())));
        let only_cb = OFFER.replace(
            "packetization-mode=1;profile-level-id=42001f",
            "packetization-mode=0;profile-level-id=42001f",
        );
        let offer = gst_sdp::SDPMessage::parse_buffer(only_cb.as_bytes()).unwrap();
        assert_eq!(offered_h264(&offer), Some((106, "42e01f".to_owned())));
        let no_h264 = OFFER.replace("H264/90000", "VP9/90000");
        let offer = gst_sdp::SDPMessage::parse_buffer(no_h264.as_bytes()).unwrap();
        assert_eq!(offered_h264(&offer), None);
    }

    #[test]
    fn stamp_reads_back() {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 1280, 720)
            .build()
            .unwrap();
        let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
        let ms = 0xdead_beef_u32;
        {
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(
                buffer.get_mut().unwrap(),
                &info,
            )
            .unwrap();
            stamp_frame(&mut frame, ms);
        }
        let frame = gst_video::VideoFrame::from_buffer_readable(buffer, &info).unwrap();
        let b = stamp_block(1280) as usize;
        let stride = frame.plane_stride()[0] as usize;
        let y = frame.plane_data(0).unwrap();
        let at = |i: usize| y[(b / 2) * stride + i * b + b / 2];
        assert_eq!((at(0), at(1)), (235, 16));
        let read = (0..32).fold(0u32, |acc, i| (acc << 1) | u32::from(at(2 + i) == 235));
        assert_eq!(read, ms);
        let u = frame.plane_data(1).unwrap();
        assert_eq!(u[0], 128);
        assert_eq!(u[17 * b - 1], 128);
    }

    #[test]
    fn branch_caps_carry_the_viewers_numbering() {
        gst::init().unwrap();
        let caps = gst::Caps::from_str(
            "application/x-rtp,media=video,encoding-name=H264,payload=96,profile-level-id=42c01f,profile=constrained-baseline",
        )
        .unwrap();
        let mine = branch_caps(&caps, 102, "42001f");
        let s = mine.structure(0).unwrap();
        assert_eq!(s.get::<i32>("payload").unwrap(), 102);
        assert_eq!(s.get::<&str>("profile-level-id").unwrap(), "42001f");
        assert_eq!(s.get::<&str>("profile").unwrap(), "baseline");
    }

    #[test]
    fn session_ids() {
        assert!(valid_session_id("abcdefghijklmnop"));
        assert!(!valid_session_id("short"));
        assert!(!valid_session_id("abcdefghijklmno/"));
    }
}
