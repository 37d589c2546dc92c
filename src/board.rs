//! Board profiles (`board/*.toml`): a `[video]` fragment per board or camera
//! kind, and which one fits this machine, read from the device tree.

use std::path::Path;

/// One profile: its `[video]` fragment under `board/`, and when it applies.
#[derive(Debug)]
pub(crate) struct Profile {
    /// File name under `board/`.
    pub(crate) file: &'static str,
    /// What it is for, in a few words.
    pub(crate) summary: &'static str,
    /// Substrings of `/proc/device-tree/model` that select it.
    models: &'static [&'static str],
}

/// Every profile, most specific first.
pub(crate) const PROFILES: &[Profile] = &[
    Profile {
        file: "pi-zero-2w.toml",
        summary: "Raspberry Pi Zero 2 W, CSI camera, hardware H.264, 720p30",
        models: &["Raspberry Pi Zero 2"],
    },
    Profile {
        file: "pi3.toml",
        summary: "Raspberry Pi 3, CSI camera, hardware H.264, 720p30",
        models: &["Raspberry Pi 3"],
    },
    Profile {
        file: "pi4.toml",
        summary: "Raspberry Pi 4/400/CM4, CSI camera, hardware H.264, 1080p30",
        models: &["Raspberry Pi 4", "Raspberry Pi 400", "Compute Module 4"],
    },
    Profile {
        file: "pi5.toml",
        summary: "Raspberry Pi 5 (no H.264 encoder): libcamera + x264, 720p30",
        models: &["Raspberry Pi 5", "Compute Module 5"],
    },
    Profile {
        file: "csi-libcamera.toml",
        summary: "any CSI camera through libcamera, 720p30",
        models: &[],
    },
    Profile {
        file: "usb-uvc.toml",
        summary: "a USB webcam (H.264 passed through, else MJPEG/raw encoded), 720p30",
        models: &[],
    },
];

/// Where Linux tells the board model on device-tree machines.
pub(crate) const MODEL_PATH: &str = "/proc/device-tree/model";

/// The profile for a device-tree `model` string, if one is made for it.
pub(crate) fn profile_for_model(model: &str) -> Option<&'static Profile> {
    let model = model.trim_end_matches('\0').trim();
    PROFILES
        .iter()
        .find(|p| p.models.iter().any(|m| model.contains(m)))
}

/// This machine's model string, if it has a device tree.
pub(crate) fn read_model(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|bytes| {
        String::from_utf8_lossy(&bytes)
            .trim_end_matches('\0')
            .trim()
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn models_pick_their_profiles() {
        let file = |model: &str| profile_for_model(model).map(|p| p.file);
        assert_eq!(
            file("Raspberry Pi Zero 2 W Rev 1.0\0"),
            Some("pi-zero-2w.toml")
        );
        assert_eq!(
            file("Raspberry Pi 3 Model B Plus Rev 1.3"),
            Some("pi3.toml")
        );
        assert_eq!(file("Raspberry Pi 4 Model B Rev 1.5"), Some("pi4.toml"));
        assert_eq!(file("Raspberry Pi 400 Rev 1.0"), Some("pi4.toml"));
        assert_eq!(
            file("Raspberry Pi Compute Module 4 Rev 1.1"),
            Some("pi4.toml")
        );
        assert_eq!(file("Raspberry Pi 5 Model B Rev 1.0"), Some("pi5.toml"));
        assert_eq!(file("Raspberry Pi Model B Rev 2"), None);
        assert_eq!(file("Pine64 RockPro64 v2.1"), None);
    }

    #[test]
    fn every_profile_is_a_valid_config_fragment() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("board");
        for profile in PROFILES {
            let fragment = std::fs::read_to_string(dir.join(profile.file)).unwrap();
            let text = format!("[device]\nid = \"board\"\n{fragment}");
            let config = Config::parse(&text, Path::new(profile.file))
                .unwrap_or_else(|e| panic!("{}: {e}", profile.file));
            assert!(config.video.width >= 640, "{}", profile.file);
            assert!(
                fragment.lines().next().unwrap().starts_with("# "),
                "{} starts with its note",
                profile.file
            );
        }
    }

    #[test]
    fn every_file_in_board_is_listed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("board");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".toml"))
            .collect();
        files.sort();
        let mut listed: Vec<&str> = PROFILES.iter().map(|p| p.file).collect();
        listed.sort();
        assert_eq!(files, listed);
    }
}
