//! The OTLP/HTTP receiver (`POST /v1/traces`) and the Zipkin v2 receiver
//! (`POST /api/v2/spans`), following the OTLP specification's rules for status codes and
//! bodies: the response uses the request's content type; errors carry a `google.rpc.Status`;
//! 429 and 503 are retryable and say when (`Retry-After`), everything else is final.

// Early returns carry the finished error response; it is built once per failed request, so
// its size does not matter.
#![allow(clippy::result_large_err)]

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;
use skein_format::TenantId;
use skein_format::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use skein_query::recent::TENANT_HEADER;

use crate::ingester::{Ingester, PushError, PushOk};
use crate::otlp_json::{decode_export_request, encode_export_response_json, encode_status_json};
use crate::zipkin::decode_zipkin_v2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

#[derive(Clone)]
struct AppState {
    ingester: Arc<Ingester>,
    max_body: usize,
}

/// The receiver's routes.
pub fn router(ingester: Arc<Ingester>) -> Router {
    let max_body =
        usize::try_from(ingester.config().limits.max_request_bytes_any()).unwrap_or(usize::MAX);
    Router::new()
        .route("/v1/traces", post(otlp))
        .route("/api/v2/spans", post(zipkin))
        // Limits are applied by the handlers, after decompression, with a clear message.
        .layer(DefaultBodyLimit::disable())
        .with_state(AppState { ingester, max_body })
}

/// gRPC codes used in `google.rpc.Status` bodies.
mod code {
    pub(super) const INVALID_ARGUMENT: i32 = 3;
    pub(super) const RESOURCE_EXHAUSTED: i32 = 8;
    pub(super) const UNAVAILABLE: i32 = 14;
}

fn error(
    status: StatusCode,
    grpc_code: i32,
    message: &str,
    enc: Encoding,
    retry_after: Option<u64>,
) -> Response {
    let body = match enc {
        Encoding::Json => encode_status_json(grpc_code, message),
        Encoding::Protobuf => tonic_types::Status {
            code: grpc_code,
            message: message.to_owned(),
            details: Vec::new(),
        }
        .encode_to_vec(),
    };
    let mut resp = (status, [(header::CONTENT_TYPE, enc.content_type())], body).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    resp
}

fn bad_request(message: &str, enc: Encoding) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        code::INVALID_ARGUMENT,
        message,
        enc,
        None,
    )
}

fn tenant(headers: &HeaderMap) -> Result<TenantId, String> {
    match headers.get(TENANT_HEADER) {
        None => Ok(TenantId::default_tenant()),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| format!("{TENANT_HEADER} is not valid text"))?;
            TenantId::new(s).map_err(|e| format!("{TENANT_HEADER}: {e}"))
        }
    }
}

/// Reads and decompresses the body, refusing more than `max` bytes either way.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    enc: Encoding,
) -> Result<Bytes, Response> {
    let too_large = |what: &str| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::INVALID_ARGUMENT,
            &format!("{what} is larger than the limit of {max} bytes; send smaller batches"),
            enc,
            None,
        )
    };
    let raw = axum::body::to_bytes(body, max)
        .await
        .map_err(|_| too_large("the request body"))?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let mut out = Vec::new();
    let limit = max as u64 + 1;
    let result = match encoding.as_str() {
        "" | "identity" => return Ok(raw),
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(raw.as_ref())
            .take(limit)
            .read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(raw.as_ref())
            .take(limit)
            .read_to_end(&mut out),
        "zstd" => match zstd::stream::read::Decoder::new(raw.as_ref()) {
            Ok(d) => d.take(limit).read_to_end(&mut out),
            Err(e) => Err(e),
        },
        other => {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_ARGUMENT,
                &format!("content-encoding {other:?} is not supported; use gzip, zstd or none"),
                enc,
                None,
            ));
        }
    };
    match result {
        Ok(_) if out.len() > max => Err(too_large("the decompressed request body")),
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) => Err(bad_request(
            &format!("cannot decompress the {encoding} request body: {e}"),
            enc,
        )),
    }
}

fn request_encoding(headers: &HeaderMap) -> Result<Encoding, Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::INVALID_ARGUMENT,
            &format!(
                "content-type {ct:?} is not supported; use application/x-protobuf or application/json"
            ),
            Encoding::Json,
            None,
        )),
    }
}

fn push_response(result: Result<PushOk, PushError>, enc: Encoding) -> Response {
    match result {
        Ok(ok) => {
            let refused = ok.refused.total();
            let body = match enc {
                Encoding::Json => {
                    // Full success leaves partialSuccess out, as for protobuf.
                    let message = if refused > 0 {
                        ok.refused.message()
                    } else {
                        String::new()
                    };
                    encode_export_response_json(refused as i64, &message)
                }
                Encoding::Protobuf => ExportTraceServiceResponse {
                    // Full success leaves partial_success unset.
                    partial_success: (refused > 0).then(|| ExportTracePartialSuccess {
                        rejected_spans: refused as i64,
                        error_message: ok.refused.message(),
                    }),
                }
                .encode_to_vec(),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, enc.content_type())],
                body,
            )
                .into_response()
        }
        Err(PushError::InvalidData(m)) => bad_request(&m, enc),
        Err(PushError::TooLarge(m)) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::INVALID_ARGUMENT,
            &m,
            enc,
            None,
        ),
        Err(PushError::RateLimited {
            message,
            retry_after,
        }) => error(
            StatusCode::TOO_MANY_REQUESTS,
            code::RESOURCE_EXHAUSTED,
            &message,
            enc,
            Some(retry_after.as_secs_f64().ceil() as u64),
        ),
        Err(PushError::Unavailable {
            message,
            retry_after,
        }) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            &message,
            enc,
            Some(retry_after.as_secs_f64().ceil() as u64),
        ),
    }
}

async fn otlp(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let enc = match request_encoding(&headers) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let tenant = match tenant(&headers) {
        Ok(t) => t,
        Err(m) => return bad_request(&m, enc),
    };
    let body = match read_body(&headers, body, app.max_body, enc).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let pushed = match enc {
        // Checked on its bytes, and decoded only when it must be (see `push_protobuf`).
        Encoding::Protobuf => {
            app.ingester
                .push_protobuf(&tenant, body, "otlp_http_protobuf")
                .await
        }
        Encoding::Json => match decode_export_request(&body) {
            Ok(r) => {
                app.ingester
                    .push(&tenant, r, body.len(), None, "otlp_http_json")
                    .await
            }
            Err(e) => return bad_request(&format!("the body is not valid OTLP/JSON: {e}"), enc),
        },
    };
    push_response(pushed, enc)
}

async fn zipkin(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !ct
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::INVALID_ARGUMENT,
            &format!(
                "content-type {ct:?} is not supported on the zipkin endpoint; send Zipkin v2 JSON (application/json)"
            ),
            Encoding::Json,
            None,
        );
    }
    let tenant = match tenant(&headers) {
        Ok(t) => t,
        Err(m) => return bad_request(&m, Encoding::Json),
    };
    let body = match read_body(&headers, body, app.max_body, Encoding::Json).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let resource_spans = match decode_zipkin_v2(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad_request(
                &format!("the body is not valid Zipkin v2 JSON: {e}"),
                Encoding::Json,
            );
        }
    };
    let request = ExportTraceServiceRequest { resource_spans };
    match app
        .ingester
        .push(&tenant, request, body.len(), None, "zipkin")
        .await
    {
        // Zipkin's API answers 202 with no body.
        Ok(ok) if ok.refused.total() == 0 => StatusCode::ACCEPTED.into_response(),
        other => push_response(other, Encoding::Json),
    }
}
