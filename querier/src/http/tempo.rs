//! The Tempo HTTP API, at Tempo's paths and in Tempo's shapes, so Grafana's Tempo data source
//! works against Skein: trace by ID (`/api/traces/{id}`, `/api/v2/traces/{id}`) and search
//! (`/api/search`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prost::Message;
use skein_format::TraceId;
use skein_format::model::spans_to_otlp;
use skein_format::otlp::trace::v1::TracesData;
use skein_query::search::{Semantics, TraceQuery};

use super::error::ApiError;
use super::json;
use super::params::{MAX_LIMIT, go_duration, logfmt, only_known, tenant};
use crate::engine::lookup::TraceLookup;
use crate::engine::search::TagScope;

/// The Tempo routes, over `lookup`.
pub(crate) fn router(lookup: Arc<TraceLookup>) -> Router {
    Router::new()
        .route("/api/traces/{trace_id}", get(trace_v1))
        .route("/api/v2/traces/{trace_id}", get(trace_v2))
        .route("/api/search", get(search))
        .route("/api/search/tags", get(tags_v1))
        .route("/api/v2/search/tags", get(tags_v2))
        .route("/api/search/tag/{tag}/values", get(values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(values_v2))
        .with_state(lookup)
}

/// The query parameters of a request, refusing any it does not know: a misspelt parameter
/// silently ignored would give a wrong answer that looks right.
fn params(raw: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    Ok(only_known(raw.keys().map(String::as_str), known)?)
}

fn parse_seconds(name: &str, v: &str) -> Result<u64, ApiError> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("{name}={v:?} is not a Unix time in seconds")))
}

/// `start` and `end` (Unix seconds, as Tempo takes them) as an inclusive ns window.
fn window(raw: &HashMap<String, String>) -> Result<Option<(u64, u64)>, ApiError> {
    params(raw, &["start", "end"])?;
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

/// The query of `GET /api/search`, with Tempo's semantics.
fn search_query(raw: &HashMap<String, String>) -> Result<TraceQuery, ApiError> {
    if raw.contains_key("q") {
        return Err(ApiError::bad_request(
            "TraceQL (q=) is not supported yet; search with tags=, minDuration=, maxDuration=, start=, end= and limit=",
        ));
    }
    params(
        raw,
        &[
            "tags",
            "minDuration",
            "maxDuration",
            "limit",
            "start",
            "end",
        ],
    )?;
    let mut query = TraceQuery {
        semantics: Semantics::Trace,
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    if let Some(tags) = raw.get("tags") {
        for (k, v) in logfmt(tags).map_err(ApiError::bad_request)? {
            match k.as_str() {
                "service.name" => query.service_name = Some(v),
                "name" => query.span_name = Some(v),
                _ => query.tags.push((k, v)),
            }
        }
    }
    let duration = |name: &str| -> Result<Option<u64>, ApiError> {
        raw.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| go_duration(v).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))))
            .transpose()
    };
    query.min_duration_nanos = duration("minDuration")?;
    query.max_duration_nanos = duration("maxDuration")?;
    if let (Some(min), Some(max)) = (query.min_duration_nanos, query.max_duration_nanos)
        && min > max
    {
        return Err(ApiError::bad_request(
            "minDuration is greater than maxDuration",
        ));
    }
    if let Some(l) = raw.get("limit").filter(|v| !v.is_empty()) {
        let limit: usize = l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("limit={l:?} is not a whole number")))?;
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::bad_request(format!(
                "limit={limit} is out of range; use 1 to {MAX_LIMIT}"
            )));
        }
        query.limit = limit;
    }
    let mut window = raw.clone();
    window.retain(|k, _| k == "start" || k == "end");
    if let Some((start, end)) = self::window(&window)? {
        query.start_unix_nano = Some(start);
        query.end_unix_nano = (end != u64::MAX).then_some(end);
    }
    Ok(query)
}

/// Tempo's name for a trace whose root span has not arrived.
const NO_ROOT: &str = "<root span not yet received>";

/// `GET /api/search`: `{"traces": [{traceID, rootServiceName, rootTraceName,
/// startTimeUnixNano, durationMs, serviceStats}], "metrics": {…}}`, 64-bit numbers as strings.
async fn search(
    State(lookup): State<Arc<TraceLookup>>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let query = search_query(&raw)?;
    let result = lookup.search(&tenant, &query).await.map_err(|e| {
        tracing::error!(%tenant, error = %e, "search failed");
        ApiError::internal("the search could not be completed; see the querier's log")
    })?;
    let traces: Vec<serde_json::Value> = result
        .traces
        .iter()
        .map(|t| {
            let stats: serde_json::Map<String, serde_json::Value> = t
                .services
                .iter()
                .map(|(svc, s)| {
                    (
                        svc.clone(),
                        serde_json::json!({ "spanCount": s.spans, "errorCount": s.errors }),
                    )
                })
                .collect();
            let or_no_root = |v: &str| {
                if v.is_empty() {
                    NO_ROOT.to_owned()
                } else {
                    v.to_owned()
                }
            };
            serde_json::json!({
                "traceID": t.trace_id.to_hex(),
                "rootServiceName": or_no_root(&t.root_service_name),
                "rootTraceName": or_no_root(&t.root_span_name),
                "startTimeUnixNano": t.start_unix_nano.to_string(),
                "durationMs": t.duration_nanos / 1_000_000,
                "spanCount": t.span_count,
                "errorCount": t.error_count,
                "serviceStats": stats,
            })
        })
        .collect();
    Ok(json(serde_json::json!({
        "traces": traces,
        "metrics": {
            "inspectedTraces": result.inspected_traces,
            "inspectedBlocks": result.inspected_blocks,
            "completedJobs": result.inspected_blocks,
            "totalJobs": result.inspected_blocks,
        },
    })))
}

fn full_window(raw: &HashMap<String, String>, extra: &[&str]) -> Result<(u64, u64), ApiError> {
    let mut known = vec!["start", "end"];
    known.extend_from_slice(extra);
    params(raw, &known)?;
    let mut w = raw.clone();
    w.retain(|k, _| k == "start" || k == "end");
    Ok(window(&w)?.unwrap_or((0, u64::MAX)))
}

fn failed(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "tag listing failed");
    ApiError::internal("the tags could not be listed; see the querier's log")
}

/// `GET /api/search/tags`: `{"tagNames": [...]}`, span and resource attribute keys.
async fn tags_v1(
    State(lookup): State<Arc<TraceLookup>>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let window = full_window(&raw, &["limit", "maxStaleValues"])?;
    let names = lookup.tag_names(&tenant, window).await.map_err(failed)?;
    let all: std::collections::BTreeSet<&String> =
        names.span.iter().chain(&names.resource).collect();
    Ok(json(serde_json::json!({ "tagNames": all })))
}

/// `GET /api/v2/search/tags`: `{"scopes": [{"name": "span", "tags": [...]}, {"name":
/// "resource", ...}]}`; `scope=span|resource` picks one.
async fn tags_v2(
    State(lookup): State<Arc<TraceLookup>>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let window = full_window(&raw, &["scope", "q", "limit", "maxStaleValues"])?;
    let want = raw.get("scope").map(String::as_str).unwrap_or("");
    if !["", "all", "span", "resource", "intrinsic"].contains(&want) {
        return Err(ApiError::bad_request(format!(
            "scope={want:?} is not one of span, resource, intrinsic, all"
        )));
    }
    let names = lookup.tag_names(&tenant, window).await.map_err(failed)?;
    let mut scopes = Vec::new();
    if matches!(want, "" | "all" | "span") {
        scopes.push(serde_json::json!({ "name": "span", "tags": names.span }));
    }
    if matches!(want, "" | "all" | "resource") {
        scopes.push(serde_json::json!({ "name": "resource", "tags": names.resource }));
    }
    if matches!(want, "" | "all" | "intrinsic") {
        scopes.push(serde_json::json!({ "name": "intrinsic", "tags": ["duration", "kind", "name", "status", "statusMessage"] }));
    }
    Ok(json(serde_json::json!({ "scopes": scopes })))
}

/// `GET /api/search/tag/{tag}/values`: `{"tagValues": [...]}`.
async fn values_v1(
    State(lookup): State<Arc<TraceLookup>>,
    Path(tag): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let window = full_window(&raw, &["limit", "maxStaleValues"])?;
    let values = lookup
        .tag_values(&tenant, None, &tag, window)
        .await
        .map_err(failed)?;
    let strings: std::collections::BTreeSet<&String> = values.iter().map(|(_, v)| v).collect();
    Ok(json(serde_json::json!({ "tagValues": strings })))
}

/// `GET /api/v2/search/tag/{tag}/values`, the tag in TraceQL form (`resource.service.name`,
/// `span.http.method`, `.anything`): `{"tagValues": [{"type", "value"}]}`.
async fn values_v2(
    State(lookup): State<Arc<TraceLookup>>,
    Path(tag): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let window = full_window(&raw, &["q", "limit", "maxStaleValues"])?;
    let (scope, key) = if let Some(k) = tag.strip_prefix("resource.") {
        (Some(TagScope::Resource), k)
    } else if let Some(k) = tag.strip_prefix("span.") {
        (Some(TagScope::Span), k)
    } else if let Some(k) = tag.strip_prefix('.') {
        (None, k)
    } else {
        return Err(ApiError::bad_request(format!(
            "tag {tag:?} needs a scope: resource.{tag}, span.{tag} or .{tag} (either)"
        )));
    };
    let values = lookup
        .tag_values(&tenant, scope, key, window)
        .await
        .map_err(failed)?;
    let list: Vec<serde_json::Value> = values
        .into_iter()
        .map(|(ty, v)| serde_json::json!({ "type": ty, "value": v }))
        .collect();
    Ok(json(serde_json::json!({ "tagValues": list })))
}
