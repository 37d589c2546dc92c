//! peercam: camera to browser over WebRTC, signaled over MQTT.
//!
//! Media flows one way: [`media::video`] (GStreamer) → [`media::fanout`] →
//! one [`rtc::session`] per viewer → UDP. Control flows the other:
//! [`signal::mqtt`] → [`signal::protocol`] → [`signal::manager`] → sessions.
//! [`daemon`] wires them together; [`config`] is the one TOML file.

pub mod backoff;
pub mod board;
pub mod check;
pub mod config;
pub mod daemon;
pub mod http;
pub mod media;
pub mod rtc;
pub mod service;
pub mod signal;
