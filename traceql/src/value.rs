//! Values a TraceQL expression can produce: literals in the query, attribute and intrinsic
//! values of spans, and the spanset attributes (aggregates, `by()` keys) a query returns.
//! Also the duration syntax, which literals and [`Value`]'s `Display` share so that printed
//! durations parse back to the same number of nanoseconds.

use std::fmt;

/// A span status, as TraceQL names it (`status = error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// `unset`: the span set no status.
    Unset,
    /// `ok`.
    Ok,
    /// `error`.
    Error,
}

/// A span kind, as TraceQL names it (`kind = server`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `unspecified`.
    Unspecified,
    /// `internal`.
    Internal,
    /// `server`.
    Server,
    /// `client`.
    Client,
    /// `producer`.
    Producer,
    /// `consumer`.
    Consumer,
}

/// A TraceQL value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// No value: a missing attribute, or the literal `nil`.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A string.
    String(String),
    /// A duration in nanoseconds (`250ms`).
    Duration(u64),
    /// A status keyword.
    Status(Status),
    /// A kind keyword.
    Kind(Kind),
}

impl Value {
    /// The type's name in TraceQL terms: `string`, `int`, `float`, `bool`, `duration`,
    /// `keyword` (statuses and kinds) or `nil`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Duration(_) => "duration",
            Value::Status(_) | Value::Kind(_) => "keyword",
        }
    }
}

impl fmt::Display for Value {
    /// Statuses and kinds as bare words, strings without quotes, durations with a unit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::String(s) => f.write_str(s),
            Value::Duration(d) => f.write_str(&format_duration(*d)),
            Value::Status(s) => f.write_str(s.keyword()),
            Value::Kind(k) => f.write_str(k.keyword()),
        }
    }
}

impl Status {
    /// The TraceQL keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Status::Unset => "unset",
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }

    /// The status of an OTLP status code (unknown codes are `unset`).
    pub(crate) fn from_code(code: i32) -> Status {
        match code {
            1 => Status::Ok,
            2 => Status::Error,
            _ => Status::Unset,
        }
    }
}

impl Kind {
    /// The TraceQL keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Kind::Unspecified => "unspecified",
            Kind::Internal => "internal",
            Kind::Server => "server",
            Kind::Client => "client",
            Kind::Producer => "producer",
            Kind::Consumer => "consumer",
        }
    }

    /// The kind of an OTLP span kind (unknown values are `unspecified`).
    pub(crate) fn from_code(code: i32) -> Kind {
        match code {
            1 => Kind::Internal,
            2 => Kind::Server,
            3 => Kind::Client,
            4 => Kind::Producer,
            5 => Kind::Consumer,
            _ => Kind::Unspecified,
        }
    }
}

/// The keywords that are values, with their values.
pub(crate) fn keyword_value(word: &str) -> Option<Value> {
    Some(match word {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "nil" => Value::Nil,
        "ok" => Value::Status(Status::Ok),
        "error" => Value::Status(Status::Error),
        "unset" => Value::Status(Status::Unset),
        "unspecified" => Value::Kind(Kind::Unspecified),
        "internal" => Value::Kind(Kind::Internal),
        "server" => Value::Kind(Kind::Server),
        "client" => Value::Kind(Kind::Client),
        "producer" => Value::Kind(Kind::Producer),
        "consumer" => Value::Kind(Kind::Consumer),
        "minInt" => Value::Int(i64::MIN),
        "maxInt" => Value::Int(i64::MAX),
        _ => return None,
    })
}

const NS: u64 = 1;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

/// Formats nanoseconds with the largest of `s`, `ms`, `us`, `ns` that keeps the integer part
/// non-zero, and an exact decimal fraction: `1.5s`, `250ms`, `10us`, `123ns`, `0s`.
pub(crate) fn format_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let (unit, name, digits) = if ns >= SEC {
        (SEC, "s", 9)
    } else if ns >= MS {
        (MS, "ms", 6)
    } else if ns >= US {
        (US, "us", 3)
    } else {
        (NS, "ns", 0)
    };
    let whole = ns / unit;
    let frac = ns % unit;
    if frac == 0 {
        return format!("{whole}{name}");
    }
    let frac = format!("{frac:0digits$}");
    format!("{whole}.{}{name}", frac.trim_end_matches('0'))
}

/// The duration units, longest spelling first so that `ms` wins over `m`.
const UNITS: [(&str, u64); 11] = [
    ("ns", NS),
    ("us", US),
    ("µs", US),
    ("μs", US),
    ("ms", MS),
    ("s", SEC),
    ("m", 60 * SEC),
    ("h", 3600 * SEC),
    ("d", 86_400 * SEC),
    ("w", 7 * 86_400 * SEC),
    ("y", 365 * 86_400 * SEC),
];

/// Parses a duration such as `1.5s`, `1h30m` or `10µs` (a sequence of decimal numbers, each
/// with a unit). Fractions below a nanosecond are truncated. `None` when the text is not a
/// duration or does not fit in a `u64` of nanoseconds.
pub(crate) fn parse_duration(text: &str) -> Option<u64> {
    let mut rest = text;
    let mut total: u128 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                if n == 0 {
                    return None;
                }
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let (unit, after) = UNITS
            .iter()
            .find_map(|(name, unit)| after.strip_prefix(name).map(|a| (*unit, a)))?;
        // 20 digits exceed u64 nanoseconds whatever the unit.
        if int_part.len() > 20 {
            return None;
        }
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        total = total.checked_add(whole.checked_mul(u128::from(unit))?)?;
        let mut scale = u128::from(unit);
        for d in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            total += u128::from(d - b'0') * scale;
        }
        rest = after;
    }
    u64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_exactly() {
        assert_eq!(format_duration(1_500_000_000), "1.5s");
        assert_eq!(format_duration(250_000_000), "250ms");
        assert_eq!(format_duration(10_000), "10us");
        assert_eq!(format_duration(123), "123ns");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(1_000_000_001), "1.000000001s");
        for ns in [
            1,
            999,
            1_000,
            1_001,
            123_456_789,
            u64::MAX,
            7_200_000_000_000,
        ] {
            assert_eq!(parse_duration(&format_duration(ns)), Some(ns), "{ns}");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("2m"), Some(120 * SEC));
        assert_eq!(parse_duration("1h30m"), Some(5400 * SEC));
        assert_eq!(parse_duration("10µs"), Some(10_000));
        assert_eq!(parse_duration("10us"), Some(10_000));
        assert_eq!(parse_duration("100ns"), Some(100));
        assert_eq!(parse_duration("1d"), Some(86_400 * SEC));
        assert_eq!(parse_duration("1"), None);
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration("1.s"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }

    #[test]
    fn value_display_and_types() {
        assert_eq!(Value::Status(Status::Error).to_string(), "error");
        assert_eq!(Value::Kind(Kind::Server).to_string(), "server");
        assert_eq!(Value::String("a b".into()).to_string(), "a b");
        assert_eq!(Value::Duration(250_000_000).to_string(), "250ms");
        assert_eq!(Value::Kind(Kind::Client).type_name(), "keyword");
        assert_eq!(Value::Nil.type_name(), "nil");
        assert_eq!(Value::Float(1.5).type_name(), "float");
    }
}
