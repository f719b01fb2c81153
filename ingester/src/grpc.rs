//! The OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use std::sync::Arc;

use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use prost::Message;
use skein_format::TenantId;
use skein_format::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::http;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::ingester::{Ingester, PushError};

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct Receiver {
    ingester: Arc<Ingester>,
    accept: EnabledCompressionEncodings,
    send: EnabledCompressionEncodings,
    max_decoding: usize,
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

/// The method path of `Export`.
const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Builds the gRPC service, accepting gzip and zstd requests.
///
/// It is written out rather than generated so that the request reaches the ingester as the
/// bytes it came in: [`Ingester::push_protobuf`] checks them and stores them as they are when
/// nothing needs to change, decoding only when it must.
pub fn service(ingester: Arc<Ingester>) -> Receiver {
    // tonic refuses messages above this size itself (OUT_OF_RANGE); below it the tenant's own
    // limit applies and answers RESOURCE_EXHAUSTED, as OTLP prescribes. Twice the largest
    // tenant limit keeps memory bounded while leaving the decision to the tenant limit.
    let hard = usize::try_from(ingester.config().limits.max_request_bytes_any())
        .unwrap_or(usize::MAX / 2)
        .saturating_mul(2);
    let mut accept = EnabledCompressionEncodings::default();
    accept.enable(CompressionEncoding::Gzip);
    accept.enable(CompressionEncoding::Zstd);
    let mut send = EnabledCompressionEncodings::default();
    send.enable(CompressionEncoding::Gzip);
    Receiver {
        ingester,
        accept,
        send,
        max_decoding: hard,
    }
}

impl tonic::server::NamedService for Receiver {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> tower::Service<http::Request<B>> for Receiver
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT {
            return Box::pin(async {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    tonic::Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            });
        }
        let this = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_compression_config(this.accept, this.send)
                .apply_max_message_size_config(Some(this.max_decoding), None);
            Ok(grpc.unary(Export(this.ingester), req).await)
        })
    }
}

/// `Export`, on the request's bytes.
struct Export(Arc<Ingester>);

impl tonic::server::UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = futures::future::BoxFuture<'static, Result<Response<Self::Response>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let ingester = Arc::clone(&self.0);
        Box::pin(async move { export(&ingester, request).await })
    }
}

async fn export(
    ingester: &Ingester,
    request: Request<Bytes>,
) -> Result<Response<ExportTraceServiceResponse>, Status> {
    let tenant = match request.metadata().get("x-scope-orgid") {
        None => TenantId::default_tenant(),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| Status::invalid_argument("x-scope-orgid is not valid text"))?;
            TenantId::new(s).map_err(|e| Status::invalid_argument(format!("x-scope-orgid: {e}")))?
        }
    };
    let body = request.into_inner();
    match ingester.push_protobuf(&tenant, body, "otlp_grpc").await {
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

/// Requests as their (decompressed) bytes, responses encoded with prost.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

#[derive(Debug, Clone, Copy, Default)]
struct ResponseEncoder;

#[derive(Debug, Clone, Copy, Default)]
struct BytesDecoder;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> BytesDecoder {
        BytesDecoder
    }
}

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the response: {e}")))
    }
}

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
