//! `peercam check`: probes what the configuration needs on this machine
//! (config, cameras, GStreamer elements, audio, network, broker, board) and
//! prints a checklist with a fix for every problem.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use crate::board;
use crate::config::{Broker, Config, SecurityMode, SourceKind};
use crate::media::audio::pcm;
use crate::media::video;
use crate::rtc::net;
use crate::signal::keyring::Keyring;
use crate::signal::mqtt::{self, ConnectFailure};
use crate::tls;

/// How long the broker gets to answer.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// Fine.
    Ok,
    /// Worth knowing; the configuration does not need it.
    Warn,
    /// The configuration needs this and it is missing or broken.
    Fail,
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// Outcome.
    pub(crate) level: Level,
    /// What was checked, one word.
    pub(crate) topic: &'static str,
    /// What was found.
    pub(crate) detail: String,
    /// What to do about it, for warnings and failures.
    pub(crate) fix: Option<String>,
}

impl Finding {
    fn ok(topic: &'static str, detail: impl Into<String>) -> Self {
        Finding {
            level: Level::Ok,
            topic,
            detail: detail.into(),
            fix: None,
        }
    }

    fn problem(
        level: Level,
        topic: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            level,
            topic,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The checklist as printed.
pub(crate) fn render(config_path: &Path, findings: &[Finding]) -> String {
    let mut out = format!("peercam check: {}\n", config_path.display());
    for f in findings {
        let mark = match f.level {
            Level::Ok => "[ ok ]",
            Level::Warn => "[warn]",
            Level::Fail => "[FAIL]",
        };
        let _ = writeln!(out, "{mark} {:<10} {}", f.topic, f.detail);
        if let Some(fix) = &f.fix {
            let _ = writeln!(out, "       {:<10} fix: {fix}", "");
        }
    }
    let failures = findings.iter().filter(|f| f.level == Level::Fail).count();
    let _ = match failures {
        0 => writeln!(out, "everything the configuration needs is here"),
        1 => writeln!(out, "1 problem"),
        n => writeln!(out, "{n} problems"),
    };
    out
}

/// Whether any finding is a failure (the exit code is then non-zero).
pub(crate) fn failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.level == Level::Fail)
}

/// Runs every check for the configuration at `config_path`.
pub(crate) fn run(config_path: &Path) -> Vec<Finding> {
    let mut findings = Vec::new();
    let config = match Config::load(config_path) {
        Ok(config) => {
            findings.push(Finding::ok(
                "config",
                format!(
                    "valid: device \"{}\", video source `{}` {}x{} at {} fps",
                    config.device.id,
                    video::source_name(config.video.source),
                    config.video.width,
                    config.video.height,
                    config.video.fps
                ),
            ));
            Some(config)
        }
        Err(e) => {
            findings.push(Finding::problem(
                Level::Fail,
                "config",
                e.to_string(),
                "correct the key named above; config/peercam.toml documents every key",
            ));
            None
        }
    };
    let needs_camera = config
        .as_ref()
        .is_some_and(|c| matches!(c.video.source, SourceKind::V4l2 | SourceKind::PiHw));
    findings.extend(check_cameras(needs_camera));
    if let Some(config) = &config {
        findings.extend(check_video(config));
        findings.push(check_network(config));
        findings.push(check_broker(config));
        findings.extend(check_security(config));
        findings.extend(check_nat(config));
    }
    findings.extend(check_audio(config.as_ref()));
    if let Some(config) = &config {
        findings.extend(check_doorbell(config));
    }
    findings.push(check_board());
    findings
}

fn check_cameras(needed: bool) -> Vec<Finding> {
    let mut nodes: Vec<_> = std::fs::read_dir("/sys/class/video4linux")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("video"))
        .collect();
    nodes.sort();
    if nodes.is_empty() {
        let level = if needed { Level::Fail } else { Level::Ok };
        let detail = "no V4L2 camera nodes (/dev/video*)";
        return vec![if needed {
            Finding::problem(
                level,
                "camera",
                detail,
                "connect the camera; a CSI camera on Raspberry Pi OS needs \
                 camera_auto_detect=1 in /boot/firmware/config.txt and a reboot",
            )
        } else {
            Finding::ok(
                "camera",
                format!("{detail}; the configured source needs none"),
            )
        }];
    }
    nodes
        .iter()
        .map(|node| {
            let name = std::fs::read_to_string(format!("/sys/class/video4linux/{node}/name"))
                .unwrap_or_default();
            let device = Path::new("/dev").join(node);
            let formats = video::camera_formats(&device)
                .map(|f| f.join(", "))
                .unwrap_or_else(|_| "not a capture device, or busy".into());
            Finding::ok(
                "camera",
                format!("{} \"{}\": {formats}", device.display(), name.trim()),
            )
        })
        .collect()
}

fn check_video(config: &Config) -> Vec<Finding> {
    let format = if config.video.source == SourceKind::V4l2 {
        match video::probe_v4l2_format(&config.video) {
            Ok(format) => format,
            Err(e) => {
                return vec![Finding::problem(
                    Level::Fail,
                    "camera",
                    format!("{e:#}"),
                    "check `video.device`, that the camera is plugged in, and that no \
                     other program (another peercam?) holds it",
                )];
            }
        }
    } else {
        config.video.input_format
    };
    if let Err(e) = gstreamer::init() {
        return vec![Finding::problem(
            Level::Fail,
            "gstreamer",
            format!("GStreamer failed to initialise: {e}"),
            "install gstreamer1.0-plugins-base",
        )];
    }
    let hw_encoder = gstreamer::ElementFactory::find("v4l2h264enc").is_some();
    let description = video::pipeline_description(&config.video, format, hw_encoder);
    let missing = video::missing_elements(&description);
    if missing.is_empty() {
        return vec![Finding::ok(
            "gstreamer",
            format!(
                "every element is installed: {}",
                video::elements_in(&description).join(", ")
            ),
        )];
    }
    missing
        .iter()
        .map(|element| {
            Finding::problem(
                Level::Fail,
                "gstreamer",
                format!(
                    "element `{element}` is missing (video source `{}`)",
                    video::source_name(config.video.source)
                ),
                video::install_hint(element),
            )
        })
        .collect()
}

fn check_network(config: &Config) -> Finding {
    let all = match net::interface_addrs() {
        Ok(all) => all,
        Err(e) => {
            return Finding::problem(
                Level::Fail,
                "network",
                format!("cannot list network interfaces: {e}"),
                "run on a machine with a network interface",
            );
        }
    };
    let chosen = net::select_addrs(&all, &config.webrtc.interfaces);
    if chosen.is_empty() {
        Finding::problem(
            Level::Fail,
            "network",
            format!(
                "no address matches webrtc.interfaces {:?}",
                config.webrtc.interfaces
            ),
            "list an interface that is up (see `ip -br addr`), or leave webrtc.interfaces empty",
        )
    } else {
        let list: Vec<String> = chosen.iter().map(ToString::to_string).collect();
        Finding::ok("network", format!("media on {}", list.join(", ")))
    }
}

/// The NAT in front of the device and each TURN server's relay (the
/// summary of `peercam nat`), when ICE servers are configured.
fn check_nat(config: &Config) -> Vec<Finding> {
    if config.webrtc.ice_servers.is_empty() {
        return Vec::new();
    }
    let probe = match crate::nat::probe(config) {
        Ok(probe) => probe,
        Err(e) => {
            return vec![Finding::problem(
                Level::Warn,
                "nat",
                format!("{e:#}"),
                "check the URLs in [[webrtc.ice_servers]]",
            )];
        }
    };
    let mut findings = Vec::new();
    if let Some((behaviour, _)) = &probe.behaviour {
        let summary = crate::nat::summary(behaviour);
        findings.push(match behaviour {
            crate::nat::Behaviour::UdpBlocked => Finding::problem(
                Level::Warn,
                "nat",
                summary,
                "viewers can only connect through TURN over TCP or TLS: add \
                 turn:…?transport=tcp to [[webrtc.ice_servers]]",
            ),
            _ => Finding::ok("nat", format!("{summary} (`peercam nat` tells more)")),
        });
    }
    for (server, outcome) in probe.relays {
        findings.push(match outcome {
            Ok((relayed, _)) => Finding::ok("turn", format!("{server}: relay at {relayed}")),
            Err(why) => Finding::problem(
                Level::Fail,
                "turn",
                format!("{server}: {why}"),
                "check the server's address and the entry's username/credential (or secret, \
                 for coturn's use-auth-secret)",
            ),
        });
    }
    findings
}

/// Who can call (sealed or plain), the key file, and the viewer's HTTPS.
fn check_security(config: &Config) -> Vec<Finding> {
    let mut findings = Vec::new();
    let path = &config.security.keys_file;
    let paired = match Keyring::load(path) {
        Ok(keys) => keys.viewers().count(),
        Err(e) => {
            findings.push(Finding::problem(
                Level::Fail,
                "security",
                format!("{e:#}"),
                "fix the file named above, or revoke and pair the viewer again",
            ));
            return findings;
        }
    };
    let exposed = std::fs::metadata(path).is_ok_and(|meta| {
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0
    });
    if exposed {
        findings.push(Finding::problem(
            Level::Fail,
            "security",
            format!(
                "{} is readable by other users: its keys let anyone call",
                path.display()
            ),
            format!("chmod 600 {}", path.display()),
        ));
    }
    let plain = match config.security.mode {
        SecurityMode::Plain => true,
        SecurityMode::Auto => paired == 0,
        SecurityMode::Sealed => false,
    };
    findings.push(if plain {
        Finding::problem(
            Level::Warn,
            "security",
            "plain mode: anyone who can publish to the camera's topics on the broker can watch \
             and listen",
            "pair a viewer with `peercam pair NAME` (the camera then seals its signaling), or \
             restrict the broker with an ACL (config/peercam.toml shows one)",
        )
    } else if paired == 0 {
        Finding::problem(
            Level::Warn,
            "security",
            "sealed mode, but no viewer is paired: nobody can call",
            "pair a viewer with `peercam pair NAME`",
        )
    } else {
        Finding::ok(
            "security",
            format!("sealed: {paired} paired viewers ({})", path.display()),
        )
    });
    if let (Some(cert), Some(key)) = (&config.http.tls_cert, &config.http.tls_key) {
        findings.push(
            match tls::server_config((cert, "http.tls_cert"), (key, "http.tls_key")) {
                Ok(_) => Finding::ok(
                    "https",
                    format!("the viewer is served over HTTPS ({})", cert.display()),
                ),
                Err(e) => Finding::problem(
                    Level::Fail,
                    "https",
                    format!("{e:#}"),
                    "point http.tls_cert and http.tls_key at the PEM certificate chain and its key",
                ),
            },
        );
    }
    findings
}

fn check_broker(config: &Config) -> Finding {
    let Broker::Url(url) = &config.mqtt.broker else {
        let embedded = &config.mqtt.embedded;
        for addr in [embedded.listen, embedded.ws_listen] {
            if let Err(e) = TcpListener::bind(addr) {
                return Finding::problem(
                    Level::Fail,
                    "broker",
                    format!("the embedded broker cannot listen on {addr}: {e}"),
                    "stop what uses that port (a running peercam or Mosquitto?) or change \
                     mqtt.embedded.listen / ws_listen",
                );
            }
        }
        return Finding::ok(
            "broker",
            format!(
                "embedded broker can listen on {} and {}",
                embedded.listen, embedded.ws_listen
            ),
        );
    };
    let client_id = format!("peercam-{}-check", config.device.id);
    match mqtt::probe(&config.mqtt, url, &client_id, BROKER_TIMEOUT) {
        Ok(Ok(())) => Finding::ok("broker", format!("{url} reachable, login accepted")),
        Ok(Err(failure @ ConnectFailure::Refused(_))) => Finding::problem(
            Level::Fail,
            "broker",
            format!("{url} {failure}"),
            "set mqtt.username and mqtt.password_file to an account the broker accepts \
             (Mosquitto: mosquitto_passwd)",
        ),
        Ok(Err(failure @ ConnectFailure::Certificate(_))) => Finding::problem(
            Level::Fail,
            "broker",
            format!("{url}: {failure}"),
            "set mqtt.ca_file to the PEM certificate of the CA that signed the broker's \
             certificate, and name the broker by the host its certificate is for",
        ),
        Ok(Err(failure)) => Finding::problem(
            Level::Fail,
            "broker",
            format!("{url} {failure}"),
            "check the host, port and scheme of mqtt.broker and that the broker runs \
             (ws:// and wss:// need a WebSocket listener)",
        ),
        Err(e) => Finding::problem(
            Level::Fail,
            "broker",
            format!("{e:#}"),
            "write mqtt.broker as mqtt://, mqtts://, ws:// or wss://host:port, and point \
             mqtt.ca_file / client_cert / client_key at readable PEM files",
        ),
    }
}

fn check_audio(config: Option<&Config>) -> Vec<Finding> {
    let cards = std::fs::read_to_string("/proc/asound/cards").unwrap_or_default();
    let names: Vec<&str> = cards
        .lines()
        .filter(|line| line.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(str::trim)
        .collect();
    let mut findings = vec![if names.is_empty() {
        Finding::problem(
            Level::Warn,
            "audio",
            "no ALSA sound cards (/proc/asound/cards)",
            "only doorbell audio needs one: add a USB sound card or an audio HAT",
        )
    } else {
        Finding::ok("audio", names.join("; "))
    }];
    let Some(audio) = config.map(|c| &c.audio).filter(|a| a.enabled) else {
        return findings;
    };
    let mut devices = vec![(
        "capture",
        &audio.capture_device,
        alsa::Direction::Capture,
        "arecord -L",
        "audio.capture_device",
    )];
    if audio.talkback {
        devices.push((
            "playback",
            &audio.playback_device,
            alsa::Direction::Playback,
            "aplay -L",
            "audio.playback_device",
        ));
    }
    for (what, device, direction, list, key) in devices {
        findings.push(match pcm::probe(device, direction) {
            Ok(()) => Finding::ok(
                "audio",
                format!("{what} device `{device}` opens at 48 kHz mono"),
            ),
            Err(e) => Finding::problem(
                Level::Fail,
                "audio",
                format!("{what} device: {e:#}"),
                format!(
                    "list the devices with `{list}` and set `{key}` (a `plughw:CARD,DEV` device \
                     converts rate and channels); the service user must be in group `audio`"
                ),
            ),
        });
    }
    if audio.echo_cancel {
        let mut needed = video::missing_elements(&pcm::echo_input_pipeline(&audio.capture_device));
        needed.extend(video::missing_elements(&pcm::echo_output_pipeline(
            &audio.playback_device,
        )));
        needed.sort();
        needed.dedup();
        findings.extend(needed.iter().map(|element| {
            Finding::problem(
                Level::Fail,
                "gstreamer",
                format!("element `{element}` is missing (audio.echo_cancel)"),
                video::install_hint(element),
            )
        }));
    }
    findings
}

fn check_doorbell(config: &Config) -> Vec<Finding> {
    let doorbell = &config.doorbell;
    let mut findings = Vec::new();
    if let Some(line) = doorbell.gpio_line {
        let chip = doorbell.gpio_chip.display();
        findings.push(
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&doorbell.gpio_chip)
            {
                Ok(_) => Finding::ok("doorbell", format!("button on {chip} line {line}")),
                Err(e) => Finding::problem(
                    Level::Fail,
                    "doorbell",
                    format!("cannot open {chip}: {e}"),
                    "list the chips with `gpiodetect` and set `doorbell.gpio_chip`; the service \
                     user must be in group `gpio`",
                ),
            },
        );
    }
    let socket = &doorbell.control_socket;
    if let Some(dir) = socket.parent().filter(|_| !socket.as_os_str().is_empty())
        && !dir.is_dir()
    {
        findings.push(Finding::problem(
            Level::Warn,
            "control",
            format!(
                "{} does not exist: `peercam ring` will not work",
                dir.display()
            ),
            "run peercam as the systemd service (RuntimeDirectory=peercam creates /run/peercam) \
             or set `doorbell.control_socket` to a writable path, or \"\" to turn it off",
        ));
    }
    findings
}

fn check_board() -> Finding {
    match board::read_model(Path::new(board::MODEL_PATH)) {
        Some(model) => match board::profile_for_model(&model) {
            Some(profile) => Finding::ok(
                "board",
                format!(
                    "{model}: profile board/{} ({})",
                    profile.file, profile.summary
                ),
            ),
            None => Finding::ok(
                "board",
                format!("{model}: no dedicated profile; board/usb-uvc.toml suits a USB webcam"),
            ),
        },
        None => Finding::ok(
            "board",
            "no device tree (not a Raspberry Pi): board/usb-uvc.toml suits a USB webcam",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fixes_under_problems_and_counts_failures() {
        let findings = vec![
            Finding::ok("config", "valid"),
            Finding::problem(Level::Warn, "audio", "no cards", "add one"),
            Finding::problem(Level::Fail, "broker", "refused", "fix the password"),
        ];
        let text = render(Path::new("p.toml"), &findings);
        let indent = " ".repeat(18);
        assert_eq!(
            text,
            format!(
                "peercam check: p.toml\n\
                 [ ok ] config     valid\n\
                 [warn] audio      no cards\n\
                 {indent}fix: add one\n\
                 [FAIL] broker     refused\n\
                 {indent}fix: fix the password\n\
                 1 problem\n"
            )
        );
        assert!(failed(&findings));
        assert!(!failed(&findings[..2]));
    }

    #[test]
    fn a_broken_config_fails_with_its_line() {
        let dir = std::env::temp_dir().join(format!("peercam-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "[device]\nid = \"x\"\n[video]\nfps = 0\n").unwrap();
        let findings = run(&path);
        let config = &findings[0];
        assert_eq!((config.topic, config.level), ("config", Level::Fail));
        assert!(config.detail.contains("bad.toml:4"), "{}", config.detail);
        assert!(failed(&findings));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
