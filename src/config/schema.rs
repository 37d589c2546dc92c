//! The configuration's shape: every section and key with its type and
//! default, values parsed into types once (a broker, a port range, an
//! optional address, secrets whose `Debug` is redacted).

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

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
    /// Who may call: paired viewers only (sealed) or anyone on the broker.
    pub(crate) security: SecurityConfig,
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
    pub(crate) broker: Broker,
    /// Topic prefix (`P` in docs/protocol.md).
    pub(crate) prefix: String,
    /// Broker user name.
    pub(crate) username: Option<String>,
    /// Broker password (prefer `password_file`).
    pub(crate) password: Option<Secret>,
    /// File holding the broker password (trailing newline ignored).
    pub(crate) password_file: Option<PathBuf>,
    /// MQTT client id; default `peercam-<device id>`.
    pub(crate) client_id: Option<String>,
    /// MQTT keep-alive interval in seconds.
    pub(crate) keep_alive_secs: u64,
    /// PEM CA certificates trusted for `mqtts://`/`wss://` besides the
    /// system's (a private CA).
    pub(crate) ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for brokers that authenticate clients by certificate.
    pub(crate) client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub(crate) client_key: Option<PathBuf>,
    /// Listeners of the embedded broker (`broker = "embedded"`).
    pub(crate) embedded: EmbeddedBrokerConfig,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            broker: Broker::Embedded,
            prefix: "peercam".into(),
            username: None,
            password: None,
            password_file: None,
            client_id: None,
            keep_alive_secs: 30,
            ca_file: None,
            client_cert: None,
            client_key: None,
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
    /// TURN user name; with `secret`, the name in every minted user name.
    pub(crate) username: Option<String>,
    /// TURN password (long-lived credentials).
    pub(crate) credential: Option<Secret>,
    /// The TURN server's shared secret (coturn `static-auth-secret`): the
    /// device mints short-lived credentials per call, for itself and the viewer.
    pub(crate) secret: Option<Secret>,
    /// How long minted credentials stay valid, in seconds.
    #[serde(default = "default_credential_lifetime")]
    pub(crate) credential_lifetime_secs: u64,
}

/// Minted TURN credentials last a day unless configured otherwise: a call
/// that outlives them keeps its allocation (refreshes reuse the nonce), a
/// leaked one is useless tomorrow.
fn default_credential_lifetime() -> u64 {
    86_400
}

/// `[webrtc]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WebRtcConfig {
    /// Interface names or addresses to offer host candidates on; empty
    /// means every interface that is up, loopback excluded.
    pub(crate) interfaces: Vec<String>,
    /// UDP port range `"FIRST-LAST"` for media sockets; unset for any port.
    pub(crate) port_range: Option<PortRange>,
    /// Seconds without a datagram from a viewer before its session ends.
    pub(crate) peer_timeout_secs: u64,
    /// Seconds after the offer by which DTLS must have connected.
    pub(crate) connect_timeout_secs: u64,
    /// STUN/TURN servers handed to viewers.
    pub(crate) ice_servers: Vec<IceServerConfig>,
    /// PEM certificates the device trusts for `turns:` servers besides the
    /// system's roots (a private CA, a self-signed coturn).
    pub(crate) turn_ca_file: Option<PathBuf>,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        WebRtcConfig {
            interfaces: Vec::new(),
            port_range: None,
            peer_timeout_secs: 30,
            connect_timeout_secs: 30,
            ice_servers: Vec::new(),
            turn_ca_file: None,
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

    /// The configured port range, if any.
    pub(crate) fn ports(&self) -> Option<Range<u16>> {
        self.port_range.map(PortRange::ports)
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpConfig {
    /// Address serving the web viewer; `""` in the file turns it off.
    #[serde(deserialize_with = "optional_addr")]
    pub(crate) listen: Option<SocketAddr>,
    /// Broker URL browsers use (`ws://`/`wss://`), put in the printed link;
    /// defaults to the embedded broker's WebSocket listener or a `ws(s)://` broker.
    pub(crate) broker_url: Option<String>,
    /// PEM certificate chain: with `tls_key`, the viewer is served over HTTPS.
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub(crate) tls_key: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: Some(([127, 0, 0, 1], 8080).into()),
            broker_url: None,
            tls_cert: None,
            tls_key: None,
        }
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

/// Whether signaling is sealed (docs/protocol.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SecurityMode {
    /// Sealed once at least one viewer is paired, plain before.
    Auto,
    /// Only paired viewers may call; with nobody paired, nobody can.
    Sealed,
    /// Anyone who can publish on the broker may call (LAN, demos).
    Plain,
}

/// `[security]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SecurityConfig {
    /// Sealed, plain, or sealed once a viewer is paired.
    pub(crate) mode: SecurityMode,
    /// The paired viewers' key file (`peercam pair` writes it); relative to
    /// the configuration file's folder.
    pub(crate) keys_file: PathBuf,
    /// Base URL of the viewer page in pairing links (any HTTPS static host,
    /// or this device's own `http.listen`).
    pub(crate) viewer_url: Option<String>,
    /// Plain mode only: let viewers talk through the speaker.
    pub(crate) plain_talkback: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            mode: SecurityMode::Auto,
            keys_file: "/var/lib/peercam/viewers.toml".into(),
            viewer_url: None,
            plain_talkback: false,
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

/// `mqtt.broker`: the embedded broker, or the URL of one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) enum Broker {
    /// Run a broker inside the daemon (`"embedded"`).
    Embedded,
    /// A broker URL: `mqtt://`, `mqtts://`, `ws://` or `wss://`.
    Url(String),
}

impl TryFrom<String> for Broker {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text == "embedded" {
            return Ok(Broker::Embedded);
        }
        match text.split_once("://") {
            Some(("mqtt" | "mqtts" | "ws" | "wss", rest)) if !rest.is_empty() => {
                Ok(Broker::Url(text))
            }
            _ => Err(
                "must be \"embedded\" or a URL starting with mqtt://, mqtts://, ws:// or wss://"
                    .into(),
            ),
        }
    }
}

/// `webrtc.port_range`: `"FIRST-LAST"`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// The ports as a half-open range.
    pub(crate) fn ports(self) -> Range<u16> {
        self.first..self.last + 1
    }
}

impl TryFrom<String> for PortRange {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a port range like \"40000-40100\"");
        let (first, last) = text.split_once('-').ok_or_else(bad)?;
        let first: u16 = first.trim().parse().map_err(|_| bad())?;
        let last: u16 = last.trim().parse().map_err(|_| bad())?;
        if first == 0 || last < first || last == u16::MAX {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

/// A password or credential: readable where it is used, never in a `Debug`
/// print (logs, error messages, test failures).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub(crate) struct Secret(String);

impl Secret {
    /// A secret read from somewhere other than the file (a password file).
    pub(crate) fn new(text: String) -> Self {
        Secret(text)
    }

    /// The secret itself, for the one place that needs it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// An address, or `None` for `""` (turned off).
fn optional_addr<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom("must be an address like 127.0.0.1:8080, or \"\" to turn it off")
    })
}
