//! The rules every value must satisfy beyond its type: ranges, and which
//! keys go together. Pure: the file has been read and typed already.

use super::schema::{Broker, Config, SourceKind};

/// Checks every value against its allowed range; returns the key at fault
/// and what would be right.
pub(super) fn validate(config: &Config) -> Result<(), (&'static str, String)> {
    let err = |key: &'static str, message: &str| Err((key, message.to_owned()));
    if !is_topic_id(&config.device.id, 1..=64) {
        return err("device.id", "must be 1 to 64 characters of A-Z a-z 0-9 _ -");
    }
    if !(1..=64).contains(&config.device.max_viewers) {
        return err("device.max_viewers", "must be between 1 and 64");
    }
    if !is_valid_prefix(&config.mqtt.prefix) {
        return err(
            "mqtt.prefix",
            "must be one or more topic levels without `+`, `#`, empty levels or a leading/trailing `/`",
        );
    }
    if config.mqtt.broker == Broker::Embedded && !cfg!(feature = "embedded-broker") {
        return err(
            "mqtt.broker",
            "this build has no embedded broker (cargo feature `embedded-broker`): give a broker URL",
        );
    }
    let mqtt = &config.mqtt;
    if mqtt.client_cert.is_some() != mqtt.client_key.is_some() {
        return err(
            "mqtt.client_cert",
            "set both `client_cert` and `client_key`, or neither",
        );
    }
    let tls_broker = matches!(&mqtt.broker, Broker::Url(url) if url.starts_with("mqtts://") || url.starts_with("wss://"));
    if !tls_broker && (mqtt.ca_file.is_some() || mqtt.client_cert.is_some()) {
        return err(
            "mqtt.ca_file",
            "`ca_file`, `client_cert` and `client_key` are for an mqtts:// or wss:// broker",
        );
    }
    if config.http.tls_cert.is_some() != config.http.tls_key.is_some() {
        return err(
            "http.tls_cert",
            "set both `tls_cert` and `tls_key`, or neither",
        );
    }
    if config.mqtt.keep_alive_secs < 5 {
        return err("mqtt.keep_alive_secs", "must be at least 5");
    }
    let video = &config.video;
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
    if config.webrtc.peer_timeout_secs == 0 {
        return err("webrtc.peer_timeout_secs", "must be at least 1 second");
    }
    if config.webrtc.connect_timeout_secs == 0 {
        return err("webrtc.connect_timeout_secs", "must be at least 1 second");
    }
    for server in &config.webrtc.ice_servers {
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
        if server.secret.is_some() && server.credential.is_some() {
            return err(
                "webrtc.ice_servers",
                "set either `credential` (long-lived) or `secret` (minted per call), not both",
            );
        }
        if !(60..=7 * 86_400).contains(&server.credential_lifetime_secs) {
            return err(
                "webrtc.ice_servers",
                "`credential_lifetime_secs` must be between 60 and 604800 (a week)",
            );
        }
    }

    let audio = &config.audio;
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
    if !(1..=1000).contains(&config.doorbell.debounce_ms) {
        return err("doorbell.debounce_ms", "must be between 1 and 1000");
    }
    if let Some(url) = &config.security.viewer_url
        && (!(url.starts_with("https://") || url.starts_with("http://")) || url.contains('#'))
    {
        return err(
            "security.viewer_url",
            "must be the viewer page's http:// or https:// URL, without a `#` part, \
             e.g. \"https://cam.example.org/\"",
        );
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
