//! The layering of DESIGN.md §1, checked on the real manifests: `skein-storage` depends on no
//! workspace crate; the role crates depend on `skein-storage` and never on each other; only
//! the `skein` binary depends on them all.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

const STORAGE: &str = "skein-storage";
const ROLES: [&str; 3] = ["skein-ingester", "skein-querier", "skein-compactor"];
const BINARY: &str = "skein";

/// Workspace crate → the workspace crates it depends on (any kind: normal, dev or build).
fn workspace_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints json");
    let packages = metadata["packages"].as_array().expect("packages array");
    let members: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("package name").to_owned();
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies array")
                .iter()
                .filter_map(|d| d["name"].as_str())
                .filter(|d| members.contains(*d))
                .map(str::to_owned)
                .collect();
            (name, deps)
        })
        .collect()
}

#[test]
fn crates_depend_only_downwards() {
    let graph = workspace_dependencies();
    let mut broken = Vec::new();
    let deps_of = |name: &str| -> &BTreeSet<String> {
        graph
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not a workspace member"))
    };

    for dep in deps_of(STORAGE) {
        broken.push(format!(
            "{STORAGE} depends on {dep}: storage is the bottom layer and depends on no workspace crate"
        ));
    }
    for role in ROLES {
        let deps = deps_of(role);
        if !deps.contains(STORAGE) {
            broken.push(format!(
                "{role} does not depend on {STORAGE}: every role builds on the storage layer"
            ));
        }
        for dep in deps.iter().filter(|d| *d != STORAGE) {
            broken.push(format!(
                "{role} depends on {dep}: a role may depend only on {STORAGE}; move what they share into {STORAGE}"
            ));
        }
    }
    let binary = deps_of(BINARY);
    for needed in ROLES.iter().chain([&STORAGE]) {
        if !binary.contains(*needed) {
            broken.push(format!(
                "{BINARY} does not depend on {needed}: the binary composes every crate"
            ));
        }
    }
    // Any other workspace crate (added later) sits beside the roles: it may use storage, and
    // nothing but the binary may use it or the roles.
    for (name, deps) in &graph {
        if name == BINARY || name == STORAGE || ROLES.contains(&name.as_str()) {
            continue;
        }
        for dep in deps.iter().filter(|d| *d != STORAGE) {
            broken.push(format!(
                "{name} depends on {dep}: only {BINARY} may depend on role crates or on other crates"
            ));
        }
    }

    assert!(
        broken.is_empty(),
        "the dependency rule of DESIGN.md §1 is broken:\n  - {}",
        broken.join("\n  - ")
    );
}
