//! Where every message to a viewer leaves the device: one `out/S` topic per
//! session. Sealed mode will seal here, so nothing else needs to change.

use std::time::{Duration, Instant};

use crate::signal::mqtt::MqttHandle;
use crate::signal::protocol::{self, DeviceMessage, ErrorReply, Topics};

/// Publishes device messages to viewers.
#[derive(Clone)]
pub struct Outbox {
    topics: Topics,
    mqtt: MqttHandle,
}

impl Outbox {
    /// An outbox for the device of `topics`, publishing through `mqtt`.
    pub fn new(topics: Topics, mqtt: MqttHandle) -> Self {
        Outbox { topics, mqtt }
    }

    /// Sends `message` to session `session`.
    pub fn send(&self, session: &str, message: &DeviceMessage) {
        self.mqtt
            .publish(self.topics.outbound(session), protocol::encode(message));
    }

    /// Publishes `event` on `P/D/event` for integrations.
    pub fn event(&self, event: &serde_json::Value) {
        self.mqtt.publish(
            self.topics.event(),
            serde_json::to_vec(event).expect("JSON values always serialize"),
        );
    }

    /// Replaces the retained status.
    pub fn set_status(&self, status: &protocol::Status) {
        self.mqtt.set_status(protocol::encode(status));
    }
}

/// Enforces "at most one error per session per second".
#[derive(Debug, Default, Clone)]
pub struct ErrorLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLimiter {
    /// Whether an error may be sent now; if so, records it. Errors answering
    /// a first offer pass with `always`.
    pub fn allow(&mut self, now: Instant, always: bool) -> bool {
        let free = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= Duration::from_secs(1));
        if free || always {
            self.last = Some(now);
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Sends `error` through `outbox` if the limit allows it.
    pub fn send(&mut self, outbox: &Outbox, session: &str, error: ErrorReply, now: Instant) {
        if self.allow(now, false) {
            outbox.send(session, &DeviceMessage::Error(error));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_error_per_second_except_for_first_offers() {
        let t0 = Instant::now();
        let mut limiter = ErrorLimiter::default();
        assert!(limiter.allow(t0, false));
        assert!(!limiter.allow(t0 + Duration::from_millis(500), false));
        assert!(limiter.allow(t0 + Duration::from_millis(600), true));
        assert!(!limiter.allow(t0 + Duration::from_millis(1500), false));
        assert!(limiter.allow(t0 + Duration::from_millis(1600), false));
        assert_eq!(limiter.suppressed, 2);
    }
}
