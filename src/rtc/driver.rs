//! Drives one [`Session`] on the smol executor: its UDP sockets, its video
//! and audio subscriptions, talk-back to the speaker while it holds the
//! floor, control messages from the session manager, and its timers. It
//! reports what happened as [`SessionEvent`]s; turning them into messages
//! for the viewer is the signaling layer's business.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use async_channel::TryRecvError;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use smol::Async;

use crate::media::EncodedFrame;
use crate::media::audio::playback::Talkback;
use crate::media::audio::{OpusPacket, TalkPacket};
use crate::media::fanout::{Fanout, Subscription};
use crate::rtc::ice::gather::{
    CLOSE_FLUSH, FromServer, GATHER_TIMEOUT, GatherEvent, Gatherer, StreamId, ToServer,
};
use crate::rtc::ice::servers::{self, Gathering, ResolvedServer};
use crate::rtc::join::JoinBuffer;
use crate::rtc::session::{
    Answer, CandidateLine, EndReason, Refusal, Session, SessionOutput, Stage,
};

/// Frames queued per viewer before it skips to the next keyframe
/// (about a second at 30 fps: absorbs a hiccup, never builds latency).
pub(crate) const VIDEO_QUEUE_FRAMES: usize = 30;
/// Audio packets queued per viewer (200 ms): audio is never worth waiting for.
pub(crate) const AUDIO_QUEUE_PACKETS: usize = 10;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 2048;
/// Datagrams read but not yet handled; while it is full the socket readers
/// wait and the kernel's buffer drops the excess.
const DATAGRAM_QUEUE: usize = 256;
/// Datagrams handled per wake-up: a UDP flood then cannot delay control
/// messages, timers or media by more than this much work.
const DATAGRAMS_PER_WAKE: usize = 64;
/// Control messages handled per wake-up, for the same reason.
const CONTROLS_PER_WAKE: usize = 16;
/// Control messages queued for one session; the manager drops (and counts)
/// what does not fit.
pub(crate) const CONTROL_QUEUE: usize = 64;

/// What the session manager tells a running session.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Control {
    /// A later offer: renegotiate (ICE restart).
    Offer(String),
    /// A trickled viewer candidate line (empty: end-of-candidates) of ICE
    /// generation `ufrag`.
    Candidate {
        /// The `candidate:…` line.
        line: String,
        /// Its `usernameFragment`, if given.
        ufrag: Option<String>,
    },
    /// The viewer gained (`true`) or lost the talk-back floor.
    Floor(bool),
    /// End the session for this reason.
    End(EndReason),
}

/// What happened in a session, for the session manager.
#[derive(Debug)]
pub(crate) enum SessionEvent {
    /// A later offer was answered.
    Answered(Answer),
    /// A later offer was refused; the session goes on.
    OfferRefused(Refusal),
    /// A trickled candidate was refused; the session goes on.
    CandidateRefused(Refusal),
    /// A gathered candidate (server-reflexive or relayed) to trickle.
    LocalCandidate(CandidateLine),
    /// Gathering has finished: end-of-candidates, naming this mid.
    EndOfCandidates(Option<String>),
    /// The first datagram from the viewer arrived.
    Heard,
    /// Media is flowing.
    Connected,
    /// The session is gone, for the reason given. Always the last event.
    Ended(EndReason),
}

/// One [`SessionEvent`] of session `session`.
#[derive(Debug)]
pub(crate) struct SessionReport {
    /// Session id.
    pub(crate) session: Arc<str>,
    /// What happened.
    pub(crate) event: SessionEvent,
}

/// The media every session draws from and feeds.
#[derive(Clone)]
pub(crate) struct SessionMedia {
    /// The camera.
    pub(crate) video: Arc<Fanout<EncodedFrame>>,
    /// The microphone.
    pub(crate) audio: Arc<Fanout<OpusPacket>>,
    /// The speaker, when the device plays talk-back.
    pub(crate) talkback: Option<Talkback>,
}

/// Starts the task running session `id`, gathering per `gathering`; its
/// last report is always `Ended`.
pub(crate) fn spawn(
    id: Arc<str>,
    session: Session,
    sockets: Vec<UdpSocket>,
    gathering: Gathering,
    media: SessionMedia,
    control: async_channel::Receiver<Control>,
    reports: async_channel::Sender<SessionReport>,
) -> smol::Task<()> {
    smol::spawn(async move {
        let reason = match Driver::new(Arc::clone(&id), session, sockets, media, reports.clone()) {
            Ok(mut driver) => driver.run(&control, gathering).await,
            Err(e) => EndReason::Socket(e.to_string()),
        };
        let _ = reports
            .send(SessionReport {
                session: id,
                event: SessionEvent::Ended(reason),
            })
            .await;
    })
}

/// One datagram as read from a socket.
struct Datagram {
    at: Instant,
    source: SocketAddr,
    destination: SocketAddr,
    contents: Vec<u8>,
}

/// What happened on a TCP connection to a TURN server.
enum StreamEvent {
    Connected(StreamId, smol::net::TcpStream),
    Failed(StreamId),
    Data(StreamId, Vec<u8>),
}

/// One input that woke the session.
enum Wake {
    Timer,
    Datagram(Datagram),
    Frame(EncodedFrame),
    Audio(OpusPacket),
    Control(Control),
    /// The STUN/TURN servers resolved: gathering can start.
    Resolved(Vec<ResolvedServer>),
    /// A TCP connection to a TURN server moved.
    Stream(StreamEvent),
    /// The manager is gone: the device is stopping.
    ManagerGone,
}

struct Driver {
    id: Arc<str>,
    session: Session,
    sockets: Vec<Arc<Async<UdpSocket>>>,
    media: SessionMedia,
    /// Subscribed from the start: the encoder makes a keyframe while the
    /// call connects, and `join` keeps it until then.
    video: Option<Subscription<EncodedFrame>>,
    /// The frames from the latest keyframe on, until the call connects.
    join: Option<JoinBuffer>,
    /// Subscribed once connected, if the call receives the microphone.
    audio: Option<Subscription<OpusPacket>>,
    /// Whether this viewer holds the talk-back floor.
    holds_floor: bool,
    reports: async_channel::Sender<SessionReport>,
    /// The inputs of one sweep, kept so the media path allocates nothing.
    ready: Vec<Wake>,
    /// The STUN/TURN servers, once resolved, and the gathering from them.
    servers: Vec<ResolvedServer>,
    gatherer: Option<Gatherer>,
    /// The number the next gatherer's first TCP connection gets.
    next_stream: StreamId,
    /// Trust anchors for TURN over TLS.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether end-of-candidates went out (or nothing is gathered at all).
    gathering_done: bool,
    /// TCP connections to TURN servers, and where their tasks report.
    streams: HashMap<StreamId, smol::net::TcpStream>,
    stream_events: (
        async_channel::Sender<StreamEvent>,
        async_channel::Receiver<StreamEvent>,
    ),
}

impl Driver {
    fn new(
        id: Arc<str>,
        session: Session,
        sockets: Vec<UdpSocket>,
        media: SessionMedia,
        reports: async_channel::Sender<SessionReport>,
    ) -> std::io::Result<Self> {
        let sockets = sockets
            .into_iter()
            .map(|s| Async::new(s).map(Arc::new))
            .collect::<std::io::Result<_>>()?;
        Ok(Driver {
            id,
            session,
            sockets,
            media,
            video: None,
            join: Some(JoinBuffer::default()),
            audio: None,
            holds_floor: false,
            reports,
            ready: Vec::new(),
            servers: Vec::new(),
            gatherer: None,
            next_stream: 0,
            tls: None,
            gathering_done: true,
            streams: HashMap::new(),
            stream_events: async_channel::bounded(DATAGRAM_QUEUE),
        })
    }

    /// Runs until the session ends; returns why.
    async fn run(
        &mut self,
        control: &async_channel::Receiver<Control>,
        gathering: Gathering,
    ) -> EndReason {
        let ice_servers = Arc::clone(&gathering.servers);
        self.tls = Some(gathering.tls);
        self.video = Some(self.media.video.subscribe(VIDEO_QUEUE_FRAMES));
        #[cfg(feature = "test-hooks")]
        crate::test_hooks::session_started();
        let (datagrams_tx, datagrams) = async_channel::bounded::<Datagram>(DATAGRAM_QUEUE);
        let _readers: Vec<smol::Task<()>> = self
            .sockets
            .iter()
            .map(|socket| smol::spawn(read_socket(Arc::clone(socket), datagrams_tx.clone())))
            .collect();
        // Names resolve off the session's loop: the call never waits on DNS.
        let (resolved_tx, resolved) = async_channel::bounded(1);
        self.gathering_done = ice_servers.is_empty();
        let _resolver = (!ice_servers.is_empty()).then(|| {
            smol::spawn(async move {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let resolved = servers::resolve(&ice_servers, now).await;
                let _ = resolved_tx.send(resolved).await;
            })
        });
        let reason = loop {
            let deadline = match self.drain().await {
                Ok(deadline) => deadline,
                Err(reason) => break reason,
            };
            match self.sweep(control, &datagrams, &resolved, deadline).await {
                Err(reason) => break reason,
                Ok(true) => continue,
                Ok(false) => {}
            }
            let wake = self.wait(control, &datagrams, &resolved, deadline).await;
            if let Some(reason) = self.handle(wake).await {
                break reason;
            }
        };
        self.release_relays().await;
        reason
    }

    /// A TCP connection to a TURN server connected, failed or brought bytes.
    fn on_stream(&mut self, event: StreamEvent) {
        let now = Instant::now();
        let Some(gatherer) = &mut self.gatherer else {
            return;
        };
        match event {
            StreamEvent::Connected(stream, tcp) => match tcp.local_addr() {
                Ok(local) => {
                    smol::spawn(read_stream(
                        stream,
                        tcp.clone(),
                        self.stream_events.0.clone(),
                    ))
                    .detach();
                    self.streams.insert(stream, tcp);
                    gatherer.stream_connected(stream, local, now);
                }
                Err(_) => gatherer.stream_failed(stream, now),
            },
            StreamEvent::Failed(stream) => {
                self.streams.remove(&stream);
                gatherer.stream_failed(stream, now);
            }
            StreamEvent::Data(stream, data) => {
                for packet in gatherer.stream_data(stream, &data, now) {
                    if let FromServer::Relayed {
                        relayed,
                        peer,
                        data,
                    } = packet
                    {
                        self.session.handle_datagram(now, peer, relayed, &data);
                    }
                }
            }
        }
    }

    /// Starts gathering from the resolved servers on every media socket.
    fn gather(&mut self) {
        let locals: Vec<SocketAddr> = self
            .sockets
            .iter()
            .filter_map(|s| s.get_ref().local_addr().ok())
            .collect();
        for (_, tcp) in self.streams.drain() {
            let _ = tcp.shutdown(std::net::Shutdown::Both);
        }
        self.gathering_done = false;
        let first_stream = self.next_stream;
        self.next_stream += self.servers.len();
        let Some(tls) = &self.tls else {
            return;
        };
        self.gatherer = Some(Gatherer::new(
            &locals,
            &self.servers,
            tls,
            first_stream,
            Instant::now(),
        ));
    }

    /// Releases the session's TURN allocations, within [`CLOSE_FLUSH`].
    async fn release_relays(&mut self) {
        let closed = Instant::now();
        let Some(gatherer) = &mut self.gatherer else {
            return;
        };
        gatherer.close(closed);
        loop {
            self.send_to_servers().await;
            let now = Instant::now();
            let Some(gatherer) = self
                .gatherer
                .as_mut()
                .filter(|_| now < closed + CLOSE_FLUSH)
            else {
                return;
            };
            let next = gatherer
                .deadline(now)
                .map_or(closed + CLOSE_FLUSH, |d| d.min(closed + CLOSE_FLUSH));
            smol::Timer::at(next).await;
            if let Some(gatherer) = &mut self.gatherer {
                gatherer.handle_timeout(Instant::now());
            }
        }
    }

    /// Sends what the gatherer has for its servers, and acts on its events.
    async fn send_to_servers(&mut self) {
        let Some(gatherer) = &mut self.gatherer else {
            return;
        };
        let outgoing: Vec<_> = std::iter::from_fn(|| gatherer.poll_transmit()).collect();
        let events: Vec<GatherEvent> = std::iter::from_fn(|| gatherer.poll_event()).collect();
        for message in outgoing {
            match message {
                ToServer::Datagram { from, to, data } => {
                    if let Some(socket) = self.socket_for(from) {
                        let _ = socket.send_to(&data, to).await;
                    }
                }
                ToServer::Connect { stream, server } => {
                    smol::spawn(connect_stream(stream, server, self.stream_events.0.clone()))
                        .detach();
                }
                ToServer::Stream { stream, data } => {
                    if let Some(tcp) = self.streams.get_mut(&stream)
                        && tcp.write_all(&data).await.is_err()
                    {
                        self.streams.remove(&stream);
                        if let Some(gatherer) = &mut self.gatherer {
                            gatherer.stream_failed(stream, Instant::now());
                        }
                    }
                }
            }
        }
        for event in events {
            match event {
                GatherEvent::Candidate(candidate) => {
                    tracing::debug!("session {}: gathered {candidate:?}", self.id);
                    if let Some(line) = self.session.add_local_candidate(candidate) {
                        self.report(SessionEvent::LocalCandidate(line)).await;
                    }
                }
                GatherEvent::Done => {
                    self.gathering_done = true;
                    let mid = self.session.bundle_mid();
                    self.report(SessionEvent::EndOfCandidates(mid)).await;
                }
            }
        }
    }

    /// The media socket bound to `local`, or the first one.
    fn socket_for(&self, local: SocketAddr) -> Option<Arc<Async<UdpSocket>>> {
        self.sockets
            .iter()
            .find(|s| s.get_ref().local_addr().ok() == Some(local))
            .or(self.sockets.first())
            .cloned()
    }

    /// Handles what every input has ready now, a bounded share of each, so
    /// none starves the others. Returns whether there was anything.
    async fn sweep(
        &mut self,
        control: &async_channel::Receiver<Control>,
        datagrams: &async_channel::Receiver<Datagram>,
        resolved: &async_channel::Receiver<Vec<ResolvedServer>>,
        deadline: Instant,
    ) -> Result<bool, EndReason> {
        let mut ready = std::mem::take(&mut self.ready);
        if let Ok(servers) = resolved.try_recv() {
            ready.push(Wake::Resolved(servers));
        }
        ready.extend(
            std::iter::from_fn(|| self.stream_events.1.try_recv().ok())
                .take(DATAGRAMS_PER_WAKE)
                .map(Wake::Stream),
        );
        for _ in 0..CONTROLS_PER_WAKE {
            match control.try_recv() {
                Ok(message) => ready.push(Wake::Control(message)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => {
                    ready.push(Wake::ManagerGone);
                    break;
                }
            }
        }
        if Instant::now() >= deadline {
            ready.push(Wake::Timer);
        }
        ready.extend(
            std::iter::from_fn(|| datagrams.try_recv().ok())
                .take(DATAGRAMS_PER_WAKE)
                .map(Wake::Datagram),
        );
        if let Some(video) = &self.video {
            ready.extend(
                std::iter::from_fn(|| video.try_recv())
                    .take(VIDEO_QUEUE_FRAMES)
                    .map(Wake::Frame),
            );
        }
        if let Some(audio) = &self.audio {
            ready.extend(
                std::iter::from_fn(|| audio.try_recv())
                    .take(AUDIO_QUEUE_PACKETS)
                    .map(Wake::Audio),
            );
        }
        let any = !ready.is_empty();
        for wake in ready.drain(..) {
            if let Some(reason) = self.handle(wake).await {
                return Err(reason);
            }
        }
        self.ready = ready;
        Ok(any)
    }

    /// Waits for the first input to be ready, or the deadline.
    async fn wait(
        &self,
        control: &async_channel::Receiver<Control>,
        datagrams: &async_channel::Receiver<Datagram>,
        resolved: &async_channel::Receiver<Vec<ResolvedServer>>,
        deadline: Instant,
    ) -> Wake {
        async {
            smol::Timer::at(deadline).await;
            Wake::Timer
        }
        .or(async {
            match resolved.recv().await {
                Ok(servers) => Wake::Resolved(servers),
                Err(_) => std::future::pending().await,
            }
        })
        .or(async {
            match self.stream_events.1.recv().await {
                Ok(event) => Wake::Stream(event),
                Err(_) => std::future::pending().await,
            }
        })
        .or(async {
            control
                .recv()
                .await
                .map_or(Wake::ManagerGone, Wake::Control)
        })
        .or(async {
            match datagrams.recv().await {
                Ok(datagram) => Wake::Datagram(datagram),
                Err(_) => std::future::pending().await,
            }
        })
        .or(async {
            match &self.video {
                Some(video) => match video.recv().await {
                    Some(frame) => Wake::Frame(frame),
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        })
        .or(async {
            match &self.audio {
                Some(audio) => match audio.recv().await {
                    Some(packet) => Wake::Audio(packet),
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        })
        .await
    }

    /// Acts on one input; returns the reason when it ends the session.
    async fn handle(&mut self, wake: Wake) -> Option<EndReason> {
        match wake {
            Wake::Timer => {
                let now = Instant::now();
                self.session.handle_timeout(now);
                if let Some(gatherer) = &mut self.gatherer {
                    gatherer.handle_timeout(now);
                }
            }
            Wake::Datagram(d) => {
                let from_server = match &mut self.gatherer {
                    Some(gatherer) => {
                        gatherer.handle_datagram(d.destination, d.source, &d.contents, d.at)
                    }
                    None => FromServer::NotMine,
                };
                match from_server {
                    FromServer::NotMine => {
                        self.session
                            .handle_datagram(d.at, d.source, d.destination, &d.contents)
                    }
                    FromServer::Handled => {}
                    FromServer::Relayed {
                        relayed,
                        peer,
                        data,
                    } => self.session.handle_datagram(d.at, peer, relayed, &data),
                }
            }
            Wake::Stream(event) => self.on_stream(event),
            Wake::Resolved(servers) => {
                self.servers = servers;
                self.gather();
            }
            Wake::Frame(frame) => match &mut self.join {
                Some(join) => join.push(frame),
                None => self.session.write_video(&frame),
            },
            Wake::Audio(packet) => self.session.write_audio(&packet),
            Wake::Control(Control::Floor(holds)) => self.holds_floor = holds,
            Wake::Control(Control::End(reason)) => {
                self.session.close();
                return Some(reason);
            }
            Wake::ManagerGone => {
                self.session.close();
                return Some(EndReason::Shutdown);
            }
            Wake::Control(Control::Candidate { line, ufrag }) => {
                match self.session.add_remote_candidate(&line, ufrag.as_deref()) {
                    Ok(Some(addr)) => {
                        if let Some(gatherer) = &mut self.gatherer {
                            gatherer.remote_candidate(addr, Instant::now());
                        }
                    }
                    Ok(None) => {}
                    Err(refusal) => self.report(SessionEvent::CandidateRefused(refusal)).await,
                }
            }
            Wake::Control(Control::Offer(sdp)) => {
                match self.session.renegotiate(&sdp, Instant::now()) {
                    Ok(mut answer) => {
                        // A new ICE generation gathers anew: the relay of
                        // the old one may be what failed (a TURN server gone).
                        if answer.ice_restart && self.gatherer.is_some() {
                            if let Some(old) = &mut self.gatherer {
                                old.close(Instant::now());
                            }
                            self.send_to_servers().await;
                            self.gather();
                        }
                        answer.complete = self.gathering_done;
                        self.report(SessionEvent::Answered(answer)).await;
                        self.request_keyframe();
                    }
                    Err(refusal) => self.report(SessionEvent::OfferRefused(refusal)).await,
                }
            }
        }
        None
    }

    /// Tells the manager what happened. Waits while its queue is full: the
    /// manager never waits on sessions, so this cannot deadlock.
    async fn report(&self, event: SessionEvent) {
        let _ = self
            .reports
            .send(SessionReport {
                session: Arc::clone(&self.id),
                event,
            })
            .await;
    }

    /// Notes in the debug log when the call reached `stage`, after its offer.
    fn log_stage(&self, stage: Stage) {
        let after = self.session.since_offer(Instant::now());
        tracing::debug!(
            "session {}: {} at +{:.1} ms",
            self.id,
            stage.describe(),
            after.as_secs_f64() * 1000.0
        );
    }

    /// Asks the source for a keyframe for this viewer, once it watches.
    fn request_keyframe(&self) {
        if let Some(video) = &self.video {
            video.request_keyframe();
        }
    }

    /// Carries out everything the session wants now; returns its next deadline.
    async fn drain(&mut self) -> Result<Instant, EndReason> {
        loop {
            match self.session.poll_output() {
                SessionOutput::Transmit {
                    source,
                    destination,
                    contents,
                } => match &mut self.gatherer {
                    Some(gatherer) if gatherer.is_relayed(source) => {
                        gatherer.send_relayed(source, destination, &contents, Instant::now());
                    }
                    _ => {
                        if let Some(socket) = self.socket_for(source) {
                            let _ = socket.send_to(&contents, destination).await;
                        }
                    }
                },
                SessionOutput::Heard => self.report(SessionEvent::Heard).await,
                SessionOutput::Path(path) => {
                    let local = match self
                        .gatherer
                        .as_ref()
                        .and_then(|g| g.relay_transport(path.local))
                    {
                        Some(transport) => format!("relay {} (TURN over {transport})", path.local),
                        None => format!("host {}", path.local),
                    };
                    tracing::info!(
                        "session {}: media path {local} <-> {} {}",
                        self.id,
                        path.remote_kind,
                        path.remote
                    );
                }
                SessionOutput::Connected => {
                    self.log_stage(Stage::DtlsConnected);
                    if let Some(join) = self.join.take() {
                        match join.take_fresh(Instant::now()) {
                            Some(frames) => frames.iter().for_each(|f| self.session.write_video(f)),
                            None => self.request_keyframe(),
                        }
                    }
                    if self.session.audio_use().send {
                        self.audio = Some(self.media.audio.subscribe(AUDIO_QUEUE_PACKETS));
                    }
                    self.report(SessionEvent::Connected).await;
                }
                SessionOutput::KeyframeRequest => self.request_keyframe(),
                SessionOutput::Stage(stage) => self.log_stage(stage),
                SessionOutput::TalkAudio { rtp_48khz, data } => {
                    if let (true, Some(talkback)) = (self.holds_floor, &self.media.talkback) {
                        talkback.play(TalkPacket {
                            session: Arc::clone(&self.id),
                            rtp_48khz,
                            data,
                        });
                    }
                }
                SessionOutput::Ended(reason) => return Err(reason),
                SessionOutput::Timeout(at) => {
                    self.send_to_servers().await;
                    let gathering = self
                        .gatherer
                        .as_mut()
                        .and_then(|g| g.deadline(Instant::now()));
                    return Ok(gathering.map_or(at, |g| g.min(at)));
                }
            }
        }
    }
}

/// Opens TCP connection `stream` to TURN server `server`, within
/// [`GATHER_TIMEOUT`], and reports how it went.
async fn connect_stream(
    stream: StreamId,
    server: SocketAddr,
    events: async_channel::Sender<StreamEvent>,
) {
    let timeout = async {
        smol::Timer::after(GATHER_TIMEOUT).await;
        Err(std::io::ErrorKind::TimedOut.into())
    };
    let event = match smol::net::TcpStream::connect(server).or(timeout).await {
        Ok(tcp) => {
            let _ = tcp.set_nodelay(true);
            StreamEvent::Connected(stream, tcp)
        }
        Err(e) => {
            tracing::debug!("TURN over TCP {server}: {e}");
            StreamEvent::Failed(stream)
        }
    };
    let _ = events.send(event).await;
}

/// Forwards what TCP connection `stream` receives until it closes (then
/// reports it failed) or the session's channel closes.
async fn read_stream(
    stream: StreamId,
    mut tcp: smol::net::TcpStream,
    events: async_channel::Sender<StreamEvent>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM * 2];
    loop {
        let event = match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => StreamEvent::Failed(stream),
            Ok(n) => StreamEvent::Data(stream, buf[..n].to_vec()),
        };
        let failed = matches!(event, StreamEvent::Failed(_));
        if events.send(event).await.is_err() || failed {
            return;
        }
    }
}

/// Forwards every datagram of `socket` until the session's channel closes.
async fn read_socket(socket: Arc<Async<UdpSocket>>, out: async_channel::Sender<Datagram>) {
    let Ok(destination) = socket.get_ref().local_addr() else {
        return;
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, source)) => {
                let datagram = Datagram {
                    at: Instant::now(),
                    source,
                    destination,
                    contents: buf[..n].to_vec(),
                };
                if out.send(datagram).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!("socket {destination}: {e}");
                smol::Timer::after(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
