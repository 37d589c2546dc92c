//! Signaling: the PROTOCOL.md codec, the MQTT link and the session manager
//! that turns viewer messages into WebRTC sessions.

#[cfg(feature = "embedded-broker")]
pub mod broker;
pub mod floor;
pub mod manager;
pub mod mqtt;
pub mod outbox;
pub mod protocol;
