//! Where media sockets live: which interface addresses get host candidates,
//! and binding one UDP socket per address, inside the configured port range.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::Range;

use anyhow::{Context, bail};

/// One usable interface address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterfaceAddr {
    /// Interface name, e.g. `eth0`.
    pub(crate) name: String,
    /// Its address.
    pub(crate) ip: IpAddr,
    /// Whether it is a loopback interface.
    pub(crate) loopback: bool,
}

/// Every address of every interface that is up.
pub(crate) fn interface_addrs() -> anyhow::Result<Vec<InterfaceAddr>> {
    let addrs = if_addrs::get_if_addrs().context("cannot list network interfaces")?;
    Ok(addrs
        .into_iter()
        .filter(|a| a.is_oper_up())
        .map(|a| InterfaceAddr {
            loopback: a.is_loopback(),
            ip: a.ip(),
            name: a.name,
        })
        .collect())
}

/// The addresses to offer host candidates on. `wanted` holds interface
/// names or addresses; empty means every non-loopback address. IPv6
/// link-local addresses are left out (they need a scope browsers can't use).
pub(crate) fn select_addrs(all: &[InterfaceAddr], wanted: &[String]) -> Vec<IpAddr> {
    all.iter()
        .filter(|a| !is_link_local_v6(a.ip))
        .filter(|a| {
            if wanted.is_empty() {
                !a.loopback
            } else {
                wanted
                    .iter()
                    .any(|w| *w == a.name || *w == a.ip.to_string())
            }
        })
        .map(|a| a.ip)
        .collect()
}

fn is_link_local_v6(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// Binds one non-blocking UDP socket on each of `ips`, on a port from `ports`
/// when given (tried in order from a random start), else any free port.
pub(crate) fn bind_sockets(
    ips: &[IpAddr],
    ports: Option<Range<u16>>,
) -> anyhow::Result<Vec<UdpSocket>> {
    if ips.is_empty() {
        bail!("no usable network address for media (check `webrtc.interfaces`)");
    }
    ips.iter().map(|ip| bind_one(*ip, ports.clone())).collect()
}

fn bind_one(ip: IpAddr, ports: Option<Range<u16>>) -> anyhow::Result<UdpSocket> {
    let socket = match ports {
        None => UdpSocket::bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("cannot bind a UDP socket on {ip}"))?,
        Some(range) => {
            let len = range.len() as u32;
            let start = rand::random::<u32>() % len.max(1);
            (0..len)
                .map(|i| range.start + ((start + i) % len) as u16)
                .find_map(|port| UdpSocket::bind(SocketAddr::new(ip, port)).ok())
                .with_context(|| {
                    format!(
                        "every UDP port in {}-{} on {ip} is taken",
                        range.start,
                        range.end - 1
                    )
                })?
        }
    };
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(name: &str, ip: &str, loopback: bool) -> InterfaceAddr {
        InterfaceAddr {
            name: name.into(),
            ip: ip.parse().unwrap(),
            loopback,
        }
    }

    #[test]
    fn selects_non_loopback_by_default_and_named_ones_on_request() {
        let all = [
            addr("lo", "127.0.0.1", true),
            addr("eth0", "192.0.2.2", false),
            addr("eth0", "fe80::1", false),
            addr("eth0", "fd00::2", false),
            addr("wlan0", "10.0.0.5", false),
        ];
        let ips = |wanted: &[&str]| {
            let wanted: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
            select_addrs(&all, &wanted)
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ips(&[]), ["192.0.2.2", "fd00::2", "10.0.0.5"]);
        assert_eq!(ips(&["lo"]), ["127.0.0.1"]);
        assert_eq!(ips(&["eth0"]), ["192.0.2.2", "fd00::2"]);
        assert_eq!(ips(&["10.0.0.5"]), ["10.0.0.5"]);
    }

    #[test]
    fn binds_inside_the_port_range() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let taken = UdpSocket::bind((ip, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let range = port..port + 1;
        assert!(
            bind_sockets(&[ip], Some(range.clone())).is_err(),
            "the only port is taken"
        );
        drop(taken);
        let sockets = bind_sockets(&[ip], Some(range)).unwrap();
        assert_eq!(sockets[0].local_addr().unwrap().port(), port);
        assert!(bind_sockets(&[], None).is_err());
    }
}
