//! Cluster mode end to end: two ingesters, two queriers and two compactors as separate `skein
//! --target <role>` processes on loopback ports, sharing the test command's S3 server
//! (SeaweedFS). The spans of every trace are spread over both ingesters; through both
//! queriers every acknowledged trace must be found whole (every span once) by ID and by search
//! — while the data is live, while it is flushed, once only blocks hold it, after compaction,
//! and after one ingester and one compactor are killed with SIGKILL and restarted. An ingester
//! that is down or does not answer gives a partial response, quickly. At the end both
//! ingesters stop on SIGTERM, flushing everything, and the blocks alone still hold every
//! acknowledged span.
//!
//! Isolation: the bucket is shared with other tests and runs, so everything here lives under a
//! tenant named after this run.
//!
//! Compaction: the compactors are given a short cycle when their configuration accepts one
//! (`compactor.cycle_interval`); then the test waits for a compaction to retire blocks and
//! checks again. Until the compactor role implements that, they run idle and the compaction
//! checks are skipped with a message.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::blocks::{read_tenant, stop_cleanly};
use common::otlp::{hex, now_nanos, post_protobuf, request, string_attr};
use common::{Options, Ready, SKEIN, Skein};
use opentelemetry_proto::tonic::trace::v1::{Span, TracesData};
use prost::Message;
use skein_storage::S3Config;
use skein_storage::StorageConfig;

const SERVICE: &str = "cluster-test";
const SPANS_PER_TRACE: u8 = 6;
const TRACES_PER_PHASE: u16 = 24;
/// How long an ingester keeps serving a written block, and the queriers' block-list refresh:
/// the hand-off rule (keep > refresh + margin) holds.
const COMPLETE_BLOCK_TIMEOUT: &str = "6s";
const BLOCK_LIST_REFRESH: &str = "2s";
/// The queriers' timeout for one ingester request.
const INGESTER_TIMEOUT: Duration = Duration::from_secs(2);

/// Spans expected per trace (hex trace ID → hex span IDs).
type Expected = BTreeMap<String, BTreeSet<String>>;

struct Cluster {
    tenant: String,
    storage: StorageConfig,
    ingesters: Vec<Skein>,
    queriers: Vec<Skein>,
    compactors: Vec<Skein>,
    compacting: bool,
    expected: Expected,
    /// Bulk traces of another service, sent to give compaction jobs some length; checked in
    /// the blocks only.
    filler: Expected,
    /// Every block seen retired (tombstoned) so far.
    retired: std::cell::RefCell<BTreeSet<String>>,
    search_start_secs: u64,
}

fn storage_section(endpoint: &str, bucket: &str) -> String {
    format!("[storage]\nbackend = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\n")
}

/// Whether `skein config check` accepts `section`: tells if the compactor has a setting yet.
fn accepted(dir: &Path, section: &str) -> bool {
    let path = dir.join("probe.toml");
    std::fs::write(&path, section).expect("write probe config");
    Command::new(SKEIN)
        .arg("--config")
        .arg(&path)
        .args(["config", "check"])
        .output()
        .expect("run skein config check")
        .status
        .success()
}

impl Cluster {
    fn start(root: &Path, endpoint: &str, bucket: &str) -> Cluster {
        let nanos = now_nanos();
        let tenant = format!("cluster-{nanos:x}");
        let storage = storage_section(endpoint, bucket);
        let ingester_opts = Options {
            ingester: format!(
                "trace_idle_period = \"1s\"\nmax_trace_age = \"3s\"\nmax_block_duration = \"2s\"\n\
                 cut_interval = \"200ms\"\ncomplete_block_timeout = \"{COMPLETE_BLOCK_TIMEOUT}\"\n\
                 flush_max_backoff = \"1s\"\n"
            ),
            storage: Some(storage.clone()),
            target: Some("ingester".into()),
            ..Options::default()
        };
        let ingesters: Vec<Skein> = (0..2)
            .map(|i| {
                let dir = root.join(format!("ingester-{i}"));
                std::fs::create_dir_all(&dir).expect("create dir");
                Skein::start(&dir, &ingester_opts)
            })
            .collect();
        let list: Vec<String> = ingesters
            .iter()
            .map(|i| format!("\"{}\"", i.ports.internal))
            .collect();
        let querier_opts = Options {
            storage: Some(storage.clone()),
            target: Some("querier".into()),
            ready: Ready::Http,
            extra: format!(
                "[querier]\nblock_list_refresh = \"{BLOCK_LIST_REFRESH}\"\ningesters = [{}]\n\
                 ingester_connect_timeout = \"500ms\"\ningester_timeout = \"{}s\"\n",
                list.join(", "),
                INGESTER_TIMEOUT.as_secs()
            ),
            ..Options::default()
        };
        let queriers: Vec<Skein> = (0..2)
            .map(|i| {
                let dir = root.join(format!("querier-{i}"));
                std::fs::create_dir_all(&dir).expect("create dir");
                Skein::start(&dir, &querier_opts)
            })
            .collect();
        let fast =
            "[compactor]\ncycle_interval = \"1s\"\nlease_ttl = \"5s\"\ndelete_grace = \"15s\"\n";
        // The compaction checks below must run: a refused compactor config fails the test.
        let compacting = accepted(root, fast);
        assert!(
            compacting,
            "the compactor refused its test settings: {fast}"
        );
        let compactor_opts = Options {
            storage: Some(storage.clone()),
            target: Some("compactor".into()),
            ready: Ready::Running,
            extra: if compacting {
                fast.to_owned()
            } else {
                String::new()
            },
            ..Options::default()
        };
        let compactors: Vec<Skein> = (0..2)
            .map(|i| {
                let dir = root.join(format!("compactor-{i}"));
                std::fs::create_dir_all(&dir).expect("create dir");
                Skein::start(&dir, &compactor_opts)
            })
            .collect();
        Cluster {
            tenant,
            storage: StorageConfig::S3(S3Config {
                bucket: bucket.to_owned(),
                endpoint: endpoint.to_owned(),
                ..S3Config::default()
            }),
            ingesters,
            queriers,
            compactors,
            compacting,
            expected: Expected::new(),
            filler: Expected::new(),
            retired: std::cell::RefCell::default(),
            search_start_secs: nanos / 1_000_000_000 - 3600,
        }
    }

    /// Sends `traces` traces of 10 spans of another service, half of each trace's spans to
    /// each ingester, 50 traces per request.
    fn send_filler(&mut self, phase: u8, traces: u16) {
        let end = now_nanos();
        for chunk in (0..traces).collect::<Vec<u16>>().chunks(50) {
            let mut per_ingester: [Vec<Span>; 2] = [Vec::new(), Vec::new()];
            for &t in chunk {
                let mut trace_id = vec![0xf1, 0x11, phase, 0x7e];
                trace_id.extend_from_slice(&end.to_be_bytes());
                trace_id.extend_from_slice(&[0, 0]);
                trace_id.extend_from_slice(&t.to_be_bytes());
                for i in 0..10u8 {
                    let span_id = vec![0xf0 | phase, (t >> 8) as u8, t as u8, 0, 0, 0, 0, i + 1];
                    let start = end - 300_000_000 + u64::from(i) * 1_000_000;
                    self.filler
                        .entry(hex(&trace_id))
                        .or_default()
                        .insert(hex(&span_id));
                    per_ingester[usize::from(i % 2)].push(Span {
                        trace_id: trace_id.clone(),
                        span_id,
                        name: format!("bulk-{i}"),
                        kind: 1,
                        start_time_unix_nano: start,
                        end_time_unix_nano: start + 50_000_000,
                        attributes: vec![string_attr("bulk.index", &t.to_string())],
                        ..Default::default()
                    });
                }
            }
            for (ingester, spans) in self.ingesters.iter().zip(per_ingester) {
                let body = request("cluster-bulk", spans).encode_to_vec();
                send_acknowledged(ingester, &self.tenant, &body);
            }
        }
    }

    /// Unfinished compaction jobs of this tenant (journals not marked complete).
    fn unfinished_jobs(&self) -> usize {
        let tenant = skein_format::TenantId::new(&self.tenant).expect("tenant");
        let store = self.storage.open().expect("open the storage");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(skein_compactor::journal::read_journals(&store, &tenant))
            .expect("read the compaction journals")
            .iter()
            .filter(|j| !j.complete)
            .count()
    }

    /// Waits until a compaction job of this tenant is under way (its journal exists), at most
    /// `limit`; false when none was seen.
    fn wait_compaction_job(&self, limit: Duration) -> bool {
        let tenant = skein_format::TenantId::new(&self.tenant).expect("tenant");
        let store = self.storage.open().expect("open the storage");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let journals = rt
                .block_on(skein_compactor::journal::read_journals(&store, &tenant))
                .expect("read the compaction journals");
            if journals.iter().any(|j| !j.complete) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Sends `TRACES_PER_PHASE` traces of `SPANS_PER_TRACE` spans, span `i` of each to
    /// ingester `i % 2`, and records what was acknowledged.
    fn send_phase(&mut self, phase: u8) {
        for t in 0..TRACES_PER_PHASE {
            let mut trace_id = vec![0xc1, 0x05, phase, 0x7e];
            trace_id.extend_from_slice(&now_nanos().to_be_bytes());
            trace_id.extend_from_slice(&[0, 0]);
            trace_id.extend_from_slice(&t.to_be_bytes());
            let end = now_nanos();
            let mut per_ingester: [Vec<Span>; 2] = [Vec::new(), Vec::new()];
            for i in 0..SPANS_PER_TRACE {
                let span_id = vec![phase, (t >> 8) as u8, t as u8, 0, 0, 0, 0, i + 1];
                let start = end - 500_000_000 + u64::from(i) * 1_000_000;
                per_ingester[usize::from(i % 2)].push(Span {
                    trace_id: trace_id.clone(),
                    span_id,
                    parent_span_id: if i == 0 {
                        Vec::new()
                    } else {
                        vec![phase, (t >> 8) as u8, t as u8, 0, 0, 0, 0, 1]
                    },
                    name: format!("op-{i}"),
                    kind: 2,
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + 100_000_000,
                    attributes: vec![string_attr("cluster.phase", &phase.to_string())],
                    ..Default::default()
                });
            }
            for (ingester, spans) in self.ingesters.iter().zip(per_ingester) {
                let ids: Vec<String> = spans.iter().map(|s| hex(&s.span_id)).collect();
                let body = request(SERVICE, spans).encode_to_vec();
                send_acknowledged(ingester, &self.tenant, &body);
                self.expected.entry(hex(&trace_id)).or_default().extend(ids);
            }
        }
    }

    /// Checks every expected trace through every querier, by ID and by search. With
    /// `partial_ok`, responses may be marked partial (an ingester is stopped on purpose).
    fn check(&self, what: &str, partial_ok: bool) {
        for (q, querier) in self.queriers.iter().enumerate() {
            for (id, spans) in &self.expected {
                let (got, partial) = trace_by_id(querier, &self.tenant, id);
                assert!(
                    partial_ok || !partial,
                    "{what}: querier {q} marked trace {id} partial; log tail:\n{}",
                    common::tail(&querier.log(), 10)
                );
                let unique: BTreeSet<String> = got.iter().cloned().collect();
                assert_eq!(
                    unique.len(),
                    got.len(),
                    "{what}: querier {q} returned a span of trace {id} twice: {got:?}"
                );
                assert_eq!(
                    &unique, spans,
                    "{what}: querier {q} returned trace {id} incomplete or with foreign spans"
                );
            }
            let (found, partial) = self.search(querier);
            assert!(
                partial_ok || !partial,
                "{what}: querier {q} marked the search partial; log tail:\n{}",
                common::tail(&querier.log(), 10)
            );
            let want: BTreeMap<String, u64> = self
                .expected
                .iter()
                .map(|(id, spans)| (id.clone(), spans.len() as u64))
                .collect();
            assert_eq!(
                found, want,
                "{what}: querier {q}: search found other traces or span counts"
            );
        }
    }

    /// Every trace of the test service: trace ID → span count; and whether it was partial.
    fn search(&self, querier: &Skein) -> (BTreeMap<String, u64>, bool) {
        let url = format!(
            "http://{}/api/search?tags=service.name%3D{SERVICE}&limit=10000&start={}&end={}",
            querier.ports.http,
            self.search_start_secs,
            now_nanos() / 1_000_000_000 + 3600
        );
        let (status, partial_header, body) = get(&url, &self.tenant, "application/json");
        assert_eq!(status, 200, "search: {}", String::from_utf8_lossy(&body));
        let json: serde_json::Value = serde_json::from_slice(&body).expect("search json");
        assert!(
            json.get("partial").is_none(),
            "a Tempo answer is marked partial in headers only: {json}"
        );
        let found = json["traces"]
            .as_array()
            .expect("traces")
            .iter()
            .map(|t| {
                let spans = t["serviceStats"]
                    .as_object()
                    .expect("serviceStats")
                    .values()
                    .map(|s| s["spanCount"].as_u64().unwrap_or(0))
                    .sum();
                (t["traceID"].as_str().expect("traceID").to_owned(), spans)
            })
            .collect();
        (found, partial_header)
    }

    /// Checks repeatedly for `period`, so that a trace missing for a moment (between a flush
    /// and a block-list refresh, or during a compaction) is caught.
    fn check_for(&self, what: &str, period: Duration) {
        let deadline = Instant::now() + period;
        let mut rounds = 0;
        while rounds == 0 || Instant::now() < deadline {
            self.check(what, false);
            rounds += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits (checking meanwhile) until the blocks hold every expected span.
    fn wait_flushed(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.check(what, false);
            let stored: BTreeSet<(String, String)> = read_tenant(&self.storage, &self.tenant)
                .spans
                .iter()
                .map(|s| (hex(&s.span.trace_id), hex(&s.span.span_id)))
                .collect();
            let missing = self
                .expected
                .iter()
                .flat_map(|(t, spans)| spans.iter().map(move |s| (t.clone(), s.clone())))
                .filter(|k| !stored.contains(k))
                .count();
            if missing == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {missing} acknowledged spans still not in blocks after 60 s"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The compactor that works hardest over the next 300 ms (by CPU time): the one running a
    /// compaction job, when one runs.
    fn busiest_compactor(&self) -> usize {
        let cpu = |k: &Skein| -> u64 {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", k.child.id())).unwrap_or_default();
            // Fields after the command name: state is the 3rd field, utime and stime the
            // 14th and 15th.
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            field(11) + field(12)
        };
        let before: Vec<u64> = self.compactors.iter().map(cpu).collect();
        std::thread::sleep(Duration::from_millis(300));
        let used: Vec<u64> = self
            .compactors
            .iter()
            .zip(before)
            .map(|(k, b)| cpu(k).saturating_sub(b))
            .collect();
        (0..used.len()).max_by_key(|&i| used[i]).unwrap_or(0)
    }

    /// Waits (checking meanwhile) until no ingester serves any expected trace any more: the
    /// queriers then find them in blocks only.
    fn wait_handed_off(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.check(what, false);
            let served = self
                .expected
                .keys()
                .filter(|id| {
                    self.ingesters
                        .iter()
                        .any(|i| i.recent_trace(&self.tenant, id).is_some())
                })
                .count();
            if served == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: ingesters still serve {served} traces 60 s after their blocks were \
                 written (complete_block_timeout is {COMPLETE_BLOCK_TIMEOUT})"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Waits (checking meanwhile) until at least `retired` blocks of the tenant are retired by
    /// compaction. Skipped when the compactor does not compact yet.
    fn wait_compacted(&self, what: &str, retired: usize) -> usize {
        if !self.compacting {
            eprintln!("note: {what}: skipped, the compactor does not compact yet");
            return 0;
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            self.check(what, false);
            let seen = self.retired_blocks();
            if seen >= retired {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: compaction retired {seen} blocks within 90 s, expected {retired}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// How many blocks of the tenant have been seen retired so far. Retired blocks are deleted
    /// after `delete_grace`, so the count is kept here rather than read from the bucket.
    fn retired_blocks(&self) -> usize {
        let tenant = skein_format::TenantId::new(&self.tenant).expect("tenant");
        let store = self.storage.open().expect("open the storage");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listing = rt
            .block_on(skein_storage::blocklist::list_tenant(&store, &tenant))
            .expect("list the tenant");
        let mut seen = self.retired.borrow_mut();
        seen.extend(listing.tombstoned.iter().map(ToString::to_string));
        seen.len()
    }

    /// Every acknowledged span is in a visible block.
    fn assert_all_in_blocks(&self, what: &str) {
        let stored: BTreeSet<(String, String)> = read_tenant(&self.storage, &self.tenant)
            .spans
            .iter()
            .map(|s| (hex(&s.span.trace_id), hex(&s.span.span_id)))
            .collect();
        for (t, spans) in self.expected.iter().chain(&self.filler) {
            for s in spans {
                assert!(
                    stored.contains(&(t.clone(), s.clone())),
                    "{what}: acknowledged span {s} of trace {t} is in no block"
                );
            }
        }
    }
}

/// Posts until the ingester acknowledges every span (a few tries for backpressure).
fn send_acknowledged(ingester: &Skein, tenant: &str, body: &[u8]) {
    for attempt in 0..20 {
        let reply = post_protobuf(ingester, tenant, body);
        if reply.status == 200 {
            let (rejected, message) = reply.partial();
            assert_eq!(rejected, 0, "spans rejected: {message}");
            return;
        }
        assert!(
            matches!(reply.status, 429 | 503),
            "export refused with {}: {}",
            reply.status,
            reply.text()
        );
        std::thread::sleep(Duration::from_millis(100 * (attempt + 1)));
    }
    panic!("the ingester kept refusing an export");
}

/// GET with the tenant header: (status, whether `X-Skein-Partial: true`, body).
fn get(url: &str, tenant: &str, accept: &str) -> (u16, bool, Vec<u8>) {
    let resp = common::client()
        .get(url)
        .header("X-Scope-OrgID", tenant)
        .header("Accept", accept)
        .timeout(Duration::from_secs(30))
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let partial = resp
        .headers()
        .get("x-skein-partial")
        .is_some_and(|v| v == "true");
    let body = resp.bytes().expect("body").to_vec();
    (status, partial, body)
}

/// The span IDs of one trace as a querier returns it, and whether it was marked partial.
fn trace_by_id(querier: &Skein, tenant: &str, id: &str) -> (Vec<String>, bool) {
    let url = format!("http://{}/api/traces/{id}", querier.ports.http);
    let (status, partial, body) = get(&url, tenant, "application/protobuf");
    if status == 404 {
        return (Vec::new(), partial);
    }
    assert_eq!(
        status,
        200,
        "trace {id}: {}",
        String::from_utf8_lossy(&body)
    );
    let data = TracesData::decode(body.as_slice()).expect("a TracesData body");
    let spans = data
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| hex(&s.span_id))
        .collect();
    (spans, partial)
}

fn signal(child: &Skein, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

/// Asserts that a search through `querier` is answered within `limit`, marked partial, and
/// names the `missing` ingester.
fn assert_partial_quickly(cluster: &Cluster, querier: &Skein, missing: &Skein, limit: Duration) {
    let started = Instant::now();
    let url = format!(
        "http://{}/api/search?tags=service.name%3D{SERVICE}&limit=10000&start={}",
        querier.ports.http, cluster.search_start_secs
    );
    let resp = common::client()
        .get(&url)
        .header("X-Scope-OrgID", &cluster.tenant)
        .timeout(Duration::from_secs(30))
        .send()
        .expect("search");
    let took = started.elapsed();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("x-skein-partial")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let unreachable = resp
        .headers()
        .get("x-skein-unreachable-ingesters")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        unreachable.contains(&missing.ports.internal.to_string()),
        "the unreachable ingester is not named: {unreachable:?}"
    );
    let json: serde_json::Value = resp.json().expect("json");
    assert!(
        json.get("partial").is_none() && json["traces"].is_array(),
        "a Tempo answer is exactly Tempo's message, marked partial in headers only: {json}"
    );
    assert!(
        took < limit,
        "a partial answer took {took:?} (limit {limit:?})"
    );
    // Skein's other APIs say it in the body too.
    let url = format!(
        "http://{}/jaeger/api/traces?service={SERVICE}&limit=1",
        querier.ports.http
    );
    let resp = common::client()
        .get(&url)
        .header("X-Scope-OrgID", &cluster.tenant)
        .timeout(Duration::from_secs(30))
        .send()
        .expect("jaeger search");
    let json: serde_json::Value = resp.json().expect("json");
    assert_eq!(json["partial"], true, "{json}");
    assert!(json["warnings"].as_array().is_some_and(|w| !w.is_empty()));
}

#[test]
fn a_cluster_keeps_every_trace_whole_through_flushes_compactions_and_crashes() {
    let Some((endpoint, bucket)) = common::s3() else {
        return;
    };
    let started = Instant::now();
    let root = tempfile::tempdir().expect("tempdir");
    let mut c = Cluster::start(root.path(), &endpoint, &bucket);

    // Live: every trace is split over both ingesters and in no block yet.
    c.send_phase(1);
    c.check("phase 1 live", false);
    // Flushed: blocks appear while the ingesters still answer for them; then the ingesters
    // let go and the queriers read the blocks alone. No trace may vanish in between.
    c.wait_flushed("phase 1 flushing");
    c.wait_handed_off("phase 1 handing off");
    c.check_for("phase 1 in blocks only", Duration::from_secs(3));
    let retired = c.wait_compacted("phase 1 compacting", 1);
    c.check_for("phase 1 after compaction", Duration::from_secs(2));

    // Crash: more traces (and bulk, so that compacting them takes a moment), then SIGKILL
    // one ingester before it flushes them.
    c.send_phase(2);
    c.send_filler(2, 3000);
    c.ingesters[0].kill9();
    // A querier that cannot reach an ingester still answers, quickly, marked partial.
    for q in 0..2 {
        assert_partial_quickly(&c, &c.queriers[q], &c.ingesters[0], Duration::from_secs(5));
    }
    c.ingesters[0].restart();
    c.check("phase 2 after the ingester restarted", false);
    // SIGKILL the compactor that works on this tenant while it compacts the new blocks (its
    // job journal exists), then start it again.
    let mid_job = c.compacting && c.wait_compaction_job(Duration::from_secs(60));
    let busy = c.busiest_compactor();
    c.compactors[busy].kill9();
    eprintln!(
        "killed compactor {busy} {}; its log ended with:\n{}",
        if mid_job {
            "during a compaction job"
        } else {
            "(no compaction job seen)"
        },
        common::tail(&c.compactors[busy].log(), 2)
    );
    let interrupted = c.compacting && c.unfinished_jobs() > 0;
    c.check("phase 2 with a compactor killed", false);
    c.compactors[busy].restart();
    c.wait_flushed("phase 2 flushing");
    c.wait_handed_off("phase 2 handing off");
    let retired = c.wait_compacted("phase 2 compacting", retired + 1);
    c.check_for("phase 2 after compaction", Duration::from_secs(2));
    if interrupted {
        // The killed job's journal is settled (its partial outputs removed, the job redone).
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.unfinished_jobs() > 0 {
            assert!(
                Instant::now() < deadline,
                "an interrupted compaction job was not settled within 60 s"
            );
            c.check("phase 2 settling the interrupted job", false);
            std::thread::sleep(Duration::from_millis(300));
        }
        c.check_for("phase 2 after the interrupted job", Duration::from_secs(1));
    }
    if c.compacting {
        let repaired = c
            .compactors
            .iter()
            .any(|k| k.log().contains("settled an interrupted compaction"));
        eprintln!(
            "compaction retired {retired} blocks of the tenant in all; the kill {} a job; a \
             compactor {} an interrupted job",
            if interrupted {
                "interrupted"
            } else {
                "did not interrupt"
            },
            if repaired {
                "settled"
            } else {
                "did not settle"
            }
        );
    }

    // An ingester that accepts connections but does not answer: partial after the timeout.
    signal(&c.ingesters[1], "STOP");
    assert_partial_quickly(
        &c,
        &c.queriers[0],
        &c.ingesters[1],
        INGESTER_TIMEOUT + Duration::from_secs(4),
    );
    signal(&c.ingesters[1], "CONT");
    c.check("after the stalled ingester resumed", false);

    // Graceful stop: SIGTERM flushes everything and exits 0 with an empty WAL; the blocks
    // alone then hold every acknowledged span.
    c.send_phase(3);
    for i in 0..2 {
        let wal = c.ingesters[i].dir.join("wal");
        stop_cleanly(&mut c.ingesters[i], &wal);
    }
    c.assert_all_in_blocks("after a graceful stop of both ingesters");
    // The ingesters are gone: answers are partial, but whole from the blocks once the
    // queriers' block lists include the blocks written at shutdown. (A stopping ingester does
    // not wait for that refresh: for up to block_list_refresh its last traces are missing.)
    std::thread::sleep(Duration::from_secs(3));
    c.check("with both ingesters stopped", true);

    for p in c.queriers.iter_mut().chain(c.compactors.iter_mut()) {
        p.kill9();
    }
    eprintln!("cluster test finished in {:?}", started.elapsed());
}
