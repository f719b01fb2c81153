//! The OTLP/gRPC receiver of the real binary, through a tonic client: what is accepted reads
//! back from recent data, and every refusal carries the status code the OTLP specification
//! gives it (INVALID_ARGUMENT for bad data, RESOURCE_EXHAUSTED with RetryInfo when a retry
//! will help and without it when it will not).
//!
//! All cases run against one process, each on its own (a failing case does not hide the
//! others); the test fails at the end naming every case that failed.

use crate::common;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::otlp::{self, hex, request, span_id, span_names, spans, string_attr};
use common::{Options, Skein};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// The default tenant's limit, so the receiver's: tonic itself refuses messages above twice
/// the largest tenant limit.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
const SMALL: &str = "grpc-small";
const SMALL_MAX_REQUEST_BYTES: usize = 2000;
const LIMITED: &str = "grpc-limited";

fn options() -> Options {
    Options {
        extra: format!(
            "[ingester.limits.defaults]\nmax_request_bytes = {MAX_REQUEST_BYTES}\n\n\
             [ingester.limits.overrides.{SMALL}]\nmax_request_bytes = {SMALL_MAX_REQUEST_BYTES}\n\n\
             [ingester.limits.overrides.{LIMITED}]\n\
             ingestion_rate_bytes = 1000\ningestion_burst_bytes = 3000\n"
        ),
        ..Options::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// A trace ID no other request of this test uses.
fn fresh_trace_id() -> Vec<u8> {
    otlp::fresh_trace_id([0x67, 0x72, 0x70, 0x63], 0x33)
}

/// A span with a `pad` attribute of `pad` bytes, to give requests a size.
fn span(trace_id: &[u8], span_id: &[u8], name: &str, pad: usize) -> Span {
    otlp::padded_span(trace_id, span_id, name, pad, 3, 2_000_000)
}

fn encoded_len(req: &ExportTraceServiceRequest) -> usize {
    prost::Message::encoded_len(req)
}

// ---------------------------------------------------------------------------------------------
// The client.

/// Runs one case's async part on a runtime of its own, bounded to a minute.
fn run<F: Future<Output = ()>>(case: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), case)
            .await
            .expect("the case finished within 60 s");
    });
}

async fn client(
    skein: &Skein,
    compression: Option<CompressionEncoding>,
) -> TraceServiceClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{}", skein.ports.otlp_grpc))
        .expect("endpoint uri")
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .expect("connect to the otlp grpc receiver");
    let c = TraceServiceClient::new(channel);
    match compression {
        None => c,
        Some(enc) => c.send_compressed(enc).accept_compressed(enc),
    }
}

/// One export; `tenant` goes into `x-scope-orgid` when given.
async fn export(
    c: &mut TraceServiceClient<Channel>,
    tenant: Option<&str>,
    req: ExportTraceServiceRequest,
) -> Result<ExportTraceServiceResponse, Status> {
    let mut r = tonic::Request::new(req);
    if let Some(t) = tenant {
        r.metadata_mut()
            .insert("x-scope-orgid", t.parse().expect("ascii metadata"));
    }
    c.export(r).await.map(tonic::Response::into_inner)
}

fn describe(s: &Status) -> String {
    format!(
        "{:?}: {:?} (retry info {:?})",
        s.code(),
        s.message(),
        s.get_details_retry_info()
    )
}

// ---------------------------------------------------------------------------------------------
// The cases.

fn valid_export_reads_back(skein: &Skein) {
    let trace = fresh_trace_id();
    let mut spans_sent = vec![
        span(&trace, &span_id(1), "root", 10),
        span(&trace, &span_id(2), "child-a", 10),
        span(&trace, &span_id(3), "child-b", 10),
    ];
    for s in &mut spans_sent[1..] {
        s.parent_span_id = span_id(1);
    }
    spans_sent[0]
        .attributes
        .push(string_attr("http.request.method", "GET"));
    run(async {
        let mut c = client(skein, None).await;
        let resp = export(&mut c, Some("grpc"), request("grpc-service", spans_sent))
            .await
            .unwrap_or_else(|s| panic!("a valid export was refused: {}", describe(&s)));
        assert_eq!(
            resp.partial_success, None,
            "full success leaves partial_success unset"
        );
    });
    let doc = skein
        .recent_trace("grpc", &hex(&trace))
        .expect("the trace sent over grpc is held");
    assert_eq!(span_names(&doc), ["child-a", "child-b", "root"]);
    let service = doc["resourceSpans"][0]["resource"]["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["key"] == "service.name")
        .and_then(|a| a["value"]["stringValue"].as_str());
    assert_eq!(service, Some("grpc-service"));
    let root = spans(&doc)
        .into_iter()
        .find(|s| s["name"] == "root")
        .expect("root span");
    assert_eq!(root["kind"], 3, "span kind is kept");
    assert!(
        root["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["key"] == "http.request.method" && a["value"]["stringValue"] == "GET"),
        "attributes are kept: {root}"
    );
    assert!(
        skein.recent_trace("single-tenant", &hex(&trace)).is_none(),
        "the tenant comes from x-scope-orgid"
    );
}

fn compressed_exports(skein: &Skein) {
    for enc in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
        let trace = fresh_trace_id();
        // 40 KB that compress well: under the limit, whichever size counts.
        let spans_sent = (1..=20)
            .map(|i| span(&trace, &span_id(i), &format!("s{i}"), 2000))
            .collect();
        let req = request("compressed", spans_sent);
        assert!(encoded_len(&req) < MAX_REQUEST_BYTES);
        run(async {
            let mut c = client(skein, Some(enc)).await;
            let resp = export(&mut c, Some("grpc"), req)
                .await
                .unwrap_or_else(|s| panic!("{enc:?} export refused: {}", describe(&s)));
            assert_eq!(resp.partial_success, None);
        });
        let doc = skein
            .recent_trace("grpc", &hex(&trace))
            .unwrap_or_else(|| panic!("the {enc:?} trace is held"));
        assert_eq!(spans(&doc).len(), 20, "{enc:?}");
    }
}

fn all_invalid_spans(skein: &Skein) {
    let trace = fresh_trace_id();
    run(async {
        let mut c = client(skein, None).await;
        let req = request(
            "bad",
            vec![
                span(&trace[..8], &span_id(1), "short-trace-id", 0),
                span(&[], &span_id(2), "no-trace-id", 0),
                span(&trace, &[0; 8], "zero-span-id", 0),
            ],
        );
        let err = export(&mut c, Some("grpc"), req)
            .await
            .expect_err("only invalid spans must be refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{}", describe(&err));
        assert!(
            err.message()
                .contains("2 span(s) refused: trace id must be 16 bytes")
                && err
                    .message()
                    .contains("1 span(s) refused: span id must be 8 bytes"),
            "the message should count and explain: {}",
            describe(&err)
        );
    });
    assert!(skein.recent_trace("grpc", &hex(&trace)).is_none());
}

fn partly_invalid_spans(skein: &Skein) {
    let trace = fresh_trace_id();
    run(async {
        let mut c = client(skein, None).await;
        let req = request(
            "partial",
            vec![
                span(&trace, &span_id(1), "good-1", 0),
                span(&trace[..15], &span_id(2), "bad-trace-id", 0),
                span(&trace, &span_id(3)[..4], "bad-span-id", 0),
                span(&trace, &span_id(4), "good-2", 0),
            ],
        );
        let resp = export(&mut c, Some("grpc"), req)
            .await
            .unwrap_or_else(|s| panic!("a partly valid request must be OK: {}", describe(&s)));
        let partial = resp
            .partial_success
            .expect("partial_success must be set when spans were refused");
        assert_eq!(partial.rejected_spans, 2, "{:?}", partial.error_message);
        assert!(
            partial.error_message.contains("trace id must be 16 bytes")
                && partial.error_message.contains("span id must be 8 bytes"),
            "{:?}",
            partial.error_message
        );
    });
    let doc = skein
        .recent_trace("grpc", &hex(&trace))
        .expect("the valid spans are held");
    assert_eq!(span_names(&doc), ["good-1", "good-2"]);
}

fn invalid_tenant(skein: &Skein) {
    let trace = fresh_trace_id();
    run(async {
        let mut c = client(skein, None).await;
        for tenant in ["../etc", "a/b", "..", "__reserved"] {
            let req = request("t", vec![span(&trace, &span_id(1), "t", 0)]);
            let err = export(&mut c, Some(tenant), req)
                .await
                .expect_err("an invalid tenant must be refused");
            assert_eq!(
                err.code(),
                Code::InvalidArgument,
                "tenant {tenant:?}: {}",
                describe(&err)
            );
            assert!(
                err.message().contains("x-scope-orgid") && err.message().contains("tenant id"),
                "tenant {tenant:?}: the message should name the header and the problem: {}",
                describe(&err)
            );
        }
    });
    assert!(
        !skein.dir.join("etc").exists(),
        "nothing is created for an invalid tenant"
    );
}

fn rate_limited(skein: &Skein) {
    run(async {
        let mut c = client(skein, None).await;
        let make = || {
            request(
                LIMITED,
                vec![span(&fresh_trace_id(), &span_id(1), "r", 900)],
            )
        };
        // Requests of ~1 KB against a burst of 3 KB and 1 KB/s.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut accepted = 0;
        let err = loop {
            assert!(
                Instant::now() < deadline,
                "never rate limited after {accepted} accepted requests in 20 s"
            );
            match export(&mut c, Some(LIMITED), make()).await {
                Ok(_) => accepted += 1,
                Err(e) => break e,
            }
        };
        assert!(accepted >= 2, "the burst lets the first requests through");
        assert_eq!(err.code(), Code::ResourceExhausted, "{}", describe(&err));
        assert!(
            err.message().contains("ingestion rate") && err.message().contains(LIMITED),
            "{}",
            describe(&err)
        );
        let delay = err
            .get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .unwrap_or_else(|| {
                panic!(
                    "RESOURCE_EXHAUSTED for a rate limit must carry RetryInfo with a delay, \
                     or clients never retry: {}",
                    describe(&err)
                )
            });
        assert!(
            delay >= Duration::from_secs(1) && delay <= Duration::from_secs(60),
            "retry delay {delay:?}"
        );
        // Other tenants are unaffected meanwhile.
        export(&mut c, Some("grpc"), make())
            .await
            .unwrap_or_else(|s| panic!("another tenant was refused: {}", describe(&s)));
        // Waiting as told is enough.
        tokio::time::sleep(delay).await;
        let trace = fresh_trace_id();
        let req = request(LIMITED, vec![span(&trace, &span_id(1), "after", 900)]);
        export(&mut c, Some(LIMITED), req)
            .await
            .unwrap_or_else(|s| {
                panic!(
                    "refused again after waiting the RetryInfo delay {delay:?}: {}",
                    describe(&s)
                )
            });
    });
}

fn over_the_tenant_limit(skein: &Skein) {
    let trace = fresh_trace_id();
    let make = || {
        request(
            SMALL,
            vec![span(&trace, &span_id(1), "big", SMALL_MAX_REQUEST_BYTES)],
        )
    };
    assert!(encoded_len(&make()) > SMALL_MAX_REQUEST_BYTES);
    run(async {
        let mut c = client(skein, None).await;
        let err = export(&mut c, Some(SMALL), make())
            .await
            .expect_err("a request over the tenant's max_request_bytes");
        assert_eq!(err.code(), Code::ResourceExhausted, "{}", describe(&err));
        assert!(
            err.get_details_retry_info().is_none(),
            "no RetryInfo: the request will never fit, so clients must not retry: {}",
            describe(&err)
        );
        assert!(
            err.message().contains("max_request_bytes")
                && err.message().contains(&SMALL_MAX_REQUEST_BYTES.to_string()),
            "{}",
            describe(&err)
        );
        // The same request is fine for a tenant on the defaults.
        export(&mut c, Some("grpc"), make())
            .await
            .unwrap_or_else(|s| panic!("default tenant: {}", describe(&s)));
    });
    assert!(skein.recent_trace(SMALL, &hex(&trace)).is_none());
    assert!(skein.recent_trace("grpc", &hex(&trace)).is_some());
}

/// Above twice the largest tenant limit, tonic refuses the message before the handler runs;
/// the status must still be RESOURCE_EXHAUSTED without RetryInfo (OUT_OF_RANGE, which tonic
/// answers for an uncompressed message, is one that OTLP clients retry).
fn over_the_receiver_limit(skein: &Skein, enc: Option<CompressionEncoding>) {
    let trace = fresh_trace_id();
    let req = request(
        "huge",
        vec![span(&trace, &span_id(1), "huge", 3 * MAX_REQUEST_BYTES)],
    );
    run(async {
        let mut c = client(skein, enc).await;
        let err = export(&mut c, Some("grpc"), req)
            .await
            .expect_err("a request of three times the limit");
        assert_eq!(
            err.code(),
            Code::ResourceExhausted,
            "{enc:?}: {}",
            describe(&err)
        );
        assert!(err.get_details_retry_info().is_none(), "{}", describe(&err));
        // The receiver is fine afterwards.
        let mut c = client(skein, enc).await;
        let ok = request("ok", vec![span(&fresh_trace_id(), &span_id(1), "ok", 0)]);
        export(&mut c, Some("grpc"), ok)
            .await
            .unwrap_or_else(|s| panic!("after an oversized request: {}", describe(&s)));
    });
    assert!(skein.recent_trace("grpc", &hex(&trace)).is_none());
}

#[test]
fn otlp_grpc_accepts_valid_data_and_refuses_with_otlp_status_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let skein = Skein::start(dir.path(), &options());
    type Case = fn(&Skein);
    let cases: &[(&str, Case)] = &[
        ("valid export reads back", valid_export_reads_back),
        ("compressed exports", compressed_exports),
        ("all spans invalid", all_invalid_spans),
        ("some spans invalid", partly_invalid_spans),
        ("invalid tenant", invalid_tenant),
        ("rate limited", rate_limited),
        ("over the tenant's max_request_bytes", over_the_tenant_limit),
        ("over the receiver limit, gzip", |s| {
            over_the_receiver_limit(s, Some(CompressionEncoding::Gzip))
        }),
    ];
    let mut failed = Vec::new();
    for (name, case) in cases {
        if catch_unwind(AssertUnwindSafe(|| case(&skein))).is_err() {
            failed.push(*name);
        }
    }
    assert!(
        failed.is_empty(),
        "cases failed (see their panics above): {failed:?}\nskein log:\n{}",
        skein.log()
    );
}

#[test]
fn an_uncompressed_message_over_the_receiver_limit_is_final() {
    let dir = tempfile::tempdir().expect("temp dir");
    let skein = Skein::start(dir.path(), &options());
    over_the_receiver_limit(&skein, None);
}
