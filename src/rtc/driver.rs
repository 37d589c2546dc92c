//! Drives one [`Session`] on the smol executor: its UDP sockets, its video
//! and audio subscriptions, talk-back to the speaker while it holds the
//! floor, control messages from the session manager, and its timers.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use futures_lite::FutureExt;
use smol::Async;

use crate::media::EncodedFrame;
use crate::media::audio::playback::Talkback;
use crate::media::audio::{OpusPacket, TalkPacket};
use crate::media::fanout::{Fanout, Subscription};
use crate::rtc::session::{EndReason, Session, SessionOutput};
use crate::signal::outbox::{ErrorLimiter, Outbox};
use crate::signal::protocol::{CandidateInit, DeviceMessage};

/// Frames queued per viewer before it skips to the next keyframe
/// (about a second at 30 fps: absorbs a hiccup, never builds latency).
pub const VIDEO_QUEUE_FRAMES: usize = 30;
/// Audio packets queued per viewer (200 ms): audio is never worth waiting for.
pub const AUDIO_QUEUE_PACKETS: usize = 10;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 2048;

/// What the session manager tells a running session.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// A later offer: renegotiate (ICE restart).
    Offer(String),
    /// A trickled viewer candidate.
    Candidate(CandidateInit),
    /// The viewer gained (`true`) or lost the talk-back floor.
    Floor(bool),
    /// The viewer hung up.
    Bye,
    /// The device is stopping: say `bye` and end.
    Shutdown,
}

/// What a running session tells the session manager.
#[derive(Debug)]
pub struct SessionEvent {
    /// Session id.
    pub session: String,
    /// What happened.
    pub kind: SessionEventKind,
}

/// The session events the manager acts on.
#[derive(Debug)]
pub enum SessionEventKind {
    /// Media is flowing.
    Connected,
    /// The session is gone, for the reason given.
    Ended(String),
}

/// Trickles the session's host candidates, then end-of-candidates.
pub fn send_local_candidates(outbox: &Outbox, id: &str, session: &Session) {
    let candidates = session.local_candidates();
    let first_mid = candidates.first().and_then(|c| c.sdp_mid.clone());
    for candidate in candidates {
        outbox.send(id, &DeviceMessage::Candidate(candidate));
    }
    outbox.send(
        id,
        &DeviceMessage::Candidate(CandidateInit {
            candidate: String::new(),
            sdp_mid: first_mid,
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }),
    );
}

/// The media every session draws from and feeds.
#[derive(Clone)]
pub struct SessionMedia {
    /// The camera.
    pub video: Arc<Fanout<EncodedFrame>>,
    /// The microphone.
    pub audio: Arc<Fanout<OpusPacket>>,
    /// The speaker, when the device plays talk-back.
    pub talkback: Option<Talkback>,
}

/// Starts the task running session `id`.
pub fn spawn(
    id: String,
    session: Session,
    sockets: Vec<UdpSocket>,
    media: SessionMedia,
    control: async_channel::Receiver<Control>,
    events: async_channel::Sender<SessionEvent>,
    outbox: Outbox,
) -> smol::Task<()> {
    smol::spawn(async move {
        let reason = match Driver::new(id.clone(), session, sockets, media, outbox) {
            Ok(mut driver) => driver.run(&control, &events).await,
            Err(e) => format!("socket error: {e}"),
        };
        let _ = events
            .send(SessionEvent {
                session: id,
                kind: SessionEventKind::Ended(reason),
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

struct Driver {
    id: String,
    /// The id as talk-back packets carry it.
    talker: Arc<str>,
    session: Session,
    sockets: Vec<Arc<Async<UdpSocket>>>,
    media: SessionMedia,
    /// Subscribed once connected, so frames are only taken when they can be sent.
    video: Option<Subscription<EncodedFrame>>,
    /// Subscribed once connected, if the call receives the microphone.
    audio: Option<Subscription<OpusPacket>>,
    /// Whether this viewer holds the talk-back floor.
    holds_floor: bool,
    outbox: Outbox,
    errors: ErrorLimiter,
}

impl Driver {
    fn new(
        id: String,
        session: Session,
        sockets: Vec<UdpSocket>,
        media: SessionMedia,
        outbox: Outbox,
    ) -> std::io::Result<Self> {
        let sockets = sockets
            .into_iter()
            .map(|s| Async::new(s).map(Arc::new))
            .collect::<std::io::Result<_>>()?;
        Ok(Driver {
            talker: Arc::from(id.as_str()),
            id,
            session,
            sockets,
            media,
            video: None,
            audio: None,
            holds_floor: false,
            outbox,
            errors: ErrorLimiter::default(),
        })
    }

    /// Runs until the session ends; returns why.
    async fn run(
        &mut self,
        control: &async_channel::Receiver<Control>,
        events: &async_channel::Sender<SessionEvent>,
    ) -> String {
        let (datagrams_tx, datagrams) = async_channel::bounded::<Datagram>(256);
        let _readers: Vec<smol::Task<()>> = self
            .sockets
            .iter()
            .map(|socket| smol::spawn(read_socket(Arc::clone(socket), datagrams_tx.clone())))
            .collect();
        enum Wake {
            Timer,
            Datagram(Datagram),
            Frame(EncodedFrame),
            Audio(OpusPacket),
            Control(Control),
            Gone,
        }
        loop {
            let deadline = match self.drain(events).await {
                Ok(deadline) => deadline,
                Err(reason) => {
                    self.outbox.send(
                        &self.id,
                        &DeviceMessage::Bye {
                            reason: Some(reason.describe()),
                        },
                    );
                    return reason.describe();
                }
            };
            let wake = async {
                smol::Timer::at(deadline).await;
                Wake::Timer
            }
            .or(async { datagrams.recv().await.map_or(Wake::Gone, Wake::Datagram) })
            .or(async { control.recv().await.map_or(Wake::Gone, Wake::Control) })
            .or(async {
                match &self.video {
                    Some(video) => video.recv().await.map_or(Wake::Gone, Wake::Frame),
                    None => std::future::pending().await,
                }
            })
            .or(async {
                match &self.audio {
                    Some(audio) => audio.recv().await.map_or(Wake::Gone, Wake::Audio),
                    None => std::future::pending().await,
                }
            })
            .await;
            match wake {
                Wake::Timer => self.session.handle_timeout(Instant::now()),
                Wake::Datagram(d) => {
                    self.session
                        .handle_datagram(d.at, d.source, d.destination, &d.contents);
                    while let Ok(d) = datagrams.try_recv() {
                        self.session
                            .handle_datagram(d.at, d.source, d.destination, &d.contents);
                    }
                }
                Wake::Frame(frame) => self.session.write_video(&frame),
                Wake::Audio(packet) => self.session.write_audio(&packet),
                Wake::Control(Control::Floor(holds)) => self.holds_floor = holds,
                Wake::Control(Control::Bye) => {
                    self.session.close();
                    return "the viewer said bye".into();
                }
                Wake::Control(Control::Shutdown) | Wake::Gone => {
                    self.session.close();
                    self.outbox.send(
                        &self.id,
                        &DeviceMessage::Bye {
                            reason: Some("the camera is shutting down".into()),
                        },
                    );
                    return "device shutdown".into();
                }
                Wake::Control(Control::Candidate(candidate)) => {
                    if let Err(error) = self.session.add_remote_candidate(&candidate) {
                        self.errors
                            .send(&self.outbox, &self.id, error, Instant::now());
                    }
                }
                Wake::Control(Control::Offer(sdp)) => {
                    match self.session.renegotiate(&sdp, Instant::now()) {
                        Ok(answer) => {
                            self.outbox
                                .send(&self.id, &DeviceMessage::Answer { sdp: answer });
                            send_local_candidates(&self.outbox, &self.id, &self.session);
                            self.request_keyframe();
                        }
                        Err(error) => {
                            self.errors
                                .send(&self.outbox, &self.id, error, Instant::now())
                        }
                    }
                }
            }
        }
    }

    /// Asks the source for a keyframe for this viewer, once it watches.
    fn request_keyframe(&self) {
        if let Some(video) = &self.video {
            video.request_keyframe();
        }
    }

    /// Carries out everything the session wants now; returns its next deadline.
    async fn drain(
        &mut self,
        events: &async_channel::Sender<SessionEvent>,
    ) -> Result<Instant, EndReason> {
        loop {
            match self.session.poll_output() {
                SessionOutput::Transmit {
                    source,
                    destination,
                    contents,
                } => {
                    let socket = self
                        .sockets
                        .iter()
                        .find(|s| s.get_ref().local_addr().ok() == Some(source))
                        .or(self.sockets.first());
                    if let Some(socket) = socket {
                        let _ = socket.send_to(&contents, destination).await;
                    }
                }
                SessionOutput::Connected => {
                    self.video = Some(self.media.video.subscribe(VIDEO_QUEUE_FRAMES));
                    if self.session.audio_use().send {
                        self.audio = Some(self.media.audio.subscribe(AUDIO_QUEUE_PACKETS));
                    }
                    let _ = events
                        .send(SessionEvent {
                            session: self.id.clone(),
                            kind: SessionEventKind::Connected,
                        })
                        .await;
                }
                SessionOutput::KeyframeRequest => self.request_keyframe(),
                SessionOutput::TalkAudio { rtp_48khz, data } => {
                    if let (true, Some(talkback)) = (self.holds_floor, &self.media.talkback) {
                        talkback.play(TalkPacket {
                            session: Arc::clone(&self.talker),
                            rtp_48khz,
                            data,
                        });
                    }
                }
                SessionOutput::Ended(reason) => return Err(reason),
                SessionOutput::Timeout(at) => return Ok(at),
            }
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
