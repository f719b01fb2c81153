//! Tenant isolation on every read route: data written as one tenant is visible to it and
//! invisible to another, on the Tempo API, the Jaeger API and the /jaeger prefix.

use crate::common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Options, Skein};
use serde_json::json;

/// Every read route, with `{id}` for the trace ID. A new route goes here.
const ROUTES: &[(&str, &str)] = &[
    ("http", "/api/traces/{id}"),
    ("http", "/api/v2/traces/{id}"),
    ("http", "/api/search"),
    ("http", "/api/search?tags=service.name%3Dsecret-svc"),
    ("http", "/api/search/tags"),
    ("http", "/api/v2/search/tags"),
    ("http", "/api/search/tag/service.name/values"),
    ("http", "/api/v2/search/tag/resource.service.name/values"),
    ("jaeger", "/api/services"),
    ("jaeger", "/api/services/secret-svc/operations"),
    ("jaeger", "/api/operations?service=secret-svc"),
    ("jaeger", "/api/traces/{id}"),
    ("jaeger", "/api/traces?service=secret-svc"),
    ("jaeger", "/api/traces?traceID={id}"),
    ("jaeger", "/api/dependencies"),
    ("jaeger", "/api/v3/services"),
    ("jaeger", "/api/v3/operations?service=secret-svc"),
    ("jaeger", "/api/v3/traces/{id}"),
    ("jaeger", "/api/v3/traces?query.serviceName=secret-svc"),
    (
        "jaeger",
        "/api/v3/trace-summaries?query.serviceName=secret-svc",
    ),
    ("http", "/jaeger/api/v3/traces/{id}"),
    ("http", "/jaeger/api/services"),
    ("http", "/jaeger/api/traces/{id}"),
    ("http", "/jaeger/api/traces?service=secret-svc"),
];

#[test]
fn no_route_shows_one_tenant_the_data_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let skein = Skein::start(dir.path(), &Options::default());
    let id = "5ec2e7".to_string() + &"0".repeat(25) + "1";
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 10_000_000_000;
    let body = json!({ "resourceSpans": [{
        "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": "secret-svc" } }] },
        "scopeSpans": [{ "spans": [
            { "traceId": id, "spanId": "0000000000000001", "name": "secret-op", "kind": 2,
              "attributes": [{ "key": "secret.key", "value": { "stringValue": "secret-value" } }],
              "startTimeUnixNano": now.to_string(), "endTimeUnixNano": (now + 1_000_000).to_string() },
            { "traceId": id, "spanId": "0000000000000002", "parentSpanId": "0000000000000001", "name": "call",
              "startTimeUnixNano": now.to_string(), "endTimeUnixNano": (now + 500_000).to_string() }
        ] }]
    }, {
        "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": "secret-db" } }] },
        "scopeSpans": [{ "spans": [
            { "traceId": id, "spanId": "0000000000000003", "parentSpanId": "0000000000000001", "name": "q",
              "startTimeUnixNano": now.to_string(), "endTimeUnixNano": (now + 200_000).to_string() }
        ] }]
    }]});
    let resp = common::client()
        .post(skein.otlp_http_url())
        .header("Content-Type", "application/json")
        .header("X-Scope-OrgID", "owner")
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    let call = |port: &str, path: &str, tenant: &str| -> (u16, String) {
        let addr = if port == "http" {
            skein.ports.http
        } else {
            skein.ports.jaeger
        };
        let resp = common::client()
            .get(format!("http://{addr}{}", path.replace("{id}", &id)))
            .header("X-Scope-OrgID", tenant)
            .send()
            .expect("query");
        let status = resp.status().as_u16();
        (status, resp.text().unwrap_or_default())
    };
    for (port, path) in ROUTES {
        // The owner sees the data: the route can leak, so the next check means something.
        let (status, body) = call(port, path, "owner");
        assert_eq!(status, 200, "{port} {path} as owner: {body}");
        assert!(
            body.contains("secret") || body.contains(&id),
            "{port} {path} as owner shows nothing: {body}"
        );
        // Another tenant sees nothing of it.
        let (status, body) = call(port, path, "intruder");
        assert!(
            status == 200 || status == 404,
            "{port} {path} as intruder: {status} {body}"
        );
        assert!(
            !body.contains("secret") && !body.contains(&id),
            "{port} {path} leaks to another tenant: {body}"
        );
    }
}
