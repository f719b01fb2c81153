//! A reader of request bodies in JSON that names, in every error, the JSON path of the value
//! at fault (`resourceSpans[0].scopeSpans[1].spans[3].traceId: ...`), shared by the OTLP/JSON
//! decoder ([`crate::otlp_json`]) and the Zipkin v2 decoder ([`crate::zipkin`]).
//!
//! It owns parsing a body into a [`serde_json::Value`] ([`parse_json`]), the path of a value
//! ([`JsonPath`]), the error type and its wording ([`JsonError`], [`found`], [`quote`]), and
//! the readers of objects, fields, lists and scalars with the proto3 JSON mapping's leniency
//! (`null` is an absent field, integers may be decimal strings). What a body means is left to
//! the decoders.

use serde_json::{Map, Value};

/// How many characters of an offending value an error message quotes.
const QUOTE_CHARS: usize = 64;

/// A body that is not valid OTLP/JSON (or, for the Zipkin decoder, Zipkin v2 JSON).
///
/// The message is meant for the user who sent the body (it goes into the HTTP 400 response):
/// it quotes the offending value and names where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The body is not JSON: empty, truncated, or a syntax error. The message carries
    /// serde_json's line and column.
    #[error("{0}")]
    Syntax(String),
    /// The body is JSON, but the value at `path` does not fit the message.
    #[error("{}", describe_invalid(path, message))]
    Invalid {
        /// JSON path of the value, such as `resourceSpans[0].scopeSpans[1].spans[3].traceId`;
        /// empty for the top level.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

fn describe_invalid(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

impl JsonError {
    pub(crate) fn at(path: &JsonPath<'_>, message: impl Into<String>) -> Self {
        JsonError::Invalid {
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// The JSON path of the offending value, or `None` when the body is not JSON at all.
    pub fn path(&self) -> Option<&str> {
        match self {
            JsonError::Syntax(_) => None,
            JsonError::Invalid { path, .. } => Some(path),
        }
    }
}

/// Parses a request body into a JSON value, with messages fit for a user.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, JsonError> {
    // RFC 8259 lets a parser ignore a byte order mark; some Windows tools write one.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(JsonError::Syntax(
            "the request body is empty (expected json)".to_owned(),
        ));
    }
    // serde_json stops at 128 levels of nesting (its default recursion limit), so neither
    // parsing nor dropping the `Value` can exhaust the stack, whatever the body.
    serde_json::from_slice(body).map_err(|err| {
        let what = match err.classify() {
            serde_json::error::Category::Eof => "truncated json",
            _ => "invalid json",
        };
        JsonError::Syntax(format!("{what}: {err}"))
    })
}

/// Where a value sits in the body, kept as a chain of stack frames so that a path costs
/// nothing unless an error needs it printed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonPath<'a> {
    parent: Option<&'a JsonPath<'a>>,
    segment: Segment<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> JsonPath<'a> {
    pub(crate) fn root() -> JsonPath<'static> {
        JsonPath {
            parent: None,
            segment: Segment::Root,
        }
    }

    pub(crate) fn key(&'a self, key: &'a str) -> JsonPath<'a> {
        JsonPath {
            parent: Some(self),
            segment: Segment::Key(key),
        }
    }

    pub(crate) fn index(&'a self, index: usize) -> JsonPath<'a> {
        JsonPath {
            parent: Some(self),
            segment: Segment::Index(index),
        }
    }
}

impl std::fmt::Display for JsonPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut segments = Vec::new();
        let mut current = Some(self);
        while let Some(path) = current {
            segments.push(path.segment);
            current = path.parent;
        }
        let mut first = true;
        for segment in segments.iter().rev() {
            match segment {
                Segment::Root => continue,
                Segment::Key(key) if first => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// A short description of a JSON value for "found ..." in messages.
pub(crate) fn found(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// A string as a JSON literal, cut after [`QUOTE_CHARS`] characters so that a megabyte-long
/// value does not end up in an error message (and in logs).
pub(crate) fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_CHARS) {
        None => Value::from(s).to_string(),
        Some((cut, _)) => format!(
            "{}… ({} characters)",
            Value::from(&s[..cut]),
            s.chars().count()
        ),
    }
}

/// The object at `path`, or an error naming what was expected there.
pub(crate) fn object<'v>(
    value: &'v Value,
    path: &JsonPath<'_>,
    what: &str,
) -> Result<&'v Map<String, Value>, JsonError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(JsonError::at(
            path,
            format!("expected {what} as a json object, found {}", found(other)),
        )),
    }
}

/// An optional field: `None` when absent or `null` (proto3 JSON: null means default).
pub(crate) fn field<'v, T>(
    map: &'v Map<String, Value>,
    key: &str,
    path: &JsonPath<'_>,
    decode: impl FnOnce(&'v Value, &JsonPath<'_>) -> Result<T, JsonError>,
) -> Result<Option<T>, JsonError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => decode(value, &path.key(key)).map(Some),
    }
}

/// A field whose absence means the type's default, as in protobuf.
pub(crate) fn field_or_default<'v, T: Default>(
    map: &'v Map<String, Value>,
    key: &str,
    path: &JsonPath<'_>,
    decode: impl FnOnce(&'v Value, &JsonPath<'_>) -> Result<T, JsonError>,
) -> Result<T, JsonError> {
    field(map, key, path, decode).map(Option::unwrap_or_default)
}

/// A repeated field: absent or `null` is empty; a `null` element is an error (there is no
/// "default element" that would be meant by it).
pub(crate) fn list<T>(
    map: &Map<String, Value>,
    key: &str,
    path: &JsonPath<'_>,
    mut decode: impl FnMut(&Value, &JsonPath<'_>) -> Result<T, JsonError>,
) -> Result<Vec<T>, JsonError> {
    let path = path.key(key);
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let path = path.index(index);
                if item.is_null() {
                    return Err(JsonError::at(&path, "null is not allowed in a list"));
                }
                decode(item, &path)
            })
            .collect(),
        Some(other) => Err(JsonError::at(
            &path,
            format!("expected an array, found {}", found(other)),
        )),
    }
}

pub(crate) fn string(value: &Value, path: &JsonPath<'_>) -> Result<String, JsonError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(JsonError::at(
            path,
            format!("expected a string, found {}", found(other)),
        )),
    }
}

pub(crate) fn boolean(value: &Value, path: &JsonPath<'_>) -> Result<bool, JsonError> {
    match value {
        Value::Bool(b) => Ok(*b),
        other => Err(JsonError::at(
            path,
            format!("expected true or false, found {}", found(other)),
        )),
    }
}

/// Integer types the proto3 JSON mapping writes as numbers or decimal strings.
pub(crate) trait JsonInteger: TryFrom<i128> {
    /// How the type is named in messages.
    const NAME: &'static str;
    const SIGNED: bool;
}

impl JsonInteger for u64 {
    const NAME: &'static str = "an unsigned 64-bit integer";
    const SIGNED: bool = false;
}
impl JsonInteger for i64 {
    const NAME: &'static str = "a 64-bit integer";
    const SIGNED: bool = true;
}
impl JsonInteger for u32 {
    const NAME: &'static str = "an unsigned 32-bit integer";
    const SIGNED: bool = false;
}
impl JsonInteger for i32 {
    const NAME: &'static str = "a 32-bit integer";
    const SIGNED: bool = true;
}
impl JsonInteger for u16 {
    const NAME: &'static str = "an integer from 0 to 65535";
    const SIGNED: bool = false;
}

/// The largest integer a JSON number written as a float (`1.0`, `1e3`) may stand for: beyond
/// 2^53 a double no longer holds every integer, so the sender's value may already be lost.
const MAX_EXACT_FLOAT: f64 = 9_007_199_254_740_992.0;

/// A JSON number or decimal string as the integer type `T`, with a message for each way it
/// can be wrong: not an integer, negative for an unsigned field, or out of range.
pub(crate) fn integer<T: JsonInteger>(value: &Value, path: &JsonPath<'_>) -> Result<T, JsonError> {
    let wide: i128 = match value {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                i128::from(u)
            } else if let Some(i) = n.as_i64() {
                i128::from(i)
            } else {
                // serde_json hands out a float for `1.5`, `1e3`, or integer literals beyond
                // 64 bits.
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() != 0.0 || !f.is_finite() {
                    return Err(JsonError::at(
                        path,
                        format!("{n} is not an integer (expected {})", T::NAME),
                    ));
                }
                if f.abs() > MAX_EXACT_FLOAT {
                    return Err(out_of_range::<T>(path, &n.to_string(), f < 0.0));
                }
                // Exact: the value is integral and at most 2^53 in magnitude.
                f as i128
            }
        }
        Value::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(JsonError::at(
                    path,
                    format!("{} is not an integer (expected {})", quote(s), T::NAME),
                ));
            }
            match s.parse::<i128>() {
                Ok(wide) => wide,
                // Only digits, so the only failure left is a value beyond i128.
                Err(_) => return Err(out_of_range::<T>(path, &quote(s), s.starts_with('-'))),
            }
        }
        other => {
            return Err(JsonError::at(
                path,
                format!(
                    "expected {} (a number or a decimal string), found {}",
                    T::NAME,
                    found(other)
                ),
            ));
        }
    };
    T::try_from(wide).map_err(|_| out_of_range::<T>(path, &found(value), wide < 0))
}

fn out_of_range<T: JsonInteger>(path: &JsonPath<'_>, shown: &str, negative: bool) -> JsonError {
    let problem = if negative && !T::SIGNED {
        "is negative"
    } else if negative {
        "is too small"
    } else {
        "is too large"
    };
    JsonError::at(path, format!("{shown} {problem} (expected {})", T::NAME))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object_of(value: &Value) -> &Map<String, Value> {
        value.as_object().expect("an object")
    }

    #[test]
    fn invalid_json_reports_line_and_column() {
        let err = parse_json(b"{\"resourceSpans\": [}").expect_err("invalid");
        assert_eq!(err.path(), None);
        let message = err.to_string();
        assert!(message.starts_with("invalid json: "), "{message}");
        assert!(message.contains("line 1 column 20"), "{message}");
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        assert_eq!(parse_json(b"\xEF\xBB\xBF{}"), Ok(json!({})));
    }

    #[test]
    fn empty_and_truncated_bodies_are_named_as_such() {
        assert_eq!(
            parse_json(b" \r\n\t").map_err(|e| e.to_string()),
            Err("the request body is empty (expected json)".to_owned())
        );
        let message = parse_json(b"[1, 2").expect_err("truncated").to_string();
        assert!(message.starts_with("truncated json: "), "{message}");
    }

    #[test]
    fn paths_print_keys_and_indexes() {
        let root = JsonPath::root();
        assert_eq!(root.to_string(), "");
        assert_eq!(root.index(2).to_string(), "[2]");
        let spans = root.key("resourceSpans");
        let first = spans.index(0);
        let scope = first.key("scopeSpans");
        assert_eq!(
            scope.index(1).key("traceId").to_string(),
            "resourceSpans[0].scopeSpans[1].traceId"
        );
        let error = JsonError::at(&scope, "bad");
        assert_eq!(error.path(), Some("resourceSpans[0].scopeSpans"));
        assert_eq!(error.to_string(), "resourceSpans[0].scopeSpans: bad");
        assert_eq!(JsonError::at(&root, "bad").to_string(), "bad");
    }

    #[test]
    fn long_strings_are_cut_when_quoted() {
        assert_eq!(quote("a\"b"), r#""a\"b""#);
        let long = "é".repeat(100);
        let quoted = quote(&long);
        assert!(quoted.ends_with("… (100 characters)"), "{quoted}");
        assert_eq!(quoted.matches('é').count(), QUOTE_CHARS);
        assert_eq!(found(&json!([1])), "an array");
        assert_eq!(found(&json!(null)), "null");
    }

    #[test]
    fn null_is_absent_in_fields_but_refused_in_lists() {
        let root = JsonPath::root();
        let value = json!({"a": null, "b": "x", "l": ["y", null]});
        let map = object_of(&value);
        assert_eq!(field(map, "a", &root, string), Ok(None));
        assert_eq!(field(map, "b", &root, string), Ok(Some("x".to_owned())));
        assert_eq!(
            field_or_default(map, "missing", &root, string),
            Ok(String::new())
        );
        assert_eq!(list(map, "missing", &root, string), Ok(Vec::new()));
        assert_eq!(
            list(map, "l", &root, string).map_err(|e| e.to_string()),
            Err("l[1]: null is not allowed in a list".to_owned())
        );
        assert_eq!(
            list(map, "b", &root, string).map_err(|e| e.to_string()),
            Err("b: expected an array, found \"x\"".to_owned())
        );
        assert_eq!(
            object(&json!(3), &root.key("o"), "a thing").map_err(|e| e.to_string()),
            Err("o: expected a thing as a json object, found 3".to_owned())
        );
    }

    #[test]
    fn integers_read_numbers_decimal_strings_and_exact_floats() {
        let root = JsonPath::root();
        assert_eq!(
            integer::<u64>(&json!("18446744073709551615"), &root),
            Ok(u64::MAX)
        );
        assert_eq!(integer::<i64>(&json!(-3), &root), Ok(-3));
        assert_eq!(integer::<u32>(&json!(1e3), &root), Ok(1000));
        assert_eq!(integer::<u16>(&json!("65535"), &root), Ok(65535));
        let message = |value: Value| {
            integer::<u16>(&value, &root)
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            message(json!(70000)),
            "70000 is too large (expected an integer from 0 to 65535)"
        );
        assert_eq!(
            message(json!("-1")),
            "\"-1\" is negative (expected an integer from 0 to 65535)"
        );
        assert_eq!(
            message(json!(1.5)),
            "1.5 is not an integer (expected an integer from 0 to 65535)"
        );
        assert_eq!(
            message(json!(true)),
            "expected an integer from 0 to 65535 (a number or a decimal string), found true"
        );
        assert_eq!(
            integer::<i32>(&json!("-2147483649"), &root).map_err(|e| e.to_string()),
            Err("\"-2147483649\" is too small (expected a 32-bit integer)".to_owned())
        );
        assert_eq!(boolean(&json!(false), &root), Ok(false));
    }
}
