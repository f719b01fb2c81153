//! Queries while the compactor rewrites blocks: every trace read by ID comes back whole and
//! with no span twice, before, during and after compaction.

use crate::common;
use crate::compact_support;

use std::time::{Duration, Instant};

use common::{Options, Ready, Skein};
use compact_support::*;
use skein_format::otlp::trace::v1::TracesData;

const TENANT: &str = "queried";

fn trace_by_id(skein: &Skein, id: &str) -> Result<Traces, String> {
    let resp = common::client()
        .get(format!("http://{}/api/traces/{id}", skein.ports.http))
        .header("X-Scope-OrgID", TENANT)
        .header("Accept", "application/json")
        .send()
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.bytes().map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let data: TracesData =
        serde_json::from_value(serde_json::json!({ "resourceSpans": v["batches"].clone() }))
            .map_err(|e| e.to_string())?;
    Ok(by_trace(
        skein_format::model::spans_from_otlp(data.resource_spans),
        true,
    ))
}

#[test]
fn traces_read_during_compaction_are_whole_and_have_no_span_twice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = dir.path().join("blocks");
    let expected = write_dataset(&bucket, TENANT, 7, 200, 30, Duration::from_secs(3 * 3600));
    let blocks_before = stored(&bucket, TENANT).0.live.len();
    let opts = Options {
        storage: Some(storage_section(&bucket)),
        target: Some("querier,compactor".into()),
        ready: Ready::Http,
        extra:
            "[querier]\nblock_list_refresh = \"300ms\"\n\n[compactor]\ncycle_interval = \"300ms\"\n\
                delete_grace = \"2s\"\nmax_block_spans = 2000\nmax_input_blocks = 8\n"
                .into(),
        ..Options::default()
    };
    let skein = Skein::start(dir.path(), &opts);
    let ids: Vec<&String> = expected.keys().step_by(7).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut queries, mut failures) = (0usize, Vec::new());
    // Reads that began and ended while a compaction job's journal existed: they overlapped
    // a job (its outputs being written, or its inputs being retired).
    let mut during_a_job = 0usize;
    let mut quiet_passes = 0;
    while Instant::now() < deadline && quiet_passes < 3 {
        let busy =
            !journals(&bucket).is_empty() || !stored(&bucket, TENANT).0.tombstoned.is_empty();
        for id in &ids {
            queries += 1;
            let job_before = !journals(&bucket).is_empty();
            let read = trace_by_id(&skein, id);
            if job_before && !journals(&bucket).is_empty() {
                during_a_job += 1;
            }
            match read {
                Ok(got) => {
                    let want: Traces = [((*id).clone(), expected[*id].clone())].into();
                    if let Some(d) = difference(&got, &want) {
                        failures.push(format!("trace {id}: {d}"));
                    }
                }
                Err(e) => failures.push(format!("trace {id}: {e}")),
            }
        }
        quiet_passes = if busy { 0 } else { quiet_passes + 1 };
    }
    let blocks_after = stored(&bucket, TENANT).0.live.len();
    assert!(
        failures.is_empty(),
        "{} of {queries} reads were wrong, e.g. {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(3)],
        common::tail(&skein.log(), 30)
    );
    assert!(
        blocks_after < blocks_before / 2,
        "compaction happened while querying: {blocks_before} blocks before, {blocks_after} after"
    );
    assert!(
        during_a_job > 0,
        "no read overlapped a compaction job; the test proved nothing"
    );
    println!(
        "{queries} reads ({during_a_job} while a job ran) during compaction of {blocks_before} \
         blocks into {blocks_after}"
    );
}
