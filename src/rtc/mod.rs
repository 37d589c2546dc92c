//! WebRTC sessions: one str0m `Rtc` per viewer, its sockets and its driver.

pub mod driver;
pub mod net;
pub mod session;
