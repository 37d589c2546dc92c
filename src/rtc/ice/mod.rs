//! ICE on the device's side: what str0m leaves to its user. The STUN and
//! TURN servers of `[[webrtc.ice_servers]]` ([`servers`]) give each media
//! socket its public address and a relay ([`gather`]).

pub(crate) mod gather;
pub(crate) mod servers;
