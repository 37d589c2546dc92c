//! Where every message the device publishes leaves: one `out/S` topic per
//! session, the event topic and the retained status, through whatever
//! [`Publish`]es them (the MQTT link, or a recorder in tests). In sealed
//! mode it holds the [`Sealing`] state, so nothing leaves for a session
//! unsealed except the one `unauthorized` hint.

use std::sync::Arc;

use crate::rtc::session::{Answer, CandidateLine};
use crate::signal::protocol::{self, CandidateInit, DeviceMessage, Status, Topics};
use crate::signal::sealed::{self, Sealing};

/// Something that publishes payloads without ever blocking the caller.
pub(crate) trait Publish: Send + Sync {
    /// Publishes a non-retained QoS 1 message, or drops (and counts) it.
    fn publish(&self, topic: String, payload: Vec<u8>);
    /// Replaces the retained status.
    fn set_status(&self, payload: Vec<u8>);
}

/// Publishes device messages to viewers.
pub(crate) struct Outbox {
    topics: Topics,
    link: Arc<dyn Publish>,
    sealing: Option<Sealing>,
}

impl Outbox {
    /// An outbox for the device of `topics`, publishing through `link`,
    /// sealed when `sealing` is given.
    pub(crate) fn new(topics: Topics, link: Arc<dyn Publish>, sealing: Option<Sealing>) -> Self {
        Outbox {
            topics,
            link,
            sealing,
        }
    }

    /// The sealed-mode state, when the device is sealed.
    pub(crate) fn sealing(&self) -> Option<&Sealing> {
        self.sealing.as_ref()
    }

    /// The sealed-mode state, to open inbound payloads and follow sessions.
    pub(crate) fn sealing_mut(&mut self) -> Option<&mut Sealing> {
        self.sealing.as_mut()
    }

    /// Seals everything from now on (a plain device whose first viewer was
    /// just paired).
    pub(crate) fn seal_from_now(&mut self, sealing: Sealing) {
        self.sealing = Some(sealing);
    }

    /// Sends `message` to session `session`: sealed for its viewer in
    /// sealed mode, where a session no viewer is bound to gets nothing.
    pub(crate) fn send(&mut self, session: &str, message: &DeviceMessage) {
        let topic = self.topics.outbound(session);
        let payload = match &mut self.sealing {
            None => protocol::encode(message),
            Some(sealing) => match sealing.seal(&topic, session, message) {
                Some(payload) => payload,
                None => {
                    tracing::debug!("session {session}: no paired viewer to seal for");
                    return;
                }
            },
        };
        self.link.publish(topic, payload);
    }

    /// Sends the unsealed `error unauthorized` hint of sealed mode.
    pub(crate) fn send_unauthorized(&self, session: &str) {
        let error = DeviceMessage::Error(sealed::unauthorized_error());
        self.link
            .publish(self.topics.outbound(session), protocol::encode(&error));
    }

    /// Sends an answer, then its candidates (and end-of-candidates when
    /// they are all), in the order docs/protocol.md asks for: a viewer never
    /// sees a candidate before the answer.
    pub(crate) fn send_answer(&mut self, session: &str, answer: Answer) {
        self.send(session, &DeviceMessage::Answer { sdp: answer.sdp });
        for candidate in answer.candidates {
            self.send_candidate(session, candidate);
        }
        if answer.complete {
            self.send_end_of_candidates(session, answer.mid);
        }
    }

    /// Trickles one local candidate.
    pub(crate) fn send_candidate(&mut self, session: &str, candidate: CandidateLine) {
        self.send(
            session,
            &DeviceMessage::Candidate(candidate_init(candidate)),
        );
    }

    /// Sends end-of-candidates for the bundle on `mid`.
    pub(crate) fn send_end_of_candidates(&mut self, session: &str, mid: Option<String>) {
        self.send(
            session,
            &DeviceMessage::Candidate(CandidateInit {
                candidate: String::new(),
                sdp_mid: mid,
                sdp_m_line_index: Some(0),
                username_fragment: None,
            }),
        );
    }

    /// Publishes `event` on `P/D/event` for integrations.
    pub(crate) fn event(&self, event: &serde_json::Value) {
        self.link.publish(
            self.topics.event(),
            serde_json::to_vec(event).expect("JSON values always serialize"),
        );
    }

    /// Replaces the retained status.
    pub(crate) fn set_status(&self, status: &Status) {
        self.link.set_status(protocol::encode(status));
    }
}

/// A session's candidate as the protocol's `RTCIceCandidateInit`.
fn candidate_init(candidate: CandidateLine) -> CandidateInit {
    CandidateInit {
        candidate: candidate.line,
        sdp_mid: candidate.mid,
        sdp_m_line_index: Some(0),
        username_fragment: candidate.ufrag,
    }
}
