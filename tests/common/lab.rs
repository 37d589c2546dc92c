//! A NAT lab in network namespaces the test creates and removes: a public
//! side (198.51.100.0/24, with Mosquitto and coturn at 198.51.100.1), the
//! device behind one NAT and the viewer behind another, each NAT one of
//! RFC 4787's behaviours built with nftables (`../shared/RECIPES.md`).

use std::fs::File;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The public address of the services (Mosquitto, coturn).
pub(crate) const PUBLIC_SERVICES: &str = "198.51.100.1";
/// coturn's second address, for RFC 5780 behaviour discovery.
const PUBLIC_SERVICES_OTHER: &str = "198.51.100.4";
/// Mosquitto's port on the public side.
pub(crate) const MQTT_PORT: u16 = 1883;
/// coturn's port on the public side (STUN and TURN over UDP and TCP).
pub(crate) const TURN_PORT: u16 = 3478;
/// coturn's port for TURN over TLS.
pub(crate) const TURN_TLS_PORT: u16 = 5349;
/// coturn's shared secret in `use-auth-secret` mode.
pub(crate) const TURN_SHARED_SECRET: &str = "lab-shared-secret";
/// The TURN user coturn knows.
pub(crate) const TURN_USER: (&str, &str) = ("peercam", "lab-secret");
/// How long the services may take to listen once started: a test that
/// began before them would measure an unreachable service, not a NAT.
const SERVICES_READY_WAIT: Duration = Duration::from_secs(30);

/// How a NAT router treats traffic (RFC 4787).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nat {
    /// No NAT: a public address, and a router that lets everything through.
    None,
    /// Endpoint-independent mapping and filtering ("full cone").
    FullCone,
    /// Endpoint-independent mapping, address-and-port-dependent filtering:
    /// the usual home router.
    PortRestricted,
    /// Address-and-port-dependent mapping: a new public port per
    /// destination, as many carrier networks do.
    Symmetric,
    /// Port-restricted, and UDP from the LAN is dropped.
    UdpBlocked,
    /// A port-restricted home router behind a symmetric carrier NAT.
    Carrier,
}

/// How a lab service is seen to listen.
#[derive(Debug, Clone, Copy)]
enum Listener {
    /// It answers a STUN Binding request.
    Stun,
    /// It accepts a TCP connection.
    Tcp,
}

impl Listener {
    /// Whether the service at `address` answers now (within 200 ms).
    fn answers(self, address: SocketAddr) -> bool {
        let wait = Duration::from_millis(200);
        match self {
            Listener::Tcp => TcpStream::connect_timeout(&address, wait).is_ok(),
            Listener::Stun => {
                let (_, request) = super::viewer::binding_request();
                let Ok(socket) = UdpSocket::bind((address.ip(), 0)) else {
                    return false;
                };
                let mut buf = [0u8; 1500];
                socket.set_read_timeout(Some(wait)).is_ok()
                    && socket.send_to(&request, address).is_ok()
                    && socket
                        .recv_from(&mut buf)
                        .is_ok_and(|(_, from)| from == address)
            }
        }
    }
}

/// The lab's namespaces and the services in them; removed when dropped.
pub(crate) struct Lab {
    tag: String,
    /// The device's and the viewer's addresses.
    pub(crate) device_ip: String,
    pub(crate) viewer_ip: String,
    services: Vec<Child>,
    dir: super::TempDir,
}

impl Lab {
    /// Builds the lab with the device behind `device` and the viewer behind `viewer`.
    pub(crate) fn new(device: Nat, viewer: Nat) -> Lab {
        let tag = format!("l{:04x}", rand::random::<u16>());
        let mut lab = Lab {
            tag,
            device_ip: String::new(),
            viewer_ip: String::new(),
            services: Vec::new(),
            dir: super::TempDir::new("lab"),
        };
        for ns in ["pub", "nd", "nv", "dev", "view"] {
            ip(&["netns", "add", &lab.ns(ns)]);
            lab.run(ns, &["ip", "link", "set", "lo", "up"]);
        }
        let public = lab.ns("pub");
        ip(&["-n", &public, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &public, "link", "set", "br0", "up"]);
        ip(&[
            "-n",
            &public,
            "addr",
            "add",
            &format!("{PUBLIC_SERVICES}/24"),
            "dev",
            "br0",
        ]);
        ip(&[
            "-n",
            &public,
            "addr",
            "add",
            &format!("{PUBLIC_SERVICES_OTHER}/24"),
            "dev",
            "br0",
        ]);
        // Private destinations vanish quietly on the public side, as on the
        // internet: coturn drops a whole allocation when a send fails.
        ip(&[
            "-n", &public, "link", "add", "void", "type", "veth", "peer", "name", "void-end",
        ]);
        ip(&["-n", &public, "link", "set", "void-end", "up"]);
        ip(&["-n", &public, "link", "set", "void", "up"]);
        ip(&["-n", &public, "route", "add", "10.0.0.0/8", "dev", "void"]);
        ip(&[
            "-n",
            &public,
            "route",
            "add",
            "100.64.0.0/10",
            "dev",
            "void",
        ]);
        // The public side routes between the routers, as the internet does
        // between home networks with public addresses.
        ip(&[
            "netns",
            "exec",
            &public,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        lab.device_ip = lab.router("nd", "dev", "198.51.100.2", "10.77.1", device);
        lab.viewer_ip = lab.router("nv", "view", "198.51.100.3", "10.77.2", viewer);
        lab
    }

    /// The full name of lab namespace `ns`.
    pub(crate) fn ns(&self, ns: &str) -> String {
        format!("{}{ns}", self.tag)
    }

    /// Runs `command` in lab namespace `ns` and checks it succeeded.
    fn run(&self, ns: &str, command: &[&str]) {
        let name = self.ns(ns);
        let mut args = vec!["netns", "exec", name.as_str()];
        args.extend_from_slice(command);
        ip(&args);
    }

    /// A veth pair `a` (in namespace `ns_a`, address `addr_a`/24) to `b`
    /// (in `ns_b`, `addr_b`/24; on the public bridge when `addr_b` is None).
    fn link(&self, a: &str, ns_a: &str, addr_a: &str, b: &str, ns_b: &str, addr_b: Option<&str>) {
        ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        ip(&["link", "set", a, "netns", ns_a]);
        ip(&["link", "set", b, "netns", ns_b]);
        ip(&["-n", ns_a, "addr", "add", &format!("{addr_a}/24"), "dev", a]);
        ip(&["-n", ns_a, "link", "set", a, "up"]);
        match addr_b {
            Some(addr_b) => {
                ip(&["-n", ns_b, "addr", "add", &format!("{addr_b}/24"), "dev", b]);
                ip(&["-n", ns_b, "link", "set", b, "up"]);
            }
            None => ip(&["-n", ns_b, "link", "set", b, "master", "br0", "up"]),
        }
    }

    /// A router `router` between the public side (its address `wan` there)
    /// and the LAN `lan.0/24` of `host`, behaving as `nat`; returns the
    /// host's address.
    fn router(&self, router: &str, host: &str, wan: &str, lan: &str, nat: Nat) -> String {
        let (r, h, public) = (self.ns(router), self.ns(host), self.ns("pub"));
        let t = &self.tag;
        let (wan_if, lan_if) = (format!("{t}{router}w"), format!("{t}{router}l"));
        // Without NAT the host has a public address of its own.
        let lan = if nat == Nat::None {
            format!("198.51.{}", 101 + u8::from(host == "view"))
        } else {
            lan.to_owned()
        };
        let host_ip = format!("{lan}.2");
        if nat == Nat::Carrier {
            // A home router (port-restricted) whose WAN is carrier space
            // behind the carrier's symmetric NAT.
            let carrier = self.ns(&format!("c{router}"));
            ip(&["netns", "add", &carrier]);
            let (cg_wan, cg_lan) = (format!("{t}c{router}w"), format!("{t}c{router}l"));
            self.link(
                &cg_wan,
                &carrier,
                wan,
                &format!("{t}c{router}p"),
                &public,
                None,
            );
            self.link(
                &wan_if,
                &r,
                "100.64.1.2",
                &cg_lan,
                &carrier,
                Some("100.64.1.1"),
            );
            ip(&["-n", &r, "route", "add", "default", "via", "100.64.1.1"]);
            ip(&[
                "netns",
                "exec",
                &carrier,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ]);
            ip(&[
                "-n",
                &carrier,
                "route",
                "add",
                &format!("{lan}.0/24"),
                "via",
                "100.64.1.2",
            ]);
            self.nft(
                &carrier,
                &rules(&cg_wan, &cg_lan, "masquerade fully-random", "", ""),
            );
            ip(&[
                "-n",
                &carrier,
                "route",
                "add",
                "default",
                "via",
                PUBLIC_SERVICES,
            ]);
        } else {
            self.link(&wan_if, &r, wan, &format!("{t}{router}p"), &public, None);
            ip(&["-n", &r, "route", "add", "default", "via", PUBLIC_SERVICES]);
        }
        self.link(
            &lan_if,
            &r,
            &format!("{lan}.1"),
            &format!("{t}{router}h"),
            &h,
            Some(&host_ip),
        );
        ip(&[
            "-n",
            &h,
            "route",
            "add",
            "default",
            "via",
            &format!("{lan}.1"),
        ]);
        ip(&[
            "netns",
            "exec",
            &r,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        let (masquerade, inbound, block) = match nat {
            Nat::None => {
                ip(&[
                    "-n",
                    &public,
                    "route",
                    "add",
                    &format!("{lan}.0/24"),
                    "via",
                    wan,
                ]);
                ("", format!("iifname \"{wan_if}\" accept"), String::new())
            }
            Nat::FullCone => (
                "masquerade",
                "ct status dnat accept".to_owned(),
                String::new(),
            ),
            Nat::Symmetric => ("masquerade fully-random", String::new(), String::new()),
            Nat::PortRestricted | Nat::Carrier => ("masquerade", String::new(), String::new()),
            Nat::UdpBlocked => (
                "masquerade",
                String::new(),
                format!("iifname \"{lan_if}\" meta l4proto udp drop"),
            ),
        };
        let mut table = rules(&wan_if, &lan_if, masquerade, &inbound, &block);
        if nat == Nat::FullCone {
            // Anything arriving on a public port goes to the host: whoever
            // sends to a mapping reaches it (endpoint-independent filtering).
            table.push_str(&format!(
                "table ip cone {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname \"{wan_if}\" udp dport 1024-65535 dnat to {host_ip}
  }}
}}
"
            ));
        }
        self.nft(&r, &table);
        host_ip
    }

    /// Loads nftables `rules` into namespace `ns` (its full name).
    fn nft(&self, ns: &str, rules: &str) {
        let path = self.dir.0.join(format!("{ns}.nft"));
        std::fs::write(&path, rules).unwrap();
        ip(&["netns", "exec", ns, "nft", "-f", path.to_str().unwrap()]);
    }

    /// The self-signed certificate coturn presents for TURN over TLS (for
    /// the address 198.51.100.1), to trust with `webrtc.turn_ca_file`.
    pub(crate) fn turn_certificate(&self) -> std::path::PathBuf {
        self.dir.0.join("turn.crt")
    }

    /// Starts Mosquitto and coturn on the public side, coturn knowing the
    /// long-term user [`TURN_USER`].
    pub(crate) fn start_services(&mut self) {
        self.start_services_with(&format!(
            "lt-cred-mech\nuser={}:{}",
            TURN_USER.0, TURN_USER.1
        ));
    }

    /// Starts Mosquitto and coturn checking TURN REST credentials minted
    /// from [`TURN_SHARED_SECRET`] (coturn's `use-auth-secret`).
    pub(crate) fn start_services_with_shared_secret(&mut self) {
        self.start_services_with(&format!(
            "use-auth-secret\nstatic-auth-secret={TURN_SHARED_SECRET}"
        ));
    }

    /// Starts Mosquitto and coturn with `auth` as its credential settings.
    fn start_services_with(&mut self, auth: &str) {
        let (cert, key) = (self.turn_certificate(), self.dir.0.join("turn.key"));
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=lab-turn"])
            .args(["-addext", &format!("subjectAltName=IP:{PUBLIC_SERVICES}")])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(
            made.success(),
            "openssl could not make the TURN certificate"
        );
        let mosquitto = self.dir.0.join("mosquitto.conf");
        std::fs::write(
            &mosquitto,
            format!(
                "persistence false\nallow_anonymous true\nlistener {MQTT_PORT} {PUBLIC_SERVICES}\n"
            ),
        )
        .unwrap();
        let turn = self.dir.0.join("turn.conf");
        std::fs::write(
            &turn,
            format!(
                "listening-ip={PUBLIC_SERVICES}\nlistening-ip={PUBLIC_SERVICES_OTHER}\n\
                 relay-ip={PUBLIC_SERVICES}\nlistening-port={TURN_PORT}\n\
                 alt-listening-port={}\nmin-port=49152\nmax-port=49999\n{auth}\n\
                 realm=lab.test\nfingerprint\nno-dtls\nno-cli\n\
                 tls-listening-port={TURN_TLS_PORT}\ncert={}\npkey={}\n\
                 log-file=stdout\nsimple-log\npidfile={}/turn.pid\nuserdb={}/turn.sqlite\n",
                TURN_PORT + 1,
                cert.display(),
                key.display(),
                self.dir.0.display(),
                self.dir.0.display()
            ),
        )
        .unwrap();
        let mosquitto = mosquitto.to_str().unwrap().to_owned();
        let turn = turn.to_str().unwrap().to_owned();
        self.spawn("pub", &["mosquitto", "-c", &mosquitto]);
        self.spawn("pub", &["turnserver", "-c", &turn]);
        self.wait_until_services_listen();
    }

    /// Waits until coturn answers STUN on both its addresses and ports
    /// (RFC 5780's tests use all four) and takes TCP on its TURN and TLS
    /// ports, and Mosquitto takes TCP.
    fn wait_until_services_listen(&self) {
        let address = |ip: &str, port: u16| SocketAddr::new(ip.parse().unwrap(), port);
        let mut silent = vec![
            (address(PUBLIC_SERVICES, TURN_PORT), Listener::Stun),
            (address(PUBLIC_SERVICES_OTHER, TURN_PORT), Listener::Stun),
            (address(PUBLIC_SERVICES, TURN_PORT + 1), Listener::Stun),
            (
                address(PUBLIC_SERVICES_OTHER, TURN_PORT + 1),
                Listener::Stun,
            ),
            (address(PUBLIC_SERVICES, TURN_PORT), Listener::Tcp),
            (address(PUBLIC_SERVICES, TURN_TLS_PORT), Listener::Tcp),
            (address(PUBLIC_SERVICES, MQTT_PORT), Listener::Tcp),
        ];
        let silent = self.inside("pub", move || {
            let deadline = Instant::now() + SERVICES_READY_WAIT;
            while !silent.is_empty() && Instant::now() < deadline {
                silent.retain(|&(service, listener)| !listener.answers(service));
            }
            silent
        });
        assert!(
            silent.is_empty(),
            "the lab's services did not listen within {SERVICES_READY_WAIT:?}: {silent:?}"
        );
    }

    /// Kills coturn (every allocation on it is gone) and starts it again.
    pub(crate) fn restart_turn(&mut self) {
        let mut coturn = self.services.remove(1);
        let _ = coturn.kill();
        let _ = coturn.wait();
        let turn = self.dir.0.join("turn.conf");
        let turn = turn.to_str().unwrap().to_owned();
        self.spawn("pub", &["turnserver", "-c", &turn]);
        self.wait_until_services_listen();
    }

    fn spawn(&mut self, ns: &str, command: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns)])
            .args(command)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.services.push(child);
    }

    /// Runs `body` on a thread inside lab namespace `ns`: every socket it
    /// (and any thread it starts) opens lives there.
    pub(crate) fn inside<T: Send + 'static>(
        &self,
        ns: &str,
        body: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        self.try_inside(ns, body).unwrap()
    }

    /// [`Lab::inside`], with a panic of `body` returned instead of raised.
    pub(crate) fn try_inside<T: Send + 'static>(
        &self,
        ns: &str,
        body: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::Result<T> {
        let path = format!("/var/run/netns/{}", self.ns(ns));
        std::thread::spawn(move || {
            let namespace = File::open(&path).unwrap();
            // SAFETY: setns on a namespace file this thread opened; it only
            // changes this thread's network namespace.
            let entered = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                entered,
                0,
                "setns {path}: {}",
                std::io::Error::last_os_error()
            );
            body()
        })
        .join()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.services {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in ["pub", "nd", "nv", "dev", "view", "cnd", "cnv"] {
            if std::path::Path::new(&format!("/run/netns/{}", self.ns(ns))).exists() {
                let _ = Command::new("ip")
                    .args(["netns", "del", &self.ns(ns)])
                    .status();
            }
        }
    }
}

/// A router's tables: `masquerade` out of `wan` (none when empty), replies
/// and the LAN let in, plus `inbound` (what else may come in from the WAN)
/// and `block` (what the LAN may not send), as home routers do.
fn rules(wan: &str, lan: &str, masquerade: &str, inbound: &str, block: &str) -> String {
    let nat = if masquerade.is_empty() {
        String::new()
    } else {
        format!(
            "table ip nat {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"{wan}\" {masquerade}
  }}
}}
"
        )
    };
    format!(
        "{nat}table ip filter {{
  chain input {{
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    iifname \"{lan}\" accept
    iifname \"lo\" accept
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    {block}
    {inbound}
    iifname \"{lan}\" oifname \"{wan}\" accept
  }}
}}
"
    )
}

/// Runs `ip` with `args`; the lab cannot be built without it.
fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(
        status.success(),
        "`ip {}` failed: the NAT lab needs root, iproute2 and nftables",
        args.join(" ")
    );
}
