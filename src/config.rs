//! The daemon's configuration: one TOML file, every key with a default,
//! unknown keys and bad values refused with file, key and line.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration problem, located as precisely as the file allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    /// The file that was read.
    pub(crate) file: PathBuf,
    /// 1-based line of the offending key or value, when known.
    pub(crate) line: Option<usize>,
    /// Dotted key path, e.g. `video.fps`; empty for whole-file problems.
    pub(crate) key: String,
    /// What is wrong, and what would be right.
    pub(crate) message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// Identity and limits of this device.
    pub(crate) device: DeviceConfig,
    /// The MQTT broker used for signaling.
    pub(crate) mqtt: MqttConfig,
    /// The camera and its encoder.
    pub(crate) video: VideoConfig,
    /// WebRTC transport settings.
    pub(crate) webrtc: WebRtcConfig,
    /// The built-in web viewer.
    pub(crate) http: HttpConfig,
    /// Microphone, speaker and talk-back.
    pub(crate) audio: AudioConfig,
    /// The doorbell button and the local control socket.
    pub(crate) doorbell: DoorbellConfig,
}

/// `[device]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DeviceConfig {
    /// Device id in topics (`[A-Za-z0-9_-]{1,64}`).
    pub(crate) id: String,
    /// Human-readable name shown in viewers.
    pub(crate) name: String,
    /// Most viewers watching at once.
    pub(crate) max_viewers: usize,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            id: "peercam".into(),
            name: "peercam".into(),
            max_viewers: 4,
        }
    }
}

/// `[mqtt]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MqttConfig {
    /// `embedded`, or `mqtt://`, `mqtts://`, `ws://`, `wss://` URL.
    pub(crate) broker: String,
    /// Topic prefix (`P` in docs/protocol.md).
    pub(crate) prefix: String,
    /// Broker user name.
    pub(crate) username: Option<String>,
    /// Broker password (prefer `password_file`).
    pub(crate) password: Option<String>,
    /// File holding the broker password (trailing newline ignored).
    pub(crate) password_file: Option<PathBuf>,
    /// MQTT client id; default `peercam-<device id>`.
    pub(crate) client_id: Option<String>,
    /// MQTT keep-alive interval in seconds.
    pub(crate) keep_alive_secs: u64,
    /// Listeners of the embedded broker (`broker = "embedded"`).
    pub(crate) embedded: EmbeddedBrokerConfig,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            broker: "embedded".into(),
            prefix: "peercam".into(),
            username: None,
            password: None,
            password_file: None,
            client_id: None,
            keep_alive_secs: 30,
            embedded: EmbeddedBrokerConfig::default(),
        }
    }
}

/// `[mqtt.embedded]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct EmbeddedBrokerConfig {
    /// Plain MQTT listener.
    pub(crate) listen: SocketAddr,
    /// MQTT-over-WebSocket listener, for browsers.
    pub(crate) ws_listen: SocketAddr,
}

impl Default for EmbeddedBrokerConfig {
    fn default() -> Self {
        EmbeddedBrokerConfig {
            listen: ([127, 0, 0, 1], 1883).into(),
            ws_listen: ([127, 0, 0, 1], 8083).into(),
        }
    }
}

/// Which video source preset to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SourceKind {
    /// Test pattern encoded with x264 (no camera needed).
    Test,
    /// A V4L2 camera (UVC webcam); H.264 passed through when it offers it.
    V4l2,
    /// Raspberry Pi camera node through the Pi's hardware encoder.
    PiHw,
    /// CSI camera through libcamera, encoded in software.
    Libcamera,
    /// The `pipeline` string, verbatim.
    Pipeline,
}

/// What the V4L2 camera should be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum InputFormat {
    /// H.264 if the camera offers it, else MJPEG, else raw.
    Auto,
    /// The camera's own H.264, passed through.
    H264,
    /// MJPEG, decoded and re-encoded.
    Mjpeg,
    /// Raw frames, encoded.
    Raw,
}

/// `[video]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct VideoConfig {
    /// Source preset.
    pub(crate) source: SourceKind,
    /// Camera device node (`v4l2`, `pi-hw`).
    pub(crate) device: PathBuf,
    /// Camera format for `v4l2`.
    pub(crate) input_format: InputFormat,
    /// Frame width in pixels.
    pub(crate) width: u32,
    /// Frame height in pixels.
    pub(crate) height: u32,
    /// Frames per second.
    pub(crate) fps: u32,
    /// Encoder target bitrate.
    pub(crate) bitrate_kbps: u32,
    /// Frames between periodic keyframes.
    pub(crate) keyframe_interval: u32,
    /// Full GStreamer pipeline for `source = "pipeline"`, ending in
    /// `appsink name=sink`, producing H.264 byte-stream access units.
    pub(crate) pipeline: Option<String>,
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            source: SourceKind::Test,
            device: "/dev/video0".into(),
            input_format: InputFormat::Auto,
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 2000,
            keyframe_interval: 60,
            pipeline: None,
        }
    }
}

/// One `[[webrtc.ice_servers]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IceServerConfig {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub(crate) urls: Vec<String>,
    /// TURN user name.
    pub(crate) username: Option<String>,
    /// TURN password.
    pub(crate) credential: Option<String>,
}

/// `[webrtc]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WebRtcConfig {
    /// Interface names or addresses to offer host candidates on; empty
    /// means every interface that is up, loopback excluded.
    pub(crate) interfaces: Vec<String>,
    /// UDP port range `"FIRST-LAST"` for media sockets; empty for any port.
    pub(crate) port_range: Option<String>,
    /// Seconds without a datagram from a viewer before its session ends.
    pub(crate) peer_timeout_secs: u64,
    /// Seconds after the offer by which DTLS must have connected.
    pub(crate) connect_timeout_secs: u64,
    /// STUN/TURN servers handed to viewers.
    pub(crate) ice_servers: Vec<IceServerConfig>,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        WebRtcConfig {
            interfaces: Vec::new(),
            port_range: None,
            peer_timeout_secs: 30,
            connect_timeout_secs: 30,
            ice_servers: Vec::new(),
        }
    }
}

impl WebRtcConfig {
    /// Seconds without a datagram before a session ends, as a duration.
    pub(crate) fn peer_timeout(&self) -> Duration {
        Duration::from_secs(self.peer_timeout_secs)
    }

    /// Connect deadline after the offer, as a duration.
    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// The configured port range, if any (validated at load).
    pub(crate) fn ports(&self) -> Option<Range<u16>> {
        self.port_range
            .as_deref()
            .and_then(|r| parse_port_range(r).ok())
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpConfig {
    /// Address serving the web viewer; empty to disable.
    pub(crate) listen: String,
    /// Broker URL browsers use (`ws://`/`wss://`), put in the printed link;
    /// defaults to the embedded broker's WebSocket listener or a `ws(s)://` broker.
    pub(crate) broker_url: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            broker_url: None,
        }
    }
}

impl HttpConfig {
    /// The listen address, or `None` when the viewer is disabled.
    pub(crate) fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

/// `[audio]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AudioConfig {
    /// Send the microphone to viewers (and, with `talkback`, play theirs).
    pub(crate) enabled: bool,
    /// ALSA capture device (the microphone).
    pub(crate) capture_device: String,
    /// ALSA playback device (the speaker) for talk-back.
    pub(crate) playback_device: String,
    /// Whether viewers may talk back through the speaker.
    pub(crate) talkback: bool,
    /// Opus bitrate of the microphone stream, in kbit/s.
    pub(crate) bitrate_kbps: u32,
    /// Reserve the talk-back jitter buffer builds before playing, in ms.
    pub(crate) jitter_ms: u64,
    /// Cancel the speaker's echo in the microphone (GStreamer `webrtcdsp`).
    pub(crate) echo_cancel: bool,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            enabled: false,
            capture_device: "default".into(),
            playback_device: "default".into(),
            talkback: true,
            bitrate_kbps: 32,
            jitter_ms: 60,
            echo_cancel: false,
        }
    }
}

/// `[doorbell]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DoorbellConfig {
    /// GPIO character device of the button.
    pub(crate) gpio_chip: PathBuf,
    /// Line offset of the button on `gpio_chip`; unset means no button.
    pub(crate) gpio_line: Option<u32>,
    /// The button pulls the line low when pressed.
    pub(crate) active_low: bool,
    /// A level must hold this long to count, in ms.
    pub(crate) debounce_ms: u64,
    /// Unix socket for `peercam ring`; empty turns it off.
    pub(crate) control_socket: PathBuf,
}

impl Default for DoorbellConfig {
    fn default() -> Self {
        DoorbellConfig {
            gpio_chip: "/dev/gpiochip0".into(),
            gpio_line: None,
            active_low: true,
            debounce_ms: 30,
            control_socket: "/run/peercam/control.sock".into(),
        }
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: None,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text`, naming `file` in errors.
    pub(crate) fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let located = |key: String, span: Option<Range<usize>>, message: String| ConfigError {
            file: file.to_owned(),
            line: span.map(|s| line_of(text, s.start)),
            key,
            message,
        };
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| located(String::new(), e.span(), e.message().to_owned()))?;
        let mut config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            let inner = e.into_inner();
            located(key, inner.span(), inner.message().to_owned())
        })?;
        config
            .resolve_password(file)
            .map_err(|(key, message)| located(key.into(), span_of_key(text, key), message))?;
        config
            .validate()
            .map_err(|(key, message)| located(key.into(), span_of_key(text, key), message))?;
        Ok(config)
    }

    fn resolve_password(&mut self, file: &Path) -> Result<(), (&'static str, String)> {
        let Some(path) = &self.mqtt.password_file else {
            return Ok(());
        };
        if self.mqtt.password.is_some() {
            return Err((
                "mqtt.password_file",
                "set either `password` or `password_file`, not both".into(),
            ));
        }
        let path = file.parent().unwrap_or(Path::new(".")).join(path);
        let password = std::fs::read_to_string(&path).map_err(|e| {
            (
                "mqtt.password_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        self.mqtt.password = Some(password.trim_end_matches(['\r', '\n']).to_owned());
        Ok(())
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let err = |key: &'static str, message: &str| Err((key, message.to_owned()));
        if !is_topic_id(&self.device.id, 1..=64) {
            return err("device.id", "must be 1 to 64 characters of A-Z a-z 0-9 _ -");
        }
        if !(1..=64).contains(&self.device.max_viewers) {
            return err("device.max_viewers", "must be between 1 and 64");
        }
        if !is_valid_prefix(&self.mqtt.prefix) {
            return err(
                "mqtt.prefix",
                "must be one or more topic levels without `+`, `#`, empty levels or a leading/trailing `/`",
            );
        }
        if self.mqtt.broker != "embedded" {
            let scheme = self.mqtt.broker.split("://").next().unwrap_or_default();
            if !["mqtt", "mqtts", "ws", "wss"].contains(&scheme)
                || !self.mqtt.broker.contains("://")
            {
                return err(
                    "mqtt.broker",
                    "must be \"embedded\" or a URL starting with mqtt://, mqtts://, ws:// or wss://",
                );
            }
        } else if !cfg!(feature = "embedded-broker") {
            return err(
                "mqtt.broker",
                "this build has no embedded broker (cargo feature `embedded-broker`): give a broker URL",
            );
        }
        if self.mqtt.keep_alive_secs < 5 {
            return err("mqtt.keep_alive_secs", "must be at least 5");
        }
        let video = &self.video;
        if !(16..=7680).contains(&video.width) || !video.width.is_multiple_of(2) {
            return err("video.width", "must be an even number from 16 to 7680");
        }
        if !(16..=4320).contains(&video.height) || !video.height.is_multiple_of(2) {
            return err("video.height", "must be an even number from 16 to 4320");
        }
        if !(1..=120).contains(&video.fps) {
            return err("video.fps", "must be between 1 and 120");
        }
        if !(50..=50_000).contains(&video.bitrate_kbps) {
            return err("video.bitrate_kbps", "must be between 50 and 50000");
        }
        if !(1..=600).contains(&video.keyframe_interval) {
            return err(
                "video.keyframe_interval",
                "must be between 1 and 600 frames",
            );
        }
        match (&video.source, &video.pipeline) {
            (SourceKind::Pipeline, None) => {
                return err(
                    "video.pipeline",
                    "`source = \"pipeline\"` needs a `pipeline` string",
                );
            }
            (SourceKind::Pipeline, Some(p)) if !p.contains("appsink name=sink") => {
                return err("video.pipeline", "must end in `appsink name=sink`");
            }
            (SourceKind::Pipeline, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return err(
                    "video.pipeline",
                    "is only used with `source = \"pipeline\"`",
                );
            }
        }
        if let Some(range) = &self.webrtc.port_range {
            parse_port_range(range).map_err(|m| ("webrtc.port_range", m))?;
        }
        if self.webrtc.peer_timeout_secs == 0 || self.webrtc.connect_timeout_secs == 0 {
            return err(
                "webrtc.peer_timeout_secs",
                "timeouts must be at least 1 second",
            );
        }
        for server in &self.webrtc.ice_servers {
            if server.urls.is_empty()
                || !server.urls.iter().all(|u| {
                    ["stun:", "turn:", "turns:"]
                        .iter()
                        .any(|s| u.starts_with(s))
                })
            {
                return err(
                    "webrtc.ice_servers",
                    "every entry needs `urls` starting with stun:, turn: or turns:",
                );
            }
        }
        let audio = &self.audio;
        if audio.capture_device.trim().is_empty() {
            return err(
                "audio.capture_device",
                "must name an ALSA device, e.g. \"default\" or \"plughw:1,0\"",
            );
        }
        if audio.playback_device.trim().is_empty() {
            return err(
                "audio.playback_device",
                "must name an ALSA device, e.g. \"default\" or \"plughw:1,0\"",
            );
        }
        if !(6..=510).contains(&audio.bitrate_kbps) {
            return err("audio.bitrate_kbps", "must be between 6 and 510 (Opus)");
        }
        if !(20..=500).contains(&audio.jitter_ms) {
            return err("audio.jitter_ms", "must be between 20 and 500");
        }
        if !(1..=1000).contains(&self.doorbell.debounce_ms) {
            return err("doorbell.debounce_ms", "must be between 1 and 1000");
        }
        if !self.http.listen.is_empty() && self.http.listen_addr().is_none() {
            return err(
                "http.listen",
                "must be an address like 127.0.0.1:8080, or empty",
            );
        }
        Ok(())
    }
}

/// Whether `prefix` is a valid topic prefix: one or more non-empty levels,
/// no wildcards, no leading or trailing `/`.
fn is_valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix
            .split('/')
            .all(|level| !level.is_empty() && !level.contains(['+', '#']))
}

/// Whether `id` is `[A-Za-z0-9_-]` with a length in `len`: the grammar of
/// device and session ids in topics.
pub(crate) fn is_topic_id(id: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses `"FIRST-LAST"` into a half-open port range.
fn parse_port_range(text: &str) -> Result<Range<u16>, String> {
    let bad = || format!("`{text}` is not a port range like \"40000-40100\"");
    let (first, last) = text.split_once('-').ok_or_else(bad)?;
    let first: u16 = first.trim().parse().map_err(|_| bad())?;
    let last: u16 = last.trim().parse().map_err(|_| bad())?;
    if first == 0 || last < first || last == u16::MAX {
        return Err(bad());
    }
    Ok(first..last + 1)
}

/// 1-based line number of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Span of the value at dotted `key` in `text`, if it is written there.
fn span_of_key(text: &str, key: &str) -> Option<Range<usize>> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let value = table.get(part)?;
        if parts.peek().is_none() {
            return Some(value.span());
        }
        table = value.get_ref().as_table()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    fn error(text: &str) -> (Option<usize>, String, String) {
        let e = parse(text).expect_err("config should be refused");
        (e.line, e.key, e.message)
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn shipped_demo_config_is_valid_and_documents_every_key() {
        let text = include_str!("../config/peercam.toml");
        parse(text).unwrap();
        let commented: String = text
            .lines()
            .map(|l| l.trim_start_matches("# ").trim_start_matches('#'))
            .collect::<Vec<_>>()
            .join("\n");
        for key in [
            "id",
            "name",
            "max_viewers",
            "broker",
            "prefix",
            "username",
            "password",
            "password_file",
            "client_id",
            "keep_alive_secs",
            "listen",
            "ws_listen",
            "source",
            "device",
            "input_format",
            "width",
            "height",
            "fps",
            "bitrate_kbps",
            "keyframe_interval",
            "pipeline",
            "interfaces",
            "port_range",
            "peer_timeout_secs",
            "connect_timeout_secs",
            "ice_servers",
            "broker_url",
            "enabled",
            "capture_device",
            "playback_device",
            "talkback",
            "jitter_ms",
            "echo_cancel",
            "gpio_chip",
            "gpio_line",
            "active_low",
            "debounce_ms",
            "control_socket",
        ] {
            assert!(
                commented.contains(&format!("{key} =")) || commented.contains(&format!("{key}]")),
                "config/peercam.toml does not document `{key}`"
            );
        }
    }

    #[test]
    fn reads_every_section() {
        let config = parse(
            r#"
[device]
id = "door"
name = "Front door"
max_viewers = 2
[mqtt]
broker = "wss://broker.example:8884/mqtt"
prefix = "home/cams"
username = "door"
password = "secret"
[video]
source = "v4l2"
device = "/dev/video2"
input_format = "mjpeg"
width = 640
height = 480
fps = 15
[webrtc]
interfaces = ["eth0"]
port_range = "40000-40009"
[[webrtc.ice_servers]]
urls = ["turn:turn.example:3478"]
username = "u"
credential = "p"
[http]
listen = ""
"#,
        )
        .unwrap();
        assert_eq!(config.device.max_viewers, 2);
        assert_eq!(config.video.input_format, InputFormat::Mjpeg);
        assert_eq!(config.webrtc.ports(), Some(40000..40010));
        assert_eq!(
            config.webrtc.ice_servers[0].credential.as_deref(),
            Some("p")
        );
        assert_eq!(config.http.listen_addr(), None);
    }

    #[test]
    fn unknown_key_names_file_key_and_line() {
        let e = parse("[video]\nwidth = 640\nframerate = 30\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("unknown field `framerate`"), "{e}");
        assert!(e.to_string().starts_with("test.toml:3:"), "{e}");
        let (line, _, message) = error("[camera]\nfps = 30\n");
        assert_eq!(line, Some(1));
        assert!(message.contains("unknown field `camera`"));
    }

    #[test]
    fn wrong_types_name_the_key() {
        let (line, key, _) = error("[video]\n\nfps = \"thirty\"\n");
        assert_eq!((line, key.as_str()), (Some(3), "video.fps"));
        let (line, key, message) = error("[video]\nsource = \"webcam\"\n");
        assert_eq!((line, key.as_str()), (Some(2), "video.source"));
        assert!(message.contains("unknown variant"), "{message}");
        let (line, key, _) = error("[mqtt.embedded]\nlisten = \"nowhere\"\n");
        assert_eq!((line, key.as_str()), (Some(2), "mqtt.embedded.listen"));
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let cases = [
            ("[device]\nid = \"a b\"\n", 2, "device.id"),
            ("[device]\nmax_viewers = 0\n", 2, "device.max_viewers"),
            ("[mqtt]\nprefix = \"a/#\"\n", 2, "mqtt.prefix"),
            ("[mqtt]\nbroker = \"http://x\"\n", 2, "mqtt.broker"),
            ("[video]\nwidth = 641\n", 2, "video.width"),
            ("[video]\n\nfps = 0\n", 3, "video.fps"),
            ("[video]\nbitrate_kbps = 1\n", 2, "video.bitrate_kbps"),
            ("[video]\nsource = \"pipeline\"\n", 0, "video.pipeline"),
            (
                "[video]\npipeline = \"x ! appsink name=sink\"\n",
                2,
                "video.pipeline",
            ),
            ("[webrtc]\nport_range = \"9-1\"\n", 2, "webrtc.port_range"),
            ("[http]\nlisten = \"everywhere\"\n", 2, "http.listen"),
            ("[audio]\nbitrate_kbps = 1000\n", 2, "audio.bitrate_kbps"),
            ("[audio]\n\njitter_ms = 5\n", 3, "audio.jitter_ms"),
            (
                "[audio]\ncapture_device = \"\"\n",
                2,
                "audio.capture_device",
            ),
            ("[doorbell]\ndebounce_ms = 0\n", 2, "doorbell.debounce_ms"),
            ("[doorbell]\ngpio_line = -1\n", 2, "doorbell.gpio_line"),
            (
                "[[webrtc.ice_servers]]\nurls = [\"http://x\"]\n",
                0,
                "webrtc.ice_servers",
            ),
            ("syntax = = error\n", 1, ""),
        ];
        for (text, line, key) in cases {
            let (got_line, got_key, message) = error(text);
            assert_eq!(got_key, key, "{text}: {message}");
            if line > 0 {
                assert_eq!(got_line, Some(line), "{text}: {message}");
            }
        }
    }

    #[test]
    fn validates_ids_and_prefixes() {
        assert!(is_valid_prefix("peercam"));
        assert!(is_valid_prefix("home/cams"));
        for bad in ["", "/a", "a/", "a//b", "a/+", "#", "a/b#"] {
            assert!(!is_valid_prefix(bad), "{bad}");
        }
        assert!(is_topic_id("cam-1_A", 1..=64));
        assert!(!is_topic_id("", 1..=64));
        assert!(!is_topic_id(&"a".repeat(65), 1..=64));
        assert!(!is_topic_id("a b", 1..=64));
    }

    #[test]
    fn password_file_is_read_relative_to_the_config() {
        let dir = std::env::temp_dir().join(format!("peercam-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), "hunter2\n").unwrap();
        let file = dir.join("peercam.toml");
        let config = Config::parse("[mqtt]\npassword_file = \"pw\"\n", &file).unwrap();
        assert_eq!(config.mqtt.password.as_deref(), Some("hunter2"));
        let e = Config::parse("[mqtt]\npassword_file = \"missing\"\n", &file).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (Some(2), "mqtt.password_file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
