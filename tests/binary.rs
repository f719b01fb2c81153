//! End-to-end tests of the `skein` binary as an operator runs it: a real process on
//! 127.0.0.1 ports, talked to over HTTP, stopped with SIGTERM.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::free_port;

const SKEIN: &str = env!("CARGO_BIN_EXE_skein");

/// A `skein` command that does not inherit `SKEIN_…` overrides from the developer's shell.
fn skein_command(dir: &Path) -> Command {
    let mut command = Command::new(SKEIN);
    command.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SKEIN_") {
            command.env_remove(name);
        }
    }
    command
}

/// A running `skein`, killed on drop so a failing test leaves no process behind.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, args: &[&str]) -> Server {
        let log = dir.join("skein.log");
        let stderr = File::create(&log).expect("create log file");
        let child = skein_command(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start skein");
        Server { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit, at most `limit`.
    fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 GET; returns the status code and the body, or `None` if nothing answers.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

fn wait_ready(server: &mut Server, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some((200, body)) = http_get(addr, "/ready") {
            assert_eq!(body, "ready");
            return;
        }
        if let Some(status) = server.wait(Duration::from_millis(100)) {
            panic!(
                "skein exited with {status} before it was ready:\n{}",
                server.log()
            );
        }
    }
    panic!(
        "skein was not ready on {addr} within 30 s:\n{}",
        server.log()
    );
}

fn write_config(dir: &Path, http: SocketAddr, jaeger: SocketAddr) -> PathBuf {
    let config = dir.join("skein.toml");
    let text = format!(
        "[server]\nhttp_listen = \"{http}\"\njaeger_listen = \"{jaeger}\"\n\n\
         [ingester]\notlp_grpc_listen = \"{grpc}\"\notlp_http_listen = \"{otlp_http}\"\n\
         internal_listen = \"{internal}\"\n\
         wal_dir = \"{wal}\"\n\n[storage]\nbackend = \"local\"\npath = \"{data}\"\n",
        // Explicit ports, not port 0: a port the OS picks for one listener could be the one
        // this test picked (and released) for the API server.
        grpc = free_port(),
        otlp_http = free_port(),
        internal = free_port(),
        wal = dir.join("data/wal").display(),
        data = dir.join("data/blocks").display(),
    );
    std::fs::write(&config, text).expect("write config");
    config
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    skein_command(dir)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run skein")
}

#[test]
fn all_in_one_serves_the_api_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (http, jaeger) = (free_port(), free_port());
    let config = write_config(dir.path(), http, jaeger);
    let mut server = Server::start(dir.path(), &["--config", config.to_str().expect("utf-8")]);
    wait_ready(&mut server, http);

    assert_eq!(http_get(http, "/api/echo"), Some((200, "echo".to_owned())));

    let (status, body) = http_get(http, "/api/status/buildinfo").expect("buildinfo answers");
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&body).expect("json buildinfo");
    // The Tempo API version clients compare, with Skein's own as build metadata.
    let version = info["version"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("2.")
            && version.ends_with(concat!("+skein.", env!("CARGO_PKG_VERSION"))),
        "{body}"
    );
    for key in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(info[key].is_string(), "buildinfo lacks {key}: {body}");
    }

    let (status, body) = http_get(http, "/api/no-such-thing").expect("404 answers");
    assert_eq!(status, 404);
    let error: serde_json::Value = serde_json::from_str(&body).expect("json error");
    assert!(error["error"].is_string(), "{body}");

    // The Jaeger server answers its API (no data yet) and a JSON 404 elsewhere.
    let (status, body) = http_get(jaeger, "/api/services").expect("jaeger server answers");
    assert_eq!(status, 200, "{body}");
    let services: serde_json::Value = serde_json::from_str(&body).expect("json services");
    assert_eq!(services["data"], serde_json::json!([]), "{body}");
    let (status, body) = http_get(jaeger, "/api/no-such-thing").expect("jaeger 404 answers");
    assert_eq!(status, 404, "{body}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&body).is_ok(),
        "{body}"
    );

    server.signal("TERM");
    let status = server.wait(Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "skein did not exit within 20 s of SIGTERM:\n{}",
            server.log()
        )
    });
    assert!(status.success(), "exit status {status}:\n{}", server.log());
    let log = server.log();
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("skein stopped"), "{log}");
    assert!(
        dir.path().join("data").is_dir(),
        "local storage should be created under the configured path"
    );
}

#[test]
fn a_taken_port_stops_the_start_with_an_error_naming_the_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let http = taken.local_addr().expect("address");
    let config = write_config(dir.path(), http, free_port());
    let mut server = Server::start(
        dir.path(),
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--target",
            "querier",
        ],
    );
    let status = server
        .wait(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("skein kept running on a taken port:\n{}", server.log()));
    assert!(!status.success());
    let log = server.log();
    assert!(
        log.contains(&format!("cannot listen on {http}")),
        "the error should name {http}:\n{log}"
    );
}

#[test]
fn config_check_rejects_an_unknown_key_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("skein.toml");
    std::fs::write(
        &config,
        "[server]\nhttp_listen = \"127.0.0.1:3200\"\nlisten_port = 3200\n",
    )
    .expect("write config");
    let out = run(
        dir.path(),
        &[
            "config",
            "check",
            "--config",
            config.to_str().expect("utf-8"),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an unknown key must fail the check");
    assert!(
        stderr.contains("listen_port") && stderr.contains("line 3"),
        "the error should name the key and its line:\n{stderr}"
    );
}

#[test]
fn config_check_prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(
        dir.path(),
        &["config", "check"],
        &[
            ("SKEIN_STORAGE__BACKEND", "s3"),
            ("SKEIN_STORAGE__BUCKET", "traces"),
            ("SKEIN_STORAGE__ENDPOINT", "http://127.0.0.1:8333"),
            ("SKEIN_STORAGE__SECRET_ACCESS_KEY", "do-not-print-me"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("bucket = \"traces\""), "{stdout}");
    assert!(
        stdout.contains("secret_access_key = \"<redacted>\""),
        "{stdout}"
    );
    assert!(!stdout.contains("do-not-print-me"), "{stdout}");
    // The output is itself a valid configuration.
    let printed: toml::Table = toml::from_str(&stdout).expect("toml output");
    assert!(printed.contains_key("storage"));
    assert!(
        !dir.path().join("data").exists(),
        "checking must not create anything"
    );
}

#[test]
fn version_prints_the_package_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(dir.path(), &["version"], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("skein {}", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
}
