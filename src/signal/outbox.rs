//! Where every message the device publishes leaves: one `out/S` topic per
//! session, the event topic and the retained status, through whatever
//! [`Publish`]es them (the MQTT link, or a recorder in tests).

use std::sync::Arc;

use crate::rtc::session::{Answer, CandidateLine};
use crate::signal::protocol::{self, CandidateInit, DeviceMessage, Status, Topics};

/// Something that publishes payloads without ever blocking the caller.
pub(crate) trait Publish: Send + Sync {
    /// Publishes a non-retained QoS 1 message, or drops (and counts) it.
    fn publish(&self, topic: String, payload: Vec<u8>);
    /// Replaces the retained status.
    fn set_status(&self, payload: Vec<u8>);
}

/// Publishes device messages to viewers.
#[derive(Clone)]
pub(crate) struct Outbox {
    topics: Topics,
    link: Arc<dyn Publish>,
}

impl Outbox {
    /// An outbox for the device of `topics`, publishing through `link`.
    pub(crate) fn new(topics: Topics, link: Arc<dyn Publish>) -> Self {
        Outbox { topics, link }
    }

    /// Sends `message` to session `session`.
    pub(crate) fn send(&self, session: &str, message: &DeviceMessage) {
        self.link
            .publish(self.topics.outbound(session), protocol::encode(message));
    }

    /// Sends an answer, then its candidates (and end-of-candidates when
    /// they are all), in the order docs/protocol.md asks for: a viewer never
    /// sees a candidate before the answer.
    pub(crate) fn send_answer(&self, session: &str, answer: Answer) {
        self.send(session, &DeviceMessage::Answer { sdp: answer.sdp });
        for candidate in answer.candidates {
            self.send_candidate(session, candidate);
        }
        if answer.complete {
            self.send_end_of_candidates(session, answer.mid);
        }
    }

    /// Trickles one local candidate.
    pub(crate) fn send_candidate(&self, session: &str, candidate: CandidateLine) {
        self.send(
            session,
            &DeviceMessage::Candidate(candidate_init(candidate)),
        );
    }

    /// Sends end-of-candidates for the bundle on `mid`.
    pub(crate) fn send_end_of_candidates(&self, session: &str, mid: Option<String>) {
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
