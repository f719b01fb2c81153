//! `docker-compose.yml` stays runnable without Docker in the test run: every skein service's
//! command line parses, its `SKEIN_` variables are real configuration keys that load, and
//! every published port is bound to 127.0.0.1.

use std::collections::BTreeSet;
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

// ---------------------------------------------------------------------------------------------
// The cluster: mounted config files, the collector's routing, the querier's ingester list.

fn repo_path(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn profiles(service: &Mapping) -> Vec<String> {
    service
        .get("profiles")
        .and_then(Value::as_sequence)
        .map(|p| {
            p.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The host file mounted at `target` in the container (`./x:/target[:ro]`), relative to the
/// repository.
fn mounted(service: &Mapping, target: &str) -> Option<String> {
    service
        .get("volumes")?
        .as_sequence()?
        .iter()
        .filter_map(Value::as_str)
        .find_map(|v| {
            let mut parts = v.split(':');
            let (source, dest) = (parts.next()?, parts.next()?);
            (dest == target && source.starts_with("./"))
                .then(|| source.trim_start_matches("./").to_owned())
        })
}

/// The value after `flag` in a command line (`--flag value` or `--flag=value`).
fn flag(argv: &[String], flag: &str) -> Option<String> {
    argv.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            argv.get(i + 1).cloned()
        } else {
            a.strip_prefix(&format!("{flag}=")).map(str::to_owned)
        }
    })
}

/// The configuration a skein service runs with: its mounted `--config` file plus its
/// environment.
fn skein_config(name: &str, service: &Mapping) -> Config {
    let argv = argv(service);
    let file = flag(&argv, "--config").map(|target| {
        let source = mounted(service, &target).unwrap_or_else(|| {
            panic!("service {name}: --config {target} is not a file mounted from the repository")
        });
        repo_path(&source)
    });
    Config::load(file.as_deref(), environment(service))
        .unwrap_or_else(|e| panic!("service {name}: its configuration does not load: {e:#}"))
        .config
}

/// Skein services of the default (cluster) setup running `role`.
fn cluster_role<'a>(services: &'a Mapping, role: &str) -> Vec<(&'a str, &'a Mapping)> {
    skein_services(services)
        .into_iter()
        .filter(|(_, s)| profiles(s).is_empty())
        .filter(|(_, s)| flag(&argv(s), "--target").as_deref() == Some(role))
        .collect()
}

#[test]
fn the_default_is_a_cluster_and_the_all_in_one_is_a_profile() {
    let services = compose();
    assert!(
        cluster_role(&services, "ingester").len() >= 2,
        "two ingesters"
    );
    assert_eq!(cluster_role(&services, "querier").len(), 1, "one querier");
    assert_eq!(
        cluster_role(&services, "compactor").len(),
        1,
        "one compactor"
    );
    let all_in_one: Vec<&str> = skein_services(&services)
        .into_iter()
        .filter(|(_, s)| profiles(s).iter().any(|p| p == "all-in-one"))
        .filter(|(_, s)| matches!(flag(&argv(s), "--target").as_deref(), None | Some("all")))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        all_in_one.len(),
        1,
        "one all-in-one service in profile all-in-one"
    );
    // The querier serves the UI on 3200 of the host.
    let (_, querier) = cluster_role(&services, "querier")[0];
    let ports: Vec<&str> = querier["ports"]
        .as_sequence()
        .expect("the querier publishes ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(ports.contains(&"127.0.0.1:3200:3200"), "{ports:?}");
}

#[test]
fn every_image_is_pinned() {
    let services = compose();
    for (key, service) in &services {
        let service = service.as_mapping().expect("service mapping");
        let image = service
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("service {} names no image", name(key)));
        let tag = image
            .rsplit_once('@')
            .map(|(_, digest)| digest)
            .or_else(|| image.rsplit_once(':').map(|(_, t)| t))
            .filter(|t| !t.contains('/'))
            .unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest",
            "service {}: image {image} must name a version",
            name(key)
        );
    }
}

#[test]
fn every_mounted_skein_config_loads() {
    let services = compose();
    for (name, service) in skein_services(&services) {
        skein_config(name, service);
    }
}

#[test]
fn the_collector_routes_by_trace_id_to_exactly_the_ingesters() {
    let services = compose();
    let (collector_name, collector) = services
        .iter()
        .map(|(k, s)| (name(k), s.as_mapping().expect("service mapping")))
        .find(|(_, s)| {
            s.get("image")
                .and_then(Value::as_str)
                .is_some_and(|i| i.contains("opentelemetry-collector"))
        })
        .expect("an OpenTelemetry Collector service");
    let target = flag(&argv(collector), "--config")
        .unwrap_or_else(|| panic!("service {collector_name}: no --config"));
    let source = mounted(collector, &target).expect("the collector config is mounted");
    let text = std::fs::read_to_string(repo_path(&source)).expect("read the collector config");
    let config: Value = serde_yaml_ng::from_str(&text).expect("the collector config is YAML");

    let exporters = config["exporters"].as_mapping().expect("exporters");
    let (exporter, lb) = exporters
        .iter()
        .find(|(k, _)| matches!(k.as_str(), Some("loadbalancing" | "load_balancing")))
        .expect("a load-balancing exporter");
    assert_eq!(lb["routing_key"].as_str(), Some("traceID"));
    assert_eq!(
        lb["protocol"]["otlp"]["tls"]["insecure"].as_bool(),
        Some(true),
        "the ingesters speak plain gRPC"
    );
    let traces = config["service"]["pipelines"]["traces"]["exporters"]
        .as_sequence()
        .expect("a traces pipeline");
    assert!(traces.contains(exporter), "the traces pipeline uses it");
    let hostnames: BTreeSet<String> = lb["resolver"]["static"]["hostnames"]
        .as_sequence()
        .expect("a static resolver")
        .iter()
        .map(|h| h.as_str().expect("hostname").to_owned())
        .collect();

    let ingesters: BTreeSet<String> = cluster_role(&services, "ingester")
        .into_iter()
        .map(|(name, service)| {
            let listen = skein_config(name, service).ingester.otlp_grpc_listen;
            assert!(
                !listen.ip().is_loopback(),
                "service {name}: OTLP gRPC on {listen} is unreachable from the collector"
            );
            format!("{name}:{}", listen.port())
        })
        .collect();
    assert_eq!(hostnames, ingesters);
    let depends = collector["depends_on"]
        .as_sequence()
        .expect("depends_on list");
    for i in cluster_role(&services, "ingester") {
        assert!(depends.iter().any(|d| d.as_str() == Some(i.0)));
    }
}

#[test]
fn the_querier_reads_recent_data_from_exactly_the_ingesters_and_the_hand_off_holds() {
    let services = compose();
    let ingesters: Vec<(String, Config)> = cluster_role(&services, "ingester")
        .into_iter()
        .map(|(n, s)| (n.to_owned(), skein_config(n, s)))
        .collect();
    let internal: BTreeSet<String> = ingesters
        .iter()
        .map(|(name, c)| {
            let listen = c.ingester.internal_listen;
            assert!(
                !listen.ip().is_loopback(),
                "service {name}: the internal API on {listen} is unreachable from the querier"
            );
            format!("{name}:{}", listen.port())
        })
        .collect();
    for (name, service) in cluster_role(&services, "querier") {
        let c = skein_config(name, service);
        let listed: BTreeSet<String> = c.querier.ingesters.iter().cloned().collect();
        assert_eq!(listed, internal, "service {name}: querier.ingesters");
        for (ingester, ic) in &ingesters {
            let keep = ic.ingester.complete_block_timeout;
            let refresh = c.querier.block_list_refresh;
            assert!(
                keep >= refresh + refresh / 2,
                "{ingester}: complete_block_timeout {keep:?} must be at least 1.5 × the \
                 querier's block_list_refresh {refresh:?}"
            );
        }
    }
    for (name, service) in cluster_role(&services, "compactor") {
        let grace = skein_config(name, service).compactor.delete_grace;
        for (ingester, ic) in &ingesters {
            assert!(
                grace > ic.ingester.complete_block_timeout,
                "service {name}: delete_grace {grace:?} must exceed {ingester}'s \
                 complete_block_timeout: an ingester reads the blocks it wrote until then"
            );
        }
    }
}
