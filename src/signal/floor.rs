//! The talk-back floor of docs/protocol.md: one holder at a time, released on
//! `talk off`, `bye`, disconnect, or after a stretch of silence from the
//! holder. Pure state: the session manager feeds it requests, session ends,
//! voice activity and the time, and announces every change it reports.

use std::time::{Duration, Instant};

/// How long a holder may stay silent before the floor is taken back.
pub(crate) const SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// The reply to one `talk` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TalkReply {
    /// Whether the asking session holds the floor now.
    pub(crate) granted: bool,
    /// Label of the holder after the request, if any.
    pub(crate) holder: Option<String>,
}

/// The floor changed hands; every viewer is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FloorChange {
    /// The session that lost the floor, if one held it.
    pub(crate) released: Option<String>,
    /// The session that took it, if one did.
    pub(crate) taken: Option<String>,
    /// Label of the new holder (`None`: nobody talks).
    pub(crate) holder: Option<String>,
}

#[derive(Debug, Clone)]
struct Holder {
    session: String,
    label: String,
    last_voice: Instant,
}

/// Who may talk back.
#[derive(Debug, Clone)]
pub(crate) struct Floor {
    holder: Option<Holder>,
    silence_limit: Duration,
}

impl Default for Floor {
    fn default() -> Self {
        Floor::new(SILENCE_LIMIT)
    }
}

impl Floor {
    /// A free floor that is taken back after `silence_limit` without voice.
    pub(crate) fn new(silence_limit: Duration) -> Self {
        Floor {
            holder: None,
            silence_limit,
        }
    }

    /// The session holding the floor.
    pub(crate) fn holder_session(&self) -> Option<&str> {
        self.holder.as_ref().map(|h| h.session.as_str())
    }

    /// Session `session` (shown as `label`) sent `talk` with `on`.
    pub(crate) fn talk(
        &mut self,
        session: &str,
        label: &str,
        on: bool,
        now: Instant,
    ) -> (TalkReply, Option<FloorChange>) {
        let change = match (&self.holder, on) {
            (None, true) => {
                self.holder = Some(Holder {
                    session: session.to_owned(),
                    label: label.to_owned(),
                    last_voice: now,
                });
                Some(FloorChange {
                    released: None,
                    taken: Some(session.to_owned()),
                    holder: Some(label.to_owned()),
                })
            }
            (Some(holder), true) if holder.session == session => None,
            (Some(_), false) => self.release(session),
            _ => None,
        };
        let reply = TalkReply {
            granted: self.holder_session() == Some(session),
            holder: self.holder.as_ref().map(|h| h.label.clone()),
        };
        (reply, change)
    }

    /// Session `session` ended or let go: frees the floor if it held it.
    pub(crate) fn release(&mut self, session: &str) -> Option<FloorChange> {
        if self.holder_session() != Some(session) {
            return None;
        }
        self.holder = None;
        Some(FloorChange {
            released: Some(session.to_owned()),
            taken: None,
            holder: None,
        })
    }

    /// The holder's voice was heard at `now`.
    pub(crate) fn voice(&mut self, session: &str, now: Instant) {
        if let Some(holder) = self.holder.as_mut().filter(|h| h.session == session) {
            holder.last_voice = holder.last_voice.max(now);
        }
    }

    /// When the floor is taken back unless the holder speaks.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.holder
            .as_ref()
            .map(|h| h.last_voice + self.silence_limit)
    }

    /// Takes the floor back from a holder silent for too long.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<FloorChange> {
        let session = self
            .holder
            .as_ref()
            .filter(|h| now >= h.last_voice + self.silence_limit)?
            .session
            .clone();
        self.release(&session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(granted: bool, holder: Option<&str>) -> TalkReply {
        TalkReply {
            granted,
            holder: holder.map(str::to_owned),
        }
    }

    #[test]
    fn one_holder_at_a_time_and_others_learn_who() {
        let now = Instant::now();
        let mut floor = Floor::default();
        let (granted, change) = floor.talk("a", "alice", true, now);
        assert_eq!(granted, reply(true, Some("alice")));
        assert_eq!(change.unwrap().taken.as_deref(), Some("a"));
        let (refused, change) = floor.talk("b", "bob", true, now);
        assert_eq!(refused, reply(false, Some("alice")));
        assert_eq!(change, None, "a refusal changes nothing");
        let (again, change) = floor.talk("a", "alice", true, now);
        assert_eq!((again, change), (reply(true, Some("alice")), None));
        let (off, change) = floor.talk("b", "bob", false, now);
        assert_eq!(
            off,
            reply(false, Some("alice")),
            "only the holder can release"
        );
        assert_eq!(change, None);
    }

    #[test]
    fn talk_off_and_session_end_release_it() {
        let now = Instant::now();
        let mut floor = Floor::default();
        floor.talk("a", "viewer", true, now);
        let (off, change) = floor.talk("a", "viewer", false, now);
        assert_eq!(off, reply(false, None));
        assert_eq!(
            change,
            Some(FloorChange {
                released: Some("a".into()),
                taken: None,
                holder: None
            })
        );
        floor.talk("b", "viewer", true, now);
        assert_eq!(floor.release("a"), None, "a no longer holds it");
        assert!(floor.release("b").is_some());
        assert_eq!(floor.holder_session(), None);
        let (granted, _) = floor.talk("a", "viewer", true, now);
        assert!(granted.granted);
    }

    #[test]
    fn silence_takes_it_back_and_voice_keeps_it() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut floor = Floor::default();
        assert_eq!(floor.deadline(), None);
        floor.talk("a", "viewer", true, t0);
        assert_eq!(floor.deadline(), Some(t0 + SILENCE_LIMIT));
        floor.voice("a", t0 + s(50));
        floor.voice("b", t0 + s(100));
        assert_eq!(floor.expire(t0 + s(60)), None, "spoke at 50 s");
        assert_eq!(floor.deadline(), Some(t0 + s(110)));
        let change = floor.expire(t0 + s(110)).unwrap();
        assert_eq!(change.released.as_deref(), Some("a"));
        assert_eq!(floor.deadline(), None);
    }
}
