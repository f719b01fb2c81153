//! The write path through the real binary: OTLP/HTTP JSON in, recent data out.

use crate::common;

use common::{Options, Skein};

#[test]
fn a_fixture_sent_over_http_json_reads_back_from_recent_data() {
    let dir = tempfile::tempdir().unwrap();
    // The fixture is from 2022: a retention long enough to accept it.
    let opts = Options {
        extra: "[compactor]\nretention = \"36500days\"\n".into(),
        ..Options::default()
    };
    let skein = Skein::start(dir.path(), &opts);
    let body = common::fixture("otlp-json/vulture-trace.json");
    let resp = common::client()
        .post(skein.otlp_http_url())
        .header("Content-Type", "application/json")
        .body(body.clone())
        .send()
        .expect("export");
    assert_eq!(resp.status().as_u16(), 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
        .as_str()
        .unwrap()
        .to_lowercase();
    let trace = skein
        .recent_trace("single-tenant", &id)
        .expect("trace is held");
    let n = |v: &serde_json::Value| -> usize {
        v["resourceSpans"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
            .map(|ss| ss["spans"].as_array().unwrap().len())
            .sum()
    };
    assert_eq!(n(&trace), n(&v));
    assert!(
        skein.recent_trace("other-tenant", &id).is_none(),
        "tenants are isolated"
    );
}
