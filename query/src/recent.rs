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
use crate::plan::{Search, WindowOn, in_window};

/// Recent (live, cut but not yet visible) spans held by an ingester.
#[async_trait]
pub trait RecentData: Send + Sync + std::fmt::Debug {
    /// Every span of trace `id` that this ingester holds for `tenant`.
    async fn find_trace(&self, tenant: &TenantId, id: &TraceId) -> Result<Vec<SpanRecord>>;

    /// Every span of each trace of `ids` this ingester holds (traces it lacks are absent):
    /// for a search, which completes many candidates at once. By default one
    /// [`find_trace`](Self::find_trace) per ID.
    async fn find_traces(
        &self,
        tenant: &TenantId,
        ids: &[TraceId],
    ) -> Result<std::collections::HashMap<TraceId, Vec<SpanRecord>>> {
        let mut out = std::collections::HashMap::new();
        for id in ids {
            let spans = self.find_trace(tenant, id).await?;
            if !spans.is_empty() {
                out.insert(*id, spans);
            }
        }
        Ok(out)
    }

    /// The traces (all spans this ingester holds of each) that are candidates of `request`,
    /// newest first, at most `request.limit` (0: no limit). See [`Candidates::select`].
    async fn search(&self, tenant: &TenantId, request: &Candidates)
    -> Result<Vec<Vec<SpanRecord>>>;
}

/// Paths of the ingester's internal HTTP API (served on `ingester.internal_listen`).
pub mod paths {
    /// `GET`: one trace as an OTLP protobuf `TracesData` body (404 when absent). Tenant in
    /// `X-Scope-OrgID`.
    pub const TRACE_BY_ID: &str = "/internal/v1/traces/{trace_id}";
    /// `POST`: a search. The body is a [`Candidates`](super::Candidates) as JSON; the
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

/// A search request to an ingester (the body of [`paths::SEARCH`], as JSON): the traces it
/// holds with a span that satisfies `filter`. Missing fields take the value that matches
/// everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Candidates {
    /// A TraceQL spanset filter judged on each span alone (see
    /// [`Search::candidate_filter`]); `{}` for every span.
    pub filter: String,
    /// Earliest time of interest, ns since the epoch (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_unix_nano: Option<u64>,
    /// Latest time of interest (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_unix_nano: Option<u64>,
    /// How the window selects spans: when set, a satisfying span must start in it (Jaeger's
    /// semantics, and tag listings); otherwise it must overlap it (Tempo's).
    pub by_start: bool,
    /// Most traces to return, newest first; 0 is no limit.
    pub limit: usize,
}

impl Default for Candidates {
    fn default() -> Self {
        Candidates {
            filter: "{}".to_owned(),
            start_unix_nano: None,
            end_unix_nano: None,
            by_start: false,
            limit: 0,
        }
    }
}

impl Candidates {
    /// Every trace with a span starting in `window` (ns, inclusive).
    pub fn in_window(window: (u64, u64)) -> Self {
        Candidates {
            start_unix_nano: Some(window.0),
            end_unix_nano: Some(window.1),
            by_start: true,
            ..Default::default()
        }
    }

    /// What to ask an ingester for `search` (no limit: the querier decides on whole traces).
    pub fn for_search(search: &Search) -> Self {
        Candidates {
            filter: search.candidate_filter(),
            start_unix_nano: search.window.map(|w| w.0),
            end_unix_nano: search.window.map(|w| w.1),
            by_start: search.window_on == WindowOn::MatchedSpan,
            limit: 0,
        }
    }

    /// The window, when there is one.
    pub fn window(&self) -> Option<(u64, u64)> {
        (self.start_unix_nano.is_some() || self.end_unix_nano.is_some()).then(|| {
            (
                self.start_unix_nano.unwrap_or(0),
                self.end_unix_nano.unwrap_or(u64::MAX),
            )
        })
    }

    /// How the window selects spans.
    pub fn window_on(&self) -> WindowOn {
        match self.by_start {
            true => WindowOn::MatchedSpan,
            false => WindowOn::Trace,
        }
    }

    /// The filter, parsed.
    pub fn parse_filter(&self) -> Result<skein_traceql::Query, skein_traceql::Error> {
        skein_traceql::parse(&self.filter)
    }

    /// The traces of `traces` (the spans of each held here) that are candidates, newest first
    /// (by their earliest span held here), at most `limit`.
    pub fn select(
        &self,
        filter: &skein_traceql::Query,
        traces: impl IntoIterator<Item = Vec<SpanRecord>>,
    ) -> Vec<Vec<SpanRecord>> {
        let (window, on) = (self.window(), self.window_on());
        let mut matched: Vec<(u64, Vec<u8>, Vec<SpanRecord>)> = traces
            .into_iter()
            .filter(|spans| {
                filter.evaluate(spans).iter().any(|set| {
                    set.spans
                        .iter()
                        .any(|&i| spans.get(i).is_some_and(|s| in_window(window, on, s)))
                })
            })
            .map(|spans| {
                let start = spans
                    .iter()
                    .map(|s| s.span.start_time_unix_nano)
                    .min()
                    .unwrap_or(0);
                let id = spans
                    .first()
                    .map(|s| s.span.trace_id.clone())
                    .unwrap_or_default();
                (start, id, spans)
            })
            .collect();
        matched.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        if self.limit > 0 {
            matched.truncate(self.limit);
        }
        matched.into_iter().map(|(_, _, s)| s).collect()
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
    fn a_request_survives_the_wire() {
        let r = Candidates {
            filter: "{ name = \"x\" }".into(),
            start_unix_nano: Some(1),
            end_unix_nano: Some(2),
            by_start: true,
            limit: 7,
        };
        let json = serde_json::to_string(&r).unwrap();
        let back: Candidates = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        let everything: Candidates = serde_json::from_str("{}").unwrap();
        assert_eq!(everything, Candidates::default());
        assert!(serde_json::from_str::<Candidates>(r#"{"filtre": "{}"}"#).is_err());
    }
}
