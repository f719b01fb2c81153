//! TraceQL conformance end to end: every query of `skein_testkit::traceql::CONFORMANCE`
//! (every form of the language, structural operators and pipelines included) through
//! `/api/search`, on the OTLP fixtures and generated traces split across a compacted block
//! (searched through its tag index), a block fresh from the ingester (scanned) and the
//! ingester's live data, answered exactly as a brute-force evaluation of the query on every
//! whole trace (read back by ID) answers it: the same traces, newest first, with the same
//! matched spans. The table runs twice: right after the last part of the data arrived (live
//! in the ingester, cut into a block during the run), and once every part is in blocks.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::json_api::enc;
use common::otlp::{hex, now_nanos, post_protobuf};
use common::tempo_messages::SearchResponse;
use common::{Options, Skein};
use prost::Message;
use serde_json::Value;
use skein_format::model::{spans_from_otlp, spans_to_otlp};
use skein_format::otlp::collector::trace::v1::ExportTraceServiceRequest;
use skein_format::otlp::trace::v1::TracesData;
use skein_format::{SpanRecord, TenantId};
use skein_testkit::synth::{Rng, TraceGenerator};
use skein_testkit::traceql::{CONFORMANCE, MAYBE_UNSUPPORTED};

const TENANT: &str = "conformance";
/// Fixtures with traces of their own (the others share a trace ID with these).
const FIXTURES: &[&str] = &["vulture-trace.json", "trace-with-failed-requests.json"];

fn send(skein: &Skein, spans: Vec<SpanRecord>) {
    if spans.is_empty() {
        return;
    }
    let body = ExportTraceServiceRequest {
        resource_spans: spans_to_otlp(spans),
    }
    .encode_to_vec();
    let reply = post_protobuf(skein, TENANT, &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// A fixture's spans, moved so that its latest timestamp is `ends_at`.
fn fixture(name: &str, ends_at: u64) -> Vec<SpanRecord> {
    let text = common::fixture(&format!("otlp-json/{name}"));
    let data: TracesData = serde_json::from_str(&text).expect("fixture decodes");
    let mut spans = spans_from_otlp(data.resource_spans);
    let latest = spans
        .iter()
        .map(|s| s.span.end_time_unix_nano.max(s.span.start_time_unix_nano))
        .max()
        .unwrap();
    let shift = ends_at - latest;
    for s in &mut spans {
        s.span.start_time_unix_nano += shift;
        s.span.end_time_unix_nano += shift;
        for e in &mut s.span.events {
            e.time_unix_nano += shift;
        }
    }
    spans
}

/// Compacted blocks of the tenant that carry a tag index.
fn indexed_blocks(dir: &std::path::Path) -> usize {
    let store = skein_storage::StorageConfig::Local {
        path: dir.join("blocks"),
    }
    .open()
    .unwrap();
    let tenant = TenantId::new(TENANT).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Ok(listing) = skein_storage::blocklist::list_tenant(&store, &tenant).await else {
            return 0;
        };
        let mut n = 0;
        for id in listing.live {
            if let Ok(meta) = skein_storage::blocklist::read_meta(&store, &tenant, id).await {
                n += usize::from(meta.files.index_size.is_some());
            }
        }
        n
    })
}

/// Blocks the ingester wrote (an unlabelled counter).
fn flushed(skein: &Skein) -> f64 {
    skein
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix("skein_ingester_blocks_flushed_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn wait(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A whole trace as the API reads it back by ID.
fn read_back(skein: &Skein, id: &str) -> Vec<SpanRecord> {
    let resp = common::client()
        .get(format!("http://{}/api/traces/{id}", skein.ports.http))
        .header("X-Scope-OrgID", TENANT)
        .header("Accept", "application/protobuf")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "trace {id}");
    let data = TracesData::decode(resp.bytes().unwrap()).unwrap();
    let mut spans = spans_from_otlp(data.resource_spans);
    spans.sort_by_key(|s| s.span.start_time_unix_nano);
    spans
}

/// Per trace (newest first): its ID and the IDs of the spans its spansets hold.
type Answer = Vec<(String, BTreeSet<String>)>;

fn brute_force(query: &skein_traceql::Query, traces: &BTreeMap<String, Vec<SpanRecord>>) -> Answer {
    let mut found: Vec<(u64, String, BTreeSet<String>)> = Vec::new();
    for (id, spans) in traces {
        let sets = query.evaluate(spans);
        if sets.is_empty() {
            continue;
        }
        let matched = sets
            .iter()
            .flat_map(|s| &s.spans)
            .map(|&i| hex(&spans[i].span.span_id))
            .collect();
        let start = spans
            .iter()
            .map(|s| s.span.start_time_unix_nano)
            .min()
            .unwrap();
        found.push((start, id.clone(), matched));
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    found.into_iter().map(|(_, id, m)| (id, m)).collect()
}

/// The search API's answer, or the error message of a 400.
fn search(skein: &Skein, q: &str) -> Result<Answer, String> {
    let resp = common::client()
        .get(format!(
            "http://{}/api/search?q={}&limit=1000&spss=1000",
            skein.ports.http,
            enc(q)
        ))
        .header("X-Scope-OrgID", TENANT)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().unwrap();
    if status == 400 {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        return Err(v["error"].as_str().unwrap_or("").to_owned());
    }
    assert_eq!(status, 200, "{q}: {}", String::from_utf8_lossy(&body));
    let r: SearchResponse =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{q}: not a SearchResponse: {e}"));
    Ok(r.traces
        .iter()
        .map(|t| {
            let matched = t
                .span_sets
                .iter()
                .flat_map(|s| &s.spans)
                .map(|s| s.span_id.clone())
                .collect();
            (t.trace_id.clone(), matched)
        })
        .collect())
}

/// Runs the whole table; returns how many queries matched something.
fn run_table(skein: &Skein, traces: &BTreeMap<String, Vec<SpanRecord>>, when: &str) -> usize {
    let mut failures = Vec::new();
    let mut matched = 0;
    for q in CONFORMANCE.iter().chain(MAYBE_UNSUPPORTED) {
        let optional = MAYBE_UNSUPPORTED.contains(q);
        let want = match skein_traceql::parse(q) {
            Ok(query) => brute_force(&query, traces),
            Err(e) if optional && matches!(e, skein_traceql::Error::Unsupported { .. }) => {
                match search(skein, q) {
                    Err(m) if m.contains("not supported") => continue,
                    other => {
                        failures.push(format!("{q}: unsupported, but the API answered {other:?}"));
                        continue;
                    }
                }
            }
            Err(e) => {
                failures.push(format!("{q}: does not parse: {e}"));
                continue;
            }
        };
        match search(skein, q) {
            Ok(got) if got == want => matched += usize::from(!want.is_empty()),
            Ok(got) => failures.push(format!(
                "{q}: the API found {} traces {:?}, brute force {} {:?}",
                got.len(),
                got.iter().take(3).collect::<Vec<_>>(),
                want.len(),
                want.iter().take(3).collect::<Vec<_>>()
            )),
            Err(e) => failures.push(format!("{q}: refused: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{when}: {} of {} queries differ from the brute-force answer:\n{}",
        failures.len(),
        CONFORMANCE.len() + MAYBE_UNSUPPORTED.len(),
        failures.join("\n")
    );
    matched
}

#[test]
fn traceql_conformance_against_brute_force() {
    assert!(CONFORMANCE.len() >= 100);
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        ingester:
            "trace_idle_period = \"200ms\"\nmax_block_duration = \"2s\"\ncut_interval = \"100ms\"\n\
                   complete_block_timeout = \"2s\"\n"
                .into(),
        extra:
            "[querier]\nblock_list_refresh = \"300ms\"\n\n[compactor]\ncycle_interval = \"500ms\"\n"
                .into(),
        ..Options::default()
    };
    let skein = Skein::start(dir.path(), &opts);
    let now = now_nanos();
    let mut generator = TraceGenerator::new(41, now - 600_000_000_000, 3_000_000_000);
    let mut rng = Rng::new(41);
    let mut phases: [Vec<SpanRecord>; 4] = Default::default();
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for t in 0..90 {
        let trace = generator.trace(2 + rng.below(30) as usize);
        ids.insert(hex(&trace[0].span.trace_id));
        // Most traces go whole into one phase; a third are split over two or three.
        let home = t % 4;
        let split = rng.chance(0.35);
        for s in trace {
            let phase = if split {
                (home + rng.below(3) as usize).min(3)
            } else {
                home
            };
            phases[phase].push(s);
        }
    }
    for (i, name) in FIXTURES.iter().enumerate() {
        let spans = fixture(name, now - 60_000_000_000 - i as u64 * 1_000_000_000);
        ids.insert(hex(&spans[0].span.trace_id));
        // The first fixture is split between the compacted block and the live data.
        for (k, s) in spans.into_iter().enumerate() {
            let phase = if i == 0 && k % 3 == 0 { 3 } else { 0 };
            phases[phase].push(s);
        }
    }
    let [first, second, third, live] = phases;

    // Two flushed blocks, which the compactor merges into an indexed one.
    send(&skein, first);
    wait("a first block", Duration::from_secs(30), || {
        flushed(&skein) >= 1.0
    });
    send(&skein, second);
    wait("a second block", Duration::from_secs(30), || {
        flushed(&skein) >= 2.0
    });
    wait(
        "a compacted block with a tag index",
        Duration::from_secs(60),
        || indexed_blocks(dir.path()) >= 1,
    );
    // A fresh block, scanned; then live data in the ingester.
    send(&skein, third);
    wait("a third block", Duration::from_secs(30), || {
        flushed(&skein) >= 3.0
    });
    let before_live = flushed(&skein);
    send(&skein, live);

    let traces: BTreeMap<String, Vec<SpanRecord>> = ids
        .iter()
        .map(|id| (id.clone(), read_back(&skein, id)))
        .collect();
    let matched = run_table(&skein, &traces, "with live data");
    assert!(
        matched * 2 > CONFORMANCE.len(),
        "only {matched} queries matched anything: the table does not exercise the data"
    );

    wait("the live data in a block", Duration::from_secs(30), || {
        flushed(&skein) > before_live
    });
    std::thread::sleep(Duration::from_secs(1));
    let traces: BTreeMap<String, Vec<SpanRecord>> = ids
        .iter()
        .map(|id| (id.clone(), read_back(&skein, id)))
        .collect();
    run_table(&skein, &traces, "with every part in blocks");
}
