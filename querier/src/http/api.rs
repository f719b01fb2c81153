//! The routes of the servers that are not a query API: readiness, Tempo's echo, build info
//! ([`BuildInfo`]) and metrics on the API server, and the answers of both servers to unknown
//! paths and wrong methods.
//!
//! Errors are JSON objects `{"error": "..."}` with a message a user can act on, including for
//! unknown paths and wrong methods, so that a client never has to parse an HTML or empty body.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Serialize;

use super::error::ApiError;

/// What `GET /api/status/buildinfo` reports.
///
/// The JSON keys are Tempo's (which are Prometheus's) so that tools probing a Tempo-compatible
/// backend understand it; `goVersion` carries the Rust compiler version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    /// Skein's version, e.g. `0.1.0`.
    pub version: String,
    /// Source revision the binary was built from, `unknown` when not recorded.
    pub revision: String,
    /// Source branch the binary was built from, `unknown` when not recorded.
    pub branch: String,
    /// Who built the binary, empty when not recorded.
    pub build_user: String,
    /// When the binary was built, `unknown` when not recorded.
    pub build_date: String,
    /// The Rust compiler that built the binary, under Tempo's key.
    #[serde(rename = "goVersion")]
    pub rust_version: String,
}

/// The API server on `server.http_listen`; `/metrics` exposes `registry` (every role's
/// metrics of the process).
pub(crate) fn router(build_info: BuildInfo, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/api/echo", get(echo))
        .route("/api/status/buildinfo", get(buildinfo))
        .route("/metrics", get(move || metrics(registry)))
        .with_state(Arc::new(build_info))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// The fallback of the Jaeger-compatible server on `server.jaeger_listen` (its routes are
/// those of [`jaeger`](super::jaeger) and [`jaeger_v3`](super::jaeger_v3)): a path it does not
/// serve gets a JSON 404 naming the ones it does.
pub(crate) fn jaeger_router() -> Router {
    Router::new().fallback(jaeger_unknown_route)
}

/// Readiness probe. Once the server accepts connections it is ready: there is nothing the
/// querier needs to load first yet.
async fn ready() -> &'static str {
    "ready"
}

/// Every role's metrics of this process (one registry), in the Prometheus text format
/// (version 0.0.4).
async fn metrics(registry: Arc<Registry>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

/// Tempo's `/api/echo`, which Grafana's Tempo data source calls to test the connection.
async fn echo() -> &'static str {
    "echo"
}

/// The Tempo release whose HTTP API Skein's Tempo-compatible answers follow. Clients that
/// gate features on the reported version (Grafana enabled TraceQL streaming and metrics
/// features by comparing it with 2.2 and 2.7) see this, with Skein's own version as semver
/// build metadata: `2.9.0+skein.0.1.0`.
pub(crate) const TEMPO_API_VERSION: &str = "2.9.0";

/// Tempo's `/api/status/buildinfo`: the Tempo API version Skein follows, with Skein's own
/// version as build metadata.
async fn buildinfo(State(info): State<Arc<BuildInfo>>) -> Json<BuildInfo> {
    let mut answer = BuildInfo::clone(&info);
    answer.version = format!("{TEMPO_API_VERSION}+skein.{}", info.version);
    Json(answer)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

async fn jaeger_unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for {method} {}: the jaeger query api serves /api/services, /api/operations, /api/traces, /api/dependencies and the api_v3 paths under /api/v3/",
        uri.path()
    ))
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, header};
    use tower::ServiceExt;

    use super::*;

    fn build_info() -> BuildInfo {
        BuildInfo {
            version: "1.2.3".into(),
            revision: "abc123".into(),
            branch: "main".into(),
            build_user: "ci".into(),
            build_date: "2026-11-22T00:00:00Z".into(),
            rust_version: "rustc 1.95.0".into(),
        }
    }

    /// Sends one request and returns status, content type and body.
    async fn call(router: Router, method: Method, path: &str) -> (StatusCode, String, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("valid request");
        let response = router.oneshot(request).await.expect("infallible router");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body fits");
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).expect("utf-8 body"),
        )
    }

    fn app() -> Router {
        router(build_info(), Arc::default())
    }

    #[tokio::test]
    async fn metrics_expose_the_registry_in_the_prometheus_text_format() {
        let mut registry = Registry::default();
        crate::metrics::register(&mut registry);
        // A labelled family shows once it has a series.
        crate::metrics::metrics()
            .ingester_failures
            .get_or_create(&crate::metrics::IngesterLabel {
                ingester: "10.0.0.1:3201".into(),
            })
            .inc();
        let app = router(build_info(), Arc::new(registry));
        let (status, content_type, body) = call(app, Method::GET, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "text/plain; version=0.0.4");
        for line in [
            "# TYPE skein_querier_partial_responses_total counter",
            "skein_querier_partial_responses_total ",
            "# TYPE skein_querier_ingester_failures_total counter",
            "skein_querier_ingester_failures_total{ingester=\"10.0.0.1:3201\"} ",
        ] {
            assert!(body.contains(line), "{line}: {body}");
        }
    }

    fn error_message(body: &str) -> String {
        let value: serde_json::Value = serde_json::from_str(body).expect("json error body");
        value["error"]
            .as_str()
            .expect("an \"error\" string")
            .to_owned()
    }

    #[tokio::test]
    async fn ready_and_echo_answer_like_tempo() {
        let (status, _, body) = call(app(), Method::GET, "/ready").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ready"));
        let (status, _, body) = call(app(), Method::GET, "/api/echo").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "echo"));
    }

    #[tokio::test]
    async fn buildinfo_uses_tempo_keys() {
        let (status, content_type, body) = call(app(), Method::GET, "/api/status/buildinfo").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "application/json");
        let value: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            value,
            serde_json::json!({
                "version": "2.9.0+skein.1.2.3",
                "revision": "abc123",
                "branch": "main",
                "buildUser": "ci",
                "buildDate": "2026-11-22T00:00:00Z",
                "goVersion": "rustc 1.95.0",
            })
        );
    }

    #[tokio::test]
    async fn unknown_paths_get_a_json_404() {
        let (status, content_type, body) = call(app(), Method::GET, "/api/nothing-here").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(content_type, "application/json");
        assert_eq!(error_message(&body), "no route for GET /api/nothing-here");
    }

    #[tokio::test]
    async fn wrong_methods_get_a_json_405() {
        let (status, content_type, body) = call(app(), Method::POST, "/ready").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(content_type, "application/json");
        assert_eq!(error_message(&body), "method POST is not allowed on /ready");
    }

    #[tokio::test]
    async fn an_unknown_jaeger_path_gets_a_json_404_naming_the_routes() {
        let (status, content_type, body) = call(jaeger_router(), Method::GET, "/api/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(content_type, "application/json");
        assert!(
            error_message(&body).contains("no route for GET /api/nope")
                && error_message(&body).contains("/api/v3/"),
            "unexpected body: {body}"
        );
    }
}
