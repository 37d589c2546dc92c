//! The daemon in a network namespace of its own, joined to this one by a
//! veth pair: its media address is removed and another added (DHCP
//! renumbering, a link that comes back elsewhere), and the next call must
//! connect on the new one. Needs root (`ip netns`), as CI has.

use std::process::Command;
use std::time::Duration;

mod common;

use common::viewer::{Mqtt, call_from, session_id};
use common::{Daemon, Mosquitto, free_port};

const DEVICE: &str = "nscam";

/// A namespace with a veth pair to this one; removed when dropped.
struct Namespace {
    name: String,
    /// The /24 both ends live in, as its first three octets.
    subnet: String,
    inner: String,
    outer: String,
}

impl Namespace {
    fn create() -> Namespace {
        let tag = rand::random::<u16>();
        let name = format!("pcns{tag:04x}");
        let outer = format!("pco{tag:04x}");
        let inner = format!("pci{tag:04x}");
        let subnet = format!("10.{}.{}", 200 + tag % 50, tag / 256 % 250);
        let namespace = Namespace {
            name,
            subnet,
            inner,
            outer,
        };
        namespace.ip(&["netns", "add", &namespace.name]);
        namespace.ip(&[
            "link",
            "add",
            &namespace.outer,
            "type",
            "veth",
            "peer",
            "name",
            &namespace.inner,
        ]);
        namespace.ip(&["link", "set", &namespace.inner, "netns", &namespace.name]);
        namespace.ip(&[
            "addr",
            "add",
            &format!("{}/24", namespace.host(1)),
            "dev",
            &namespace.outer,
        ]);
        namespace.ip(&["link", "set", &namespace.outer, "up"]);
        namespace.inside(&["link", "set", "lo", "up"]);
        namespace.inside(&["link", "set", &namespace.inner, "up"]);
        namespace
    }

    /// Address `n` of the subnet.
    fn host(&self, n: u8) -> String {
        format!("{}.{n}", self.subnet)
    }

    fn ip(&self, args: &[&str]) {
        let status = Command::new("ip").args(args).status().unwrap();
        assert!(
            status.success(),
            "`ip {}` failed: this test needs root and iproute2",
            args.join(" ")
        );
    }

    /// Runs `ip` inside the namespace.
    fn inside(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        self.ip(&all);
    }

    /// Gives the daemon's interface address `n` instead of `old`.
    fn renumber(&self, old: u8, new: u8) {
        self.inside(&[
            "addr",
            "del",
            &format!("{}/24", self.host(old)),
            "dev",
            &self.inner,
        ]);
        self.inside(&[
            "addr",
            "add",
            &format!("{}/24", self.host(new)),
            "dev",
            &self.inner,
        ]);
    }
}

impl Drop for Namespace {
    /// Deleting one end of the pair deletes both, even while the kernel
    /// still holds the namespace for a moment.
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.outer])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn after_the_media_address_changes_the_next_call_connects_on_the_new_one() {
    let namespace = Namespace::create();
    namespace.inside(&[
        "addr",
        "add",
        &format!("{}/24", namespace.host(2)),
        "dev",
        &namespace.inner,
    ]);
    let host = namespace.host(1);
    let port = free_port();
    let _broker = Mosquitto::start_on(&host, port);
    let _daemon = Daemon::start_in(
        &["ip", "netns", "exec", &namespace.name],
        &format!(
            r#"
[device]
id = "{DEVICE}"
[mqtt]
broker = "mqtt://{host}:{port}"
keep_alive_secs = 5
[video]
width = 320
height = 240
bitrate_kbps = 300
[http]
listen = ""
[doorbell]
control_socket = ""
"#
        ),
        &[],
    );
    let mqtt = Mqtt::connect_to(&host, port);
    let status = format!("peercam/{DEVICE}/status");
    mqtt.subscribe(&status);
    mqtt.wait_for(&status, Duration::from_secs(30), |v| v["online"] == true);

    let mut first = call_from(&mqtt, DEVICE, &session_id(), &host);
    assert_eq!(first.receive(5, Duration::from_secs(20)).len(), 5);
    drop(first);

    mqtt.drain();
    namespace.renumber(2, 3);
    // The broker link rode on the old address: the device notices within
    // its keep-alive, reconnects from the new one and says it is online.
    mqtt.wait_for(&status, Duration::from_secs(60), |v| v["online"] == true);
    let mut second = call_from(&mqtt, DEVICE, &session_id(), &host);
    assert_eq!(
        second.receive(5, Duration::from_secs(20)).len(),
        5,
        "the call connected on {}",
        namespace.host(3)
    );
}
