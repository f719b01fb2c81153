//! The Tempo HTTP API, at Tempo's paths and in Tempo's shapes, so Grafana's Tempo data source
//! works against Skein: trace by ID (`/api/traces/{id}`, `/api/v2/traces/{id}`) and search
//! (`/api/search`, TraceQL in `q` or a legacy tag search in `tags`); the tag listings are in
//! `tempo_tags`, the messages in `tempo_model`.
//!
//! Unknown query parameters are ignored (logged at debug): proxies and clients add their own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prost::Message;
use skein_format::model::spans_to_otlp;
use skein_format::otlp::trace::v1::TracesData;
use skein_format::summary::TraceSummary;
use skein_format::{SpanRecord, TraceId};
use skein_query::search::{Semantics, TraceQuery};
use skein_query::{Search, WindowOn};

use super::error::{ApiError, search_error};
use super::json;
use super::params::{MAX_LIMIT, go_duration, ignore_unknown, logfmt, tenant};
use super::partial::{PARTIAL_HEADER, TRUNCATED_HEADER};
use super::tempo_model as model;
use crate::engine::lookup::TraceLookup;
use crate::engine::search::TraceMatch;

/// The Tempo routes, over `lookup`; tag listings without a window cover the last
/// `tag_lookback`.
pub(crate) fn router(lookup: Arc<TraceLookup>, tag_lookback: std::time::Duration) -> Router {
    Router::new()
        .route("/api/traces/{trace_id}", get(trace_v1))
        .route("/api/v2/traces/{trace_id}", get(trace_v2))
        .route("/api/search", get(search))
        .with_state(Arc::clone(&lookup))
        .merge(super::tempo_tags::router(lookup, tag_lookback))
}

/// Notes the query parameters a request has beyond `known` (logged at debug, never refused:
/// proxies and clients add their own, and Grafana's resource proxy forwards its own).
fn params(raw: &HashMap<String, String>, known: &[&str]) {
    ignore_unknown(raw.keys().map(String::as_str), known);
}

fn parse_seconds(name: &str, v: &str) -> Result<u64, ApiError> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("{name}={v:?} is not a Unix time in seconds")))
}

/// `start` and `end` (Unix seconds, as Tempo takes them) as an inclusive ns window.
pub(super) fn window(raw: &HashMap<String, String>) -> Result<Option<(u64, u64)>, ApiError> {
    let get = |name: &str| raw.get(name).map(String::as_str).filter(|s| !s.is_empty());
    let start = get("start")
        .map(|s| parse_seconds("start", s))
        .transpose()?;
    let end = get("end").map(|s| parse_seconds("end", s)).transpose()?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(ApiError::bad_request(format!("start={s} is after end={e}")));
    }
    if start.is_none() && end.is_none() {
        return Ok(None);
    }
    let s = start.unwrap_or(0).saturating_mul(1_000_000_000);
    // The end second is inclusive.
    let e = end
        .map(|e| e.saturating_add(1).saturating_mul(1_000_000_000))
        .unwrap_or(u64::MAX);
    Ok(Some((s, e)))
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/protobuf") || a.contains("application/x-protobuf"))
}

async fn find(
    lookup: &TraceLookup,
    headers: &HeaderMap,
    id: &str,
    raw: &HashMap<String, String>,
) -> Result<TracesData, ApiError> {
    let tenant = tenant(headers)?;
    let id = TraceId::from_hex(id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    params(raw, &["start", "end"]);
    let window = window(raw)?;
    let spans = lookup.find(&tenant, &id, window).await.map_err(|e| {
        tracing::error!(%tenant, trace = %id, error = %e, "trace lookup failed");
        ApiError::internal("the trace could not be read; see the querier's log")
    })?;
    if spans.is_empty() {
        return Err(ApiError::not_found("trace not found"));
    }
    Ok(TracesData {
        resource_spans: spans_to_otlp(spans),
    })
}

/// `GET /api/traces/{id}`: `{"batches": [ResourceSpans…]}`, or with `Accept:
/// application/protobuf` Tempo's `tempopb.Trace` (whose wire format is OTLP `TracesData`).
async fn trace_v1(
    State(lookup): State<Arc<TraceLookup>>,
    Path(id): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let data = find(&lookup, &headers, &id, &raw).await?;
    if wants_protobuf(&headers) {
        return Ok((
            [(header::CONTENT_TYPE, "application/protobuf")],
            data.encode_to_vec(),
        )
            .into_response());
    }
    let batches = serde_json::to_value(&data.resource_spans)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json(serde_json::json!({ "batches": batches })))
}

/// Tempo's `TraceByIDResponse`: field 1 holds the trace.
#[derive(Clone, PartialEq, prost::Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TracesData>,
}

/// `GET /api/v2/traces/{id}`: `{"trace": {"resourceSpans": […]}}`, or protobuf
/// `TraceByIDResponse`.
async fn trace_v2(
    State(lookup): State<Arc<TraceLookup>>,
    Path(id): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let data = find(&lookup, &headers, &id, &raw).await?;
    if wants_protobuf(&headers) {
        let body = TraceByIdResponse { trace: Some(data) }.encode_to_vec();
        return Ok(([(header::CONTENT_TYPE, "application/protobuf")], body).into_response());
    }
    let trace = serde_json::to_value(&data).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json(serde_json::json!({ "trace": trace })))
}

/// Traces a search returns when it names no limit (Tempo's default).
const DEFAULT_LIMIT: usize = 20;
/// Spans shown per spanset when the search names no `spss` (Tempo's default).
const DEFAULT_SPANS_PER_SPANSET: usize = 3;
/// Most spans per spanset a search may ask for.
const MAX_SPANS_PER_SPANSET: usize = 1_000;

/// A search of `GET /api/search` and how to show it.
pub(super) struct TempoSearch {
    pub(super) search: Search,
    /// Spans shown per spanset.
    pub(super) spss: usize,
}

fn positive(
    raw: &HashMap<String, String>,
    name: &str,
    max: usize,
) -> Result<Option<usize>, ApiError> {
    let Some(v) = raw.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let n: usize = v
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{name}={v:?} is not a whole number")))?;
    if n == 0 || n > max {
        return Err(ApiError::bad_request(format!(
            "{name}={n} is out of range; use 1 to {max}"
        )));
    }
    Ok(Some(n))
}

/// The search of `GET /api/search`: TraceQL in `q`, or a legacy tag search in `tags`
/// (translated to TraceQL), with Tempo's other parameters.
pub(super) fn search_request(raw: &HashMap<String, String>) -> Result<TempoSearch, ApiError> {
    params(
        raw,
        &[
            "q",
            "tags",
            "minDuration",
            "maxDuration",
            "limit",
            "spss",
            "start",
            "end",
        ],
    );
    let non_empty = |name: &str| raw.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let (q, tags) = (non_empty("q"), non_empty("tags"));
    if q.is_some() && tags.is_some() {
        return Err(ApiError::bad_request(
            "q= (TraceQL) and tags= (a legacy tag search) cannot be combined; write the tags as TraceQL conditions in q",
        ));
    }
    let duration = |name: &str| -> Result<Option<u64>, ApiError> {
        non_empty(name)
            .map(|v| go_duration(v).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))))
            .transpose()
    };
    let (min, max) = (duration("minDuration")?, duration("maxDuration")?);
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err(ApiError::bad_request(
            "minDuration is greater than maxDuration",
        ));
    }
    let mut search = match q {
        Some(q) => Search::new(
            skein_traceql::parse(q)
                .map_err(|e| ApiError::bad_request(format!("invalid TraceQL query: {e}")))?,
        ),
        None => {
            let mut legacy = TraceQuery {
                semantics: Semantics::Trace,
                ..Default::default()
            };
            for (k, v) in logfmt(tags.unwrap_or("")).map_err(ApiError::bad_request)? {
                match k.as_str() {
                    "service.name" => legacy.service_name = Some(v),
                    "name" => legacy.span_name = Some(v),
                    _ => legacy.tags.push((k, v)),
                }
            }
            legacy
                .to_search()
                .map_err(|e| ApiError::bad_request(format!("the tag search is too large: {e}")))?
        }
    };
    search.min_trace_duration_nanos = min;
    search.max_trace_duration_nanos = max;
    search.limit = positive(raw, "limit", MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
    let spss = positive(raw, "spss", MAX_SPANS_PER_SPANSET)?.unwrap_or(DEFAULT_SPANS_PER_SPANSET);
    let mut window_params = raw.clone();
    window_params.retain(|k, _| k == "start" || k == "end");
    search.window = window(&window_params)?;
    search.window_on = WindowOn::Trace;
    Ok(TempoSearch { search, spss })
}

/// Tempo's name for a trace whose root span has not arrived.
const NO_ROOT: &str = "<root span not yet received>";

/// Spans and errors per service, as Tempo counts them: an error is a span whose status is
/// ERROR (from the span's core, which every search reads, so the counts do not depend on the
/// query).
fn service_stats(spans: &[SpanRecord]) -> BTreeMap<String, model::ServiceStats> {
    use skein_format::otlp::trace::v1::status::StatusCode;
    let mut out: BTreeMap<String, model::ServiceStats> = BTreeMap::new();
    for s in spans {
        let st = out
            .entry(s.service_name().to_owned())
            .or_insert(model::ServiceStats {
                span_count: 0,
                error_count: 0,
            });
        st.span_count = st.span_count.saturating_add(1);
        let error = s
            .span
            .status
            .as_ref()
            .is_some_and(|st| st.code == StatusCode::Error as i32);
        st.error_count = st.error_count.saturating_add(u32::from(error));
    }
    out
}

fn search_span(s: &SpanRecord, query: &skein_traceql::Query) -> model::Span {
    model::Span {
        span_id: s.span_id().map(|id| id.to_hex()).unwrap_or_default(),
        name: s.span.name.clone(),
        start_time_unix_nano: s.span.start_time_unix_nano.to_string(),
        duration_nanos: s.duration_nanos().to_string(),
        attributes: query
            .shown_attributes(s)
            .iter()
            .map(|(k, v)| model::KeyValue::new(k.clone(), v))
            .collect(),
    }
}

/// One trace of a search answer.
pub(super) fn trace_metadata(
    t: &TraceSummary,
    m: &TraceMatch,
    query: &skein_traceql::Query,
    spss: usize,
) -> model::TraceSearchMetadata {
    let or_no_root = |v: &str| match v.is_empty() {
        true => NO_ROOT.to_owned(),
        false => v.to_owned(),
    };
    let span_sets: Vec<model::SpanSet> = m
        .spansets
        .iter()
        .map(|set| model::SpanSet {
            spans: set
                .spans
                .iter()
                .take(spss)
                .filter_map(|&i| m.spans.get(i))
                .map(|s| search_span(s, query))
                .collect(),
            matched: u32::try_from(set.spans.len()).unwrap_or(u32::MAX),
            attributes: set
                .attributes
                .iter()
                .map(|(k, v)| model::KeyValue::new(k.clone(), v))
                .collect(),
        })
        .collect();
    model::TraceSearchMetadata {
        trace_id: t.trace_id.to_hex(),
        root_service_name: or_no_root(&t.root_service_name),
        root_trace_name: or_no_root(&t.root_span_name),
        start_time_unix_nano: t.start_unix_nano.to_string(),
        duration_ms: u32::try_from(t.duration_nanos / 1_000_000).unwrap_or(u32::MAX),
        span_set: span_sets.first().cloned(),
        span_sets,
        service_stats: service_stats(&m.spans),
    }
}

/// `GET /api/search`: Tempo's `SearchResponse`. A search cut short by its budget of trace
/// reads is marked partial in headers only (the body is exactly the message).
async fn search(
    State(lookup): State<Arc<TraceLookup>>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let request = search_request(&raw)?;
    let result = lookup
        .search_traceql(&tenant, &request.search)
        .await
        .map_err(search_error)?;
    let query = &request.search.query;
    let traces = result
        .traces
        .iter()
        .zip(&result.matched)
        .map(|(t, m)| trace_metadata(t, m, query, request.spss))
        .collect();
    let jobs = u32::try_from(result.total_blocks).unwrap_or(u32::MAX);
    let body = model::SearchResponse {
        traces,
        metrics: model::SearchMetrics {
            inspected_traces: u32::try_from(result.inspected_traces).unwrap_or(u32::MAX),
            total_blocks: jobs,
            completed_jobs: jobs,
            total_jobs: jobs,
            total_block_bytes: result.total_block_bytes.to_string(),
            inspected_spans: result.inspected_spans.to_string(),
            ..Default::default()
        },
    };
    let mut response = axum::Json(body).into_response();
    if result.truncated {
        response
            .headers_mut()
            .insert(PARTIAL_HEADER, axum::http::HeaderValue::from_static("true"));
        response.headers_mut().insert(
            TRUNCATED_HEADER,
            axum::http::HeaderValue::from_static(
                "the search read as many traces as one search may; narrow the query or the time range",
            ),
        );
    }
    Ok(response)
}
