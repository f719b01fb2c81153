//! The Tempo HTTP API, at Tempo's paths and in Tempo's shapes, so Grafana's Tempo data source
//! works against Skein. Trace by ID for now (`/api/traces/{id}`, `/api/v2/traces/{id}`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prost::Message;
use skein_storage::model::spans_to_otlp;
use skein_storage::otlp::trace::v1::TracesData;
use skein_storage::recent::TENANT_HEADER;
use skein_storage::{TenantId, TraceId};

use crate::api::ApiError;
use crate::lookup::TraceLookup;

/// The Tempo routes, over `lookup`.
pub fn router(lookup: Arc<TraceLookup>) -> Router {
    Router::new()
        .route("/api/traces/{trace_id}", get(trace_v1))
        .route("/api/v2/traces/{trace_id}", get(trace_v2))
        .with_state(lookup)
}

/// The tenant of a request: `X-Scope-OrgID`, `single-tenant` when absent.
pub fn tenant(headers: &HeaderMap) -> Result<TenantId, ApiError> {
    let Some(v) = headers.get(TENANT_HEADER) else {
        return Ok(TenantId::default_tenant());
    };
    let s = v.to_str().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{TENANT_HEADER} header is not valid text"),
        )
    })?;
    TenantId::new(s).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{TENANT_HEADER} header: {e}"),
        )
    })
}

/// The query parameters of a request, refusing any it does not know: a misspelt parameter
/// silently ignored would give a wrong answer that looks right.
pub fn params(raw: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match raw.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown parameter {k:?}; this endpoint takes {}",
                known.join(", ")
            ),
        )),
    }
}

fn parse_seconds(name: &str, v: &str) -> Result<u64, ApiError> {
    v.trim().parse::<u64>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{name}={v:?} is not a Unix time in seconds"),
        )
    })
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
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("start={s} is after end={e}"),
        ));
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
    let id =
        TraceId::from_hex(id).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let window = window(raw)?;
    let spans = lookup.find(&tenant, &id, window).await.map_err(|e| {
        tracing::error!(%tenant, trace = %id, error = %e, "trace lookup failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the trace could not be read; see the querier's log",
        )
    })?;
    if spans.is_empty() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "trace not found"));
    }
    Ok(TracesData {
        resource_spans: spans_to_otlp(spans),
    })
}

fn json(value: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
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
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
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
    let trace = serde_json::to_value(&data)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(json(serde_json::json!({ "trace": trace })))
}
