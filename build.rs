//! Embeds the web viewer: every file under `web/` that a browser loads (not
//! its tests or Node metadata) becomes an entry of the table `src/http.rs`
//! serves, so adding a viewer module needs no Rust change. Each entry also
//! carries its gzip form (when that is smaller) and an ETag, so a phone
//! downloads the viewer compressed once and revalidates it afterwards.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

/// Folders and files under `web/` that belong to development, not the page.
const NOT_SERVED: &[&str] = &["test", "node_modules", "package.json", "package-lock.json"];

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    println!("cargo:rerun-if-changed=web");
    let mut files = Vec::new();
    collect(&web, &web, &mut files);
    files.sort();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut table = String::from("&[\n");
    for (index, (url, path)) in files.iter().enumerate() {
        let body = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let compressed = gzip(&body);
        let gzip = if compressed.len() < body.len() {
            let file = out.join(format!("web-{index}.gz"));
            std::fs::write(&file, compressed).expect("OUT_DIR is writable");
            format!("Some(include_bytes!({:?}))", file.display())
        } else {
            "None".to_owned()
        };
        table.push_str(&format!(
            "    WebFile {{ path: {url:?}, content_type: {:?}, body: include_bytes!({:?}), \
             gzip: {gzip}, etag: \"\\\"{:016x}\\\"\" }},\n",
            content_type(path),
            path.display(),
            fnv1a(&body),
        ));
    }
    table.push_str("]\n");
    std::fs::write(out.join("web_files.rs"), table).expect("OUT_DIR is writable");
}

/// `body` gzip-compressed at the best level: this runs once per build.
fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(body).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// A 64-bit FNV-1a hash of `bytes`: the ETag only has to change when the file does.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Adds every served file below `dir` as (URL path, file path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("readable web/ entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if dir == root && NOT_SERVED.contains(&name) || name.starts_with('.') {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            collect(root, &path, files);
        } else if content_type(&path) != "application/octet-stream" {
            let relative = path.strip_prefix(root).expect("below web/");
            files.push((format!("/{}", relative.display()), path));
        }
    }
}

/// The Content-Type of a viewer file, from its extension.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "webmanifest") => "application/manifest+json",
        _ => "application/octet-stream",
    }
}
