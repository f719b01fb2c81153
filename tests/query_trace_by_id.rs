//! Trace by ID through the Tempo API: the same trace before and after its block is written,
//! in JSON and protobuf, per tenant.

use crate::common;

use std::time::{Duration, Instant};

use common::{Options, Skein};
use prost::Message;
use skein_format::model::canonical;
use skein_format::otlp::trace::v1::TracesData;

fn get(url: &str, tenant: &str, accept: &str) -> (u16, Vec<u8>) {
    let resp = common::client()
        .get(url)
        .header("X-Scope-OrgID", tenant)
        .header("Accept", accept)
        .send()
        .expect("call the querier");
    let status = resp.status().as_u16();
    (status, resp.bytes().expect("body").to_vec())
}

fn from_json_batches(body: &[u8], key: &str) -> TracesData {
    let v: serde_json::Value = serde_json::from_slice(body).expect("json");
    let rs = match key {
        "batches" => v["batches"].clone(),
        _ => v["trace"]["resourceSpans"].clone(),
    };
    serde_json::from_value(serde_json::json!({ "resourceSpans": rs })).expect("otlp json")
}

#[test]
fn tempo_trace_by_id_before_and_after_the_block_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        ingester: "trace_idle_period = \"200ms\"\nmax_block_duration = \"500ms\"\ncut_interval = \"100ms\"\n\
                   complete_block_timeout = \"1s\"\n"
            .into(),
        // The fixture is from 2022: a retention long enough to accept and keep it.
        extra: "[querier]\nblock_list_refresh = \"500ms\"\n[compactor]\nretention = \"36500days\"\n"
            .into(),
        ..Options::default()
    };
    let skein = Skein::start(dir.path(), &opts);
    let body = common::fixture("otlp-json/vulture-trace.json");
    let sent: TracesData = serde_json::from_str(&body).unwrap();
    let id = hex(&sent.resource_spans[0].scope_spans[0].spans[0].trace_id);
    let resp = common::client()
        .post(skein.otlp_http_url())
        .header("Content-Type", "application/json")
        .header("X-Scope-OrgID", "team-a")
        .body(body)
        .send()
        .expect("export");
    assert_eq!(resp.status().as_u16(), 200);

    let api = format!("http://{}", skein.ports.http);
    let check = |phase: &str| {
        let (status, json) = get(
            &format!("{api}/api/traces/{id}"),
            "team-a",
            "application/json",
        );
        assert_eq!(status, 200, "{phase}: {}", String::from_utf8_lossy(&json));
        assert_eq!(
            canonical(from_json_batches(&json, "batches").resource_spans),
            canonical(sent.resource_spans.clone()),
            "{phase}: /api/traces JSON differs from what was sent"
        );
        let (status, proto) = get(
            &format!("{api}/api/traces/{id}"),
            "team-a",
            "application/protobuf",
        );
        assert_eq!(status, 200);
        let decoded = TracesData::decode(proto.as_slice()).expect("tempopb.Trace");
        assert_eq!(
            canonical(decoded.resource_spans),
            canonical(sent.resource_spans.clone()),
            "{phase}: protobuf"
        );
        let (status, v2) = get(
            &format!("{api}/api/v2/traces/{id}"),
            "team-a",
            "application/json",
        );
        assert_eq!(status, 200);
        assert_eq!(
            canonical(from_json_batches(&v2, "v2").resource_spans),
            canonical(sent.resource_spans.clone()),
            "{phase}: /api/v2/traces"
        );
        // Another tenant does not see it.
        let (status, _) = get(
            &format!("{api}/api/traces/{id}"),
            "team-b",
            "application/json",
        );
        assert_eq!(status, 404, "{phase}: tenant isolation");
    };
    check("live in the ingester");

    // Wait until the block is written and the ingester has let go of it: the querier must now
    // find the trace in object storage.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !skein
        .metrics()
        .contains("skein_ingester_blocks_flushed_total 1")
    {
        assert!(Instant::now() < deadline, "no block written within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(2_500));
    check("in a block");

    // With a time window around the trace it is found; a window before it finds nothing.
    let start = sent.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano / 1_000_000_000;
    let (status, _) = get(
        &format!(
            "{api}/api/traces/{id}?start={}&end={}",
            start - 60,
            start + 3600
        ),
        "team-a",
        "application/json",
    );
    assert_eq!(status, 200);
    let (status, _) = get(
        &format!("{api}/api/traces/{id}?start=1&end=2"),
        "team-a",
        "application/json",
    );
    assert_eq!(status, 404);

    // Bad input: a clear 400 with a JSON message; absent traces 404.
    for (path, want) in [
        (format!("/api/traces/{}", "0".repeat(33)), "trace id"),
        ("/api/traces/zzzz".to_string(), "hex"),
        (format!("/api/traces/{id}?start=10&end=5"), "after"),
        (format!("/api/traces/{id}?start=yesterday"), "Unix time"),
    ] {
        let (status, body) = get(&format!("{api}{path}"), "team-a", "application/json");
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains(want), "{path}: {text}");
        assert!(
            serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
            "{path}: not JSON: {text}"
        );
    }
    // Parameters a proxy or client adds are ignored, not refused.
    let (status, _) = get(
        &format!("{api}/api/traces/{id}?limit=3&orgId=1"),
        "team-a",
        "application/json",
    );
    assert_eq!(status, 200);
    let (status, body) = get(
        &format!("{api}/api/traces/{id}"),
        "../etc",
        "application/json",
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _) = get(
        &format!("{api}/api/traces/{}", "ab".repeat(16)),
        "team-a",
        "application/json",
    );
    assert_eq!(status, 404);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
