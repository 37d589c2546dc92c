//! `peercam run`: starts the parts in data-flow order (camera, microphone
//! and speaker, broker link, doorbell, session manager, web viewer) and
//! stops them in reverse on SIGINT/SIGTERM; tells systemd when it is ready
//! and that its main loop is alive.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::config::{AudioConfig, Broker, Config, SecurityConfig, SecurityMode};
use crate::media::audio::capture::{AudioSource, CaptureSettings};
use crate::media::audio::playback::{PlaybackSettings, Player, Talkback};
use crate::media::fanout::Fanout;
use crate::media::video::{self, VideoSource};
use crate::rtc::driver::SessionMedia;
use crate::rtc::ice::servers::{self, Gathering, IceServerUrl, TurnAuth};
use crate::rtc::session::{AudioCaps, SessionConfig, SessionLimits};
use crate::service::{self, Drops, Health, ServiceNotifier};
use crate::signal::keyring::{self, Keyring};
use crate::signal::manager::{ManagerInputs, ManagerSetup, SessionManager};
use crate::signal::mqtt::MqttLink;
use crate::signal::outbox::Outbox;
use crate::signal::protocol::{self, Topics};
use crate::signal::sealed::Sealing;

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
        security: config.security.mode,
        plain_talkback: config.security.plain_talkback,
    };
    let keys_file = &config.security.keys_file;
    let sealing = sealing(&config.security, Keyring::load(keys_file)?);
    let client_id = config
        .mqtt
        .client_id
        .clone()
        .unwrap_or_else(|| format!("peercam-{}", config.device.id));
    let initial_status = protocol::encode(&setup.status(0, sealing.as_ref().map(Sealing::nonce)));
    let (link, inbound) = MqttLink::start(
        &config.mqtt,
        &client_id,
        &broker_url,
        &topics,
        initial_status,
    )?;
    let mqtt = link.handle();
    let outbox = Outbox::new(topics.clone(), Arc::new(mqtt.clone()), sealing);
    let (keys_tx, keys) = async_channel::bounded(1);
    let _keys_watch = keyring::watch(keys_file.clone(), keys_tx)
        .context("cannot start watching the paired viewers' key file")?;
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
        let tls = match (&config.http.tls_cert, &config.http.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::server_config(
                (cert, "http.tls_cert"),
                (key, "http.tls_key"),
            )?),
            _ => None,
        };
        let bound = crate::http::start(addr, tls)?;
        println!("{}", crate::pair::viewer_link(&config, bound));
    }
    let mut notifier = ServiceNotifier::from_env();
    let camera_health = camera.health();
    let inputs = ManagerInputs {
        inbound,
        commands,
        voice: voice_rx,
        keys,
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

/// Sealing when the configuration and the paired viewers call for it;
/// says plainly in the log what a plain camera exposes.
fn sealing(security: &SecurityConfig, keyring: Keyring) -> Option<Sealing> {
    let paired = keyring.viewers().count();
    let talk = if security.plain_talkback {
        ", listen and talk through the speaker"
    } else {
        " and listen"
    };
    match security.mode {
        SecurityMode::Plain => {
            tracing::warn!(
                "plain mode (`security.mode`): anyone who can publish to the camera's topics \
                 on the broker can watch{talk}; {paired} paired viewers are ignored"
            );
            None
        }
        SecurityMode::Auto if keyring.is_empty() => {
            tracing::warn!(
                "plain mode: no viewer is paired yet, so anyone who can publish to the \
                 camera's topics on the broker can watch{talk}; `peercam pair NAME` pairs \
                 a viewer and seals the camera"
            );
            None
        }
        SecurityMode::Auto | SecurityMode::Sealed => {
            if paired == 0 {
                tracing::warn!(
                    "sealed mode with no paired viewer: nobody can call until one is paired \
                     with `peercam pair NAME`"
                );
            } else {
                tracing::info!("sealed mode: {paired} paired viewers");
            }
            Some(Sealing::new(keyring, Instant::now()))
        }
    }
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
