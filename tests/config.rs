//! The configuration documents stay true: `docs/skein.example.toml` is exactly the defaults,
//! its commented S3 variant and every TOML example in `docs/configuration.md` load, and the
//! errors a user meets name what is wrong.

use std::path::{Path, PathBuf};

use skein::config::{Config, Loaded, LogFormat};
use skein_storage::StorageConfig;

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_file(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// Loads `text` as a config file with the given environment.
fn load(text: &str, env: &[(&str, &str)]) -> anyhow::Result<Loaded> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("skein.toml");
    std::fs::write(&path, text)?;
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    Config::load(Some(&path), env)
}

#[test]
fn the_example_config_is_exactly_the_defaults() {
    let loaded = Config::load(Some(&repo_file("docs/skein.example.toml")), Vec::new())
        .unwrap_or_else(|e| panic!("docs/skein.example.toml does not load: {e:#}"));
    assert_eq!(loaded.config, Config::default());

    // Equal values could still hide an option the example leaves out; compare the keys too.
    let example: toml::Table = toml::from_str(&read("docs/skein.example.toml")).expect("toml");
    let defaults = toml::Table::try_from(Config::default()).expect("serializable");
    assert_eq!(
        example, defaults,
        "docs/skein.example.toml must show every option with its default"
    );
}

#[test]
fn the_example_s3_section_loads_when_uncommented() {
    let example = read("docs/skein.example.toml");
    let (head, storage) = example
        .split_once("[storage]")
        .expect("the example has a [storage] section");
    let s3_lines: Vec<&str> = storage
        .lines()
        .filter_map(|line| line.strip_prefix("#   "))
        .collect();
    assert!(
        s3_lines.iter().any(|l| l.starts_with("backend = \"s3\"")),
        "the example should show an S3 variant as `#   key = value` lines"
    );
    let text = format!("{head}[storage]\n{}\n", s3_lines.join("\n"));
    let loaded = load(&text, &[]).unwrap_or_else(|e| panic!("{e:#}\n{text}"));
    let StorageConfig::S3(s3) = loaded.config.storage else {
        panic!("expected the s3 backend");
    };
    assert_eq!(s3.bucket, "traces");
}

#[test]
fn every_toml_example_in_the_configuration_reference_loads() {
    let doc = read("docs/configuration.md");
    let mut blocks = 0;
    let mut rest = doc.as_str();
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + "```toml\n".len()..];
        let end = body.find("```").expect("closed code block");
        let block = &body[..end];
        if let Err(e) = load(block, &[]) {
            panic!("this example in docs/configuration.md does not load: {e:#}\n{block}");
        }
        blocks += 1;
        rest = &body[end..];
    }
    assert!(
        blocks >= 2,
        "docs/configuration.md should show TOML examples"
    );
}

#[test]
fn environment_overrides_apply_on_top_of_the_example() {
    // An override cannot remove a key: switching the example's local storage to S3 from the
    // environment leaves `path`, which S3 does not have, and the error says so.
    let err = load(
        &read("docs/skein.example.toml"),
        &[
            ("SKEIN_STORAGE__BACKEND", "s3"),
            ("SKEIN_STORAGE__BUCKET", "traces"),
        ],
    )
    .expect_err("path does not belong to the s3 backend");
    let message = format!("{err:#}");
    assert!(
        message.contains("storage.path")
            && message.contains("SKEIN_STORAGE__BACKEND")
            && message.contains("skein.toml"),
        "the error should name the key, the file and the variables involved: {message}"
    );

    let loaded = load(
        "[server]\nlog_level = \"debug\"\n",
        &[
            ("SKEIN_SERVER__HTTP_LISTEN", "127.0.0.1:3300"),
            ("SKEIN_SERVER__LOG_FORMAT", "json"),
            ("SKEIN_STORAGE__BACKEND", "memory"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        loaded.config.server.http_listen,
        "127.0.0.1:3300".parse().expect("address")
    );
    assert_eq!(loaded.config.server.log_format, LogFormat::Json);
    assert_eq!(loaded.config.server.log_level, "debug");
    assert_eq!(loaded.config.storage, StorageConfig::Memory {});
    assert_eq!(
        loaded.env_overrides,
        [
            "SKEIN_SERVER__HTTP_LISTEN",
            "SKEIN_SERVER__LOG_FORMAT",
            "SKEIN_STORAGE__BACKEND"
        ]
    );
}

#[test]
fn unknown_keys_are_rejected_with_a_message_naming_them() {
    let err = load("[ingester]\nwal_directory = \"/wal\"\n", &[]).expect_err("unknown key");
    let message = format!("{err:#}");
    assert!(
        message.contains("wal_directory") && message.contains("line 2"),
        "{message}"
    );

    let err = load("", &[("SKEIN_QUERIER__CACHE_SIZE", "10")]).expect_err("unknown key");
    let message = format!("{err:#}");
    assert!(
        message.contains("querier.cache_size") && message.contains("SKEIN_QUERIER__CACHE_SIZE"),
        "{message}"
    );

    let err =
        load("[storage]\nbackend = \"local\"\nbucket = \"x\"\n", &[]).expect_err("s3 key on local");
    let message = format!("{err:#}");
    assert!(message.contains("bucket"), "{message}");
}

#[test]
fn the_querier_ingester_list_comes_from_the_file_or_a_comma_separated_variable() {
    let from_file = load(
        "[querier]\ningesters = [\"ingester-1:3201\", \"10.0.0.2:3201\"]\n",
        &[],
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        from_file.config.querier.ingesters,
        ["ingester-1:3201", "10.0.0.2:3201"]
    );
    let from_env = load(
        "",
        &[(
            "SKEIN_QUERIER__INGESTERS",
            "ingester-1:3201, ingester-2:3201",
        )],
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        from_env.config.querier.ingesters,
        ["ingester-1:3201", "ingester-2:3201"]
    );
    let err = load("[querier]\ningesters = 3201\n", &[]).unwrap_err();
    assert!(format!("{err:#}").contains("ingesters"), "{err:#}");
}
