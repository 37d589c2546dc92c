//! The device's own use of the configured STUN/TURN servers: their URLs
//! (RFC 7064 `stun:`, RFC 7065 `turn:`/`turns:`) read into what to contact
//! and how, and host names resolved before gathering starts.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::IceServerConfig;

/// Port of `stun:` and `turn:` URLs that name none.
const DEFAULT_PORT: u16 = 3478;
/// Port of `turns:` URLs that name none.
const DEFAULT_TLS_PORT: u16 = 5349;
/// Longest wait for a server name to resolve; gathering goes on without it.
pub(crate) const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// How the device reaches a TURN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TurnTransport {
    /// `turn:` (or `?transport=udp`): on the media socket itself.
    Udp,
    /// `turn:…?transport=tcp`: a TCP connection, for networks that block UDP.
    Tcp,
    /// `turns:`: TLS over TCP, for networks that allow only HTTPS-like traffic.
    Tls,
}

/// How the device authenticates to a TURN server.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum TurnAuth {
    /// Long-lived credentials from the configuration.
    Static {
        /// TURN user name.
        username: String,
        /// TURN password.
        password: String,
    },
    /// Credentials minted per call from the server's shared secret (the
    /// TURN REST scheme of coturn's `use-auth-secret`).
    Minted {
        /// The name in every minted user name.
        name: String,
        /// The shared secret.
        secret: String,
        /// How long a minted credential lasts.
        lifetime: Duration,
    },
}

impl std::fmt::Debug for TurnAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TurnAuth::Static { username, .. } => write!(f, "Static({username}, redacted)"),
            TurnAuth::Minted { name, lifetime, .. } => {
                write!(f, "Minted({name}, redacted, {lifetime:?})")
            }
        }
    }
}

impl TurnAuth {
    /// The authentication an `[[webrtc.ice_servers]]` entry configures, if any.
    pub(crate) fn from_config(server: &IceServerConfig) -> Option<TurnAuth> {
        match (&server.secret, &server.username, &server.credential) {
            (Some(secret), name, _) => Some(TurnAuth::Minted {
                name: name.clone().unwrap_or_else(|| "peercam".into()),
                secret: secret.expose().to_owned(),
                lifetime: Duration::from_secs(server.credential_lifetime_secs),
            }),
            (None, Some(username), Some(password)) => Some(TurnAuth::Static {
                username: username.clone(),
                password: password.expose().to_owned(),
            }),
            _ => None,
        }
    }

    /// User name and password to use now (`now` in seconds since the epoch).
    pub(crate) fn credentials(&self, now: u64) -> (String, String) {
        match self {
            TurnAuth::Static { username, password } => (username.clone(), password.clone()),
            TurnAuth::Minted {
                name,
                secret,
                lifetime,
            } => mint(secret, name, now + lifetime.as_secs()),
        }
    }
}

/// Credentials for the TURN REST scheme: the user name is
/// `<expiry in Unix seconds>:<name>`, the password the base64 of its
/// HMAC-SHA1 under the shared secret; the server checks both and the expiry.
pub(crate) fn mint(secret: &str, name: &str, expires: u64) -> (String, String) {
    use base64::Engine;
    use hmac::Mac;
    let username = format!("{expires}:{name}");
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// What a configured URL asks the device to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerRole {
    /// Learn the media socket's public address (server-reflexive candidate).
    Stun,
    /// Allocate a relay (relayed candidate).
    Turn {
        /// How to reach the server.
        transport: TurnTransport,
        /// How to authenticate; always `Static` once resolved.
        auth: TurnAuth,
    },
}

/// One server URL as the device uses it: where, and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IceServerUrl {
    /// Host name or address literal.
    pub(crate) host: String,
    /// Port.
    pub(crate) port: u16,
    /// STUN or TURN.
    pub(crate) role: ServerRole,
}

/// A server ready to contact: its address resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedServer {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// STUN or TURN.
    pub(crate) role: ServerRole,
    /// The URL as configured, for logs.
    pub(crate) url: String,
    /// The host as the URL names it, for TLS.
    pub(crate) host: String,
}

/// What a session gathers from: the servers, and whom `turns:` servers
/// must prove to be.
#[derive(Clone)]
pub(crate) struct Gathering {
    /// The configured STUN/TURN servers.
    pub(crate) servers: std::sync::Arc<[IceServerUrl]>,
    /// Trust anchors for TURN over TLS.
    pub(crate) tls: std::sync::Arc<rustls::ClientConfig>,
}

/// The TLS client configuration for `turns:` servers: the system's roots,
/// plus the PEM certificates of `extra` (`webrtc.turn_ca_file`).
pub(crate) fn tls_config(
    extra: Option<&std::path::Path>,
) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
    crate::tls::client_config(extra.map(|path| (path, "webrtc.turn_ca_file")), None)
}

/// Reads one `stun:`/`turn:`/`turns:` URL; TURN URLs take `auth`. Errors
/// say what is wrong with the URL.
pub(crate) fn parse_url(url: &str, auth: Option<TurnAuth>) -> Result<IceServerUrl, String> {
    let (scheme, rest) = url
        .split_once(':')
        .ok_or_else(|| format!("`{url}` has no scheme (stun:, turn: or turns:)"))?;
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    let transport = match query {
        None => None,
        Some("transport=udp") => Some(TurnTransport::Udp),
        Some("transport=tcp") => Some(TurnTransport::Tcp),
        Some(other) => return Err(format!("`{url}`: unknown parameter `{other}`")),
    };
    let role = match (scheme, transport) {
        ("stun", None) => ServerRole::Stun,
        ("turn" | "turns", _) => {
            let transport = match (scheme, transport) {
                ("turns", Some(TurnTransport::Udp)) => {
                    return Err(format!("`{url}`: TURN over TLS runs on TCP"));
                }
                ("turns", _) => TurnTransport::Tls,
                (_, transport) => transport.unwrap_or(TurnTransport::Udp),
            };
            let auth = auth.ok_or_else(|| {
                format!("`{url}` needs a username and credential (or a shared secret)")
            })?;
            ServerRole::Turn { transport, auth }
        }
        ("stun", Some(_)) => return Err(format!("`{url}`: STUN URLs take no parameters")),
        _ => return Err(format!("`{url}` is not a stun:, turn: or turns: URL")),
    };
    let default_port = match role {
        ServerRole::Turn {
            transport: TurnTransport::Tls,
            ..
        } => DEFAULT_TLS_PORT,
        _ => DEFAULT_PORT,
    };
    let (host, port) =
        split_host_port(authority).ok_or_else(|| format!("`{url}` has a bad host or port"))?;
    Ok(IceServerUrl {
        host,
        port: port.unwrap_or(default_port),
        role,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() || host.contains('/') {
        return None;
    }
    let port = match port {
        Some(port) => Some(port.parse().ok().filter(|p| *p != 0)?),
        None => None,
    };
    Some((host.to_owned(), port))
}

/// Resolves every server's host (each within [`RESOLVE_TIMEOUT`]) and
/// mints this call's TURN credentials (`now` in seconds since the epoch);
/// servers that do not resolve are left out with a warning: a call never
/// waits on DNS.
pub(crate) async fn resolve(servers: &[IceServerUrl], now: u64) -> Vec<ResolvedServer> {
    let mut resolved = Vec::new();
    for server in servers {
        let url = describe(server);
        let lookup = smol::net::resolve((server.host.as_str(), server.port));
        let timeout = async {
            smol::Timer::after(RESOLVE_TIMEOUT).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer from DNS in time",
            ))
        };
        match futures_lite::FutureExt::or(lookup, timeout).await {
            Ok(addrs) => match addrs.into_iter().find(SocketAddr::is_ipv4) {
                Some(addr) => resolved.push(ResolvedServer {
                    addr,
                    role: match &server.role {
                        ServerRole::Stun => ServerRole::Stun,
                        ServerRole::Turn { transport, auth } => {
                            let (username, password) = auth.credentials(now);
                            ServerRole::Turn {
                                transport: *transport,
                                auth: TurnAuth::Static { username, password },
                            }
                        }
                    },
                    url,
                    host: server.host.clone(),
                }),
                None => tracing::warn!("{url}: no IPv4 address; not used"),
            },
            Err(e) => tracing::warn!("{url}: cannot resolve {}: {e}; not used", server.host),
        }
    }
    resolved
}

/// The server as a URL without credentials, for logs.
fn describe(server: &IceServerUrl) -> String {
    let scheme = match server.role {
        ServerRole::Stun => "stun",
        ServerRole::Turn {
            transport: TurnTransport::Udp,
            ..
        } => "turn",
        ServerRole::Turn {
            transport: TurnTransport::Tcp,
            ..
        } => "turn(tcp)",
        ServerRole::Turn {
            transport: TurnTransport::Tls,
            ..
        } => "turns",
    };
    format!("{scheme}:{}:{}", server.host, server.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> TurnAuth {
        TurnAuth::Static {
            username: "u".into(),
            password: "p".into(),
        }
    }

    fn turn(transport: TurnTransport) -> ServerRole {
        ServerRole::Turn {
            transport,
            auth: fixed(),
        }
    }

    #[test]
    fn reads_every_kind_of_url() {
        let parsed = |url| parse_url(url, Some(fixed())).unwrap();
        assert_eq!(
            parsed("stun:stun.example.org"),
            IceServerUrl {
                host: "stun.example.org".into(),
                port: 3478,
                role: ServerRole::Stun
            }
        );
        assert_eq!(parsed("stun:198.51.100.1:19302").port, 19302);
        assert_eq!(parsed("turn:t.example:3479").role, turn(TurnTransport::Udp));
        assert_eq!(
            parsed("turn:t.example?transport=tcp").role,
            turn(TurnTransport::Tcp)
        );
        let tls = parsed("turns:t.example");
        assert_eq!((tls.port, tls.role), (5349, turn(TurnTransport::Tls)));
        assert_eq!(parsed("stun:[2001:db8::1]:3478").host, "2001:db8::1");
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for url in [
            "http://x",
            "stun:",
            "stun:h:0",
            "stun:h:port",
            "stun:h?transport=tcp",
            "turn:h?transport=sctp",
            "turns:h?transport=udp",
        ] {
            assert!(parse_url(url, Some(fixed())).is_err(), "{url}");
        }
        let error = parse_url("turn:h", None).unwrap_err();
        assert!(error.contains("needs a username"), "{error}");
    }

    #[test]
    fn mints_turn_rest_credentials_as_coturn_checks_them() {
        // coturn accepting them is tested against a real coturn in
        // `gather::tests`; here, their shape.
        let (username, password) = mint("north", "alice", 1_700_000_000);
        assert_eq!(username, "1700000000:alice");
        assert_eq!(password.len(), 28, "base64 of a 20-byte HMAC-SHA1");
        assert_ne!(mint("south", "alice", 1_700_000_000).1, password);
        let minted = TurnAuth::Minted {
            name: "cam".into(),
            secret: "hunter2".into(),
            lifetime: Duration::from_secs(3600),
        };
        assert_eq!(minted.credentials(100).0, "3700:cam");
        assert!(
            !format!("{minted:?}").contains("hunter2"),
            "secrets stay out of logs"
        );
    }

    #[test]
    fn resolves_literals_at_once() {
        let servers = [parse_url("stun:127.0.0.1:3478", None).unwrap()];
        let resolved = smol::block_on(resolve(&servers, 0));
        assert_eq!(resolved[0].addr, "127.0.0.1:3478".parse().unwrap());
        assert_eq!(resolved[0].url, "stun:127.0.0.1:3478");
    }
}
