//! The command line: `skein [--config FILE] [--target ROLE,...]`, `skein config check`,
//! `skein version`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Skein: a self-hosted trace storage and query backend.
///
/// Without a subcommand, runs the roles chosen with --target (all of them by default) until
/// SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "skein", version, about, long_about)]
pub struct Cli {
    /// TOML configuration file; without it every setting has its default. `SKEIN_<SECTION>__<KEY>`
    /// environment variables override the file.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Roles to run in this process: repeat the flag or give a comma-separated list.
    #[arg(
        long,
        value_name = "ROLE",
        value_enum,
        value_delimiter = ',',
        default_value = "all"
    )]
    pub target: Vec<Target>,

    /// What to do instead of running the roles.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the version and build information.
    Version,
}

/// `skein config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (the --config file plus environment overrides) and print the
    /// effective configuration, with secrets redacted.
    Check,
}

/// A value of `--target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Every role: ingester, querier and compactor.
    All,
    /// Receives OTLP, keeps the write-ahead log, writes blocks.
    Ingester,
    /// Serves the query APIs.
    Querier,
    /// Compacts blocks and applies retention.
    Compactor,
}

/// One role of a Skein process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// See [`Target::Ingester`].
    Ingester,
    /// See [`Target::Querier`].
    Querier,
    /// See [`Target::Compactor`].
    Compactor,
}

impl Role {
    /// The role's name as `--target` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingester => "ingester",
            Role::Querier => "querier",
            Role::Compactor => "compactor",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Cli {
    /// The roles `--target` selects, without duplicates, in start order.
    pub fn roles(&self) -> BTreeSet<Role> {
        self.target
            .iter()
            .flat_map(|target| match target {
                Target::All => &[Role::Ingester, Role::Querier, Role::Compactor][..],
                Target::Ingester => &[Role::Ingester][..],
                Target::Querier => &[Role::Querier][..],
                Target::Compactor => &[Role::Compactor][..],
            })
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(args: &[&str]) -> Vec<Role> {
        let cli = Cli::try_parse_from(args).expect("valid command line");
        cli.roles().into_iter().collect()
    }

    #[test]
    fn no_arguments_runs_every_role() {
        assert_eq!(
            roles(&["skein"]),
            [Role::Ingester, Role::Querier, Role::Compactor]
        );
    }

    #[test]
    fn targets_can_be_repeated_or_comma_separated() {
        assert_eq!(roles(&["skein", "--target", "querier"]), [Role::Querier]);
        assert_eq!(
            roles(&["skein", "--target", "compactor,ingester"]),
            [Role::Ingester, Role::Compactor]
        );
        assert_eq!(
            roles(&["skein", "--target=querier", "--target", "querier"]),
            [Role::Querier]
        );
        assert_eq!(
            roles(&["skein", "--target", "all,querier"]),
            [Role::Ingester, Role::Querier, Role::Compactor]
        );
    }

    #[test]
    fn an_unknown_target_is_refused() {
        let err = Cli::try_parse_from(["skein", "--target", "distributor"])
            .expect_err("not a role")
            .to_string();
        assert!(err.contains("distributor"), "{err}");
    }

    #[test]
    fn config_check_takes_the_config_flag_before_or_after() {
        for args in [
            &["skein", "config", "check", "--config", "a.toml"][..],
            &["skein", "--config", "a.toml", "config", "check"][..],
        ] {
            let cli = Cli::try_parse_from(args).expect("valid command line");
            assert!(matches!(
                cli.command,
                Some(Command::Config(ConfigCommand::Check))
            ));
            assert_eq!(cli.config, Some(PathBuf::from("a.toml")));
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
