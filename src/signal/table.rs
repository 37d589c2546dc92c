//! The session table: what one inbound payload on `P/D/in/S` leads to, and
//! every bound of docs/protocol.md "Bad input and bounds", so unauthenticated
//! senders cannot grow the device's memory or crowd out real viewers.
//! Pure: time is passed in, nothing is sent from here.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::rtc::driver::Control;
use crate::rtc::session::{EndReason, MAX_CANDIDATE_LINE};
use crate::signal::protocol::{
    self, CandidateInit, DeviceMessage, DropReason, ErrorCode, ErrorReply, Rejection, ViewerMessage,
};

/// Sessions without an offer kept at once; a new one evicts the oldest.
pub(crate) const MAX_PENDING: usize = 64;
/// Early candidates kept per session without an offer.
pub(crate) const MAX_EARLY_CANDIDATES: usize = 32;
/// Bytes of early candidates held across all sessions without an offer:
/// the count bounds above allow 64 × 32 lines of up to 1 KiB, which is far
/// more than real viewers ever need at once.
pub(crate) const MAX_EARLY_BYTES: usize = 256 * 1024;
/// How long early candidates (and a session that has only them) are kept.
pub(crate) const EARLY_CANDIDATE_TTL: Duration = Duration::from_secs(10);
/// Sessions between offer and connect, beyond `max_viewers` (docs/protocol.md).
pub(crate) const EXTRA_CONNECTING: usize = 4;
/// Ended session ids remembered, so late messages for them are dropped.
const MAX_ENDED: usize = 256;
/// First offers accepted per second, on average: each binds sockets and
/// starts a WebRTC session, which a flood must not turn into a busy device.
const FIRST_OFFERS_PER_SEC: f64 = 10.0;
/// First offers accepted at once before the rate applies (a family opening
/// the doorbell on every phone at once stays well below).
const FIRST_OFFER_BURST: f64 = 20.0;
/// At most one error per session this often (docs/protocol.md).
const ERROR_INTERVAL: Duration = Duration::from_secs(1);

/// Why a payload was dropped without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// Not a v1 JSON object (see the reason).
    Unreadable(DropReason),
    /// Session messages never come retained.
    Retained,
    /// For a session that already ended.
    EndedSession,
    /// MQTT delivered the same payload twice.
    Duplicate,
    /// The session's one error per second was already sent.
    ErrorRateLimit,
    /// The session holds its maximum of early candidates.
    TooManyEarlyCandidates,
    /// An early candidate line over [`MAX_CANDIDATE_LINE`] bytes.
    CandidateTooLong,
    /// Early candidates of all sessions hold [`MAX_EARLY_BYTES`].
    EarlyBytesFull,
    /// `bye` for a session that never offered: nothing to end.
    ByeBeforeOffer,
    /// Not `P/D/in/S` with a valid session id.
    BadTopic,
    /// The live session's control queue is full.
    SessionQueueFull,
    /// More candidates in one ICE generation than a session takes.
    TooManyCandidates,
    /// Sealed mode: not a sealed payload.
    Unsealed,
    /// Sealed mode: a key id no paired viewer has (unknown or revoked).
    UnknownKey,
    /// Sealed mode: sealed with another key than the session is bound to.
    OtherViewersKey,
    /// Sealed mode: the seal does not open (forged, altered, or moved
    /// from another topic).
    BadSeal,
    /// Sealed mode: a `seq` not above the last one accepted (a replay or
    /// an MQTT duplicate).
    Replayed,
}

/// What to do with one inbound payload.
#[derive(Debug, PartialEq)]
pub(crate) enum Route {
    /// Drop it (and count it).
    Drop(Dropped),
    /// An early candidate was kept for the session's offer.
    Hold,
    /// Answer on the session's `out/S`.
    Reply(DeviceMessage),
    /// Start a session from this first offer, applying the early candidates.
    Start {
        /// The SDP offer.
        sdp: String,
        /// Candidates that arrived before the offer.
        early: Vec<CandidateInit>,
        /// A connecting session that made room for this one and must end.
        evicted: Option<String>,
    },
    /// Hand this to the live session.
    Forward(Control),
    /// The session asks for (`true`) or releases the talk-back floor.
    Talk(bool),
    /// Answer with the ICE servers (credentials included).
    SendIceServers,
}

/// What the table says when a session connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A new viewer: the count changed.
    Counted,
    /// Already counted (a renegotiation connected again), or unknown.
    Unchanged,
    /// The device already has `max_viewers` viewers: end this session.
    Full,
}

/// Enforces "at most one error per session per second".
#[derive(Debug, Default, Clone)]
struct ErrorLimiter {
    last: Option<Instant>,
}

impl ErrorLimiter {
    /// Whether an error may be sent now; if so, records it. Errors answering
    /// a first offer pass with `always`.
    fn allow(&mut self, now: Instant, always: bool) -> bool {
        let free = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= ERROR_INTERVAL);
        if free || always {
            self.last = Some(now);
        }
        free || always
    }

    /// Whether an error went out less than `ERROR_INTERVAL` ago, so the
    /// session's state must be kept to go on limiting it.
    fn limiting(&self, now: Instant) -> bool {
        self.last
            .is_some_and(|last| now.saturating_duration_since(last) < ERROR_INTERVAL)
    }
}

/// A session that has not offered yet.
struct Pending {
    created: Instant,
    early: Vec<(Instant, CandidateInit)>,
    errors: ErrorLimiter,
}

/// A session whose offer was accepted.
struct Live {
    offered: Instant,
    connected: bool,
    /// A datagram from its viewer arrived: it is really calling.
    heard: bool,
    /// The call was agreed with audio from the viewer: it may talk back.
    can_talk: bool,
    last_payload: Option<Bytes>,
    errors: ErrorLimiter,
}

/// A token bucket for first offers.
#[derive(Debug, Clone)]
struct OfferRate {
    tokens: f64,
    updated: Option<Instant>,
}

impl OfferRate {
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = self
            .updated
            .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        self.updated = Some(now);
        self.tokens = (self.tokens + elapsed * FIRST_OFFERS_PER_SEC).min(FIRST_OFFER_BURST);
        let allowed = self.tokens >= 1.0;
        if allowed {
            self.tokens -= 1.0;
        }
        allowed
    }
}

/// The routing state of every session, with the protocol's bounds.
pub(crate) struct SessionTable {
    max_viewers: usize,
    pending: HashMap<String, Pending>,
    early_bytes: usize,
    live: HashMap<String, Live>,
    ended: VecDeque<String>,
    ended_set: HashSet<String>,
    offer_rate: OfferRate,
    /// Payloads dropped, for the status line.
    dropped: u64,
    /// Errors not sent because of the per-session rate limit.
    errors_suppressed: u64,
}

impl SessionTable {
    /// An empty table admitting `max_viewers` connected viewers.
    pub(crate) fn new(max_viewers: usize) -> Self {
        SessionTable {
            max_viewers,
            pending: HashMap::new(),
            early_bytes: 0,
            live: HashMap::new(),
            ended: VecDeque::new(),
            ended_set: HashSet::new(),
            offer_rate: OfferRate {
                tokens: FIRST_OFFER_BURST,
                updated: None,
            },
            dropped: 0,
            errors_suppressed: 0,
        }
    }

    /// Decides what one payload on `P/D/in/<session>` leads to.
    pub(crate) fn route(
        &mut self,
        now: Instant,
        session: &str,
        payload: &Bytes,
        retained: bool,
    ) -> Route {
        self.expire(now);
        let route = self.route_inner(now, session, payload, retained);
        if let Route::Drop(reason) = route {
            self.count_drop(reason);
        }
        route
    }

    /// Counts a payload dropped outside the table (bad topic, full queue).
    pub(crate) fn count_drop(&mut self, reason: Dropped) {
        if reason == Dropped::ErrorRateLimit {
            self.errors_suppressed += 1;
        } else {
            self.dropped += 1;
        }
    }

    fn route_inner(
        &mut self,
        now: Instant,
        session: &str,
        payload: &Bytes,
        retained: bool,
    ) -> Route {
        if retained {
            return Route::Drop(Dropped::Retained);
        }
        if self.ended_set.contains(session) {
            return Route::Drop(Dropped::EndedSession);
        }
        if self.live.contains_key(session) {
            return self.route_live(now, session, payload);
        }
        let message = match protocol::parse_viewer_message(payload) {
            Err(Rejection::Drop(reason)) => return Route::Drop(Dropped::Unreadable(reason)),
            Err(Rejection::Error(error)) => {
                let first_offer = error.re == "offer";
                let route = self.pending_error(now, session, error);
                if first_offer {
                    self.end(session);
                }
                return route;
            }
            Ok(message) => message,
        };
        match message {
            ViewerMessage::Candidate(candidate) => self.hold_early(now, session, candidate),
            ViewerMessage::IceServers => {
                self.pending_entry(now, session);
                Route::SendIceServers
            }
            ViewerMessage::Talk { .. } => self.pending_error(
                now,
                session,
                ErrorReply::new(
                    ErrorCode::BadRequest,
                    "talk",
                    "There is no call on this session yet: offer first.",
                ),
            ),
            ViewerMessage::Bye { .. } => {
                self.remove_pending(session);
                Route::Drop(Dropped::ByeBeforeOffer)
            }
            ViewerMessage::Offer { sdp } => self.first_offer(now, session, payload, sdp),
        }
    }

    fn route_live(&mut self, now: Instant, session: &str, payload: &Bytes) -> Route {
        let Some(live) = self.live.get_mut(session) else {
            return Route::Drop(Dropped::EndedSession);
        };
        if live.last_payload.as_ref() == Some(payload) {
            return Route::Drop(Dropped::Duplicate);
        }
        let message = match protocol::parse_viewer_message(payload) {
            Ok(message) => message,
            Err(Rejection::Drop(reason)) => return Route::Drop(Dropped::Unreadable(reason)),
            Err(Rejection::Error(error)) => {
                return if live.errors.allow(now, false) {
                    Route::Reply(DeviceMessage::Error(error))
                } else {
                    Route::Drop(Dropped::ErrorRateLimit)
                };
            }
        };
        if matches!(
            message,
            ViewerMessage::Offer { .. } | ViewerMessage::Candidate(_)
        ) {
            live.last_payload = Some(payload.clone());
        }
        match message {
            ViewerMessage::Offer { sdp } => Route::Forward(Control::Offer(sdp)),
            ViewerMessage::Candidate(c) => Route::Forward(Control::Candidate {
                line: c.candidate,
                ufrag: c.username_fragment,
            }),
            ViewerMessage::Bye { .. } => Route::Forward(Control::End(EndReason::ViewerBye)),
            ViewerMessage::IceServers => Route::SendIceServers,
            ViewerMessage::Talk { on } if live.can_talk => Route::Talk(on),
            ViewerMessage::Talk { .. } => {
                if live.errors.allow(now, false) {
                    Route::Reply(no_talk_back())
                } else {
                    Route::Drop(Dropped::ErrorRateLimit)
                }
            }
        }
    }

    /// An early candidate: kept within the count, length and byte bounds.
    fn hold_early(&mut self, now: Instant, session: &str, candidate: CandidateInit) -> Route {
        let size = candidate.candidate.len();
        if size > MAX_CANDIDATE_LINE {
            return Route::Drop(Dropped::CandidateTooLong);
        }
        if self.early_bytes + size > MAX_EARLY_BYTES {
            return Route::Drop(Dropped::EarlyBytesFull);
        }
        let pending = self.pending_entry(now, session);
        if pending.early.len() >= MAX_EARLY_CANDIDATES {
            return Route::Drop(Dropped::TooManyEarlyCandidates);
        }
        pending.early.push((now, candidate));
        self.early_bytes += size;
        Route::Hold
    }

    /// A first offer: admitted within the rate and the connecting bound.
    fn first_offer(&mut self, now: Instant, session: &str, payload: &Bytes, sdp: String) -> Route {
        let connected = self.viewers();
        let busy = |message: String| {
            Route::Reply(DeviceMessage::Error(ErrorReply::new(
                ErrorCode::Busy,
                "offer",
                message,
            )))
        };
        let refusal = if connected >= self.max_viewers {
            Some(format!(
                "This camera already has its maximum of {} viewers; try again later.",
                self.max_viewers
            ))
        } else if !self.offer_rate.take(now) {
            Some("Too many calls are starting at once; try again in a second.".to_owned())
        } else {
            None
        };
        if let Some(message) = refusal {
            self.end(session);
            return busy(message);
        }
        let connecting = self.live.len() - connected;
        let mut evicted = None;
        if connecting >= self.max_viewers + EXTRA_CONNECTING {
            // Room is made only at the expense of a call whose viewer never
            // sent it a packet: a real viewer that is connecting is never
            // pushed out by offers nobody follows up.
            let idle = self
                .live
                .iter()
                .filter(|(_, l)| !l.connected && !l.heard)
                .min_by_key(|(_, l)| l.offered)
                .map(|(id, _)| id.clone());
            match idle {
                Some(id) => {
                    self.end(&id);
                    evicted = Some(id);
                }
                None => {
                    self.end(session);
                    return busy(
                        "Too many calls are connecting to this camera; try again in a few seconds."
                            .to_owned(),
                    );
                }
            }
        }
        let early = self
            .remove_pending(session)
            .map(|p| p.early.into_iter().map(|(_, c)| c).collect())
            .unwrap_or_default();
        self.live.insert(
            session.to_owned(),
            Live {
                offered: now,
                connected: false,
                heard: false,
                can_talk: false,
                last_payload: Some(payload.clone()),
                errors: ErrorLimiter::default(),
            },
        );
        Route::Start {
            sdp,
            early,
            evicted,
        }
    }

    /// An error for a session without a call, within its rate limit
    /// (errors answering a first offer always go out).
    fn pending_error(&mut self, now: Instant, session: &str, error: ErrorReply) -> Route {
        let always = error.re == "offer";
        let pending = self.pending_entry(now, session);
        if pending.errors.allow(now, always) {
            Route::Reply(DeviceMessage::Error(error))
        } else {
            Route::Drop(Dropped::ErrorRateLimit)
        }
    }

    /// Whether session `session` may be sent an error now (one per second).
    pub(crate) fn allow_error(&mut self, now: Instant, session: &str) -> bool {
        let allowed = self
            .live
            .get_mut(session)
            .is_some_and(|live| live.errors.allow(now, false));
        if !allowed {
            self.errors_suppressed += 1;
        }
        allowed
    }

    /// The session's call was agreed; `can_talk` if its viewer sends audio.
    pub(crate) fn accepted(&mut self, session: &str, can_talk: bool) {
        if let Some(live) = self.live.get_mut(session) {
            live.can_talk = can_talk;
        }
    }

    /// The session's viewer sent its first datagram.
    pub(crate) fn heard(&mut self, session: &str) {
        if let Some(live) = self.live.get_mut(session) {
            live.heard = true;
        }
    }

    /// The session's offer could not be turned into a call: it is over.
    pub(crate) fn start_failed(&mut self, session: &str) {
        self.end(session);
    }

    /// The session connected: counted, already counted, or over `max_viewers`.
    pub(crate) fn connected(&mut self, session: &str) -> Admission {
        let viewers = self.viewers();
        match self.live.get_mut(session) {
            Some(live) if !live.connected && viewers >= self.max_viewers => Admission::Full,
            Some(live) if !live.connected => {
                live.connected = true;
                Admission::Counted
            }
            _ => Admission::Unchanged,
        }
    }

    /// The session ended; returns whether the viewer count changed.
    pub(crate) fn ended(&mut self, session: &str) -> bool {
        let was_connected = self.live.get(session).is_some_and(|l| l.connected);
        self.end(session);
        was_connected
    }

    /// Viewers with a connected call.
    pub(crate) fn viewers(&self) -> usize {
        self.live.values().filter(|l| l.connected).count()
    }

    /// Ids of every session with an accepted offer.
    pub(crate) fn live_sessions(&self) -> impl Iterator<Item = &str> {
        self.live.keys().map(String::as_str)
    }

    /// Payloads dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Errors held back by the rate limit so far.
    pub(crate) fn errors_suppressed(&self) -> u64 {
        self.errors_suppressed
    }

    fn end(&mut self, session: &str) {
        self.remove_pending(session);
        self.live.remove(session);
        if self.ended_set.contains(session) {
            return;
        }
        if self.ended.len() >= MAX_ENDED
            && let Some(oldest) = self.ended.pop_front()
        {
            self.ended_set.remove(&oldest);
        }
        self.ended.push_back(session.to_owned());
        self.ended_set.insert(session.to_owned());
    }

    fn remove_pending(&mut self, session: &str) -> Option<Pending> {
        let pending = self.pending.remove(session)?;
        self.early_bytes -= early_size(&pending.early);
        Some(pending)
    }

    fn pending_entry(&mut self, now: Instant, session: &str) -> &mut Pending {
        if !self.pending.contains_key(session) && self.pending.len() >= MAX_PENDING {
            let oldest = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.created)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                self.remove_pending(&oldest);
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
        let fresh = |at: Instant| now.saturating_duration_since(at) < EARLY_CANDIDATE_TTL;
        for pending in self.pending.values_mut() {
            let before = early_size(&pending.early);
            pending.early.retain(|(at, _)| fresh(*at));
            self.early_bytes -= before - early_size(&pending.early);
        }
        self.pending
            .retain(|_, p| fresh(p.created) || !p.early.is_empty() || p.errors.limiting(now));
    }
}

/// Bytes of candidate lines held in `early`.
fn early_size(early: &[(Instant, CandidateInit)]) -> usize {
    early.iter().map(|(_, c)| c.candidate.len()).sum()
}

fn no_talk_back() -> DeviceMessage {
    DeviceMessage::Error(ErrorReply::new(
        ErrorCode::Unsupported,
        "talk",
        "This call sends no audio to the camera: it has no talk-back, or the offer's audio \
         is not sendrecv/sendonly.",
    ))
}

#[cfg(test)]
mod tests;
