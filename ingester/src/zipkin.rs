//! Zipkin v2 JSON (`POST /api/v2/spans`, a JSON array of spans as defined by
//! `zipkin2-api.yaml`) converted to OTLP spans.
//!
//! The mapping follows the OpenTelemetry Collector's Zipkin receiver (contrib
//! `pkg/translator/zipkin/zipkinv2`), so that data reads the same whether it came through a
//! collector or straight to Skein, with these deliberate differences:
//!
//! - Endpoint attributes use the current semantic conventions (`network.peer.address`,
//!   `network.peer.port`, `network.local.address`, `network.local.port`, `peer.service`)
//!   where the collector still writes `net.peer.ip`, `net.host.ip` and friends. A Zipkin
//!   endpoint carries no host name, so `server.address` is never set.
//! - A span without `localEndpoint.serviceName` gets `service.name = unknown_service` (the
//!   OpenTelemetry fallback) instead of a resource with no service name at all.
//! - The `error` tag marks the span as an error whatever its value (Zipkin's meaning: the
//!   value is the error message, often not `"true"`), except the value `"false"`; the
//!   collector only reacts to `"true"`.
//! - When `kind` is absent, an OpenTracing `span.kind` tag of any of the five values sets the
//!   kind (the collector only maps `internal`).
//! - IDs shorter than 16 (or, for trace IDs, 32) hex characters are left-padded with zeros as
//!   the Zipkin server itself does; upper-case hex is accepted.
//! - Resources are listed in order of first appearance, not sorted by service name.
//! - Resource-level tags (`host.name`, `telemetry.sdk.*`, ...) stay span attributes; the
//!   collector moves a fixed list of them to the resource.
//!
//! What the conversion keeps as Zipkin sent it: a `shared: true` SERVER span keeps the span ID
//! of the CLIENT span it shares, as in the collector, so one trace holds two spans with the
//! same ID (readers must not merge them). `debug` is a sampling override with no OTLP
//! counterpart and is dropped.
//!
//! Required fields (`traceId`, `id`) and the types of all fields are checked; an error names
//! the span by its index, e.g. `[2].traceId: missing (a zipkin span needs a trace id)`. Unlike
//! OTLP, where bad IDs are counted as rejected spans by the caller, Zipkin gives no way to say
//! which spans were refused, so a malformed span refuses the whole body.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use serde_json::{Map, Value};

use crate::json::{
    JsonError, JsonPath, boolean, field, field_or_default, found, integer, list, object,
    parse_json, quote, string,
};

/// `service.name` for spans whose local endpoint names no service.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The attribute the collector sets on a span that came without a start timestamp (its start
/// is then 0, the Unix epoch).
pub const START_TIME_ABSENT_ATTRIBUTE: &str = "otel.zipkin.absentField.startTime";

/// Decodes a Zipkin v2 JSON body into OTLP resource spans: one `ResourceSpans` per distinct
/// `localEndpoint.serviceName`, one `ScopeSpans` per instrumentation scope within it (from the
/// `otel.scope.name` / `otel.scope.version` tags that OpenTelemetry's Zipkin exporters write).
pub fn decode_zipkin_v2(body: &[u8]) -> Result<Vec<ResourceSpans>, JsonError> {
    let root = parse_json(body)?;
    let path = JsonPath::root();
    let Value::Array(items) = &root else {
        return Err(JsonError::at(
            &path,
            format!(
                "the request body must be a json array of zipkin v2 spans, found {}",
                found(&root)
            ),
        ));
    };
    let mut batch = Batch::default();
    for (index, item) in items.iter().enumerate() {
        let path = path.index(index);
        batch.push(convert_span(item, &path)?);
    }
    Ok(batch.resource_spans)
}

/// One converted span and where it belongs.
struct Converted {
    service_name: String,
    scope: Option<InstrumentationScope>,
    span: Span,
}

/// Spans grouped by service, then by scope, each in order of first appearance.
#[derive(Default)]
struct Batch {
    resource_spans: Vec<ResourceSpans>,
    by_service: HashMap<String, usize>,
}

impl Batch {
    fn push(&mut self, converted: Converted) {
        let Converted {
            service_name,
            scope,
            span,
        } = converted;
        let index = *self
            .by_service
            .entry(service_name)
            .or_insert_with_key(|name| {
                self.resource_spans.push(ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![string_attribute("service.name", name.clone())],
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                self.resource_spans.len() - 1
            });
        let scopes = &mut self.resource_spans[index].scope_spans;
        // Linear: a service rarely reports through more than a few instrumentation scopes.
        match scopes
            .iter_mut()
            .find(|scope_spans| scope_spans.scope == scope)
        {
            Some(scope_spans) => scope_spans.spans.push(span),
            None => scopes.push(ScopeSpans {
                scope,
                spans: vec![span],
                ..Default::default()
            }),
        }
    }
}

fn convert_span(value: &Value, path: &JsonPath<'_>) -> Result<Converted, JsonError> {
    let map = object(value, path, "a zipkin span")?;
    let trace_id = required(map, "traceId", path, "a trace id", |value, path| {
        hex_id(value, path, 16, "a zipkin trace id", "16 or 32")
    })?;
    let span_id = required(map, "id", path, "a span id", |value, path| {
        hex_id(value, path, 8, "a zipkin span id", "16")
    })?;
    let parent_span_id = field(map, "parentId", path, |value, path| {
        hex_id(value, path, 8, "a zipkin span id", "16")
    })?
    // Zipkin reads an empty or all-zero parent ID as "no parent", and a span that names
    // itself as its parent (a known instrumentation bug) as a root, as the collector does.
    .filter(|parent| !parent.is_empty() && parent.iter().any(|&b| b != 0) && *parent != span_id)
    .unwrap_or_default();
    let name = field_or_default(map, "name", path, string)?;
    let kind = field(map, "kind", path, zipkin_kind)?;
    let start = field(map, "timestamp", path, micros_to_nanos)?;
    let duration = field_or_default(map, "duration", path, micros_to_nanos)?;
    let local = field(map, "localEndpoint", path, endpoint)?.unwrap_or_default();
    let remote = field(map, "remoteEndpoint", path, endpoint)?.unwrap_or_default();
    let events = list(map, "annotations", path, annotation)?;
    let mut tags = field(map, "tags", path, tags)?.unwrap_or_default();
    // Checked so that a malformed body is refused, but not carried over: see the module
    // documentation.
    field(map, "debug", path, boolean)?;
    field(map, "shared", path, boolean)?;

    let end = start.unwrap_or(0).checked_add(duration).ok_or_else(|| {
        JsonError::at(
            &path.key("duration"),
            "timestamp plus duration is beyond the year 2554",
        )
    })?;
    let trace_state = tags.remove("w3c.tracestate").unwrap_or_default();
    let kind = kind.unwrap_or_else(|| kind_from_tag(&mut tags));
    let status = status_from_tags(&mut tags);
    let scope = scope_from_tags(&mut tags);

    let mut attributes: Vec<KeyValue> = tags
        .into_iter()
        .map(|(key, value)| string_attribute(&key, value))
        .collect();
    // Endpoint facts come from the endpoint objects, which are authoritative over a tag of
    // the same name.
    if let Some(address) = local.address {
        upsert(
            &mut attributes,
            "network.local.address",
            string_value(address),
        );
    }
    if let Some(port) = local.port {
        upsert(&mut attributes, "network.local.port", int_value(port));
    }
    if let Some(service) = remote.service_name {
        upsert(&mut attributes, "peer.service", string_value(service));
    }
    if let Some(address) = remote.address {
        upsert(
            &mut attributes,
            "network.peer.address",
            string_value(address),
        );
    }
    if let Some(port) = remote.port {
        upsert(&mut attributes, "network.peer.port", int_value(port));
    }
    if start.is_none() {
        upsert(
            &mut attributes,
            START_TIME_ABSENT_ATTRIBUTE,
            any_value::Value::BoolValue(true),
        );
    }

    Ok(Converted {
        service_name: local
            .service_name
            .unwrap_or_else(|| UNKNOWN_SERVICE.to_owned()),
        scope,
        span: Span {
            trace_id,
            span_id,
            trace_state,
            parent_span_id,
            name,
            kind,
            start_time_unix_nano: start.unwrap_or(0),
            end_time_unix_nano: end,
            attributes,
            events,
            status,
            ..Default::default()
        },
    })
}

/// A field that must be present and not empty.
fn required<T>(
    map: &Map<String, Value>,
    key: &str,
    path: &JsonPath<'_>,
    what: &str,
    decode: impl FnOnce(&Value, &JsonPath<'_>) -> Result<T, JsonError>,
) -> Result<T, JsonError> {
    match map.get(key) {
        None | Some(Value::Null) => Err(JsonError::at(
            &path.key(key),
            format!("missing (a zipkin span needs {what})"),
        )),
        Some(Value::String(s)) if s.is_empty() => Err(JsonError::at(
            &path.key(key),
            format!("empty (a zipkin span needs {what})"),
        )),
        Some(value) => decode(value, &path.key(key)),
    }
}

/// A Zipkin ID: up to `bytes * 2` hex characters, left-padded with zeros to `bytes` bytes
/// (so a 64-bit trace ID becomes a 128-bit one with the high half zero, as in the collector).
/// `""` is no ID.
fn hex_id(
    value: &Value,
    path: &JsonPath<'_>,
    bytes: usize,
    what: &str,
    lengths: &str,
) -> Result<Vec<u8>, JsonError> {
    let text = string(value, path)?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let invalid = || {
        JsonError::at(
            path,
            format!(
                "{} is not {what} (expected {lengths} hex characters)",
                quote(&text)
            ),
        )
    };
    if text.len() > bytes * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let padded = format!("{text:0>width$}", width = bytes * 2);
    padded
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)
}

fn zipkin_kind(value: &Value, path: &JsonPath<'_>) -> Result<i32, JsonError> {
    let name = string(value, path)?;
    // Zipkin writes upper case; lower case costs nothing to accept.
    let kind = match name.to_ascii_uppercase().as_str() {
        "CLIENT" => span::SpanKind::Client,
        "SERVER" => span::SpanKind::Server,
        "PRODUCER" => span::SpanKind::Producer,
        "CONSUMER" => span::SpanKind::Consumer,
        _ => {
            return Err(JsonError::at(
                path,
                format!(
                    "{} is not a zipkin span kind (expected CLIENT, SERVER, PRODUCER or CONSUMER)",
                    quote(&name)
                ),
            ));
        }
    };
    Ok(kind as i32)
}

/// Zipkin has no INTERNAL kind: a span without `kind` is local. OpenTracing-era tracers put
/// the kind in a `span.kind` tag instead; use it when it holds one of the known values.
fn kind_from_tag(tags: &mut BTreeMap<String, String>) -> i32 {
    let kind = match tags.get("span.kind").map(|kind| kind.to_ascii_lowercase()) {
        Some(kind) => match kind.as_str() {
            "internal" => span::SpanKind::Internal,
            "client" => span::SpanKind::Client,
            "server" => span::SpanKind::Server,
            "producer" => span::SpanKind::Producer,
            "consumer" => span::SpanKind::Consumer,
            _ => return span::SpanKind::Unspecified as i32,
        },
        None => return span::SpanKind::Unspecified as i32,
    };
    tags.remove("span.kind");
    kind as i32
}

/// Takes the status out of the tags, the way OpenTelemetry's Zipkin exporters put it in
/// (`otel.status_code`, `otel.status_description`, and `error` holding the description) and
/// the way Zipkin instrumentation marks failures (an `error` tag whose value is the message).
fn status_from_tags(tags: &mut BTreeMap<String, String>) -> Option<Status> {
    let mut code = None;
    let mut message = String::new();
    if let Some(parsed) = tags
        .get("otel.status_code")
        .and_then(|c| parse_status_code(c))
    {
        code = Some(parsed);
        tags.remove("otel.status_code");
        message = tags.remove("otel.status_description").unwrap_or_default();
    }
    let error = status::StatusCode::Error as i32;
    let error_tag = tags.get("error").map(String::as_str);
    // `error=false` is someone saying "no error"; an explicit OK/UNSET status overrules the
    // tag. In both cases the tag stays, as plain information.
    let marks_error = error_tag.is_some_and(|value| !value.eq_ignore_ascii_case("false"))
        && code.is_none_or(|c| c == error);
    if marks_error {
        let value = tags.remove("error").unwrap_or_default();
        code = Some(error);
        // "true" (or nothing) says that there was an error, not what it was.
        if message.is_empty() && !value.eq_ignore_ascii_case("true") {
            message = value;
        }
    }
    code.map(|code| Status { code, message })
}

/// `otel.status_code` as written by OpenTelemetry's Zipkin exporters (`OK`, `ERROR`) or by
/// older collectors (`STATUS_CODE_ERROR`). An unknown value leaves the tag as an attribute.
fn parse_status_code(value: &str) -> Option<i32> {
    let upper = value.to_ascii_uppercase();
    let name = upper.strip_prefix("STATUS_CODE_").unwrap_or(&upper);
    let code = match name {
        "UNSET" => status::StatusCode::Unset,
        "OK" => status::StatusCode::Ok,
        "ERROR" => status::StatusCode::Error,
        _ => return None,
    };
    Some(code as i32)
}

/// The instrumentation scope from `otel.scope.*` tags, or the deprecated `otel.library.*`
/// ones; both kinds are removed so they do not linger as span attributes.
fn scope_from_tags(tags: &mut BTreeMap<String, String>) -> Option<InstrumentationScope> {
    let mut take = |current: &str, deprecated: &str| {
        let old = tags.remove(deprecated);
        tags.remove(current).or(old).unwrap_or_default()
    };
    let name = take("otel.scope.name", "otel.library.name");
    let version = take("otel.scope.version", "otel.library.version");
    (!name.is_empty() || !version.is_empty()).then(|| InstrumentationScope {
        name,
        version,
        ..Default::default()
    })
}

/// The parts of a Zipkin endpoint the conversion uses.
#[derive(Default)]
struct Endpoint {
    service_name: Option<String>,
    /// `ipv6` if given, else `ipv4` (the collector lets IPv6 win too).
    address: Option<String>,
    /// `None` for 0, which Zipkin uses for "unknown".
    port: Option<u16>,
}

fn endpoint(value: &Value, path: &JsonPath<'_>) -> Result<Endpoint, JsonError> {
    let map = object(value, path, "an endpoint")?;
    let service_name = field(map, "serviceName", path, string)?.filter(|name| !name.is_empty());
    // An address that does not parse is dropped, as the Zipkin server does: it is a detail
    // of one span, not worth refusing the batch over. Parsing as either family also accepts
    // an IPv6 address sent as `ipv4` and vice versa.
    let ip = |key| -> Result<Option<String>, JsonError> {
        Ok(field(map, key, path, string)?
            .and_then(|text| text.parse::<IpAddr>().ok())
            .map(|ip| ip.to_string()))
    };
    let address = ip("ipv6")?.or(ip("ipv4")?);
    let port = field(map, "port", path, integer::<u16>)?.filter(|&port| port != 0);
    Ok(Endpoint {
        service_name,
        address,
        port,
    })
}

fn annotation(value: &Value, path: &JsonPath<'_>) -> Result<span::Event, JsonError> {
    let map = object(value, path, "an annotation")?;
    Ok(span::Event {
        time_unix_nano: field_or_default(map, "timestamp", path, micros_to_nanos)?,
        name: field_or_default(map, "value", path, string)?,
        ..Default::default()
    })
}

/// Zipkin tags: an object of strings. Numbers and booleans, which some clients send although
/// the API says string, are kept as their JSON text; `null` is skipped.
fn tags(value: &Value, path: &JsonPath<'_>) -> Result<BTreeMap<String, String>, JsonError> {
    let map = object(value, path, "tags")?;
    let mut tags = BTreeMap::new();
    for (key, value) in map {
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Bool(_) | Value::Number(_) => value.to_string(),
            Value::Array(_) | Value::Object(_) => {
                return Err(JsonError::at(
                    &path.key(key),
                    format!("expected a string, found {}", found(value)),
                ));
            }
        };
        tags.insert(key.clone(), text);
    }
    Ok(tags)
}

/// Zipkin's microseconds as OTLP's nanoseconds.
fn micros_to_nanos(value: &Value, path: &JsonPath<'_>) -> Result<u64, JsonError> {
    let micros: u64 = integer(value, path)?;
    micros.checked_mul(1_000).ok_or_else(|| {
        JsonError::at(
            path,
            format!("{micros} microseconds is beyond the year 2554"),
        )
    })
}

fn string_value(value: String) -> any_value::Value {
    any_value::Value::StringValue(value)
}

fn int_value(value: u16) -> any_value::Value {
    any_value::Value::IntValue(i64::from(value))
}

fn string_attribute(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(string_value(value)),
        }),
        ..Default::default()
    }
}

/// Sets `key`, replacing an attribute of that name if there is one: OTLP attribute keys are
/// meant to be unique within a span.
fn upsert(attributes: &mut Vec<KeyValue>, key: &str, value: any_value::Value) {
    let value = Some(AnyValue { value: Some(value) });
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(existing) => existing.value = value,
        None => attributes.push(KeyValue {
            key: key.to_owned(),
            value,
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decode(body: &Value) -> Vec<ResourceSpans> {
        decode_zipkin_v2(body.to_string().as_bytes()).unwrap_or_else(|err| panic!("{err}"))
    }

    fn decode_err(body: &Value) -> String {
        match decode_zipkin_v2(body.to_string().as_bytes()) {
            Ok(spans) => panic!("decoded, expected an error: {spans:?}"),
            Err(err) => err.to_string(),
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("test hex"))
            .collect()
    }

    fn service_name(rs: &ResourceSpans) -> &str {
        let attributes = &rs.resource.as_ref().expect("resource").attributes;
        assert_eq!(attributes.len(), 1, "only service.name: {attributes:?}");
        assert_eq!(attributes[0].key, "service.name");
        match attributes[0].value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(name)) => name,
            other => panic!("service.name is {other:?}"),
        }
    }

    /// The attributes of a span as `(key, value)` with values printed, in order.
    fn attributes(span: &Span) -> Vec<(String, String)> {
        span.attributes
            .iter()
            .map(|kv| {
                let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => s.clone(),
                    Some(any_value::Value::IntValue(i)) => format!("int {i}"),
                    Some(any_value::Value::BoolValue(b)) => format!("bool {b}"),
                    other => format!("{other:?}"),
                };
                (kv.key.clone(), value)
            })
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A frontend calls a backend, which queries a database and fails. The client and server
    /// spans of the call share one span ID (B3 propagation without a new server span).
    fn three_span_trace() -> Value {
        json!([
            {
                "traceId": "86154a4ba6e91385",
                "parentId": "86154a4ba6e91385",
                "id": "4d1e00c0db9010db",
                "kind": "CLIENT",
                "name": "get /api",
                "timestamp": 1_556_604_172_355_737u64,
                "duration": 1431,
                "localEndpoint": {"serviceName": "frontend", "ipv4": "192.168.99.1"},
                "remoteEndpoint": {"serviceName": "backend", "ipv4": "172.19.0.2", "port": 9000},
                "annotations": [
                    {"timestamp": 1_556_604_172_355_800u64, "value": "ws"},
                    {"timestamp": 1_556_604_172_357_100u64, "value": "wr"}
                ],
                "tags": {"http.method": "GET", "http.path": "/api", "clnt/finagle.version": "6.45.0"}
            },
            {
                "traceId": "86154a4ba6e91385",
                "parentId": "86154a4ba6e91385",
                "id": "4d1e00c0db9010db",
                "kind": "SERVER",
                "name": "get /api",
                "timestamp": 1_556_604_172_355_900u64,
                "duration": 1200,
                "shared": true,
                "localEndpoint": {"serviceName": "backend", "ipv4": "172.19.0.2", "port": 9000},
                "remoteEndpoint": {"ipv6": "2001:db8::c001", "port": 58648},
                "tags": {"http.method": "GET", "http.path": "/api", "http.status_code": "500",
                         "error": "Internal Server Error"}
            },
            {
                "traceId": "86154a4ba6e91385",
                "parentId": "4d1e00c0db9010db",
                "id": "e5d4b7a3c2f1a0b9",
                "kind": "CLIENT",
                "name": "select",
                "timestamp": 1_556_604_172_356_000u64,
                "duration": 900,
                "debug": false,
                "localEndpoint": {"serviceName": "backend", "ipv4": "172.19.0.2"},
                "remoteEndpoint": {"serviceName": "mysql", "ipv4": "10.0.0.5", "port": 3306},
                "annotations": [{"timestamp": 1_556_604_172_356_500u64, "value": "deadlock, retrying"}],
                "tags": {
                    "db.system": "mysql",
                    "db.statement": "SELECT * FROM orders",
                    "otel.status_code": "ERROR",
                    "otel.status_description": "deadlock found",
                    "error": "deadlock found",
                    "otel.scope.name": "io.opentelemetry.jdbc",
                    "otel.scope.version": "2.1.0",
                    "w3c.tracestate": "rojo=00f067aa0ba902b7"
                }
            }
        ])
    }

    #[test]
    fn three_span_trace_maps_field_by_field() {
        let resources = decode(&three_span_trace());
        let trace_id = hex("000000000000000086154a4ba6e91385");
        let root_id = hex("86154a4ba6e91385");
        let shared_id = hex("4d1e00c0db9010db");

        // One resource per service, in order of first appearance.
        assert_eq!(resources.len(), 2);
        assert_eq!(service_name(&resources[0]), "frontend");
        assert_eq!(service_name(&resources[1]), "backend");

        // frontend: one span in a scope-less ScopeSpans.
        assert_eq!(resources[0].scope_spans.len(), 1);
        assert_eq!(resources[0].scope_spans[0].scope, None);
        let client = &resources[0].scope_spans[0].spans[0];
        assert_eq!(
            client.trace_id, trace_id,
            "64-bit trace id left-padded to 16 bytes"
        );
        assert_eq!(client.span_id, shared_id);
        assert_eq!(client.parent_span_id, root_id);
        assert_eq!(client.name, "get /api");
        assert_eq!(client.kind, span::SpanKind::Client as i32);
        assert_eq!(client.start_time_unix_nano, 1_556_604_172_355_737_000);
        assert_eq!(client.end_time_unix_nano, 1_556_604_172_357_168_000);
        assert_eq!(client.trace_state, "");
        assert_eq!(client.status, None);
        assert_eq!(
            attributes(client),
            pairs(&[
                ("clnt/finagle.version", "6.45.0"),
                ("http.method", "GET"),
                ("http.path", "/api"),
                ("network.local.address", "192.168.99.1"),
                ("peer.service", "backend"),
                ("network.peer.address", "172.19.0.2"),
                ("network.peer.port", "int 9000"),
            ])
        );
        let events: Vec<_> = client
            .events
            .iter()
            .map(|e| (e.name.as_str(), e.time_unix_nano))
            .collect();
        assert_eq!(
            events,
            [
                ("ws", 1_556_604_172_355_800_000),
                ("wr", 1_556_604_172_357_100_000)
            ]
        );

        // backend: the shared server span, then the database call in the JDBC scope.
        let scopes = &resources[1].scope_spans;
        assert_eq!(scopes.len(), 2);
        assert_eq!(scopes[0].scope, None);
        let server = &scopes[0].spans[0];
        assert_eq!(server.trace_id, trace_id);
        assert_eq!(
            server.span_id, shared_id,
            "a shared span keeps the client's id"
        );
        assert_eq!(server.parent_span_id, root_id);
        assert_eq!(server.kind, span::SpanKind::Server as i32);
        assert_eq!(server.start_time_unix_nano, 1_556_604_172_355_900_000);
        assert_eq!(server.end_time_unix_nano, 1_556_604_172_357_100_000);
        assert_eq!(
            server.status,
            Some(Status {
                code: status::StatusCode::Error as i32,
                message: "Internal Server Error".into()
            })
        );
        assert_eq!(
            attributes(server),
            pairs(&[
                ("http.method", "GET"),
                ("http.path", "/api"),
                ("http.status_code", "500"),
                ("network.local.address", "172.19.0.2"),
                ("network.local.port", "int 9000"),
                ("network.peer.address", "2001:db8::c001"),
                ("network.peer.port", "int 58648"),
            ]),
            "the error tag became the status"
        );
        assert!(server.events.is_empty());

        assert_eq!(
            scopes[1].scope,
            Some(InstrumentationScope {
                name: "io.opentelemetry.jdbc".into(),
                version: "2.1.0".into(),
                ..Default::default()
            })
        );
        let query = &scopes[1].spans[0];
        assert_eq!(query.trace_id, trace_id);
        assert_eq!(query.span_id, hex("e5d4b7a3c2f1a0b9"));
        assert_eq!(query.parent_span_id, shared_id);
        assert_eq!(query.name, "select");
        assert_eq!(query.kind, span::SpanKind::Client as i32);
        assert_eq!(query.trace_state, "rojo=00f067aa0ba902b7");
        assert_eq!(
            query.status,
            Some(Status {
                code: status::StatusCode::Error as i32,
                message: "deadlock found".into()
            })
        );
        assert_eq!(
            attributes(query),
            pairs(&[
                ("db.statement", "SELECT * FROM orders"),
                ("db.system", "mysql"),
                ("network.local.address", "172.19.0.2"),
                ("peer.service", "mysql"),
                ("network.peer.address", "10.0.0.5"),
                ("network.peer.port", "int 3306"),
            ])
        );
        assert_eq!(query.events.len(), 1);
        assert_eq!(query.events[0].name, "deadlock, retrying");
        assert_eq!(query.events[0].time_unix_nano, 1_556_604_172_356_500_000);
        for span in [client, server, query] {
            assert_eq!(span.flags, 0);
            assert!(span.links.is_empty());
        }
    }

    #[test]
    fn ids_keep_128_bits_and_pad_short_ones() {
        let resources = decode(&json!([{
            "traceId": "5B8EFFF798038103D269B633813FC60C",
            "id": "abc",
            "parentId": "0000000000000000",
            "timestamp": 1
        }]));
        let span = &resources[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id, hex("5b8efff798038103d269b633813fc60c"));
        assert_eq!(span.span_id, hex("0000000000000abc"));
        assert!(
            span.parent_span_id.is_empty(),
            "an all-zero parent is no parent"
        );
        let resources = decode(&json!([{"traceId": "1", "id": "2", "parentId": "2"}]));
        let span = &resources[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id, hex("00000000000000000000000000000001"));
        assert!(
            span.parent_span_id.is_empty(),
            "a span is not its own parent"
        );
    }

    #[test]
    fn missing_service_and_timestamp_have_fallbacks() {
        let resources =
            decode(&json!([{"traceId": "1", "id": "2", "duration": 5, "localEndpoint": {}}]));
        assert_eq!(service_name(&resources[0]), UNKNOWN_SERVICE);
        let span = &resources[0].scope_spans[0].spans[0];
        assert_eq!(
            (span.start_time_unix_nano, span.end_time_unix_nano),
            (0, 5_000)
        );
        assert_eq!(
            attributes(span),
            pairs(&[(START_TIME_ABSENT_ATTRIBUTE, "bool true")])
        );
        assert_eq!(span.kind, span::SpanKind::Unspecified as i32);
    }

    #[test]
    fn span_kind_tag_is_used_when_kind_is_absent() {
        let resources = decode(&json!([
            {"traceId": "1", "id": "2", "timestamp": 1, "tags": {"span.kind": "internal"}},
            {"traceId": "1", "id": "3", "timestamp": 1, "tags": {"span.kind": "consumer"}},
            {"traceId": "1", "id": "4", "timestamp": 1, "tags": {"span.kind": "odd"}},
            {"traceId": "1", "id": "5", "timestamp": 1, "kind": "server", "tags": {"span.kind": "client"}}
        ]));
        let spans = &resources[0].scope_spans[0].spans;
        let kinds: Vec<_> = spans.iter().map(|s| (s.kind, s.attributes.len())).collect();
        assert_eq!(kinds, [(1, 0), (5, 0), (0, 1), (2, 1)]);
    }

    #[test]
    fn status_tags_follow_the_exporter_conventions() {
        let status_of = |tags: Value| {
            let resources =
                decode(&json!([{"traceId": "1", "id": "2", "timestamp": 1, "tags": tags}]));
            let span = resources[0].scope_spans[0].spans[0].clone();
            let keys: Vec<String> = span.attributes.iter().map(|kv| kv.key.clone()).collect();
            (span.status.map(|s| (s.code, s.message)), keys)
        };
        let err = |message: &str| Some((2, message.to_owned()));
        assert_eq!(status_of(json!({"error": "true"})), (err(""), vec![]));
        assert_eq!(status_of(json!({"error": ""})), (err(""), vec![]));
        assert_eq!(
            status_of(json!({"error": "timeout"})),
            (err("timeout"), vec![])
        );
        assert_eq!(
            status_of(json!({"error": "false"})),
            (None, vec!["error".to_owned()])
        );
        assert_eq!(
            status_of(json!({"otel.status_code": "OK", "error": "x"})),
            (Some((1, String::new())), vec!["error".to_owned()])
        );
        assert_eq!(
            status_of(json!({"otel.status_code": "STATUS_CODE_ERROR"})),
            (err(""), vec![])
        );
        assert_eq!(
            status_of(
                json!({"otel.status_code": "ERROR", "otel.status_description": "d", "error": "e"})
            ),
            (err("d"), vec![])
        );
        assert_eq!(
            status_of(json!({"otel.status_code": "MAYBE", "otel.status_description": "d"})),
            (
                None,
                vec![
                    "otel.status_code".to_owned(),
                    "otel.status_description".to_owned()
                ]
            )
        );
        assert_eq!(
            status_of(json!({"otel.library.name": "old"})).1,
            Vec::<String>::new()
        );
    }

    #[test]
    fn endpoint_details() {
        let resources = decode(&json!([{
            "traceId": "1", "id": "2", "timestamp": 1,
            "localEndpoint": {"serviceName": "svc", "ipv4": "not an address", "ipv6": "::FFFF:1.2.3.4", "port": 0},
            "remoteEndpoint": {"serviceName": "", "ipv4": "10.0.0.1"},
            "tags": {"network.peer.address": "from a tag", "retries": 3, "cached": false, "gone": null}
        }]));
        let span = &resources[0].scope_spans[0].spans[0];
        assert_eq!(
            attributes(span),
            pairs(&[
                ("cached", "false"),
                ("network.peer.address", "10.0.0.1"),
                ("retries", "3"),
                ("network.local.address", "::ffff:1.2.3.4"),
            ])
        );
    }

    #[test]
    fn empty_array_is_no_spans() {
        assert_eq!(decode(&json!([])), Vec::<ResourceSpans>::new());
    }

    #[test]
    fn malformed_spans_name_the_path() {
        let good = json!({"traceId": "86154a4ba6e91385", "id": "4d1e00c0db9010db"});
        let with = |patch: Value| -> Value {
            let mut span = good.clone();
            if let (Some(span), Value::Object(patch)) = (span.as_object_mut(), patch) {
                for (key, value) in patch {
                    if value.is_null() {
                        span.remove(&key);
                    } else {
                        span.insert(key, value);
                    }
                }
            }
            json!([good, span])
        };
        let cases = [
            (
                json!({"traceId": null}),
                "[1].traceId: missing (a zipkin span needs a trace id)",
            ),
            (
                json!({"id": ""}),
                "[1].id: empty (a zipkin span needs a span id)",
            ),
            (json!({"traceId": "86154a4ba6e913851"}), ""),
            (
                json!({"traceId": "x".repeat(33)}),
                "[1].traceId: \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\" is not a zipkin trace id (expected 16 or 32 hex characters)",
            ),
            (
                json!({"id": "4d1e00c0db9010dg"}),
                "[1].id: \"4d1e00c0db9010dg\" is not a zipkin span id (expected 16 hex characters)",
            ),
            (
                json!({"parentId": 12}),
                "[1].parentId: expected a string, found 12",
            ),
            (
                json!({"kind": "SIDEWAYS"}),
                "[1].kind: \"SIDEWAYS\" is not a zipkin span kind (expected CLIENT, SERVER, PRODUCER or CONSUMER)",
            ),
            (
                json!({"timestamp": "abc"}),
                "[1].timestamp: \"abc\" is not an integer (expected an unsigned 64-bit integer)",
            ),
            (
                json!({"duration": -1}),
                "[1].duration: -1 is negative (expected an unsigned 64-bit integer)",
            ),
            (
                json!({"timestamp": 18_446_744_073_709_552u64}),
                "[1].timestamp: 18446744073709552 microseconds is beyond the year 2554",
            ),
            (
                json!({"timestamp": 18_446_744_073_709_551u64, "duration": 1000}),
                "[1].duration: timestamp plus duration is beyond the year 2554",
            ),
            (
                json!({"localEndpoint": {"port": 70000}}),
                "[1].localEndpoint.port: 70000 is too large (expected an integer from 0 to 65535)",
            ),
            (
                json!({"remoteEndpoint": "db"}),
                "[1].remoteEndpoint: expected an endpoint as a json object, found \"db\"",
            ),
            (
                json!({"tags": ["a"]}),
                "[1].tags: expected tags as a json object, found an array",
            ),
            (
                json!({"tags": {"http.url": {"full": "x"}}}),
                "[1].tags.http.url: expected a string, found an object",
            ),
            (
                json!({"annotations": [{"value": "ok"}, "cs"]}),
                "[1].annotations[1]: expected an annotation as a json object, found \"cs\"",
            ),
            (
                json!({"annotations": [{"timestamp": 1, "value": 7}]}),
                "[1].annotations[0].value: expected a string, found 7",
            ),
            (
                json!({"shared": "yes"}),
                "[1].shared: expected true or false, found \"yes\"",
            ),
        ];
        for (patch, expected) in cases {
            let body = with(patch);
            if expected.is_empty() {
                // 17 characters: a 128-bit trace ID with its leading zero dropped, accepted.
                decode(&body);
            } else {
                assert_eq!(decode_err(&body), expected);
            }
        }
    }

    #[test]
    fn malformed_bodies_are_refused_clearly() {
        assert_eq!(
            decode_err(&json!({"traceId": "1"})),
            "the request body must be a json array of zipkin v2 spans, found an object"
        );
        assert_eq!(
            decode_err(&json!([null])),
            "[0]: expected a zipkin span as a json object, found null"
        );
        let err = decode_zipkin_v2(b"[{\"traceId\": \"1\",}]").expect_err("invalid json");
        assert_eq!(err.path(), None);
        assert!(err.to_string().starts_with("invalid json: "), "{err}");
        assert!(err.to_string().contains("line 1 column"), "{err}");
        let err = decode_zipkin_v2(b"[{\"traceId\": \"1\"").expect_err("truncated");
        assert!(err.to_string().starts_with("truncated json: "), "{err}");
    }
}
