//! `peercam run`: starts the parts in data-flow order (camera, microphone
//! and speaker, broker link, doorbell, session manager, web viewer) and
//! stops them in reverse on SIGINT/SIGTERM; tells systemd when it is ready
//! and that its main loop is alive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::config::{AudioConfig, Broker, Config};
use crate::media::audio::capture::{AudioSource, CaptureSettings};
use crate::media::audio::playback::{PlaybackSettings, Player, Talkback};
use crate::media::fanout::Fanout;
use crate::media::video::{self, VideoSource};
use crate::rtc::driver::SessionMedia;
use crate::rtc::ice::servers::{self, Gathering, IceServerUrl, TurnAuth};
use crate::rtc::session::{AudioCaps, SessionConfig, SessionLimits};
use crate::service::{self, Drops, Health, ServiceNotifier};
use crate::signal::manager::{ManagerInputs, ManagerSetup, SessionManager};
use crate::signal::mqtt::MqttLink;
use crate::signal::outbox::Outbox;
use crate::signal::protocol::{self, Topics};

/// Runs the daemon until it is told to stop; fails when a part it cannot
/// run without (the broker link) dies, so the service manager restarts it.
pub(crate) fn run(config: Config) -> anyhow::Result<()> {
    let (shutdown_tx, shutdown_rx) = async_channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = shutdown_tx.try_send(());
    })
    .context("cannot install the signal handler")?;

    let video = Fanout::new();
    let video_config = config.video.clone();
    let camera = VideoSource::start(
        move || video::resolve_pipeline(&video_config),
        video.clone(),
    )
    .context("the video source did not start")?;
    let audio_caps = audio_caps(&config.audio);
    let audio = Fanout::new();
    let _microphone = if audio_caps.send {
        Some(AudioSource::start(
            capture_settings(&config.audio),
            audio.clone(),
        )?)
    } else {
        None
    };
    let (voice_tx, voice_rx) = async_channel::bounded(16);
    let (_speaker, talkback) = start_speaker(&config.audio, audio_caps, voice_tx)?;

    let broker_url = broker_url(&config)?;
    let topics = Topics::new(&config.mqtt.prefix, &config.device.id);
    let limits = SessionLimits {
        connect_timeout: config.webrtc.connect_timeout(),
        peer_timeout: config.webrtc.peer_timeout(),
    };
    let setup = ManagerSetup {
        name: config.device.name.clone(),
        max_viewers: config.device.max_viewers,
        session: SessionConfig::new(
            limits,
            audio_caps,
            Gathering {
                servers: gathering_servers(&config).into(),
                tls: servers::tls_config(config.webrtc.turn_ca_file.as_deref())?,
            },
        )?,
        interfaces: config.webrtc.interfaces.clone(),
        ports: config.webrtc.ports(),
        ice_servers: config.webrtc.ice_servers.clone(),
    };
    let client_id = config
        .mqtt
        .client_id
        .clone()
        .unwrap_or_else(|| format!("peercam-{}", config.device.id));
    let initial_status = protocol::encode(&setup.status(0));
    let (link, inbound) = MqttLink::start(
        &config.mqtt,
        &client_id,
        &broker_url,
        &topics,
        initial_status,
    )?;
    let mqtt = link.handle();
    let outbox = Outbox::new(topics.clone(), Arc::new(mqtt.clone()));
    let media = SessionMedia {
        video,
        audio,
        talkback,
    };
    let manager = SessionManager::new(setup, topics, outbox, media);
    let (commands_tx, commands) = async_channel::bounded(8);
    let _doorbell = crate::doorbell::start(&config.doorbell, commands_tx.clone())?;
    let socket = &config.doorbell.control_socket;
    if !socket.as_os_str().is_empty()
        && let Err(e) = crate::control::start(socket, commands_tx)
    {
        tracing::warn!("`peercam ring` will not work: {e:#}");
    }

    if let Some(addr) = config.http.listen {
        let bound = crate::http::start(addr)?;
        println!("{}", viewer_link(&config, bound));
    }
    let mut notifier = ServiceNotifier::from_env();
    let camera_health = camera.health();
    let inputs = ManagerInputs {
        inbound,
        commands,
        voice: voice_rx,
        shutdown: shutdown_rx,
    };
    let outcome = smol::block_on(manager.run(inputs, service::TICK, |tally| {
        let (camera, camera_alive) = camera_health.report(Instant::now());
        notifier.tick(&Health {
            viewers: tally.viewers,
            broker_online: mqtt.is_online(),
            camera,
            camera_alive,
            media_addresses: tally.media_addresses,
            drops: Drops {
                inbound: tally.dropped + mqtt.dropped_inbound(),
                outbound: mqtt.dropped_outbound(),
                errors: tally.errors_suppressed,
            },
        })
    }));
    notifier.stopping();
    tracing::info!("stopping");
    drop(link);
    outcome
}

/// The configured STUN/TURN servers the device gathers from itself; a URL
/// it cannot use is left out with a warning (the viewer may still use it).
fn gathering_servers(config: &Config) -> Vec<IceServerUrl> {
    let mut servers = Vec::new();
    for server in &config.webrtc.ice_servers {
        let auth = TurnAuth::from_config(server);
        for url in &server.urls {
            match servers::parse_url(url, auth.clone()) {
                Ok(parsed) => servers.push(parsed),
                Err(e) => tracing::warn!("webrtc.ice_servers: {e}; the device does not use it"),
            }
        }
    }
    servers
}

/// What the configured audio lets calls do.
fn audio_caps(audio: &AudioConfig) -> AudioCaps {
    AudioCaps {
        send: audio.enabled,
        receive: audio.enabled && audio.talkback,
    }
}

fn capture_settings(audio: &AudioConfig) -> CaptureSettings {
    CaptureSettings {
        device: audio.capture_device.clone(),
        bitrate: audio.bitrate_kbps as i32 * 1000,
        echo_cancel: audio.echo_cancel,
    }
}

/// Starts the talk-back player when calls may talk back.
fn start_speaker(
    audio: &AudioConfig,
    caps: AudioCaps,
    voice: async_channel::Sender<std::sync::Arc<str>>,
) -> anyhow::Result<(Option<Player>, Option<Talkback>)> {
    if !caps.receive {
        return Ok((None, None));
    }
    let settings = PlaybackSettings {
        device: audio.playback_device.clone(),
        jitter_target: std::time::Duration::from_millis(audio.jitter_ms),
        echo_cancel: audio.echo_cancel,
    };
    let (player, talkback) = Player::start(settings, voice)?;
    Ok((Some(player), Some(talkback)))
}

/// The broker URL the daemon connects to, starting the embedded broker if asked.
fn broker_url(config: &Config) -> anyhow::Result<String> {
    if let Broker::Url(url) = &config.mqtt.broker {
        return Ok(url.clone());
    }
    #[cfg(feature = "embedded-broker")]
    {
        crate::signal::broker::start(&config.mqtt.embedded)?;
        Ok(format!("mqtt://{}", config.mqtt.embedded.listen))
    }
    #[cfg(not(feature = "embedded-broker"))]
    anyhow::bail!("this build has no embedded broker; set `mqtt.broker` to a broker URL")
}

/// The pairing-link form URL that opens the viewer on this device.
pub(crate) fn viewer_link(config: &Config, http: SocketAddr) -> String {
    let host = if http.ip().is_unspecified() {
        format!("localhost:{}", http.port())
    } else {
        http.to_string()
    };
    let broker = config
        .http
        .broker_url
        .clone()
        .or_else(|| match &config.mqtt.broker {
            Broker::Embedded => Some(format!("ws://{}", config.mqtt.embedded.ws_listen)),
            Broker::Url(url) if url.starts_with("ws") => Some(url.clone()),
            Broker::Url(_) => None,
        });
    let mut link = format!(
        "Open the viewer: http://{host}/#v=1&p={}&d={}",
        percent_encode(&config.mqtt.prefix),
        percent_encode(&config.device.id)
    );
    if let Some(broker) = broker {
        link.push_str(&format!("&b={}", percent_encode(&broker)));
    }
    link
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_link_is_a_pairing_link_for_the_embedded_broker() {
        let link = viewer_link(&Config::default(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            link,
            "Open the viewer: http://127.0.0.1:8080/#v=1&p=peercam&d=peercam&b=ws%3A%2F%2F127.0.0.1%3A8083"
        );
        assert_eq!(percent_encode("Alice's phone"), "Alice%27s%20phone");
    }
}
