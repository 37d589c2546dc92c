//! The daemon's configuration: one TOML file, every key with a default,
//! unknown keys and bad values refused with file, key and line. The shape
//! and types live in [`schema`], the rules beyond types in [`validate`].

mod schema;
mod validate;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub(crate) use schema::*;
pub(crate) use validate::is_topic_id;

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
        config.resolve_paths(file);
        validate::validate(&config)
            .map_err(|(key, message)| located(key.into(), span_of_key(text, key), message))?;
        Ok(config)
    }

    /// Makes the files the configuration names relative to its own folder.
    fn resolve_paths(&mut self, file: &Path) {
        let folder = file.parent().unwrap_or(Path::new("."));
        self.security.keys_file = folder.join(&self.security.keys_file);
        for path in [
            &mut self.mqtt.ca_file,
            &mut self.mqtt.client_cert,
            &mut self.mqtt.client_key,
            &mut self.http.tls_cert,
            &mut self.http.tls_key,
        ]
        .into_iter()
        .flatten()
        {
            *path = folder.join(&*path);
        }
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
        let password = password.trim_end_matches(['\r', '\n']).to_owned();
        self.mqtt.password = Some(Secret::new(password));
        Ok(())
    }
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

    /// `text` with every `# key = value` line uncommented.
    fn uncommented(text: &str) -> String {
        text.lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(key, _)| {
                        key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    }) =>
                {
                    rest
                }
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_shipped_config_shows_every_default_and_only_defaults() {
        let text = include_str!("../../config/peercam.toml");
        let shipped = parse(text).unwrap();
        let demo = Config {
            device: DeviceConfig {
                id: "demo".into(),
                name: "peercam demo".into(),
                ..DeviceConfig::default()
            },
            ..Config::default()
        };
        assert_eq!(shipped, demo, "the demo sets only the device's id and name");
        let every_key = uncommented(text);
        assert!(
            every_key.lines().count() == text.lines().count()
                && every_key.matches(" = ").count() > 40,
            "the commented keys were uncommented"
        );
        assert_eq!(
            parse(&every_key).unwrap(),
            demo,
            "a commented `key = value` that is not the default (write examples as `# e.g. key = …`)"
        );
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
password = "hunter2-pw"
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
            config.webrtc.ice_servers[0]
                .credential
                .as_ref()
                .map(Secret::expose),
            Some("p")
        );
        assert_eq!(config.http.listen, None);
        assert_eq!(
            config.mqtt.broker,
            Broker::Url("wss://broker.example:8884/mqtt".into())
        );
        assert_eq!(
            config.mqtt.password.as_ref().map(Secret::expose),
            Some("hunter2-pw")
        );
        assert!(
            !format!("{config:?}").contains("hunter2-pw"),
            "secrets stay out of Debug"
        );
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
            (
                "[webrtc]\n\nconnect_timeout_secs = 0\n",
                3,
                "webrtc.connect_timeout_secs",
            ),
            (
                "[webrtc]\npeer_timeout_secs = 0\n",
                2,
                "webrtc.peer_timeout_secs",
            ),
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
    fn password_file_is_read_relative_to_the_config() {
        let dir = std::env::temp_dir().join(format!("peercam-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), "hunter2\n").unwrap();
        let file = dir.join("peercam.toml");
        let config = Config::parse("[mqtt]\npassword_file = \"pw\"\n", &file).unwrap();
        assert_eq!(
            config.mqtt.password.as_ref().map(Secret::expose),
            Some("hunter2")
        );
        let e = Config::parse("[mqtt]\npassword_file = \"missing\"\n", &file).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (Some(2), "mqtt.password_file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
