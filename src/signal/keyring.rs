//! The paired viewers' key file: who may call a sealed device. Written by
//! `peercam pair` and `peercam keys revoke`, read by the daemon, which
//! watches it and applies a change without a restart. The file holds
//! secrets: it is written readable by its owner only, and owned by the
//! owner of its folder (the service user's state directory).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::signal::protocol;
use crate::signal::seal::ViewerKey;
use crate::worker::Worker;

/// Longest viewer name: it is shown as the talk-floor holder.
const MAX_NAME_CHARS: usize = 64;
/// Most paired viewers: each is a key tried by name, and a list a person reads.
pub(crate) const MAX_VIEWERS: usize = 256;
/// How often the daemon looks for a changed key file: a revocation takes
/// effect within this.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// What the file says at its top.
const HEADER: &str = "# Paired viewers of this peercam, written by `peercam pair` and \
`peercam keys revoke`.\n# Each key lets one viewer call this camera: keep this file \
readable by the service only.\n";

/// One paired viewer.
#[derive(Debug, PartialEq)]
pub(crate) struct PairedViewer {
    /// The name the viewer was paired under: the floor holder's label.
    pub(crate) name: String,
    /// Its key.
    pub(crate) key: ViewerKey,
    /// When it was paired (RFC 3339 UTC).
    pub(crate) paired: String,
}

/// The paired viewers, by key id.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Keyring {
    viewers: Vec<Arc<PairedViewer>>,
    by_kid: HashMap<String, Arc<PairedViewer>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    key: String,
    paired: String,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default)]
    viewer: Vec<FileEntry>,
}

impl Keyring {
    /// Reads the key file; a missing file is an empty keyring (nobody is
    /// paired yet). Errors name the file, the line and the fix.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Keyring> {
        match fs::read_to_string(path) {
            Ok(text) => {
                Keyring::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Keyring::default()),
            Err(e) => Err(e).with_context(|| {
                format!(
                    "cannot read the paired viewers' key file {} (`security.keys_file`); \
                     run as the service user or root",
                    path.display()
                )
            }),
        }
    }

    /// Parses the key file's text; errors start with the line.
    fn parse(text: &str) -> Result<Keyring, String> {
        let file: KeyFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map_or(1, |s| text[..s.start].matches('\n').count() + 1);
            format!("{line}: {}", e.message())
        })?;
        let mut keyring = Keyring::default();
        for (index, entry) in file.viewer.into_iter().enumerate() {
            let line = line_of_entry(text, index);
            let key = ViewerKey::parse(&entry.key)
                .map_err(|e| format!("{line}: viewer {:?}: {e}; pair it again", entry.name))?;
            keyring
                .add(PairedViewer {
                    name: entry.name,
                    key,
                    paired: entry.paired,
                })
                .map_err(|e| format!("{line}: {e}"))?;
        }
        Ok(keyring)
    }

    /// Adds `viewer`, refusing a bad or taken name and a key already paired.
    pub(crate) fn add(&mut self, viewer: PairedViewer) -> anyhow::Result<()> {
        check_name(&viewer.name)?;
        if self.named(&viewer.name).is_some() {
            anyhow::bail!(
                "a viewer named {:?} is already paired; revoke it first or pick another name",
                viewer.name
            );
        }
        if self.by_kid.contains_key(viewer.key.kid()) {
            anyhow::bail!("viewer {:?}: this key is already paired", viewer.name);
        }
        if self.viewers.len() >= MAX_VIEWERS {
            anyhow::bail!("{MAX_VIEWERS} viewers are paired already; revoke one first");
        }
        let viewer = Arc::new(viewer);
        self.by_kid
            .insert(viewer.key.kid().to_owned(), Arc::clone(&viewer));
        self.viewers.push(viewer);
        Ok(())
    }

    /// Removes the viewer named `name`; false when there is none.
    pub(crate) fn revoke(&mut self, name: &str) -> bool {
        let Some(viewer) = self.named(name).cloned() else {
            return false;
        };
        self.by_kid.remove(viewer.key.kid());
        self.viewers.retain(|v| v.name != name);
        true
    }

    /// The viewer whose key has id `kid`.
    pub(crate) fn get(&self, kid: &str) -> Option<&Arc<PairedViewer>> {
        self.by_kid.get(kid)
    }

    /// The viewer paired as `name`.
    pub(crate) fn named(&self, name: &str) -> Option<&Arc<PairedViewer>> {
        self.viewers.iter().find(|v| v.name == name)
    }

    /// Every paired viewer, in pairing order.
    pub(crate) fn viewers(&self) -> impl Iterator<Item = &PairedViewer> {
        self.viewers.iter().map(|v| &**v)
    }

    /// Whether nobody is paired.
    pub(crate) fn is_empty(&self) -> bool {
        self.viewers.is_empty()
    }

    /// The file's text.
    fn render(&self) -> String {
        let file = KeyFile {
            viewer: self
                .viewers
                .iter()
                .map(|v| FileEntry {
                    name: v.name.clone(),
                    key: v.key.key_string(),
                    paired: v.paired.clone(),
                })
                .collect(),
        };
        let body = toml::to_string(&file).expect("the key file always serializes");
        format!("{HEADER}\n{body}")
    }

    /// Replaces the file at `path` at once (write, then rename): mode 0600,
    /// owned like the file it replaces or, for a new file, like its folder.
    pub(crate) fn save(&self, path: &Path) -> anyhow::Result<()> {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
        let folder = folder.unwrap_or(Path::new("."));
        if !folder.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(folder)
                .with_context(|| {
                    format!(
                        "cannot create {} for the key file; run this as root or set \
                         `security.keys_file`",
                        folder.display()
                    )
                })?;
        }
        let owner = fs::metadata(path)
            .or_else(|_| fs::metadata(folder))
            .with_context(|| format!("cannot read {}", folder.display()))?;
        let staged = staging_path(path);
        let write = || -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&staged)?;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(self.render().as_bytes())?;
            file.sync_all()?;
            if owner.uid() != effective_uid() {
                std::os::unix::fs::chown(&staged, Some(owner.uid()), Some(owner.gid()))?;
            }
            fs::rename(&staged, path)?;
            File::open(folder)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&staged);
            anyhow::anyhow!(
                "cannot write the key file {}: {e}; run this as root or as the service user",
                path.display()
            )
        })
    }
}

/// The process's effective user id.
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Where the new file is written before it replaces the old one.
fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".new");
    path.with_file_name(name)
}

/// Refuses names a person could not tell apart or that would not print.
fn check_name(name: &str) -> anyhow::Result<()> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.trim() != name {
        anyhow::bail!(
            "a viewer name is 1 to {MAX_NAME_CHARS} characters without leading or trailing \
             spaces, e.g. \"alice-phone\""
        );
    }
    if name.chars().any(char::is_control) {
        anyhow::bail!("a viewer name cannot hold control characters");
    }
    Ok(())
}

/// The 1-based line of the `index`th `[[viewer]]` header in `text`.
fn line_of_entry(text: &str, index: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.trim() == "[[viewer]]")
        .nth(index)
        .map_or(1, |(n, _)| n + 1)
}

/// A new paired viewer named `name` with a fresh key, paired now.
pub(crate) fn new_viewer(name: &str) -> anyhow::Result<PairedViewer> {
    check_name(name)?;
    Ok(PairedViewer {
        name: name.to_owned(),
        key: ViewerKey::generate()?,
        paired: protocol::utc_timestamp(SystemTime::now()),
    })
}

/// What identifies one version of the key file on disk.
fn stamp(path: &Path) -> Option<(u64, u64, i64, i64)> {
    let meta = fs::metadata(path).ok()?;
    Some((meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec()))
}

/// Watches the key file and sends each new version's keyring to `changed`
/// (a version that does not read is logged and skipped: the keys in use
/// stay). The first version is the caller's, read at start.
pub(crate) fn watch(
    path: PathBuf,
    changed: async_channel::Sender<Keyring>,
) -> std::io::Result<Worker> {
    Worker::spawn("keys", move |stop: &AtomicBool| {
        let mut seen = stamp(&path);
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(WATCH_INTERVAL);
            let now = stamp(&path);
            if now == seen {
                continue;
            }
            match Keyring::load(&path) {
                Ok(keyring) => match changed.try_send(keyring) {
                    Ok(()) => seen = now,
                    Err(async_channel::TrySendError::Full(_)) => {}
                    Err(async_channel::TrySendError::Closed(_)) => return,
                },
                Err(e) => {
                    tracing::warn!("{e:#}; the paired viewers stay as they were");
                    seen = now;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(name: &str) -> PairedViewer {
        new_viewer(name).unwrap()
    }

    #[test]
    fn saves_and_loads_the_same_viewers_readable_by_the_owner_only() {
        let dir = std::env::temp_dir().join(format!("peercam-keys-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("state").join("viewers.toml");
        assert!(
            Keyring::load(&path).unwrap().is_empty(),
            "no file: nobody paired"
        );
        let mut keyring = Keyring::default();
        keyring.add(viewer("alice")).unwrap();
        keyring.add(viewer("Bob's phone")).unwrap();
        keyring.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let folder = fs::metadata(dir.join("state"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            folder & 0o777,
            0o700,
            "a folder it makes is the owner's only"
        );
        let loaded = Keyring::load(&path).unwrap();
        assert_eq!(loaded, keyring);
        let alice = loaded.named("alice").unwrap();
        assert_eq!(loaded.get(alice.key.kid()).unwrap().name, "alice");
        let mut loaded = loaded;
        assert!(loaded.revoke("alice"));
        assert!(!loaded.revoke("alice"));
        loaded.save(&path).unwrap();
        let names: Vec<_> = Keyring::load(&path)
            .unwrap()
            .viewers()
            .map(|v| v.name.clone())
            .collect();
        assert_eq!(names, ["Bob's phone"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_bad_names_duplicates_and_damaged_keys_with_the_line() {
        let mut keyring = Keyring::default();
        keyring.add(viewer("alice")).unwrap();
        assert!(keyring.add(viewer("alice")).is_err(), "taken name");
        for bad in ["", " alice", "a\u{7}b", &"x".repeat(65)] {
            assert!(new_viewer(bad).is_err(), "{bad:?}");
        }
        let good = viewer("carol").key.key_string();
        let swapped = if &good[15..16] == "0" { "1" } else { "0" };
        let damaged = format!("{}{swapped}{}", &good[..15], &good[16..]);
        let text = format!(
            "{HEADER}\n[[viewer]]\nname = \"carol\"\nkey = \"{good}\"\npaired = \"x\"\n\n\
             [[viewer]]\nname = \"dave\"\nkey = \"{damaged}\"\npaired = \"x\"\n"
        );
        let e = Keyring::parse(&text).unwrap_err();
        assert!(
            e.starts_with("9: viewer \"dave\": the key id does not match"),
            "{e}"
        );
        let e = Keyring::parse("[[viewer]]\nname = \"x\"\n").unwrap_err();
        assert!(e.starts_with("1: missing field `key`"), "{e}");
        let e = Keyring::parse("[[viewer]]\nname = 3\n").unwrap_err();
        assert!(e.starts_with("2: "), "{e}");
    }
}
