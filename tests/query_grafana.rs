//! The Grafana contract: the requests the current Grafana Tempo data source sends, in their
//! exact shapes (search builder and TraceQL editor queries with `q`, `limit`, `spss`, `start`
//! and `end` in seconds; tag and value look-ups with the parameters Grafana's resource proxy
//! adds; intrinsics asked unscoped; trace by ID as protobuf), each answer decoded strictly
//! against message definitions written from Tempo's documented protocol
//! (`common::tempo_messages`): an unknown field fails the test, as it fails Grafana.

use crate::common;

use std::time::{Duration, Instant};

use common::json_api::{self, enc, send};
use common::otlp::now_nanos;
use common::tempo_messages::{
    AnyValue, BuildInfo, SearchResponse, SearchTagValuesV2Response, SearchTagsV2Response, TagValue,
    TraceByIdResponse,
};
use common::{Options, Skein};
use prost::Message;
use serde_json::{Value, json};

struct Grafana<'a> {
    skein: &'a Skein,
}

impl Grafana<'_> {
    /// `GET path` as Grafana's backend sends it; the status and the body.
    fn get(&self, path_and_query: &str, accept: &str) -> (u16, Vec<u8>) {
        let url = format!("http://{}{path_and_query}", self.skein.ports.http);
        let resp = common::client()
            .get(&url)
            .header("Accept", accept)
            .header("User-Agent", "Grafana/12.2.0")
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.bytes().unwrap().to_vec())
    }

    fn json<T: serde::de::DeserializeOwned>(&self, path_and_query: &str) -> T {
        let (status, body) = self.get(path_and_query, "application/json");
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "GET {path_and_query}: {text}");
        serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!("GET {path_and_query} does not decode strictly: {e}\n{text}")
        })
    }

    /// A search as the data source sends it: `q`, `limit`, `spss`, and the range in seconds.
    fn search(&self, q: &str, range: (u64, u64)) -> SearchResponse {
        self.json(&format!(
            "/api/search?q={}&limit=20&spss=3&start={}&end={}",
            enc(q),
            range.0,
            range.1
        ))
    }
}

fn kv(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

/// Three traces of a small shop, one minute ago, one second apart:
/// - `a…`: web `GET /cart` (server) → api `SELECT cart` (client, db.system=postgresql);
/// - `b…`: web `POST /checkout` (server, status error, http.status_code 500) → api
///   `charge` (client) → payments `charge` (server, error);
/// - `c…`: api `GET /health` (server), alone.
fn load(skein: &Skein) -> (u64, [String; 3]) {
    let t0 = now_nanos() - 60_000_000_000;
    let ids = ["a".repeat(32), "b".repeat(32), "c".repeat(32)];
    let span = |trace: &str,
                id: &str,
                parent: &str,
                name: &str,
                kind: i32,
                start: u64,
                ms: u64,
                attrs: Value,
                error: bool| {
        json_api::span(trace, id, parent, name, kind, start, ms, attrs, error)
    };
    let req = |svc: &str, spans: Vec<Value>| {
        json_api::request(
            svc,
            json!([kv(
                "deployment.environment",
                json!({ "stringValue": "prod" })
            )]),
            json!({ "name": "shop", "version": "1.0" }),
            spans,
        )
    };
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    send(
        skein,
        &req(
            "web",
            vec![
                span(
                    a,
                    "a000000000000001",
                    "",
                    "GET /cart",
                    2,
                    t0,
                    120,
                    json!([
                        kv("http.request.method", json!({ "stringValue": "GET" })),
                        kv("http.route", json!({ "stringValue": "/cart" })),
                        kv("http.response.status_code", json!({ "intValue": "200" })),
                    ]),
                    false,
                ),
                span(
                    b,
                    "b000000000000001",
                    "",
                    "POST /checkout",
                    2,
                    t0 + 1_000_000_000,
                    900,
                    json!([
                        kv("http.request.method", json!({ "stringValue": "POST" })),
                        kv("http.route", json!({ "stringValue": "/checkout" })),
                        kv("http.response.status_code", json!({ "intValue": "500" })),
                    ]),
                    true,
                ),
            ],
        ),
    );
    send(
        skein,
        &req(
            "api",
            vec![
                span(
                    a,
                    "a000000000000002",
                    "a000000000000001",
                    "SELECT cart",
                    3,
                    t0 + 10_000_000,
                    40,
                    json!([kv("db.system", json!({ "stringValue": "postgresql" })),]),
                    false,
                ),
                span(
                    b,
                    "b000000000000002",
                    "b000000000000001",
                    "charge",
                    3,
                    t0 + 1_050_000_000,
                    700,
                    json!([]),
                    false,
                ),
                span(
                    c,
                    "c000000000000001",
                    "",
                    "GET /health",
                    2,
                    t0 + 2_000_000_000,
                    2,
                    json!([kv("http.route", json!({ "stringValue": "/health" })),]),
                    false,
                ),
            ],
        ),
    );
    send(
        skein,
        &req(
            "payments",
            vec![span(
                b,
                "b000000000000003",
                "b000000000000002",
                "charge",
                2,
                t0 + 1_100_000_000,
                600,
                json!([kv("payment.amount", json!({ "doubleValue": 12.5 })),]),
                true,
            )],
        ),
    );
    (t0, ids)
}

fn trace_ids(r: &SearchResponse) -> Vec<String> {
    r.traces.iter().map(|t| t.trace_id.clone()).collect()
}

fn value_strings(r: &SearchTagValuesV2Response) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = r
        .tag_values
        .iter()
        .map(|TagValue { kind, value }| (kind.clone(), value.clone()))
        .collect();
    v.sort();
    v
}

#[test]
fn grafana_tempo_data_source_contract() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        ingester: "trace_idle_period = \"200ms\"\nmax_block_duration = \"300ms\"\ncut_interval = \"100ms\"\n\
                   complete_block_timeout = \"1s\"\n"
            .into(),
        extra: "[querier]\nblock_list_refresh = \"300ms\"\n".into(),
        ..Options::default()
    };
    let skein = Skein::start(dir.path(), &opts);
    let g = Grafana { skein: &skein };
    let (t0, [a, b, c]) = load(&skein);
    let range = (t0 / 1_000_000_000 - 60, t0 / 1_000_000_000 + 120);

    // The connection test and the version probe.
    let (status, body) = g.get("/api/echo", "*/*");
    assert_eq!(
        (status, String::from_utf8_lossy(&body).trim()),
        (200, "echo")
    );
    let info: BuildInfo = g.json("/api/status/buildinfo");
    let major: u32 = info
        .version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("version {:?} is not semver", info.version));
    assert!(
        major >= 2,
        "Grafana enables TraceQL search from Tempo 2: {}",
        info.version
    );

    // Search builder: the filters Grafana's builder writes (no spaces around the operator),
    // whether the data is still in the ingester or already in blocks.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rounds = 0;
    loop {
        let r = g.search(
            "{resource.service.name=\"web\" && span.http.route=\"/cart\"}",
            range,
        );
        assert_eq!(trace_ids(&r), vec![a.clone()]);
        let t = &r.traces[0];
        assert_eq!(t.root_service_name, "web");
        assert_eq!(t.root_trace_name, "GET /cart");
        assert_eq!(t.duration_ms, 120);
        assert_eq!(t.start_time_unix_nano.0, i128::from(t0));
        assert_eq!(t.service_stats["web"].span_count, 1);
        assert_eq!(t.service_stats["api"].span_count, 1);
        let set = t.span_set.as_ref().expect("spanSet");
        assert_eq!(set.matched, 1);
        assert_eq!(set.spans[0].span_id, "a000000000000001");
        assert_eq!(set.spans[0].name, "GET /cart");
        assert_eq!(set.spans[0].duration_nanos.0, 120_000_000);
        let attrs: Vec<(&str, &AnyValue)> = set.spans[0]
            .attributes
            .iter()
            .filter_map(|kv| Some((kv.key.as_str(), kv.value.as_ref()?)))
            .collect();
        assert!(
            attrs.contains(&("http.route", &AnyValue::StringValue("/cart".into()))),
            "the span shows the attributes the query names: {attrs:?}"
        );
        assert_eq!(t.span_sets.len(), 1);
        rounds += 1;
        let flushed = skein
            .metrics()
            .contains("skein_ingester_blocks_flushed_total")
            && !skein
                .metrics()
                .contains("skein_ingester_blocks_flushed_total 0");
        if flushed && rounds > 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no block written within 30 s");
        std::thread::sleep(Duration::from_millis(300));
    }

    let builder: &[(&str, &[&String])] = &[
        ("{resource.service.name=\"api\"}", &[&c, &b, &a]),
        (
            "{resource.service.name=~\"web|payments\" && status=error}",
            &[&b],
        ),
        ("{name=\"charge\" && kind=server}", &[&b]),
        ("{span.http.response.status_code>=500}", &[&b]),
        ("{duration>500ms}", &[&b]),
        (
            "{traceDuration>100ms && resource.service.name=\"api\"}",
            &[&b, &a],
        ),
        ("{span.db.system=\"postgresql\"}", &[&a]),
        (
            "{resource.deployment.environment=\"prod\" && name=\"GET /health\"}",
            &[&c],
        ),
        ("{status=error && resource.service.name!=\"web\"}", &[&b]),
        ("{}", &[&c, &b, &a]),
    ];
    for (q, want) in builder {
        let r = g.search(q, range);
        let want: Vec<String> = want.iter().map(|s| (*s).clone()).collect();
        assert_eq!(trace_ids(&r), want, "{q}");
    }

    // TraceQL editor: structural operators and pipelines; spss caps the spans shown.
    let r = g.search(
        "{resource.service.name=\"web\"} >> {resource.service.name=\"payments\"}",
        range,
    );
    assert_eq!(trace_ids(&r), vec![b.clone()]);
    assert_eq!(
        r.traces[0].span_sets[0].spans[0].span_id,
        "b000000000000003"
    );
    let r = g.search("{ } | count() > 2", range);
    assert_eq!(trace_ids(&r), vec![b.clone()]);
    assert_eq!(r.traces[0].span_sets[0].matched, 3);
    let (status, body) = g.get(
        &format!(
            "/api/search?q={}&limit=20&spss=1&start={}&end={}",
            enc("{}"),
            range.0,
            range.1
        ),
        "application/json",
    );
    assert_eq!(status, 200);
    let r: SearchResponse = serde_json::from_slice(&body).unwrap();
    let b_meta = r.traces.iter().find(|t| t.trace_id == b).unwrap();
    assert_eq!(b_meta.span_sets[0].spans.len(), 1, "spss=1 shows one span");
    assert_eq!(b_meta.span_sets[0].matched, 3);
    let r = g.search("{ } | by(resource.service.name) | count() > 1", range);
    assert!(
        trace_ids(&r).is_empty(),
        "no service has two spans in one trace"
    );
    let r = g.search("{ kind = client } | select(span.db.system)", range);
    let a_meta = r.traces.iter().find(|t| t.trace_id == a).unwrap();
    assert!(
        a_meta.span_sets[0].spans[0]
            .attributes
            .iter()
            .any(|kv| kv.key == "db.system"),
        "select() adds the attribute"
    );

    // A syntax error is a 400 that points at the column.
    let (status, body) = g.get(
        &format!("/api/search?q={}&limit=20&spss=3", enc("{ .a = }")),
        "application/json",
    );
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("col 8"), "{text}");
    let (status, body) = g.get(
        &format!("/api/search?q={}", enc("{} | rate()")),
        "application/json",
    );
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("rate"),
        "names the unsupported construct: {text}"
    );

    // Legacy tag searches still work, translated to TraceQL.
    let r: SearchResponse = g.json(&format!(
        "/api/search?tags={}&limit=20",
        enc("service.name=web status=error")
    ));
    assert_eq!(trace_ids(&r), vec![b.clone()]);

    // Tag names, as the drop-downs ask for them through the resource proxy (which adds its own
    // parameters).
    let tags: SearchTagsV2Response = g.json(&format!(
        "/api/v2/search/tags?scope=span&start={}&end={}&limit=5000&orgId=1",
        range.0, range.1
    ));
    assert_eq!(tags.scopes.len(), 1);
    assert_eq!(tags.scopes[0].name, "span");
    for key in ["http.route", "db.system", "payment.amount"] {
        assert!(
            tags.scopes[0].tags.iter().any(|t| t == key),
            "{key}: {tags:?}"
        );
    }
    let tags: SearchTagsV2Response = g.json("/api/v2/search/tags");
    let names: Vec<&str> = tags.scopes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["span", "resource", "intrinsic"],
        "no window: the last hour"
    );
    let resource = &tags.scopes[1].tags;
    assert!(resource.iter().any(|t| t == "deployment.environment"));
    for intrinsic in ["name", "status", "kind", "duration", "statusMessage"] {
        assert!(
            tags.scopes[2].tags.iter().any(|t| t == intrinsic),
            "{intrinsic}"
        );
    }
    let tags: SearchTagsV2Response = g.json(&format!(
        "/api/v2/search/tags?scope=span&q={}&start={}&end={}",
        enc("{resource.service.name=\"api\"}"),
        range.0,
        range.1
    ));
    assert!(tags.scopes[0].tags.iter().any(|t| t == "db.system"));
    assert!(
        !tags.scopes[0].tags.iter().any(|t| t == "payment.amount"),
        "names narrowed by q: {tags:?}"
    );

    // Tag values: typed, narrowed by q, limited, intrinsics unscoped; extra proxy parameters.
    let values: SearchTagValuesV2Response = g.json(&format!(
        "/api/v2/search/tag/resource.service.name/values?q={}&tag=resource.service.name&start={}&end={}&orgId=1",
        enc("{}"),
        range.0,
        range.1
    ));
    assert_eq!(
        value_strings(&values),
        [("string", "api"), ("string", "payments"), ("string", "web")]
            .map(|(t, v)| (t.to_owned(), v.to_owned()))
    );
    let values: SearchTagValuesV2Response = g.json(&format!(
        "/api/v2/search/tag/span.http.route/values?q={}&start={}&end={}",
        enc("{resource.service.name=\"api\"}"),
        range.0,
        range.1
    ));
    assert_eq!(
        value_strings(&values),
        [("string".to_owned(), "/health".to_owned())],
        "only the api service's routes"
    );
    let values: SearchTagValuesV2Response = g.json(&format!(
        "/api/v2/search/tag/span.http.response.status_code/values?start={}&end={}",
        range.0, range.1
    ));
    assert_eq!(
        value_strings(&values),
        [("int", "200"), ("int", "500")].map(|(t, v)| (t.to_owned(), v.to_owned()))
    );
    let values: SearchTagValuesV2Response = g.json(&format!(
        "/api/v2/search/tag/resource.service.name/values?limit=2&start={}&end={}",
        range.0, range.1
    ));
    assert_eq!(values.tag_values.len(), 2, "limit is honoured");
    for (tag, want) in [
        ("status", vec!["error", "ok", "unset"]),
        ("kind", vec!["client", "server"]),
        (
            "name",
            vec![
                "GET /cart",
                "GET /health",
                "POST /checkout",
                "SELECT cart",
                "charge",
            ],
        ),
    ] {
        let values: SearchTagValuesV2Response = g.json(&format!(
            "/api/v2/search/tag/{tag}/values?q={}&start={}&end={}",
            enc("{}"),
            range.0,
            range.1
        ));
        let mut got: Vec<&str> = values.tag_values.iter().map(|v| v.value.as_str()).collect();
        got.sort_unstable();
        assert_eq!(got, want, "{tag}");
        if tag != "name" {
            assert!(
                values.tag_values.iter().all(|v| v.kind == "keyword"),
                "{tag}: {values:?}"
            );
        }
    }

    // Trace by ID, as Grafana asks for it: protobuf `TraceByIDResponse`, decoded strictly
    // (re-encoding what was decoded gives the same bytes: no field was skipped).
    let (status, body) = g.get(
        &format!("/api/v2/traces/{b}?start={}&end={}", range.0, range.1),
        "application/protobuf",
    );
    assert_eq!(status, 200);
    let decoded = TraceByIdResponse::decode(body.as_slice()).expect("TraceByIDResponse");
    assert_eq!(
        decoded.encode_to_vec(),
        body,
        "only fields TraceByIDResponse defines"
    );
    let spans: usize = decoded
        .trace
        .expect("trace")
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(spans, 3);
    let (status, _) = g.get(
        &format!("/api/v2/traces/{}", "d".repeat(32)),
        "application/protobuf",
    );
    assert_eq!(status, 404);
}
