//! The HTTP side of the querier: the APIs that serve the [`engine`](crate::engine), and the two
//! servers they are served on.
//!
//! - [`server`]: binds `server.http_listen` (the API server) and `server.jaeger_listen` (the
//!   Jaeger server) and serves both until shutdown. The API server carries the Tempo API, the
//!   Jaeger APIs again under `/jaeger`, the web UI, the admin API and [`api`]; the Jaeger
//!   server carries the Jaeger APIs and a JSON 404 for other paths.
//! - [`tempo`]: the Tempo API, at Tempo's paths and in Tempo's shapes (Grafana's Tempo data
//!   source): trace by ID and TraceQL search; [`tempo_tags`] its tag listings;
//!   [`tempo_model`] its messages as Tempo's protobuf JSON defines them.
//! - [`jaeger`] and [`jaeger_v3`]: the Jaeger query APIs v1 (Jaeger UI 1.x, Grafana's Jaeger
//!   data source) and api_v3 (Jaeger UI 2.x).
//! - [`admin`]: reading and setting a tenant's overrides.
//! - [`api`]: readiness, build info, metrics, and the JSON 404 and 405 answers.
//! - [`ui`]: the embedded web UI.
//! - [`params`]: what the APIs parse alike: the tenant header, unknown parameters (ignored on
//!   the compatibility APIs), Go durations
//!   and logfmt tags.
//! - [`error`]: error answers, one body shape per API family (Skein's and Tempo's
//!   `{"error": …}`, Jaeger v1's envelope, Jaeger api_v3's status).
//! - [`partial`]: the middleware that marks a response which left out an unreachable ingester.

pub(crate) mod admin;
pub(crate) mod api;
pub(crate) mod error;
pub(crate) mod jaeger;
pub(crate) mod jaeger_v3;
pub(crate) mod params;
pub(crate) mod partial;
pub(crate) mod server;
pub(crate) mod tempo;
pub(crate) mod tempo_model;
pub(crate) mod tempo_tags;
pub(crate) mod ui;

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// An answer with `value` as its JSON body: status 200, unless the caller sets another.
pub(crate) fn json(value: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}
