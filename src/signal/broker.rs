//! The embedded broker of the zero-setup demo: rumqttd with a plain MQTT
//! listener for the daemon and a WebSocket listener for browsers.
//! Real deployments point `mqtt.broker` at Mosquitto, EMQX, HiveMQ, AWS IoT.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::config::EmbeddedBrokerConfig;

/// Largest payload the embedded broker relays.
const MAX_PAYLOAD: usize = 1024 * 1024;

fn server(name: &str, listen: SocketAddr) -> ServerSettings {
    ServerSettings {
        name: name.into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: MAX_PAYLOAD,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

/// Starts the broker on its own threads and returns once both listeners
/// accept connections, or with the reason they do not (e.g. port in use).
pub(crate) fn start(config: &EmbeddedBrokerConfig) -> anyhow::Result<()> {
    let broker_config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 200,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([(
            "mqtt".to_owned(),
            server("mqtt", config.listen),
        )])),
        ws: Some(HashMap::from([(
            "ws".to_owned(),
            server("ws", config.ws_listen),
        )])),
        ..Config::default()
    };
    for addr in [config.listen, config.ws_listen] {
        if let Err(e) = TcpListener::bind(addr) {
            bail!("cannot start the embedded broker on {addr}: {e}");
        }
    }
    std::thread::Builder::new()
        .name("broker".into())
        .spawn(move || {
            if let Err(e) = Broker::new(broker_config).start() {
                tracing::error!("embedded broker stopped: {e}");
            }
        })
        .context("cannot start the embedded broker thread")?;
    // Listening shows as the address being taken; probing by connecting
    // would make the broker log a failed handshake.
    let deadline = Instant::now() + Duration::from_secs(5);
    for addr in [config.listen, config.ws_listen] {
        while TcpListener::bind(addr).is_ok() {
            if Instant::now() > deadline {
                bail!("the embedded broker did not start listening on {addr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    tracing::info!(
        "embedded broker: mqtt://{} and ws://{}",
        config.listen,
        config.ws_listen
    );
    Ok(())
}
