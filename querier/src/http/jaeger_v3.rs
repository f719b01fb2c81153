//! The Jaeger query API v3 over HTTP (what Jaeger UI 2.x calls), at the paths and in the
//! shapes of Jaeger's grpc-gateway for `jaeger.api_v3.QueryService`: traces are OTLP JSON in
//! `{"result": {"resourceSpans": [...]}}`; errors are `{"error": {"httpCode", "message"}}`.
//! Parameters take their canonical lowerCamelCase names or the snake_case aliases Jaeger
//! still accepts. Unlike Jaeger, a search without a service name is allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use skein_format::model::spans_to_otlp;
use skein_format::otlp::trace::v1::TracesData;
use skein_format::{SpanRecord, TraceId};
use skein_query::search::{Semantics, TraceQuery};

use super::error::{V3Error, search_error};
use super::jaeger::kind_name;
use super::json;
use super::params::{MAX_LIMIT, go_duration, ignore_unknown, pairs, tenant};
use crate::engine::lookup::TraceLookup;

/// The api_v3 routes.
pub(crate) fn router(lookup: Arc<TraceLookup>) -> Router {
    Router::new()
        .route("/api/v3/services", get(services))
        .route("/api/v3/operations", get(operations))
        .route("/api/v3/traces", get(find_traces))
        .route("/api/v3/traces/{trace_id}", get(get_trace))
        .route("/api/v3/trace-summaries", get(find_trace_summaries))
        .with_state(lookup)
}

/// A failed query: the cause is logged, the answer says only that it failed.
fn internal(e: impl std::fmt::Display) -> V3Error {
    tracing::error!(error = %e, "jaeger api_v3 query failed");
    V3Error::internal("the query could not be completed; see the querier's log")
}

/// Parameter names: canonical, then the snake_case alias.
const PARAMS: &[(&str, &str)] = &[
    ("query.serviceName", "query.service_name"),
    ("query.operationName", "query.operation_name"),
    ("query.attributes", "query.attributes"),
    ("query.startTimeMin", "query.start_time_min"),
    ("query.startTimeMax", "query.start_time_max"),
    ("query.durationMin", "query.duration_min"),
    ("query.durationMax", "query.duration_max"),
    ("query.searchDepth", "query.search_depth"),
    ("query.rawTraces", "query.raw_traces"),
    ("query.pagination.pageSize", "query.pagination.page_size"),
    ("query.pagination.pageToken", "query.pagination.page_token"),
];

fn arg<'a>(p: &'a [(String, String)], canonical: &str) -> Option<&'a str> {
    let alias = PARAMS
        .iter()
        .find(|(c, _)| *c == canonical)
        .map(|(_, a)| *a)
        .unwrap_or(canonical);
    p.iter()
        .find(|(k, v)| k == canonical && !v.is_empty())
        .or_else(|| p.iter().find(|(k, v)| k == alias && !v.is_empty()))
        .map(|(_, v)| v.as_str())
}

fn rfc3339_nanos(name: &str, v: &str) -> Result<u64, V3Error> {
    chrono::DateTime::parse_from_rfc3339(v)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| {
            V3Error::bad_request(format!(
                "{name}={v:?} is not an RFC 3339 time like 2026-01-02T15:04:05Z"
            ))
        })
}

fn traces_body(traces: Vec<Vec<SpanRecord>>) -> Result<Response, V3Error> {
    if traces.is_empty() {
        return Err(V3Error::not_found("No traces found"));
    }
    let data = TracesData {
        resource_spans: spans_to_otlp(traces.into_iter().flatten()),
    };
    let result = serde_json::to_value(&data).map_err(internal)?;
    Ok(json(json!({ "result": result })))
}

async fn get_trace(
    State(lookup): State<Arc<TraceLookup>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, V3Error> {
    let p = pairs(raw.as_deref());
    let known = [
        "startTime",
        "endTime",
        "start_time",
        "end_time",
        "rawTraces",
        "raw_traces",
    ];
    ignore_unknown(p.iter().map(|(k, _)| k.as_str()), &known);
    let tenant = tenant(&headers)?;
    let id = TraceId::from_hex(&id).map_err(|e| V3Error::bad_request(e.to_string()))?;
    let spans = lookup.find(&tenant, &id, None).await.map_err(internal)?;
    traces_body(if spans.is_empty() {
        vec![]
    } else {
        vec![spans]
    })
}

fn query(p: &[(String, String)]) -> Result<TraceQuery, V3Error> {
    let known: Vec<&str> = PARAMS.iter().flat_map(|(c, a)| [*c, *a]).collect();
    ignore_unknown(p.iter().map(|(k, _)| k.as_str()), &known);
    let mut q = TraceQuery {
        semantics: Semantics::Span,
        limit: 100,
        ..Default::default()
    };
    q.service_name = arg(p, "query.serviceName").map(str::to_owned);
    q.span_name = arg(p, "query.operationName").map(str::to_owned);
    if let Some(a) = arg(p, "query.attributes") {
        let map: BTreeMap<String, Value> = serde_json::from_str(a).map_err(|e| {
            V3Error::bad_request(format!(
                "query.attributes must be a JSON object of key to value: {e}"
            ))
        })?;
        q.tags = map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect();
    }
    q.start_unix_nano = arg(p, "query.startTimeMin")
        .map(|v| rfc3339_nanos("query.startTimeMin", v))
        .transpose()?;
    q.end_unix_nano = arg(p, "query.startTimeMax")
        .map(|v| rfc3339_nanos("query.startTimeMax", v))
        .transpose()?;
    if let (Some(a), Some(b)) = (q.start_unix_nano, q.end_unix_nano)
        && a > b
    {
        return Err(V3Error::bad_request(
            "query.startTimeMin is after query.startTimeMax",
        ));
    }
    let dur = |name: &str| -> Result<Option<u64>, V3Error> {
        arg(p, name)
            .map(|v| go_duration(v).map_err(|e| V3Error::bad_request(format!("{name}: {e}"))))
            .transpose()
    };
    q.min_duration_nanos = dur("query.durationMin")?;
    q.max_duration_nanos = dur("query.durationMax")?;
    if let (Some(a), Some(b)) = (q.min_duration_nanos, q.max_duration_nanos)
        && a > b
    {
        return Err(V3Error::bad_request(
            "query.durationMin is greater than query.durationMax",
        ));
    }
    if let Some(d) = arg(p, "query.searchDepth") {
        let n: usize = d.parse().map_err(|_| {
            V3Error::bad_request(format!("query.searchDepth={d:?} is not a whole number"))
        })?;
        if n > MAX_LIMIT {
            return Err(V3Error::bad_request(format!(
                "query.searchDepth={n} is out of range; use 0 to {}",
                MAX_LIMIT
            )));
        }
        q.limit = if n == 0 { 100 } else { n };
    }
    if arg(p, "query.pagination.pageToken").is_some() {
        return Err(V3Error::bad_request(
            "query.pagination.pageToken is not supported: this server returns a single page; repeat the search with a narrower time range instead",
        ));
    }
    if let Some(size) = arg(p, "query.pagination.pageSize") {
        if arg(p, "query.searchDepth").is_some() {
            return Err(V3Error::bad_request(
                "query.pagination.pageSize and query.searchDepth exclude each other; set one",
            ));
        }
        let n: usize = size.parse().map_err(|_| {
            V3Error::bad_request(format!(
                "query.pagination.pageSize={size:?} is not a whole number"
            ))
        })?;
        if n == 0 || n > MAX_LIMIT {
            return Err(V3Error::bad_request(format!(
                "query.pagination.pageSize={n} is out of range; use 1 to {}",
                MAX_LIMIT
            )));
        }
        q.limit = n;
    }
    Ok(q)
}

async fn find_traces(
    State(lookup): State<Arc<TraceLookup>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, V3Error> {
    let p = pairs(raw.as_deref());
    if p.iter().any(|(k, _)| k.starts_with("query.pagination.")) {
        return Err(V3Error::bad_request(
            "/api/v3/traces is not paginated; use query.searchDepth, or /api/v3/trace-summaries",
        ));
    }
    let q = query(&p)?;
    let tenant = tenant(&headers)?;
    let found = lookup.search(&tenant, &q).await.map_err(search_error)?;
    let mut traces = Vec::with_capacity(found.traces.len());
    for t in &found.traces {
        traces.push(
            lookup
                .find(&tenant, &t.trace_id, None)
                .await
                .map_err(internal)?,
        );
    }
    traces_body(traces)
}

/// `GET /api/v3/trace-summaries`: the search of `/api/v3/traces`, answered with one summary
/// per trace instead of its spans (`{"summaries": [...]}`, newest first). Pagination is not
/// supported: `query.pagination.pageSize` bounds the single page and `nextPageToken` is
/// always empty.
async fn find_trace_summaries(
    State(lookup): State<Arc<TraceLookup>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, V3Error> {
    let p = pairs(raw.as_deref());
    let q = query(&p)?;
    let tenant = tenant(&headers)?;
    let found = lookup.search(&tenant, &q).await.map_err(search_error)?;
    let summaries: Vec<Value> = found
        .traces
        .iter()
        .map(|t| {
            json!({
                "traceId": t.trace_id.to_hex(),
                "rootServiceName": t.root_service_name,
                "rootOperationName": t.root_span_name,
                "minStartTimeUnixNano": t.start_unix_nano.to_string(),
                "maxEndTimeUnixNano": t.start_unix_nano.saturating_add(t.duration_nanos).to_string(),
                "spanCount": t.span_count,
                "errorSpanCount": t.error_count,
                "orphanSpanCount": t.orphan_span_count,
                "services": t.services.iter().map(|(name, st)| json!({
                    "name": name,
                    "spanCount": st.spans,
                    "errorSpanCount": st.errors,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json(json!({ "summaries": summaries, "nextPageToken": "" })))
}

async fn services(
    State(lookup): State<Arc<TraceLookup>>,
    headers: HeaderMap,
) -> Result<Response, V3Error> {
    let tenant = tenant(&headers)?;
    let ops = lookup.operations(&tenant).await.map_err(internal)?;
    let services: BTreeSet<&str> = ops.iter().map(|(s, _, _)| s.as_str()).collect();
    Ok(json(json!({ "services": services })))
}

async fn operations(
    State(lookup): State<Arc<TraceLookup>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, V3Error> {
    let p = pairs(raw.as_deref());
    ignore_unknown(
        p.iter().map(|(k, _)| k.as_str()),
        &["service", "spanKind", "span_kind"],
    );
    let service = p
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.as_str())
        .filter(|s| !s.is_empty());
    let service = service.ok_or_else(|| V3Error::bad_request("service is required"))?;
    let kind = p
        .iter()
        .find(|(k, _)| k == "spanKind" || k == "span_kind")
        .map(|(_, v)| v.as_str())
        .filter(|s| !s.is_empty());
    let tenant = tenant(&headers)?;
    let ops = lookup.operations(&tenant).await.map_err(internal)?;
    let list: Vec<Value> = ops
        .iter()
        .filter(|(s, _, k)| s == service && kind.is_none_or(|want| kind_name(*k) == want))
        .map(|(_, name, k)| json!({ "name": name, "spanKind": kind_name(*k) }))
        .collect();
    Ok(json(json!({ "operations": list })))
}
