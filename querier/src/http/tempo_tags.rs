//! The tag listings of the Tempo API, which feed Grafana's drop-downs and autocomplete:
//! `/api/search/tags` and `/api/v2/search/tags` (attribute names by scope), and
//! `/api/search/tag/<tag>/values` and `/api/v2/search/tag/<tag>/values` (typed values).
//!
//! - **Window**: `start` and `end` (Unix seconds) when given; otherwise the last
//!   `querier.tag_lookback` (default one hour), never the whole retention.
//! - **Narrowed by `q`** (v2): with a TraceQL query other than `{}`, names and values come
//!   from the spans the query matches in the newest [`NARROWING_TRACES`] matching traces of
//!   the window (the values of `span.http.route` where `{resource.service.name="x"}` are that
//!   service's routes). Without one they come from every block overlapping the window (its tag
//!   index when it can answer) and the ingesters.
//! - **Tags** are TraceQL references: `resource.service.name`, `span.http.route`, `.x` (span
//!   or resource), `event.x`, `link.x`, `instrumentation.x`, quoted parts (`span."a b"`), and
//!   the intrinsics unscoped (`name`, `status`, `kind`, `statusMessage`, `rootName`, …).
//! - `limit` caps the number of names per scope or of values.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use skein_format::SpanRecord;
use skein_format::block::SpanParts;
use skein_format::otlp::common::v1::KeyValue;
use skein_format::tagindex::type_name;
use skein_query::{Search, WindowOn};

use super::error::ApiError;
use super::json;
use super::params::{ignore_unknown, tenant};
use super::tempo::window;
use super::tempo_model as model;
use crate::engine::listings::TagScope;
use crate::engine::lookup::TraceLookup;

/// Matching traces whose spans a narrowed listing reads: the newest of the window.
pub(crate) const NARROWING_TRACES: usize = 1_000;
/// Most names per scope or values one listing returns.
const MAX_LISTED: usize = 100_000;

/// The intrinsics a listing names, as TraceQL writes them.
const INTRINSICS: &[&str] = &[
    "duration",
    "event:name",
    "instrumentation:name",
    "instrumentation:version",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "span:duration",
    "span:id",
    "span:kind",
    "span:name",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "status",
    "statusMessage",
    "trace:duration",
    "trace:id",
    "trace:rootName",
    "trace:rootService",
    "traceDuration",
];

struct Tags {
    lookup: Arc<TraceLookup>,
    lookback: Duration,
}

/// The tag routes, over `lookup`; listings without a window cover the last `lookback`.
pub(crate) fn router(lookup: Arc<TraceLookup>, lookback: Duration) -> Router {
    Router::new()
        .route("/api/search/tags", get(tags_v1))
        .route("/api/v2/search/tags", get(tags_v2))
        .route("/api/search/tag/{tag}/values", get(values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(values_v2))
        .with_state(Arc::new(Tags { lookup, lookback }))
}

impl Tags {
    /// The request's window, or the last `lookback`.
    fn window(&self, raw: &HashMap<String, String>) -> Result<(u64, u64), ApiError> {
        let mut w = raw.clone();
        w.retain(|k, _| k == "start" || k == "end");
        if let Some(given) = window(&w)? {
            return Ok(given);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok((
            now.saturating_sub(self.lookback.as_nanos() as u64),
            u64::MAX,
        ))
    }

    /// The spans a narrowing query `q` matches in the window (with `parts` read besides what
    /// `q` reads), or `None` when `q` is absent or matches every span.
    async fn narrowed(
        &self,
        headers: &HeaderMap,
        raw: &HashMap<String, String>,
        window: (u64, u64),
        parts: SpanParts,
    ) -> Result<Option<Vec<SpanRecord>>, ApiError> {
        let Some(q) = raw.get("q").map(|q| q.trim()).filter(|q| !q.is_empty()) else {
            return Ok(None);
        };
        let query = skein_traceql::parse(q)
            .map_err(|e| ApiError::bad_request(format!("invalid TraceQL query in q: {e}")))?;
        if query.is_match_all() {
            return Ok(None);
        }
        self.matched_spans(headers, query, window, parts)
            .await
            .map(Some)
    }

    async fn matched_spans(
        &self,
        headers: &HeaderMap,
        query: skein_traceql::Query,
        window: (u64, u64),
        parts: SpanParts,
    ) -> Result<Vec<SpanRecord>, ApiError> {
        let tenant = tenant(headers)?;
        let mut search = Search::new(query);
        search.window = Some(window);
        search.window_on = WindowOn::Trace;
        search.limit = NARROWING_TRACES;
        // The listing reads attributes the query may not name.
        search.also_read = parts;
        let result = self
            .lookup
            .search_traceql(&tenant, &search)
            .await
            .map_err(failed)?;
        let mut spans = Vec::new();
        for m in result.matched {
            let picked: BTreeSet<usize> = m
                .spansets
                .iter()
                .flat_map(|set| set.spans.iter().copied())
                .collect();
            spans.extend(picked.into_iter().filter_map(|i| m.spans.get(i).cloned()));
        }
        Ok(spans)
    }
}

fn failed(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "tag listing failed");
    ApiError::internal("the tags could not be listed; see the querier's log")
}

fn limit(raw: &HashMap<String, String>) -> Result<usize, ApiError> {
    match raw.get("limit").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(MAX_LISTED),
        Some(v) => match v.parse::<usize>() {
            Ok(0) => Ok(MAX_LISTED),
            Ok(n) => Ok(n.min(MAX_LISTED)),
            Err(_) => Err(ApiError::bad_request(format!(
                "limit={v:?} is not a whole number"
            ))),
        },
    }
}

/// Attribute keys of `spans` by scope: span (with event and link attributes, as the tag
/// index lists them) and resource.
fn keys_of(spans: &[SpanRecord]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut span, mut resource) = (BTreeSet::new(), BTreeSet::new());
    for s in spans {
        let lists = std::iter::once(&s.span.attributes)
            .chain(s.span.events.iter().map(|e| &e.attributes))
            .chain(s.span.links.iter().map(|l| &l.attributes));
        span.extend(lists.flatten().map(|kv| kv.key.clone()));
        resource.extend(
            s.resource
                .resource
                .attributes
                .iter()
                .map(|kv| kv.key.clone()),
        );
    }
    (span, resource)
}

/// `GET /api/search/tags`: `{"tagNames": [...]}`, span and resource attribute keys.
async fn tags_v1(
    State(tags): State<Arc<Tags>>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    ignore_unknown(
        raw.keys().map(String::as_str),
        &["start", "end", "limit", "maxStaleValues"],
    );
    let tenant = tenant(&headers)?;
    let window = tags.window(&raw)?;
    let names = tags
        .lookup
        .tag_names(&tenant, window)
        .await
        .map_err(failed)?;
    let all: Vec<&String> = names
        .span
        .iter()
        .chain(&names.resource)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(limit(&raw)?)
        .collect();
    Ok(json(serde_json::json!({ "tagNames": all })))
}

/// `GET /api/v2/search/tags`: Tempo's `SearchTagsV2Response`, names by scope (`span`,
/// `resource`, `intrinsic`); `scope=` picks one.
async fn tags_v2(
    State(tags): State<Arc<Tags>>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    ignore_unknown(
        raw.keys().map(String::as_str),
        &["scope", "q", "start", "end", "limit", "maxStaleValues"],
    );
    let want = raw.get("scope").map(|s| s.trim()).unwrap_or("");
    if !["", "all", "none", "span", "resource", "intrinsic"].contains(&want) {
        return Err(ApiError::bad_request(format!(
            "scope={want:?} is not one of span, resource, intrinsic, all"
        )));
    }
    let window = tags.window(&raw)?;
    let limit = limit(&raw)?;
    let (span, resource) = match tags
        .narrowed(&headers, &raw, window, SpanParts::ALL)
        .await?
    {
        Some(spans) => keys_of(&spans),
        None => {
            let tenant = tenant(&headers)?;
            let names = tags
                .lookup
                .tag_names(&tenant, window)
                .await
                .map_err(failed)?;
            (names.span, names.resource)
        }
    };
    let all = matches!(want, "" | "all" | "none");
    let mut scopes = Vec::new();
    let mut scope = |name: &str, names: Vec<String>| {
        scopes.push(model::SearchTagsV2Scope {
            name: name.to_owned(),
            tags: names.into_iter().take(limit).collect(),
        })
    };
    if all || want == "span" {
        scope("span", span.into_iter().collect());
    }
    if all || want == "resource" {
        scope("resource", resource.into_iter().collect());
    }
    if all || want == "intrinsic" {
        scope(
            "intrinsic",
            INTRINSICS.iter().map(|s| (*s).to_owned()).collect(),
        );
    }
    Ok(axum::Json(model::SearchTagsV2Response {
        scopes,
        metrics: model::MetadataMetrics::default(),
    })
    .into_response())
}

/// What a tag of a value listing names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tag {
    /// An intrinsic, by its canonical name.
    Intrinsic(&'static str),
    /// An attribute: where, and its key.
    Attribute(Place, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Span,
    Resource,
    Event,
    Link,
    Instrumentation,
    /// Span or resource.
    Any,
}

impl Tag {
    /// The parts of a span holding this tag's values.
    fn parts(&self) -> SpanParts {
        let mut parts = SpanParts::CORE;
        match self {
            Tag::Attribute(place, key) => match place {
                Place::Span => parts.span_attrs.add(key),
                Place::Resource => parts.resource.add(key),
                Place::Any => {
                    parts.span_attrs.add(key);
                    parts.resource.add(key);
                }
                Place::Event => parts.events = true,
                Place::Link => parts.links = true,
                Place::Instrumentation => parts.scope = true,
            },
            Tag::Intrinsic("event:name") => parts.events = true,
            Tag::Intrinsic("statusMessage") => parts.extras = true,
            Tag::Intrinsic("instrumentation:name" | "instrumentation:version") => {
                parts.scope = true
            }
            Tag::Intrinsic(_) => {}
        }
        parts
    }
}

/// Reads a TraceQL tag reference: an intrinsic, or a scoped or unscoped attribute whose key
/// may be quoted.
fn parse_tag(tag: &str) -> Result<Tag, ApiError> {
    let intrinsic = match tag {
        "name" | "span:name" => Some("name"),
        "status" | "span:status" => Some("status"),
        "kind" | "span:kind" => Some("kind"),
        "statusMessage" | "span:statusMessage" => Some("statusMessage"),
        "rootName" | "trace:rootName" => Some("rootName"),
        "rootServiceName" | "trace:rootService" => Some("rootServiceName"),
        "event:name" => Some("event:name"),
        "instrumentation:name" => Some("instrumentation:name"),
        "instrumentation:version" => Some("instrumentation:version"),
        // Intrinsics without a listing of values (durations, IDs): none, as in Tempo.
        other => INTRINSICS.iter().copied().find(|i| *i == other),
    };
    if let Some(i) = intrinsic {
        return Ok(Tag::Intrinsic(i));
    }
    let scoped = [
        ("span.", Place::Span),
        ("resource.", Place::Resource),
        ("event.", Place::Event),
        ("link.", Place::Link),
        ("instrumentation.", Place::Instrumentation),
        (".", Place::Any),
    ];
    let Some((place, rest)) = scoped
        .iter()
        .find_map(|(prefix, place)| tag.strip_prefix(prefix).map(|rest| (*place, rest)))
    else {
        return Err(ApiError::bad_request(format!(
            "tag {tag:?} is not a TraceQL attribute or intrinsic: write it scoped (span.{tag}, resource.{tag}) or unscoped (.{tag}), or name an intrinsic (name, status, kind, statusMessage, rootName, rootServiceName)"
        )));
    };
    let key = unquote(rest).ok_or_else(|| {
        ApiError::bad_request(format!("tag {tag:?} has a badly quoted attribute name"))
    })?;
    if key.is_empty() {
        return Err(ApiError::bad_request(format!(
            "tag {tag:?} names no attribute"
        )));
    }
    Ok(Tag::Attribute(place, key))
}

/// An attribute name with its quoted parts (`"a b"`, `\"` and `\\` escapes) read.
fn unquote(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => out.push(chars.next()?),
                c => out.push(c),
            }
        }
    }
    Some(out)
}

type Values = BTreeSet<(&'static str, String)>;

fn typed(kv: &KeyValue) -> (&'static str, String) {
    (
        type_name(kv),
        kv.value
            .as_ref()
            .map(skein_format::model::value_string)
            .unwrap_or_default(),
    )
}

/// The values of `tag` on `spans`.
fn values_on(tag: &Tag, spans: &[SpanRecord]) -> Values {
    fn add(out: &mut Values, kvs: &[KeyValue], key: &str) {
        out.extend(kvs.iter().filter(|kv| kv.key == key).map(typed));
    }
    let mut out = Values::new();
    for s in spans {
        let out = &mut out;
        match tag {
            Tag::Attribute(place, key) => match place {
                Place::Span => add(out, &s.span.attributes, key),
                Place::Resource => add(out, &s.resource.resource.attributes, key),
                Place::Instrumentation => add(out, &s.scope.scope.attributes, key),
                Place::Event => s
                    .span
                    .events
                    .iter()
                    .for_each(|e| add(out, &e.attributes, key)),
                Place::Link => s
                    .span
                    .links
                    .iter()
                    .for_each(|l| add(out, &l.attributes, key)),
                Place::Any => {
                    add(out, &s.span.attributes, key);
                    add(out, &s.resource.resource.attributes, key);
                }
            },
            Tag::Intrinsic(name) => intrinsic_values(name, s, out),
        }
    }
    out
}

fn intrinsic_values(name: &str, s: &SpanRecord, out: &mut Values) {
    use skein_format::otlp::trace::v1::span::SpanKind;
    use skein_format::otlp::trace::v1::status::StatusCode;
    match name {
        "name" => {
            out.insert(("string", s.span.name.clone()));
        }
        "status" => {
            let code = s.span.status.as_ref().map_or(0, |st| st.code);
            let v = match StatusCode::try_from(code) {
                Ok(StatusCode::Error) => "error",
                Ok(StatusCode::Ok) => "ok",
                _ => "unset",
            };
            out.insert(("keyword", v.to_owned()));
        }
        "kind" => {
            let v = match SpanKind::try_from(s.span.kind) {
                Ok(SpanKind::Internal) => "internal",
                Ok(SpanKind::Server) => "server",
                Ok(SpanKind::Client) => "client",
                Ok(SpanKind::Producer) => "producer",
                Ok(SpanKind::Consumer) => "consumer",
                _ => "unspecified",
            };
            out.insert(("keyword", v.to_owned()));
        }
        "statusMessage" => {
            if let Some(m) = s.span.status.as_ref().map(|st| &st.message)
                && !m.is_empty()
            {
                out.insert(("string", m.clone()));
            }
        }
        "rootName" if s.span.parent_span_id.is_empty() => {
            out.insert(("string", s.span.name.clone()));
        }
        "rootServiceName" if s.span.parent_span_id.is_empty() => {
            out.insert(("string", s.service_name().to_owned()));
        }
        "event:name" => {
            out.extend(s.span.events.iter().map(|e| ("string", e.name.clone())));
        }
        "instrumentation:name" if !s.scope.scope.name.is_empty() => {
            out.insert(("string", s.scope.scope.name.clone()));
        }
        "instrumentation:version" if !s.scope.scope.version.is_empty() => {
            out.insert(("string", s.scope.scope.version.clone()));
        }
        _ => {}
    }
}

impl Tags {
    /// The typed values of `tag` in the window, narrowed by `q` when given.
    async fn values(
        &self,
        headers: &HeaderMap,
        raw: &HashMap<String, String>,
        tag: &Tag,
    ) -> Result<Values, ApiError> {
        let window = self.window(raw)?;
        if let Some(spans) = self.narrowed(headers, raw, window, tag.parts()).await? {
            return Ok(values_on(tag, &spans));
        }
        let scope = match tag {
            Tag::Attribute(Place::Span, _) => Some(Some(TagScope::Span)),
            Tag::Attribute(Place::Resource, _) => Some(Some(TagScope::Resource)),
            Tag::Attribute(Place::Any, _) => Some(None),
            _ => None,
        };
        if let (Some(scope), Tag::Attribute(_, key)) = (scope, tag) {
            let tenant = tenant(headers)?;
            return self
                .lookup
                .tag_values(&tenant, scope, key, window)
                .await
                .map_err(failed);
        }
        if *tag == Tag::Intrinsic("status") {
            return Ok(["error", "ok", "unset"]
                .into_iter()
                .map(|v| ("keyword", v.to_owned()))
                .collect());
        }
        // Intrinsics and event, link and instrumentation attributes: from the spans of the
        // newest traces of the window.
        let all = skein_traceql::parse("{}").map_err(|e| ApiError::internal(e.to_string()))?;
        let spans = self
            .matched_spans(headers, all, window, tag.parts())
            .await?;
        Ok(values_on(tag, &spans))
    }
}

/// `GET /api/search/tag/{tag}/values`: `{"tagValues": [...]}`, the values of attribute `tag`
/// on spans and resources.
async fn values_v1(
    State(tags): State<Arc<Tags>>,
    Path(tag): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    ignore_unknown(
        raw.keys().map(String::as_str),
        &["start", "end", "limit", "maxStaleValues"],
    );
    let mut plain = raw.clone();
    plain.remove("q");
    let values = tags
        .values(&headers, &plain, &Tag::Attribute(Place::Any, tag))
        .await?;
    let strings: Vec<String> = values
        .into_iter()
        .map(|(_, v)| v)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(limit(&raw)?)
        .collect();
    Ok(json(serde_json::json!({ "tagValues": strings })))
}

/// `GET /api/v2/search/tag/{tag}/values`: Tempo's `SearchTagValuesV2Response`, the typed
/// values of a TraceQL tag, narrowed by `q`.
async fn values_v2(
    State(tags): State<Arc<Tags>>,
    Path(tag): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    ignore_unknown(
        raw.keys().map(String::as_str),
        &["q", "start", "end", "limit", "maxStaleValues"],
    );
    let tag = parse_tag(&tag)?;
    let values = tags.values(&headers, &raw, &tag).await?;
    let tag_values = values
        .into_iter()
        .take(limit(&raw)?)
        .map(|(ty, value)| model::TagValue {
            kind: ty.to_owned(),
            value,
        })
        .collect();
    Ok(axum::Json(model::SearchTagValuesV2Response {
        tag_values,
        metrics: model::MetadataMetrics::default(),
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_as_traceql_references() {
        assert_eq!(
            parse_tag("resource.service.name").unwrap(),
            Tag::Attribute(Place::Resource, "service.name".into())
        );
        assert_eq!(
            parse_tag("span.\"a b\"").unwrap(),
            Tag::Attribute(Place::Span, "a b".into())
        );
        assert_eq!(
            parse_tag(".x").unwrap(),
            Tag::Attribute(Place::Any, "x".into())
        );
        assert_eq!(parse_tag("span:status").unwrap(), Tag::Intrinsic("status"));
        assert_eq!(parse_tag("name").unwrap(), Tag::Intrinsic("name"));
        assert!(
            parse_tag("http.method").is_err(),
            "an attribute needs a scope"
        );
        assert_eq!(parse_tag("duration").unwrap(), Tag::Intrinsic("duration"));
        assert!(parse_tag("span.").is_err());
        assert!(parse_tag("span.\"open").is_err());
    }
}
