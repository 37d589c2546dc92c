//! Sealed mode's session rules (docs/protocol.md §8), pure: which inbound
//! payload opens and may reach the session table, and sealing what goes
//! out. A session binds to the key of its first message that opens; `seq`
//! rises in each direction; a first offer carries the current or previous
//! status nonce and comes once per session id. Time comes in as `now`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::signal::keyring::{Keyring, PairedViewer};
use crate::signal::protocol::{self, DeviceMessage, DropReason, ErrorCode, ErrorReply};
use crate::signal::seal::{self, Direction};
use crate::signal::table::Dropped;

/// The status nonce is replaced at least this often (docs/protocol.md §3).
pub(crate) const NONCE_LIFETIME: Duration = Duration::from_secs(3600);
/// Bytes of a status nonce.
const NONCE_BYTES: usize = 16;
/// Sessions whose key, `seq` and first offer are remembered: far more than
/// live and connecting calls (`max_viewers` + 4) and pending ones (64), so
/// that a replay onto a recently ended session still meets its `seq`.
const MAX_BINDINGS: usize = 512;
/// First offers remembered per nonce; at this many the nonce is replaced
/// early, which bounds the memory a paired viewer can make the device use.
const MAX_FIRST_OFFERS: usize = 4096;
/// Sessions remembered as already told `unauthorized` (at most once each).
const MAX_TOLD: usize = 256;
/// `unauthorized` replies per second at most, whatever the session ids: an
/// unpaired sender cannot make the device publish faster than this.
const UNAUTHORIZED_PER_SEC: f64 = 5.0;
/// Burst of `unauthorized` replies allowed at once.
const UNAUTHORIZED_BURST: f64 = 10.0;

/// What one payload on `P/D/in/S` comes to.
#[derive(Debug, PartialEq)]
pub(crate) enum Opened {
    /// The plaintext body, for the session table.
    Body(Vec<u8>),
    /// Dropped and counted, no reply.
    Drop(Dropped),
    /// Dropped and counted, answered with an unsealed `error unauthorized`.
    Unauthorized(Dropped),
    /// Answered (sealed) with this error: a malformed sealed body, or a first
    /// offer with an old nonce or on a used session id (`stale`), which
    /// ends the session.
    Refuse(ErrorReply),
}

struct Binding {
    viewer: Arc<PairedViewer>,
    last_in: u64,
    sent: u64,
    offered: bool,
    live: bool,
}

/// A token bucket.
struct Bucket {
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = self
            .at
            .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        self.tokens = (self.tokens + elapsed * UNAUTHORIZED_PER_SEC).min(UNAUTHORIZED_BURST);
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The status nonce, with the one before it and the session ids whose
/// first offer came under each.
struct Nonces {
    current: String,
    previous: Option<String>,
    issued: Instant,
    offered: [HashSet<String>; 2],
}

impl Nonces {
    fn fresh(now: Instant) -> (String, Instant) {
        let mut bytes = [0; NONCE_BYTES];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system's random number generator works");
        (URL_SAFE_NO_PAD.encode(bytes), now)
    }

    fn rotate(&mut self, now: Instant) {
        let (nonce, issued) = Self::fresh(now);
        self.previous = Some(std::mem::replace(&mut self.current, nonce));
        self.issued = issued;
        let [current, previous] = &mut self.offered;
        *previous = std::mem::take(current);
    }

    fn is_valid(&self, nonce: &str) -> bool {
        nonce == self.current || self.previous.as_deref() == Some(nonce)
    }

    fn seen(&self, session: &str) -> bool {
        self.offered.iter().any(|set| set.contains(session))
    }
}

/// The state of a sealed device's sessions.
pub(crate) struct Sealing {
    keyring: Keyring,
    nonces: Nonces,
    bindings: HashMap<String, Binding>,
    order: VecDeque<String>,
    told: VecDeque<String>,
    unauthorized: Bucket,
}

impl Sealing {
    /// Sealing for the viewers of `keyring`, with a fresh status nonce.
    pub(crate) fn new(keyring: Keyring, now: Instant) -> Self {
        let (current, issued) = Nonces::fresh(now);
        Sealing {
            keyring,
            nonces: Nonces {
                current,
                previous: None,
                issued,
                offered: Default::default(),
            },
            bindings: HashMap::new(),
            order: VecDeque::new(),
            told: VecDeque::new(),
            unauthorized: Bucket {
                tokens: UNAUTHORIZED_BURST,
                at: None,
            },
        }
    }

    /// The status nonce a first offer must carry.
    pub(crate) fn nonce(&self) -> &str {
        &self.nonces.current
    }

    /// When the nonce is due to be replaced.
    pub(crate) fn nonce_due(&self) -> Instant {
        self.nonces.issued + NONCE_LIFETIME
    }

    /// Replaces the status nonce (the old one stays valid until the next).
    pub(crate) fn rotate_nonce(&mut self, now: Instant) {
        self.nonces.rotate(now);
    }

    /// Opens one payload published on `topic` for `session`.
    pub(crate) fn open(
        &mut self,
        now: Instant,
        topic: &str,
        session: &str,
        payload: &[u8],
    ) -> Opened {
        if payload.len() > protocol::MAX_PAYLOAD {
            return Opened::Drop(Dropped::Unreadable(DropReason::TooLarge));
        }
        let object = match serde_json::from_slice::<serde_json::Map<String, Value>>(payload) {
            Ok(object) if object.get("v").is_some_and(Value::is_number) => object,
            _ => return self.unauthorized(now, session, Dropped::Unsealed),
        };
        let Some(fields) = seal::sealed_fields(&object) else {
            return self.unauthorized(now, session, Dropped::Unsealed);
        };
        let bound = self.bindings.get(session).map(|b| b.viewer.key.kid());
        if bound.is_some_and(|kid| kid != fields.kid) {
            return Opened::Drop(Dropped::OtherViewersKey);
        }
        let Some(viewer) = self.keyring.get(fields.kid).cloned() else {
            return self.unauthorized(now, session, Dropped::UnknownKey);
        };
        let Some(plaintext) = viewer
            .key
            .open(Direction::ViewerToDevice, topic, fields.seal)
        else {
            return if bound.is_some() {
                Opened::Drop(Dropped::BadSeal)
            } else {
                self.unauthorized(now, session, Dropped::BadSeal)
            };
        };
        let body: serde_json::Map<String, Value> = match serde_json::from_slice(&plaintext) {
            Ok(body) => body,
            Err(_) => return Opened::Drop(Dropped::BadSeal),
        };
        self.bind(session, viewer);
        let Some(seq) = body.get("seq").and_then(Value::as_u64).filter(|&s| s > 0) else {
            return Opened::Refuse(ErrorReply::new(
                ErrorCode::BadRequest,
                body.get("type").and_then(Value::as_str).unwrap_or_default(),
                "A sealed message needs \"seq\": 1 for the first, one more for each next.",
            ));
        };
        let binding = self.bindings.get_mut(session).expect("bound above");
        if seq <= binding.last_in {
            return Opened::Drop(Dropped::Replayed);
        }
        binding.last_in = seq;
        let first_offer =
            body.get("type").and_then(Value::as_str) == Some("offer") && !binding.offered;
        if first_offer {
            let nonce = body.get("nonce").and_then(Value::as_str);
            if !nonce.is_some_and(|n| self.nonces.is_valid(n)) || self.nonces.seen(session) {
                return Opened::Refuse(ErrorReply::new(
                    ErrorCode::Stale,
                    "offer",
                    "This offer is stale: read the camera's status again and call on a new session id.",
                ));
            }
            binding.offered = true;
            if self.nonces.offered[0].len() >= MAX_FIRST_OFFERS {
                self.nonces.rotate(now);
            }
            self.nonces.offered[0].insert(session.to_owned());
        }
        Opened::Body(plaintext)
    }

    /// `message` for `session`, sealed for its viewer with the next `seq`;
    /// `None` for a session no viewer is bound to.
    pub(crate) fn seal(
        &mut self,
        topic: &str,
        session: &str,
        message: &DeviceMessage,
    ) -> Option<Vec<u8>> {
        let binding = self.bindings.get_mut(session)?;
        binding.sent += 1;
        let body = protocol::encode_sealed_body(message, binding.sent);
        Some(
            binding
                .viewer
                .key
                .seal(Direction::DeviceToViewer, topic, &body),
        )
    }

    /// The name of the viewer `session` is bound to.
    pub(crate) fn viewer_name(&self, session: &str) -> Option<&str> {
        self.bindings.get(session).map(|b| b.viewer.name.as_str())
    }

    /// Notes that `session` has a call running: it is kept until it ends.
    pub(crate) fn started(&mut self, session: &str) {
        if let Some(binding) = self.bindings.get_mut(session) {
            binding.live = true;
        }
    }

    /// Notes that `session`'s call ended; its `seq` is still remembered.
    pub(crate) fn ended(&mut self, session: &str) {
        if let Some(binding) = self.bindings.get_mut(session) {
            binding.live = false;
        }
    }

    /// Replaces the paired viewers; returns the live sessions of viewers
    /// who are no longer paired (or whose key changed), which must end.
    /// Their bindings stay until then, so the `bye` reaches them sealed.
    pub(crate) fn set_keyring(&mut self, keyring: Keyring) -> Vec<String> {
        let still_paired = |viewer: &PairedViewer| {
            keyring
                .get(viewer.key.kid())
                .is_some_and(|v| v.name == viewer.name)
        };
        let mut revoked = Vec::new();
        self.bindings.retain(|session, binding| {
            if still_paired(&binding.viewer) {
                true
            } else if binding.live {
                revoked.push(session.clone());
                true
            } else {
                false
            }
        });
        self.order
            .retain(|session| self.bindings.contains_key(session));
        self.keyring = keyring;
        revoked.sort();
        revoked
    }

    fn bind(&mut self, session: &str, viewer: Arc<PairedViewer>) {
        if self.bindings.contains_key(session) {
            return;
        }
        if self.bindings.len() >= MAX_BINDINGS {
            let oldest = self
                .order
                .iter()
                .position(|s| !self.bindings[s].live)
                .unwrap_or(0);
            if let Some(evicted) = self.order.remove(oldest) {
                self.bindings.remove(&evicted);
            }
        }
        self.order.push_back(session.to_owned());
        self.bindings.insert(
            session.to_owned(),
            Binding {
                viewer,
                last_in: 0,
                sent: 0,
                offered: false,
                live: false,
            },
        );
    }

    /// `Unauthorized` the first time a session is refused (and within the
    /// rate), a silent drop after.
    fn unauthorized(&mut self, now: Instant, session: &str, reason: Dropped) -> Opened {
        if self.bindings.contains_key(session) || self.told.iter().any(|s| s == session) {
            return Opened::Drop(reason);
        }
        if !self.unauthorized.take(now) {
            return Opened::Drop(reason);
        }
        if self.told.len() >= MAX_TOLD {
            self.told.pop_front();
        }
        self.told.push_back(session.to_owned());
        Opened::Unauthorized(reason)
    }
}

/// The unsealed error a refused sender gets.
pub(crate) fn unauthorized_error() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::Unauthorized,
        "",
        "This camera only takes calls from paired viewers: open the pairing link from \
         `peercam pair`, or pair again if this viewer was revoked.",
    )
}

#[cfg(test)]
mod tests;
