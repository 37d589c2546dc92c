//! Gathering for one session, sans-IO like str0m: a server-reflexive
//! candidate per media socket from each STUN server (RFC 8489 Binding), a
//! relayed candidate from each TURN server over UDP (RFC 8656, with
//! `turn-client-proto` doing allocation, authentication, refreshes,
//! permissions and channels), and the relay's data path wrapped and
//! unwrapped around the session's datagrams. Time is passed in.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::Candidate;
use str0m::net::Protocol;
use turn_client_proto::api::{TurnClientApi, TurnConfig, TurnEvent, TurnPollRet, TurnRecvRet};
use turn_client_proto::stun::Instant as TurnInstant;
use turn_client_proto::stun::agent::Transmit;
use turn_client_proto::types::stun::attribute::XorMappedAddress;
use turn_client_proto::types::stun::message::{
    BINDING, Message, MessageClass, MessageType, MessageWriteVec, TransactionId,
};
use turn_client_proto::types::stun::prelude::MessageWrite;
use turn_client_proto::types::{TransportType, TurnCredentials};
use turn_client_proto::udp::TurnClientUdp;

use super::servers::{ResolvedServer, ServerRole, TurnTransport};

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

/// A datagram for a STUN/TURN server, from media socket `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerDatagram {
    /// The media socket to send from.
    pub(crate) from: SocketAddr,
    /// The server.
    pub(crate) to: SocketAddr,
    /// The bytes.
    pub(crate) data: Vec<u8>,
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

/// One TURN allocation over UDP from a media socket.
struct Relay {
    client: TurnClientUdp,
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
    outgoing: VecDeque<ServerDatagram>,
    events: VecDeque<GatherEvent>,
    done: bool,
}

impl Gatherer {
    /// Starts gathering on every media socket `locals` from every server.
    /// TURN over TCP and TLS needs a connection of its own and is left out here.
    pub(crate) fn new(locals: &[SocketAddr], servers: &[ResolvedServer], now: Instant) -> Self {
        let mut bindings = Vec::new();
        let mut relays = Vec::new();
        for server in servers {
            for local in locals
                .iter()
                .filter(|l| l.is_ipv4() == server.addr.is_ipv4())
            {
                match &server.role {
                    ServerRole::Stun => bindings.push(Binding::new(*local, server.addr, now)),
                    ServerRole::Turn {
                        transport: TurnTransport::Udp,
                        username,
                        password,
                    } => {
                        let config = TurnConfig::new(TurnCredentials::new(username, password));
                        relays.push(Relay {
                            client: TurnClientUdp::allocate(*local, server.addr, config),
                            url: server.url.clone(),
                            relayed: None,
                            finished: false,
                            peers: HashSet::new(),
                        });
                    }
                    ServerRole::Turn { .. } => {}
                }
            }
        }
        let mut gatherer = Gatherer {
            base: now,
            give_up: now + GATHER_TIMEOUT,
            bindings,
            relays,
            outgoing: VecDeque::new(),
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
        let Some(relay) = self
            .relays
            .iter_mut()
            .find(|r| r.client.local_addr() == local && r.client.remote_addr() == from)
        else {
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
        let transmit = Transmit::new(data, TransportType::Udp, from, local);
        let outcome = match relay.client.recv(transmit, at) {
            TurnRecvRet::PeerData(peer) => match relay.relayed {
                Some(relayed) => FromServer::Relayed {
                    relayed,
                    peer: peer.peer,
                    data: peer.data().to_vec(),
                },
                None => FromServer::Handled,
            },
            _ => FromServer::Handled,
        };
        self.progress(now);
        outcome
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
        if let Ok(Some(transmit)) = relay.client.send_to(TransportType::Udp, to, data, at) {
            let transmit = transmit.build();
            self.outgoing.push_back(ServerDatagram {
                from: transmit.from,
                to: transmit.to,
                data: transmit.data,
            });
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
            .filter_map(|r| match r.client.poll(at) {
                TurnPollRet::WaitUntil(when) => Some(when.to_std(self.base)),
                _ => None,
            });
        let gathering = (!self.done).then_some(self.give_up);
        bindings.chain(relays).chain(gathering).min()
    }

    /// The next datagram to send to a server.
    pub(crate) fn poll_transmit(&mut self) -> Option<ServerDatagram> {
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
        for relay in &mut self.relays {
            let _ = relay.client.delete(at);
        }
        self.progress(now);
    }

    /// Drives every TURN client: its transmits, its events.
    fn progress(&mut self, now: Instant) {
        let at = self.turn_time(now);
        for relay in &mut self.relays {
            let _ = relay.client.poll(at);
            while let Some(transmit) = relay.client.poll_transmit(at) {
                self.outgoing.push_back(ServerDatagram {
                    from: transmit.from,
                    to: transmit.to,
                    data: transmit.data.to_vec(),
                });
            }
            while let Some(event) = relay.client.poll_event() {
                match event {
                    TurnEvent::AllocationCreated(TransportType::Udp, relayed) => {
                        relay.relayed = Some(relayed);
                        relay.finished = true;
                        let local = relay.client.local_addr();
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
                            "{}: no relay allocated (wrong credentials, or the server refused); \
                             calls go on without it",
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

impl Relay {
    /// Makes sure `peer` may be reached through this relay.
    fn allow(&mut self, peer: SocketAddr, at: TurnInstant) {
        if self.relayed.is_none() || self.peers.len() >= MAX_RELAY_PEERS || !self.peers.insert(peer)
        {
            return;
        }
        if !self.client.have_permission(TransportType::Udp, peer.ip()) {
            let _ = self
                .client
                .create_permission(TransportType::Udp, peer.ip(), at);
        }
        let _ = self.client.bind_channel(TransportType::Udp, peer, at);
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
    fn due(&mut self, now: Instant, give_up: Instant) -> Option<ServerDatagram> {
        if self.finished || now < self.next_send || now >= give_up {
            return None;
        }
        self.next_send = now + self.rto;
        self.rto *= 2;
        Some(ServerDatagram {
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
