//! Embeds the web viewer: every file under `web/` that a browser loads (not
//! its tests or Node metadata) becomes an entry of the table `src/http.rs`
//! serves, so adding a viewer module needs no Rust change.

use std::path::{Path, PathBuf};

/// Folders and files under `web/` that belong to development, not the page.
const NOT_SERVED: &[&str] = &["test", "node_modules", "package.json", "package-lock.json"];

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    println!("cargo:rerun-if-changed=web");
    let mut files = Vec::new();
    collect(&web, &web, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for (url, path) in &files {
        table.push_str(&format!(
            "    ({url:?}, {:?}, include_bytes!({:?})),\n",
            content_type(path),
            path.display()
        ));
    }
    table.push_str("]\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("web_files.rs"), table).expect("OUT_DIR is writable");
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
