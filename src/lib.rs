//! peercam: camera to browser over WebRTC, signaled over MQTT.
//!
//! Media flows one way: [`media::video`] (GStreamer) and
//! [`media::audio::capture`] (ALSA → Opus) → [`media::fanout`] → one
//! [`rtc::session`] per viewer → UDP; the floor holder's talk-back goes on
//! to [`media::audio::playback`]. Control flows the other: [`signal::mqtt`]
//! → [`signal::protocol`] → [`signal::manager`] → sessions, joined by
//! doorbell presses from [`doorbell`] and [`control`].
//! [`daemon`] wires them together; [`config`] is the one TOML file.

pub mod backoff;
pub mod board;
pub mod check;
pub mod config;
pub mod control;
pub mod daemon;
pub mod doorbell;
pub mod http;
pub mod media;
pub mod rtc;
pub mod service;
pub mod signal;
pub mod worker;
