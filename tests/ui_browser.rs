//! The web UI in a real headless Chromium: a `skein` loaded with the OTLP/JSON fixtures and
//! generated traces (one with events, an exception and a link; a broken one; a 10,000-span one;
//! one of a second tenant), then `tests/ui/ui.test.mjs` drives the browser with
//! `playwright-core` and fails this test on any failed check or console error.
//!
//! Needs `SKEIN_TEST_CHROMIUM` (a Chromium binary) and `SKEIN_TEST_NODE_MODULES` (ui/'s
//! `node_modules` with `playwright-core`), which `scripts/ui-env.sh` installs and the test
//! command sets; skipped without them unless `SKEIN_TEST_REQUIRE_EXTERNAL` is set.
//! Screenshots go to `target/ui-screenshots/`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Options, Skein};
use serde_json::{Value, json};

const CHECKOUT: &str = "c0ffee00000000000000000000000001";
const LINKED: &str = "c0ffee00000000000000000000000002";
const BROKEN: &str = "c0ffee00000000000000000000000003";
const BIG: &str = "c0ffee00000000000000000000000004";
const TENANT_B_TRACE: &str = "c0ffee00000000000000000000000005";
const MISSING: &str = "0123456789abcdef0123456789abcdef";
const LINKED_SPAN: &str = "1111000000000001";
const TENANT_B: &str = "team-b";
const BIG_SPANS: usize = 10_000;

fn tools() -> Option<(String, String)> {
    match (
        std::env::var("SKEIN_TEST_CHROMIUM"),
        std::env::var("SKEIN_TEST_NODE_MODULES"),
    ) {
        (Ok(c), Ok(m)) => Some((c, m)),
        _ => {
            assert!(
                std::env::var("SKEIN_TEST_REQUIRE_EXTERNAL").is_err(),
                "SKEIN_TEST_REQUIRE_EXTERNAL is set but SKEIN_TEST_CHROMIUM or SKEIN_TEST_NODE_MODULES is not (run scripts/ui-env.sh)"
            );
            eprintln!(
                "skipping: SKEIN_TEST_CHROMIUM / SKEIN_TEST_NODE_MODULES not set (run ./scripts/test.sh for the full suite)"
            );
            None
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

fn kv(key: &str, value: Value) -> Value {
    let v = match value {
        Value::String(s) => json!({ "stringValue": s }),
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) if n.is_i64() => json!({ "intValue": n.to_string() }),
        Value::Number(n) => json!({ "doubleValue": n }),
        other => json!({ "stringValue": other.to_string() }),
    };
    json!({ "key": key, "value": v })
}

fn attrs(pairs: &[(&str, Value)]) -> Value {
    Value::Array(pairs.iter().map(|(k, v)| kv(k, v.clone())).collect())
}

/// A span; times are ms offsets from `t0` (ns).
#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: &str,
    parent: &str,
    name: &str,
    kind: i32,
    t0: u64,
    from_ms: f64,
    to_ms: f64,
) -> Value {
    let at = |ms: f64| (t0 as i128 + (ms * 1e6) as i128).to_string();
    json!({
        "traceId": trace, "spanId": id, "parentSpanId": parent, "name": name, "kind": kind,
        "startTimeUnixNano": at(from_ms), "endTimeUnixNano": at(to_ms),
    })
}

fn with(mut span: Value, key: &str, value: Value) -> Value {
    span[key] = value;
    span
}

fn resource_spans(service: &str, extra: &[(&str, Value)], spans: Vec<Value>) -> Value {
    let mut res = vec![("service.name", json!(service))];
    res.extend(extra.iter().cloned());
    json!({
        "resource": { "attributes": attrs(&res) },
        "scopeSpans": [{ "scope": { "name": format!("{service}-instrumentation"), "version": "1.2.0" }, "spans": spans }]
    })
}

fn send(skein: &Skein, tenant: Option<&str>, body: &Value) {
    let mut req = common::client()
        .post(skein.otlp_http_url())
        .header("Content-Type", "application/json");
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let resp = req.body(body.to_string()).send().expect("export");
    assert_eq!(
        resp.status().as_u16(),
        200,
        "export answered {}",
        resp.status()
    );
}

/// The checkout trace: four services, an error with an exception event, a link to the
/// inventory trace, attributes in every scope, and one span off the critical path.
fn checkout(t0: u64) -> Value {
    let c = CHECKOUT;
    let root = with(
        span(
            c,
            "a000000000000001",
            "",
            "GET /checkout",
            2,
            t0,
            0.0,
            1200.0,
        ),
        "attributes",
        attrs(&[
            ("http.method", json!("GET")),
            ("http.route", json!("/checkout")),
        ]),
    );
    let call = span(
        c,
        "a000000000000002",
        "a000000000000001",
        "POST /api/checkout",
        3,
        t0,
        10.0,
        1150.0,
    );
    let render = span(
        c,
        "a000000000000007",
        "a000000000000001",
        "render page",
        1,
        t0,
        1150.0,
        1195.0,
    );
    let server = with(
        with(
            span(
                c,
                "a000000000000003",
                "a000000000000002",
                "POST /api/checkout",
                2,
                t0,
                20.0,
                1140.0,
            ),
            "attributes",
            attrs(&[
                ("order.id", json!("ord-4242")),
                ("customer.tier", json!("gold")),
                ("cart.items", json!(3)),
            ]),
        ),
        "links",
        json!([{ "traceId": LINKED, "spanId": LINKED_SPAN,
                 "attributes": attrs(&[("link.reason", json!("reserved-by"))]) }]),
    );
    let query = with(
        span(
            c,
            "a000000000000004",
            "a000000000000003",
            "SELECT orders",
            3,
            t0,
            30.0,
            130.0,
        ),
        "attributes",
        attrs(&[
            ("db.system", json!("postgresql")),
            ("db.statement", json!("SELECT * FROM orders WHERE id = $1")),
        ]),
    );
    let cart = span(
        c,
        "a000000000000008",
        "a000000000000003",
        "load cart",
        1,
        t0,
        40.0,
        90.0,
    );
    let charge = with(
        with(
            with(
                span(
                    c,
                    "a000000000000005",
                    "a000000000000003",
                    "charge card",
                    2,
                    t0,
                    150.0,
                    1100.0,
                ),
                "status",
                json!({ "code": 2, "message": "card declined" }),
            ),
            "events",
            json!([
                { "name": "retry", "timeUnixNano": (t0 + 500_000_000).to_string(),
                  "attributes": attrs(&[("retry.attempt", json!(2))]) },
                { "name": "exception", "timeUnixNano": (t0 + 900_000_000).to_string(),
                  "attributes": attrs(&[
                      ("exception.type", json!("PaymentDeclined")),
                      ("exception.message", json!("card declined by issuer")),
                      ("exception.stacktrace", json!("PaymentDeclined: card declined by issuer\n    at charge (payments/charge.js:42:11)\n    at handle (payments/server.js:17:5)")),
                  ]) }
            ]),
        ),
        "attributes",
        attrs(&[("payment.provider", json!("acme-pay"))]),
    );
    let bank = with(
        span(
            c,
            "a000000000000006",
            "a000000000000005",
            "call bank",
            3,
            t0,
            160.0,
            1050.0,
        ),
        "attributes",
        attrs(&[("http.status_code", json!(502))]),
    );
    json!({ "resourceSpans": [
        resource_spans("frontend", &[("host.name", json!("web-1"))], vec![root, call, render]),
        resource_spans("checkout", &[("host.name", json!("checkout-7f9c")), ("deployment.environment", json!("prod"))], vec![server, query, cart]),
        resource_spans("payments", &[], vec![charge, bank]),
    ]})
}

fn linked(t0: u64) -> Value {
    let l = LINKED;
    json!({ "resourceSpans": [resource_spans("inventory", &[], vec![
        span(l, LINKED_SPAN, "", "reserve items", 2, t0, 0.0, 80.0),
        span(l, "1111000000000002", LINKED_SPAN, "UPDATE stock", 3, t0, 5.0, 60.0),
    ])]})
}

/// Broken context: a span whose parent never arrives, a second root, a child starting
/// before its parent.
fn broken(t0: u64) -> Value {
    let b = BROKEN;
    json!({ "resourceSpans": [
        resource_spans("gateway", &[], vec![
            span(b, "b000000000000001", "", "GET /broken", 2, t0, 20.0, 300.0),
            span(b, "b000000000000003", "", "GET /second-root", 2, t0, 100.0, 200.0),
        ]),
        resource_spans("worker", &[], vec![
            span(b, "b000000000000002", "deadbeefdeadbeef", "process job", 5, t0, 50.0, 250.0),
            span(b, "b000000000000004", "b000000000000001", "early child", 1, t0, 0.0, 120.0),
        ]),
    ]})
}

/// 10,000 spans, eight children per span, eight services; sent in a few requests.
fn big(t0: u64) -> Vec<Value> {
    // (start, end, depth) of each span so far.
    let mut spans: Vec<(f64, f64, usize)> = Vec::with_capacity(BIG_SPANS);
    let mut out = Vec::new();
    let mut batch: Vec<Vec<Value>> = vec![Vec::new(); 8];
    for i in 0..BIG_SPANS {
        // Children of a span run two at a time, so calls overlap as real fan-outs do.
        let (parent, from, to, depth) = if i == 0 {
            (String::new(), 0.0, 2000.0, 0)
        } else {
            let p = (i - 1) / 8;
            let k = ((i - 1) % 8) as f64;
            let (ps, pe, pd) = spans[p];
            let step = (pe - ps) / 5.0;
            let slot = (k / 2.0).floor();
            (
                format!("{:016x}", p + 1),
                ps + step * (slot + 0.3 + (k % 2.0) * 0.2),
                ps + step * (slot + 1.0 - (k % 2.0) * 0.3),
                pd + 1,
            )
        };
        spans.push((from, to, depth));
        let mut s = span(
            BIG,
            &format!("{:016x}", i + 1),
            &parent,
            &format!("op-{}", i % 50),
            if i % 3 == 0 { 2 } else { 3 },
            t0,
            from,
            to,
        );
        s["attributes"] = attrs(&[("item.index", json!(i as i64))]);
        if i % 997 == 5 {
            s["status"] = json!({ "code": 2 });
        }
        batch[depth.min(7)].push(s);
        if batch.iter().map(Vec::len).sum::<usize>() >= 2500 || i == BIG_SPANS - 1 {
            let rs: Vec<Value> = batch
                .iter_mut()
                .enumerate()
                .filter(|(_, b)| !b.is_empty())
                .map(|(n, b)| resource_spans(&format!("big-svc-{n}"), &[], std::mem::take(b)))
                .collect();
            out.push(json!({ "resourceSpans": rs }));
        }
    }
    out
}

/// Moves every `*TimeUnixNano` of a fixture by `shift` ns, so its trace falls into the UI's
/// default time range.
fn shift_times(v: &mut Value, shift: i128) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if k.ends_with("TimeUnixNano") {
                    let n: i128 = match x {
                        Value::String(s) => s.parse().expect("fixture time"),
                        Value::Number(n) => n.as_i64().expect("fixture time").into(),
                        _ => continue,
                    };
                    *x = Value::String((n + shift).to_string());
                } else {
                    shift_times(x, shift);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| shift_times(x, shift)),
        _ => {}
    }
}

fn min_start(v: &Value) -> Option<i128> {
    match v {
        Value::Object(map) => map
            .iter()
            .filter_map(|(k, x)| {
                if k == "startTimeUnixNano" {
                    x.as_str().and_then(|s| s.parse().ok())
                } else {
                    min_start(x)
                }
            })
            .min(),
        Value::Array(a) => a.iter().filter_map(min_start).min(),
        _ => None,
    }
}

fn first_trace_id(v: &Value) -> String {
    v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
        .as_str()
        .expect("fixture trace id")
        .to_lowercase()
}

/// Loads the fixtures, shifted into the last 30 minutes; returns their trace IDs.
fn load_fixtures(skein: &Skein, now: u64) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/otlp-json");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    // Most fixture files are variants of one recorded trace (same IDs, different attributes):
    // each gets trace IDs of its own, so each is one whole trace in the UI.
    let mut ids = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let text = std::fs::read_to_string(path).expect("read fixture");
        let mut v: Value = serde_json::from_str(&text).expect("fixture json");
        let start = min_start(&v).expect("fixture has spans");
        let target = now as i128 - 30 * 60 * 1_000_000_000 + i as i128 * 60 * 1_000_000_000;
        shift_times(&mut v, target - start);
        for rs in v["resourceSpans"].as_array_mut().expect("resourceSpans") {
            for ss in rs["scopeSpans"].as_array_mut().expect("scopeSpans") {
                for sp in ss["spans"].as_array_mut().expect("spans") {
                    let old = sp["traceId"].as_str().expect("traceId").to_lowercase();
                    sp["traceId"] =
                        json!(format!("{:08x}{}", 0xf1f1_0000_u32 + i as u32, &old[8..]));
                }
            }
        }
        send(skein, None, &v);
        ids.push(first_trace_id(&v));
    }
    ids
}

fn get_json(skein: &Skein, tenant: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = common::client().get(format!("http://{}{path}", skein.ports.http));
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let resp = req.send().expect("query");
    let status = resp.status().as_u16();
    let body = resp.json().unwrap_or(Value::Null);
    (status, body)
}

fn span_count(v: &Value) -> usize {
    v["trace"]["resourceSpans"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
                .map(|s| s["spans"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0)
}

/// Waits (at most 60 s) until every trace is searchable and whole.
fn wait_searchable(skein: &Skein, expected: &[(Option<&str>, &str, usize)]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut missing = Vec::new();
        for (tenant, id, spans) in expected {
            let (status, v) = get_json(skein, *tenant, &format!("/api/v2/traces/{id}"));
            if status != 200 || span_count(&v) < *spans {
                missing.push(format!("{id}: {status}, {} spans", span_count(&v)));
            }
        }
        if missing.is_empty() {
            return;
        }
        last = missing.join("; ");
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "traces not readable within 60 s: {last}\n{}",
        common::tail(&skein.log(), 30)
    );
}

#[test]
fn web_ui_in_headless_chromium() {
    let Some((chromium, node_modules)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let skein = Skein::start(dir.path(), &Options::default());
    let now = now_ns();

    let fixtures = load_fixtures(&skein, now);
    send(&skein, None, &checkout(now - 2 * 60 * 1_000_000_000));
    send(&skein, None, &linked(now - 5 * 60 * 1_000_000_000));
    send(&skein, None, &broken(now - 3 * 60 * 1_000_000_000));
    for body in big(now - 4 * 60 * 1_000_000_000) {
        send(&skein, None, &body);
    }
    let tenant_b = json!({ "resourceSpans": [resource_spans("billing-b", &[], vec![
        span(TENANT_B_TRACE, "e000000000000001", "", "create invoice", 2, now - 60_000_000_000, 0.0, 40.0),
    ])]});
    send(&skein, Some(TENANT_B), &tenant_b);

    let mut expected: Vec<(Option<&str>, &str, usize)> = vec![
        (None, CHECKOUT, 8),
        (None, LINKED, 2),
        (None, BROKEN, 4),
        (None, BIG, BIG_SPANS),
        (Some(TENANT_B), TENANT_B_TRACE, 1),
    ];
    expected.extend(fixtures.iter().map(|id| (None, id.as_str(), 1)));
    wait_searchable(&skein, &expected);

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let screenshots = root.join("target/ui-screenshots");
    std::fs::create_dir_all(&screenshots).expect("screenshot dir");
    let data = json!({
        "url": format!("http://{}", skein.ports.http),
        "traces": {
            "checkout": CHECKOUT, "linked": LINKED, "broken": BROKEN, "big": BIG,
            "tenantB": TENANT_B_TRACE, "missing": MISSING,
        },
        "bigSpans": BIG_SPANS,
        // When the data was made: the checkout trace started 2 minutes before, inventory 5.
        "loadedAtMs": now / 1_000_000,
        "linkedSpan": LINKED_SPAN,
        "tenantB": TENANT_B,
        "fixtures": fixtures,
        "screenshots": screenshots,
    });
    let data_file = dir.path().join("ui-test-data.json");
    std::fs::write(&data_file, data.to_string()).expect("write test data");

    let node = std::env::var("SKEIN_TEST_NODE").unwrap_or_else(|_| "node".to_owned());
    let out_path = dir.path().join("node.log");
    let out = std::fs::File::create(&out_path).expect("node log");
    let mut child = Command::new(&node)
        .arg(root.join("tests/ui/ui.test.mjs"))
        .env("SKEIN_UI_DATA", &data_file)
        .env("SKEIN_TEST_CHROMIUM", &chromium)
        .env("SKEIN_TEST_NODE_MODULES", &node_modules)
        .env("SKEIN_UI_PROFILE", dir.path().join("chromium-profile"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup log"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("start {node}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&out_path).unwrap_or_default();
    println!("{log}");
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "browser tests failed ({s}):\n{log}\nskein log:\n{}",
            common::tail(&skein.log(), 30)
        ),
        None => panic!("browser tests did not finish within 300 s:\n{log}"),
    }
}

/// The UI's pure modules (span tree, critical path, warnings; parsing and formatting; TraceQL
/// quoting, the form's query, error positions and autocomplete contexts) under node's test
/// runner.
#[test]
fn web_ui_unit_tests() {
    if tools().is_none() {
        return;
    }
    let node = std::env::var("SKEIN_TEST_NODE").unwrap_or_else(|_| "node".to_owned());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&node)
        .arg("--test")
        .arg(root.join("tests/ui/model.test.mjs"))
        .arg(root.join("tests/ui/util.test.mjs"))
        .arg(root.join("tests/ui/traceql.test.mjs"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("start {node}: {e}"));
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ui unit tests failed:\n{log}");
    assert!(log.contains("# fail 0"), "no test result in:\n{log}");
}
