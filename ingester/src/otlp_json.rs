//! OTLP/JSON: decoding `ExportTraceServiceRequest` bodies (`POST /v1/traces` with
//! `Content-Type: application/json`) and encoding the JSON bodies the receiver answers with.
//!
//! The OTLP specification (opentelemetry-proto `docs/specification.md`, "JSON Protobuf
//! Encoding") defines OTLP/JSON as the proto3 JSON mapping with four deviations: trace and
//! span IDs are case-insensitive hex instead of base64, enums are integers instead of names,
//! keys are lowerCamelCase only (`dropped_attributes_count` is an unknown key, not an alias),
//! and unknown keys are ignored. This decoder reads exactly that, and on top of it the
//! canonical proto3 JSON that Go tools (`protojson`, `otel-cli`, collector debug dumps) emit,
//! because such bodies are common and unambiguous:
//!
//! | value | accepted |
//! |---|---|
//! | trace ID | 32 hex characters (spec) or 24 base64 characters (proto3 JSON, padded) |
//! | span ID | 16 hex characters (spec) or 12 base64 characters (proto3 JSON, padded) |
//! | any ID | `""`, which decodes to no bytes (a root span's `parentSpanId`) |
//! | enum (`kind`, `status.code`) | an integer (spec, kept as sent even when unknown: proto3 enums are open), or a name such as `SPAN_KIND_SERVER` |
//! | 64-bit and 32-bit integers | a JSON number or a decimal string |
//! | `doubleValue` | a number, a numeric string, `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | `bytesValue` | base64, standard or URL-safe alphabet, padded or not |
//! | `null` | the same as an absent key |
//!
//! The IDs are told apart by length alone: hex and base64 of the same byte count never have
//! the same length, so no guessing is involved.
//!
//! Decoding works by hand over [`serde_json::Value`] instead of through opentelemetry-proto's
//! serde derive: that derive accepts hex only (so every Go-emitted body fails), rejects enum
//! names, and its errors ("invalid type: string, expected i32 at line 1 column 4000") do not
//! tell a user which span of a 5,000-span batch is wrong. Every [`JsonError`] here names the
//! JSON path of the problem, e.g.
//! `resourceSpans[0].scopeSpans[1].spans[3].traceId: "abc" is not a trace id (...)`. The
//! general reader behind that (parsing, paths, error wording, objects, lists and scalars) is
//! the crate's `json` module, shared with the Zipkin decoder; this module maps OTLP onto it.
//!
//! Decoding fails only on malformed JSON or values. Semantic problems (an empty or all-zero
//! trace ID, a span without a name, end before start) are left to the caller, which rejects
//! such spans one by one and reports them as `partialSuccess.rejectedSpans`: one bad span must
//! not cost the client the whole batch.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use serde_json::{Map, Value};

use crate::json::{
    JsonPath, boolean, field, field_or_default, found, integer, list, object, parse_json, quote,
    string,
};

pub use crate::json::JsonError;

/// How deep attribute values (`arrayValue` / `kvlistValue`) may nest. Real instrumentation
/// nests a handful of levels; the bound keeps the recursive decoder's stack use small and
/// fixed whatever the body holds. serde_json's own limit (128 levels of JSON, checked while
/// parsing) stops far deeper bodies before a `Value` is even built. This bound is set low
/// enough to be reached first for any attribute of a span, event or link (a `kvlistValue`
/// level costs four levels of JSON), so that a user sees a message with a path rather than
/// serde_json's "recursion limit exceeded".
pub const MAX_VALUE_DEPTH: usize = 24;

/// Decodes an OTLP/JSON `ExportTraceServiceRequest` body.
///
/// See the module documentation for what is accepted. The result is not validated beyond the
/// encoding: a span with a missing, empty or all-zero ID comes back as it was sent, for the
/// caller to count as rejected (a malformed ID, such as 31 hex characters, is an error).
pub fn decode_export_request(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonError> {
    let root = parse_json(body)?;
    let path = JsonPath::root();
    let Value::Object(request) = &root else {
        return Err(JsonError::at(
            &path,
            format!(
                "the request body must be a json object with a \"resourceSpans\" list, found {}",
                found(&root)
            ),
        ));
    };
    Ok(ExportTraceServiceRequest {
        resource_spans: list(request, "resourceSpans", &path, resource_spans)?,
    })
}

/// The JSON `ExportTraceServiceResponse` body for a request that was accepted, completely or
/// in part.
///
/// Full success (`rejected_spans == 0` and no message) is `{}`: the specification requires
/// `partialSuccess` to stay unset then. Otherwise `partialSuccess` carries the non-default
/// fields (proto3 JSON omits defaults), with `rejectedSpans` as a decimal string, which is how
/// the proto3 JSON mapping writes an int64 and what every OTLP/JSON reader accepts. A zero
/// count with a message is the specification's way to pass a warning on a full success.
pub fn encode_export_response_json(rejected_spans: i64, message: &str) -> Vec<u8> {
    if rejected_spans == 0 && message.is_empty() {
        return b"{}".to_vec();
    }
    let mut partial = Map::new();
    if rejected_spans != 0 {
        partial.insert(
            "rejectedSpans".to_owned(),
            Value::String(rejected_spans.to_string()),
        );
    }
    if !message.is_empty() {
        partial.insert("errorMessage".to_owned(), Value::String(message.to_owned()));
    }
    let mut response = Map::new();
    response.insert("partialSuccess".to_owned(), Value::Object(partial));
    Value::Object(response).to_string().into_bytes()
}

/// The JSON `google.rpc.Status` body of an OTLP/HTTP error response, e.g.
/// `{"code":3,"message":"..."}`.
///
/// `code` is a gRPC code (3 = INVALID_ARGUMENT for bad data). Both fields are always written,
/// even when zero or empty, so that clients which log the body show something readable.
pub fn encode_status_json(code: i32, message: &str) -> Vec<u8> {
    let mut status = Map::new();
    status.insert("code".to_owned(), Value::from(code));
    status.insert("message".to_owned(), Value::String(message.to_owned()));
    Value::Object(status).to_string().into_bytes()
}

// ---------------------------------------------------------------------------------------------
// OTLP messages.

fn resource_spans(value: &Value, path: &JsonPath<'_>) -> Result<ResourceSpans, JsonError> {
    let map = object(value, path, "a resourceSpans entry")?;
    Ok(ResourceSpans {
        resource: field(map, "resource", path, resource)?,
        scope_spans: list(map, "scopeSpans", path, scope_spans)?,
        schema_url: field_or_default(map, "schemaUrl", path, string)?,
    })
}

fn resource(value: &Value, path: &JsonPath<'_>) -> Result<Resource, JsonError> {
    let map = object(value, path, "a resource")?;
    Ok(Resource {
        attributes: list(map, "attributes", path, attribute)?,
        dropped_attributes_count: field_or_default(map, "droppedAttributesCount", path, integer)?,
        entity_refs: list(map, "entityRefs", path, entity_ref)?,
    })
}

fn entity_ref(value: &Value, path: &JsonPath<'_>) -> Result<EntityRef, JsonError> {
    let map = object(value, path, "an entity reference")?;
    Ok(EntityRef {
        schema_url: field_or_default(map, "schemaUrl", path, string)?,
        r#type: field_or_default(map, "type", path, string)?,
        id_keys: list(map, "idKeys", path, string)?,
        description_keys: list(map, "descriptionKeys", path, string)?,
    })
}

fn scope_spans(value: &Value, path: &JsonPath<'_>) -> Result<ScopeSpans, JsonError> {
    let map = object(value, path, "a scopeSpans entry")?;
    Ok(ScopeSpans {
        scope: field(map, "scope", path, scope)?,
        spans: list(map, "spans", path, span)?,
        schema_url: field_or_default(map, "schemaUrl", path, string)?,
    })
}

fn scope(value: &Value, path: &JsonPath<'_>) -> Result<InstrumentationScope, JsonError> {
    let map = object(value, path, "an instrumentation scope")?;
    Ok(InstrumentationScope {
        name: field_or_default(map, "name", path, string)?,
        version: field_or_default(map, "version", path, string)?,
        attributes: list(map, "attributes", path, attribute)?,
        dropped_attributes_count: field_or_default(map, "droppedAttributesCount", path, integer)?,
    })
}

fn span(value: &Value, path: &JsonPath<'_>) -> Result<Span, JsonError> {
    let map = object(value, path, "a span")?;
    Ok(Span {
        trace_id: field_or_default(map, "traceId", path, trace_id)?,
        span_id: field_or_default(map, "spanId", path, span_id)?,
        trace_state: field_or_default(map, "traceState", path, string)?,
        parent_span_id: field_or_default(map, "parentSpanId", path, span_id)?,
        flags: field_or_default(map, "flags", path, integer)?,
        name: field_or_default(map, "name", path, string)?,
        kind: field_or_default(map, "kind", path, span_kind)?,
        start_time_unix_nano: field_or_default(map, "startTimeUnixNano", path, integer)?,
        end_time_unix_nano: field_or_default(map, "endTimeUnixNano", path, integer)?,
        attributes: list(map, "attributes", path, attribute)?,
        dropped_attributes_count: field_or_default(map, "droppedAttributesCount", path, integer)?,
        events: list(map, "events", path, event)?,
        dropped_events_count: field_or_default(map, "droppedEventsCount", path, integer)?,
        links: list(map, "links", path, link)?,
        dropped_links_count: field_or_default(map, "droppedLinksCount", path, integer)?,
        status: field(map, "status", path, span_status)?,
    })
}

fn event(value: &Value, path: &JsonPath<'_>) -> Result<span::Event, JsonError> {
    let map = object(value, path, "an event")?;
    Ok(span::Event {
        time_unix_nano: field_or_default(map, "timeUnixNano", path, integer)?,
        name: field_or_default(map, "name", path, string)?,
        attributes: list(map, "attributes", path, attribute)?,
        dropped_attributes_count: field_or_default(map, "droppedAttributesCount", path, integer)?,
    })
}

fn link(value: &Value, path: &JsonPath<'_>) -> Result<span::Link, JsonError> {
    let map = object(value, path, "a link")?;
    Ok(span::Link {
        trace_id: field_or_default(map, "traceId", path, trace_id)?,
        span_id: field_or_default(map, "spanId", path, span_id)?,
        trace_state: field_or_default(map, "traceState", path, string)?,
        attributes: list(map, "attributes", path, attribute)?,
        dropped_attributes_count: field_or_default(map, "droppedAttributesCount", path, integer)?,
        flags: field_or_default(map, "flags", path, integer)?,
    })
}

fn span_status(value: &Value, path: &JsonPath<'_>) -> Result<Status, JsonError> {
    let map = object(value, path, "a span status")?;
    Ok(Status {
        message: field_or_default(map, "message", path, string)?,
        code: field_or_default(map, "code", path, status_code)?,
    })
}

fn span_kind(value: &Value, path: &JsonPath<'_>) -> Result<i32, JsonError> {
    enumeration(value, path, "a span kind", "SPAN_KIND_SERVER", |name| {
        span::SpanKind::from_str_name(name).map(|kind| kind as i32)
    })
}

fn status_code(value: &Value, path: &JsonPath<'_>) -> Result<i32, JsonError> {
    enumeration(value, path, "a status code", "STATUS_CODE_ERROR", |name| {
        status::StatusCode::from_str_name(name).map(|code| code as i32)
    })
}

/// An enum field: an integer as the specification requires (kept as sent even when it names
/// no known value, as proto3's open enums do), or, leniently, the value's name as the proto3
/// JSON mapping writes it. A name that is not one of the enum's is an error: guessing would
/// store a wrong value.
fn enumeration(
    value: &Value,
    path: &JsonPath<'_>,
    what: &str,
    example: &str,
    from_name: impl Fn(&str) -> Option<i32>,
) -> Result<i32, JsonError> {
    let Value::String(name) = value else {
        return integer(value, path);
    };
    if let Some(number) = from_name(name) {
        return Ok(number);
    }
    // A decimal string ("2") is read as the number: harmless, and some encoders quote every
    // number.
    integer::<i32>(value, path).map_err(|_| {
        JsonError::at(
            path,
            format!(
                "{} is not {what} (expected an integer or a name such as \"{example}\")",
                quote(name)
            ),
        )
    })
}

fn trace_id(value: &Value, path: &JsonPath<'_>) -> Result<Vec<u8>, JsonError> {
    id(value, path, 16, "a trace id")
}

fn span_id(value: &Value, path: &JsonPath<'_>) -> Result<Vec<u8>, JsonError> {
    id(value, path, 8, "a span id")
}

/// A trace or span ID of `bytes` bytes: hex (the specification) or padded base64 (the proto3
/// JSON mapping), told apart by length; `""` is no ID. Anything else is an error and not an
/// empty ID, so that the caller never mistakes a garbled ID for a missing one.
fn id(value: &Value, path: &JsonPath<'_>, bytes: usize, what: &str) -> Result<Vec<u8>, JsonError> {
    let Value::String(text) = value else {
        return Err(JsonError::at(
            path,
            format!("expected {what} as a string, found {}", found(value)),
        ));
    };
    let hex_len = bytes * 2;
    let base64_len = bytes.div_ceil(3) * 4;
    let decoded = if text.is_empty() {
        Some(Vec::new())
    } else if text.len() == hex_len {
        decode_hex(text)
    } else if text.len() == base64_len {
        decode_base64(text).filter(|decoded| decoded.len() == bytes)
    } else {
        None
    };
    decoded.ok_or_else(|| {
        JsonError::at(
            path,
            format!(
                "{} is not {what} (expected {hex_len} hex characters or {base64_len} base64 characters)",
                quote(text)
            ),
        )
    })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => Some((nibble(*high)? << 4) | nibble(*low)?),
            _ => None,
        })
        .collect()
}

/// Base64 as senders actually write it: the standard alphabet (proto3 JSON) or the URL-safe
/// one, with or without padding, and tolerant of non-zero trailing bits as Go's decoder is.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
    // At most one alphabet accepts a string holding `+`, `/`, `-` or `_`; on any other string
    // both give the same bytes, so trying one after the other is unambiguous.
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

fn attribute(value: &Value, path: &JsonPath<'_>) -> Result<KeyValue, JsonError> {
    key_value(value, path, 1)
}

fn key_value(value: &Value, path: &JsonPath<'_>, depth: usize) -> Result<KeyValue, JsonError> {
    let map = object(value, path, "an attribute")?;
    Ok(KeyValue {
        key: field_or_default(map, "key", path, string)?,
        value: field(map, "value", path, |value, path| {
            any_value(value, path, depth)
        })?,
        key_strindex: field_or_default(map, "keyStrindex", path, integer)?,
    })
}

fn any_value(value: &Value, path: &JsonPath<'_>, depth: usize) -> Result<AnyValue, JsonError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(JsonError::at(
            path,
            format!("attribute values are nested more than {MAX_VALUE_DEPTH} levels deep"),
        ));
    }
    let map = object(value, path, "an attribute value")?;
    let mut chosen: Option<(&str, any_value::Value)> = None;
    for (key, item) in map {
        if item.is_null() {
            continue;
        }
        let item_path = path.key(key);
        let decoded = match key.as_str() {
            "stringValue" => any_value::Value::StringValue(string(item, &item_path)?),
            "boolValue" => any_value::Value::BoolValue(boolean(item, &item_path)?),
            "intValue" => any_value::Value::IntValue(integer(item, &item_path)?),
            "doubleValue" => any_value::Value::DoubleValue(double(item, &item_path)?),
            "bytesValue" => any_value::Value::BytesValue(bytes(item, &item_path)?),
            "arrayValue" => {
                let array = object(item, &item_path, "an arrayValue")?;
                any_value::Value::ArrayValue(ArrayValue {
                    values: list(array, "values", &item_path, |item, path| {
                        any_value(item, path, depth + 1)
                    })?,
                })
            }
            "kvlistValue" => {
                let kvlist = object(item, &item_path, "a kvlistValue")?;
                any_value::Value::KvlistValue(KeyValueList {
                    values: list(kvlist, "values", &item_path, |item, path| {
                        key_value(item, path, depth + 1)
                    })?,
                })
            }
            "stringValueStrindex" => {
                any_value::Value::StringValueStrindex(integer(item, &item_path)?)
            }
            // Unknown keys are ignored, as the specification requires.
            _ => continue,
        };
        // A oneof holds one value; the proto3 JSON mapping rejects two, and picking one would
        // silently drop the other.
        if let Some((first, _)) = chosen {
            return Err(JsonError::at(
                path,
                format!("has both \"{first}\" and \"{key}\", but an attribute value holds one"),
            ));
        }
        chosen = Some((key, decoded));
    }
    Ok(AnyValue {
        value: chosen.map(|(_, value)| value),
    })
}

/// A double: a number, a numeric string, or one of the three names the proto3 JSON mapping
/// uses for values JSON numbers cannot express.
fn double(value: &Value, path: &JsonPath<'_>) -> Result<f64, JsonError> {
    match value {
        Value::Number(n) => n.as_f64().ok_or_else(|| {
            JsonError::at(path, format!("{n} is not a floating-point number"))
        }),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            // JSON's number grammar, not Rust's `f64::from_str`, which also takes "inf",
            // "nan" or "infinity" in any case.
            _ => serde_json::from_str::<f64>(s).map_err(|_| {
                JsonError::at(
                    path,
                    format!(
                        "{} is not a number (expected a number, \"NaN\", \"Infinity\" or \"-Infinity\")",
                        quote(s)
                    ),
                )
            }),
        },
        other => Err(JsonError::at(
            path,
            format!("expected a number, found {}", found(other)),
        )),
    }
}

fn bytes(value: &Value, path: &JsonPath<'_>) -> Result<Vec<u8>, JsonError> {
    let text = string(value, path)?;
    decode_base64(&text)
        .ok_or_else(|| JsonError::at(path, format!("{} is not base64", quote(&text))))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use opentelemetry_proto::tonic::trace::v1::TracesData;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Fixture folders, as laid out in the workspace (`tests/fixtures/` at the root).
    const OTLP_JSON_FIXTURES: &str =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/otlp-json");
    const OTLP_PROTOJSON_FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/otlp-protojson"
    );

    /// `(file name, contents)` of every `.json` file in `dir`, sorted by name.
    fn fixtures(dir: &str) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|err| panic!("cannot list {dir}: {err}"))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .map(|path| {
                let name = path.file_name().expect("file name").to_string_lossy();
                let body = std::fs::read(&path).expect("fixture readable");
                (name.into_owned(), body)
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no fixtures in {dir}");
        files
    }

    fn decode(body: &str) -> ExportTraceServiceRequest {
        decode_export_request(body.as_bytes()).unwrap_or_else(|err| panic!("{err}"))
    }

    fn decode_err(body: &str) -> String {
        match decode_export_request(body.as_bytes()) {
            Ok(request) => panic!("decoded, expected an error: {request:?}"),
            Err(err) => err.to_string(),
        }
    }

    /// A request with one span whose JSON object is `span`.
    fn with_span(span: Value) -> String {
        json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).to_string()
    }

    fn only_span(request: &ExportTraceServiceRequest) -> &Span {
        &request.resource_spans[0].scope_spans[0].spans[0]
    }

    fn only_attribute(request: &ExportTraceServiceRequest) -> Option<&any_value::Value> {
        only_span(request).attributes[0]
            .value
            .as_ref()
            .and_then(|v| v.value.as_ref())
    }

    #[test]
    fn fixtures_decode_like_opentelemetry_proto_serde() {
        for (name, body) in fixtures(OTLP_JSON_FIXTURES) {
            let ours = decode_export_request(&body).unwrap_or_else(|err| panic!("{name}: {err}"));
            let text = String::from_utf8(body).expect("utf-8 fixture");
            // The reference: the serde derive of opentelemetry-proto, which reads the
            // specification's encoding (hex IDs, integer enums) and so can read these files.
            // No normalization is needed: the files use only what both decoders read alike
            // (hex IDs, integer enums, string int64, no `null`s and no unknown keys), and
            // both produce `Some` for a `resource` or `scope` that is present but empty.
            let theirs: TracesData =
                serde_json::from_str(&text).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(ours.resource_spans, theirs.resource_spans, "{name}");
            let spans: usize = ours
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len())
                .sum();
            assert!(spans > 0, "{name} has no spans");
        }
    }

    #[test]
    fn protojson_fixtures_decode_like_their_otlp_json_twins() {
        let twins = fixtures(OTLP_JSON_FIXTURES);
        let protojson = fixtures(OTLP_PROTOJSON_FIXTURES);
        let names = |files: &[(String, Vec<u8>)]| -> Vec<String> {
            files.iter().map(|(name, _)| name.clone()).collect()
        };
        assert_eq!(
            names(&twins),
            names(&protojson),
            "the folders hold the same files"
        );
        for ((name, otlp), (_, proto)) in twins.iter().zip(&protojson) {
            let expected =
                decode_export_request(otlp).unwrap_or_else(|err| panic!("{name}: {err}"));
            let actual = decode_export_request(proto).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(actual, expected, "{name}");
        }
    }

    #[test]
    fn fixture_path_is_relative_to_the_crate() {
        // Guards the `concat!` form: the workspace keeps fixtures beside the crates.
        assert!(
            Path::new(OTLP_JSON_FIXTURES).is_dir(),
            "{OTLP_JSON_FIXTURES}"
        );
    }

    #[test]
    fn reads_every_field_of_the_specification_encoding() {
        let request = decode(
            &json!({"resourceSpans": [{
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "api"}}],
                    "droppedAttributesCount": 1,
                    "entityRefs": [{"schemaUrl": "s", "type": "service", "idKeys": ["service.name"],
                                    "descriptionKeys": ["d"]}]
                },
                "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
                "scopeSpans": [{
                    "scope": {"name": "lib", "version": "1.0", "attributes": [],
                              "droppedAttributesCount": "2"},
                    "schemaUrl": "scope-schema",
                    "spans": [{
                        "traceId": "5B8EFFF798038103D269B633813FC60C",
                        "spanId": "eee19b7ec3c1b174",
                        "parentSpanId": "",
                        "traceState": "k=v",
                        "flags": 257,
                        "name": "GET /",
                        "kind": 2,
                        "startTimeUnixNano": "1544712660000000000",
                        "endTimeUnixNano": 1544712661000000000u64,
                        "attributes": [
                            {"key": "b", "value": {"boolValue": true}},
                            {"key": "i", "value": {"intValue": "-42"}},
                            {"key": "d", "value": {"doubleValue": 1.5}},
                            {"key": "x", "value": {"bytesValue": "AAEC"}},
                            {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "s"}]}}},
                            {"key": "k", "value": {"kvlistValue": {"values": [{"key": "n", "value": {"intValue": 1}}]}}},
                            {"key": "e", "value": {}},
                            {"key": "none"}
                        ],
                        "droppedAttributesCount": 3,
                        "events": [{"timeUnixNano": "1544712660500000000", "name": "exception",
                                    "attributes": [], "droppedAttributesCount": 4}],
                        "droppedEventsCount": 5,
                        "links": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b173",
                                   "traceState": "a=b", "attributes": [], "droppedAttributesCount": 6, "flags": 1}],
                        "droppedLinksCount": 7,
                        "status": {"code": 2, "message": "boom"}
                    }]
                }]
            }]})
            .to_string(),
        );
        let rs = &request.resource_spans[0];
        let resource = rs.resource.as_ref().expect("resource");
        assert_eq!(resource.dropped_attributes_count, 1);
        assert_eq!(resource.entity_refs[0].r#type, "service");
        assert_eq!(resource.entity_refs[0].id_keys, ["service.name"]);
        assert_eq!(rs.schema_url, "https://opentelemetry.io/schemas/1.26.0");
        let ss = &rs.scope_spans[0];
        let scope = ss.scope.as_ref().expect("scope");
        assert_eq!(
            (scope.name.as_str(), scope.version.as_str()),
            ("lib", "1.0")
        );
        assert_eq!(scope.dropped_attributes_count, 2);
        assert_eq!(ss.schema_url, "scope-schema");
        let span = &ss.spans[0];
        assert_eq!(
            span.trace_id,
            [
                0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f,
                0xc6, 0x0c
            ]
        );
        assert_eq!(
            span.span_id,
            [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
        );
        assert!(span.parent_span_id.is_empty());
        assert_eq!(span.trace_state, "k=v");
        assert_eq!(span.flags, 257);
        assert_eq!(span.name, "GET /");
        assert_eq!(span.kind, span::SpanKind::Server as i32);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        let values: Vec<_> = span
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.clone().and_then(|v| v.value)))
            .collect();
        use any_value::Value as V;
        assert_eq!(
            values,
            [
                ("b", Some(V::BoolValue(true))),
                ("i", Some(V::IntValue(-42))),
                ("d", Some(V::DoubleValue(1.5))),
                ("x", Some(V::BytesValue(vec![0, 1, 2]))),
                (
                    "a",
                    Some(V::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(V::StringValue("s".into()))
                        }]
                    }))
                ),
                (
                    "k",
                    Some(V::KvlistValue(KeyValueList {
                        values: vec![KeyValue {
                            key: "n".into(),
                            value: Some(AnyValue {
                                value: Some(V::IntValue(1))
                            }),
                            ..Default::default()
                        }]
                    }))
                ),
                ("e", None),
                ("none", None),
            ]
        );
        assert!(
            span.attributes[6].value.is_some(),
            "`{{}}` is an empty value, not no value"
        );
        assert!(span.attributes[7].value.is_none());
        assert_eq!(span.dropped_attributes_count, 3);
        assert_eq!(span.events[0].time_unix_nano, 1_544_712_660_500_000_000);
        assert_eq!(span.events[0].name, "exception");
        assert_eq!(span.events[0].dropped_attributes_count, 4);
        assert_eq!(span.dropped_events_count, 5);
        let link = &span.links[0];
        assert_eq!(link.trace_id, span.trace_id);
        assert_eq!(
            link.span_id,
            [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73]
        );
        assert_eq!(link.trace_state, "a=b");
        assert_eq!((link.dropped_attributes_count, link.flags), (6, 1));
        assert_eq!(span.dropped_links_count, 7);
        let status = span.status.as_ref().expect("status");
        assert_eq!(status.code, status::StatusCode::Error as i32);
        assert_eq!(status.message, "boom");
    }

    #[test]
    fn reads_the_proto3_json_variant() {
        let request = decode(&with_span(json!({
            "traceId": "W47/95gDgQPSabYzgT/GDA==",
            "spanId": "7uGbfsPBsXQ=",
            "kind": "SPAN_KIND_CLIENT",
            "status": {"code": "STATUS_CODE_OK"},
            "links": [{"traceId": "W47_95gDgQPSabYzgT_GDA==", "spanId": "7uGbfsPBsXQ="}]
        })));
        let span = only_span(&request);
        let hex = decode(&with_span(json!({
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"
        })));
        assert_eq!(span.trace_id, only_span(&hex).trace_id);
        assert_eq!(span.span_id, only_span(&hex).span_id);
        assert_eq!(span.links[0].trace_id, span.trace_id, "URL-safe base64 too");
        assert_eq!(span.kind, span::SpanKind::Client as i32);
        assert_eq!(span.status.as_ref().map(|s| s.code), Some(1));
    }

    #[test]
    fn null_is_absent_and_unknown_keys_are_ignored() {
        let request = decode(&with_span(json!({
            "traceId": null,
            "name": null,
            "attributes": null,
            "status": null,
            // Original proto field names are unknown keys in OTLP/JSON, not aliases: the
            // caller sees an empty ID and rejects the span.
            "span_id": "eee19b7ec3c1b174",
            "somethingNew": {"nested": [1, 2, {"deep": true}]}
        })));
        assert_eq!(only_span(&request), &Span::default());
        assert_eq!(decode("{}"), ExportTraceServiceRequest::default());
        assert_eq!(
            decode(r#"{"resourceSpans": null}"#),
            ExportTraceServiceRequest::default()
        );
    }

    #[test]
    fn enums_keep_unknown_integers_and_read_decimal_strings() {
        let request = decode(&with_span(json!({"kind": 42, "status": {"code": "2"}})));
        assert_eq!(only_span(&request).kind, 42);
        assert_eq!(only_span(&request).status.as_ref().map(|s| s.code), Some(2));
    }

    #[test]
    fn doubles_take_the_special_names_and_numeric_strings() {
        let double = |value: Value| -> f64 {
            let request = decode(&with_span(
                json!({"attributes": [{"key": "d", "value": {"doubleValue": value}}]}),
            ));
            match only_attribute(&request) {
                Some(any_value::Value::DoubleValue(d)) => *d,
                other => panic!("not a double: {other:?}"),
            }
        };
        assert!(double(json!("NaN")).is_nan());
        assert_eq!(double(json!("Infinity")), f64::INFINITY);
        assert_eq!(double(json!("-Infinity")), f64::NEG_INFINITY);
        assert_eq!(double(json!("2.5e3")), 2500.0);
        assert_eq!(double(json!(7)), 7.0);
        let err = decode_err(&with_span(
            json!({"attributes": [{"key": "d", "value": {"doubleValue": "inf"}}]}),
        ));
        assert!(
            err.starts_with("resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.doubleValue: \"inf\" is not a number"),
            "{err}"
        );
    }

    #[test]
    fn bytes_take_standard_and_url_safe_base64_with_or_without_padding() {
        for text in ["+/8=", "+/8", "-_8=", "-_8"] {
            let request = decode(&with_span(
                json!({"attributes": [{"key": "b", "value": {"bytesValue": text}}]}),
            ));
            assert_eq!(
                only_attribute(&request),
                Some(&any_value::Value::BytesValue(vec![0xfb, 0xff])),
                "{text}"
            );
        }
        let err = decode_err(&with_span(
            json!({"attributes": [{"key": "b", "value": {"bytesValue": "no base64!"}}]}),
        ));
        assert!(
            err.ends_with("bytesValue: \"no base64!\" is not base64"),
            "{err}"
        );
    }

    #[test]
    fn integers_take_numbers_strings_and_exact_floats() {
        let request = decode(&with_span(json!({
            "startTimeUnixNano": "18446744073709551615",
            "endTimeUnixNano": 1e3,
            "droppedAttributesCount": "4294967295",
            "attributes": [{"key": "i", "value": {"intValue": -9223372036854775808i64}}]
        })));
        let span = only_span(&request);
        assert_eq!(span.start_time_unix_nano, u64::MAX);
        assert_eq!(span.end_time_unix_nano, 1000);
        assert_eq!(span.dropped_attributes_count, u32::MAX);
        assert_eq!(
            only_attribute(&request),
            Some(&any_value::Value::IntValue(i64::MIN))
        );
    }

    // ---- errors: each names the path of the offending value ----

    #[test]
    fn truncated_json_says_so() {
        let (name, body) = fixtures(OTLP_JSON_FIXTURES).swap_remove(0);
        let message = decode_export_request(&body[..body.len() / 2])
            .expect_err(&name)
            .to_string();
        assert!(
            message.starts_with("truncated json: EOF while parsing"),
            "{message}"
        );
        assert!(message.contains(" line "), "{message}");
    }

    #[test]
    fn empty_body_and_non_object_bodies_are_refused_clearly() {
        assert_eq!(
            decode_err("  \n"),
            "the request body is empty (expected json)"
        );
        assert_eq!(
            decode_err("[]"),
            "the request body must be a json object with a \"resourceSpans\" list, found an array"
        );
        assert_eq!(
            decode_err(r#"{"resourceSpans": {}}"#),
            "resourceSpans: expected an array, found an object"
        );
    }

    #[test]
    fn wrong_id_length_names_the_span() {
        // The fourth span of the second scope of the first resource.
        let spans = json!([{}, {}, {}, {"traceId": "abc"}]);
        let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": []}, {"spans": spans}]}]});
        assert_eq!(
            decode_err(&body.to_string()),
            "resourceSpans[0].scopeSpans[1].spans[3].traceId: \"abc\" is not a trace id \
             (expected 32 hex characters or 24 base64 characters)"
        );
        assert_eq!(
            decode_err(&with_span(json!({"spanId": "eee19b7ec3c1b1"}))),
            "resourceSpans[0].scopeSpans[0].spans[0].spanId: \"eee19b7ec3c1b1\" is not a span id \
             (expected 16 hex characters or 12 base64 characters)"
        );
        // 24 characters that are not padded base64 of 16 bytes.
        let err = decode_err(&with_span(json!({"traceId": "5b8efff798038103d269b633"})));
        assert!(
            err.contains("traceId: \"5b8efff798038103d269b633\" is not a trace id"),
            "{err}"
        );
    }

    #[test]
    fn non_hex_id_names_the_field() {
        assert_eq!(
            decode_err(&with_span(json!({"parentSpanId": "eee19b7ec3c1b17g"}))),
            "resourceSpans[0].scopeSpans[0].spans[0].parentSpanId: \"eee19b7ec3c1b17g\" is not a \
             span id (expected 16 hex characters or 12 base64 characters)"
        );
        let err = decode_err(&with_span(
            json!({"links": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "zzzzzzzzzzzzzzzz"}]}),
        ));
        assert!(
            err.starts_with("resourceSpans[0].scopeSpans[0].spans[0].links[0].spanId: \"zzzz"),
            "{err}"
        );
        let err = decode_err(&with_span(json!({"traceId": 12})));
        assert!(
            err.ends_with("traceId: expected a trace id as a string, found 12"),
            "{err}"
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(10_000);
        let err = decode_err(&with_span(json!({"traceId": long})));
        assert!(err.len() < 300, "{err}");
        assert!(err.contains("… (10000 characters)"), "{err}");
    }

    #[test]
    fn unknown_enum_name_is_an_error() {
        assert_eq!(
            decode_err(&with_span(json!({"kind": "SPAN_KIND_SIDEWAYS"}))),
            "resourceSpans[0].scopeSpans[0].spans[0].kind: \"SPAN_KIND_SIDEWAYS\" is not a span \
             kind (expected an integer or a name such as \"SPAN_KIND_SERVER\")"
        );
        assert_eq!(
            decode_err(&with_span(json!({"status": {"code": "ERROR"}}))),
            "resourceSpans[0].scopeSpans[0].spans[0].status.code: \"ERROR\" is not a status code \
             (expected an integer or a name such as \"STATUS_CODE_ERROR\")"
        );
        let err = decode_err(&with_span(json!({"kind": 2_147_483_648u64})));
        assert!(
            err.ends_with("kind: 2147483648 is too large (expected a 32-bit integer)"),
            "{err}"
        );
    }

    #[test]
    fn malformed_int_value_names_the_attribute() {
        let body = json!({"resourceSpans": [{"resource": {"attributes": [
            {"key": "ok", "value": {"intValue": "1"}},
            {"key": "bad", "value": {"intValue": "12x"}}
        ]}}]});
        assert_eq!(
            decode_err(&body.to_string()),
            "resourceSpans[0].resource.attributes[1].value.intValue: \"12x\" is not an integer \
             (expected a 64-bit integer)"
        );
    }

    #[test]
    fn negative_timestamps_and_other_bad_integers_are_refused() {
        let path = "resourceSpans[0].scopeSpans[0].spans[0]";
        let cases = [
            (
                json!({"startTimeUnixNano": "-5"}),
                "startTimeUnixNano: \"-5\" is negative (expected an unsigned 64-bit integer)",
            ),
            (
                json!({"startTimeUnixNano": -5}),
                "startTimeUnixNano: -5 is negative (expected an unsigned 64-bit integer)",
            ),
            (
                json!({"endTimeUnixNano": "18446744073709551616"}),
                "endTimeUnixNano: \"18446744073709551616\" is too large (expected an unsigned 64-bit integer)",
            ),
            (
                json!({"endTimeUnixNano": "999999999999999999999999999999999999999999"}),
                "endTimeUnixNano: \"999999999999999999999999999999999999999999\" is too large (expected an unsigned 64-bit integer)",
            ),
            (
                json!({"endTimeUnixNano": 1.5}),
                "endTimeUnixNano: 1.5 is not an integer (expected an unsigned 64-bit integer)",
            ),
            (
                json!({"endTimeUnixNano": 1e300}),
                "endTimeUnixNano: 1e+300 is too large (expected an unsigned 64-bit integer)",
            ),
            (
                json!({"endTimeUnixNano": ""}),
                "endTimeUnixNano: \"\" is not an integer (expected an unsigned 64-bit integer)",
            ),
            (
                json!({"endTimeUnixNano": true}),
                "endTimeUnixNano: expected an unsigned 64-bit integer (a number or a decimal string), found true",
            ),
            (
                json!({"droppedAttributesCount": 4_294_967_296u64}),
                "droppedAttributesCount: 4294967296 is too large (expected an unsigned 32-bit integer)",
            ),
            (
                json!({"flags": -1}),
                "flags: -1 is negative (expected an unsigned 32-bit integer)",
            ),
            (
                json!({"attributes": [{"key": "i", "value": {"intValue": "-9223372036854775809"}}]}),
                "attributes[0].value.intValue: \"-9223372036854775809\" is too small (expected a 64-bit integer)",
            ),
        ];
        for (span, expected) in cases {
            assert_eq!(decode_err(&with_span(span)), format!("{path}.{expected}"));
        }
    }

    #[test]
    fn wrong_types_and_null_elements_name_the_field() {
        let path = "resourceSpans[0].scopeSpans[0].spans[0]";
        let cases = [
            (json!({"name": 12}), "name: expected a string, found 12"),
            (
                json!({"events": [null]}),
                "events[0]: null is not allowed in a list",
            ),
            (
                json!({"events": [[]]}),
                "events[0]: expected an event as a json object, found an array",
            ),
            (
                json!({"status": "ok"}),
                "status: expected a span status as a json object, found \"ok\"",
            ),
            (
                json!({"attributes": [{"key": "b", "value": {"boolValue": "true"}}]}),
                "attributes[0].value.boolValue: expected true or false, found \"true\"",
            ),
            (
                json!({"attributes": [{"key": "s", "value": {"stringValue": "a", "intValue": "1"}}]}),
                "attributes[0].value: has both \"intValue\" and \"stringValue\", but an attribute value holds one",
            ),
            (
                json!({"attributes": [{"key": "a", "value": {"arrayValue": []}}]}),
                "attributes[0].value.arrayValue: expected an arrayValue as a json object, found an array",
            ),
        ];
        for (span, expected) in cases {
            assert_eq!(decode_err(&with_span(span)), format!("{path}.{expected}"));
        }
    }

    /// An attribute value nested `levels` deep in `arrayValue`s (built in linear time: the
    /// bomb test nests 100,000 levels).
    fn nested_array_value(levels: usize) -> String {
        let open = r#"{"arrayValue":{"values":["#.repeat(levels - 1);
        let close = "]}}".repeat(levels - 1);
        format!(r#"{open}{{"stringValue":"bottom"}}{close}"#)
    }

    /// An attribute value nested `levels` deep in `kvlistValue`s.
    fn nested_kvlist_value(levels: usize) -> String {
        let open = r#"{"kvlistValue":{"values":[{"key":"k","value":"#.repeat(levels - 1);
        let close = "}]}}".repeat(levels - 1);
        format!(r#"{open}{{"stringValue":"bottom"}}{close}"#)
    }

    fn span_with_attribute_value(value: &str) -> String {
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"events":[{{"attributes":[{{"key":"deep","value":{value}}}]}}]}}]}}]}}]}}"#
        )
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted() {
        for value in [
            nested_array_value(MAX_VALUE_DEPTH),
            nested_kvlist_value(MAX_VALUE_DEPTH),
        ] {
            decode(&span_with_attribute_value(&value));
        }
    }

    #[test]
    fn nesting_beyond_the_limit_names_the_attribute() {
        for value in [
            nested_array_value(MAX_VALUE_DEPTH + 1),
            nested_kvlist_value(MAX_VALUE_DEPTH + 1),
        ] {
            let err = decode_err(&span_with_attribute_value(&value));
            assert!(
                err.starts_with(
                    "resourceSpans[0].scopeSpans[0].spans[0].events[0].attributes[0].value."
                ),
                "{err}"
            );
            assert!(
                err.ends_with(": attribute values are nested more than 24 levels deep"),
                "{err}"
            );
        }
    }

    #[test]
    fn nesting_bomb_is_stopped_by_the_parser() {
        // 100,000 levels: without serde_json's recursion limit, building or dropping the value
        // would overflow the stack.
        let bomb = nested_array_value(100_000);
        let err = decode_export_request(span_with_attribute_value(&bomb).as_bytes())
            .expect_err("too deep");
        let message = err.to_string();
        assert!(
            message.starts_with("invalid json: recursion limit exceeded at line 1 column "),
            "{message}"
        );
        let raw = "[".repeat(1_000_000);
        let message = decode_err(&raw);
        assert!(
            message.starts_with("invalid json: recursion limit exceeded"),
            "{message}"
        );
    }

    // ---- responses ----

    #[test]
    fn full_success_leaves_partial_success_unset() {
        assert_eq!(encode_export_response_json(0, ""), b"{}");
    }

    #[test]
    fn partial_success_writes_int64_as_a_string() {
        assert_eq!(
            String::from_utf8(encode_export_response_json(3, "3 spans had no trace id")),
            Ok(r#"{"partialSuccess":{"errorMessage":"3 spans had no trace id","rejectedSpans":"3"}}"#.to_owned())
        );
        assert_eq!(
            String::from_utf8(encode_export_response_json(
                0,
                "attribute values were truncated"
            )),
            Ok(
                r#"{"partialSuccess":{"errorMessage":"attribute values were truncated"}}"#
                    .to_owned()
            )
        );
        assert_eq!(
            String::from_utf8(encode_export_response_json(1, "")),
            Ok(r#"{"partialSuccess":{"rejectedSpans":"1"}}"#.to_owned())
        );
    }

    #[test]
    fn status_body_escapes_the_message() {
        assert_eq!(
            String::from_utf8(encode_status_json(3, "bad \"traceId\"\n")),
            Ok(r#"{"code":3,"message":"bad \"traceId\"\n"}"#.to_owned())
        );
        let parsed: Value = serde_json::from_slice(&encode_status_json(8, "")).expect("json");
        assert_eq!(parsed, json!({"code": 8, "message": ""}));
    }

    // ---- round trip: a small encoder of our own, random requests ----

    /// How the test encoder writes the things OTLP/JSON lets a sender choose.
    #[derive(Debug, Clone, Copy)]
    struct Style {
        base64_ids: bool,
        upper_hex: bool,
        numbers_not_strings: bool,
        enum_names: bool,
        unknown_keys: bool,
    }

    fn style() -> impl Strategy<Value = Style> {
        any::<(bool, bool, bool, bool, bool)>().prop_map(
            |(base64_ids, upper_hex, numbers_not_strings, enum_names, unknown_keys)| Style {
                base64_ids,
                upper_hex,
                numbers_not_strings,
                enum_names,
                unknown_keys,
            },
        )
    }

    impl Style {
        fn object(&self, pairs: Vec<(&str, Value)>) -> Value {
            let mut map: Map<String, Value> =
                pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if self.unknown_keys {
                map.insert("futureField".into(), json!({"x": [1, "two", null]}));
            }
            Value::Object(map)
        }

        fn id(&self, bytes: &[u8]) -> Value {
            if self.base64_ids && !bytes.is_empty() {
                return Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            Value::String(if self.upper_hex {
                hex.to_uppercase()
            } else {
                hex
            })
        }

        fn u64(&self, n: u64) -> Value {
            if self.numbers_not_strings {
                json!(n)
            } else {
                json!(n.to_string())
            }
        }

        fn i64(&self, n: i64) -> Value {
            if self.numbers_not_strings {
                json!(n)
            } else {
                json!(n.to_string())
            }
        }

        fn kind(&self, kind: i32) -> Value {
            match span::SpanKind::try_from(kind) {
                Ok(known) if self.enum_names => json!(known.as_str_name()),
                _ => json!(kind),
            }
        }

        fn code(&self, code: i32) -> Value {
            match status::StatusCode::try_from(code) {
                Ok(known) if self.enum_names => json!(known.as_str_name()),
                _ => json!(code),
            }
        }

        fn request(&self, request: &ExportTraceServiceRequest) -> Value {
            let rs = request
                .resource_spans
                .iter()
                .map(|rs| self.resource_spans(rs));
            self.object(vec![("resourceSpans", rs.collect())])
        }

        fn resource_spans(&self, rs: &ResourceSpans) -> Value {
            let mut pairs = vec![
                (
                    "scopeSpans",
                    rs.scope_spans
                        .iter()
                        .map(|ss| self.scope_spans(ss))
                        .collect(),
                ),
                ("schemaUrl", json!(rs.schema_url)),
            ];
            if let Some(resource) = &rs.resource {
                pairs.push((
                    "resource",
                    self.object(vec![
                        ("attributes", self.attributes(&resource.attributes)),
                        (
                            "droppedAttributesCount",
                            json!(resource.dropped_attributes_count),
                        ),
                        (
                            "entityRefs",
                            resource
                                .entity_refs
                                .iter()
                                .map(|e| {
                                    self.object(vec![
                                        ("schemaUrl", json!(e.schema_url)),
                                        ("type", json!(e.r#type)),
                                        ("idKeys", json!(e.id_keys)),
                                        ("descriptionKeys", json!(e.description_keys)),
                                    ])
                                })
                                .collect(),
                        ),
                    ]),
                ));
            }
            self.object(pairs)
        }

        fn scope_spans(&self, ss: &ScopeSpans) -> Value {
            let mut pairs = vec![
                ("spans", ss.spans.iter().map(|s| self.span(s)).collect()),
                ("schemaUrl", json!(ss.schema_url)),
            ];
            if let Some(scope) = &ss.scope {
                pairs.push((
                    "scope",
                    self.object(vec![
                        ("name", json!(scope.name)),
                        ("version", json!(scope.version)),
                        ("attributes", self.attributes(&scope.attributes)),
                        (
                            "droppedAttributesCount",
                            json!(scope.dropped_attributes_count),
                        ),
                    ]),
                ));
            }
            self.object(pairs)
        }

        fn span(&self, s: &Span) -> Value {
            let mut pairs = vec![
                ("traceId", self.id(&s.trace_id)),
                ("spanId", self.id(&s.span_id)),
                ("traceState", json!(s.trace_state)),
                ("parentSpanId", self.id(&s.parent_span_id)),
                ("flags", json!(s.flags)),
                ("name", json!(s.name)),
                ("kind", self.kind(s.kind)),
                ("startTimeUnixNano", self.u64(s.start_time_unix_nano)),
                ("endTimeUnixNano", self.u64(s.end_time_unix_nano)),
                ("attributes", self.attributes(&s.attributes)),
                ("droppedAttributesCount", json!(s.dropped_attributes_count)),
                (
                    "events",
                    s.events
                        .iter()
                        .map(|e| {
                            self.object(vec![
                                ("timeUnixNano", self.u64(e.time_unix_nano)),
                                ("name", json!(e.name)),
                                ("attributes", self.attributes(&e.attributes)),
                                ("droppedAttributesCount", json!(e.dropped_attributes_count)),
                            ])
                        })
                        .collect(),
                ),
                ("droppedEventsCount", json!(s.dropped_events_count)),
                (
                    "links",
                    s.links
                        .iter()
                        .map(|l| {
                            self.object(vec![
                                ("traceId", self.id(&l.trace_id)),
                                ("spanId", self.id(&l.span_id)),
                                ("traceState", json!(l.trace_state)),
                                ("attributes", self.attributes(&l.attributes)),
                                ("droppedAttributesCount", json!(l.dropped_attributes_count)),
                                ("flags", json!(l.flags)),
                            ])
                        })
                        .collect(),
                ),
                ("droppedLinksCount", json!(s.dropped_links_count)),
            ];
            if let Some(status) = &s.status {
                pairs.push((
                    "status",
                    self.object(vec![
                        ("message", json!(status.message)),
                        ("code", self.code(status.code)),
                    ]),
                ));
            }
            self.object(pairs)
        }

        fn attributes(&self, attributes: &[KeyValue]) -> Value {
            attributes.iter().map(|kv| self.key_value(kv)).collect()
        }

        fn key_value(&self, kv: &KeyValue) -> Value {
            let mut pairs = vec![("key", json!(kv.key))];
            if let Some(value) = &kv.value {
                pairs.push(("value", self.any_value(value)));
            }
            self.object(pairs)
        }

        fn any_value(&self, value: &AnyValue) -> Value {
            use any_value::Value as V;
            let pair = match &value.value {
                None => return self.object(vec![]),
                Some(V::StringValue(s)) => ("stringValue", json!(s)),
                Some(V::BoolValue(b)) => ("boolValue", json!(b)),
                Some(V::IntValue(i)) => ("intValue", self.i64(*i)),
                Some(V::DoubleValue(d)) if d.is_nan() => ("doubleValue", json!("NaN")),
                Some(V::DoubleValue(d)) if d.is_infinite() => (
                    "doubleValue",
                    json!(if *d > 0.0 { "Infinity" } else { "-Infinity" }),
                ),
                Some(V::DoubleValue(d)) => ("doubleValue", json!(d)),
                Some(V::BytesValue(b)) => (
                    "bytesValue",
                    json!(base64::engine::general_purpose::STANDARD.encode(b)),
                ),
                Some(V::ArrayValue(a)) => (
                    "arrayValue",
                    self.object(vec![(
                        "values",
                        a.values.iter().map(|v| self.any_value(v)).collect(),
                    )]),
                ),
                Some(V::KvlistValue(l)) => (
                    "kvlistValue",
                    self.object(vec![(
                        "values",
                        l.values.iter().map(|kv| self.key_value(kv)).collect(),
                    )]),
                ),
                Some(V::StringValueStrindex(i)) => ("stringValueStrindex", json!(i)),
            };
            self.object(vec![pair])
        }
    }

    fn text() -> impl Strategy<Value = String> {
        // Any Unicode, including quotes, backslashes and control characters, which the
        // encoder must escape and the decoder restore.
        proptest::collection::vec(any::<char>(), 0..8).prop_map(|chars| chars.into_iter().collect())
    }

    fn id_bytes(len: usize) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            1 => Just(Vec::new()),
            4 => proptest::collection::vec(any::<u8>(), len),
        ]
    }

    fn any_value() -> impl Strategy<Value = AnyValue> {
        use any_value::Value as V;
        let leaf = prop_oneof![
            Just(None),
            text().prop_map(|s| Some(V::StringValue(s))),
            any::<bool>().prop_map(|b| Some(V::BoolValue(b))),
            any::<i64>().prop_map(|i| Some(V::IntValue(i))),
            // NaN never equals itself; `doubles_take_the_special_names...` covers it.
            any::<f64>()
                .prop_filter("not NaN", |d| !d.is_nan())
                .prop_map(|d| Some(V::DoubleValue(d))),
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(|b| Some(V::BytesValue(b))),
        ]
        .prop_map(|value| AnyValue { value });
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                    value: Some(V::ArrayValue(ArrayValue { values }))
                }),
                proptest::collection::vec((text(), proptest::option::of(inner)), 0..4).prop_map(
                    |pairs| AnyValue {
                        value: Some(V::KvlistValue(KeyValueList {
                            values: pairs
                                .into_iter()
                                .map(|(key, value)| KeyValue {
                                    key,
                                    value,
                                    ..Default::default()
                                })
                                .collect(),
                        }))
                    }
                ),
            ]
        })
    }

    fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
        proptest::collection::vec((text(), proptest::option::of(any_value())), 0..3).prop_map(
            |pairs| {
                pairs
                    .into_iter()
                    .map(|(key, value)| KeyValue {
                        key,
                        value,
                        ..Default::default()
                    })
                    .collect()
            },
        )
    }

    fn span_strategy() -> impl Strategy<Value = Span> {
        let ids = (id_bytes(16), id_bytes(8), id_bytes(8), text(), any::<u32>());
        let times = (any::<u64>(), any::<u64>(), 0..8i32, text());
        let event = (any::<u64>(), text(), attributes(), any::<u32>()).prop_map(
            |(time_unix_nano, name, attributes, dropped_attributes_count)| span::Event {
                time_unix_nano,
                name,
                attributes,
                dropped_attributes_count,
            },
        );
        let link = (
            id_bytes(16),
            id_bytes(8),
            text(),
            attributes(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(
                |(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| {
                    span::Link {
                        trace_id,
                        span_id,
                        trace_state,
                        attributes,
                        dropped_attributes_count,
                        flags,
                    }
                },
            );
        let status = proptest::option::of(
            (text(), 0..4i32).prop_map(|(message, code)| Status { message, code }),
        );
        let rest = (
            attributes(),
            proptest::collection::vec(event, 0..2),
            proptest::collection::vec(link, 0..2),
            status,
            any::<(u32, u32, u32)>(),
        );
        (ids, times, rest).prop_map(
            |(
                (trace_id, span_id, parent_span_id, trace_state, flags),
                (start_time_unix_nano, end_time_unix_nano, kind, name),
                (attributes, events, links, status, dropped),
            )| Span {
                trace_id,
                span_id,
                trace_state,
                parent_span_id,
                flags,
                name,
                kind,
                start_time_unix_nano,
                end_time_unix_nano,
                attributes,
                dropped_attributes_count: dropped.0,
                events,
                dropped_events_count: dropped.1,
                links,
                dropped_links_count: dropped.2,
                status,
            },
        )
    }

    fn request_strategy() -> impl Strategy<Value = ExportTraceServiceRequest> {
        let scope = proptest::option::of((text(), text(), attributes(), any::<u32>()).prop_map(
            |(name, version, attributes, dropped_attributes_count)| InstrumentationScope {
                name,
                version,
                attributes,
                dropped_attributes_count,
            },
        ));
        let scope_spans = (
            scope,
            proptest::collection::vec(span_strategy(), 0..3),
            text(),
        )
            .prop_map(|(scope, spans, schema_url)| ScopeSpans {
                scope,
                spans,
                schema_url,
            });
        let entity_ref = (text(), text(), proptest::collection::vec(text(), 0..2)).prop_map(
            |(schema_url, r#type, id_keys)| EntityRef {
                schema_url,
                r#type,
                description_keys: id_keys.iter().rev().cloned().collect(),
                id_keys,
            },
        );
        let resource = proptest::option::of(
            (
                attributes(),
                any::<u32>(),
                proptest::collection::vec(entity_ref, 0..2),
            )
                .prop_map(|(attributes, dropped_attributes_count, entity_refs)| {
                    Resource {
                        attributes,
                        dropped_attributes_count,
                        entity_refs,
                    }
                }),
        );
        let resource_spans = (
            resource,
            proptest::collection::vec(scope_spans, 0..3),
            text(),
        )
            .prop_map(|(resource, scope_spans, schema_url)| ResourceSpans {
                resource,
                scope_spans,
                schema_url,
            });
        proptest::collection::vec(resource_spans, 0..3)
            .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
    }

    /// `request` with every `doubleValue` replaced by what serde_json reads back from its
    /// shortest decimal form. Without serde_json's `float_roundtrip` feature that read may be
    /// one unit in the last place off (a parser trade-off, not a decoder bug); with it, this
    /// changes nothing. The workspace decides on the feature; the test holds either way.
    fn as_serde_json_reads_doubles(
        mut request: ExportTraceServiceRequest,
    ) -> ExportTraceServiceRequest {
        fn fix(attributes: &mut [KeyValue]) {
            for value in attributes.iter_mut().filter_map(|kv| kv.value.as_mut()) {
                fix_value(value);
            }
        }
        fn fix_value(value: &mut AnyValue) {
            match &mut value.value {
                Some(any_value::Value::DoubleValue(d)) if d.is_finite() => {
                    *d = serde_json::from_str(&json!(*d).to_string()).unwrap_or(*d);
                }
                Some(any_value::Value::ArrayValue(array)) => {
                    array.values.iter_mut().for_each(fix_value);
                }
                Some(any_value::Value::KvlistValue(list)) => fix(&mut list.values),
                _ => {}
            }
        }
        for rs in &mut request.resource_spans {
            if let Some(resource) = &mut rs.resource {
                fix(&mut resource.attributes);
            }
            for ss in &mut rs.scope_spans {
                if let Some(scope) = &mut ss.scope {
                    fix(&mut scope.attributes);
                }
                for span in &mut ss.spans {
                    fix(&mut span.attributes);
                    span.events.iter_mut().for_each(|e| fix(&mut e.attributes));
                    span.links.iter_mut().for_each(|l| fix(&mut l.attributes));
                }
            }
        }
        request
    }

    /// Random JSON whose object keys are OTLP field names, so that the decoder's branches are
    /// reached with every kind of wrong value.
    fn otlp_shaped_json() -> impl Strategy<Value = Value> {
        const KEYS: &[&str] = &[
            "resourceSpans",
            "resource",
            "scopeSpans",
            "scope",
            "spans",
            "attributes",
            "key",
            "value",
            "traceId",
            "spanId",
            "parentSpanId",
            "kind",
            "status",
            "code",
            "events",
            "links",
            "startTimeUnixNano",
            "flags",
            "stringValue",
            "intValue",
            "doubleValue",
            "boolValue",
            "bytesValue",
            "arrayValue",
            "kvlistValue",
            "values",
            "entityRefs",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            prop_oneof![
                Just("5b8efff798038103d269b633813fc60c".to_owned()),
                Just("W47/95gDgQPSabYzgT/GDA==".to_owned()),
                Just("SPAN_KIND_SERVER".to_owned()),
                Just("-1".to_owned()),
                text(),
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(8, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                    |pairs| {
                        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                    }
                ),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trips_through_the_test_encoder(request in request_strategy(), style in style()) {
            let body = style.request(&request).to_string();
            let decoded = decode_export_request(body.as_bytes());
            prop_assert_eq!(decoded, Ok(as_serde_json_reads_doubles(request)), "body: {}", body);
        }

        #[test]
        fn never_panics_on_otlp_shaped_json(body in otlp_shaped_json()) {
            // Errors are fine; a panic or a stack overflow is not.
            let _ = decode_export_request(body.to_string().as_bytes());
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_export_request(&body);
        }
    }
}
