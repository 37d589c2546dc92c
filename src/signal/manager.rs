//! The session manager: routes each viewer message to the right session,
//! starts sessions on first offers, and enforces the bounds of PROTOCOL.md
//! so unauthenticated senders cannot grow the device's memory. The routing
//! rules are a pure table ([`SessionTable`]); [`SessionManager::run`] does the I/O.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::time::SystemTime;

use bytes::Bytes;
use futures_lite::FutureExt;

use crate::control::Command;
use crate::rtc::driver::{self, Control, SessionEvent, SessionEventKind, SessionMedia};
use crate::rtc::net;
use crate::rtc::session::{AudioCaps, Session, SessionLimits};
use crate::signal::floor::{Floor, FloorChange};
use crate::signal::mqtt::Inbound;
use crate::signal::outbox::{ErrorLimiter, Outbox};
use crate::signal::protocol::{
    self, CandidateInit, DeviceMessage, ErrorCode, ErrorReply, IceServer, Rejection, Status,
    Topics, ViewerMessage,
};

/// Sessions without an offer kept at once; a new one evicts the oldest.
const MAX_PENDING: usize = 64;
/// Early candidates kept per session without an offer.
const MAX_EARLY_CANDIDATES: usize = 32;
/// How long early candidates are kept.
const EARLY_CANDIDATE_TTL: Duration = Duration::from_secs(10);
/// Ended session ids remembered, so late messages for them are dropped.
const MAX_ENDED: usize = 256;
/// The status is republished at most this often.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// How the floor holder is named in plain mode (PROTOCOL.md).
const PLAIN_HOLDER: &str = "viewer";

/// What to do with one inbound payload.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// Drop it (and count it).
    Ignore(&'static str),
    /// Answer on the session's `out/S`.
    Reply(DeviceMessage),
    /// Start a session from this first offer, applying the early candidates.
    Start {
        /// The SDP offer.
        sdp: String,
        /// Candidates that arrived before the offer.
        early: Vec<CandidateInit>,
    },
    /// Hand this to the live session.
    Forward(Control),
    /// The session asks for (`true`) or releases the talk-back floor.
    Talk(bool),
    /// Answer with the ICE servers (credentials included).
    SendIceServers,
}

/// A session that has not offered yet.
struct Pending {
    created: Instant,
    early: Vec<(Instant, CandidateInit)>,
    errors: ErrorLimiter,
}

/// A session whose offer was accepted.
struct Live {
    connected: bool,
    /// The call was agreed with audio from the viewer: it may talk back.
    can_talk: bool,
    last_payload: Option<Bytes>,
    errors: ErrorLimiter,
}

/// The routing state of every session, with the protocol's bounds.
pub struct SessionTable {
    max_viewers: usize,
    pending: HashMap<String, Pending>,
    live: HashMap<String, Live>,
    ended: VecDeque<String>,
    /// Payloads dropped or refused, for logs.
    pub dropped: u64,
}

impl SessionTable {
    /// An empty table admitting `max_viewers` sessions with accepted offers.
    pub fn new(max_viewers: usize) -> Self {
        SessionTable {
            max_viewers,
            pending: HashMap::new(),
            live: HashMap::new(),
            ended: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Decides what one payload on `P/D/in/<session>` leads to.
    pub fn route(&mut self, now: Instant, session: &str, payload: &Bytes, retained: bool) -> Route {
        self.expire(now);
        let route = self.route_inner(now, session, payload, retained);
        if matches!(route, Route::Ignore(_)) {
            self.dropped += 1;
        }
        route
    }

    fn route_inner(
        &mut self,
        now: Instant,
        session: &str,
        payload: &Bytes,
        retained: bool,
    ) -> Route {
        if retained {
            return Route::Ignore("retained session message");
        }
        if self.ended.iter().any(|s| s == session) {
            return Route::Ignore("message for an ended session");
        }
        if let Some(live) = self.live.get_mut(session) {
            if live.last_payload.as_ref() == Some(payload) {
                return Route::Ignore("duplicate delivery");
            }
            let message = match protocol::parse_viewer_message(payload) {
                Ok(message) => message,
                Err(Rejection::Drop(_)) => return Route::Ignore("not a v1 JSON object"),
                Err(Rejection::Error(error)) => {
                    return if live.errors.allow(now, false) {
                        Route::Reply(DeviceMessage::Error(error))
                    } else {
                        Route::Ignore("error rate limit")
                    };
                }
            };
            if matches!(
                message,
                ViewerMessage::Offer { .. } | ViewerMessage::Candidate(_)
            ) {
                live.last_payload = Some(payload.clone());
            }
            return match message {
                ViewerMessage::Offer { sdp, .. } => Route::Forward(Control::Offer(sdp)),
                ViewerMessage::Candidate(c) => Route::Forward(Control::Candidate(c)),
                ViewerMessage::Bye { .. } => Route::Forward(Control::Bye),
                ViewerMessage::IceServers => Route::SendIceServers,
                ViewerMessage::Talk { on } if live.can_talk => Route::Talk(on),
                ViewerMessage::Talk { .. } => {
                    if live.errors.allow(now, false) {
                        Route::Reply(no_talk_back())
                    } else {
                        Route::Ignore("error rate limit")
                    }
                }
            };
        }
        let parsed = protocol::parse_viewer_message(payload);
        if let Err(Rejection::Drop(_)) = parsed {
            return Route::Ignore("not a v1 JSON object");
        }
        let pending = self.pending_entry(now, session);
        let reply_error = |pending: &mut Pending, error: ErrorReply| {
            if pending.errors.allow(now, error.re == "offer") {
                Route::Reply(DeviceMessage::Error(error))
            } else {
                Route::Ignore("error rate limit")
            }
        };
        match parsed {
            Err(Rejection::Drop(_)) => unreachable!("handled above"),
            Err(Rejection::Error(error)) => {
                let route = reply_error(pending, error);
                if is_offer_error(&route) {
                    self.end(session);
                }
                route
            }
            Ok(ViewerMessage::Candidate(candidate)) => {
                if pending.early.len() >= MAX_EARLY_CANDIDATES {
                    return Route::Ignore("too many early candidates");
                }
                pending.early.push((now, candidate));
                Route::Ignore("early candidate stored")
            }
            Ok(ViewerMessage::IceServers) => Route::SendIceServers,
            Ok(ViewerMessage::Talk { .. }) => reply_error(
                pending,
                ErrorReply::new(
                    ErrorCode::BadRequest,
                    "talk",
                    "There is no call on this session yet: offer first.",
                ),
            ),
            Ok(ViewerMessage::Bye { .. }) => {
                self.pending.remove(session);
                Route::Ignore("bye before offer")
            }
            Ok(ViewerMessage::Offer { sdp, .. }) => {
                if self.live.len() >= self.max_viewers {
                    self.end(session);
                    return Route::Reply(DeviceMessage::Error(ErrorReply::new(
                        ErrorCode::Busy,
                        "offer",
                        format!(
                            "This camera already has its maximum of {} viewers; try again later.",
                            self.max_viewers
                        ),
                    )));
                }
                let early = self
                    .pending
                    .remove(session)
                    .map(|p| p.early.into_iter().map(|(_, c)| c).collect())
                    .unwrap_or_default();
                self.live.insert(
                    session.to_owned(),
                    Live {
                        connected: false,
                        can_talk: false,
                        last_payload: Some(payload.clone()),
                        errors: ErrorLimiter::default(),
                    },
                );
                Route::Start { sdp, early }
            }
        }
    }

    /// The session's call was agreed; `can_talk` if its viewer sends audio.
    pub fn accepted(&mut self, session: &str, can_talk: bool) {
        if let Some(live) = self.live.get_mut(session) {
            live.can_talk = can_talk;
        }
    }

    /// The session's offer could not be turned into a call: it is over.
    pub fn start_failed(&mut self, session: &str) {
        self.end(session);
    }

    /// The session connected; returns whether the viewer count changed.
    pub fn connected(&mut self, session: &str) -> bool {
        match self.live.get_mut(session) {
            Some(live) if !live.connected => {
                live.connected = true;
                true
            }
            _ => false,
        }
    }

    /// The session ended; returns whether the viewer count changed.
    pub fn ended(&mut self, session: &str) -> bool {
        let was_connected = self.live.get(session).is_some_and(|l| l.connected);
        self.end(session);
        was_connected
    }

    /// Viewers with a connected call.
    pub fn viewers(&self) -> usize {
        self.live.values().filter(|l| l.connected).count()
    }

    /// Ids of every session with an accepted offer.
    pub fn live_sessions(&self) -> Vec<String> {
        self.live.keys().cloned().collect()
    }

    fn end(&mut self, session: &str) {
        self.pending.remove(session);
        self.live.remove(session);
        if self.ended.len() >= MAX_ENDED {
            self.ended.pop_front();
        }
        self.ended.push_back(session.to_owned());
    }

    fn pending_entry(&mut self, now: Instant, session: &str) -> &mut Pending {
        if !self.pending.contains_key(session) && self.pending.len() >= MAX_PENDING {
            let oldest = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.created)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                self.pending.remove(&oldest);
                self.dropped += 1;
            }
        }
        self.pending
            .entry(session.to_owned())
            .or_insert_with(|| Pending {
                created: now,
                early: Vec::new(),
                errors: ErrorLimiter::default(),
            })
    }

    fn expire(&mut self, now: Instant) {
        for pending in self.pending.values_mut() {
            pending
                .early
                .retain(|(at, _)| now.saturating_duration_since(*at) < EARLY_CANDIDATE_TTL);
        }
        self.pending.retain(|_, p| {
            now.saturating_duration_since(p.created) < EARLY_CANDIDATE_TTL || !p.early.is_empty()
        });
    }
}

/// Waits until `deadline`, or forever when there is none.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => {
            smol::Timer::at(at).await;
        }
        None => std::future::pending().await,
    }
}

fn is_offer_error(route: &Route) -> bool {
    matches!(route, Route::Reply(DeviceMessage::Error(e)) if e.re == "offer")
}

fn no_talk_back() -> DeviceMessage {
    DeviceMessage::Error(ErrorReply::new(
        ErrorCode::Unsupported,
        "talk",
        "This call sends no audio to the camera: it has no talk-back, or the offer's audio \
         is not sendrecv/sendonly.",
    ))
}

/// Everything the manager needs to start sessions.
pub struct ManagerSetup {
    /// Device name for the status.
    pub name: String,
    /// Cap on sessions with an accepted offer.
    pub max_viewers: usize,
    /// Session timers.
    pub limits: SessionLimits,
    /// Addresses to bind media sockets and offer host candidates on.
    pub local_ips: Vec<IpAddr>,
    /// Port range for media sockets.
    pub ports: Option<Range<u16>>,
    /// STUN/TURN servers for the status (no credentials).
    pub public_ice_servers: Vec<IceServer>,
    /// STUN/TURN servers for `ice-servers` replies (with credentials).
    pub private_ice_servers: Vec<IceServer>,
    /// What the device does with audio.
    pub audio: AudioCaps,
}

impl ManagerSetup {
    /// The retained status for `viewers` connected viewers.
    pub fn status(&self, viewers: usize) -> Status {
        Status {
            online: true,
            name: self.name.clone(),
            sealed: false,
            video: vec!["H264".into()],
            audio: match (self.audio.send, self.audio.receive) {
                (true, true) => Some("sendrecv".into()),
                (true, false) => Some("sendonly".into()),
                _ => None,
            },
            viewers,
            max_viewers: self.max_viewers,
            ice_servers: self.public_ice_servers.clone(),
        }
    }
}

/// What reaches the manager from outside the signaling path.
pub struct ManagerInputs {
    /// Viewer messages from the broker.
    pub inbound: async_channel::Receiver<Inbound>,
    /// Commands from the doorbell button and the control socket.
    pub commands: async_channel::Receiver<Command>,
    /// Sessions whose voice the speaker just played.
    pub voice: async_channel::Receiver<Arc<str>>,
    /// Fires once when the daemon stops.
    pub shutdown: async_channel::Receiver<()>,
}

/// Runs the sessions of one device.
pub struct SessionManager {
    setup: ManagerSetup,
    topics: Topics,
    outbox: Outbox,
    media: SessionMedia,
    table: SessionTable,
    floor: Floor,
    controls: HashMap<String, async_channel::Sender<Control>>,
    events_tx: async_channel::Sender<SessionEvent>,
    events_rx: async_channel::Receiver<SessionEvent>,
    status_published: Option<(Instant, usize)>,
}

impl SessionManager {
    /// A manager publishing through `outbox` and connecting viewers to `media`.
    pub fn new(setup: ManagerSetup, topics: Topics, outbox: Outbox, media: SessionMedia) -> Self {
        let (events_tx, events_rx) = async_channel::unbounded();
        SessionManager {
            table: SessionTable::new(setup.max_viewers),
            floor: Floor::default(),
            setup,
            topics,
            outbox,
            media,
            controls: HashMap::new(),
            events_tx,
            events_rx,
            status_published: None,
        }
    }

    /// Serves viewers until `inputs.shutdown` fires, then ends every call
    /// with `bye`. Every `heartbeat`, reports the viewer count to
    /// `on_heartbeat` from this loop, so a watchdog fed there notices when
    /// the loop hangs.
    pub async fn run(
        mut self,
        inputs: ManagerInputs,
        heartbeat: Duration,
        mut on_heartbeat: impl FnMut(usize),
    ) {
        enum Wake {
            Inbound(Inbound),
            Event(SessionEvent),
            StatusDue,
            FloorDue,
            Ring,
            Voice(Arc<str>),
            Heartbeat,
            Shutdown,
        }
        let ManagerInputs {
            inbound,
            commands,
            voice,
            shutdown,
        } = inputs;
        let mut next_heartbeat = Instant::now();
        loop {
            let status_due = self.status_due();
            let floor_due = self.floor.deadline();
            let wake = async { inbound.recv().await.map_or(Wake::Shutdown, Wake::Inbound) }
                .or(async {
                    self.events_rx
                        .recv()
                        .await
                        .map_or(Wake::Shutdown, Wake::Event)
                })
                .or(async {
                    until(status_due).await;
                    Wake::StatusDue
                })
                .or(async {
                    until(floor_due).await;
                    Wake::FloorDue
                })
                .or(async {
                    match commands.recv().await {
                        Ok(Command::Ring) => Wake::Ring,
                        Err(_) => std::future::pending().await,
                    }
                })
                .or(async {
                    match voice.recv().await {
                        Ok(session) => Wake::Voice(session),
                        Err(_) => std::future::pending().await,
                    }
                })
                .or(async {
                    smol::Timer::at(next_heartbeat).await;
                    Wake::Heartbeat
                })
                .or(async {
                    let _ = shutdown.recv().await;
                    Wake::Shutdown
                })
                .await;
            match wake {
                Wake::Inbound(message) => self.on_inbound(message),
                Wake::Event(event) => self.on_session_event(event),
                Wake::StatusDue => self.publish_status(Instant::now()),
                Wake::FloorDue => {
                    if let Some(change) = self.floor.expire(Instant::now()) {
                        tracing::info!("talk-back floor taken back after silence");
                        self.announce_floor(change);
                    }
                }
                Wake::Ring => self.ring(),
                Wake::Voice(session) => self.floor.voice(&session, Instant::now()),
                Wake::Heartbeat => {
                    on_heartbeat(self.table.viewers());
                    next_heartbeat = Instant::now() + heartbeat;
                }
                Wake::Shutdown => break,
            }
        }
        self.stop_all().await;
    }

    fn on_inbound(&mut self, message: Inbound) {
        let Some(session) = self.topics.session_of(&message.topic) else {
            self.table.dropped += 1;
            return;
        };
        let session = session.to_owned();
        let now = Instant::now();
        match self
            .table
            .route(now, &session, &message.payload, message.retain)
        {
            Route::Ignore(why) => tracing::debug!("session {session}: dropped ({why})"),
            Route::SendIceServers => self.outbox.send(
                &session,
                &DeviceMessage::IceServers {
                    ice_servers: self.setup.private_ice_servers.clone(),
                },
            ),
            Route::Reply(reply) => self.outbox.send(&session, &reply),
            Route::Forward(control) => {
                if let Some(tx) = self.controls.get(&session) {
                    let _ = tx.try_send(control);
                }
            }
            Route::Start { sdp, early } => self.start_session(session, &sdp, early, now),
            Route::Talk(on) => {
                let (reply, change) = self.floor.talk(&session, PLAIN_HOLDER, on, now);
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

    /// Tells the sessions concerned, and every viewer, who holds the floor now.
    fn announce_floor(&mut self, change: FloorChange) {
        tracing::info!(
            "talk-back floor: {}",
            change.holder.as_deref().unwrap_or("free")
        );
        for (session, holds) in [(&change.released, false), (&change.taken, true)] {
            if let Some(tx) = session.as_ref().and_then(|s| self.controls.get(s)) {
                let _ = tx.try_send(Control::Floor(holds));
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
    fn announce(&self, event: serde_json::Value) {
        self.outbox.event(&event);
        for session in self.table.live_sessions() {
            self.outbox.send(
                &session,
                &DeviceMessage::Event {
                    event: event.clone(),
                },
            );
        }
    }

    fn start_session(&mut self, id: String, sdp: &str, early: Vec<CandidateInit>, now: Instant) {
        let sockets = match net::bind_sockets(&self.setup.local_ips, self.setup.ports.clone()) {
            Ok(sockets) => sockets,
            Err(e) => {
                tracing::error!("session {id}: {e:#}");
                self.table.start_failed(&id);
                self.outbox.send(
                    &id,
                    &DeviceMessage::Error(ErrorReply::new(
                        ErrorCode::Internal,
                        "offer",
                        "The camera could not open a media socket; see its log.",
                    )),
                );
                return;
            }
        };
        let addrs: Vec<_> = sockets.iter().filter_map(|s| s.local_addr().ok()).collect();
        let accepted = Session::accept(sdp, &addrs, self.setup.limits, self.setup.audio, now);
        let mut session = match accepted {
            Ok((session, answer)) => {
                self.outbox
                    .send(&id, &DeviceMessage::Answer { sdp: answer });
                session
            }
            Err(error) => {
                tracing::info!("session {id}: offer refused: {}", error.message);
                self.table.start_failed(&id);
                self.outbox.send(&id, &DeviceMessage::Error(error));
                return;
            }
        };
        self.table.accepted(&id, session.audio_use().receive);
        driver::send_local_candidates(&self.outbox, &id, &session);
        for candidate in &early {
            if let Err(e) = session.add_remote_candidate(candidate) {
                tracing::debug!("session {id}: early candidate refused: {}", e.message);
            }
        }
        tracing::info!(
            "session {id}: offer accepted ({} early candidates)",
            early.len()
        );
        let (control_tx, control_rx) = async_channel::bounded(64);
        self.controls.insert(id.clone(), control_tx);
        let task = driver::spawn(
            id,
            session,
            sockets,
            self.media.clone(),
            control_rx,
            self.events_tx.clone(),
            self.outbox.clone(),
        );
        task.detach();
    }

    fn on_session_event(&mut self, event: SessionEvent) {
        let changed = match event.kind {
            SessionEventKind::Connected => {
                tracing::info!("session {}: connected", event.session);
                self.table.connected(&event.session)
            }
            SessionEventKind::Ended(why) => {
                tracing::info!("session {}: ended ({why})", event.session);
                self.controls.remove(&event.session);
                if let Some(change) = self.floor.release(&event.session) {
                    self.announce_floor(change);
                }
                self.table.ended(&event.session)
            }
        };
        if changed {
            self.publish_status_soon();
        }
    }

    /// When the next status must go out, if one is owed.
    fn status_due(&self) -> Option<Instant> {
        let viewers = self.table.viewers();
        match self.status_published {
            Some((_, published)) if published == viewers => None,
            Some((at, _)) => Some(at + STATUS_INTERVAL),
            None => Some(Instant::now()),
        }
    }

    fn publish_status_soon(&mut self) {
        let now = Instant::now();
        if self.status_due().is_some_and(|due| due <= now) {
            self.publish_status(now);
        }
    }

    fn publish_status(&mut self, now: Instant) {
        let viewers = self.table.viewers();
        self.outbox.set_status(&self.setup.status(viewers));
        self.status_published = Some((now, viewers));
    }

    /// Ends every call (each sends its `bye`) and waits briefly for them.
    async fn stop_all(&mut self) {
        for control in self.controls.values() {
            let _ = control.try_send(Control::Shutdown);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.controls.is_empty() && Instant::now() < deadline {
            let event = self
                .events_rx
                .recv()
                .or(async {
                    smol::Timer::at(deadline).await;
                    Err(async_channel::RecvError)
                })
                .await;
            match event {
                Ok(event) => {
                    if let SessionEventKind::Ended(_) = event.kind {
                        self.controls.remove(&event.session);
                    }
                }
                Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OFFER: &str = r#"{"v":1,"type":"offer","sdp":"v=0\r\n"}"#;

    fn session(n: usize) -> String {
        format!("session-{n:010}")
    }

    fn payload(text: &str) -> Bytes {
        Bytes::from(text.to_owned())
    }

    fn candidate(n: u32) -> Bytes {
        payload(
            &json!({"v":1,"type":"candidate","candidate":format!("candidate:{n} 1 udp 1 10.0.0.1 {n} typ host")})
                .to_string(),
        )
    }

    fn error_code(route: Route) -> ErrorCode {
        match route {
            Route::Reply(DeviceMessage::Error(e)) => e.code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn early_candidates_ride_along_with_the_offer() {
        let now = Instant::now();
        let mut table = SessionTable::new(4);
        let s = session(1);
        assert_eq!(
            table.route(now, &s, &candidate(1), false),
            Route::Ignore("early candidate stored")
        );
        table.route(now, &s, &candidate(2), false);
        match table.route(now, &s, &payload(OFFER), false) {
            Route::Start { early, .. } => assert_eq!(early.len(), 2),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            table.route(now, &s, &candidate(3), false),
            Route::Forward(Control::Candidate(_))
        ));
    }

    #[test]
    fn early_candidates_are_bounded_in_count_and_time() {
        let now = Instant::now();
        let mut table = SessionTable::new(4);
        let s = session(1);
        for n in 0..40 {
            table.route(now, &s, &candidate(n), false);
        }
        match table.route(now, &s, &payload(OFFER), false) {
            Route::Start { early, .. } => assert_eq!(early.len(), MAX_EARLY_CANDIDATES),
            other => panic!("{other:?}"),
        }
        let s2 = session(2);
        table.route(now, &s2, &candidate(1), false);
        let later = now + EARLY_CANDIDATE_TTL + Duration::from_secs(1);
        match table.route(later, &s2, &payload(OFFER), false) {
            Route::Start { early, .. } => assert!(early.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sessions_without_offer_are_bounded_evicting_the_oldest() {
        let t0 = Instant::now();
        let mut table = SessionTable::new(4);
        for n in 0..=MAX_PENDING {
            table.route(
                t0 + Duration::from_millis(n as u64),
                &session(n),
                &candidate(1),
                false,
            );
        }
        assert_eq!(table.pending.len(), MAX_PENDING);
        assert!(
            !table.pending.contains_key(&session(0)),
            "the oldest was evicted"
        );
        assert!(table.pending.contains_key(&session(MAX_PENDING)));
    }

    #[test]
    fn max_viewers_answers_busy_and_ends_that_session() {
        let now = Instant::now();
        let mut table = SessionTable::new(2);
        for n in 0..2 {
            assert!(matches!(
                table.route(now, &session(n), &payload(OFFER), false),
                Route::Start { .. }
            ));
        }
        assert_eq!(
            error_code(table.route(now, &session(2), &payload(OFFER), false)),
            ErrorCode::Busy
        );
        assert_eq!(
            table.route(now, &session(2), &candidate(1), false),
            Route::Ignore("message for an ended session")
        );
        table.ended(&session(0));
        assert!(matches!(
            table.route(now, &session(3), &payload(OFFER), false),
            Route::Start { .. }
        ));
    }

    #[test]
    fn viewers_counts_connected_sessions_only() {
        let now = Instant::now();
        let mut table = SessionTable::new(4);
        table.route(now, &session(1), &payload(OFFER), false);
        table.route(now, &session(2), &payload(OFFER), false);
        assert_eq!(table.viewers(), 0);
        assert!(table.connected(&session(1)));
        assert!(!table.connected(&session(1)));
        assert_eq!(table.viewers(), 1);
        assert!(
            !table.ended(&session(2)),
            "an unconnected session was never counted"
        );
        assert!(table.ended(&session(1)));
        assert_eq!(table.viewers(), 0);
    }

    #[test]
    fn duplicates_and_retained_messages_are_ignored() {
        let now = Instant::now();
        let mut table = SessionTable::new(4);
        let s = session(1);
        assert_eq!(
            table.route(now, &s, &payload(OFFER), true),
            Route::Ignore("retained session message")
        );
        assert!(matches!(
            table.route(now, &s, &payload(OFFER), false),
            Route::Start { .. }
        ));
        assert_eq!(
            table.route(now, &s, &payload(OFFER), false),
            Route::Ignore("duplicate delivery")
        );
        assert!(matches!(
            table.route(now, &s, &candidate(1), false),
            Route::Forward(_)
        ));
        assert_eq!(
            table.route(now, &s, &candidate(1), false),
            Route::Ignore("duplicate delivery")
        );
        let bye = payload(r#"{"v":1,"type":"bye"}"#);
        assert_eq!(
            table.route(now, &s, &bye, false),
            Route::Forward(Control::Bye)
        );
    }

    #[test]
    fn errors_are_limited_to_one_per_second_per_session_except_first_offers() {
        let now = Instant::now();
        let mut table = SessionTable::new(4);
        let s = session(1);
        table.route(now, &s, &payload(OFFER), false);
        let unknown = payload(r#"{"v":1,"type":"frobnicate"}"#);
        assert_eq!(
            error_code(table.route(now, &s, &unknown, false)),
            ErrorCode::Unsupported
        );
        assert_eq!(
            table.route(now, &s, &unknown, false),
            Route::Ignore("error rate limit")
        );
        let later = now + Duration::from_secs(1);
        assert_eq!(
            error_code(table.route(later, &s, &unknown, false)),
            ErrorCode::Unsupported
        );
        let fresh = session(2);
        assert_eq!(
            error_code(table.route(now, &fresh, &unknown, false)),
            ErrorCode::Unsupported
        );
        let bad_offer = payload(r#"{"v":1,"type":"offer"}"#);
        assert_eq!(
            error_code(table.route(now, &fresh, &bad_offer, false)),
            ErrorCode::BadRequest
        );
        assert_eq!(
            table.route(now, &fresh, &payload(OFFER), false),
            Route::Ignore("message for an ended session")
        );
    }

    #[test]
    fn talk_is_routed_only_for_calls_that_send_audio() {
        let now = Instant::now();
        let mut table = SessionTable::new(4);
        let talk = payload(r#"{"v":1,"type":"talk","on":true}"#);
        table.route(now, &session(1), &payload(OFFER), false);
        table.accepted(&session(1), true);
        assert_eq!(
            table.route(now, &session(1), &talk, false),
            Route::Talk(true)
        );
        let off = payload(r#"{"v":1,"type":"talk","on":false}"#);
        assert_eq!(
            table.route(now, &session(1), &off, false),
            Route::Talk(false)
        );
        assert_eq!(
            table.route(now, &session(1), &talk, false),
            Route::Talk(true),
            "talk is acted on every time it arrives"
        );
        table.route(now, &session(2), &payload(OFFER), false);
        table.accepted(&session(2), false);
        assert_eq!(
            error_code(table.route(now, &session(2), &talk, false)),
            ErrorCode::Unsupported
        );
    }

    #[test]
    fn garbage_is_dropped_and_talk_is_unsupported_without_audio() {
        let now = Instant::now();
        let mut table = SessionTable::new(4);
        assert_eq!(
            table.route(now, &session(1), &payload("nope"), false),
            Route::Ignore("not a v1 JSON object")
        );
        assert_eq!(table.pending.len(), 0, "garbage does not create sessions");
        table.route(now, &session(1), &payload(OFFER), false);
        let talk = payload(r#"{"v":1,"type":"talk","on":true}"#);
        assert_eq!(
            error_code(table.route(now, &session(1), &talk, false)),
            ErrorCode::Unsupported
        );
        assert_eq!(table.dropped, 1);
    }
}
