//! Serves the web viewer, embedded in the binary, so a user can open one
//! URL and watch. Static files only; signaling never goes through here.
//! One short-lived thread per connection, capped, each with time limits: a
//! client that never reads (or never finishes its request) holds one slot
//! for a few seconds and never delays anyone else's page.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

/// One file of the viewer, embedded by `build.rs`.
struct WebFile {
    /// Its URL path.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// The body gzip-compressed, when that is smaller: a phone on a mobile
    /// network loads a third of the bytes.
    gzip: Option<&'static [u8]>,
    /// A quoted hash of the body, so a browser revalidates its copy (304)
    /// instead of downloading the viewer again.
    etag: &'static str,
}

/// Everything under `web/` a browser loads.
const FILES: &[WebFile] = include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

/// Connections served at once; more are closed at once (a page load
/// opens a handful).
const MAX_CONNECTIONS: usize = 32;
/// Longest wait for one read or write on a connection.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest time to receive a whole request head.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Largest request head read; browsers send well under 2 KiB.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// What the page may load and connect to: its own files, and MQTT over
/// WebSocket to any broker (the broker is chosen in the page).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; \
    img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
    form-action 'self'";

/// The file served for a request path (query string ignored; `/` is the page).
fn lookup(path: &str) -> Option<&'static WebFile> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = if path == "/" { "/index.html" } else { path };
    FILES.iter().find(|file| file.path == path)
}

/// The value of header `name` in request head `head`, if present.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// Whether an `Accept-Encoding` value admits gzip (not refused with `q=0`).
fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let gzip = parts
            .next()
            .is_some_and(|name| name.eq_ignore_ascii_case("gzip"));
        let refused = parts.any(|param| {
            param
                .strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        gzip && !refused
    })
}

/// Starts serving on `addr` in a background thread, over HTTPS with `tls`;
/// returns the bound address.
pub(crate) fn start(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("cannot serve the web viewer on {addr} (`http.listen`)"))?;
    let bound = listener.local_addr()?;
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => accept(stream, tls.clone(), &active),
                    Err(e) => tracing::debug!("web viewer: accept failed: {e}"),
                }
            }
        })?;
    Ok(bound)
}

/// Serves `stream` on its own thread, unless [`MAX_CONNECTIONS`] are busy.
fn accept(stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>, active: &Arc<AtomicUsize>) {
    if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
        active.fetch_sub(1, Ordering::AcqRel);
        tracing::debug!("web viewer: {MAX_CONNECTIONS} connections busy; one refused");
        return;
    }
    let slot = Slot(Arc::clone(active));
    let spawned = std::thread::Builder::new()
        .name("http-client".into())
        .spawn(move || {
            let _slot = slot;
            if let Err(e) = serve(stream, tls) {
                tracing::debug!("web viewer: {e}");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("web viewer: cannot start a thread: {e}");
    }
}

/// One busy connection; frees its place when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one connection, over TLS with `tls`, within the time limits.
fn serve(stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let Some(tls) = tls else {
        return exchange(stream);
    };
    let connection = rustls::ServerConnection::new(tls).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(connection, stream);
    exchange(&mut stream)?;
    stream.conn.send_close_notify();
    stream.flush()
}

/// Reads one request head and answers it.
fn exchange(mut stream: impl Read + Write) -> std::io::Result<()> {
    let started = Instant::now();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST_HEAD || started.elapsed() >= REQUEST_DEADLINE {
            return stream.write_all(&bad_request());
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    stream.write_all(&answer(&String::from_utf8_lossy(&head)))?;
    stream.flush()
}

/// The whole response to the request whose head is `head`.
fn answer(head: &str) -> Vec<u8> {
    let mut words = head.lines().next().unwrap_or_default().split(' ');
    let (method, path) = (words.next().unwrap_or_default(), words.next());
    let Some(path) = path else {
        return bad_request();
    };
    let with_body = match method {
        "GET" => true,
        "HEAD" => false,
        _ => {
            let body = b"method not allowed\n";
            return response(
                "405 Method Not Allowed",
                "",
                Some(("text/plain", body)),
                true,
            );
        }
    };
    let Some(file) = lookup(path) else {
        let body = b"not found\n";
        return response("404 Not Found", "", Some(("text/plain", body)), with_body);
    };
    let gzip = file
        .gzip
        .filter(|_| header(head, "Accept-Encoding").is_some_and(accepts_gzip));
    let etag = match gzip {
        Some(_) => format!("{}-gzip\"", file.etag.trim_end_matches('"')),
        None => file.etag.to_owned(),
    };
    let mut headers = format!("ETag: {etag}\r\nVary: Accept-Encoding\r\n");
    let cached = header(head, "If-None-Match").is_some_and(|tags| {
        tags.split(',').any(|tag| {
            let tag = tag.trim().trim_start_matches("W/");
            tag == etag || tag == "*"
        })
    });
    if cached {
        return response("304 Not Modified", &headers, None, false);
    }
    if gzip.is_some() {
        headers.push_str("Content-Encoding: gzip\r\n");
    }
    let body = gzip.unwrap_or(file.body);
    response(
        "200 OK",
        &headers,
        Some((file.content_type, body)),
        with_body,
    )
}

/// The answer to a request that cannot be read.
fn bad_request() -> Vec<u8> {
    response(
        "400 Bad Request",
        "",
        Some(("text/plain", b"bad request\n")),
        true,
    )
}

/// A complete HTTP/1.1 response that closes the connection: `status`, the
/// header lines `headers` (each ending in CRLF), and `content` (its type
/// and body) if there is any, sent only `with_body` (not for HEAD).
fn response(
    status: &str,
    headers: &str,
    content: Option<(&str, &[u8])>,
    with_body: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\n{headers}Cache-Control: no-cache\r\n\
         Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\n\
         X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
         Connection: close\r\n"
    );
    if let Some((content_type, body)) = content {
        out.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if let Some((_, body)) = content.filter(|_| with_body) {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_viewer_files_and_nothing_else() {
        assert!(lookup("/").unwrap().content_type.starts_with("text/html"));
        assert!(lookup("/?x=1").is_some());
        assert_eq!(
            lookup("/index.html").unwrap().body,
            include_bytes!("../web/index.html")
        );
        assert!(lookup("/vendor/mqtt.min.js").is_some());
        assert!(lookup("/../Cargo.toml").is_none());
        assert!(lookup("/etc/passwd").is_none());
        assert!(lookup("/package.json").is_none());
    }

    #[test]
    fn answers_with_the_policy_and_refuses_what_it_does_not_serve() {
        let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
        let page = text(answer("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("Content-Security-Policy: default-src 'self'"));
        assert!(page.ends_with("</html>\n"));
        let head = text(answer("HEAD / HTTP/1.1\r\n\r\n"));
        assert!(head.starts_with("HTTP/1.1 200 OK") && head.ends_with("\r\n\r\n"));
        assert!(text(answer("GET /nope HTTP/1.1\r\n\r\n")).starts_with("HTTP/1.1 404"));
        assert!(text(answer("POST / HTTP/1.1\r\n\r\n")).starts_with("HTTP/1.1 405"));
        assert!(text(answer("garbage\r\n\r\n")).starts_with("HTTP/1.1 400"));
    }

    /// The head and the body of `response`.
    fn split(response: &[u8]) -> (String, &[u8]) {
        let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        (
            String::from_utf8_lossy(&response[..end]).into_owned(),
            &response[end..],
        )
    }

    #[test]
    fn sends_gzip_to_browsers_that_take_it_and_revalidates_with_the_etag() {
        let script = "GET /vendor/mqtt.min.js HTTP/1.1\r\nHost: x\r\n";
        let plain = answer(&format!("{script}\r\n"));
        let (plain_head, plain_body) = split(&plain);
        assert_eq!(plain_body, lookup("/vendor/mqtt.min.js").unwrap().body);
        assert!(header(&plain_head, "Content-Encoding").is_none());
        let zipped = answer(&format!(
            "{script}Accept-Encoding: gzip, deflate, br\r\n\r\n"
        ));
        let (head, body) = split(&zipped);
        assert_eq!(header(&head, "Content-Encoding"), Some("gzip"));
        assert_eq!(
            header(&head, "Content-Length"),
            Some(body.len().to_string().as_str())
        );
        assert!(body.len() * 2 < plain_body.len(), "{} bytes", body.len());
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain_body);
        let refused = answer(&format!("{script}Accept-Encoding: gzip;q=0, br\r\n\r\n"));
        assert!(header(&split(&refused).0, "Content-Encoding").is_none());

        let etag = header(&head, "ETag").unwrap().to_owned();
        assert_ne!(Some(etag.as_str()), header(&plain_head, "ETag"));
        let again = answer(&format!(
            "{script}Accept-Encoding: gzip\r\nIf-None-Match: {etag}\r\n\r\n"
        ));
        let (head, body) = split(&again);
        assert!(head.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{head}");
        assert!(body.is_empty());
        let other = answer("GET / HTTP/1.1\r\nIf-None-Match: \"0000\"\r\n\r\n");
        assert!(split(&other).0.starts_with("HTTP/1.1 200 OK"));
    }

    #[test]
    fn a_client_that_never_reads_does_not_block_the_next_page() {
        let addr = start("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let stalled: Vec<TcpStream> = (0..8)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /vendor/mqtt.min.js HTTP/1.1\r\n\r\n")
                    .unwrap();
                s
            })
            .collect();
        let mut page = TcpStream::connect(addr).unwrap();
        page.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        page.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut reply = Vec::new();
        page.read_to_end(&mut reply).unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
        drop(stalled);
    }
}
