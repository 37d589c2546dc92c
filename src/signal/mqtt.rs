//! The MQTT link: rumqttc's event loop on its own thread (it needs tokio),
//! reconnecting with capped, jittered backoff, re-subscribing and
//! re-publishing the retained status on every connection. Everything else
//! talks to it through channels and never waits on the broker, so calls in
//! progress are untouched while the broker is away.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Packet, QoS,
    TlsConfiguration, Transport,
};

use crate::backoff::Backoff;
use crate::config::{MqttConfig, Secret};
use crate::signal::outbox::Publish;
use crate::signal::protocol::{self, Topics};
use crate::tls::{self, ClientIdentity};

/// Largest MQTT packet accepted from the broker. rumqttc drops the whole
/// connection on a bigger one, so this sits far above the protocol's
/// 64 KiB payload bound: oversized payloads are read, counted and dropped
/// here instead. The real bound is the broker's (`max_packet_size` in
/// Mosquitto, docs/protocol.md).
const MAX_INCOMING_PACKET: usize = 4 * 1024 * 1024;
/// Largest payload the device publishes; a bigger one is dropped (and
/// counted) before it is queued, so no message can break the connection
/// on a broker with a packet limit at the recommended 128 KiB.
const MAX_OUTGOING_PAYLOAD: usize = protocol::MAX_PAYLOAD;
/// Largest packet the device sends: its payload bound plus topic and header.
const MAX_OUTGOING_PACKET: usize = MAX_OUTGOING_PAYLOAD + 4096;
/// Inbound messages waiting for the session manager; more are dropped (counted).
const INBOUND_QUEUE: usize = 256;
/// Requests waiting for the event loop; more are dropped (and counted).
const OUTBOUND_QUEUE: usize = 512;

/// A message received on one of the device's subscriptions.
#[derive(Debug, Clone)]
pub(crate) struct Inbound {
    /// Topic it arrived on.
    pub(crate) topic: String,
    /// Raw payload.
    pub(crate) payload: Bytes,
    /// Whether the broker delivered it as a retained message.
    pub(crate) retain: bool,
}

/// Cheap, cloneable handle for publishing from anywhere without blocking.
#[derive(Clone)]
pub(crate) struct MqttHandle {
    client: AsyncClient,
    shared: Arc<Shared>,
}

struct Shared {
    status_topic: String,
    status: Mutex<Vec<u8>>,
    online: AtomicBool,
    dropped_outbound: AtomicU64,
    dropped_inbound: AtomicU64,
}

impl MqttHandle {
    /// Queues a QoS 1 publish, or drops it (counted) when it is too large
    /// or the link's queue is full because the broker is away.
    fn enqueue(&self, topic: String, payload: Vec<u8>, retain: bool) {
        let queued = payload.len() <= MAX_OUTGOING_PAYLOAD
            && self
                .client
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                .is_ok();
        if !queued {
            self.shared.dropped_outbound.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the broker connection is up.
    pub(crate) fn is_online(&self) -> bool {
        self.shared.online.load(Ordering::Relaxed)
    }

    /// Publishes dropped so far (too large, or queue full while offline).
    pub(crate) fn dropped_outbound(&self) -> u64 {
        self.shared.dropped_outbound.load(Ordering::Relaxed)
    }

    /// Inbound messages dropped before the session manager saw them
    /// (over the protocol's size bound, or its queue full).
    pub(crate) fn dropped_inbound(&self) -> u64 {
        self.shared.dropped_inbound.load(Ordering::Relaxed)
    }
}

impl Publish for MqttHandle {
    fn publish(&self, topic: String, payload: Vec<u8>) {
        self.enqueue(topic, payload, false);
    }

    /// Replaces the retained status, published now and after every reconnect.
    fn set_status(&self, payload: Vec<u8>) {
        *self
            .shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = payload.clone();
        self.enqueue(self.shared.status_topic.clone(), payload, true);
    }
}

/// The running MQTT link.
pub(crate) struct MqttLink {
    handle: MqttHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MqttLink {
    /// Connects (in the background) to the broker of `config` as device
    /// `topics`, with `status` as the first retained status. Inbound
    /// messages on `P/D/in/+` arrive on the returned channel.
    pub(crate) fn start(
        config: &MqttConfig,
        client_id: &str,
        broker_url: &str,
        topics: &Topics,
        status: Vec<u8>,
    ) -> anyhow::Result<(MqttLink, async_channel::Receiver<Inbound>)> {
        let mut options = connect_options(config, broker_url, client_id)?;
        options.set_last_will(LastWill::new(
            topics.status(),
            protocol::offline_status(),
            QoS::AtLeastOnce,
            true,
        ));
        let (client, eventloop) = new_client(options, OUTBOUND_QUEUE);
        let shared = Arc::new(Shared {
            status_topic: topics.status(),
            status: Mutex::new(status),
            online: AtomicBool::new(false),
            dropped_outbound: AtomicU64::new(0),
            dropped_inbound: AtomicU64::new(0),
        });
        let handle = MqttHandle { client, shared };
        let (inbound_tx, inbound_rx) = async_channel::bounded(INBOUND_QUEUE);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn({
                let handle = handle.clone();
                let subscription = topics.inbound_filter();
                let broker = broker_url.to_owned();
                move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            tracing::error!("cannot start the MQTT runtime: {e}");
                            return;
                        }
                    };
                    runtime.block_on(run(
                        eventloop,
                        handle,
                        subscription,
                        broker,
                        inbound_tx,
                        stop_rx,
                    ));
                }
            })
            .context("cannot start the MQTT thread")?;
        Ok((
            MqttLink {
                handle,
                stop: Some(stop_tx),
                thread: Some(thread),
            },
            inbound_rx,
        ))
    }

    /// A handle for publishing.
    pub(crate) fn handle(&self) -> MqttHandle {
        self.handle.clone()
    }
}

impl Drop for MqttLink {
    /// Publishes the offline status and disconnects cleanly (bounded in time).
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The event loop: connect, (re)subscribe, deliver, back off, until stopped.
async fn run(
    mut eventloop: EventLoop,
    handle: MqttHandle,
    subscription: String,
    broker: String,
    inbound: async_channel::Sender<Inbound>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
    loop {
        let event = tokio::select! {
            _ = &mut stop => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                handle.shared.online.store(true, Ordering::Relaxed);
                tracing::info!("MQTT connected to {broker}");
                let status = handle
                    .shared
                    .status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let _ = handle
                    .client
                    .try_subscribe(subscription.clone(), QoS::AtLeastOnce);
                let _ = handle.client.try_publish(
                    handle.shared.status_topic.clone(),
                    QoS::AtLeastOnce,
                    true,
                    status,
                );
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let message = Inbound {
                    topic: publish.topic,
                    payload: publish.payload,
                    retain: publish.retain,
                };
                let queued = message.payload.len() <= protocol::MAX_PAYLOAD
                    && inbound.try_send(message).is_ok();
                if !queued {
                    handle
                        .shared
                        .dropped_inbound
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(_) => {}
            Err(e) => {
                let was_online = handle.shared.online.swap(false, Ordering::Relaxed);
                let delay = backoff.next_delay(rand::random());
                if was_online {
                    tracing::warn!("MQTT connection to {broker} lost: {e}; retrying in {delay:?}");
                } else {
                    let failure = ConnectFailure::from_error(&e);
                    tracing::warn!("MQTT broker {broker}: {failure}; retrying in {delay:?}");
                }
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    if handle.is_online() {
        let _ = handle.client.try_publish(
            handle.shared.status_topic.clone(),
            QoS::AtLeastOnce,
            true,
            protocol::offline_status(),
        );
        let _ = handle.client.try_disconnect();
        let flush = async {
            while let Ok(event) = eventloop.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
    }
}

/// Why a connection to the broker did not come up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectFailure {
    /// The broker answered and refused us (credentials, client id, ACL).
    Refused(String),
    /// TLS failed on the broker's certificate (an unknown CA, another
    /// host name, expired) or on ours.
    Certificate(String),
    /// No MQTT answer: wrong address, port, scheme, or broker down.
    Unreachable(String),
}

impl ConnectFailure {
    fn from_error(error: &ConnectionError) -> Self {
        match error {
            ConnectionError::ConnectionRefused(code) => {
                ConnectFailure::Refused(format!("{code:?}"))
            }
            other => {
                let text = other.to_string();
                if text.contains("certificate") {
                    ConnectFailure::Certificate(text)
                } else {
                    ConnectFailure::Unreachable(text)
                }
            }
        }
    }
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectFailure::Refused(code) => write!(
                f,
                "refused the connection ({code}): check mqtt.username and mqtt.password or password_file"
            ),
            ConnectFailure::Certificate(e) => write!(
                f,
                "TLS failed ({e}): trust the broker's CA with mqtt.ca_file (PEM), use the host \
                 name its certificate names, or give the client certificate it asks for \
                 (mqtt.client_cert, mqtt.client_key)"
            ),
            ConnectFailure::Unreachable(e) => write!(f, "unreachable: {e}"),
        }
    }
}

/// Connects once to the broker of `config` at `broker_url` and hangs up:
/// whether it is reachable and accepts the credentials (`peercam check`).
pub(crate) fn probe(
    config: &MqttConfig,
    broker_url: &str,
    client_id: &str,
    timeout: Duration,
) -> anyhow::Result<Result<(), ConnectFailure>> {
    let options = connect_options(config, broker_url, client_id)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(async {
        let (client, mut eventloop) = new_client(options, 4);
        let outcome = tokio::time::timeout(timeout, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(ConnectFailure::from_error(&e)),
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(ConnectFailure::Unreachable(format!(
                "no answer within {timeout:?}"
            )))
        });
        if outcome.is_ok() {
            let _ = client.try_disconnect();
            let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
        }
        outcome
    }))
}

/// A client for `options` whose TCP connection sends at once. Each
/// signaling message holds up a call (the answer above all), and with
/// Nagle's algorithm on it would wait for the broker's delayed ACK of the
/// one before it (QoS 1's PUBACK keeps one in flight): measured on
/// loopback, 36 ms between "answer published" and the answer on the wire.
fn new_client(options: MqttOptions, queue: usize) -> (AsyncClient, EventLoop) {
    let (client, mut eventloop) = AsyncClient::new(options, queue);
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    (client, eventloop)
}

/// Connection options for `config` at `broker_url`: transport, keep-alive,
/// packet size and credentials.
fn connect_options(
    config: &MqttConfig,
    broker_url: &str,
    client_id: &str,
) -> anyhow::Result<MqttOptions> {
    let mut options = options_for(broker_url, client_id, || broker_tls(config))?;
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_secs))
        .set_clean_session(true)
        .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET);
    if let Some(user) = &config.username {
        let password = config.password.as_ref().map_or("", Secret::expose);
        options.set_credentials(user, password);
    }
    Ok(options)
}

/// Whom the device trusts for an `mqtts://`/`wss://` broker, and the
/// certificate it shows, from `mqtt.ca_file`, `client_cert`, `client_key`.
fn broker_tls(config: &MqttConfig) -> anyhow::Result<TlsConfiguration> {
    let identity = config
        .client_cert
        .as_deref()
        .zip(config.client_key.as_deref())
        .map(|(cert, key)| ClientIdentity {
            cert: (cert, "mqtt.client_cert"),
            key: (key, "mqtt.client_key"),
        });
    let ca = config.ca_file.as_deref().map(|path| (path, "mqtt.ca_file"));
    let tls = tls::client_config(ca, identity).context("the broker's TLS settings")?;
    Ok(TlsConfiguration::Rustls(tls))
}

/// MQTT options for a broker URL (`mqtt://`, `mqtts://`, `ws://`, `wss://`);
/// `tls` gives the TLS settings of the secure schemes.
fn options_for(
    url: &str,
    client_id: &str,
    tls: impl FnOnce() -> anyhow::Result<TlsConfiguration>,
) -> anyhow::Result<MqttOptions> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| anyhow!("broker URL `{url}` has no scheme"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = split_host_port(authority)
        .with_context(|| format!("broker URL `{url}` has a bad host or port"))?;
    let default_port = match scheme {
        "mqtt" => 1883,
        "mqtts" => 8883,
        "ws" => 80,
        "wss" => 443,
        other => bail!("broker URL scheme `{other}` is not one of mqtt, mqtts, ws, wss"),
    };
    let port = port.unwrap_or(default_port);
    let mut options = match scheme {
        "ws" | "wss" => MqttOptions::new(client_id, url, port),
        _ => MqttOptions::new(client_id, host, port),
    };
    match scheme {
        "mqtts" => options.set_transport(Transport::tls_with_config(tls()?)),
        "ws" => options.set_transport(Transport::Ws),
        "wss" => options.set_transport(Transport::wss_with_config(tls()?)),
        _ => &mut options,
    };
    Ok(options)
}

/// Splits `host[:port]` or `[v6]:port`.
fn split_host_port(authority: &str) -> anyhow::Result<(String, Option<u16>)> {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| anyhow!("unclosed `[`"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        bail!("empty host");
    }
    let port = port.map(|p| p.parse::<u16>()).transpose()?;
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_hosts_and_ports() {
        assert_eq!(split_host_port("h:1").unwrap(), ("h".into(), Some(1)));
        assert_eq!(split_host_port("h").unwrap(), ("h".into(), None));
        assert_eq!(
            split_host_port("[::1]:8883").unwrap(),
            ("::1".into(), Some(8883))
        );
        assert_eq!(split_host_port("user@h:2").unwrap(), ("h".into(), Some(2)));
        assert!(split_host_port(":1").is_err());
        assert!(split_host_port("h:port").is_err());
    }

    fn default_tls() -> anyhow::Result<TlsConfiguration> {
        broker_tls(&MqttConfig::default())
    }

    #[test]
    fn builds_options_for_every_scheme() {
        let tcp = options_for("mqtt://broker:1884", "c", default_tls).unwrap();
        assert_eq!(tcp.broker_address(), ("broker".into(), 1884));
        let tls = options_for("mqtts://broker", "c", default_tls).unwrap();
        assert_eq!(tls.broker_address().1, 8883);
        assert!(matches!(tls.transport(), Transport::Tls(_)));
        let ws = options_for("ws://127.0.0.1:8083/mqtt", "c", default_tls).unwrap();
        assert_eq!(
            ws.broker_address(),
            ("ws://127.0.0.1:8083/mqtt".into(), 8083)
        );
        assert!(matches!(ws.transport(), Transport::Ws));
        let wss = options_for("wss://b.example/mqtt", "c", default_tls).unwrap();
        assert_eq!(wss.broker_address().1, 443);
        assert!(options_for("http://b", "c", default_tls).is_err());
        assert!(options_for("broker:1883", "c", default_tls).is_err());
    }
}
