//! The error answers of the HTTP APIs: one error type, [`HttpError`], whose body takes the
//! shape of the API family answering, so that a client parses an error like the family's
//! other answers.
//!
//! | family | error type | body |
//! |---|---|---|
//! | Skein's own and the Tempo API: admin, web UI, readiness, metrics, 404 and 405 | [`ApiError`] | `{"error": message}` |
//! | Jaeger query API v1 | [`JaegerError`] | Jaeger's envelope, `{"data": null, "errors": [{"code": status, "msg": message}], "limit": 0, "offset": 0, "total": 0}` |
//! | Jaeger api_v3 | [`V3Error`] | Jaeger's grpc-gateway status, `{"error": {"httpCode": status, "message": message}}` |
//!
//! Helpers that every family uses (see `params`) refuse a request with a [`BadRequest`], which
//! `?` turns into the error of the family answering.

use std::marker::PhantomData;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::json;

/// An API family: the shape of its error bodies.
pub(crate) trait Family {
    /// The answer to an error with `status` and the user's `message`.
    fn response(status: StatusCode, message: &str) -> Response;
}

/// Skein's own errors, which the Tempo API shares: `{"error": message}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skein {}

/// The Jaeger query API v1: Jaeger's envelope with the error in its `errors` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JaegerV1 {}

/// The Jaeger api_v3: the status of Jaeger's grpc-gateway, `{"error": {"httpCode", "message"}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JaegerV3 {}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl Family for Skein {
    fn response(status: StatusCode, message: &str) -> Response {
        let body = Json(ErrorBody { error: message });
        (status, body).into_response()
    }
}

impl Family for JaegerV1 {
    fn response(status: StatusCode, message: &str) -> Response {
        let body = json!({
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{ "code": status.as_u16(), "msg": message }],
        });
        (status, json(body)).into_response()
    }
}

impl Family for JaegerV3 {
    fn response(status: StatusCode, message: &str) -> Response {
        let body = json!({ "error": { "httpCode": status.as_u16(), "message": message } });
        (status, json(body)).into_response()
    }
}

/// An error answered with an HTTP status and a message for the user, in the shape of family
/// `F`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpError<F> {
    status: StatusCode,
    message: String,
    family: PhantomData<F>,
}

/// An error of Skein's own APIs and the Tempo API, answered as `{"error": message}`.
pub(crate) type ApiError = HttpError<Skein>;
/// An error of the Jaeger query API v1, answered in Jaeger's envelope.
pub(crate) type JaegerError = HttpError<JaegerV1>;
/// An error of the Jaeger api_v3, answered as Jaeger's grpc-gateway status.
pub(crate) type V3Error = HttpError<JaegerV3>;

impl<F> HttpError<F> {
    /// An error with the given status and a message for the user.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        HttpError {
            status,
            message: message.into(),
            family: PhantomData,
        }
    }

    /// A 400 Bad Request: the request itself is wrong, and `message` says how.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A 404 Not Found.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// A 500 Internal Server Error. The cause belongs in the querier's log, not in `message`.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The HTTP status this error is answered with.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
}

impl<F: Family> IntoResponse for HttpError<F> {
    fn into_response(self) -> Response {
        F::response(self.status, &self.message)
    }
}

/// A request refused with 400 Bad Request by a helper every family uses; `?` turns it into the
/// error of the family answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRequest(pub(crate) String);

impl<F> From<BadRequest> for HttpError<F> {
    fn from(e: BadRequest) -> Self {
        HttpError::bad_request(e.0)
    }
}

/// The answer to a failed search: 400 when the query itself is at fault, else 500 with the
/// details logged.
pub(crate) fn search_error<F>(e: crate::error::Error) -> HttpError<F> {
    if let crate::error::Error::BadQuery(m) = e {
        return HttpError::bad_request(m);
    }
    tracing::error!(error = %e, "search failed");
    HttpError::internal("the search could not be completed; see the querier's log")
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use axum::http::header;

    use super::*;

    /// Status, content type and body of an error's answer.
    async fn answer(error: impl IntoResponse) -> (StatusCode, String, String) {
        let response = error.into_response();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("text content type")
            .to_owned();
        let body = to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body fits");
        let body = String::from_utf8(body.to_vec()).expect("utf-8 body");
        (status, content_type, body)
    }

    #[tokio::test]
    async fn each_family_answers_in_its_own_shape() {
        assert_eq!(
            answer(ApiError::bad_request("no \"x\"")).await,
            (
                StatusCode::BAD_REQUEST,
                "application/json".to_owned(),
                r#"{"error":"no \"x\""}"#.to_owned()
            )
        );
        assert_eq!(
            answer(JaegerError::not_found("trace not found")).await,
            (
                StatusCode::NOT_FOUND,
                "application/json".to_owned(),
                r#"{"data":null,"errors":[{"code":404,"msg":"trace not found"}],"limit":0,"offset":0,"total":0}"#
                    .to_owned()
            )
        );
        assert_eq!(
            answer(V3Error::internal("failed")).await,
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json".to_owned(),
                r#"{"error":{"httpCode":500,"message":"failed"}}"#.to_owned()
            )
        );
    }

    #[tokio::test]
    async fn a_shared_refusal_becomes_a_400_of_the_answering_family() {
        let refused = || BadRequest("limit=\"x\" is not a whole number".to_owned());
        let (status, _, body) = answer(JaegerError::from(refused())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.contains(r#""msg":"limit=\"x\" is not a whole number""#),
            "{body}"
        );
        let (status, _, body) = answer(ApiError::from(refused())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, r#"{"error":"limit=\"x\" is not a whole number"}"#);
    }
}
