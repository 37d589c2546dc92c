//! The house rule, checked on every build: dependencies point one way,
//! `daemon → signal → rtc → media`, and `config` (like the small leaf
//! utilities) depends on nothing in the crate. A module may use only
//! modules of a lower layer; this test fails when one reaches up.

use std::path::{Path, PathBuf};

/// Each top-level module and its layer; a module may use lower layers only.
/// Above signaling sit the edges (button, control socket, web server,
/// service manager, board profiles), then what wires them (`daemon`,
/// `check`), then the command line.
const LAYERS: &[(&str, u8)] = &[
    ("config", 0),
    ("backoff", 0),
    ("worker", 0),
    ("tls", 0),
    ("test_hooks", 0),
    ("media", 1),
    ("rtc", 2),
    ("signal", 3),
    ("board", 4),
    ("control", 4),
    ("doorbell", 4),
    ("http", 4),
    ("nat", 4),
    ("pair", 4),
    ("service", 4),
    ("check", 5),
    ("daemon", 5),
    ("cli", 6),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The top-level modules a file names as `crate::<module>`.
fn uses(text: &str) -> Vec<String> {
    text.match_indices("crate::")
        .map(|(at, _)| {
            text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn dependencies_point_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs");
        if module == "lib" || module == "main" {
            continue;
        }
        let own = layer(module)
            .unwrap_or_else(|| panic!("src/{module}: give the new module a layer in LAYERS"));
        let text = std::fs::read_to_string(file).unwrap();
        for used in uses(&text) {
            if used == module {
                continue;
            }
            let theirs = layer(&used)
                .unwrap_or_else(|| panic!("{}: unknown module `{used}`", relative.display()));
            if theirs >= own {
                violations.push(format!("{} uses crate::{used}", relative.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports that point up or sideways (daemon → signal → rtc → media; config and \
         the leaf utilities use nothing):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_rule_catches_an_upward_import() {
    assert_eq!(
        uses("use crate::signal::protocol::X; crate::media::Y"),
        ["signal", "media"]
    );
}
