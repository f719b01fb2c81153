//! The OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use std::sync::Arc;

use skein_format::TenantId;
use skein_format::otlp::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use skein_format::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::ingester::{Ingester, PushError};

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct Receiver {
    ingester: Arc<Ingester>,
}

/// tonic answers a message over `max_decoding_message_size` with OUT_OF_RANGE, which OTLP
/// clients retry; the OTLP specification wants RESOURCE_EXHAUSTED (final without RetryInfo)
/// for a request that is too large. tonic sends such errors as a trailers-only response, so
/// the status is a header that can be rewritten on the way out.
pub fn out_of_range_is_resource_exhausted<B>(
    mut resp: axum::http::Response<B>,
) -> axum::http::Response<B> {
    const OUT_OF_RANGE: &str = "11";
    const RESOURCE_EXHAUSTED: u16 = 8;
    let headers = resp.headers_mut();
    if headers
        .get("grpc-status")
        .is_some_and(|v| v == OUT_OF_RANGE)
    {
        headers.insert(
            "grpc-status",
            axum::http::HeaderValue::from(RESOURCE_EXHAUSTED),
        );
    }
    resp
}

/// Builds the tonic service, accepting gzip and zstd requests.
pub fn service(ingester: Arc<Ingester>) -> TraceServiceServer<Receiver> {
    // tonic refuses messages above this size itself (OUT_OF_RANGE); below it the tenant's own
    // limit applies and answers RESOURCE_EXHAUSTED, as OTLP prescribes. Twice the largest
    // tenant limit keeps memory bounded while leaving the decision to the tenant limit.
    let hard = usize::try_from(ingester.config().limits.max_request_bytes_any())
        .unwrap_or(usize::MAX / 2)
        .saturating_mul(2);
    TraceServiceServer::new(Receiver { ingester })
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(hard)
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let tenant = match request.metadata().get("x-scope-orgid") {
            None => TenantId::default_tenant(),
            Some(v) => {
                let s = v
                    .to_str()
                    .map_err(|_| Status::invalid_argument("x-scope-orgid is not valid text"))?;
                TenantId::new(s)
                    .map_err(|e| Status::invalid_argument(format!("x-scope-orgid: {e}")))?
            }
        };
        let req = request.into_inner();
        let len = prost::Message::encoded_len(&req);
        match self
            .ingester
            .push(&tenant, req, len, None, "otlp_grpc")
            .await
        {
            Ok(ok) => {
                let refused = ok.refused.total();
                Ok(Response::new(ExportTraceServiceResponse {
                    partial_success: (refused > 0).then(|| ExportTracePartialSuccess {
                        rejected_spans: refused as i64,
                        error_message: ok.refused.message(),
                    }),
                }))
            }
            Err(PushError::InvalidData(m)) => Err(Status::invalid_argument(m)),
            // Without RetryInfo, RESOURCE_EXHAUSTED is final for OTLP clients: right for a
            // request that will never fit.
            Err(PushError::TooLarge(m)) => Err(Status::resource_exhausted(m)),
            Err(PushError::RateLimited {
                message,
                retry_after,
            }) => Err(Status::with_error_details(
                tonic::Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(Some(retry_after)),
            )),
            Err(PushError::Unavailable {
                message,
                retry_after,
            }) => Err(Status::with_error_details(
                tonic::Code::Unavailable,
                message,
                ErrorDetails::with_retry_info(Some(retry_after)),
            )),
        }
    }
}
