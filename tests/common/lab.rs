//! A NAT lab in network namespaces the test creates and removes: a public
//! side (198.51.100.0/24, with Mosquitto and coturn at 198.51.100.1), the
//! device behind one NAT and the viewer behind another, each NAT one of
//! RFC 4787's behaviours built with nftables (`../shared/RECIPES.md`).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};

/// The public address of the services (Mosquitto, coturn).
pub(crate) const PUBLIC_SERVICES: &str = "198.51.100.1";
/// coturn's second address, for RFC 5780 behaviour discovery.
const PUBLIC_SERVICES_OTHER: &str = "198.51.100.4";
/// The device's address inside its LAN.
pub(crate) const DEVICE_LAN_IP: &str = "10.77.1.2";
/// The viewer's address inside its LAN.
pub(crate) const VIEWER_LAN_IP: &str = "10.77.2.2";
/// Mosquitto's port on the public side.
pub(crate) const MQTT_PORT: u16 = 1883;
/// coturn's port on the public side (STUN and TURN over UDP and TCP).
pub(crate) const TURN_PORT: u16 = 3478;
/// The TURN user coturn knows.
pub(crate) const TURN_USER: (&str, &str) = ("peercam", "lab-secret");

/// How a NAT router treats traffic (RFC 4787).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nat {
    /// Endpoint-independent mapping, address-and-port-dependent filtering:
    /// the usual home router.
    PortRestricted,
    /// Address-and-port-dependent mapping: a new public port per
    /// destination, as many carrier networks do.
    Symmetric,
    /// Port-restricted, and UDP from the LAN is dropped.
    UdpBlocked,
}

/// The lab's namespaces and the services in them; removed when dropped.
pub(crate) struct Lab {
    tag: String,
    services: Vec<Child>,
    dir: super::TempDir,
}

impl Lab {
    /// Builds the lab with the device behind `device` and the viewer behind `viewer`.
    pub(crate) fn new(device: Nat, viewer: Nat) -> Lab {
        let tag = format!("l{:04x}", rand::random::<u16>());
        let lab = Lab {
            tag,
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
        lab.router("nd", "dev", "198.51.100.2", "10.77.1", device);
        lab.router("nv", "view", "198.51.100.3", "10.77.2", viewer);
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

    /// A NAT router `router` between the public side and the LAN
    /// `lan.0/24` of `host`, whose WAN address is `wan`.
    fn router(&self, router: &str, host: &str, wan: &str, lan: &str, nat: Nat) {
        let (r, h, public) = (self.ns(router), self.ns(host), self.ns("pub"));
        let (wan_if, wan_peer, lan_if, host_if) = (
            format!("{}w", self.tag),
            format!("{}{router}", self.tag),
            format!("{}l", self.tag),
            format!("{}h", self.tag),
        );
        ip(&[
            "link", "add", &wan_if, "type", "veth", "peer", "name", &wan_peer,
        ]);
        ip(&["link", "set", &wan_if, "netns", &r]);
        ip(&["link", "set", &wan_peer, "netns", &public]);
        ip(&[
            "-n", &public, "link", "set", &wan_peer, "master", "br0", "up",
        ]);
        ip(&[
            "-n",
            &r,
            "addr",
            "add",
            &format!("{wan}/24"),
            "dev",
            &wan_if,
        ]);
        ip(&["-n", &r, "link", "set", &wan_if, "up"]);
        ip(&[
            "link", "add", &lan_if, "type", "veth", "peer", "name", &host_if,
        ]);
        ip(&["link", "set", &lan_if, "netns", &r]);
        ip(&["link", "set", &host_if, "netns", &h]);
        ip(&[
            "-n",
            &r,
            "addr",
            "add",
            &format!("{lan}.1/24"),
            "dev",
            &lan_if,
        ]);
        ip(&["-n", &r, "link", "set", &lan_if, "up"]);
        ip(&[
            "-n",
            &h,
            "addr",
            "add",
            &format!("{lan}.2/24"),
            "dev",
            &host_if,
        ]);
        ip(&["-n", &h, "link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            &h,
            "route",
            "add",
            "default",
            "via",
            &format!("{lan}.1"),
        ]);
        self.run(router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let masquerade = match nat {
            Nat::Symmetric => "masquerade fully-random",
            Nat::PortRestricted | Nat::UdpBlocked => "masquerade",
        };
        let block_udp = if nat == Nat::UdpBlocked {
            format!("iifname \"{lan_if}\" meta l4proto udp drop")
        } else {
            String::new()
        };
        let rules = format!(
            "table ip nat {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"{wan_if}\" {masquerade}
  }}
}}
table ip filter {{
  chain input {{
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    iifname \"{lan_if}\" accept
    iifname \"lo\" accept
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    {block_udp}
    iifname \"{lan_if}\" oifname \"{wan_if}\" accept
  }}
}}
"
        );
        let path = self.dir.0.join(format!("{router}.nft"));
        std::fs::write(&path, rules).unwrap();
        self.run(router, &["nft", "-f", path.to_str().unwrap()]);
    }

    /// Starts Mosquitto and coturn on the public side.
    pub(crate) fn start_services(&mut self) {
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
                 alt-listening-port={}\nmin-port=49152\nmax-port=49999\nlt-cred-mech\n\
                 user={}:{}\nrealm=lab.test\nfingerprint\nno-tls\nno-dtls\nno-cli\n\
                 log-file=stdout\nsimple-log\npidfile={}/turn.pid\nuserdb={}/turn.sqlite\n",
                TURN_PORT + 1,
                TURN_USER.0,
                TURN_USER.1,
                self.dir.0.display(),
                self.dir.0.display()
            ),
        )
        .unwrap();
        let mosquitto = mosquitto.to_str().unwrap().to_owned();
        let turn = turn.to_str().unwrap().to_owned();
        self.spawn("pub", &["mosquitto", "-c", &mosquitto]);
        self.spawn("pub", &["turnserver", "-c", &turn]);
    }

    /// Kills coturn (every allocation on it is gone) and starts it again.
    pub(crate) fn restart_turn(&mut self) {
        let mut coturn = self.services.remove(1);
        let _ = coturn.kill();
        let _ = coturn.wait();
        let turn = self.dir.0.join("turn.conf");
        let turn = turn.to_str().unwrap().to_owned();
        self.spawn("pub", &["turnserver", "-c", &turn]);
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
        .unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.services {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in ["pub", "nd", "nv", "dev", "view"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(ns)])
                .status();
        }
    }
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
