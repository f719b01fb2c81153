//! Partial responses: a middleware around the query routers that marks a response which left
//! out an unreachable ingester.
//!
//! The remote ingester client (`crate::engine::remote`) leaves out an ingester that fails or
//! times out and records it for the request; this middleware runs each request with a fresh
//! record and tells the client what is missing, in headers and, for a JSON object body, in
//! the body.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::engine::remote::recording_failures;
use crate::metrics::metrics;

/// The response header set on a partial response.
pub(crate) const PARTIAL_HEADER: &str = "X-Skein-Partial";
/// The response header listing the ingesters (`address: reason`) left out of a partial
/// response, separated by `; `.
pub(crate) const UNREACHABLE_HEADER: &str = "X-Skein-Unreachable-Ingesters";

/// The response header explaining why a search answer is partial although every ingester
/// answered: it stopped at its budget of trace reads.
pub(crate) const TRUNCATED_HEADER: &str = "X-Skein-Truncated";

/// Largest JSON body [`partial_responses`] rewrites to add the `partial` field; larger ones
/// keep their body and carry only the headers.
const MAX_REWRITTEN_BODY: usize = 256 << 20;

/// True for the paths of the Tempo API, whose bodies are exactly Tempo's messages.
fn is_tempo_path(path: &str) -> bool {
    path == "/api/search"
        || path.starts_with("/api/search/")
        || path.starts_with("/api/traces/")
        || path.starts_with("/api/v2/")
}

/// Middleware around the query routers: runs the request with a fresh failure record and,
/// when an ingester was left out, marks the response partial: the [`PARTIAL_HEADER`] and
/// [`UNREACHABLE_HEADER`] headers always, and for a JSON object body (except on the Tempo
/// API's paths) a top-level `"partial": true` and a `"warnings"` list of messages.
pub(crate) async fn partial_responses(request: Request, next: Next) -> Response {
    let tempo = is_tempo_path(request.uri().path());
    let (response, failed) = recording_failures(next.run(request)).await;
    if failed.is_empty() {
        return response;
    }
    metrics().partial_responses.inc();
    let warnings: Vec<String> = failed
        .iter()
        .map(|(addr, reason)| {
            format!("ingester {addr} did not answer, its recent data is missing: {reason}")
        })
        .collect();
    let (mut parts, body) = response.into_parts();
    parts
        .headers
        .insert(PARTIAL_HEADER, HeaderValue::from_static("true"));
    let list: Vec<String> = failed
        .iter()
        .map(|(addr, reason)| format!("{addr}: {reason}"))
        .collect();
    if let Ok(v) = HeaderValue::from_str(&list.join("; ").replace(['\r', '\n'], " ")) {
        parts.headers.insert(UNREACHABLE_HEADER, v);
    }
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !is_json || tempo {
        // Tempo's messages are decoded strictly by its clients: the headers say it all.
        return Response::from_parts(parts, body);
    }
    let bytes = match axum::body::to_bytes(body, MAX_REWRITTEN_BODY).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a partial response to mark it");
            parts.headers.remove(header::CONTENT_LENGTH);
            return Response::from_parts(parts, Body::empty());
        }
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut object)) => {
            object.insert("partial".into(), serde_json::Value::Bool(true));
            object.insert("warnings".into(), warnings.into());
            match serde_json::to_vec(&object) {
                Ok(v) => Body::from(v),
                Err(_) => Body::from(bytes),
            }
        }
        _ => Body::from(bytes),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}
