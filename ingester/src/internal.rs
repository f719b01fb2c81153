//! The ingester's internal HTTP API: recent data for queriers, `/metrics`, `/ready`.
//! Paths are defined in `skein_query::recent::paths`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use prost::Message;
use skein_format::model::spans_to_otlp;
use skein_format::otlp::trace::v1::TracesData;
use skein_format::{TenantId, TraceId};
use skein_query::recent::{Candidates, RecentData, TENANT_HEADER, encode_traces, paths};

use crate::ingester::Ingester;

/// The internal routes; `/metrics` exposes `registry` (every role's metrics of the process).
pub fn router(ingester: Arc<Ingester>, registry: Arc<Registry>) -> Router {
    Router::new()
        .route(paths::TRACE_BY_ID, get(trace_by_id))
        .route(paths::SEARCH, post(search))
        .route(paths::METRICS, get(move || metrics(registry)))
        .route(paths::READY, get(|| async { "ready" }))
        .with_state(ingester)
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": message }).to_string(),
    )
        .into_response()
}

/// The tenant of a request: its `X-Scope-OrgID`, or the default tenant without one.
fn tenant(headers: &HeaderMap) -> Result<TenantId, Box<Response>> {
    match headers
        .get(TENANT_HEADER)
        .map(|v| v.to_str().unwrap_or("\u{0}"))
    {
        None => Ok(TenantId::default_tenant()),
        Some(s) => TenantId::new(s)
            .map_err(|e| Box::new(json_error(StatusCode::BAD_REQUEST, &e.to_string()))),
    }
}

/// Recent traces matching a query, for a querier's search (see `paths::SEARCH`).
async fn search(
    State(ingester): State<Arc<Ingester>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let tenant = match tenant(&headers) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let request: Candidates = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("the search request is not valid JSON of the expected shape: {e}"),
            );
        }
    };
    if let Err(e) = request.parse_filter() {
        return json_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "the search filter {:?} is not valid TraceQL: {e}",
                request.filter
            ),
        );
    }
    match ingester.search(&tenant, &request).await {
        Ok(traces) => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            encode_traces(traces),
        )
            .into_response(),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn trace_by_id(
    State(ingester): State<Arc<Ingester>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let tenant = match tenant(&headers) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let id = match TraceId::from_hex(&id) {
        Ok(id) => id,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let spans = match ingester.find_trace(&tenant, &id).await {
        Ok(s) => s,
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    if spans.is_empty() {
        return json_error(StatusCode::NOT_FOUND, "trace not found");
    }
    let data = TracesData {
        resource_spans: spans_to_otlp(spans),
    };
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        match serde_json::to_vec(&data) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    } else {
        (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            data.encode_to_vec(),
        )
            .into_response()
    }
}

/// The registry in the Prometheus text format (version 0.0.4).
async fn metrics(registry: Arc<Registry>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use skein_format::otlp::collector::trace::v1::ExportTraceServiceRequest;
    use skein_query::recent::decode_traces;
    use skein_storage::StorageConfig;
    use skein_testkit::synth::TraceGenerator;
    use tower::ServiceExt;

    use super::*;
    use crate::IngesterConfig;

    async fn search_call(app: Router, tenant: &str, body: &str) -> (StatusCode, Vec<u8>) {
        let response = app
            .oneshot(
                Request::post(paths::SEARCH)
                    .header(TENANT_HEADER, tenant)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_owned()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    #[tokio::test]
    async fn search_answers_recent_traces_and_refuses_a_bad_body() {
        let dir = tempfile::tempdir().unwrap();
        let config = IngesterConfig {
            wal_dir: dir.path().join("wal"),
            ..IngesterConfig::default()
        };
        let store = StorageConfig::Memory {}.open().unwrap();
        let ingester = Ingester::open(config, store).await.unwrap();
        let tenant = TenantId::new("team-a").unwrap();
        let mut g = TraceGenerator::new(9, 1_750_000_000_000_000_000, 1);
        for _ in 0..3 {
            let request = ExportTraceServiceRequest {
                resource_spans: spans_to_otlp(g.trace(5)),
            };
            let len = request.encoded_len();
            ingester
                .push(&tenant, request, len, None, "test")
                .await
                .unwrap();
        }
        let app = router(Arc::clone(&ingester), Arc::default());

        let (status, body) = search_call(app.clone(), "team-a", "{}").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(decode_traces(&body, "test").unwrap().len(), 3);
        let (_, body) = search_call(app.clone(), "team-a", r#"{"limit": 2}"#).await;
        assert_eq!(decode_traces(&body, "test").unwrap().len(), 2);
        let (_, body) = search_call(app.clone(), "team-b", "{}").await;
        assert!(decode_traces(&body, "test").unwrap().is_empty());

        let (status, body) = search_call(app.clone(), "team-a", r#"{"filter": 3}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let message = String::from_utf8_lossy(&body);
        assert!(message.contains("expected a string"), "{message}");
        let (status, body) =
            search_call(app.clone(), "team-a", r#"{"filter": "{ name = }"}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let message = String::from_utf8_lossy(&body);
        assert!(message.contains("col 10"), "{message}");
        let (_, body) = search_call(
            app.clone(),
            "team-a",
            r#"{"filter": "{ resource.service.name = \"frontend\" }"}"#,
        )
        .await;
        assert_eq!(decode_traces(&body, "test").unwrap().len(), 3);
        let (_, body) = search_call(
            app.clone(),
            "team-a",
            r#"{"filter": "{ name = \"nothing\" }"}"#,
        )
        .await;
        assert!(decode_traces(&body, "test").unwrap().is_empty());
        let (status, _) = search_call(app, "team a!", "{}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
