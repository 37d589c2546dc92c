//! Signaling: the docs/protocol.md codec, the MQTT link and the session manager
//! that turns viewer messages into WebRTC sessions.

#[cfg(feature = "embedded-broker")]
pub(crate) mod broker;
pub(crate) mod floor;
pub(crate) mod keyring;
pub(crate) mod manager;
pub(crate) mod mqtt;
pub(crate) mod outbox;
pub(crate) mod protocol;
pub(crate) mod seal;
pub(crate) mod sealed;
pub(crate) mod table;
