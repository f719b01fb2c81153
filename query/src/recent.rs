//! The querier ↔ ingester contract: how a querier asks an ingester for the data it holds
//! that may not be in a visible block yet.
//!
//! In the all-in-one process the querier calls an ingester through this trait directly; in a
//! cluster it calls each ingester's internal HTTP API, whose paths and encodings are defined
//! here too, so both ends are built from one definition.

use async_trait::async_trait;
use prost::Message;
use serde::{Deserialize, Serialize};

use skein_format::model::{spans_from_otlp, spans_to_otlp};
use skein_format::otlp::trace::v1::TracesData;
use skein_format::{SpanRecord, TenantId, TraceId};

use crate::error::Result;
use crate::search::{Semantics, TraceQuery};

/// Recent (live, cut but not yet visible) spans held by an ingester.
#[async_trait]
pub trait RecentData: Send + Sync + std::fmt::Debug {
    /// Every span of trace `id` that this ingester holds for `tenant`.
    async fn find_trace(&self, tenant: &TenantId, id: &TraceId) -> Result<Vec<SpanRecord>>;

    /// The traces (all spans this ingester holds of each) that match `query`, newest first,
    /// at most `query.limit` (0: no limit).
    async fn search(&self, tenant: &TenantId, query: &TraceQuery) -> Result<Vec<Vec<SpanRecord>>>;
}

/// Paths of the ingester's internal HTTP API (served on `ingester.internal_listen`).
pub mod paths {
    /// `GET`: one trace as an OTLP protobuf `TracesData` body (404 when absent). Tenant in
    /// `X-Scope-OrgID`.
    pub const TRACE_BY_ID: &str = "/internal/v1/traces/{trace_id}";
    /// `POST`: a search. The body is a [`SearchRequest`](super::SearchRequest) as JSON; the
    /// answer is the matching traces as [`encode_traces`](super::encode_traces) writes them
    /// (`application/x-protobuf`), newest first. Tenant in `X-Scope-OrgID`; 400 with a JSON
    /// `{"error": ...}` for a request that does not parse.
    pub const SEARCH: &str = "/internal/v1/search";
    /// Prometheus metrics of the process.
    pub const METRICS: &str = "/metrics";
    /// 200 once the ingester has replayed its WAL and accepts writes.
    pub const READY: &str = "/ready";
}

/// The header naming the tenant, as in Tempo, Mimir and Loki.
pub const TENANT_HEADER: &str = "X-Scope-OrgID";

/// The body of a [`paths::SEARCH`] request: the fields of a [`TraceQuery`], as JSON. Missing
/// fields take the value that matches everything.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchRequest {
    /// [`TraceQuery::start_unix_nano`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_unix_nano: Option<u64>,
    /// [`TraceQuery::end_unix_nano`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_unix_nano: Option<u64>,
    /// [`TraceQuery::service_name`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// [`TraceQuery::span_name`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_name: Option<String>,
    /// [`TraceQuery::tags`], as `[key, value]` pairs.
    pub tags: Vec<(String, String)>,
    /// [`TraceQuery::min_duration_nanos`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_duration_nanos: Option<u64>,
    /// [`TraceQuery::max_duration_nanos`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration_nanos: Option<u64>,
    /// `"span"` (Jaeger, the default) or `"trace"` (Tempo): [`TraceQuery::semantics`].
    pub semantics: WireSemantics,
    /// [`TraceQuery::limit`]; 0 is no limit.
    pub limit: usize,
}

/// [`Semantics`] on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireSemantics {
    /// [`Semantics::Span`].
    #[default]
    Span,
    /// [`Semantics::Trace`].
    Trace,
}

impl From<&TraceQuery> for SearchRequest {
    fn from(q: &TraceQuery) -> Self {
        SearchRequest {
            start_unix_nano: q.start_unix_nano,
            end_unix_nano: q.end_unix_nano,
            service_name: q.service_name.clone(),
            span_name: q.span_name.clone(),
            tags: q.tags.clone(),
            min_duration_nanos: q.min_duration_nanos,
            max_duration_nanos: q.max_duration_nanos,
            semantics: match q.semantics {
                Semantics::Span => WireSemantics::Span,
                Semantics::Trace => WireSemantics::Trace,
            },
            limit: q.limit,
        }
    }
}

impl From<SearchRequest> for TraceQuery {
    fn from(r: SearchRequest) -> Self {
        TraceQuery {
            start_unix_nano: r.start_unix_nano,
            end_unix_nano: r.end_unix_nano,
            service_name: r.service_name,
            span_name: r.span_name,
            tags: r.tags,
            min_duration_nanos: r.min_duration_nanos,
            max_duration_nanos: r.max_duration_nanos,
            semantics: match r.semantics {
                WireSemantics::Span => Semantics::Span,
                WireSemantics::Trace => Semantics::Trace,
            },
            limit: r.limit,
        }
    }
}

/// Encodes traces for a [`paths::SEARCH`] answer: one length-delimited (protobuf varint
/// length, then the message) OTLP `TracesData` per trace, in order. An empty body is no trace.
pub fn encode_traces(traces: Vec<Vec<SpanRecord>>) -> Vec<u8> {
    let mut out = Vec::new();
    for spans in traces {
        let data = TracesData {
            resource_spans: spans_to_otlp(spans),
        };
        data.encode_length_delimited(&mut out)
            .expect("a Vec grows as needed");
    }
    out
}

/// Decodes what [`encode_traces`] wrote; `from` names the sender in errors.
pub fn decode_traces(mut body: &[u8], from: &str) -> Result<Vec<Vec<SpanRecord>>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let data = TracesData::decode_length_delimited(&mut body)
            .map_err(|e| skein_format::Error::corrupt("search answer", from, e))?;
        out.push(spans_from_otlp(data.resource_spans));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_testkit::synth::TraceGenerator;

    #[test]
    fn traces_round_trip_in_order() {
        let mut g = TraceGenerator::new(3, 1_750_000_000_000_000_000, 1);
        let traces = vec![g.trace(5), g.trace(1), g.trace(12)];
        let back = decode_traces(&encode_traces(traces.clone()), "test").unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in traces.iter().zip(&back) {
            assert_eq!(a.len(), b.len());
            assert_eq!(a[0].trace_id().unwrap(), b[0].trace_id().unwrap());
        }
        assert!(decode_traces(&[], "test").unwrap().is_empty());
        assert!(
            decode_traces(&[0x05, 0x01], "test").is_err(),
            "a truncated body is an error"
        );
    }

    #[test]
    fn a_query_survives_the_wire() {
        let q = TraceQuery {
            start_unix_nano: Some(1),
            end_unix_nano: Some(2),
            service_name: Some("svc".into()),
            span_name: None,
            tags: vec![("k".into(), "v".into())],
            min_duration_nanos: Some(3),
            max_duration_nanos: None,
            semantics: Semantics::Trace,
            limit: 7,
        };
        let json = serde_json::to_string(&SearchRequest::from(&q)).unwrap();
        let back: SearchRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(TraceQuery::from(back), q);
        let everything: SearchRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(TraceQuery::from(everything), TraceQuery::default());
    }
}
