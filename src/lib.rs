//! peercam: camera to browser over WebRTC, signaled over MQTT.
//!
//! Media flows one way: [`media::video`] (GStreamer) and
//! [`media::audio::capture`] (ALSA → Opus) → [`media::fanout`] → one
//! [`rtc::session`] per viewer → UDP; the floor holder's talk-back goes on
//! to [`media::audio::playback`]. Control flows the other: [`signal::mqtt`]
//! → [`signal::protocol`] → [`signal::manager`] → sessions, joined by
//! doorbell presses from [`doorbell`] and [`control`].
//! [`daemon`] wires them together; [`config`] is the one TOML file.

mod backoff;
mod board;
mod check;
mod cli;
mod config;
mod control;
mod daemon;
mod doorbell;
mod http;
mod media;
mod nat;
mod pair;
mod rtc;
mod service;
mod signal;
#[cfg(feature = "test-hooks")]
mod test_hooks;
mod tls;
mod worker;

pub use cli::main;
