//! The layering of `docs/architecture.md`, checked on the real manifests.
//!
//! - Shared crates form the bottom: `skein-format` depends on no workspace crate;
//!   `skein-storage` and `skein-traceql` depend on `skein-format` only, `skein-query` on
//!   those two.
//! - Each role (`skein-ingester`, `skein-querier`, `skein-compactor`) depends on shared crates
//!   only, never on another role.
//! - `skein-testkit` is test support: shared crates below it, and every other crate takes it
//!   as a dev-dependency only (the benchmarks excepted, which are not shipped).
//! - Only the binary (`skein`) and the benchmarks (`skein-bench`) depend on the roles.
//! - A crate's tests (dev-dependencies) may use any shared crate and the test kit, never a
//!   role they do not test.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

const FORMAT: &str = "skein-format";
const STORAGE: &str = "skein-storage";
const TRACEQL: &str = "skein-traceql";
const QUERY: &str = "skein-query";
const TESTKIT: &str = "skein-testkit";
const SHARED: [&str; 4] = [FORMAT, STORAGE, TRACEQL, QUERY];
const ROLES: [&str; 3] = ["skein-ingester", "skein-querier", "skein-compactor"];
const BINARY: &str = "skein";
const BENCH: &str = "skein-bench";

/// The workspace crates one crate depends on, by kind.
#[derive(Debug, Default)]
struct Deps {
    normal: BTreeSet<String>,
    dev: BTreeSet<String>,
}

/// Workspace crate → the workspace crates it depends on.
fn workspace_dependencies() -> BTreeMap<String, Deps> {
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
            let mut deps = Deps::default();
            for d in p["dependencies"].as_array().expect("dependencies array") {
                let Some(dep) = d["name"].as_str().filter(|d| members.contains(*d)) else {
                    continue;
                };
                match d["kind"].as_str() {
                    Some("dev") => deps.dev.insert(dep.to_owned()),
                    // Normal and build dependencies both end up in what ships.
                    _ => deps.normal.insert(dep.to_owned()),
                };
            }
            (name, deps)
        })
        .collect()
}

/// What `name` may depend on (normal dependencies), or `None` for "anything".
fn allowed_normal(name: &str) -> Option<BTreeSet<&'static str>> {
    let set = |items: &[&'static str]| Some(items.iter().copied().collect());
    match name {
        FORMAT => set(&[]),
        STORAGE | TRACEQL => set(&[FORMAT]),
        QUERY => set(&[FORMAT, TRACEQL]),
        TESTKIT => set(&SHARED),
        n if ROLES.contains(&n) => set(&SHARED),
        BINARY => set(&[
            FORMAT, STORAGE, TRACEQL, QUERY, ROLES[0], ROLES[1], ROLES[2],
        ]),
        BENCH => None,
        _ => set(&SHARED),
    }
}

#[test]
fn crates_depend_only_downwards() {
    let graph = workspace_dependencies();
    for needed in SHARED.iter().chain(&ROLES).chain(&[TESTKIT, BINARY, BENCH]) {
        assert!(
            graph.contains_key(*needed),
            "{needed} is not a workspace member; update this test with the layering"
        );
    }
    let mut broken = Vec::new();
    for (name, deps) in &graph {
        if let Some(allowed) = allowed_normal(name) {
            for dep in deps.normal.iter().filter(|d| !allowed.contains(d.as_str())) {
                let why = if dep == TESTKIT {
                    "the test kit is a dev-dependency only"
                } else if ROLES.contains(&dep.as_str()) {
                    "only the binary and the benchmarks depend on roles; move what they share into a shared crate"
                } else {
                    "dependencies point down only"
                };
                broken.push(format!("{name} depends on {dep}: {why}"));
            }
        }
        for dep in deps.dev.iter().filter(|d| ROLES.contains(&d.as_str())) {
            if name != BINARY && name != BENCH {
                broken.push(format!(
                    "{name}'s tests depend on the role {dep}: a crate's tests use shared crates and the test kit"
                ));
            }
        }
    }
    for role in ROLES {
        if !graph[role].normal.contains(FORMAT) {
            broken.push(format!("{role} does not depend on {FORMAT}"));
        }
        if !graph[BINARY].normal.contains(role) {
            broken.push(format!(
                "{BINARY} does not depend on {role}: the binary composes every role"
            ));
        }
    }
    assert!(
        broken.is_empty(),
        "the layering of docs/architecture.md is broken:\n  - {}",
        broken.join("\n  - ")
    );
}
