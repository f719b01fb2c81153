//! `docker-compose.yml` stays runnable without Docker in the test run: every skein service's
//! command line parses, its `SKEIN_` variables are real configuration keys that load, and
//! every published port is bound to 127.0.0.1.

use std::path::Path;

use clap::Parser;
use serde_yaml_ng::{Mapping, Value};
use skein::cli::Cli;
use skein::config::Config;

fn compose() -> Mapping {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml");
    let text = std::fs::read_to_string(&path).expect("read docker-compose.yml");
    let mut value: Value = serde_yaml_ng::from_str(&text).expect("docker-compose.yml is YAML");
    // Services share their settings through a `<<: *skein` merge key.
    value.apply_merge().expect("merge keys resolve");
    value
        .get("services")
        .and_then(Value::as_mapping)
        .expect("a services mapping")
        .clone()
}

fn name(key: &Value) -> &str {
    key.as_str().expect("service names are strings")
}

/// Services that run the skein image: built from this repository or tagged `skein`.
fn skein_services(services: &Mapping) -> Vec<(&str, &Mapping)> {
    services
        .iter()
        .map(|(key, service)| (name(key), service.as_mapping().expect("service mapping")))
        .filter(|(_, service)| {
            service.contains_key("build")
                || service
                    .get("image")
                    .and_then(Value::as_str)
                    .is_some_and(|image| image.starts_with("skein"))
        })
        .collect()
}

/// The image's entrypoint is `skein`; a service's `command` is its arguments.
fn argv(service: &Mapping) -> Vec<String> {
    let mut argv = vec!["skein".to_owned()];
    match service.get("command") {
        None => {}
        Some(Value::String(line)) => argv.extend(line.split_whitespace().map(str::to_owned)),
        Some(Value::Sequence(items)) => argv.extend(items.iter().map(|item| {
            item.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("command items should be strings, got {item:?}"))
        })),
        Some(other) => panic!("unexpected command {other:?}"),
    }
    argv
}

fn environment(service: &Mapping) -> Vec<(String, String)> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("unexpected environment value {other:?}"),
    };
    match service.get("environment") {
        None => Vec::new(),
        Some(Value::Mapping(vars)) => vars
            .iter()
            .map(|(k, v)| (name(k).to_owned(), scalar(v)))
            .collect(),
        Some(Value::Sequence(vars)) => vars
            .iter()
            .map(|line| {
                let line = line.as_str().expect("KEY=value");
                let (k, v) = line.split_once('=').unwrap_or((line, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Some(other) => panic!("unexpected environment {other:?}"),
    }
}

#[test]
fn there_is_an_all_in_one_service_and_one_per_role() {
    let services = compose();
    let skein = skein_services(&services);
    let commands: Vec<Vec<String>> = skein.iter().map(|(_, s)| argv(s)).collect();
    assert!(
        commands.iter().any(|argv| argv == &["skein"]),
        "expected an all-in-one service running `skein` without arguments: {commands:?}"
    );
    for role in ["ingester", "querier", "compactor"] {
        assert!(
            commands
                .iter()
                .any(|argv| argv.windows(2).any(|w| w == ["--target", role])),
            "expected a service running `skein --target {role}`: {commands:?}"
        );
    }
}

#[test]
fn every_skein_command_line_parses() {
    let services = compose();
    for (name, service) in skein_services(&services) {
        let argv = argv(service);
        if let Err(e) = Cli::try_parse_from(&argv) {
            panic!("service {name}: `{}` is refused:\n{e}", argv.join(" "));
        }
    }
}

#[test]
fn every_skein_environment_variable_is_a_valid_configuration_key() {
    let services = compose();
    for (name, service) in skein_services(&services) {
        let env = environment(service);
        let loaded = Config::load(None, env.clone())
            .unwrap_or_else(|e| panic!("service {name}: its environment does not load: {e:#}"));
        // A SKEIN_ variable that is not an override would be silently ignored.
        for (var, _) in env.iter().filter(|(var, _)| var.starts_with("SKEIN_")) {
            assert!(
                loaded.env_overrides.contains(var),
                "service {name}: {var} is not a configuration override"
            );
        }
    }
}

#[test]
fn every_published_port_is_bound_to_localhost() {
    let services = compose();
    for (key, service) in &services {
        let Some(ports) = service.get("ports") else {
            continue;
        };
        for port in ports.as_sequence().expect("ports list") {
            let bound_to_localhost = match port {
                Value::String(short) => short.starts_with("127.0.0.1:"),
                Value::Mapping(long) => {
                    long.get("host_ip").and_then(Value::as_str) == Some("127.0.0.1")
                }
                _ => false,
            };
            assert!(
                bound_to_localhost,
                "service {}: port {port:?} must be published on 127.0.0.1 only",
                name(key)
            );
        }
    }
}
