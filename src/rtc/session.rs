//! One viewer's WebRTC session as a sans-IO state machine around a str0m
//! `Rtc`: datagrams, frames and the time are passed in; datagrams to send,
//! events and the next deadline come out. It owns the session's own timers
//! (connect deadline, peer silence), which str0m leaves to its user.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::media::EncodedFrame;
use crate::media::audio::OpusPacket;
use crate::rtc::ice::servers::Gathering;

/// Payload types offered for H.264 (constrained baseline, packetization mode 1).
const H264_PROFILES: [(u8, u8, u32); 2] = [(108, 109, 0x42e01f), (127, 121, 0x42001f)];
/// Remote candidates kept per ICE generation: a browser trickles a dozen at
/// most; beyond this an unauthenticated sender would only grow str0m's list.
pub(crate) const MAX_REMOTE_CANDIDATES: usize = 64;
/// How often the session looks at which candidate pair carries the call.
const PATH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Longest candidate line read: real ones are under 200 bytes.
pub(crate) const MAX_CANDIDATE_LINE: usize = 1024;
/// DTLS datagrams kept while ICE has not yet confirmed where they came
/// from. A browser starts DTLS the moment its own check succeeds, which is
/// often a moment before the device's check of the same pair does; str0m
/// refuses those datagrams, and Chromium only resends its ClientHello 50 ms
/// or more later. Its first flight is two datagrams; more are dropped.
const MAX_EARLY_DTLS: usize = 4;

/// What every session of the device shares: its timers, its audio, and one
/// DTLS certificate (made once: making one per offer costs milliseconds of
/// the signaling loop, which an offer flood would turn into seconds).
#[derive(Clone)]
pub(crate) struct SessionConfig {
    /// Timers that bound each session.
    pub(crate) limits: SessionLimits,
    /// What the device can do with audio.
    pub(crate) audio: AudioCaps,
    /// STUN/TURN servers the device gathers from.
    pub(crate) gathering: Gathering,
    dtls_cert: DtlsCert,
}

impl SessionConfig {
    /// A configuration with a freshly made DTLS certificate.
    pub(crate) fn new(
        limits: SessionLimits,
        audio: AudioCaps,
        gathering: Gathering,
    ) -> anyhow::Result<Self> {
        let dtls_cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| anyhow::anyhow!("cannot make a DTLS certificate"))?;
        Ok(SessionConfig {
            limits,
            audio,
            gathering,
            dtls_cert,
        })
    }
}

/// An ICE candidate as signaling carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CandidateLine {
    /// The `candidate:…` line.
    pub(crate) line: String,
    /// The mid of the m-line it belongs to (everything is BUNDLEd on one).
    pub(crate) mid: Option<String>,
    /// ICE ufrag of the generation it belongs to.
    pub(crate) ufrag: Option<String>,
}

/// The device's answer to an offer: SDP, then the candidates to trickle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// SDP text.
    pub(crate) sdp: String,
    /// Host candidates, in the order to send them.
    pub(crate) candidates: Vec<CandidateLine>,
    /// The mid end-of-candidates names (the bundle's first m-line).
    pub(crate) mid: Option<String>,
    /// Whether these are all the candidates (end-of-candidates follows at
    /// once) or gathering goes on and trickles more.
    pub(crate) complete: bool,
    /// Whether the offer restarted ICE (a new generation of candidates).
    pub(crate) ice_restart: bool,
}

/// Why a session refused an offer or a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Unreadable SDP or candidate; the sentence says what was wrong.
    Malformed(String),
    /// Readable, but nothing this camera can serve (no H.264 video).
    Unsupported(String),
    /// More candidates in this ICE generation than [`MAX_REMOTE_CANDIDATES`].
    TooManyCandidates,
    /// The device failed on its side.
    Internal(String),
}

impl Refusal {
    /// A sentence a person can act on.
    pub(crate) fn message(&self) -> String {
        match self {
            Refusal::Malformed(m) | Refusal::Unsupported(m) | Refusal::Internal(m) => m.clone(),
            Refusal::TooManyCandidates => format!(
                "More than {MAX_REMOTE_CANDIDATES} candidates in one ICE generation; the rest are ignored."
            ),
        }
    }
}

/// Timers that bound a session's life.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimits {
    /// DTLS must connect within this long after the offer.
    pub(crate) connect_timeout: Duration,
    /// The session ends after this long without a datagram from the viewer.
    pub(crate) peer_timeout: Duration,
}

/// What the device can do with audio, which bounds every answer's audio m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AudioCaps {
    /// The device has a microphone to send.
    pub(crate) send: bool,
    /// The device plays talk-back from viewers.
    pub(crate) receive: bool,
}

/// How the answer's audio m-line was agreed: the offer's wish within the
/// device's [`AudioCaps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AudioUse {
    /// The device sends its microphone on this call.
    pub(crate) send: bool,
    /// The viewer may send talk-back on this call.
    pub(crate) receive: bool,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EndReason {
    /// Not connected within the connect timeout.
    ConnectTimeout,
    /// The viewer went silent for the peer timeout.
    PeerLost,
    /// The viewer closed the DTLS connection.
    Closed,
    /// str0m failed on this session.
    Failed(String),
    /// The session's sockets failed.
    Socket(String),
    /// The viewer said `bye`.
    ViewerBye,
    /// The device is stopping.
    Shutdown,
    /// Made room for a newer call while it had not heard from its viewer.
    Evicted,
    /// Connected while the device already had its maximum of viewers.
    Full,
    /// The viewer's key was revoked (sealed mode).
    Revoked,
}

impl EndReason {
    /// A sentence for the `bye` sent to the viewer.
    pub(crate) fn describe(&self) -> String {
        match self {
            EndReason::ConnectTimeout => "could not connect in time (no network path?)".into(),
            EndReason::PeerLost => "the viewer stopped responding".into(),
            EndReason::Closed => "the viewer closed the connection".into(),
            EndReason::Failed(e) => format!("internal WebRTC error: {e}"),
            EndReason::Socket(e) => format!("media socket error: {e}"),
            EndReason::ViewerBye => "the viewer said bye".into(),
            EndReason::Shutdown => "the camera is shutting down".into(),
            EndReason::Evicted => {
                "too many calls are starting and this one had not reached the camera yet; \
                 call again"
                    .into()
            }
            EndReason::Full => "this camera already has its maximum of viewers".into(),
            EndReason::Revoked => "this viewer's key was revoked on the camera".into(),
        }
    }

    /// Whether the device owes the viewer a `bye` for this ending.
    pub(crate) fn says_bye(&self) -> bool {
        *self != EndReason::ViewerBye
    }
}

/// The candidate pair a call goes over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path {
    /// The device's end: a media socket, or a relayed address.
    pub(crate) local: SocketAddr,
    /// The viewer's end.
    pub(crate) remote: SocketAddr,
    /// The viewer's candidate type there (`host`, `srflx`, `relay`, or
    /// `prflx` when it was learned from the checks).
    pub(crate) remote_kind: String,
}

/// What a session asks of its driver.
#[derive(Debug)]
pub(crate) enum SessionOutput {
    /// Send `contents` from local address `source` to `destination`.
    Transmit {
        /// Local socket address to send from.
        source: SocketAddr,
        /// Viewer address.
        destination: SocketAddr,
        /// Datagram bytes.
        contents: Vec<u8>,
    },
    /// DTLS and ICE are up: media flows from now on.
    Connected,
    /// The viewer asked for a keyframe (PLI/FIR).
    KeyframeRequest,
    /// The first datagram from the viewer arrived: it is really calling.
    Heard,
    /// The call now goes over this candidate pair.
    Path(Path),
    /// An Opus packet of the viewer's microphone arrived.
    TalkAudio {
        /// RTP timestamp at 48 kHz.
        rtp_48khz: u64,
        /// The Opus packet.
        data: Arc<[u8]>,
    },
    /// The call reached a step of its setup (for the time-to-first-frame
    /// breakdown in the log).
    Stage(Stage),
    /// The session is over; nothing more will come out.
    Ended(EndReason),
    /// Call back no later than this.
    Timeout(Instant),
}

/// The steps of a call's setup after its answer, in the order they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// ICE found a working candidate pair.
    IceConnected,
    /// DTLS is up: media can flow.
    DtlsConnected,
    /// The first video frame went to the viewer.
    FirstVideo,
}

impl Stage {
    /// How the log names it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Stage::IceConnected => "ICE connected",
            Stage::DtlsConnected => "DTLS connected",
            Stage::FirstVideo => "first video frame sent",
        }
    }
}

/// One viewer's call.
pub(crate) struct Session {
    rtc: Rtc,
    video: Option<(Mid, Pt)>,
    /// The audio m-line and Opus payload type, once negotiated.
    audio: Option<(Mid, Pt)>,
    audio_caps: AudioCaps,
    audio_use: AudioUse,
    last_audio_rtp: Option<u64>,
    limits: SessionLimits,
    offered_at: Instant,
    last_heard: Instant,
    connected: bool,
    ended: Option<EndReason>,
    end_reported: bool,
    local_candidates: Vec<Candidate>,
    last_frame_pts: Option<u64>,
    queued: VecDeque<SessionOutput>,
    /// ICE ufrag of the latest answer: trickled candidates carry it.
    local_ufrag: Option<String>,
    /// ICE ufrag of the latest offer: a new one starts a new generation.
    remote_ufrag: Option<String>,
    /// Remote candidates taken in the current ICE generation, with their
    /// types by address (for naming the path the call takes).
    remote_candidates: usize,
    remote_kinds: Vec<(SocketAddr, String)>,
    /// The candidate pair the call last went over.
    path: Option<Path>,
    /// Whether a datagram from the viewer has arrived.
    heard: bool,
    /// Whether ICE connected, and video went out, at least once.
    ice_connected: bool,
    video_sent: bool,
    /// DTLS datagrams (source, destination, bytes) that arrived before ICE
    /// confirmed their source: fed in once it does, or never.
    early_dtls: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
}

impl Session {
    /// Accepts the viewer's first offer and gathers host candidates on
    /// `local_addrs`. Returns the session and its answer, or why the offer
    /// was refused.
    pub(crate) fn accept(
        offer: &str,
        local_addrs: &[SocketAddr],
        config: &SessionConfig,
        now: Instant,
    ) -> Result<(Session, Answer), Refusal> {
        let remote_ufrag = offered_ufrag(offer);
        let offer = parse_offer(offer)?;
        let mids = offered_mids(&offer);
        // Opus is always enabled so an audio m-line is answered (inactive
        // when the device has no audio) rather than rejected.
        let mut builder = Rtc::builder()
            .set_stats_interval(Some(PATH_CHECK_INTERVAL))
            .set_dtls_cert(config.dtls_cert.clone())
            .clear_codecs()
            .enable_opus(true, false);
        for (pt, rtx, profile) in H264_PROFILES {
            builder
                .codec_config()
                .add_h264(pt.into(), Some(rtx.into()), true, profile);
        }
        let mut rtc = builder.build(now);
        let mut local_candidates = Vec::new();
        for addr in local_addrs {
            let candidate = Candidate::host(*addr, Protocol::Udp)
                .map_err(|e| Refusal::Internal(format!("bad local address {addr}: {e}")))?;
            if let Some(added) = rtc.add_local_candidate(candidate) {
                local_candidates.push(added.clone());
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| Refusal::Malformed(format!("The offer was refused: {e}.")))?;
        let mut session = Session {
            rtc,
            video: None,
            audio: None,
            audio_caps: config.audio,
            audio_use: AudioUse::default(),
            last_audio_rtp: None,
            limits: config.limits,
            offered_at: now,
            last_heard: now,
            connected: false,
            ended: None,
            end_reported: false,
            local_candidates,
            last_frame_pts: None,
            queued: VecDeque::new(),
            local_ufrag: None,
            remote_ufrag,
            remote_candidates: 0,
            remote_kinds: Vec::new(),
            path: None,
            heard: false,
            ice_connected: false,
            video_sent: false,
            early_dtls: Vec::new(),
        };
        session.settle(now);
        for mid in mids {
            session.consider_media(mid);
        }
        if session.video.is_none() {
            return Err(Refusal::Unsupported(
                "The offer has no video m-line that receives H.264 (constrained baseline, \
                 packetization-mode 1); that is all this camera sends."
                    .into(),
            ));
        }
        let mut answer = session.finish_answer(answer.to_sdp_string());
        answer.complete = config.gathering.servers.is_empty();
        Ok((session, answer))
    }

    /// Answers a later offer on the live session (an ICE restart).
    pub(crate) fn renegotiate(&mut self, offer: &str, now: Instant) -> Result<Answer, Refusal> {
        let ufrag = offered_ufrag(offer);
        let offer = parse_offer(offer)?;
        let mids = offered_mids(&offer);
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| Refusal::Malformed(format!("The offer was refused: {e}.")))?;
        let ice_restart = ufrag != self.remote_ufrag;
        if ice_restart {
            self.remote_ufrag = ufrag;
            self.remote_candidates = 0;
            self.remote_kinds.clear();
        }
        self.settle(now);
        for mid in mids {
            self.consider_media(mid);
        }
        let mut answer = self.finish_answer(answer.to_sdp_string());
        answer.ice_restart = ice_restart;
        Ok(answer)
    }

    /// Notes the answer's ICE ufrag, bounds its audio by the device's caps
    /// and lists the candidates to trickle after it.
    fn finish_answer(&mut self, sdp: String) -> Answer {
        self.local_ufrag = sdp
            .lines()
            .find_map(|line| line.strip_prefix("a=ice-ufrag:"))
            .map(|ufrag| ufrag.trim().to_owned());
        let (sdp, audio_use) = restrict_audio(&sdp, self.audio_caps);
        self.audio_use = audio_use;
        let candidates = self
            .local_candidates
            .iter()
            .map(|c| self.candidate_line(c))
            .collect();
        Answer {
            sdp,
            candidates,
            mid: self.bundle_mid(),
            complete: true,
            ice_restart: false,
        }
    }

    /// The mid every candidate names: everything is BUNDLEd on the video m-line.
    pub(crate) fn bundle_mid(&self) -> Option<String> {
        self.video.map(|(mid, _)| mid.to_string())
    }

    /// `candidate` as signaling trickles it, in the current ICE generation.
    fn candidate_line(&self, candidate: &Candidate) -> CandidateLine {
        CandidateLine {
            line: candidate.to_sdp_string(),
            mid: self.bundle_mid(),
            ufrag: self.local_ufrag.clone(),
        }
    }

    /// Adds a gathered candidate (server-reflexive or relayed); returns it
    /// as it is trickled, or `None` when str0m already has it.
    pub(crate) fn add_local_candidate(&mut self, candidate: Candidate) -> Option<CandidateLine> {
        let added = self.rtc.add_local_candidate(candidate)?.clone();
        let line = self.candidate_line(&added);
        self.local_candidates.push(added);
        Some(line)
    }

    /// How audio was agreed on this call.
    pub(crate) fn audio_use(&self) -> AudioUse {
        self.audio_use
    }

    /// Drains what str0m produced during a negotiation, so media changes are
    /// seen at once; anything to be sent is kept for the driver.
    fn settle(&mut self, now: Instant) {
        self.feed(Input::Timeout(now));
        loop {
            match self.next_output() {
                SessionOutput::Timeout(_) => return,
                output => self.queued.push_back(output),
            }
        }
    }

    /// Adds a trickled viewer candidate of ICE generation `ufrag` (the
    /// current one when `None`); returns its address. End-of-candidates
    /// (an empty line) and mDNS names are accepted and ignored.
    pub(crate) fn add_remote_candidate(
        &mut self,
        line: &str,
        ufrag: Option<&str>,
    ) -> Result<Option<SocketAddr>, Refusal> {
        if line.is_empty() {
            return Ok(None);
        }
        if line.len() > MAX_CANDIDATE_LINE {
            return Err(Refusal::Malformed(format!(
                "The candidate is longer than {MAX_CANDIDATE_LINE} bytes."
            )));
        }
        if self.remote_candidates >= MAX_REMOTE_CANDIDATES {
            return Err(Refusal::TooManyCandidates);
        }
        let line = line.trim_start_matches("a=");
        // Browsers hide host addresses behind mDNS names (`….local`), which
        // cannot be resolved here; their checks reach us anyway and become
        // peer-reflexive candidates, so such candidates are skipped.
        if line
            .split_whitespace()
            .nth(4)
            .is_some_and(|addr| addr.ends_with(".local"))
        {
            return Ok(None);
        }
        let mut parsed = Candidate::from_sdp_string(line)
            .map_err(|e| Refusal::Malformed(format!("Unreadable candidate: {e}.")))?;
        if let Some(ufrag) = ufrag {
            parsed.set_ufrag(ufrag);
        }
        self.remote_candidates += 1;
        let addr = parsed.addr();
        self.remote_kinds.push((addr, parsed.kind().to_string()));
        self.rtc.add_remote_candidate(parsed);
        Ok(Some(addr))
    }

    /// Feeds one datagram received on local address `destination`.
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        if !self.receive(now, source, destination, contents) {
            if is_dtls(contents) && !self.connected && self.early_dtls.len() < MAX_EARLY_DTLS {
                self.early_dtls
                    .push((source, destination, contents.to_vec()));
            }
            return;
        }
        if !self.early_dtls.is_empty() {
            let early = std::mem::take(&mut self.early_dtls);
            for (source, destination, contents) in early {
                if !self.receive(now, source, destination, &contents) && !self.connected {
                    self.early_dtls.push((source, destination, contents));
                }
            }
        }
    }

    /// Feeds one datagram if str0m takes it as this call's; returns whether it did.
    fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        let Ok(contents) = contents.try_into() else {
            return false;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        if !self.rtc.accepts(&input) {
            return false;
        }
        self.last_heard = now;
        if !self.heard {
            self.heard = true;
            self.queued.push_back(SessionOutput::Heard);
        }
        self.feed(input);
        true
    }

    /// Advances timers to `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.ended.is_some() {
            return;
        }
        if !self.connected && now >= self.offered_at + self.limits.connect_timeout {
            self.end(EndReason::ConnectTimeout);
        } else if now >= self.last_heard + self.limits.peer_timeout {
            self.end(EndReason::PeerLost);
        } else {
            self.feed(Input::Timeout(now));
        }
    }

    /// Sends one encoded frame; dropped until the session is connected.
    pub(crate) fn write_video(&mut self, frame: &EncodedFrame) {
        let Some(video) = self.video else { return };
        if !self.connected || self.ended.is_some() {
            return;
        }
        let written = write_media(
            &mut self.rtc,
            video,
            &mut self.last_frame_pts,
            MediaTime::new(frame.pts_90khz, Frequency::NINETY_KHZ),
            frame.captured,
            &frame.data,
        );
        match written {
            Ok(()) if !self.video_sent => {
                self.video_sent = true;
                self.queued
                    .push_back(SessionOutput::Stage(Stage::FirstVideo));
            }
            Ok(()) => {}
            Err(e) => self.end(EndReason::Failed(e)),
        }
    }

    /// How long after its offer `now` is: the setup's time line.
    pub(crate) fn since_offer(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.offered_at)
    }

    /// Sends one Opus frame of the microphone, if this call receives audio.
    pub(crate) fn write_audio(&mut self, packet: &OpusPacket) {
        let Some(audio) = self.audio else { return };
        if !self.audio_use.send || !self.connected || self.ended.is_some() {
            return;
        }
        let written = write_media(
            &mut self.rtc,
            audio,
            &mut self.last_audio_rtp,
            MediaTime::new(packet.rtp_48khz, Frequency::FORTY_EIGHT_KHZ),
            packet.captured,
            &packet.data,
        );
        if let Err(e) = written {
            self.end(EndReason::Failed(e));
        }
    }

    /// Ends the session on the device's initiative (bye, shutdown).
    pub(crate) fn close(&mut self) {
        let _ = self.rtc.close();
        self.rtc.disconnect();
    }

    /// The next thing the driver must do. Call until it returns `Timeout`.
    pub(crate) fn poll_output(&mut self) -> SessionOutput {
        match self.queued.pop_front() {
            Some(output) => output,
            None => self.next_output(),
        }
    }

    fn next_output(&mut self) -> SessionOutput {
        if let Some(reason) = &self.ended {
            if !self.end_reported {
                self.end_reported = true;
                return SessionOutput::Ended(reason.clone());
            }
            return SessionOutput::Timeout(self.last_heard + Duration::from_secs(3600));
        }
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    return SessionOutput::Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.to_vec(),
                    };
                }
                Ok(Output::Timeout(at)) => {
                    let own = if self.connected {
                        self.last_heard + self.limits.peer_timeout
                    } else {
                        self.offered_at + self.limits.connect_timeout
                    };
                    return SessionOutput::Timeout(at.min(own));
                }
                Ok(Output::Event(event)) => {
                    if let Some(output) = self.on_event(event) {
                        return output;
                    }
                }
                Err(e) => {
                    self.end(EndReason::Failed(e.to_string()));
                    return self.next_output();
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Option<SessionOutput> {
        match event {
            Event::Connected => {
                self.connected = true;
                Some(SessionOutput::Connected)
            }
            Event::KeyframeRequest(_) => Some(SessionOutput::KeyframeRequest),
            Event::PeerStats(stats) => {
                let pair = stats.selected_candidate_pair?;
                let remote_kind = self
                    .remote_kinds
                    .iter()
                    .find(|(addr, _)| *addr == pair.remote.addr)
                    .map_or("prflx", |(_, kind)| kind.as_str())
                    .to_owned();
                let path = Path {
                    local: pair.local.addr,
                    remote: pair.remote.addr,
                    remote_kind,
                };
                if self.path.as_ref() == Some(&path) {
                    return None;
                }
                self.path = Some(path.clone());
                Some(SessionOutput::Path(path))
            }
            Event::Closed => {
                self.end(EndReason::Closed);
                None
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if !self.ice_connected => {
                self.ice_connected = true;
                Some(SessionOutput::Stage(Stage::IceConnected))
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                tracing::debug!("ICE disconnected; waiting for the peer timeout");
                None
            }
            Event::MediaAdded(added) => {
                self.consider_media(added.mid);
                None
            }
            Event::MediaChanged(changed) => {
                self.consider_media(changed.mid);
                None
            }
            Event::MediaData(data)
                if self.audio_use.receive && self.audio.is_some_and(|(mid, _)| mid == data.mid) =>
            {
                Some(SessionOutput::TalkAudio {
                    rtp_48khz: data.time.rebase(Frequency::FORTY_EIGHT_KHZ).numer(),
                    data: data.data,
                })
            }
            _ => None,
        }
    }

    /// Takes `mid` as the video m-line if it sends H.264, or as the audio
    /// m-line if it agreed on Opus.
    fn consider_media(&mut self, mid: Mid) {
        let Some(media) = self.rtc.media(mid) else {
            return;
        };
        if media.kind() == MediaKind::Audio {
            if self.audio.is_none() {
                self.audio = self.payload_type(mid, Codec::Opus).map(|pt| (mid, pt));
            }
            return;
        }
        if media.kind() != MediaKind::Video || !media.direction().is_sending() {
            if self.video.is_some_and(|(m, _)| m == mid) {
                self.video = None;
            }
            return;
        }
        if let Some(pt) = self.payload_type(mid, Codec::H264) {
            self.video = Some((mid, pt));
        }
    }

    /// The payload type agreed for `codec` on `mid`.
    fn payload_type(&mut self, mid: Mid, codec: Codec) -> Option<Pt> {
        self.rtc.writer(mid).and_then(|writer| {
            writer
                .payload_params()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt())
        })
    }

    fn feed(&mut self, input: Input) {
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!("session input refused: {e}");
        }
    }

    fn end(&mut self, reason: EndReason) {
        if self.ended.is_none() {
            self.ended = Some(reason);
        }
    }
}

/// Whether `datagram` is DTLS, by its first byte (RFC 7983: 20 to 63).
fn is_dtls(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| (20..=63).contains(b))
}

/// Writes `data` on the m-line `(mid, pt)` at RTP time `time`, unless that
/// would not move the line's timeline (`last`, in ticks) forward: a
/// restarted source or a duplicate must never make RTP time run backwards.
fn write_media(
    rtc: &mut Rtc,
    (mid, pt): (Mid, Pt),
    last: &mut Option<u64>,
    time: MediaTime,
    captured: Instant,
    data: &Arc<[u8]>,
) -> Result<(), String> {
    if last.is_some_and(|last| time.numer() <= last) {
        return Ok(());
    }
    *last = Some(time.numer());
    let Some(writer) = rtc.writer(mid) else {
        return Ok(());
    };
    writer
        .write(pt, captured, time, Arc::clone(data))
        .map_err(|e| e.to_string())
}

/// Bounds the direction of the answer's audio m-lines by `caps`: str0m
/// answers with the mirror of the offer, which may promise more than the
/// device has. The first audio m-line is the one used; any further one is
/// made inactive. Returns the rewritten SDP and how audio was agreed.
fn restrict_audio(sdp: &str, caps: AudioCaps) -> (String, AudioUse) {
    let mut audio_lines = 0;
    let mut in_audio = false;
    let mut agreed = AudioUse::default();
    let rewritten = sdp
        .split_inclusive("\r\n")
        .map(|line| {
            if line.starts_with("m=") {
                in_audio = line.starts_with("m=audio");
                audio_lines += usize::from(in_audio);
            }
            let direction = line.trim_end();
            if !in_audio
                || !["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"].contains(&direction)
            {
                return line.to_owned();
            }
            let first = audio_lines == 1;
            let send = first && caps.send && matches!(direction, "a=sendrecv" | "a=sendonly");
            let receive = first && caps.receive && matches!(direction, "a=sendrecv" | "a=recvonly");
            if first {
                agreed = AudioUse { send, receive };
            }
            let bounded = match (send, receive) {
                (true, true) => "a=sendrecv",
                (true, false) => "a=sendonly",
                (false, true) => "a=recvonly",
                (false, false) => "a=inactive",
            };
            format!("{bounded}\r\n")
        })
        .collect();
    (rewritten, agreed)
}

/// The mids of an offer's m-lines. str0m announces media only once
/// connected, but the video m-line must be known when answering.
fn offered_mids(offer: &SdpOffer) -> Vec<Mid> {
    offer.media_lines.iter().map(|line| line.mid()).collect()
}

/// The offer's ICE ufrag (session or first media level): which ICE
/// generation its candidates belong to.
fn offered_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|line| line.strip_prefix("a=ice-ufrag:"))
        .map(|ufrag| ufrag.trim().to_owned())
}

fn parse_offer(sdp: &str) -> Result<SdpOffer, Refusal> {
    SdpOffer::from_sdp_string(sdp).map_err(|e| {
        Refusal::Malformed(format!(
            "The offer is not valid SDP: {}.",
            readable_parse_error(&e.to_string())
        ))
    })
}

/// The SDP parser's error without its memory addresses, on one line.
fn readable_parse_error(error: &str) -> String {
    error
        .lines()
        .map(|line| match line.find("Parse error at") {
            Some(at) => line[..at].trim_end(),
            None => line.trim(),
        })
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::media::Direction;

    #[test]
    fn sdp_errors_are_readable() {
        let Refusal::Malformed(message) = parse_offer("this is not SDP").unwrap_err() else {
            panic!("not SDP is malformed");
        };
        assert!(!message.contains("PointerOffset"), "{message}");
        assert!(!message.contains('\n'), "{message}");
        assert!(message.starts_with("The offer is not valid SDP: "));
    }

    const LIMITS: SessionLimits = SessionLimits {
        connect_timeout: Duration::from_secs(30),
        peer_timeout: Duration::from_secs(30),
    };

    /// Gathering from no server.
    pub(super) fn no_gathering() -> Gathering {
        Gathering {
            servers: Vec::new().into(),
            tls: crate::rtc::ice::servers::tls_config(None).unwrap(),
        }
    }

    /// The session configuration, its certificate made once per test binary.
    fn test_config() -> SessionConfig {
        static CONFIG: std::sync::OnceLock<SessionConfig> = std::sync::OnceLock::new();
        CONFIG
            .get_or_init(|| {
                SessionConfig::new(LIMITS, AudioCaps::default(), no_gathering()).unwrap()
            })
            .clone()
    }

    /// The session configuration with `audio`.
    fn config(audio: AudioCaps) -> SessionConfig {
        SessionConfig {
            audio,
            ..test_config()
        }
    }

    fn offer(kinds: &[MediaKind]) -> String {
        offer_with(
            &kinds
                .iter()
                .map(|k| (*k, Direction::RecvOnly))
                .collect::<Vec<_>>(),
        )
    }

    fn offer_with(media: &[(MediaKind, Direction)]) -> String {
        let mut viewer = Rtc::builder().build(Instant::now());
        let mut change = viewer.sdp_api();
        for (kind, direction) in media {
            change.add_media(*kind, *direction, None, None, None);
        }
        change.apply().unwrap().0.to_sdp_string()
    }

    fn audio_direction(answer: &str) -> &str {
        let audio = &answer[answer.find("m=audio").unwrap()..];
        audio
            .lines()
            .find(|l| ["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"].contains(l))
            .unwrap()
    }

    #[test]
    fn the_audio_answer_is_bounded_by_what_the_device_has() {
        let both = AudioCaps {
            send: true,
            receive: true,
        };
        let mic_only = AudioCaps {
            send: true,
            receive: false,
        };
        let cases = [
            (Direction::SendRecv, both, "a=sendrecv", (true, true)),
            (Direction::RecvOnly, both, "a=sendonly", (true, false)),
            (Direction::SendOnly, both, "a=recvonly", (false, true)),
            (Direction::SendRecv, mic_only, "a=sendonly", (true, false)),
            (Direction::SendOnly, mic_only, "a=inactive", (false, false)),
            (
                Direction::SendRecv,
                AudioCaps::default(),
                "a=inactive",
                (false, false),
            ),
        ];
        for (viewer, caps, expected, (send, receive)) in cases {
            let sdp = offer_with(&[
                (MediaKind::Video, Direction::RecvOnly),
                (MediaKind::Audio, viewer),
            ]);
            let (session, answer) =
                Session::accept(&sdp, &local(), &config(caps), Instant::now()).unwrap();
            assert_eq!(
                audio_direction(&answer.sdp),
                expected,
                "{viewer:?} with {caps:?}"
            );
            assert_eq!(session.audio_use(), AudioUse { send, receive });
        }
    }

    fn local() -> Vec<SocketAddr> {
        vec!["127.0.0.1:40000".parse().unwrap()]
    }

    #[test]
    fn answers_h264_only_and_offers_host_candidates() {
        let (
            _,
            Answer {
                sdp: answer,
                candidates,
                mid,
                complete,
                ..
            },
        ) = Session::accept(
            &offer(&[MediaKind::Video, MediaKind::Audio]),
            &local(),
            &config(AudioCaps::default()),
            Instant::now(),
        )
        .unwrap();
        assert!(answer.contains("H264/90000"));
        assert!(!answer.contains("VP8") && !answer.contains("VP9"));
        let audio = &answer[answer.find("m=audio").expect("audio m-line answered")..];
        let video = &answer[answer.find("m=video").unwrap()..answer.find("m=audio").unwrap()];
        assert!(video.contains("a=sendonly\r\n"));
        assert!(audio.starts_with("m=audio 9 "), "not rejected: {audio}");
        assert!(audio.contains("a=inactive\r\n") && !audio.contains("a=sendonly"));
        assert_eq!(candidates.len(), 1);
        assert!(candidates[0].line.starts_with("candidate:"));
        assert!(candidates[0].line.contains("127.0.0.1 40000 typ host"));
        let ufrag = answer
            .lines()
            .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
            .unwrap();
        assert_eq!(candidates[0].ufrag.as_deref(), Some(ufrag));
        assert_eq!(candidates[0].mid, mid);
        assert!(mid.is_some());
        assert!(
            complete,
            "no servers to gather from: all candidates are in the answer"
        );
    }

    #[test]
    fn takes_trickled_candidates_and_skips_mdns_ones() {
        let (mut session, _) = Session::accept(
            &offer(&[MediaKind::Video]),
            &local(),
            &config(AudioCaps::default()),
            Instant::now(),
        )
        .unwrap();
        let host = "candidate:1 1 udp 2122260223 192.0.2.9 50000 typ host generation 0";
        session.add_remote_candidate(host, None).unwrap();
        let mdns = "candidate:2 1 udp 2122260223 4f8c1b2e-58a8-4b1a-9d0e-1c3a2b4c5d6e.local 50001 typ host";
        session.add_remote_candidate(mdns, None).unwrap();
        session.add_remote_candidate("", None).unwrap();
        assert!(matches!(
            session.add_remote_candidate("candidate:x", None),
            Err(Refusal::Malformed(_))
        ));
        let long = format!("{host} {}", "x".repeat(MAX_CANDIDATE_LINE));
        assert!(matches!(
            session.add_remote_candidate(&long, None),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn remote_candidates_are_capped_per_ice_generation() {
        let now = Instant::now();
        let mut viewer = Rtc::builder().build(now);
        let mut change = viewer.sdp_api();
        change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (first, pending) = change.apply().unwrap();
        let (mut session, answer) = Session::accept(
            &first.to_sdp_string(),
            &local(),
            &config(AudioCaps::default()),
            now,
        )
        .unwrap();
        let candidate = |n: usize| {
            format!(
                "candidate:{n} 1 udp 2122260223 10.{}.{}.1 5000 typ host",
                n / 250,
                n % 250
            )
        };
        for n in 0..MAX_REMOTE_CANDIDATES {
            session.add_remote_candidate(&candidate(n), None).unwrap();
        }
        assert_eq!(
            session.add_remote_candidate(&candidate(MAX_REMOTE_CANDIDATES), None),
            Err(Refusal::TooManyCandidates)
        );
        viewer
            .sdp_api()
            .accept_answer(
                pending,
                str0m::change::SdpAnswer::from_sdp_string(&answer.sdp).unwrap(),
            )
            .unwrap();
        let mut restart = viewer.sdp_api();
        restart.ice_restart(true);
        let (restarted, _) = restart.apply().unwrap();
        session
            .renegotiate(&restarted.to_sdp_string(), now)
            .unwrap();
        session
            .add_remote_candidate(&candidate(0), None)
            .expect("a new ICE generation starts a new count");
    }

    #[test]
    fn refuses_offers_it_cannot_serve() {
        let now = Instant::now();
        let refused = |sdp: &str| {
            Session::accept(sdp, &local(), &config(AudioCaps::default()), now)
                .err()
                .unwrap()
        };
        assert!(matches!(refused("garbage"), Refusal::Malformed(_)));
        assert!(matches!(
            refused(&offer(&[MediaKind::Audio])),
            Refusal::Unsupported(_)
        ));
        let mut vp8_viewer = Rtc::builder().clear_codecs().enable_vp8(true).build(now);
        let mut change = vp8_viewer.sdp_api();
        change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let vp8_only = change.apply().unwrap().0.to_sdp_string();
        assert!(matches!(refused(&vp8_only), Refusal::Unsupported(_)));
    }

    #[test]
    fn ends_when_not_connected_in_time() {
        let now = Instant::now();
        let (mut session, _) = Session::accept(
            &offer(&[MediaKind::Video]),
            &local(),
            &config(AudioCaps::default()),
            now,
        )
        .unwrap();
        let deadline = loop {
            if let SessionOutput::Timeout(at) = session.poll_output() {
                break at;
            }
        };
        assert!(deadline <= now + LIMITS.connect_timeout);
        session.handle_timeout(now + LIMITS.connect_timeout);
        let ended = std::iter::from_fn(|| match session.poll_output() {
            SessionOutput::Timeout(_) => None,
            other => Some(other),
        })
        .any(|o| matches!(o, SessionOutput::Ended(EndReason::ConnectTimeout)));
        assert!(ended);
    }

    mod in_memory;
}
