//! Embeds the web UI (`../ui/`) into the querier.
//!
//! Every file the browser loads (HTML, JavaScript modules, CSS, SVG) is listed in
//! `$OUT_DIR/ui_files.rs` as `(path, include_bytes!(...))`, so a plain `cargo build` carries the
//! whole UI and no Node.js is needed at build time. Development files of `ui/` (its
//! `node_modules/`, `package.json`, the type-check config, the README) are left out.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Extensions of the files the browser loads.
const SERVED: &[&str] = &["html", "js", "css", "svg", "ico", "png", "woff2"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let ui = manifest.join("..").join("ui");
    let mut files = Vec::new();
    println!("cargo:rerun-if-changed=build.rs");
    if ui.is_dir() {
        collect(&ui, &ui, &mut files);
    }
    files.sort();
    let mut out = String::from("/// The embedded UI files: path under `ui/` and contents.\n");
    out.push_str("pub(crate) static FILES: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        writeln!(
            out,
            "    ({rel:?}, include_bytes!({:?})),",
            abs.display().to_string()
        )
        .expect("write to a string");
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("ui_files.rs");
    std::fs::write(&dest, out).expect("write ui_files.rs");
}

/// Walks `dir`, recording served files as (path relative to `root` with `/`, absolute path),
/// and asks cargo to rerun when any directory or file changes.
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    // A directory's own entry catches files added or removed in it.
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "node_modules" {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
            continue;
        }
        let served = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| SERVED.contains(&e));
        if !served {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        let rel = path
            .strip_prefix(root)
            .expect("walked under root")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let abs = path.canonicalize().unwrap_or(path);
        files.push((rel, abs));
    }
}
