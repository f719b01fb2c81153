//! Search through the Tempo API: trace-level durations, tags on one span, newest first,
//! limits, true summaries for traces split across a block and the ingester, and bad input.

use crate::common;

use std::time::{Duration, Instant};

use common::json_api::{self, enc, send};
use common::otlp::now_nanos as now_ns;
use common::{Options, Skein};
use serde_json::{Value, json};

/// One server span in OTLP/JSON.
#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: &str,
    parent: &str,
    name: &str,
    start: u64,
    dur_ms: u64,
    attrs: Value,
    error: bool,
) -> Value {
    json_api::span(trace, id, parent, name, 2, start, dur_ms, attrs, error)
}

fn request(service: &str, spans: Vec<Value>) -> Value {
    json_api::request(service, json!([]), json!({ "name": "test" }), spans)
}

fn search(skein: &Skein, params: &str) -> (u16, Value) {
    json_api::get(&format!("http://{}/api/search?{params}", skein.ports.http))
}

fn ids(v: &Value) -> Vec<String> {
    json_api::trace_ids(&v["traces"])
}

#[test]
fn tempo_search_semantics_and_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        ingester: "trace_idle_period = \"200ms\"\nmax_block_duration = \"300ms\"\ncut_interval = \"100ms\"\n\
                   complete_block_timeout = \"1s\"\n"
            .into(),
        extra: "[querier]\nblock_list_refresh = \"300ms\"\n".into(),
        ..Options::default()
    };
    let skein = Skein::start(dir.path(), &opts);
    let t0 = now_ns() - 60_000_000_000;
    let (a, b, c) = ("a".repeat(32), "b".repeat(32), "c".repeat(32));

    // A: web root (100 ms) calling api, whose span failed with a 500. Oldest.
    send(
        &skein,
        &request(
            "web",
            vec![span(
                &a,
                "a000000000000001",
                "",
                "GET /",
                t0,
                100,
                json!([]),
                false,
            )],
        ),
    );
    send(
        &skein,
        &request(
            "api",
            vec![span(
                &a,
                "a000000000000002",
                "a000000000000001",
                "query",
                t0 + 5_000_000,
                20,
                json!([{ "key": "http.status_code", "value": { "intValue": "500" } }]),
                true,
            )],
        ),
    );
    // B: a short web trace (10 ms), a second later.
    send(
        &skein,
        &request(
            "web",
            vec![span(
                &b,
                "b000000000000001",
                "",
                "GET /health",
                t0 + 1_000_000_000,
                10,
                json!([]),
                false,
            )],
        ),
    );
    // C: its root now; wait until it is in a block, then a child arrives (live in the ingester).
    send(
        &skein,
        &request(
            "web",
            vec![span(
                &c,
                "c000000000000001",
                "",
                "GET /slow",
                t0 + 2_000_000_000,
                500,
                json!([]),
                false,
            )],
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !skein
        .metrics()
        .contains("skein_ingester_blocks_flushed_total")
        || skein
            .metrics()
            .contains("skein_ingester_blocks_flushed_total 0")
    {
        assert!(Instant::now() < deadline, "no block written within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1_500));
    send(
        &skein,
        &request(
            "db",
            vec![span(
                &c,
                "c000000000000002",
                "c000000000000001",
                "SELECT",
                t0 + 2_100_000_000,
                50,
                json!([{ "key": "db.system", "value": { "stringValue": "postgresql" } }]),
                false,
            )],
        ),
    );

    // Newest first, all three.
    let (status, all) = search(&skein, "");
    assert_eq!(status, 200, "{all}");
    assert_eq!(ids(&all), vec![c.clone(), b.clone(), a.clone()], "{all}");

    // C's summary is whole although its spans live in a block and in the ingester.
    let (_, v) = search(&skein, &format!("tags={}", enc("db.system=postgresql")));
    assert_eq!(ids(&v), vec![c.clone()], "{v}");
    let t = &v["traces"][0];
    assert_eq!(t["rootServiceName"], "web");
    assert_eq!(t["rootTraceName"], "GET /slow");
    assert_eq!(t["durationMs"], 500);
    assert_eq!(t["serviceStats"]["web"]["spanCount"], 1);
    assert_eq!(t["serviceStats"]["db"]["spanCount"], 1);
    assert!(
        t.get("spanCount").is_none(),
        "only SearchResponse's fields: {t}"
    );
    assert_eq!(t["startTimeUnixNano"], (t0 + 2_000_000_000).to_string());

    // Durations are the trace's (A's query span lasts 20 ms, A itself 100 ms); inclusive.
    let (_, v) = search(&skein, "minDuration=100ms&maxDuration=100ms");
    assert_eq!(ids(&v), vec![a.clone()], "{v}");
    let (_, v) = search(
        &skein,
        &format!("tags={}&minDuration=50ms", enc("service.name=api")),
    );
    assert_eq!(ids(&v), vec![a.clone()], "{v}");
    assert_eq!(v["traces"][0]["serviceStats"]["api"]["errorCount"], 1);

    // Tags hold on one span: web and the 500 are on different spans of A.
    let (_, v) = search(
        &skein,
        &format!("tags={}", enc("service.name=web http.status_code=500")),
    );
    assert!(ids(&v).is_empty(), "{v}");
    let (_, v) = search(
        &skein,
        &format!("tags={}", enc("service.name=api http.status_code=500")),
    );
    assert_eq!(ids(&v), vec![a.clone()], "{v}");
    let (_, v) = search(&skein, &format!("tags={}", enc("name=\"GET /health\"")));
    assert_eq!(ids(&v), vec![b.clone()], "{v}");

    // Limit.
    let (_, v) = search(&skein, "limit=2");
    assert_eq!(ids(&v), vec![c.clone(), b.clone()], "{v}");

    // A time range that ends before B starts finds only A.
    let (_, v) = search(
        &skein,
        &format!(
            "start={}&end={}",
            t0 / 1_000_000_000 - 10,
            t0 / 1_000_000_000
        ),
    );
    assert_eq!(ids(&v), vec![a.clone()], "{v}");

    // Another tenant sees nothing.
    let resp = common::client()
        .get(format!("http://{}/api/search", skein.ports.http))
        .header("X-Scope-OrgID", "someone-else")
        .send()
        .and_then(reqwest::blocking::Response::error_for_status)
        .unwrap();
    let v: Value = resp.json().unwrap();
    assert!(ids(&v).is_empty(), "{v}");

    // Tag names and values (from the block and the ingester alike).
    let get = |path: &str| -> (u16, Value) {
        let resp = common::client()
            .get(format!("http://{}{path}", skein.ports.http))
            .send()
            .expect("tags");
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    };
    let (_, v) = get("/api/search/tags");
    for want in ["http.status_code", "db.system", "service.name"] {
        assert!(
            v["tagNames"].as_array().unwrap().contains(&json!(want)),
            "{want}: {v}"
        );
    }
    let (_, v) = get("/api/v2/search/tags");
    assert_eq!(v["scopes"][0]["name"], "span");
    assert_eq!(
        v["scopes"][0]["tags"],
        json!(["db.system", "http.status_code"]),
        "{v}"
    );
    assert_eq!(v["scopes"][1]["tags"], json!(["service.name"]), "{v}");
    let (_, v) = get("/api/search/tag/service.name/values");
    assert_eq!(v["tagValues"], json!(["api", "db", "web"]), "{v}");
    let (_, v) = get("/api/v2/search/tag/resource.service.name/values");
    assert_eq!(
        v["tagValues"][0],
        json!({ "type": "string", "value": "api" }),
        "{v}"
    );
    let (_, v) = get("/api/v2/search/tag/span.http.status_code/values");
    assert_eq!(
        v["tagValues"],
        json!([{ "type": "int", "value": "500" }]),
        "{v}"
    );
    let (_, v) = get("/api/v2/search/tag/span.service.name/values");
    assert_eq!(
        v["tagValues"],
        json!([]),
        "service.name is a resource attribute: {v}"
    );
    let (status, v) = get("/api/v2/search/tag/http.status_code/values");
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("write it scoped"),
        "{v}"
    );

    // Bad input: 400 with a message.
    for (params, want) in [
        ("minDuration=soon", "not a duration"),
        ("minDuration=2s&maxDuration=1s", "greater than"),
        ("limit=0", "out of range"),
        ("limit=999999999", "out of range"),
        ("limit=ten", "whole number"),
        ("start=20&end=10", "after"),
        ("q=%7B%20.a%20%3D%20%7D", "col 8"),
        ("q=%7B%7D&tags=a%3Db", "cannot be combined"),
        ("spss=0", "out of range"),
        ("tags=novalue", "key=value"),
    ] {
        let (status, v) = search(&skein, params);
        assert_eq!(status, 400, "{params}: {v}");
        assert!(
            v["error"].as_str().unwrap_or("").contains(want),
            "{params}: {v}"
        );
    }
    // Parameters a proxy or client adds are ignored, not refused.
    let (status, v) = search(&skein, "servce=web&orgId=1");
    assert_eq!(status, 200, "{v}");
    assert_eq!(ids(&v).len(), 3, "{v}");
}
