//! Retention overrides while Skein runs: a change of the overrides file and a `PUT` through the
//! admin API both take effect without a restart; the admin API refuses requests without the
//! token and invalid values; the ingester refuses spans older than the tenant's retention.

use crate::common;
use crate::compact_support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::blocks::metric;
use common::{Options, Skein};
use compact_support::*;

const TOKEN: &str = "let-me-in";

fn admin(
    skein: &Skein,
    method: &str,
    tenant: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let url = format!(
        "http://{}/api/admin/tenants/{tenant}/overrides",
        skein.ports.http
    );
    let http = common::client();
    let req = match (method, token) {
        ("GET", Some(t)) => http
            .get(&url)
            .header("Authorization", format!("Bearer {t}")),
        ("GET", None) => http.get(&url),
        (_, Some(t)) => http
            .put(&url)
            .header("Authorization", format!("Bearer {t}"))
            .header("Content-Type", "application/json")
            .body(body.to_owned()),
        (_, None) => http.put(&url).body(body.to_owned()),
    };
    let resp = req.send().expect("call the admin api");
    let status = resp.status().as_u16();
    (status, resp.text().unwrap_or_default())
}

fn visible_blocks(bucket: &std::path::Path, tenant: &str) -> usize {
    stored(bucket, tenant).0.live.len()
}

/// Waits (at most 30 s) until `tenant` has `n` visible blocks.
fn wait_for_blocks(skein: &Skein, bucket: &std::path::Path, tenant: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while visible_blocks(bucket, tenant) != n {
        assert!(
            Instant::now() < deadline,
            "{tenant}: {} blocks, want {n}\n{}",
            visible_blocks(bucket, tenant),
            common::tail(&skein.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn overrides_from_the_file_and_the_admin_api_apply_without_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = dir.path().join("blocks");
    let file = dir.path().join("overrides.json");
    std::fs::write(&file, r#"{"tenants": {}}"#).expect("write overrides");
    // Each tenant: one block three days old, one an hour old (different windows: they are
    // not merged).
    for t in ["by-file", "by-api"] {
        write_dataset(&bucket, t, 1, 5, 1, Duration::from_secs(3 * 86_400));
        write_dataset(&bucket, t, 2, 5, 1, Duration::from_secs(3600));
    }
    let opts = Options {
        extra: format!(
            "[querier]\nadmin_token = \"{TOKEN}\"\n\n[compactor]\ncycle_interval = \"300ms\"\n\
             overrides_file = \"{}\"\noverrides_refresh = \"200ms\"\ndelete_grace = \"1s\"\n",
            file.display()
        ),
        ..Options::default()
    };
    let skein = Skein::start(dir.path(), &opts);
    // A few cycles with the default retention (14 days): everything stays.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(visible_blocks(&bucket, "by-file"), 2);
    assert_eq!(visible_blocks(&bucket, "by-api"), 2);

    // The admin API: no token, a wrong one, invalid values.
    assert_eq!(admin(&skein, "GET", "by-api", None, "").0, 401);
    assert_eq!(admin(&skein, "GET", "by-api", Some("guess"), "").0, 403);
    assert_eq!(
        admin(
            &skein,
            "PUT",
            "by-api",
            Some("guess"),
            r#"{"retention":"2d"}"#
        )
        .0,
        403
    );
    for bad in [
        r#"{"retention":"-1d"}"#,
        r#"{"retention":"soon"}"#,
        r#"{"retention":7}"#,
        r#"{"retention":"9999999d"}"#,
        r#"{"retention_days":2}"#,
        "not json",
    ] {
        let (status, body) = admin(&skein, "PUT", "by-api", Some(TOKEN), bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("\"error\""), "{bad}: {body}");
    }
    assert_eq!(admin(&skein, "GET", "__skein", Some(TOKEN), "").0, 400);
    assert_eq!(
        admin(&skein, "GET", "by-api", Some(TOKEN), ""),
        (200, "{}".to_owned())
    );
    assert_eq!(
        visible_blocks(&bucket, "by-api"),
        2,
        "invalid values changed nothing"
    );

    // A valid PUT: the old block goes, without a restart.
    let (status, body) = admin(
        &skein,
        "PUT",
        "by-api",
        Some(TOKEN),
        r#"{"retention":"2d"}"#,
    );
    assert_eq!((status, body.as_str()), (200, r#"{"retention":"2d"}"#));
    assert_eq!(
        admin(&skein, "GET", "by-api", Some(TOKEN), ""),
        (200, r#"{"retention":"2d"}"#.to_owned())
    );
    wait_for_blocks(&skein, &bucket, "by-api", 1);
    assert_eq!(visible_blocks(&bucket, "by-file"), 2);

    // The file changes: it applies too.
    std::fs::write(&file, r#"{"tenants": {"by-file": {"retention": "36h"}}}"#)
        .expect("write overrides");
    wait_for_blocks(&skein, &bucket, "by-file", 1);

    // The ingester refuses spans older than the tenant's retention, and counts them.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let span = |id: &str, end: u64| {
        format!(
            r#"{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"{id}","name":"s","startTimeUnixNano":"{}","endTimeUnixNano":"{end}"}}"#,
            end - 1_000_000
        )
    };
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{},{}]}}]}}]}}"#,
        span("eee19b7ec3c1b174", now - 3 * 86_400 * 1_000_000_000),
        span("eee19b7ec3c1b175", now - 1_000_000_000)
    );
    let resp = common::client()
        .post(skein.otlp_http_url())
        .header("Content-Type", "application/json")
        .header("X-Scope-OrgID", "by-api")
        .body(body)
        .send()
        .expect("export");
    assert_eq!(resp.status().as_u16(), 200);
    let answer: serde_json::Value = resp.json().expect("json");
    let partial = &answer["partialSuccess"];
    // 64-bit integers may be JSON strings or numbers.
    assert_eq!(
        partial["rejectedSpans"].to_string().trim_matches('"'),
        "1",
        "{answer}"
    );
    assert!(
        partial["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("older than the tenant's retention")),
        "{answer}"
    );
    let refused = metric(
        &skein.metrics(),
        "skein_ingester_spans_refused_total{tenant=\"by-api\",reason=\"too_old\"}",
    );
    assert_eq!(refused, 1.0);
}
