//! The web UI: files from `ui/`, embedded at build time (see `build.rs`), served at `/`.
//!
//! - `/` and the app's own deep links (`/search`, `/map`, `/trace/<id>`) answer `index.html`,
//!   so a shared link or a reload lands in the app, which reads its state from the URL.
//! - `/ui/<path>` answers the embedded file with its content type.
//!
//! Only these paths are routed here: everything else (`/api/...`, `/jaeger/...`, `/metrics`,
//! `/ready`) keeps its own routes and the JSON 404 for unknown paths.
//!
//! Caching: file names carry no content hash, so nothing is marked immutable. Every answer has
//! an `ETag` (a hash of the contents) and `Cache-Control: no-cache`: the browser revalidates
//! and gets a bodyless 304 while the binary is unchanged, and never runs a stale module after
//! an upgrade.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::error::ApiError;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/ui_files.rs"));
}

/// The UI routes of the API server.
pub(crate) fn router() -> Router {
    Router::new()
        .route("/", get(app))
        .route("/search", get(app))
        .route("/map", get(app))
        .route("/trace", get(app))
        .route("/trace/{*id}", get(app))
        .route("/ui/{*path}", get(asset))
}

fn file(path: &str) -> Option<&'static [u8]> {
    embedded::FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, bytes)| *bytes)
}

/// The content type of a served file, by extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// A strong validator: FNV-1a over the contents, which only change with the binary.
fn etag(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

fn serve(path: &str, bytes: &'static [u8], request: &HeaderMap) -> Response {
    let tag = etag(bytes);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    if path.ends_with(".html") {
        // The app talks only to its own origin; styles set from scripts need 'unsafe-inline'.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                 object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
            ),
        );
    }
    (headers, bytes).into_response()
}

async fn app(request: HeaderMap) -> Response {
    match file("index.html") {
        Some(bytes) => serve("index.html", bytes, &request),
        None => ApiError::not_found(
            "this binary was built without the web UI (ui/index.html was missing at build time)",
        )
        .into_response(),
    }
}

async fn asset(Path(path): Path<String>, request: HeaderMap) -> Response {
    match file(&path) {
        Some(bytes) => serve(&path, bytes, &request),
        None => ApiError::not_found(format!("no web ui file /ui/{path}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(router: Router, uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::get(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        router
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    fn full() -> Router {
        router().merge(crate::http::api::router(
            crate::http::api::BuildInfo {
                version: "0".into(),
                revision: "r".into(),
                branch: "b".into(),
                build_user: String::new(),
                build_date: "d".into(),
                rust_version: "rustc".into(),
            },
            std::sync::Arc::default(),
        ))
    }

    #[tokio::test]
    async fn index_and_deep_links_answer_the_app() {
        for uri in ["/", "/search?service=api", "/map", "/trace/abc123"] {
            let resp = get(full(), uri, &[]).await;
            assert_eq!(resp.status(), StatusCode::OK, "{uri}");
            assert_eq!(
                resp.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8",
                "{uri}"
            );
            let body = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains("/ui/src/app.js"), "{uri}: {text}");
        }
    }

    #[tokio::test]
    async fn assets_have_content_types_and_revalidate_with_etags() {
        let resp = get(full(), "/ui/src/app.js", &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-cache");
        let tag = resp.headers()[header::ETAG]
            .to_str()
            .expect("etag")
            .to_owned();
        let again = get(full(), "/ui/src/app.js", &[("if-none-match", &tag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let css = get(full(), "/ui/style.css", &[]).await;
        assert_eq!(
            css.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn development_files_are_not_embedded() {
        for path in ["package.json", "README.md", "tsconfig.json"] {
            assert!(file(path).is_none(), "{path} should not be served");
        }
        let resp = get(full(), "/ui/package.json", &[]).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn api_paths_keep_their_json_404() {
        for uri in ["/api/nope", "/jaeger/api/nope", "/apix"] {
            let resp = get(full(), uri, &[]).await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{uri}");
            let body = to_bytes(resp.into_body(), usize::MAX).await.expect("body");
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json 404");
            assert!(v["error"].is_string(), "{uri}: {v}");
        }
    }
}
