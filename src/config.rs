//! Configuration: a TOML file, then `SKEIN_<SECTION>__<KEY>` environment overrides, parsed
//! once into checked types.
//!
//! Every section rejects unknown keys, whether they come from the file or the environment, so
//! a typo is an error at start instead of a setting silently ignored. The reference with every
//! option and its default is `docs/configuration.md`; `docs/skein.example.toml` shows them all
//! and a test keeps it equal to [`Config::default`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use skein_compactor::CompactorConfig;
use skein_ingester::IngesterConfig;
use skein_querier::QuerierConfig;
use skein_storage::StorageConfig;
use toml::{Table, Value};

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "SKEIN_";

/// Separates the levels of a key in an environment variable name: `SKEIN_SERVER__HTTP_LISTEN`
/// sets `http_listen` in `[server]`. A double underscore because keys contain single ones.
pub const ENV_SEPARATOR: &str = "__";

/// The whole configuration of a Skein process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Process-wide settings: the HTTP servers and logging.
    pub server: ServerConfig,
    /// The ingester role.
    pub ingester: IngesterConfig,
    /// The querier role.
    pub querier: QuerierConfig,
    /// The compactor role.
    pub compactor: CompactorConfig,
    /// Where blocks are kept; shared by every role. Default: local disk under `./data`.
    pub storage: StorageConfig,
}

/// The `[server]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the API server: the Tempo-compatible HTTP API, `/ready`, and later the web
    /// UI. Default `0.0.0.0:3200`, Tempo's port.
    pub http_listen: SocketAddr,
    /// Address of the Jaeger-compatible query API. Default `0.0.0.0:16686`, Jaeger's port.
    pub jaeger_listen: SocketAddr,
    /// Log filter in `tracing` syntax: a level (`error`, `warn`, `info`, `debug`, `trace`) or
    /// directives such as `info,skein_querier=debug`. Default `info`.
    pub log_level: String,
    /// Log format: `text` for people, `json` (one object per line) for log collectors.
    /// Default `text`.
    pub log_format: LogFormat,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_listen: SocketAddr::from(([0, 0, 0, 0], 3200)),
            jaeger_listen: SocketAddr::from(([0, 0, 0, 0], 16686)),
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration as loaded, with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The checked configuration.
    pub config: Config,
    /// The file it was read from, if any.
    pub file: Option<PathBuf>,
    /// The names of the environment variables that overrode a key, in the order applied.
    pub env_overrides: Vec<String>,
}

/// One environment override, before it is applied.
#[derive(Debug)]
struct EnvOverride {
    var: String,
    /// Lowercased key path, e.g. `["server", "http_listen"]`.
    path: Vec<String>,
    value: Value,
}

impl Config {
    /// Loads the configuration: defaults, then `file` if given, then the `SKEIN_…__…` entries
    /// of `env`, then checks it.
    ///
    /// `env` is passed in rather than read here so that tests do not depend on (or change) the
    /// process environment; the binary passes [`process_env`].
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Loaded> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?,
            None => String::new(),
        };
        let origin = match file {
            Some(path) => format!("config file {}", path.display()),
            None => "default configuration".to_owned(),
        };
        let overrides = env_overrides(env)?;

        let config = if overrides.is_empty() {
            // Deserializing the text itself gives errors that point at the line.
            toml::from_str::<Config>(&text).with_context(|| format!("invalid {origin}"))?
        } else {
            let mut tree: Table =
                toml::from_str(&text).with_context(|| format!("invalid {origin}"))?;
            for o in &overrides {
                set_path(&mut tree, &o.path, o.value.clone())
                    .with_context(|| format!("cannot apply environment variable {}", o.var))?;
            }
            from_tree(tree, &origin, &overrides)?
        };
        config.check()?;
        Ok(Loaded {
            config,
            file: file.map(Path::to_path_buf),
            env_overrides: overrides.into_iter().map(|o| o.var).collect(),
        })
    }

    /// Checks what the types alone cannot.
    fn check(&self) -> anyhow::Result<()> {
        tracing_subscriber::EnvFilter::try_new(&self.server.log_level)
            .with_context(|| format!("invalid server.log_level {:?}", self.server.log_level))?;
        match &self.storage {
            // Opening a local store would create its directory; checking must change nothing.
            StorageConfig::Local { .. } => {}
            // Building the other stores sends no request but validates their settings (for
            // S3: the bucket is given, the endpoint is a URL).
            other => {
                other.open().context("invalid [storage] section")?;
            }
        }
        Ok(())
    }

    /// The configuration as TOML, with secrets replaced by `"<redacted>"`, for printing.
    pub fn to_redacted_toml(&self) -> anyhow::Result<String> {
        let mut tree = Table::try_from(self).context("cannot serialize the configuration")?;
        redact(&mut tree);
        toml::to_string_pretty(&tree).context("cannot serialize the configuration")
    }
}

/// The process environment, for [`Config::load`]. Variables that are not UTF-8 cannot be
/// configuration and are left out, except a `SKEIN_` one, which is refused rather than ignored.
pub fn process_env() -> anyhow::Result<Vec<(String, String)>> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => vars.push((name, value)),
            (Ok(name), Err(_)) if name.starts_with(ENV_PREFIX) => {
                bail!("environment variable {name} is not valid UTF-8")
            }
            _ => {}
        }
    }
    Ok(vars)
}

/// Picks the configuration overrides out of the environment.
///
/// Only `SKEIN_` variables with a `__` in their name are overrides; other `SKEIN_` variables
/// (such as the test suite's `SKEIN_TEST_S3_ENDPOINT`) are not configuration. A variable that
/// looks like an override with a single underscore (`SKEIN_SERVER_HTTP_LISTEN`) is refused, so
/// that a typo does not silently keep the default.
fn env_overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Vec<EnvOverride>> {
    let sections: Vec<String> = match Value::try_from(Config::default()) {
        Ok(Value::Table(t)) => t.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let mut overrides = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        if !rest.contains(ENV_SEPARATOR) {
            if let Some(section) = sections
                .iter()
                .find(|s| lower.starts_with(&format!("{s}_")))
            {
                let key = &lower[section.len() + 1..];
                bail!(
                    "environment variable {var} is not a configuration override: separate the \
                     section from the key with a double underscore, as in \
                     {ENV_PREFIX}{}{ENV_SEPARATOR}{}",
                    section.to_ascii_uppercase(),
                    key.to_ascii_uppercase()
                );
            }
            continue;
        }
        let path: Vec<String> = lower.split(ENV_SEPARATOR).map(str::to_owned).collect();
        if path.iter().any(String::is_empty) {
            bail!("environment variable {var} has an empty key between double underscores");
        }
        overrides.push(EnvOverride {
            value: parse_env_value(&raw),
            var,
            path,
        });
    }
    // The environment has no order; sorting makes the result (and any error) reproducible.
    overrides.sort_by(|a, b| a.var.cmp(&b.var));
    Ok(overrides)
}

/// An environment value is a TOML boolean, integer, float or quoted string when it parses as
/// one, and otherwise the raw text as a string, so that `true` and `8080` get their types and
/// `127.0.0.1:3200` needs no quotes. Quote a value (`'"123"'`) to force a string.
fn parse_env_value(raw: &str) -> Value {
    // A newline would let the value smuggle in more TOML than one scalar. Dates, arrays and
    // inline tables are not configuration values: they keep their text.
    if !raw.contains('\n')
        && let Ok(mut table) = format!("v = {raw}").parse::<Table>()
        && let Some(
            v @ (Value::Boolean(_) | Value::Integer(_) | Value::Float(_) | Value::String(_)),
        ) = table.remove("v")
    {
        return v;
    }
    Value::String(raw.to_owned())
}

/// Sets `path` in `tree`, creating the tables on the way.
fn set_path(tree: &mut Table, path: &[String], value: Value) -> anyhow::Result<()> {
    let (key, parents) = path.split_last().context("empty key")?;
    let mut table = tree;
    for (depth, parent) in parents.iter().enumerate() {
        let entry = table
            .entry(parent.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(t) => t,
            _ => bail!("{} is a value, not a section", path[..=depth].join(".")),
        };
    }
    table.insert(key.clone(), value);
    Ok(())
}

/// Deserializes the merged tree, naming the offending key and, when environment variables
/// set it, those variables.
fn from_tree(tree: Table, origin: &str, overrides: &[EnvOverride]) -> anyhow::Result<Config> {
    serde_path_to_error::deserialize::<_, Config>(Value::Table(tree)).map_err(|e| {
        let message = e.inner().message();
        let mut at = e.path().to_string();
        // Unknown keys are reported at the section holding them; the message names the key.
        if let Some(key) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            at = match at.as_str() {
                "." => key.to_owned(),
                _ if at == key || at.ends_with(&format!(".{key}")) => at,
                _ => format!("{at}.{key}"),
            };
        }
        let vars = |keep: &dyn Fn(&str) -> bool| -> Vec<&str> {
            overrides
                .iter()
                .filter(|o| keep(&o.path.join(".")))
                .map(|o| o.var.as_str())
                .collect()
        };
        // The variables that set this key (or a key inside it, or a value above it)...
        let setters = vars(&|key| {
            at == "."
                || key == at
                || key.starts_with(&format!("{at}."))
                || at.starts_with(&format!("{key}."))
        });
        // ...or, failing that, those that changed the same section (such as its backend).
        let section = at.split('.').next().unwrap_or_default();
        let neighbours = vars(&|key| key.split('.').next() == Some(section));
        let source = match (setters.as_slice(), neighbours.as_slice()) {
            ([one], _) => format!("set by {one}"),
            ([], []) => origin.to_owned(),
            ([], near) => format!("{origin} with {}", near.join(", ")),
            (many, _) => format!("{origin} with {}", many.join(", ")),
        };
        let place = if at == "." {
            String::new()
        } else {
            format!(" at {at}")
        };
        anyhow!("invalid configuration{place} ({source}): {message}")
    })
}

/// Replaces the values of keys that hold secrets.
fn redact(table: &mut Table) {
    for (key, value) in table.iter_mut() {
        match value {
            Value::Table(t) => redact(t),
            Value::String(s) if is_secret(key) && !s.is_empty() => {
                *s = "<redacted>".to_owned();
            }
            _ => {}
        }
    }
}

fn is_secret(key: &str) -> bool {
    ["secret", "password", "token"]
        .iter()
        .any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn load_str(toml: &str, vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("skein.toml");
        std::fs::write(&path, toml)?;
        Ok(Config::load(Some(&path), env(vars))?.config)
    }

    #[test]
    fn no_file_and_no_environment_gives_the_defaults() {
        let loaded = Config::load(None, env(&[])).expect("defaults are valid");
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.env_overrides.is_empty());
    }

    #[test]
    fn environment_overrides_the_file() {
        let config = load_str(
            "[server]\nhttp_listen = \"0.0.0.0:1\"\n",
            &[
                ("SKEIN_SERVER__HTTP_LISTEN", "127.0.0.1:3300"),
                ("SKEIN_SERVER__LOG_FORMAT", "json"),
            ],
        )
        .expect("valid");
        assert_eq!(
            config.server.http_listen,
            "127.0.0.1:3300".parse().expect("addr")
        );
        assert_eq!(config.server.log_format, LogFormat::Json);
    }

    #[test]
    fn environment_can_switch_the_storage_backend() {
        let config = Config::load(
            None,
            env(&[
                ("SKEIN_STORAGE__BACKEND", "s3"),
                ("SKEIN_STORAGE__BUCKET", "traces"),
                ("SKEIN_STORAGE__ENDPOINT", "http://127.0.0.1:8333"),
                ("SKEIN_STORAGE__VIRTUAL_HOSTED_STYLE", "false"),
                ("SKEIN_STORAGE__ALLOW_HTTP", "true"),
            ]),
        )
        .expect("valid")
        .config;
        let StorageConfig::S3(s3) = config.storage else {
            panic!("expected the s3 backend, got {:?}", config.storage);
        };
        assert_eq!(s3.bucket, "traces");
        assert_eq!(s3.endpoint, "http://127.0.0.1:8333");
        assert_eq!(s3.allow_http, Some(true));
    }

    #[test]
    fn an_unknown_key_from_the_environment_names_the_variable() {
        let err = Config::load(None, env(&[("SKEIN_SERVER__HTTP_LISTNE", "127.0.0.1:1")]))
            .expect_err("unknown key");
        let message = format!("{err:#}");
        assert!(message.contains("SKEIN_SERVER__HTTP_LISTNE"), "{message}");
        assert!(message.contains("http_listne"), "{message}");
    }

    #[test]
    fn an_unknown_section_from_the_environment_is_refused() {
        let err = Config::load(None, env(&[("SKEIN_DISTRIBUTOR__PORT", "1")]))
            .expect_err("unknown section");
        let message = format!("{err:#}");
        assert!(
            message.contains("SKEIN_DISTRIBUTOR__PORT") && message.contains("distributor"),
            "{message}"
        );
    }

    #[test]
    fn a_wrong_type_from_the_environment_names_key_and_variable() {
        let err = Config::load(
            None,
            env(&[("SKEIN_SERVER__JAEGER_LISTEN", "not-an-address")]),
        )
        .expect_err("bad address");
        let message = format!("{err:#}");
        assert!(message.contains("server.jaeger_listen"), "{message}");
        assert!(message.contains("SKEIN_SERVER__JAEGER_LISTEN"), "{message}");
    }

    #[test]
    fn a_single_underscore_override_is_refused_with_a_hint() {
        let err = Config::load(None, env(&[("SKEIN_SERVER_HTTP_LISTEN", "127.0.0.1:1")]))
            .expect_err("typo");
        let message = format!("{err:#}");
        assert!(message.contains("SKEIN_SERVER__HTTP_LISTEN"), "{message}");
    }

    #[test]
    fn other_variables_are_not_configuration() {
        let loaded = Config::load(
            None,
            env(&[
                ("SKEIN_TEST_S3_ENDPOINT", "http://127.0.0.1:1"),
                ("PATH", "/usr/bin"),
                ("SKEIN", "x"),
            ]),
        )
        .expect("ignored");
        assert_eq!(loaded.config, Config::default());
    }

    #[test]
    fn an_unknown_key_in_the_file_points_at_its_line() {
        let err = load_str("[server]\nlog_level = \"debug\"\nhttp_port = 3200\n", &[])
            .expect_err("unknown key");
        let message = format!("{err:#}");
        assert!(
            message.contains("http_port") && message.contains("line 3"),
            "{message}"
        );
    }

    #[test]
    fn an_invalid_log_filter_is_refused() {
        let err = Config::load(None, env(&[("SKEIN_SERVER__LOG_LEVEL", "info,=[")]))
            .expect_err("bad filter");
        assert!(format!("{err:#}").contains("server.log_level"), "{err:#}");
    }

    #[test]
    fn env_values_get_toml_types_when_they_have_one() {
        assert_eq!(parse_env_value("true"), Value::Boolean(true));
        assert_eq!(parse_env_value("8080"), Value::Integer(8080));
        assert_eq!(parse_env_value("1.5"), Value::Float(1.5));
        assert_eq!(parse_env_value("\"123\""), Value::String("123".into()));
        assert_eq!(
            parse_env_value("127.0.0.1:3200"),
            Value::String("127.0.0.1:3200".into())
        );
        assert_eq!(parse_env_value(""), Value::String(String::new()));
        assert_eq!(parse_env_value("[1, 2]"), Value::String("[1, 2]".into()));
        assert_eq!(
            parse_env_value("1\nx = 2"),
            Value::String("1\nx = 2".into())
        );
    }

    #[test]
    fn secrets_are_redacted_when_printed() {
        let config = Config::load(
            None,
            env(&[
                ("SKEIN_STORAGE__BACKEND", "s3"),
                ("SKEIN_STORAGE__BUCKET", "traces"),
                ("SKEIN_STORAGE__ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("SKEIN_STORAGE__SECRET_ACCESS_KEY", "very-secret-value"),
            ]),
        )
        .expect("valid")
        .config;
        let printed = config.to_redacted_toml().expect("serializable");
        assert!(!printed.contains("very-secret-value"), "{printed}");
        assert!(
            printed.contains("secret_access_key = \"<redacted>\""),
            "{printed}"
        );
        assert!(printed.contains("AKIDEXAMPLE"), "{printed}");
    }

    #[test]
    fn the_printed_configuration_loads_back_to_the_same() {
        let config = Config::load(None, env(&[("SKEIN_SERVER__LOG_FORMAT", "json")]))
            .expect("valid")
            .config;
        let printed = config.to_redacted_toml().expect("serializable");
        assert_eq!(
            load_str(&printed, &[]).expect("printed config is valid"),
            config
        );
    }
}
