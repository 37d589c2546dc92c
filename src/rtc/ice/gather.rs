//! Gathering for one session, sans-IO like str0m: a server-reflexive
//! candidate per media socket from each STUN server (RFC 8489 Binding), a
//! relayed candidate from each TURN server over UDP, or over a TCP
//! connection for networks that block UDP (RFC 8656 and RFC 6062 framing,
//! with `turn-client-proto` doing allocation, authentication, refreshes,
//! permissions and channels), and the relay's data path wrapped and
//! unwrapped around the session's datagrams. Time is passed in; the
//! driver opens the TCP connections it is asked for.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::Candidate;
use str0m::net::Protocol;
use turn_client_proto::api::{TurnClientApi, TurnConfig, TurnEvent, TurnPollRet, TurnRecvRet};
use turn_client_proto::stun::Instant as TurnInstant;
use turn_client_proto::stun::agent::Transmit;
use turn_client_proto::tcp::TurnClientTcp;
use turn_client_proto::types::stun::attribute::XorMappedAddress;
use turn_client_proto::types::stun::message::{
    BINDING, Message, MessageClass, MessageType, MessageWriteVec, TransactionId,
};
use turn_client_proto::types::stun::prelude::MessageWrite;
use turn_client_proto::types::{TransportType, TurnCredentials};
use turn_client_proto::udp::TurnClientUdp;
use turn_client_rustls::TurnClientRustls;
use turn_client_rustls::rustls::ClientConfig;
use turn_client_rustls::rustls::pki_types::ServerName;

use super::servers::{ResolvedServer, ServerRole, TurnAuth, TurnTransport};

/// Gathering gives up after this long: end-of-candidates goes out with
/// whatever was found, so a dead server costs the viewer at most this.
pub(crate) const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait before a STUN Binding request is sent again (RFC 8489 RTO),
/// doubled after each try.
const BINDING_RTO: Duration = Duration::from_millis(500);
/// How long a closing session keeps its sockets to release its relays:
/// TURN clients pace their requests tens of milliseconds apart.
pub(crate) const CLOSE_FLUSH: Duration = Duration::from_millis(300);
/// Peers a relay binds channels for; a session has a handful of candidates.
const MAX_RELAY_PEERS: usize = 64;

/// What gathering reports.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GatherEvent {
    /// A new local candidate to add and trickle.
    Candidate(Candidate),
    /// Nothing more will be gathered: end-of-candidates.
    Done,
}

turn_client_proto::impl_client!(
    pub(crate) RelayClient,
    (Udp, TurnClientUdp),
    (Tcp, TurnClientTcp),
    (Tls, TurnClientRustls)
);

/// What a relay over a TCP connection needs once the connection is up.
struct Connecting {
    server: SocketAddr,
    config: TurnConfig,
    /// For TURN over TLS: the name to verify, and the trust anchors.
    tls: Option<(ServerName<'static>, Arc<ClientConfig>)>,
}

/// One TCP connection to a TURN server, numbered by the gatherer.
pub(crate) type StreamId = usize;

/// What the gatherer asks the driver to send or open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToServer {
    /// A datagram from media socket `from`.
    Datagram {
        /// The media socket to send from.
        from: SocketAddr,
        /// The server.
        to: SocketAddr,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Open TCP connection `stream` to `server`, then report it with
    /// [`Gatherer::stream_connected`] or [`Gatherer::stream_failed`].
    Connect {
        /// The connection's number.
        stream: StreamId,
        /// The TURN server.
        server: SocketAddr,
    },
    /// Bytes to write on connection `stream`.
    Stream {
        /// The connection's number.
        stream: StreamId,
        /// The bytes.
        data: Vec<u8>,
    },
}

/// What a datagram from a server turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FromServer {
    /// Not from a server this session uses: it is the session's own.
    NotMine,
    /// Signaling between the device and the server; nothing for the session.
    Handled,
    /// Data a peer sent to relay `relayed`: feed it to the session as if
    /// it arrived on that address.
    Relayed {
        /// The relayed address it arrived on.
        relayed: SocketAddr,
        /// The peer that sent it.
        peer: SocketAddr,
        /// The data.
        data: Vec<u8>,
    },
}

/// One STUN Binding transaction: a media socket asking a server.
struct Binding {
    local: SocketAddr,
    server: SocketAddr,
    transaction: TransactionId,
    request: Vec<u8>,
    next_send: Instant,
    rto: Duration,
    finished: bool,
}

/// One TURN allocation, over UDP from a media socket or over its own TCP
/// connection.
struct Relay {
    /// Until its TCP connection is up: none, and what it will need.
    client: Option<RelayClient>,
    connecting: Option<Connecting>,
    /// Its TCP connection, if it runs over one, and that connection's frames.
    stream: Option<StreamId>,
    framer: TcpFramer,
    url: String,
    relayed: Option<SocketAddr>,
    finished: bool,
    peers: HashSet<SocketAddr>,
}

/// Gathering and relaying for one session.
pub(crate) struct Gatherer {
    /// The origin of the TURN client's clock.
    base: Instant,
    give_up: Instant,
    bindings: Vec<Binding>,
    relays: Vec<Relay>,
    outgoing: VecDeque<ToServer>,
    events: VecDeque<GatherEvent>,
    done: bool,
}

impl Gatherer {
    /// Starts gathering on every media socket `locals` from every server:
    /// STUN and TURN over UDP from each socket, TURN over TCP once per
    /// server (the relay serves every socket's pairs). TLS is not built yet
    /// and is left out with a warning.
    /// TCP connections are numbered from `first_stream`, so numbers stay
    /// unique across the gatherers of one session; `tls` is whom `turns:`
    /// servers must prove to be.
    pub(crate) fn new(
        locals: &[SocketAddr],
        servers: &[ResolvedServer],
        tls: &Arc<ClientConfig>,
        first_stream: StreamId,
        now: Instant,
    ) -> Self {
        let mut bindings = Vec::new();
        let mut relays = Vec::new();
        let mut outgoing = VecDeque::new();
        for server in servers {
            let locals = locals
                .iter()
                .filter(|l| l.is_ipv4() == server.addr.is_ipv4());
            let (transport, config) = match &server.role {
                ServerRole::Stun => {
                    bindings.extend(locals.map(|local| Binding::new(*local, server.addr, now)));
                    continue;
                }
                ServerRole::Turn {
                    transport,
                    auth: TurnAuth::Static { username, password },
                } => (
                    *transport,
                    TurnConfig::new(TurnCredentials::new(username, password)),
                ),
                ServerRole::Turn { .. } => {
                    tracing::debug!("{}: credentials not minted yet; not used", server.url);
                    continue;
                }
            };
            let relay = |client, connecting, stream| Relay {
                client,
                connecting,
                stream,
                framer: TcpFramer::default(),
                url: server.url.clone(),
                relayed: None,
                finished: false,
                peers: HashSet::new(),
            };
            match transport {
                TurnTransport::Udp => relays.extend(locals.map(|local| {
                    let client = TurnClientUdp::allocate(*local, server.addr, config.clone());
                    relay(Some(RelayClient::Udp(client)), None, None)
                })),
                TurnTransport::Tcp | TurnTransport::Tls => {
                    let tls = match transport {
                        TurnTransport::Tls => match ServerName::try_from(server.host.clone()) {
                            Ok(name) => Some((name, Arc::clone(tls))),
                            Err(e) => {
                                tracing::warn!("{}: {e}; the device does not use it", server.url);
                                continue;
                            }
                        },
                        _ => None,
                    };
                    let stream = first_stream + relays.len();
                    outgoing.push_back(ToServer::Connect {
                        stream,
                        server: server.addr,
                    });
                    let connecting = Connecting {
                        server: server.addr,
                        config,
                        tls,
                    };
                    relays.push(relay(None, Some(connecting), Some(stream)));
                }
            }
        }
        let mut gatherer = Gatherer {
            base: now,
            give_up: now + GATHER_TIMEOUT,
            bindings,
            relays,
            outgoing,
            events: VecDeque::new(),
            done: false,
        };
        gatherer.handle_timeout(now);
        gatherer
    }

    /// Handles a datagram that arrived on media socket `local` from `from`.
    /// Anything malformed is dropped (as `Handled` when it came from a
    /// server of this session).
    pub(crate) fn handle_datagram(
        &mut self,
        local: SocketAddr,
        from: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> FromServer {
        // One server may serve both STUN and TURN: a Binding response is
        // told apart by its transaction.
        let mut answered = None;
        for binding in self
            .bindings
            .iter_mut()
            .filter(|b| b.local == local && b.server == from)
        {
            if let Some(mapped) = binding.response(data) {
                answered = Some(mapped);
                break;
            }
        }
        if let Some(mapped) = answered {
            match Candidate::server_reflexive(mapped, local, Protocol::Udp) {
                Ok(candidate) => self.events.push_back(GatherEvent::Candidate(candidate)),
                Err(e) => tracing::debug!("STUN {from}: unusable mapped address: {e}"),
            }
            self.check_done();
            return FromServer::Handled;
        }
        let at = self.turn_time(now);
        let Some(relay) = self.relays.iter_mut().find(|r| {
            r.stream.is_none()
                && r.client
                    .as_ref()
                    .is_some_and(|c| c.local_addr() == local && c.remote_addr() == from)
        }) else {
            let stun_server = self
                .bindings
                .iter()
                .any(|b| b.local == local && b.server == from);
            return if stun_server {
                FromServer::Handled
            } else {
                FromServer::NotMine
            };
        };
        let outcome = relay
            .receive(Transmit::new(data, TransportType::Udp, from, local), at)
            .into_iter()
            .next()
            .unwrap_or(FromServer::Handled);
        self.progress(now);
        outcome
    }

    /// TCP connection `stream` is up, from local address `local`: its
    /// relay allocates now.
    pub(crate) fn stream_connected(&mut self, stream: StreamId, local: SocketAddr, now: Instant) {
        if let Some(relay) = self.relays.iter_mut().find(|r| r.stream == Some(stream))
            && let Some(connecting) = relay.connecting.take()
        {
            let Connecting {
                server,
                config,
                tls,
            } = connecting;
            relay.client = Some(match tls {
                Some((name, tls)) => {
                    RelayClient::Tls(TurnClientRustls::allocate(local, server, config, name, tls))
                }
                None => RelayClient::Tcp(TurnClientTcp::allocate(local, server, config)),
            });
        }
        self.progress(now);
    }

    /// TCP connection `stream` could not be opened, or closed.
    pub(crate) fn stream_failed(&mut self, stream: StreamId, now: Instant) {
        if let Some(relay) = self.relays.iter_mut().find(|r| r.stream == Some(stream)) {
            if !relay.finished {
                tracing::warn!("{}: cannot connect; calls go on without it", relay.url);
            }
            relay.finished = true;
            relay.connecting = None;
            relay.client = None;
            relay.relayed = None;
        }
        self.progress(now);
    }

    /// Bytes that arrived on TCP connection `stream`; returns the relayed
    /// packets they completed (the framing may split or join them).
    pub(crate) fn stream_data(
        &mut self,
        stream: StreamId,
        data: &[u8],
        now: Instant,
    ) -> Vec<FromServer> {
        let at = self.turn_time(now);
        let Some(relay) = self.relays.iter_mut().find(|r| r.stream == Some(stream)) else {
            return Vec::new();
        };
        let Some((local, server)) = relay
            .client
            .as_ref()
            .map(|c| (c.local_addr(), c.remote_addr()))
        else {
            return Vec::new();
        };
        let mut packets = Vec::new();
        if matches!(relay.client, Some(RelayClient::Tls(_))) {
            // TLS records: the client decrypts and frames them itself.
            packets
                .extend(relay.receive(Transmit::new(data, TransportType::Tcp, server, local), at));
        } else {
            relay.framer.push(data);
            while let Some(frame) = relay.framer.next_frame() {
                let frame = Transmit::new(frame.as_slice(), TransportType::Tcp, server, local);
                packets.extend(relay.receive(frame, at));
            }
        }
        self.progress(now);
        packets
    }

    /// Sends `data` from relayed address `relayed` to `to` through its
    /// TURN server. A peer without a permission yet gets one (and a
    /// channel); this first packet is dropped, as ICE retransmits.
    pub(crate) fn send_relayed(
        &mut self,
        relayed: SocketAddr,
        to: SocketAddr,
        data: &[u8],
        now: Instant,
    ) {
        let at = self.turn_time(now);
        let Some(relay) = self.relays.iter_mut().find(|r| r.relayed == Some(relayed)) else {
            return;
        };
        relay.allow(to, at);
        let stream = relay.stream;
        if let Some(client) = &mut relay.client
            && let Ok(Some(transmit)) = client.send_to(TransportType::Udp, to, data, at)
        {
            let tcp = matches!(client, RelayClient::Tcp(_));
            let transmit = transmit.build();
            let mut data = transmit.data;
            if tcp {
                pad_channel_data(&mut data);
            }
            self.outgoing
                .push_back(to_server(stream, transmit.from, transmit.to, data));
        }
        self.progress(now);
    }

    /// A remote candidate at `peer`: every relay gets a permission for it
    /// now, so its first checks through the relay are not dropped.
    pub(crate) fn remote_candidate(&mut self, peer: SocketAddr, now: Instant) {
        let at = self.turn_time(now);
        for relay in &mut self.relays {
            relay.allow(peer, at);
        }
        self.progress(now);
    }

    /// How the relay whose relayed address is `addr` reaches its server
    /// (`udp` or `tcp`), if `addr` is one.
    pub(crate) fn relay_transport(&self, addr: SocketAddr) -> Option<&'static str> {
        let relay = self.relays.iter().find(|r| r.relayed == Some(addr))?;
        Some(match relay.client {
            Some(RelayClient::Tls(_)) => "tls",
            Some(RelayClient::Tcp(_)) => "tcp",
            _ => "udp",
        })
    }

    /// Whether `addr` is one of this session's relayed addresses.
    pub(crate) fn is_relayed(&self, addr: SocketAddr) -> bool {
        self.relays.iter().any(|r| r.relayed == Some(addr))
    }

    /// Advances retransmissions, refreshes and the gathering deadline.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for binding in &mut self.bindings {
            if let Some(request) = binding.due(now, self.give_up) {
                self.outgoing.push_back(request);
            }
        }
        self.progress(now);
    }

    /// When [`Gatherer::handle_timeout`] is due next.
    pub(crate) fn deadline(&mut self, now: Instant) -> Option<Instant> {
        let at = self.turn_time(now);
        let bindings = self
            .bindings
            .iter()
            .filter(|b| !b.finished)
            .map(|b| b.next_send.min(self.give_up));
        let relays = self
            .relays
            .iter_mut()
            .filter_map(|r| match r.client.as_mut()?.poll(at) {
                TurnPollRet::WaitUntil(when) => Some(when.to_std(self.base)),
                _ => None,
            });
        let gathering = (!self.done).then_some(self.give_up);
        bindings.chain(relays).chain(gathering).min()
    }

    /// The next thing to send to (or open towards) a server.
    pub(crate) fn poll_transmit(&mut self) -> Option<ToServer> {
        self.outgoing.pop_front()
    }

    /// The next gathering event.
    pub(crate) fn poll_event(&mut self) -> Option<GatherEvent> {
        self.events.pop_front()
    }

    /// The session is over: every allocation is released. The requests
    /// leave through [`Gatherer::poll_transmit`] as the TURN clients pace
    /// them (within [`CLOSE_FLUSH`]); the sockets must stay open that long.
    pub(crate) fn close(&mut self, now: Instant) {
        let at = self.turn_time(now);
        for client in self.relays.iter_mut().filter_map(|r| r.client.as_mut()) {
            let _ = client.delete(at);
        }
        self.progress(now);
    }

    /// Drives every TURN client: its transmits, its events.
    fn progress(&mut self, now: Instant) {
        let at = self.turn_time(now);
        for relay in &mut self.relays {
            let Some(client) = &mut relay.client else {
                continue;
            };
            let _ = client.poll(at);
            while let Some(transmit) = client.poll_transmit(at) {
                let data = transmit.data.to_vec();
                self.outgoing
                    .push_back(to_server(relay.stream, transmit.from, transmit.to, data));
            }
            while let Some(event) = client.poll_event() {
                match event {
                    TurnEvent::AllocationCreated(TransportType::Udp, relayed) => {
                        relay.relayed = Some(relayed);
                        relay.finished = true;
                        let local = client.local_addr();
                        match Candidate::relayed(relayed, local, Protocol::Udp) {
                            Ok(candidate) => {
                                tracing::debug!("{}: relay {relayed}", relay.url);
                                self.events.push_back(GatherEvent::Candidate(candidate));
                            }
                            Err(e) => tracing::warn!("{}: unusable relay address: {e}", relay.url),
                        }
                    }
                    TurnEvent::AllocationCreateFailed(_) => {
                        relay.finished = true;
                        tracing::warn!(
                            "{}: no relay allocated (wrong credentials, an untrusted TLS \
                             certificate, or the server refused); calls go on without it",
                            relay.url
                        );
                    }
                    TurnEvent::PermissionCreateFailed(_, ip) => {
                        tracing::debug!("{}: no permission for {ip}", relay.url)
                    }
                    _ => {}
                }
            }
        }
        if now >= self.give_up {
            for binding in self.bindings.iter_mut().filter(|b| !b.finished) {
                binding.finished = true;
                tracing::warn!(
                    "STUN {}: no answer within {GATHER_TIMEOUT:?}; calls go on without a \
                     server-reflexive candidate",
                    binding.server
                );
            }
            for relay in self.relays.iter_mut().filter(|r| !r.finished) {
                relay.finished = true;
                tracing::warn!(
                    "{}: no relay within {GATHER_TIMEOUT:?}; calls go on without it",
                    relay.url
                );
            }
        }
        self.check_done();
    }

    fn check_done(&mut self) {
        let finished =
            self.bindings.iter().all(|b| b.finished) && self.relays.iter().all(|r| r.finished);
        if finished && !self.done {
            self.done = true;
            self.events.push_back(GatherEvent::Done);
        }
    }

    /// `now` on the TURN client's clock.
    fn turn_time(&self, now: Instant) -> TurnInstant {
        let since = now.saturating_duration_since(self.base);
        TurnInstant::from_nanos(i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
    }
}

/// Over TCP, a ChannelData message is padded to a multiple of four bytes
/// (RFC 8656 12.5), which `turn-client-proto` 0.7 leaves out; coturn
/// needs it to find the next message.
fn pad_channel_data(data: &mut Vec<u8>) {
    if data.first().is_some_and(|b| b & 0xc0 == 0x40) {
        data.resize(data.len().next_multiple_of(4), 0);
    }
}

/// Largest frame accepted on a TCP connection to a TURN server: a STUN
/// message or ChannelData of a full datagram, with room to spare.
const MAX_TCP_FRAME: usize = 65_536 + 20;

/// Splits the byte stream from a TURN server into STUN messages and
/// ChannelData messages, without the padding that follows ChannelData over
/// TCP (RFC 8656 12.5), so each reaches the TURN client whole.
#[derive(Debug, Default)]
struct TcpFramer {
    buffer: Vec<u8>,
}

impl TcpFramer {
    fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// The next complete frame, if the buffer holds one. Anything that is
    /// neither STUN nor ChannelData is a broken stream: it is dropped.
    fn next_frame(&mut self) -> Option<Vec<u8>> {
        let header = self.buffer.get(..4)?;
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let (frame, padded) = match header[0] & 0xc0 {
            0x00 => (20 + length, 20 + length),
            0x40 => (4 + length, (4 + length).next_multiple_of(4)),
            _ => {
                self.buffer.clear();
                return None;
            }
        };
        if padded > MAX_TCP_FRAME {
            self.buffer.clear();
            return None;
        }
        if self.buffer.len() < padded {
            return None;
        }
        let rest = self.buffer.split_off(padded);
        let mut frame_bytes = std::mem::replace(&mut self.buffer, rest);
        frame_bytes.truncate(frame);
        Some(frame_bytes)
    }
}

/// A client's transmit, on its TCP connection or as a datagram.
fn to_server(
    stream: Option<StreamId>,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
) -> ToServer {
    match stream {
        Some(stream) => ToServer::Stream { stream, data },
        None => ToServer::Datagram { from, to, data },
    }
}

impl Relay {
    /// Hands what the server sent to the client; returns the peer data in it.
    fn receive(&mut self, transmit: Transmit<&[u8]>, at: TurnInstant) -> Vec<FromServer> {
        let Some(client) = &mut self.client else {
            return Vec::new();
        };
        let mut packets = Vec::new();
        let relayed = self.relayed;
        let mut deliver = |peer: SocketAddr, data: &[u8]| {
            if let Some(relayed) = relayed {
                packets.push(FromServer::Relayed {
                    relayed,
                    peer,
                    data: data.to_vec(),
                });
            }
        };
        if let TurnRecvRet::PeerData(peer) = client.recv(transmit, at) {
            deliver(peer.peer, peer.data());
        }
        while let Some(peer) = client.poll_recv(at) {
            deliver(peer.peer, peer.data());
        }
        packets
    }

    /// Makes sure `peer` may be reached through this relay.
    fn allow(&mut self, peer: SocketAddr, at: TurnInstant) {
        let Some(client) = &mut self.client else {
            return;
        };
        // A permission covers every port of an address (RFC 8656 9): it is
        // asked for once per address, since the library refuses, and logs
        // as an error, a second request while the first is on its way.
        let address_asked = self.peers.iter().any(|known| known.ip() == peer.ip());
        if self.relayed.is_none() || self.peers.len() >= MAX_RELAY_PEERS || !self.peers.insert(peer)
        {
            return;
        }
        if !address_asked {
            let _ = client.create_permission(TransportType::Udp, peer.ip(), at);
        }
        // Inside TLS the library would need ChannelData padded (RFC 8656
        // 12.5), which it cannot do: TLS relays carry Send and Data
        // indications, which STUN keeps aligned.
        if !matches!(client, RelayClient::Tls(_)) {
            let _ = client.bind_channel(TransportType::Udp, peer, at);
        }
    }
}

impl Binding {
    fn new(local: SocketAddr, server: SocketAddr, now: Instant) -> Self {
        let transaction = TransactionId::generate();
        let request = Message::builder(
            MessageType::from_class_method(MessageClass::Request, BINDING),
            transaction,
            MessageWriteVec::new(),
        );
        Binding {
            local,
            server,
            transaction,
            request: request.finish(),
            next_send: now,
            rto: BINDING_RTO,
            finished: false,
        }
    }

    /// The request, when it is due (again).
    fn due(&mut self, now: Instant, give_up: Instant) -> Option<ToServer> {
        if self.finished || now < self.next_send || now >= give_up {
            return None;
        }
        self.next_send = now + self.rto;
        self.rto *= 2;
        Some(ToServer::Datagram {
            from: self.local,
            to: self.server,
            data: self.request.clone(),
        })
    }

    /// The mapped address of a success response to this transaction.
    fn response(&mut self, data: &[u8]) -> Option<SocketAddr> {
        let message = Message::from_bytes(data).ok()?;
        if self.finished || message.transaction_id() != self.transaction || !message.is_response() {
            return None;
        }
        let mapped = message.attribute::<XorMappedAddress>().ok()?;
        self.finished = true;
        Some(mapped.addr(self.transaction))
    }
}

#[cfg(test)]
mod tests;
