//! `peercam pair` and `peercam keys`: pairing a viewer (a key in the key
//! file, and a link with a QR code that carries it to the viewer) and
//! listing or revoking paired viewers. Also the viewer link the daemon
//! prints at start. A running daemon picks up every change to the key file
//! by itself.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::Context;
use qrcode::render::{svg, unicode};
use qrcode::{Color, EcLevel, QrCode};

use crate::config::{Broker, Config, SecurityMode};
use crate::rtc::net;
use crate::signal::keyring::{self, Keyring, PairedViewer};

/// Pixels per QR module in a PNG: sharp on a screen, scannable from a print.
const PNG_MODULE_PIXELS: usize = 8;
/// Light modules around a QR code (its quiet zone, ISO/IEC 18004).
const QUIET_MODULES: usize = 4;

/// Where the QR code of a pairing goes besides the terminal.
#[derive(Debug, Default)]
pub(crate) struct QrFiles<'a> {
    /// A PNG image.
    pub(crate) png: Option<&'a Path>,
    /// An SVG image.
    pub(crate) svg: Option<&'a Path>,
}

/// Pairs a new viewer called `name`: stores its key and returns what to
/// show the person pairing (the link, its QR code, and what happens next).
pub(crate) fn pair(config: &Config, name: &str, files: QrFiles<'_>) -> anyhow::Result<String> {
    let page = viewer_page(config, config.http.listen)?;
    let broker = browser_broker(config).context(
        "browsers cannot reach `mqtt.broker` (mqtt:// or mqtts://): set `http.broker_url` to \
         the broker's wss:// address",
    )?;
    let path = &config.security.keys_file;
    let mut keys = Keyring::load(path)?;
    let first = keys.is_empty();
    let viewer = keyring::new_viewer(name)?;
    let link = pairing_link(config, &page, &broker, &viewer);
    let kid = viewer.key.kid().to_owned();
    keys.add(viewer)?;
    let code = QrCode::with_error_correction_level(&link, EcLevel::M)
        .context("the pairing link is too long for a QR code")?;
    if let Some(png) = files.png {
        write_png(&code, png)?;
    }
    if let Some(svg) = files.svg {
        let image = code
            .render::<svg::Color<'_>>()
            .min_dimensions(256, 256)
            .build();
        std::fs::write(svg, image).with_context(|| format!("cannot write {}", svg.display()))?;
    }
    keys.save(path)?;

    let mut out = format!(
        "Paired {name:?} (key {kid}) in {}.\n\nOpen this link on the viewer's phone or \
         computer. It holds the viewer's key: send it privately, or scan the code below.\n\n\
         {link}\n\n",
        path.display()
    );
    out.push_str(&code.render::<unicode::Dense1x2>().quiet_zone(true).build());
    out.push('\n');
    for file in [files.png, files.svg].into_iter().flatten() {
        let _ = writeln!(out, "The QR code is also in {}.", file.display());
    }
    match config.security.mode {
        SecurityMode::Plain => out.push_str(
            "Note: `security.mode` is \"plain\", so the camera ignores paired viewers and \
             anyone on the broker can call it.\n",
        ),
        SecurityMode::Auto if first => out.push_str(
            "This is the first paired viewer: the camera is sealed from now on, and only \
             paired viewers can call it.\n",
        ),
        SecurityMode::Auto | SecurityMode::Sealed => {}
    }
    if page_is_local(&page) {
        out.push_str(
            "Note: the link opens the viewer on this machine only; for a phone, set \
             `security.viewer_url` (or `http.listen` to a LAN address).\n",
        );
    }
    let _ = writeln!(
        out,
        "A running camera takes the new key within a second. Revoke it with \
         `peercam keys revoke {name:?}`."
    );
    Ok(out)
}

/// The paired viewers, one per line.
pub(crate) fn list(config: &Config) -> anyhow::Result<String> {
    let path = &config.security.keys_file;
    let keys = Keyring::load(path)?;
    if keys.is_empty() {
        return Ok(format!(
            "No viewer is paired ({}). Pair one with `peercam pair NAME`.\n",
            path.display()
        ));
    }
    let mut out = String::new();
    for viewer in keys.viewers() {
        let _ = writeln!(
            out,
            "{}  key {}  paired {}",
            viewer.name,
            viewer.key.kid(),
            viewer.paired
        );
    }
    Ok(out)
}

/// Revokes the viewer paired as `name`; its live calls end within a second.
pub(crate) fn revoke(config: &Config, name: &str) -> anyhow::Result<String> {
    let path = &config.security.keys_file;
    let mut keys = Keyring::load(path)?;
    if !keys.revoke(name) {
        anyhow::bail!("no viewer is paired as {name:?}; `peercam keys` lists them");
    }
    keys.save(path)?;
    Ok(format!(
        "Revoked {name:?}: a running camera ends its calls and refuses it from now on.\n"
    ))
}

/// The link the daemon prints at start: the viewer on `http`, with this
/// device's broker, prefix and id, and no key.
pub(crate) fn viewer_link(config: &Config, http: SocketAddr) -> String {
    let mut link = format!(
        "Open the viewer: {}#v=1&p={}&d={}",
        own_page(config, http),
        percent_encode(&config.mqtt.prefix),
        percent_encode(&config.device.id)
    );
    if let Some(broker) = browser_broker(config) {
        let _ = write!(link, "&b={}", percent_encode(&broker));
    }
    link
}

/// `<page>#v=1&b=…&p=…&d=…&k=<kid>.<secret>&n=…` (docs/protocol.md §8).
fn pairing_link(config: &Config, page: &str, broker: &str, viewer: &PairedViewer) -> String {
    format!(
        "{page}#v=1&b={}&p={}&d={}&k={}&n={}",
        percent_encode(broker),
        percent_encode(&config.mqtt.prefix),
        percent_encode(&config.device.id),
        viewer.key.key_string(),
        percent_encode(&viewer.name)
    )
}

/// The viewer page's URL: `security.viewer_url`, or this device's own
/// viewer on `http`.
fn viewer_page(config: &Config, http: Option<SocketAddr>) -> anyhow::Result<String> {
    if let Some(url) = &config.security.viewer_url {
        return Ok(url.clone());
    }
    let http = http.context(
        "`http.listen` is off, so this device serves no viewer: set `security.viewer_url` to \
         where the viewer is hosted",
    )?;
    Ok(own_page(config, http))
}

/// This device's own viewer on `http`: a LAN address in place of 0.0.0.0,
/// HTTPS when `http.tls_cert` is set.
fn own_page(config: &Config, http: SocketAddr) -> String {
    let host = match http.ip() {
        ip if ip.is_unspecified() => lan_address().map_or_else(
            || format!("localhost:{}", http.port()),
            |ip| SocketAddr::new(ip, http.port()).to_string(),
        ),
        _ => http.to_string(),
    };
    let scheme = if config.http.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}/")
}

/// This machine's first IPv4 address other than loopback.
fn lan_address() -> Option<IpAddr> {
    net::interface_addrs()
        .ok()?
        .into_iter()
        .find(|a| !a.loopback && a.ip.is_ipv4())
        .map(|a| a.ip)
}

/// Whether `page` is on this machine only.
fn page_is_local(page: &str) -> bool {
    let host = page.split("://").nth(1).unwrap_or_default();
    ["localhost", "127.", "[::1]"]
        .iter()
        .any(|local| host.starts_with(local))
}

/// The broker URL browsers use: `http.broker_url`, the embedded broker's
/// WebSocket listener, or a `ws(s)://` `mqtt.broker`.
fn browser_broker(config: &Config) -> Option<String> {
    config
        .http
        .broker_url
        .clone()
        .or_else(|| match &config.mqtt.broker {
            Broker::Embedded => Some(format!("ws://{}", config.mqtt.embedded.ws_listen)),
            Broker::Url(url) if url.starts_with("ws") => Some(url.clone()),
            Broker::Url(_) => None,
        })
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Writes `code` as a greyscale PNG with its quiet zone.
fn write_png(code: &QrCode, path: &Path) -> anyhow::Result<()> {
    let modules = code.width();
    let side = (modules + 2 * QUIET_MODULES) * PNG_MODULE_PIXELS;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules + QUIET_MODULES, i / modules + QUIET_MODULES);
        for y in my * PNG_MODULE_PIXELS..(my + 1) * PNG_MODULE_PIXELS {
            let row = y * side;
            pixels[row + mx * PNG_MODULE_PIXELS..row + (mx + 1) * PNG_MODULE_PIXELS].fill(0);
        }
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let side = u32::try_from(side).expect("a QR code is at most 177 modules");
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&pixels))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_link_is_a_pairing_link_for_the_embedded_broker() {
        let link = viewer_link(&Config::default(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            link,
            "Open the viewer: http://127.0.0.1:8080/#v=1&p=peercam&d=peercam&b=ws%3A%2F%2F127.0.0.1%3A8083"
        );
        assert_eq!(percent_encode("Alice's phone"), "Alice%27s%20phone");
    }

    #[test]
    fn pairing_links_match_the_protocol_vector() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../docs/protocol-vectors.json")).unwrap();
        let case = &vectors["pairing_link"];
        let mut config = Config::default();
        config.mqtt.prefix = case["prefix"].as_str().unwrap().into();
        config.device.id = case["device"].as_str().unwrap().into();
        let key = crate::signal::seal::ViewerKey::parse(vectors["key_string"].as_str().unwrap());
        let viewer = PairedViewer {
            name: case["name"].as_str().unwrap().into(),
            key: key.unwrap(),
            paired: String::new(),
        };
        let link = pairing_link(
            &config,
            case["page"].as_str().unwrap(),
            case["broker"].as_str().unwrap(),
            &viewer,
        );
        assert_eq!(link, case["link"].as_str().unwrap());
    }

    #[test]
    fn local_pages_are_told_apart() {
        assert!(page_is_local("http://127.0.0.1:8080/"));
        assert!(page_is_local("http://localhost:8080/"));
        assert!(!page_is_local("https://cam.example/viewer.html"));
        assert!(!page_is_local("http://192.168.1.20:8080/"));
    }
}
