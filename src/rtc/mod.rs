//! WebRTC sessions: one str0m `Rtc` per viewer, its sockets and its driver.

pub(crate) mod driver;
pub(crate) mod ice;
pub(crate) mod join;
pub(crate) mod net;
pub(crate) mod session;
