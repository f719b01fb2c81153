//! Records build facts that `skein version` and `GET /api/status/buildinfo` report.
//!
//! The source revision, branch, user and date are not looked up here (a build must not depend
//! on being inside a git checkout); a release build passes them in as `SKEIN_BUILD_REVISION`,
//! `SKEIN_BUILD_BRANCH`, `SKEIN_BUILD_USER` and `SKEIN_BUILD_DATE`, read with `option_env!`.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SKEIN_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-changed=build.rs");
    for var in [
        "SKEIN_BUILD_REVISION",
        "SKEIN_BUILD_BRANCH",
        "SKEIN_BUILD_USER",
        "SKEIN_BUILD_DATE",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
}
