//! The admin API: reading and setting a tenant's overrides while Skein runs.
//!
//! `GET /api/admin/tenants/{tenant}/overrides` answers the overrides stored for the tenant
//! (`{}` when none); `PUT` with a JSON document such as `{"retention": "7d"}` replaces them.
//! They are kept in object storage (see [`skein_storage::overrides`]), so every process of a
//! deployment sees them at its next refresh (`compactor.overrides_refresh`), and they win
//! over the overrides file. `PUT {}` removes them.
//!
//! Every request needs `Authorization: Bearer <querier.admin_token>`: without it the answer
//! is 401, with another token 403. With no token configured the API is disabled (404).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use skein_format::{Store, TenantId};
use skein_storage::overrides::{TenantOverrides, read_tenant_overrides, write_tenant_overrides};

use super::error::ApiError;

struct Admin {
    store: Store,
    token: String,
}

/// The admin routes, served on the API server.
pub(crate) fn router(store: Store, token: String) -> Router {
    Router::new()
        .route(
            "/api/admin/tenants/{tenant}/overrides",
            get(get_overrides).put(put_overrides),
        )
        .with_state(Arc::new(Admin { store, token }))
}

/// Compares without stopping at the first difference, so timing does not reveal a prefix.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorize(admin: &Admin, headers: &HeaderMap) -> Result<(), ApiError> {
    if admin.token.is_empty() {
        return Err(ApiError::not_found(
            "the admin API is disabled: set querier.admin_token to enable it",
        ));
    }
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the admin API needs an \"Authorization: Bearer <admin token>\" header",
        ));
    };
    if !same_secret(given.trim().as_bytes(), admin.token.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the admin token is wrong",
        ));
    }
    Ok(())
}

/// The response for a refused request; a 401 says which scheme to use.
fn deny(e: ApiError) -> Response {
    let unauthorized = e.status() == StatusCode::UNAUTHORIZED;
    let mut r = e.into_response();
    if unauthorized {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

fn tenant(raw: &str) -> Result<TenantId, ApiError> {
    TenantId::new(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn storage_error(e: skein_storage::Error) -> Response {
    tracing::warn!(error = %e, "admin api: object storage failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "object storage is unavailable; try again",
    )
    .into_response()
}

async fn get_overrides(
    State(admin): State<Arc<Admin>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Response {
    let tenant = match authorize(&admin, &headers).and_then(|()| tenant(&raw)) {
        Ok(t) => t,
        Err(e) => return deny(e),
    };
    match read_tenant_overrides(&admin.store, &tenant).await {
        Ok(o) => Json(o.unwrap_or_default().to_value()).into_response(),
        Err(e) => storage_error(e),
    }
}

async fn put_overrides(
    State(admin): State<Arc<Admin>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tenant = match authorize(&admin, &headers).and_then(|()| tenant(&raw)) {
        Ok(t) => t,
        Err(e) => return deny(e),
    };
    let overrides = match TenantOverrides::from_json(&body) {
        Ok(o) => o,
        Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
    };
    match write_tenant_overrides(&admin.store, &tenant, &overrides).await {
        Ok(()) => {
            tracing::info!(%tenant, overrides = %overrides.to_value(), "tenant overrides set");
            Json(overrides.to_value()).into_response()
        }
        Err(e) => storage_error(e),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use skein_storage::StorageConfig;
    use tower::ServiceExt;

    use super::*;

    async fn call(
        router: &Router,
        method: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, String) {
        let mut req = Request::builder()
            .method(method)
            .uri("/api/admin/tenants/team-a/overrides");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = router
            .clone()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn auth_validation_and_round_trip() {
        let store = StorageConfig::Memory {}.open().unwrap();
        let disabled = router(store.clone(), String::new());
        let (s, body) = call(&disabled, "GET", Some("x"), "").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(body.contains("admin_token"), "{body}");

        let r = router(store, "s3cret".into());
        assert_eq!(call(&r, "GET", None, "").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(
            call(&r, "GET", Some("nope"), "").await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            call(&r, "GET", Some("s3cret"), "").await,
            (StatusCode::OK, "{}".into())
        );
        for bad in [
            r#"{"retention":"-1d"}"#,
            r#"{"retention":"soon"}"#,
            r#"{"retention":"99999999d"}"#,
            "{",
        ] {
            let (s, body) = call(&r, "PUT", Some("s3cret"), bad).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert!(body.contains("error"), "{body}");
        }
        let (s, _) = call(&r, "PUT", Some("s3cret"), r#"{"retention":"7d"}"#).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            call(&r, "GET", Some("s3cret"), "").await,
            (StatusCode::OK, r#"{"retention":"7d"}"#.into())
        );
    }
}
