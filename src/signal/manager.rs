//! The session manager's loop: takes viewer messages from the broker,
//! routes them through the [`SessionTable`], starts a session task per
//! accepted offer, turns what sessions report into messages for their
//! viewers, runs the talk floor, and announces doorbell rings. Every input
//! gets a bounded share of each wake-up, so a flood on one (say, inbound
//! messages) never starves shutdown, session events or the heartbeat.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_channel::{Receiver, TryRecvError};
use futures_lite::FutureExt;

use crate::config::{IceServerConfig, SecurityMode};
use crate::rtc::driver::{self, Control, SessionEvent, SessionMedia, SessionReport};
use crate::rtc::net;
use crate::rtc::session::{EndReason, Refusal, Session, SessionConfig};
use crate::signal::floor::{Floor, FloorChange};
use crate::signal::keyring::Keyring;
use crate::signal::mqtt::Inbound;
use crate::signal::outbox::Outbox;
use crate::signal::protocol::{
    self, CandidateInit, DeviceMessage, ErrorCode, ErrorReply, IceServer, Status, Topics,
};
use crate::signal::sealed::{Opened, Sealing};
use crate::signal::table::{Admission, Dropped, Route, SessionTable};

/// The status is republished at most this often.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// How the floor holder is named in plain mode (docs/protocol.md).
const PLAIN_HOLDER: &str = "viewer";
/// Inbound messages handled per wake-up (see the module doc).
const INBOUND_PER_WAKE: usize = 32;
/// Session reports handled per wake-up.
const REPORTS_PER_WAKE: usize = 64;
/// Doorbell commands and voice notices handled per wake-up.
const LOCAL_PER_WAKE: usize = 8;
/// Session reports queued for the manager; sessions wait while it is full.
const REPORT_QUEUE: usize = 256;
/// How often the media addresses are listed again for the status line.
const ADDRESS_RECHECK: Duration = Duration::from_secs(5);
/// How long stopping waits for sessions to say bye.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// Local commands for the device: from the doorbell button and the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// Ring the doorbell.
    Ring,
}

/// Everything the manager needs to start sessions.
pub(crate) struct ManagerSetup {
    /// Device name for the status.
    pub(crate) name: String,
    /// Cap on connected viewers.
    pub(crate) max_viewers: usize,
    /// Timers, audio and the DTLS certificate every session shares.
    pub(crate) session: SessionConfig,
    /// Interface names or addresses for media (`webrtc.interfaces`).
    pub(crate) interfaces: Vec<String>,
    /// Port range for media sockets.
    pub(crate) ports: Option<Range<u16>>,
    /// STUN/TURN servers: URLs in the status, with credentials (minted
    /// per request where a shared secret is set) in `ice-servers` replies.
    pub(crate) ice_servers: Vec<IceServerConfig>,
    /// Sealed, plain, or sealed once a viewer is paired.
    pub(crate) security: SecurityMode,
    /// Plain mode lets viewers talk through the speaker.
    pub(crate) plain_talkback: bool,
}

impl ManagerSetup {
    /// The retained status for `viewers` connected viewers; `nonce` is the
    /// sealed mode's status nonce, `None` in plain mode.
    pub(crate) fn status(&self, viewers: usize, nonce: Option<&str>) -> Status {
        let audio = self.session_config(nonce.is_some()).audio;
        Status {
            online: true,
            name: self.name.clone(),
            sealed: nonce.is_some(),
            nonce: nonce.map(str::to_owned),
            video: vec!["H264".into()],
            audio: match (audio.send, audio.receive) {
                (true, true) => Some("sendrecv".into()),
                (true, false) => Some("sendonly".into()),
                _ => None,
            },
            viewers,
            max_viewers: self.max_viewers,
            ice_servers: self.ice_servers.iter().map(IceServer::public).collect(),
        }
    }

    /// What a call gets: in plain mode no talk-back unless allowed.
    fn session_config(&self, sealed: bool) -> std::borrow::Cow<'_, SessionConfig> {
        if sealed || self.plain_talkback || !self.session.audio.receive {
            return std::borrow::Cow::Borrowed(&self.session);
        }
        let mut config = self.session.clone();
        config.audio.receive = false;
        std::borrow::Cow::Owned(config)
    }

    /// The addresses media sockets can be bound on now (listed per call:
    /// DHCP renumbers, links go down and come back).
    fn media_addresses(&self) -> Vec<std::net::IpAddr> {
        match net::interface_addrs() {
            Ok(all) => net::select_addrs(&all, &self.interfaces),
            Err(e) => {
                tracing::warn!("{e:#}");
                Vec::new()
            }
        }
    }
}

/// What reaches the manager from outside the signaling path.
pub(crate) struct ManagerInputs {
    /// Viewer messages from the broker; closing means the link died.
    pub(crate) inbound: Receiver<Inbound>,
    /// Commands from the doorbell button and the control socket.
    pub(crate) commands: Receiver<Command>,
    /// Sessions whose voice the speaker just played.
    pub(crate) voice: Receiver<Arc<str>>,
    /// The paired viewers, each time the key file changes.
    pub(crate) keys: Receiver<Keyring>,
    /// Fires once when the daemon stops.
    pub(crate) shutdown: Receiver<()>,
}

/// What the manager reports at every heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tally {
    /// Connected viewers.
    pub(crate) viewers: usize,
    /// Inbound payloads dropped so far (bad, over a bound, duplicates).
    pub(crate) dropped: u64,
    /// Errors held back by the one-per-second rule so far.
    pub(crate) errors_suppressed: u64,
    /// Addresses media can use now; 0 means calls cannot connect.
    pub(crate) media_addresses: usize,
}

/// Runs the sessions of one device.
pub(crate) struct SessionManager {
    setup: ManagerSetup,
    topics: Topics,
    outbox: Outbox,
    media: SessionMedia,
    table: SessionTable,
    floor: Floor,
    controls: HashMap<Arc<str>, async_channel::Sender<Control>>,
    reports_tx: async_channel::Sender<SessionReport>,
    reports_rx: Receiver<SessionReport>,
    status_published: Option<(Instant, Status)>,
    media_addresses: (Instant, usize),
}

/// One input that woke the manager.
enum Wake {
    Inbound(Inbound),
    Report(SessionReport),
    Command(Command),
    Voice(Arc<str>),
    Keys(Keyring),
    Timer,
    Shutdown,
    LinkDown,
}

impl SessionManager {
    /// A manager publishing through `outbox` and connecting viewers to `media`.
    pub(crate) fn new(
        setup: ManagerSetup,
        topics: Topics,
        outbox: Outbox,
        media: SessionMedia,
    ) -> Self {
        let (reports_tx, reports_rx) = async_channel::bounded(REPORT_QUEUE);
        let addresses = setup.media_addresses().len();
        if addresses == 0 {
            tracing::warn!(
                "no network address matches `webrtc.interfaces` ({:?}) yet; calls will \
                 connect once one is up",
                setup.interfaces
            );
        }
        SessionManager {
            table: SessionTable::new(setup.max_viewers),
            floor: Floor::default(),
            setup,
            topics,
            outbox,
            media,
            controls: HashMap::new(),
            reports_tx,
            reports_rx,
            status_published: None,
            media_addresses: (Instant::now(), addresses),
        }
    }

    /// Serves viewers until `inputs.shutdown` fires, then ends every call
    /// with `bye`. Every `heartbeat`, reports its [`Tally`] to `on_heartbeat`
    /// from this loop, so a watchdog fed there notices when the loop hangs.
    /// Fails when the broker link dies: the daemon must not go on deaf.
    pub(crate) async fn run(
        mut self,
        inputs: ManagerInputs,
        heartbeat: Duration,
        mut on_heartbeat: impl FnMut(Tally),
    ) -> anyhow::Result<()> {
        let mut next_heartbeat = Instant::now();
        let outcome = loop {
            let now = Instant::now();
            if now >= next_heartbeat {
                on_heartbeat(self.tally(now));
                next_heartbeat = now + heartbeat;
            }
            self.on_timers(now);
            let mut ready = self.sweep(&inputs);
            if ready.is_empty() {
                ready.push(self.wait(&inputs, next_heartbeat).await);
            }
            let mut stop = None;
            for wake in ready {
                match wake {
                    Wake::Inbound(message) => self.on_inbound(message),
                    Wake::Report(report) => self.on_report(report),
                    Wake::Command(Command::Ring) => self.ring(),
                    Wake::Voice(session) => self.floor.voice(&session, Instant::now()),
                    Wake::Keys(keyring) => self.on_keys(keyring),
                    Wake::Timer => {}
                    Wake::Shutdown => stop = Some(Ok(())),
                    Wake::LinkDown => {
                        stop = Some(Err(anyhow::anyhow!(
                            "the MQTT link stopped unexpectedly; exiting so the service restarts"
                        )))
                    }
                }
            }
            if let Some(outcome) = stop {
                break outcome;
            }
        };
        self.stop_all().await;
        outcome
    }

    /// What every input has ready now, a bounded share of each.
    fn sweep(&self, inputs: &ManagerInputs) -> Vec<Wake> {
        let mut ready = Vec::new();
        match inputs.shutdown.try_recv() {
            Ok(()) | Err(TryRecvError::Closed) => return vec![Wake::Shutdown],
            Err(TryRecvError::Empty) => {}
        }
        take_ready(&self.reports_rx, REPORTS_PER_WAKE, &mut ready, Wake::Report);
        take_ready(&inputs.commands, LOCAL_PER_WAKE, &mut ready, Wake::Command);
        take_ready(&inputs.voice, LOCAL_PER_WAKE, &mut ready, Wake::Voice);
        take_ready(&inputs.keys, 1, &mut ready, Wake::Keys);
        if take_ready(&inputs.inbound, INBOUND_PER_WAKE, &mut ready, Wake::Inbound) {
            ready.push(Wake::LinkDown);
        }
        ready
    }

    /// Waits for the first input, or the next timer.
    async fn wait(&self, inputs: &ManagerInputs, next_heartbeat: Instant) -> Wake {
        let timer = [
            Some(next_heartbeat),
            self.status_due(Instant::now()),
            self.floor.deadline(),
            self.outbox.sealing().map(Sealing::nonce_due),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(next_heartbeat);
        async {
            smol::Timer::at(timer).await;
            Wake::Timer
        }
        .or(async {
            let _ = inputs.shutdown.recv().await;
            Wake::Shutdown
        })
        .or(async {
            match self.reports_rx.recv().await {
                Ok(report) => Wake::Report(report),
                Err(_) => std::future::pending().await,
            }
        })
        .or(async {
            match inputs.commands.recv().await {
                Ok(command) => Wake::Command(command),
                Err(_) => std::future::pending().await,
            }
        })
        .or(async {
            match inputs.voice.recv().await {
                Ok(session) => Wake::Voice(session),
                Err(_) => std::future::pending().await,
            }
        })
        .or(async {
            match inputs.keys.recv().await {
                Ok(keyring) => Wake::Keys(keyring),
                Err(_) => std::future::pending().await,
            }
        })
        .or(async {
            inputs
                .inbound
                .recv()
                .await
                .map_or(Wake::LinkDown, Wake::Inbound)
        })
        .await
    }

    /// The status nonce, the status and the floor, when they are due.
    fn on_timers(&mut self, now: Instant) {
        if let Some(sealing) = self.outbox.sealing_mut()
            && sealing.nonce_due() <= now
        {
            sealing.rotate_nonce(now);
        }
        if self.status_due(now).is_some_and(|due| due <= now) {
            self.publish_status(now);
        }
        if self.floor.deadline().is_some_and(|due| due <= now)
            && let Some(change) = self.floor.expire(now)
        {
            tracing::info!("talk-back floor taken back after silence");
            self.announce_floor(change);
        }
    }

    fn tally(&mut self, now: Instant) -> Tally {
        let (checked, _) = self.media_addresses;
        if now.saturating_duration_since(checked) >= ADDRESS_RECHECK {
            self.media_addresses = (now, self.setup.media_addresses().len());
        }
        Tally {
            viewers: self.table.viewers(),
            dropped: self.table.dropped(),
            errors_suppressed: self.table.errors_suppressed(),
            media_addresses: self.media_addresses.1,
        }
    }

    fn on_inbound(&mut self, message: Inbound) {
        let Some(session) = self.topics.session_of(&message.topic) else {
            self.table.count_drop(Dropped::BadTopic);
            return;
        };
        let session = session.to_owned();
        let now = Instant::now();
        let payload = match self.outbox.sealing_mut() {
            None => message.payload,
            Some(_) if message.retain => {
                self.table.count_drop(Dropped::Retained);
                return;
            }
            Some(sealing) => match sealing.open(now, &message.topic, &session, &message.payload) {
                Opened::Body(body) => body.into(),
                Opened::Drop(why) => {
                    tracing::debug!("session {session}: dropped ({why:?})");
                    self.table.count_drop(why);
                    return;
                }
                Opened::Unauthorized(why) => {
                    tracing::info!("session {session}: refused, not a paired viewer ({why:?})");
                    self.table.count_drop(why);
                    self.outbox.send_unauthorized(&session);
                    return;
                }
                Opened::Refuse(error) => {
                    if error.code == ErrorCode::Stale || self.table.allow_error(now, &session) {
                        self.outbox.send(&session, &DeviceMessage::Error(error));
                    }
                    return;
                }
            },
        };
        match self.table.route(now, &session, &payload, message.retain) {
            Route::Drop(why) => tracing::debug!("session {session}: dropped ({why:?})"),
            Route::Hold => tracing::debug!("session {session}: early candidate kept"),
            Route::SendIceServers => {
                let now = protocol::unix_seconds(SystemTime::now());
                let ice_servers = self
                    .setup
                    .ice_servers
                    .iter()
                    .map(|server| IceServer::private(server, now))
                    .collect();
                self.outbox
                    .send(&session, &DeviceMessage::IceServers { ice_servers });
            }
            Route::Reply(reply) => self.outbox.send(&session, &reply),
            Route::Forward(control) => self.control(&session, control),
            Route::Start {
                sdp,
                early,
                evicted,
            } => {
                if let Some(evicted) = evicted {
                    tracing::info!("session {evicted}: evicted by a newer offer");
                    self.control(&evicted, Control::End(EndReason::Evicted));
                }
                self.start_session(session, &sdp, early, now);
            }
            Route::Talk(on) => {
                let label = self
                    .outbox
                    .sealing()
                    .and_then(|sealing| sealing.viewer_name(&session))
                    .unwrap_or(PLAIN_HOLDER)
                    .to_owned();
                let (reply, change) = self.floor.talk(&session, &label, on, now);
                self.outbox.send(
                    &session,
                    &DeviceMessage::Talk {
                        granted: reply.granted,
                        holder: reply.holder,
                    },
                );
                if let Some(change) = change {
                    self.announce_floor(change);
                }
            }
        }
    }

    /// Hands `control` to the running session, dropping it (counted) when
    /// the session's queue is full.
    fn control(&mut self, session: &str, control: Control) {
        if let Some(tx) = self.controls.get(session)
            && tx.try_send(control).is_err()
        {
            self.table.count_drop(Dropped::SessionQueueFull);
        }
    }

    /// Tells the sessions concerned, and every viewer, who holds the floor now.
    fn announce_floor(&mut self, change: FloorChange) {
        tracing::info!(
            "talk-back floor: {}",
            change.holder.as_deref().unwrap_or("free")
        );
        for (session, holds) in [(&change.released, false), (&change.taken, true)] {
            if let Some(session) = session {
                self.control(session, Control::Floor(holds));
            }
        }
        self.announce(protocol::talk_event(change.holder.as_deref()));
    }

    /// The doorbell was pressed: every viewer hears of it, and the camera
    /// makes a keyframe so viewers who open the call now see the visitor at once.
    fn ring(&mut self) {
        tracing::info!("ring");
        self.media.video.force_keyframe();
        self.announce(protocol::ring_event(SystemTime::now()));
    }

    /// Publishes `event` on `P/D/event` and inside every live session.
    fn announce(&mut self, event: serde_json::Value) {
        self.outbox.event(&event);
        for session in self.table.live_sessions() {
            self.outbox.send(
                session,
                &DeviceMessage::Event {
                    event: event.clone(),
                },
            );
        }
    }

    fn start_session(&mut self, id: String, sdp: &str, early: Vec<CandidateInit>, now: Instant) {
        tracing::debug!("session {id}: offer received at +0.0 ms");
        let sockets = net::bind_sockets(&self.setup.media_addresses(), self.setup.ports.clone());
        let sockets = match sockets {
            Ok(sockets) => sockets,
            Err(e) => {
                tracing::error!("session {id}: {e:#}");
                self.table.start_failed(&id);
                self.outbox.send(
                    &id,
                    &DeviceMessage::Error(ErrorReply::new(
                        ErrorCode::Internal,
                        "offer",
                        format!("The camera could not open a media socket: {e:#}."),
                    )),
                );
                return;
            }
        };
        let addrs: Vec<_> = sockets.iter().filter_map(|s| s.local_addr().ok()).collect();
        let sealed = self.outbox.sealing().is_some();
        let config = self.setup.session_config(sealed);
        let mut session = match Session::accept(sdp, &addrs, &config, now) {
            Ok((session, answer)) => {
                self.outbox.send_answer(&id, answer);
                tracing::debug!(
                    "session {id}: answer published at +{:.1} ms",
                    now.elapsed().as_secs_f64() * 1000.0
                );
                session
            }
            Err(refusal) => {
                tracing::info!("session {id}: offer refused: {}", refusal.message());
                self.table.start_failed(&id);
                self.outbox
                    .send(&id, &DeviceMessage::Error(error_reply(&refusal, "offer")));
                return;
            }
        };
        self.table.accepted(&id, session.audio_use().receive);
        if let Some(sealing) = self.outbox.sealing_mut() {
            sealing.started(&id);
        }
        for candidate in &early {
            let line = &candidate.candidate;
            let ufrag = candidate.username_fragment.as_deref();
            if let Err(refusal) = session.add_remote_candidate(line, ufrag) {
                tracing::debug!(
                    "session {id}: early candidate refused: {}",
                    refusal.message()
                );
            }
        }
        tracing::info!(
            "session {id}: offer accepted ({} early candidates)",
            early.len()
        );
        let id: Arc<str> = id.into();
        let (control_tx, control_rx) = async_channel::bounded(driver::CONTROL_QUEUE);
        self.controls.insert(Arc::clone(&id), control_tx);
        driver::spawn(
            id,
            session,
            sockets,
            self.setup.session.gathering.clone(),
            self.media.clone(),
            control_rx,
            self.reports_tx.clone(),
        )
        .detach();
    }

    fn on_report(&mut self, report: SessionReport) {
        let session = &*report.session;
        match report.event {
            SessionEvent::Answered(answer) => self.outbox.send_answer(session, answer),
            SessionEvent::LocalCandidate(candidate) => {
                self.outbox.send_candidate(session, candidate)
            }
            SessionEvent::EndOfCandidates(mid) => self.outbox.send_end_of_candidates(session, mid),
            SessionEvent::CandidateRefused(Refusal::TooManyCandidates) => {
                self.table.count_drop(Dropped::TooManyCandidates);
            }
            SessionEvent::CandidateRefused(refusal) => self.refused(session, &refusal, "candidate"),
            SessionEvent::OfferRefused(refusal) => self.refused(session, &refusal, "offer"),
            SessionEvent::Heard => self.table.heard(session),
            SessionEvent::Connected => match self.table.connected(session) {
                Admission::Counted => {
                    tracing::info!("session {session}: connected");
                    self.publish_status_soon();
                }
                Admission::Unchanged => {}
                Admission::Full => {
                    tracing::info!("session {session}: connected, but the camera is full");
                    self.control(session, Control::End(EndReason::Full));
                }
            },
            SessionEvent::Ended(reason) => {
                tracing::info!("session {session}: ended ({})", reason.describe());
                self.controls.remove(session);
                if reason.says_bye() {
                    self.outbox.send(
                        session,
                        &DeviceMessage::Bye {
                            reason: Some(reason.describe()),
                        },
                    );
                }
                if let Some(sealing) = self.outbox.sealing_mut() {
                    sealing.ended(session);
                }
                if let Some(change) = self.floor.release(session) {
                    self.announce_floor(change);
                }
                if self.table.ended(session) {
                    self.publish_status_soon();
                }
            }
        }
    }

    /// Answers a refused message of type `re` with an error, at most one a second.
    fn refused(&mut self, session: &str, refusal: &Refusal, re: &str) {
        if self.table.allow_error(Instant::now(), session) {
            self.outbox
                .send(session, &DeviceMessage::Error(error_reply(refusal, re)));
        }
    }

    /// The paired viewers changed: revoked viewers' calls end, and a plain
    /// device in `auto` mode whose first viewer was just paired seals from
    /// now on (its plain calls end). Sealed stays sealed until a restart,
    /// even when the last viewer is revoked: the device fails closed.
    fn on_keys(&mut self, keyring: Keyring) {
        let paired = keyring.viewers().count();
        if let Some(sealing) = self.outbox.sealing_mut() {
            tracing::info!("paired viewers changed: {paired} paired now");
            for session in sealing.set_keyring(keyring) {
                tracing::info!("session {session}: its viewer was revoked");
                self.control(&session, Control::End(EndReason::Revoked));
            }
            return;
        }
        if self.setup.security == SecurityMode::Plain || keyring.is_empty() {
            tracing::info!("paired viewers changed; plain mode (`security.mode`) ignores them");
            return;
        }
        tracing::info!("a viewer was paired: sealed from now on; plain calls end");
        let bye = DeviceMessage::Bye {
            reason: Some("this camera now takes calls from paired viewers only".into()),
        };
        let plain: Vec<String> = self.table.live_sessions().map(str::to_owned).collect();
        for session in &plain {
            self.outbox.send(session, &bye);
            self.control(session, Control::End(EndReason::Shutdown));
        }
        self.outbox
            .seal_from_now(Sealing::new(keyring, Instant::now()));
        self.publish_status_soon();
    }

    /// The status as it should be now.
    fn status(&self) -> Status {
        let nonce = self.outbox.sealing().map(Sealing::nonce);
        self.setup.status(self.table.viewers(), nonce)
    }

    /// When the next status must go out, if one is owed (`now` when none
    /// was published yet).
    fn status_due(&self, now: Instant) -> Option<Instant> {
        match &self.status_published {
            Some((_, published)) if *published == self.status() => None,
            Some((at, _)) => Some(*at + STATUS_INTERVAL),
            None => Some(now),
        }
    }

    fn publish_status_soon(&mut self) {
        let now = Instant::now();
        if self.status_due(now).is_some_and(|due| due <= now) {
            self.publish_status(now);
        }
    }

    fn publish_status(&mut self, now: Instant) {
        let status = self.status();
        self.outbox.set_status(&status);
        self.status_published = Some((now, status));
    }

    /// Ends every call (each gets its `bye`) and waits briefly for them.
    async fn stop_all(&mut self) {
        for control in self.controls.values() {
            let _ = control.try_send(Control::End(EndReason::Shutdown));
        }
        let deadline = Instant::now() + STOP_WAIT;
        while !self.controls.is_empty() {
            let report = self
                .reports_rx
                .recv()
                .or(async {
                    smol::Timer::at(deadline).await;
                    Err(async_channel::RecvError)
                })
                .await;
            match report {
                Ok(report) => self.on_report(report),
                Err(_) => break,
            }
        }
    }
}

/// Moves up to `limit` ready items of `rx` into `ready`; returns whether
/// `rx` is closed.
fn take_ready<T>(
    rx: &Receiver<T>,
    limit: usize,
    ready: &mut Vec<Wake>,
    wrap: impl Fn(T) -> Wake,
) -> bool {
    for _ in 0..limit {
        match rx.try_recv() {
            Ok(item) => ready.push(wrap(item)),
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Closed) => return true,
        }
    }
    false
}

/// The `error` a session's refusal deserves, answering a message of type `re`.
fn error_reply(refusal: &Refusal, re: &str) -> ErrorReply {
    let code = match refusal {
        Refusal::Malformed(_) | Refusal::TooManyCandidates => ErrorCode::BadRequest,
        Refusal::Unsupported(_) => ErrorCode::Unsupported,
        Refusal::Internal(_) => ErrorCode::Internal,
    };
    ErrorReply::new(code, re, refusal.message())
}

#[cfg(test)]
mod tests;
