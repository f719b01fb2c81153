//! The Jaeger query API v1, on the Jaeger port and under /jaeger on the API port.

use crate::common;

use common::json_api::{self, enc};
use common::otlp::now_nanos as now_ns;
use common::{Options, Skein};
use serde_json::{Value, json};

/// A span with one event and a status message (Jaeger shows them as a log and tags).
#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: &str,
    parent: &str,
    name: &str,
    kind: i32,
    start: u64,
    dur_ms: u64,
    attrs: Value,
    error: bool,
) -> Value {
    let mut span = json_api::span(trace, id, parent, name, kind, start, dur_ms, attrs, error);
    span["events"] =
        json!([{ "timeUnixNano": (start + 1000).to_string(), "name": "retry", "attributes": [] }]);
    span["status"]["message"] = json!(if error { "boom" } else { "" });
    span
}

fn send(skein: &Skein, service: &str, spans: Vec<Value>) {
    let host = json!([{ "key": "host.name", "value": { "stringValue": "h1" } }]);
    let scope = json!({ "name": "lib", "version": "1.0" });
    json_api::send(skein, &json_api::request(service, host, scope, spans));
}

fn get(base: &str, path: &str) -> (u16, Value) {
    json_api::get(&format!("{base}{path}"))
}

/// The trace IDs of a Jaeger answer, sorted.
fn trace_ids(v: &Value) -> Vec<String> {
    let mut ids = json_api::trace_ids(&v["data"]);
    ids.sort();
    ids
}

#[test]
fn jaeger_v1_api() {
    let dir = tempfile::tempdir().unwrap();
    let skein = Skein::start(dir.path(), &Options::default());
    let t0 = now_ns() - 60_000_000_000;
    let (a, b) = ("a".repeat(32), "b".repeat(32));
    send(
        &skein,
        "web",
        vec![span(
            &a,
            "a000000000000001",
            "",
            "GET /",
            2,
            t0,
            100,
            json!([]),
            false,
        )],
    );
    send(
        &skein,
        "api",
        vec![span(
            &a,
            "a000000000000002",
            "a000000000000001",
            "query",
            2,
            t0 + 5_000_000,
            20,
            json!([{ "key": "http.status_code", "value": { "intValue": "500" } }]),
            true,
        )],
    );
    send(
        &skein,
        "web",
        vec![span(
            &b,
            "b000000000000001",
            "",
            "GET /health",
            2,
            t0 + 1_000_000_000,
            10,
            json!([]),
            false,
        )],
    );

    for base in [
        format!("http://{}", skein.ports.jaeger),
        format!("http://{}/jaeger", skein.ports.http),
    ] {
        let (status, v) = get(&base, "/api/services");
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["data"], json!(["api", "web"]), "{v}");
        assert_eq!(v["total"], 2);
        assert!(v["errors"].is_null());

        let (_, v) = get(&base, "/api/services/web/operations");
        assert_eq!(v["data"], json!(["GET /", "GET /health"]), "{v}");
        let (_, v) = get(&base, "/api/operations?service=api&spanKind=server");
        assert_eq!(
            v["data"],
            json!([{ "name": "query", "spanKind": "server" }]),
            "{v}"
        );

        // Trace by ID in Jaeger's model.
        let (status, v) = get(&base, &format!("/api/traces/{a}"));
        assert_eq!(status, 200, "{v}");
        let trace = &v["data"][0];
        assert_eq!(trace["traceID"], a);
        let spans = trace["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 2);
        let child = spans
            .iter()
            .find(|s| s["spanID"] == "a000000000000002")
            .unwrap();
        assert_eq!(child["operationName"], "query");
        assert_eq!(child["startTime"], (t0 + 5_000_000) / 1000);
        assert_eq!(child["duration"], 20_000);
        assert_eq!(
            child["references"],
            json!([{ "refType": "CHILD_OF", "traceID": a, "spanID": "a000000000000001" }])
        );
        let tags = child["tags"].as_array().unwrap();
        assert!(
            tags.contains(&json!({ "key": "http.status_code", "type": "int64", "value": 500 })),
            "{tags:?}"
        );
        assert!(
            tags.contains(&json!({ "key": "error", "type": "bool", "value": true })),
            "{tags:?}"
        );
        assert!(
            tags.contains(&json!({ "key": "span.kind", "type": "string", "value": "server" })),
            "{tags:?}"
        );
        assert!(
            tags.contains(
                &json!({ "key": "otel.status_description", "type": "string", "value": "boom" })
            ),
            "{tags:?}"
        );
        assert_eq!(
            child["logs"][0]["fields"][0],
            json!({ "key": "event", "type": "string", "value": "retry" })
        );
        let pid = child["processID"].as_str().unwrap();
        assert_eq!(trace["processes"][pid]["serviceName"], "api");
        assert_eq!(
            trace["processes"][pid]["tags"],
            json!([{ "key": "host.name", "type": "string", "value": "h1" }])
        );

        // Search: one span must satisfy every filter.
        let tags = enc(r#"{"http.status_code":"500"}"#);
        let (_, v) = get(&base, &format!("/api/traces?service=api&tags={tags}"));
        assert_eq!(trace_ids(&v), vec![a.clone()], "{v}");
        let (_, v) = get(&base, &format!("/api/traces?service=web&tags={tags}"));
        assert_eq!(trace_ids(&v), Vec::<String>::new(), "{v}");
        let (_, v) = get(
            &base,
            "/api/traces?service=api&tag=http.status_code:500&minDuration=20ms&maxDuration=20ms",
        );
        assert_eq!(trace_ids(&v), vec![a.clone()], "{v}");
        let (_, v) = get(&base, "/api/traces?service=web&minDuration=50ms");
        assert_eq!(trace_ids(&v), vec![a.clone()], "{v}");
        let (_, v) = get(
            &base,
            &format!(
                "/api/traces?service=web&start={}&end={}&limit=20",
                t0 / 1000,
                t0 / 1000 + 500_000
            ),
        );
        assert_eq!(trace_ids(&v), vec![a.clone()], "{v}");
        let (_, v) = get(&base, "/api/traces?service=web&limit=1");
        assert_eq!(trace_ids(&v), vec![b.clone()], "newest first: {v}");
        // Jaeger marks a span whose OTLP status is ERROR with the tag error=true; a search
        // for that tag finds it (the span has no `error` attribute).
        let (_, v) = get(
            &base,
            &format!(
                "/api/traces?service=api&tags={}",
                enc(r#"{"error":"true"}"#)
            ),
        );
        assert_eq!(trace_ids(&v), vec![a.clone()], "{v}");
        let (_, v) = get(&base, "/api/traces?service=web&tag=error:true");
        assert_eq!(trace_ids(&v), Vec::<String>::new(), "{v}");
        // An unknown parameter (a proxy's) is ignored.
        let (status, v) = get(&base, "/api/traces?service=api&colour=red");
        assert_eq!((status, trace_ids(&v)), (200, vec![a.clone()]), "{v}");
        let (_, v) = get(&base, &format!("/api/traces?traceID={a}&traceID={b}"));
        assert_eq!(trace_ids(&v), vec![a.clone(), b.clone()], "{v}");

        let (_, v) = get(&base, "/api/dependencies");
        assert_eq!(
            v["data"],
            json!([{ "parent": "web", "child": "api", "callCount": 1 }]),
            "{v}"
        );

        // Errors in Jaeger's envelope.
        let (status, v) = get(&base, &format!("/api/traces/{}", "cd".repeat(16)));
        assert_eq!(status, 404);
        assert_eq!(v["errors"][0]["msg"], "trace not found", "{v}");
        for (path, want) in [
            (
                "/api/traces?service=web&tags=%7Bnot-json".to_string(),
                "JSON object",
            ),
            (
                "/api/traces?service=web&minDuration=fast".to_string(),
                "not a duration",
            ),
            (
                "/api/traces?service=web&start=10&end=5".to_string(),
                "after",
            ),
            ("/api/traces?tag=nocolon".to_string(), "key:value"),
            ("/api/traces/xyz".to_string(), "hex"),
            ("/api/operations".to_string(), "service is required"),
        ] {
            let (status, v) = get(&base, &path);
            assert_eq!(status, 400, "{path}: {v}");
            assert!(
                v["errors"][0]["msg"].as_str().unwrap_or("").contains(want),
                "{path}: {v}"
            );
        }
    }
    // api_v3.
    let v3 = format!("http://{}", skein.ports.jaeger);
    let (status, v) = get(&v3, "/api/v3/services");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["services"], json!(["api", "web"]), "{v}");
    let (_, v) = get(&v3, "/api/v3/operations?service=api&spanKind=server");
    assert_eq!(
        v["operations"],
        json!([{ "name": "query", "spanKind": "server" }]),
        "{v}"
    );
    let (status, v) = get(&v3, &format!("/api/v3/traces/{a}"));
    assert_eq!(status, 200, "{v}");
    let spans: usize = v["result"]["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
        .map(|ss| ss["spans"].as_array().unwrap().len())
        .sum();
    assert_eq!(spans, 2, "{v}");
    let since = chrono_like(t0 - 10_000_000_000);
    let attrs = enc(r#"{"http.status_code":"500"}"#);
    let (status, v) = get(
        &v3,
        &format!(
            "/api/v3/traces?query.serviceName=api&query.attributes={attrs}&query.startTimeMin={since}"
        ),
    );
    assert_eq!(status, 200, "{v}");
    assert!(
        v.to_string().contains(&a) && !v.to_string().contains(&b),
        "{v}"
    );
    // Without a service, snake_case aliases, a duration bound.
    let (status, v) = get(&v3, "/api/v3/traces?query.duration_min=50ms");
    assert_eq!(status, 200, "{v}");
    assert!(
        v.to_string().contains(&a) && !v.to_string().contains(&b),
        "{v}"
    );
    let (status, v) = get(&v3, "/api/v3/traces?query.serviceName=nobody");
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["httpCode"], 404, "{v}");

    // Trace summaries: the same search, one summary per trace, newest first.
    let (status, v) = get(
        &v3,
        &format!("/api/v3/trace-summaries?query.startTimeMin={since}"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["summaries"][0],
        json!({
            "traceId": b, "rootServiceName": "web", "rootOperationName": "GET /health",
            "minStartTimeUnixNano": (t0 + 1_000_000_000).to_string(),
            "maxEndTimeUnixNano": (t0 + 1_010_000_000).to_string(),
            "spanCount": 1, "errorSpanCount": 0, "orphanSpanCount": 0,
            "services": [{ "name": "web", "spanCount": 1, "errorSpanCount": 0 }],
        }),
        "{v}"
    );
    assert_eq!(
        v["summaries"][1],
        json!({
            "traceId": a, "rootServiceName": "web", "rootOperationName": "GET /",
            "minStartTimeUnixNano": t0.to_string(),
            "maxEndTimeUnixNano": (t0 + 100_000_000).to_string(),
            "spanCount": 2, "errorSpanCount": 1, "orphanSpanCount": 0,
            "services": [
                { "name": "api", "spanCount": 1, "errorSpanCount": 1 },
                { "name": "web", "spanCount": 1, "errorSpanCount": 0 },
            ],
        }),
        "{v}"
    );
    assert_eq!(v["summaries"].as_array().unwrap().len(), 2, "{v}");
    let (_, v) = get(
        &v3,
        "/api/v3/trace-summaries?query.serviceName=api&query.pagination.pageSize=1",
    );
    assert_eq!(v["summaries"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["summaries"][0]["traceId"], a, "{v}");
    let (status, v) = get(&v3, "/api/v3/trace-summaries?query.serviceName=nobody");
    assert_eq!((status, &v["summaries"]), (200, &json!([])), "{v}");
    for (path, want) in [
        ("/api/v3/traces?query.startTimeMin=yesterday", "RFC 3339"),
        ("/api/v3/traces?query.durationMin=slow", "not a duration"),
        ("/api/v3/traces?query.attributes=%7Bx", "JSON object"),
        ("/api/v3/traces/nothex", "hex"),
        ("/api/v3/operations", "service is required"),
        (
            "/api/v3/trace-summaries?query.pagination.pageToken=abc",
            "not supported",
        ),
        (
            "/api/v3/trace-summaries?query.pagination.pageSize=0",
            "out of range",
        ),
        (
            "/api/v3/trace-summaries?query.pagination.pageSize=5&query.searchDepth=5",
            "exclude each other",
        ),
        (
            "/api/v3/traces?query.pagination.pageSize=5",
            "not paginated",
        ),
    ] {
        let (status, v) = get(&v3, path);
        assert_eq!(status, 400, "{path}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap_or("").contains(want),
            "{path}: {v}"
        );
    }

    // Tenants are isolated here too.
    let resp = common::client()
        .get(format!("http://{}/api/services", skein.ports.jaeger))
        .header("X-Scope-OrgID", "other")
        .send()
        .and_then(reqwest::blocking::Response::error_for_status)
        .unwrap();
    let v: Value = resp.json().unwrap();
    assert_eq!(v["data"], json!([]), "{v}");
}

/// Array and kvlist attributes (of the span, its resource, an event) have no Jaeger tag type:
/// the v1 API writes them as JSON text in string tags, as the OpenTelemetry→Jaeger
/// translation does; api_v3 answers OTLP, where they stay structured.
#[test]
fn jaeger_v1_structured_attributes_are_json_text() {
    let dir = tempfile::tempdir().unwrap();
    let skein = Skein::start(dir.path(), &Options::default());
    let t0 = now_ns() - 60_000_000_000;
    let c = "c".repeat(32);
    let s = |v: &str| json!({ "stringValue": v });
    let list = |values: Value| json!({ "arrayValue": { "values": values } });
    let map = |values: Value| json!({ "kvlistValue": { "values": values } });
    let attrs = json!([
        { "key": "letters", "value": list(json!([s("a"), s("b")])) },
        { "key": "mixed", "value": list(json!([
            { "intValue": "1" }, { "doubleValue": 2.5 }, { "doubleValue": 3 },
            { "boolValue": true }, s("q\"uote"), { "bytesValue": "AQI=" }, list(json!([])),
        ])) },
        { "key": "http.request.header", "value": map(json!([
            { "key": "x-b", "value": list(json!([s("2")])) },
            { "key": "x-a", "value": s("1") },
            { "key": "nested", "value": map(json!([{ "key": "n", "value": { "intValue": "-3" } }])) },
        ])) },
        { "key": "raw", "value": { "bytesValue": "AQI=" } },
        { "key": "plain", "value": s("text") },
    ]);
    let mut sp = json_api::span(&c, "c000000000000001", "", "op", 2, t0, 10, attrs, false);
    sp["events"] = json!([{
        "timeUnixNano": (t0 + 1000).to_string(), "name": "batch",
        "attributes": [{ "key": "ids", "value": list(json!([{ "intValue": "7" }, { "intValue": "8" }])) }],
    }]);
    sp["links"] = json!([{
        "traceId": "d".repeat(32), "spanId": "d000000000000001",
        "attributes": [{ "key": "why", "value": list(json!([s("retry")])) }],
    }]);
    let resource = json!([
        { "key": "process.command_args", "value": list(json!([s("run"), s("--fast")])) },
        { "key": "host.name", "value": s("h1") },
    ]);
    json_api::send(
        &skein,
        &json_api::request("shop", resource, json!({ "name": "lib" }), vec![sp]),
    );

    let tag = |k: &str, v: &str| json!({ "key": k, "type": "string", "value": v });
    for base in [
        format!("http://{}", skein.ports.jaeger),
        format!("http://{}/jaeger", skein.ports.http),
    ] {
        for path in [
            format!("/api/traces/{c}"),
            format!("/api/traces?traceID={c}"),
            "/api/traces?service=shop".to_string(),
        ] {
            let (status, v) = get(&base, &path);
            assert_eq!(status, 200, "{path}: {v}");
            let trace = &v["data"][0];
            assert_eq!(trace["traceID"], c, "{path}: {v}");
            let span = &trace["spans"][0];
            let tags = span["tags"].as_array().unwrap();
            for want in [
                tag("letters", r#"["a","b"]"#),
                tag("mixed", r#"[1,2.5,3,true,"q\"uote","AQI=",[]]"#),
                tag(
                    "http.request.header",
                    r#"{"nested":{"n":-3},"x-a":"1","x-b":["2"]}"#,
                ),
                json!({ "key": "raw", "type": "binary", "value": "AQI=" }),
                tag("plain", "text"),
            ] {
                assert!(tags.contains(&want), "{path}: want {want} in {tags:?}");
            }
            // The text is JSON that reads back to the attribute.
            let letters = tags.iter().find(|t| t["key"] == "letters").unwrap();
            let parsed: Value = serde_json::from_str(letters["value"].as_str().unwrap()).unwrap();
            assert_eq!(parsed, json!(["a", "b"]));
            assert_eq!(
                span["logs"][0]["fields"],
                json!([tag("event", "batch"), tag("ids", "[7,8]")]),
                "{path}"
            );
            // Jaeger's references have no attributes: the link is a FOLLOWS_FROM reference.
            assert_eq!(
                span["references"],
                json!([{ "refType": "FOLLOWS_FROM", "traceID": "d".repeat(32), "spanID": "d000000000000001" }]),
                "{path}"
            );
            let pid = span["processID"].as_str().unwrap();
            assert_eq!(
                trace["processes"][pid],
                json!({ "serviceName": "shop", "tags": [
                    tag("process.command_args", r#"["run","--fast"]"#),
                    tag("host.name", "h1"),
                ] }),
                "{path}"
            );
        }
    }

    // api_v3 answers OTLP: the attributes keep their structure.
    let (status, v) = get(
        &format!("http://{}", skein.ports.jaeger),
        &format!("/api/v3/traces/{c}"),
    );
    assert_eq!(status, 200, "{v}");
    let rs = &v["result"]["resourceSpans"][0];
    let span = &rs["scopeSpans"][0]["spans"][0];
    let attr = |list: &Value, key: &str| -> Value {
        list.as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        attr(&span["attributes"], "letters"),
        list(json!([s("a"), s("b")])),
        "{v}"
    );
    assert_eq!(
        attr(&rs["resource"]["attributes"], "process.command_args"),
        list(json!([s("run"), s("--fast")])),
        "{v}"
    );
}

/// RFC 3339 (UTC, seconds) for a time in ns since the epoch, without a date library.
fn chrono_like(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
