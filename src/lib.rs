//! # skein
//!
//! The `skein` binary: command line, configuration, and the wiring that runs the roles
//! (`skein-ingester`, `skein-querier`, `skein-compactor`) over the object store that
//! `skein-storage` opens. It is composition only; what a role does lives in its crate.
//!
//! - [`cli`]: the command line ([`cli::Cli`]), public so tests can parse command lines;
//! - [`config`]: the TOML file and `SKEIN_…` environment overrides, checked once at start;
//! - [`roles`]: starting the selected roles and shutting them down on SIGINT or SIGTERM;
//! - [`process_metrics`]: the standard `process_*` metrics next to the roles' own.

pub mod cli;
pub mod config;
pub mod process_metrics;
pub mod roles;

use std::io::IsTerminal;

use anyhow::Context;
use skein_querier::BuildInfo;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::config::{Config, LogFormat, ServerConfig};

/// Runs what the command line asks for.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Version) => {
            print_version();
            Ok(())
        }
        Some(Command::Config(ConfigCommand::Check)) => {
            let loaded = Config::load(cli.config.as_deref(), config::process_env()?)?;
            let source = match &loaded.file {
                Some(file) => format!("{}", file.display()),
                None => "defaults (no --config file)".to_owned(),
            };
            println!("# configuration is valid: {source}");
            if !loaded.env_overrides.is_empty() {
                println!(
                    "# environment overrides: {}",
                    loaded.env_overrides.join(", ")
                );
            }
            println!("# effective configuration, secrets redacted:\n");
            println!("{}", loaded.config.to_redacted_toml()?.trim_end());
            Ok(())
        }
        None => {
            let roles = cli.roles();
            let loaded = Config::load(cli.config.as_deref(), config::process_env()?)?;
            init_logging(&loaded.config.server)?;
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                config_file = loaded.file.as_ref().map(|f| f.display().to_string()),
                env_overrides = ?loaded.env_overrides,
                "configuration loaded"
            );
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(roles::run(loaded.config, roles))
        }
    }
}

/// Facts about this build, as `GET /api/status/buildinfo` and `skein version` report them.
pub fn build_info() -> BuildInfo {
    BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        revision: build_fact(option_env!("SKEIN_BUILD_REVISION"), "unknown"),
        branch: build_fact(option_env!("SKEIN_BUILD_BRANCH"), "unknown"),
        build_user: build_fact(option_env!("SKEIN_BUILD_USER"), ""),
        build_date: build_fact(option_env!("SKEIN_BUILD_DATE"), "unknown"),
        rust_version: env!("SKEIN_RUSTC_VERSION").to_owned(),
    }
}

/// A fact passed in at build time; empty counts as not given, as a Docker build argument that
/// was declared but not set arrives empty.
fn build_fact(value: Option<&str>, missing: &str) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or(missing)
        .to_owned()
}

fn print_version() {
    let info = build_info();
    println!("skein {}", info.version);
    println!("revision: {}", info.revision);
    println!("branch: {}", info.branch);
    println!("build date: {}", info.build_date);
    println!("compiler: {}", info.rust_version);
}

/// Sends structured logs to standard error, leaving standard output to commands' results.
fn init_logging(server: &ServerConfig) -> anyhow::Result<()> {
    // Already validated by `Config::load`; the context only matters if that ever changes.
    let filter = tracing_subscriber::EnvFilter::try_new(&server.log_level)
        .with_context(|| format!("invalid server.log_level {:?}", server.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match server.log_format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
