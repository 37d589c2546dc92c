//! Serves the web viewer, embedded in the binary, so a user can open one
//! URL and watch. Static files only; signaling never goes through here.

use std::net::SocketAddr;

use anyhow::anyhow;

/// The viewer's files as (URL path, content type, bytes): everything under
/// `web/` a browser loads, embedded by `build.rs`.
const FILES: &[(&str, &str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

/// The file served for a request path (query string ignored; `/` is the page).
pub(crate) fn lookup(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = if path == "/" { "/index.html" } else { path };
    FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, content_type, body)| (*content_type, *body))
}

/// Starts serving on `addr` in a background thread; returns the bound address.
pub(crate) fn start(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow!("cannot serve the web viewer on {addr}: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| anyhow!("the web viewer is not on an IP socket"))?;
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                respond(request);
            }
        })?;
    Ok(bound)
}

fn respond(request: tiny_http::Request) {
    use tiny_http::{Header, Method, Response};
    let header = |name: &str, value: &str| {
        Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
    };
    let found = match request.method() {
        Method::Get | Method::Head => lookup(request.url()),
        _ => None,
    };
    let response = match found {
        Some((content_type, body)) => Response::from_data(body)
            .with_header(header("Content-Type", content_type))
            .with_header(header("Cache-Control", "no-cache")),
        None => Response::from_data(&b"not found\n"[..]).with_status_code(404),
    }
    .with_header(header("X-Content-Type-Options", "nosniff"))
    .with_header(header("Referrer-Policy", "no-referrer"));
    if let Err(e) = request.respond(response) {
        tracing::debug!("web viewer response failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_viewer_files_and_nothing_else() {
        assert!(lookup("/").unwrap().0.starts_with("text/html"));
        assert!(lookup("/?x=1").is_some());
        assert_eq!(
            lookup("/app.js").unwrap().1,
            include_bytes!("../web/app.js")
        );
        assert!(lookup("/vendor/mqtt.min.js").is_some());
        assert!(lookup("/../Cargo.toml").is_none());
        assert!(lookup("/etc/passwd").is_none());
    }
}
