//! `peercam nat`: how the network in front of this device treats WebRTC,
//! found the RFC 5780 way against the configured STUN server (mapping and
//! filtering behaviour, whether UDP gets out at all), plus whether each
//! configured TURN server allocates a relay, ending in a verdict in plain
//! words: which viewers will connect directly and which need a relay.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use turn_client_proto::types::stun::attribute::{AttributeType, RawAttribute, XorMappedAddress};
use turn_client_proto::types::stun::message::{
    BINDING, Message, MessageClass, MessageType, MessageWriteVec, TransactionId,
};
use turn_client_proto::types::stun::prelude::{MessageWrite, MessageWriteExt};

use crate::config::Config;
use crate::rtc::ice::gather::{GatherEvent, Gatherer, ToServer};
use crate::rtc::ice::servers::{self, IceServerUrl, ServerRole, TurnAuth, TurnTransport};

/// CHANGE-REQUEST (RFC 5780 7.2): ask the server to answer from elsewhere.
const CHANGE_REQUEST: u16 = 0x0003;
/// CHANGE-REQUEST flag: answer from the other IP address.
const CHANGE_IP: u32 = 0x04;
/// CHANGE-REQUEST flag: answer from the other port.
const CHANGE_PORT: u32 = 0x02;
/// OTHER-ADDRESS (RFC 5780 7.4): where the server's second address is.
const OTHER_ADDRESS: u16 = 0x802c;
/// One Binding attempt waits this long for its answer…
const ATTEMPT_WAIT: Duration = Duration::from_millis(400);
/// …and is tried this many times before the test counts as unanswered.
const ATTEMPTS: u32 = 3;
/// How long one TURN allocation test may take.
const ALLOCATION_WAIT: Duration = Duration::from_secs(6);

/// How a NAT picks the public address of a flow (RFC 4787 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mapping {
    /// The device has a public address of its own.
    NoNat,
    /// One public address per local socket, whoever is called.
    EndpointIndependent,
    /// A new public address per remote IP.
    AddressDependent,
    /// A new public address per remote IP and port ("symmetric").
    AddressAndPortDependent,
}

/// Whom a NAT lets in to a mapping (RFC 4787 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filtering {
    /// Anyone.
    EndpointIndependent,
    /// Hosts the device has sent to.
    AddressDependent,
    /// Exactly the addresses and ports the device has sent to.
    AddressAndPortDependent,
}

/// What the Binding tests saw; `None` where a test went unanswered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Observations {
    /// The local address the tests ran from.
    pub(crate) local: Option<SocketAddr>,
    /// Test I: the mapped address seen by the primary address.
    pub(crate) primary: Option<SocketAddr>,
    /// The server's other address, if it supports RFC 5780.
    pub(crate) other: Option<SocketAddr>,
    /// Mapping test II: mapped address seen by the other IP, primary port.
    pub(crate) other_ip: Option<SocketAddr>,
    /// Mapping test III: mapped address seen by the other IP and port.
    pub(crate) other_ip_port: Option<SocketAddr>,
    /// Filtering test II: an answer came from the other IP and port.
    pub(crate) answered_from_other_ip_port: bool,
    /// Filtering test III: an answer came from the other port.
    pub(crate) answered_from_other_port: bool,
}

/// The network's behaviour, as far as the tests could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// No answer at all: UDP does not get out (or the server is down).
    UdpBlocked,
    /// The server does not support RFC 5780: only the public address is known.
    Partial {
        /// The public address.
        public: SocketAddr,
        /// Whether it differs from the local one.
        behind_nat: bool,
    },
    /// Everything is known.
    Known {
        /// The public address.
        public: SocketAddr,
        /// How mappings are made.
        mapping: Mapping,
        /// Whom mappings let in.
        filtering: Filtering,
    },
}

/// Reads the observations (RFC 5780 4.3 and 4.4).
pub(crate) fn classify(seen: &Observations) -> Behaviour {
    let Some(public) = seen.primary else {
        return Behaviour::UdpBlocked;
    };
    let behind_nat = seen.local != Some(public);
    if seen.other.is_none() {
        return Behaviour::Partial { public, behind_nat };
    }
    let mapping = if !behind_nat {
        Mapping::NoNat
    } else if seen.other_ip == Some(public) {
        Mapping::EndpointIndependent
    } else if seen.other_ip.is_some() && seen.other_ip_port == seen.other_ip {
        Mapping::AddressDependent
    } else {
        Mapping::AddressAndPortDependent
    };
    let filtering = if seen.answered_from_other_ip_port {
        Filtering::EndpointIndependent
    } else if seen.answered_from_other_port {
        Filtering::AddressDependent
    } else {
        Filtering::AddressAndPortDependent
    };
    Behaviour::Known {
        public,
        mapping,
        filtering,
    }
}

/// The verdict in plain words: who connects directly, who needs a relay.
pub(crate) fn verdict(behaviour: &Behaviour, relay_works: bool) -> String {
    let relay = if relay_works {
        "The configured TURN relay works, so those viewers connect through it."
    } else {
        "No configured TURN server allocates a relay: add a turn: server to \
         [[webrtc.ice_servers]] (turn:…?transport=tcp where UDP is blocked), or those viewers \
         will not connect."
    };
    let (direct, needs_relay) = match behaviour {
        Behaviour::UdpBlocked => (
            "No viewer connects directly: UDP does not get out of this network (or the STUN \
             server is down).",
            "Every viewer needs TURN over TCP or TLS.",
        ),
        Behaviour::Partial {
            behind_nat: false, ..
        } => (
            "This device has a public address: every viewer connects directly.",
            "",
        ),
        Behaviour::Partial { .. } => (
            "This device is behind a NAT; the STUN server does not support RFC 5780, so how \
             it maps and filters is unknown.",
            "Viewers behind symmetric NATs (many cellular networks) may need a relay.",
        ),
        Behaviour::Known {
            mapping: Mapping::NoNat,
            filtering: Filtering::EndpointIndependent,
            ..
        } => ("This device is reachable directly from every viewer.", ""),
        Behaviour::Known {
            mapping: Mapping::NoNat,
            ..
        } => (
            "This device has a public address behind a firewall that admits replies only: \
             viewers connect directly by hole punching, including from symmetric NATs.",
            "",
        ),
        Behaviour::Known {
            mapping: Mapping::EndpointIndependent,
            filtering: Filtering::EndpointIndependent,
            ..
        } => (
            "This NAT keeps one public address per socket and admits anyone to it (full \
             cone): every viewer connects directly.",
            "",
        ),
        Behaviour::Known {
            mapping: Mapping::EndpointIndependent,
            ..
        } => (
            "This NAT keeps one public address per socket and admits only those the device \
             sent to (a usual home router): viewers connect directly by hole punching, \
             except from symmetric NATs.",
            "Viewers behind symmetric NATs (many cellular networks) need a relay.",
        ),
        Behaviour::Known { .. } => (
            "This NAT makes a new public address for every destination (symmetric): hole \
             punching works only with viewers whose own NAT admits anyone.",
            "Most viewers (every one behind a home router or a cellular network) need a relay.",
        ),
    };
    let mut text = direct.to_owned();
    if !needs_relay.is_empty() {
        text.push(' ');
        text.push_str(needs_relay);
        text.push(' ');
        text.push_str(relay);
    }
    text
}

/// A relay that was allocated: its address, and how long it took.
pub(crate) type Allocated = (SocketAddr, Duration);

/// What the tests found for one configuration.
pub(crate) struct Probe {
    /// The STUN server's view, if one is configured.
    pub(crate) behaviour: Option<(Behaviour, Observations)>,
    /// Each TURN server (as `TURN over <transport> host:port`) and whether
    /// it allocated a relay (its relayed address, and how long it took) or
    /// why not.
    pub(crate) relays: Vec<(String, Result<Allocated, String>)>,
}

impl Probe {
    /// Whether some TURN server allocated a relay.
    pub(crate) fn relay_works(&self) -> bool {
        self.relays.iter().any(|(_, outcome)| outcome.is_ok())
    }
}

/// Runs the tests against the servers of `config`.
pub(crate) fn probe(config: &Config) -> anyhow::Result<Probe> {
    let mut stun = None;
    let mut turns = Vec::new();
    for server in &config.webrtc.ice_servers {
        let auth = TurnAuth::from_config(server);
        for url in &server.urls {
            match servers::parse_url(url, auth.clone()) {
                Ok(parsed) if parsed.role == ServerRole::Stun => stun = stun.or(Some(parsed)),
                Ok(parsed) => turns.push(parsed),
                Err(e) => bail!("webrtc.ice_servers: {e}"),
            }
        }
    }
    let now = crate::signal::protocol::unix_seconds(SystemTime::now());
    let tls = servers::tls_config(config.webrtc.turn_ca_file.as_deref())?;
    let behaviour = match stun {
        Some(stun) => {
            let server = smol::block_on(servers::resolve(std::slice::from_ref(&stun), now))
                .pop()
                .with_context(|| format!("cannot resolve {}", stun.host))?;
            let seen = observe(server.addr)?;
            Some((classify(&seen), seen))
        }
        None => None,
    };
    let relays = turns
        .iter()
        .map(|turn| {
            let transport = match &turn.role {
                ServerRole::Turn {
                    transport: TurnTransport::Tcp,
                    ..
                } => "TCP",
                ServerRole::Turn {
                    transport: TurnTransport::Tls,
                    ..
                } => "TLS",
                _ => "UDP",
            };
            let label = format!("TURN over {transport} {}:{}", turn.host, turn.port);
            (
                label,
                allocate(turn, now, &tls).map_err(|e| format!("{e:#}")),
            )
        })
        .collect();
    Ok(Probe { behaviour, relays })
}

/// Runs the tests for the configuration at `path`; returns the report.
pub(crate) fn run(path: &std::path::Path) -> anyhow::Result<String> {
    let config = Config::load(path)?;
    let probe = probe(&config).with_context(|| path.display().to_string())?;
    let Some((behaviour, seen)) = &probe.behaviour else {
        bail!(
            "{}: no stun: server in [[webrtc.ice_servers]]: add one (your TURN server usually \
             answers STUN too, e.g. stun:turn.example.org:3478)",
            path.display()
        );
    };
    let mut report = describe(behaviour, seen);
    for (server, outcome) in &probe.relays {
        report.push_str(&match outcome {
            Ok((relayed, took)) => format!(
                "{server}: relay allocated at {relayed} in {} ms\n",
                took.as_millis()
            ),
            Err(e) => format!("{server}: {e}\n"),
        });
    }
    report.push_str(&format!("\n{}\n", verdict(behaviour, probe.relay_works())));
    Ok(report)
}

/// The NAT behaviour in a few words, for `peercam check`.
pub(crate) fn summary(behaviour: &Behaviour) -> String {
    match behaviour {
        Behaviour::UdpBlocked => "UDP is blocked".into(),
        Behaviour::Partial { public, behind_nat } => {
            format!(
                "public address {public} ({})",
                if *behind_nat {
                    "behind a NAT"
                } else {
                    "no NAT"
                }
            )
        }
        Behaviour::Known {
            public, mapping, ..
        } => format!(
            "public address {public}, {}",
            match mapping {
                Mapping::NoNat => "no NAT",
                Mapping::EndpointIndependent => "hole punching works",
                _ => "symmetric NAT: most viewers need a relay",
            }
        ),
    }
}

/// The findings, one per line.
fn describe(behaviour: &Behaviour, seen: &Observations) -> String {
    let local = seen.local.map_or("unknown".into(), |l| l.to_string());
    match behaviour {
        Behaviour::UdpBlocked => "UDP: blocked (no STUN answer)\n".into(),
        Behaviour::Partial { public, .. } => format!(
            "local address: {local}\npublic address: {public}\nRFC 5780: not supported by \
             the STUN server (no OTHER-ADDRESS): mapping and filtering unknown\n"
        ),
        Behaviour::Known {
            public,
            mapping,
            filtering,
        } => format!(
            "local address: {local}\npublic address: {public}\nmapping: {}\nfiltering: {}\n",
            match mapping {
                Mapping::NoNat => "none (no NAT)",
                Mapping::EndpointIndependent => "endpoint-independent",
                Mapping::AddressDependent => "address-dependent",
                Mapping::AddressAndPortDependent => "address-and-port-dependent (symmetric)",
            },
            match filtering {
                Filtering::EndpointIndependent => "endpoint-independent",
                Filtering::AddressDependent => "address-dependent",
                Filtering::AddressAndPortDependent => "address-and-port-dependent",
            }
        ),
    }
}

/// Runs the RFC 5780 Binding tests against `server` from one UDP socket.
fn observe(server: SocketAddr) -> anyhow::Result<Observations> {
    let socket = UdpSocket::bind(SocketAddr::new(unspecified(server.ip()), 0))
        .context("cannot open a UDP socket")?;
    let local_ip = {
        let probe = UdpSocket::bind(SocketAddr::new(unspecified(server.ip()), 0))?;
        probe
            .connect(server)
            .context("no route to the STUN server")?;
        probe.local_addr()?.ip()
    };
    let local = SocketAddr::new(local_ip, socket.local_addr()?.port());
    let mut seen = Observations {
        local: Some(local),
        ..Observations::default()
    };
    let Some(first) = binding(&socket, server, 0)? else {
        return Ok(seen);
    };
    seen.primary = Some(first.mapped);
    seen.other = first.other;
    let Some(other) = first.other else {
        return Ok(seen);
    };
    let other_ip = SocketAddr::new(other.ip(), server.port());
    seen.other_ip = binding(&socket, other_ip, 0)?.map(|a| a.mapped);
    seen.other_ip_port = binding(&socket, other, 0)?.map(|a| a.mapped);
    // Filtering tests from a fresh socket, so no earlier test opened the way.
    let socket = UdpSocket::bind(SocketAddr::new(unspecified(server.ip()), 0))?;
    seen.answered_from_other_ip_port = binding(&socket, server, CHANGE_IP | CHANGE_PORT)?.is_some();
    seen.answered_from_other_port = binding(&socket, server, CHANGE_PORT)?.is_some();
    Ok(seen)
}

fn unspecified(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

/// One Binding answer.
struct Answer {
    mapped: SocketAddr,
    other: Option<SocketAddr>,
}

/// Sends a Binding request (with CHANGE-REQUEST `change`, when not 0) and
/// waits for its answer, from wherever it comes.
fn binding(socket: &UdpSocket, to: SocketAddr, change: u32) -> anyhow::Result<Option<Answer>> {
    let transaction = TransactionId::generate();
    let mut request = Message::builder(
        MessageType::from_class_method(MessageClass::Request, BINDING),
        transaction,
        MessageWriteVec::new(),
    );
    let flags = change.to_be_bytes();
    if change != 0 {
        request
            .add_attribute(&RawAttribute::new(
                AttributeType::new(CHANGE_REQUEST),
                &flags,
            ))
            .context("cannot build a STUN request")?;
    }
    let request = request.finish();
    let mut buf = [0u8; 1500];
    socket.set_read_timeout(Some(ATTEMPT_WAIT))?;
    for _ in 0..ATTEMPTS {
        socket.send_to(&request, to)?;
        let until = Instant::now() + ATTEMPT_WAIT;
        while Instant::now() < until {
            let n = match socket.recv_from(&mut buf) {
                Ok((n, _)) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => return Err(e.into()),
            };
            if let Some(answer) = read_answer(&buf[..n], transaction) {
                return Ok(Some(answer));
            }
        }
    }
    Ok(None)
}

/// The mapped and other address of a Binding success for `transaction`.
fn read_answer(data: &[u8], transaction: TransactionId) -> Option<Answer> {
    let message = Message::from_bytes(data).ok()?;
    if message.transaction_id() != transaction || !message.is_response() {
        return None;
    }
    let mapped = message
        .attribute::<XorMappedAddress>()
        .ok()?
        .addr(transaction);
    let other = message
        .raw_attribute(AttributeType::new(OTHER_ADDRESS))
        .and_then(|raw| plain_address(raw.value.as_ref()));
    Some(Answer { mapped, other })
}

/// A MAPPED-ADDRESS-style value: 0, family, port, address (RFC 8489 14.1).
fn plain_address(value: &[u8]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]);
    let ip: IpAddr = match (value.get(1)?, value.len()) {
        (0x01, 8) => <[u8; 4]>::try_from(&value[4..8]).ok()?.into(),
        (0x02, 20) => <[u8; 16]>::try_from(&value[4..20]).ok()?.into(),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Allocates a relay on `turn` (credentials minted for `now` where a
/// secret is set); returns the relayed address.
fn allocate(
    turn: &IceServerUrl,
    now: u64,
    tls: &std::sync::Arc<rustls::ClientConfig>,
) -> anyhow::Result<Allocated> {
    let server = smol::block_on(servers::resolve(std::slice::from_ref(turn), now))
        .pop()
        .with_context(|| format!("cannot resolve {}", turn.host))?;
    let socket = UdpSocket::bind(SocketAddr::new(unspecified(server.addr.ip()), 0))?;
    socket.set_read_timeout(Some(Duration::from_millis(20)))?;
    let local = socket.local_addr()?;
    let started = Instant::now();
    let mut gatherer = Gatherer::new(&[local], std::slice::from_ref(&server), tls, 0, started);
    let mut tcp: Option<(usize, TcpStream)> = None;
    let mut buf = [0u8; 4096];
    while started.elapsed() < ALLOCATION_WAIT {
        while let Some(message) = gatherer.poll_transmit() {
            match message {
                ToServer::Datagram { to, data, .. } => {
                    socket.send_to(&data, to)?;
                }
                ToServer::Connect { stream, server } => {
                    match TcpStream::connect_timeout(&server, ALLOCATION_WAIT) {
                        Ok(connected) => {
                            connected.set_read_timeout(Some(Duration::from_millis(20)))?;
                            let local = connected.local_addr()?;
                            gatherer.stream_connected(stream, local, Instant::now());
                            tcp = Some((stream, connected));
                        }
                        Err(e) => bail!("cannot connect over TCP: {e}"),
                    }
                }
                ToServer::Stream { data, .. } => {
                    if let Some((_, tcp)) = &mut tcp {
                        tcp.write_all(&data)?;
                    }
                }
            }
        }
        if let Some(event) = gatherer.poll_event() {
            match event {
                GatherEvent::Candidate(candidate) => {
                    return Ok((candidate.addr(), started.elapsed()));
                }
                GatherEvent::Done => bail!(
                    "no relay: wrong credentials (check username/credential or secret) or the \
                     server refused"
                ),
            }
        }
        if let Some((stream, connection)) = &mut tcp {
            match connection.read(&mut buf) {
                Ok(0) => bail!("the server closed the TCP connection"),
                Ok(n) => {
                    gatherer.stream_data(*stream, &buf[..n], Instant::now());
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e.into()),
            }
        } else if let Ok((n, from)) = socket.recv_from(&mut buf) {
            gatherer.handle_datagram(local, from, &buf[..n], Instant::now());
        }
        gatherer.handle_timeout(Instant::now());
    }
    bail!("no answer within {ALLOCATION_WAIT:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Option<SocketAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn classifies_each_nat_of_rfc_4787() {
        let base = Observations {
            local: addr("10.0.0.2:5000"),
            primary: addr("198.51.100.2:5000"),
            other: addr("198.51.100.4:3479"),
            other_ip: addr("198.51.100.2:5000"),
            other_ip_port: addr("198.51.100.2:5000"),
            ..Observations::default()
        };
        let known = |seen: &Observations| match classify(seen) {
            Behaviour::Known {
                mapping, filtering, ..
            } => (mapping, filtering),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            known(&base),
            (
                Mapping::EndpointIndependent,
                Filtering::AddressAndPortDependent
            )
        );
        let full_cone = Observations {
            answered_from_other_ip_port: true,
            answered_from_other_port: true,
            ..base.clone()
        };
        assert_eq!(
            known(&full_cone),
            (Mapping::EndpointIndependent, Filtering::EndpointIndependent)
        );
        let symmetric = Observations {
            other_ip: addr("198.51.100.2:6000"),
            other_ip_port: addr("198.51.100.2:7000"),
            ..base.clone()
        };
        assert_eq!(known(&symmetric).0, Mapping::AddressAndPortDependent);
        let address_dependent = Observations {
            other_ip: addr("198.51.100.2:6000"),
            other_ip_port: addr("198.51.100.2:6000"),
            answered_from_other_port: true,
            ..base.clone()
        };
        assert_eq!(
            known(&address_dependent),
            (Mapping::AddressDependent, Filtering::AddressDependent)
        );
        let public = Observations {
            local: addr("198.51.100.2:5000"),
            ..base.clone()
        };
        assert_eq!(known(&public).0, Mapping::NoNat);
        assert_eq!(
            classify(&Observations {
                primary: None,
                ..base.clone()
            }),
            Behaviour::UdpBlocked
        );
        assert!(matches!(
            classify(&Observations {
                other: None,
                ..base
            }),
            Behaviour::Partial {
                behind_nat: true,
                ..
            }
        ));
    }

    #[test]
    fn the_verdict_names_who_needs_a_relay() {
        let symmetric = Behaviour::Known {
            public: "198.51.100.2:5000".parse().unwrap(),
            mapping: Mapping::AddressAndPortDependent,
            filtering: Filtering::AddressAndPortDependent,
        };
        let text = verdict(&symmetric, false);
        assert!(text.contains("need a relay"), "{text}");
        assert!(text.contains("add a turn: server"), "{text}");
        assert!(verdict(&Behaviour::UdpBlocked, true).contains("TURN over TCP"));
        assert!(
            verdict(&symmetric, true).contains("connect through it"),
            "a working relay is named"
        );
    }

    #[test]
    fn reads_plain_addresses() {
        assert_eq!(
            plain_address(&[0, 1, 0x0d, 0x97, 198, 51, 100, 4]),
            addr("198.51.100.4:3479")
        );
        assert_eq!(plain_address(&[0, 1, 0]), None);
        assert_eq!(plain_address(&[0, 9, 0, 1, 1, 2, 3, 4]), None);
    }
}
