use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};

use super::*;
use crate::rtc::ice::servers::{parse_url, resolve};

/// A real coturn on loopback, with one long-term user; killed when dropped.
struct Coturn {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

/// How the test coturn checks credentials.
enum Auth {
    /// One long-term user, `peercam:secret`.
    User,
    /// TURN REST credentials minted from this shared secret.
    SharedSecret(&'static str),
}

impl Coturn {
    fn start() -> Coturn {
        Coturn::start_with(Auth::User)
    }

    fn start_with(auth: Auth) -> Coturn {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!(
            "peercam-coturn-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let relay_ports = 40_000 + rand::random::<u16>() % 20_000;
        let conf = dir.join("turn.conf");
        std::fs::write(
            &conf,
            format!(
                "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nlistening-port={port}\n\
                 min-port={relay_ports}\nmax-port={}\n{}\n\
                 realm=peercam.test\nfingerprint\nno-tls\nno-dtls\nno-cli\n\
                 allow-loopback-peers\nlog-file=stdout\nsimple-log\npidfile={}/pid\n\
                 userdb={}/db.sqlite\n",
                relay_ports + 50,
                match auth {
                    Auth::User => "lt-cred-mech\nuser=peercam:secret".to_owned(),
                    Auth::SharedSecret(secret) =>
                        format!("use-auth-secret\nstatic-auth-secret={secret}"),
                },
                dir.display(),
                dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("turnserver")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("coturn is installed (dev/setup --test)");
        Coturn { child, port, dir }
    }

    fn servers(&self, password: &str) -> Vec<ResolvedServer> {
        self.servers_with(TurnAuth::Static {
            username: "peercam".into(),
            password: password.into(),
        })
    }

    fn servers_with(&self, auth: TurnAuth) -> Vec<ResolvedServer> {
        let url = |u: &str| parse_url(u, Some(auth.clone())).unwrap();
        [
            url(&format!("stun:127.0.0.1:{}", self.port)),
            url(&format!("turn:127.0.0.1:{}", self.port)),
        ]
        .into_iter()
        .map(|server| ResolvedServer {
            addr: SocketAddr::new(server.host.parse().unwrap(), server.port),
            role: server.role,
            url: "test".into(),
            host: "127.0.0.1".into(),
        })
        .collect()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Trust anchors for TURN over TLS (the system's).
fn tls() -> Arc<ClientConfig> {
    crate::rtc::ice::servers::tls_config(None).unwrap()
}

/// The parts of a datagram to a server (these tests use UDP only).
fn datagram(message: ToServer) -> (SocketAddr, SocketAddr, Vec<u8>) {
    match message {
        ToServer::Datagram { from, to, data } => (from, to, data),
        other => panic!("expected a datagram, got {other:?}"),
    }
}

/// Runs `gatherer` on `socket` (real time, bounded) until `until` holds;
/// returns the relayed data that arrived meanwhile.
fn drive(
    gatherer: &mut Gatherer,
    socket: &UdpSocket,
    events: &mut Vec<GatherEvent>,
    mut until: impl FnMut(&[GatherEvent], &[FromServer]) -> bool,
) -> Vec<FromServer> {
    let local = socket.local_addr().unwrap();
    let mut relayed = Vec::new();
    let mut buf = [0u8; 2048];
    let give_up = Instant::now() + Duration::from_secs(15);
    while !until(events, &relayed) {
        assert!(Instant::now() < give_up, "gave up; events {events:?}");
        while let Some(message) = gatherer.poll_transmit() {
            let (from, to, data) = datagram(message);
            assert_eq!(from, local);
            socket.send_to(&data, to).unwrap();
        }
        events.extend(std::iter::from_fn(|| gatherer.poll_event()));
        let now = Instant::now();
        let wait = gatherer
            .deadline(now)
            .map_or(Duration::from_millis(50), |d| {
                d.saturating_duration_since(now)
            })
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        socket.set_read_timeout(Some(wait)).unwrap();
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let outcome = gatherer.handle_datagram(local, from, &buf[..n], Instant::now());
                if matches!(outcome, FromServer::Relayed { .. }) {
                    relayed.push(outcome);
                }
            }
            Err(_) => gatherer.handle_timeout(Instant::now()),
        }
    }
    relayed
}

/// Sends to `peer`, a remote candidate already, through the relay
/// (bounded retries while the permission and channel are set up); whether
/// it heard.
fn reach(
    gatherer: &mut Gatherer,
    socket: &UdpSocket,
    events: &mut Vec<GatherEvent>,
    relayed: SocketAddr,
    peer: &UdpSocket,
) -> bool {
    let local = socket.local_addr().unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for _ in 0..100 {
        gatherer.send_relayed(
            relayed,
            peer.local_addr().unwrap(),
            b"to the peer",
            Instant::now(),
        );
        drive(gatherer, socket, events, |_, _| true);
        while let Some(message) = gatherer.poll_transmit() {
            let (_, to, data) = datagram(message);
            socket.send_to(&data, to).unwrap();
        }
        if let Ok((n, from)) = peer.recv_from(&mut buf) {
            assert_eq!((&buf[..n], from), (&b"to the peer"[..], relayed));
            return true;
        }
        drive(gatherer, socket, events, |_, _| true);
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            gatherer.handle_datagram(local, from, &buf[..n], Instant::now());
        }
    }
    false
}

#[test]
fn gathers_reflexive_and_relayed_candidates_and_relays_both_ways() {
    let coturn = Coturn::start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = socket.local_addr().unwrap();
    let mut gatherer = Gatherer::new(
        &[local],
        &coturn.servers("secret"),
        &tls(),
        0,
        Instant::now(),
    );
    let mut events = Vec::new();
    drive(&mut gatherer, &socket, &mut events, |events, _| {
        events.contains(&GatherEvent::Done)
    });
    let kinds: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            GatherEvent::Candidate(c) => Some(c.kind().to_string()),
            GatherEvent::Done => None,
        })
        .collect();
    assert!(kinds.contains(&"srflx".to_owned()), "{events:?}");
    assert!(kinds.contains(&"relay".to_owned()), "{events:?}");
    let relayed = events
        .iter()
        .find_map(|e| match e {
            GatherEvent::Candidate(c) if c.kind().to_string() == "relay" => Some(c.addr()),
            _ => None,
        })
        .unwrap();
    assert!(gatherer.is_relayed(relayed));

    // A peer on the far side of the relay, both ways, and a second port of
    // the same address named while the first one's permission is on its
    // way (a viewer's reflexive and peer-reflexive ports behind one NAT).
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let second = UdpSocket::bind("127.0.0.1:0").unwrap();
    gatherer.remote_candidate(peer_addr, Instant::now());
    gatherer.remote_candidate(second.local_addr().unwrap(), Instant::now());
    assert!(
        reach(&mut gatherer, &socket, &mut events, relayed, &peer),
        "the peer never heard from the relay"
    );
    assert!(
        reach(&mut gatherer, &socket, &mut events, relayed, &second),
        "a second port of the peer's address never heard from the relay"
    );
    peer.send_to(b"from the peer", relayed).unwrap();
    let arrived = drive(&mut gatherer, &socket, &mut events, |_, relayed| {
        !relayed.is_empty()
    });
    assert_eq!(
        arrived[0],
        FromServer::Relayed {
            relayed,
            peer: peer_addr,
            data: b"from the peer".to_vec()
        }
    );
    let closed = Instant::now();
    gatherer.close(closed);
    let release = std::iter::from_fn(|| {
        let now = Instant::now();
        (now < closed + CLOSE_FLUSH).then(|| {
            gatherer.handle_timeout(now);
            gatherer.poll_transmit()
        })
    })
    .flatten()
    .next()
    .expect("the allocation is released within CLOSE_FLUSH");
    let (_, to, _) = datagram(release);
    assert_eq!(to, SocketAddr::from(([127, 0, 0, 1], coturn.port)));
}

#[test]
fn wrong_credentials_and_dead_servers_end_gathering_without_candidates() {
    let coturn = Coturn::start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = socket.local_addr().unwrap();
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut servers = coturn.servers("wrong");
    servers.retain(|s| s.role != ServerRole::Stun);
    servers.push(ResolvedServer {
        addr: dead.local_addr().unwrap(),
        role: ServerRole::Stun,
        url: "dead".into(),
        host: "127.0.0.1".into(),
    });
    let started = Instant::now();
    let mut gatherer = Gatherer::new(&[local], &servers, &tls(), 0, started);
    let mut events = Vec::new();
    drive(&mut gatherer, &socket, &mut events, |events, _| {
        events.contains(&GatherEvent::Done)
    });
    assert_eq!(events, [GatherEvent::Done]);
    assert!(started.elapsed() <= GATHER_TIMEOUT + Duration::from_secs(2));
}

#[test]
fn malformed_server_replies_are_dropped() {
    let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let server: SocketAddr = "127.0.0.1:3478".parse().unwrap();
    let servers = [
        ResolvedServer {
            addr: server,
            role: ServerRole::Stun,
            url: "s".into(),
            host: "127.0.0.1".into(),
        },
        ResolvedServer {
            addr: "127.0.0.1:3479".parse().unwrap(),
            role: parse_url(
                "turn:127.0.0.1:3479",
                Some(TurnAuth::Static {
                    username: "u".into(),
                    password: "p".into(),
                }),
            )
            .unwrap()
            .role,
            url: "t".into(),
            host: "127.0.0.1".into(),
        },
    ];
    let now = Instant::now();
    let mut gatherer = Gatherer::new(&[local], &servers, &tls(), 0, now);
    for garbage in [
        &b""[..],
        b"\x00\x01\x00\x00",
        &[0xff; 300],
        b"\x01\x01\x00\x0c!\x12\xa4B",
    ] {
        assert_eq!(
            gatherer.handle_datagram(local, server, garbage, now),
            FromServer::Handled
        );
        let turn: SocketAddr = "127.0.0.1:3479".parse().unwrap();
        gatherer.handle_datagram(local, turn, garbage, now);
    }
    let other: SocketAddr = "192.0.2.9:5000".parse().unwrap();
    assert_eq!(
        gatherer.handle_datagram(local, other, b"rtp", now),
        FromServer::NotMine
    );
    assert_eq!(gatherer.poll_event(), None);
}

#[test]
fn tcp_frames_are_split_and_unpadded() {
    let mut framer = TcpFramer::default();
    let stun = {
        let mut m = vec![0x01, 0x01, 0x00, 0x04];
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&[1, 2, 3, 4]);
        m
    };
    let channel = [0x40, 0x00, 0x00, 0x05, 9, 9, 9, 9, 9];
    let mut stream = stun.clone();
    stream.extend_from_slice(&channel);
    stream.extend_from_slice(&[0, 0, 0]);
    stream.extend_from_slice(&stun);
    for byte in &stream[..30] {
        framer.push(std::slice::from_ref(byte));
    }
    assert_eq!(framer.next_frame(), Some(stun.clone()));
    assert_eq!(
        framer.next_frame(),
        None,
        "the channel message is not whole yet"
    );
    framer.push(&stream[30..]);
    assert_eq!(framer.next_frame(), Some(channel.to_vec()));
    assert_eq!(framer.next_frame(), Some(stun));
    assert_eq!(framer.next_frame(), None);
    framer.push(&[0xff, 0, 0, 0]);
    assert_eq!(framer.next_frame(), None, "garbage is dropped");
    let mut padded = channel.to_vec();
    pad_channel_data(&mut padded);
    assert_eq!(padded.len(), 12);
}

#[test]
fn a_relay_is_allocated_with_credentials_minted_from_the_shared_secret() {
    let coturn = Coturn::start_with(Auth::SharedSecret("lab-shared-secret"));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = socket.local_addr().unwrap();
    let minted = TurnAuth::Minted {
        name: "door".into(),
        secret: "lab-shared-secret".into(),
        lifetime: Duration::from_secs(600),
    };
    let url = parse_url(&format!("turn:127.0.0.1:{}", coturn.port), Some(minted)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let servers = smol::block_on(resolve(&[url], now));
    let mut gatherer = Gatherer::new(&[local], &servers, &tls(), 0, Instant::now());
    let mut events = Vec::new();
    drive(&mut gatherer, &socket, &mut events, |events, _| {
        events.contains(&GatherEvent::Done)
    });
    assert!(
        events
            .iter()
            .any(|e| matches!(e, GatherEvent::Candidate(c) if c.kind().to_string() == "relay")),
        "{events:?}"
    );
}
