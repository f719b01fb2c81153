//! Shared helpers of the end-to-end tests: a real `skein` process on free 127.0.0.1 ports,
//! with its own data directory, stopped when the test ends.

pub mod blocks;
pub mod json_api;
pub mod otlp;
pub mod tempo_messages;

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const SKEIN: &str = env!("CARGO_BIN_EXE_skein");

/// A blocking HTTP client for the tests, without an overall timeout (reqwest's blocking
/// default is 30 s): a call that needs a bound sets its own with `RequestBuilder::timeout`.
/// Build one per call, or per thread for a load, so pooled connections do not outlive a
/// killed server. Not for async code: a blocking client panics inside a tokio runtime.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .expect("build the http client")
}

/// A port that was free a moment ago.
pub fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address")
}

/// The addresses one `skein` process listens on.
#[derive(Debug, Clone)]
pub struct Ports {
    pub http: SocketAddr,
    pub jaeger: SocketAddr,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub internal: SocketAddr,
}

impl Ports {
    pub fn new() -> Self {
        // Hold every probe listener until all five are chosen, so no port is picked twice.
        let listeners: Vec<TcpListener> = (0..5)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
            .collect();
        let a: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.local_addr().expect("local address"))
            .collect();
        Ports {
            http: a[0],
            jaeger: a[1],
            otlp_grpc: a[2],
            otlp_http: a[3],
            internal: a[4],
        }
    }
}

/// Everything a test may want to set, written into a config file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra TOML appended to the `[ingester]` section (e.g. `trace_idle_period = "1s"`).
    pub ingester: String,
    /// A whole `[storage]` section; default: local disk under the test directory.
    pub storage: Option<String>,
    /// Extra TOML sections appended at the end (e.g. limit overrides).
    pub extra: String,
    /// Roles (`--target`); default all.
    pub target: Option<String>,
    /// How to tell that the process is ready; default: the ingester's internal `/ready`.
    pub ready: Ready,
}

/// How [`Skein::start`] and [`Skein::restart`] tell that the process is ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ready {
    /// The ingester's internal API answers `/ready` (every process that runs an ingester).
    #[default]
    Internal,
    /// The API server answers `/ready` (a querier without an ingester).
    Http,
    /// The process is still running half a second after it started (a compactor alone,
    /// which serves nothing).
    Running,
}

/// A running `skein`. Killed (SIGKILL) on drop so a failing test leaves nothing behind.
pub struct Skein {
    pub child: Child,
    pub dir: PathBuf,
    pub ports: Ports,
    pub config: PathBuf,
    pub target: Option<String>,
    pub ready: Ready,
    log_count: u32,
}

impl Skein {
    /// Writes the config for `dir` and starts the process; waits until it is ready.
    pub fn start(dir: &Path, opts: &Options) -> Skein {
        let ports = Ports::new();
        let storage = opts.storage.clone().unwrap_or_else(|| {
            format!(
                "[storage]\nbackend = \"local\"\npath = \"{}\"\n",
                dir.join("blocks").display()
            )
        });
        let config = dir.join("skein.toml");
        let text = format!(
            "[server]\nhttp_listen = \"{}\"\njaeger_listen = \"{}\"\n\n\
             [ingester]\notlp_grpc_listen = \"{}\"\notlp_http_listen = \"{}\"\ninternal_listen = \"{}\"\n\
             wal_dir = \"{}\"\n{}\n\n{}\n{}\n",
            ports.http,
            ports.jaeger,
            ports.otlp_grpc,
            ports.otlp_http,
            ports.internal,
            dir.join("wal").display(),
            opts.ingester,
            storage,
            opts.extra,
        );
        std::fs::write(&config, text).expect("write config");
        let mut s = Skein {
            child: spawn(dir, &config, opts.target.as_deref(), 0),
            dir: dir.to_path_buf(),
            ports,
            config,
            target: opts.target.clone(),
            ready: opts.ready,
            log_count: 0,
        };
        s.wait_ready();
        s
    }

    /// Starts the process again with the same config and directories (after a kill).
    pub fn restart(&mut self) {
        self.log_count += 1;
        self.child = spawn(
            &self.dir,
            &self.config,
            self.target.as_deref(),
            self.log_count,
        );
        self.wait_ready();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("skein-{}.log", self.log_count))
    }

    /// The current process's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits (at most 60 s) until the process is ready (see [`Ready`]; by default, until the
    /// ingester's internal API answers `/ready`).
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = match self.ready {
            Ready::Internal => format!("http://{}/ready", self.ports.internal),
            Ready::Http => format!("http://{}/ready", self.ports.http),
            Ready::Running => {
                std::thread::sleep(Duration::from_millis(500));
                if let Some(status) = self.child.try_wait().expect("poll child") {
                    panic!(
                        "skein exited ({status}) right after it started:\n{}",
                        self.log()
                    );
                }
                return;
            }
        };
        let http = client();
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                panic!(
                    "skein exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            if http.get(&url).send().is_ok_and(|r| r.status().is_success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("skein not ready within 60 s:\n{}", self.log());
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (at most `limit`) for the exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn otlp_http_url(&self) -> String {
        format!("http://{}/v1/traces", self.ports.otlp_http)
    }

    /// One trace from the ingester's recent data, as OTLP JSON; `None` on 404.
    pub fn recent_trace(&self, tenant: &str, trace_id: &str) -> Option<serde_json::Value> {
        let url = format!(
            "http://{}/internal/v1/traces/{trace_id}",
            self.ports.internal
        );
        let resp = client()
            .get(&url)
            .header("X-Scope-OrgID", tenant)
            .header("Accept", "application/json")
            .send()
            .expect("call the internal api");
        match resp.status().as_u16() {
            404 => None,
            200 => Some(resp.json().expect("json body")),
            other => panic!("internal api answered {other}"),
        }
    }

    /// The Prometheus metrics text.
    pub fn metrics(&self) -> String {
        client()
            .get(format!("http://{}/metrics", self.ports.internal))
            .send()
            .and_then(reqwest::blocking::Response::error_for_status)
            .expect("metrics")
            .text()
            .expect("metrics text")
    }
}

fn spawn(dir: &Path, config: &Path, target: Option<&str>, n: u32) -> Child {
    let log = File::create(dir.join(format!("skein-{n}.log"))).expect("create log");
    let mut cmd = Command::new(SKEIN);
    cmd.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SKEIN_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("--config").arg(config);
    if let Some(t) = target {
        cmd.arg("--target").arg(t);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start skein")
}

impl Drop for Skein {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `.venv` python the test command sets up, if any (`SKEIN_TEST_PYTHON`).
pub fn python() -> Option<String> {
    match std::env::var("SKEIN_TEST_PYTHON") {
        Ok(p) => Some(p),
        Err(_) => {
            assert!(
                std::env::var("SKEIN_TEST_REQUIRE_EXTERNAL").is_err(),
                "SKEIN_TEST_REQUIRE_EXTERNAL is set but SKEIN_TEST_PYTHON is not"
            );
            eprintln!(
                "skipping: SKEIN_TEST_PYTHON not set (run ./scripts/test.sh for the full suite)"
            );
            None
        }
    }
}

/// The S3 server of the test command, if any: (endpoint, bucket).
pub fn s3() -> Option<(String, String)> {
    match (
        std::env::var("SKEIN_TEST_S3_ENDPOINT"),
        std::env::var("SKEIN_TEST_S3_BUCKET"),
    ) {
        (Ok(e), Ok(b)) => Some((e, b)),
        _ => {
            assert!(
                std::env::var("SKEIN_TEST_REQUIRE_EXTERNAL").is_err(),
                "SKEIN_TEST_REQUIRE_EXTERNAL is set but SKEIN_TEST_S3_ENDPOINT is not"
            );
            eprintln!(
                "skipping: no S3 server configured (run ./scripts/test.sh for the full suite)"
            );
            None
        }
    }
}

/// Reads a fixture file from `tests/fixtures/`.
pub fn fixture(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The last lines of a log, for failure messages.
pub fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
