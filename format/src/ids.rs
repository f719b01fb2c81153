//! Identifier newtypes: parse at the edge, pass typed values inward.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses hex into exactly `N` bytes. Shorter input is left-padded with zeros, because Jaeger
/// and Zipkin print 64-bit trace IDs (high half zero) as 16 hex characters, and some clients
/// drop leading zeros.
fn parse_hex_padded<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N]> {
    let s = s.trim();
    if s.is_empty() {
        return Err(Error::invalid(what, "empty"));
    }
    if s.len() > N * 2 {
        return Err(Error::invalid(
            what,
            format!(
                "{s:?} has {} hex characters, at most {} allowed",
                s.len(),
                N * 2
            ),
        ));
    }
    let mut out = [0u8; N];
    // Walk from the end so that odd lengths and padding fall out naturally.
    for (i, c) in s.bytes().rev().enumerate() {
        let v = hex_digit(c).ok_or_else(|| {
            Error::invalid(
                what,
                format!("{s:?} contains {:?}, which is not a hex digit", c as char),
            )
        })?;
        let byte = N - 1 - i / 2;
        out[byte] |= if i % 2 == 0 { v } else { v << 4 };
    }
    Ok(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        write!(
            f,
            "{}{}",
            DIGITS[(b >> 4) as usize] as char,
            DIGITS[(b & 15) as usize] as char
        )?;
    }
    Ok(())
}

macro_rules! byte_id {
    ($name:ident, $len:expr, $what:literal) => {
        #[doc = concat!("A ", $what, ": ", stringify!($len), " bytes, printed as lowercase hex.")]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Parses hex (either case; shorter input is left-padded with zeros).
            pub fn from_hex(s: &str) -> Result<Self> {
                parse_hex_padded::<$len>($what, s).map(Self)
            }

            /// Takes raw bytes, which must be exactly the right length.
            pub fn from_bytes(b: &[u8]) -> Result<Self> {
                <[u8; $len]>::try_from(b).map(Self).map_err(|_| {
                    Error::invalid($what, format!("{} bytes, expected {}", b.len(), $len))
                })
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// True when every byte is zero, which OTLP defines as invalid.
            pub fn is_zero(&self) -> bool {
                self.0 == [0u8; $len]
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                self.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                write_hex(f, &self.0)?;
                write!(f, ")")
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::from_hex(s)
            }
        }
    };
}

byte_id!(TraceId, 16, "trace id");
byte_id!(SpanId, 8, "span id");

/// A tenant: 1 to 150 bytes of `[A-Za-z0-9!_.*'()-]`, not `.` or `..`, and not starting with
/// `__`, which Skein reserves for its own objects in the bucket. Because every object path of
/// a tenant is built from a validated `TenantId`, a tenant can never reach outside its prefix.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// The tenant used when a request names none (as in Tempo).
    pub const DEFAULT: &'static str = "single-tenant";
    /// Longest accepted tenant ID, in bytes.
    pub const MAX_LEN: usize = 150;

    /// Validates a tenant ID.
    pub fn new(s: &str) -> Result<Self> {
        const WHAT: &str = "tenant id";
        if s.is_empty() {
            return Err(Error::invalid(WHAT, "empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(Error::invalid(
                WHAT,
                format!("{} bytes long, at most {} allowed", s.len(), Self::MAX_LEN),
            ));
        }
        if s == "." || s == ".." {
            return Err(Error::invalid(WHAT, format!("{s:?} is not allowed")));
        }
        if s.starts_with("__") {
            return Err(Error::invalid(
                WHAT,
                format!("{s:?}: names starting with \"__\" are reserved"),
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "!_.*'()-".contains(*c)))
        {
            return Err(Error::invalid(
                WHAT,
                format!("{s:?} contains {c:?}; allowed are letters, digits and !_.*'()-"),
            ));
        }
        Ok(TenantId(s.to_owned()))
    }

    /// The default tenant, `single-tenant`.
    pub fn default_tenant() -> Self {
        TenantId(Self::DEFAULT.to_owned())
    }

    /// The tenant as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({:?})", self.0)
    }
}

impl FromStr for TenantId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl serde::Serialize for TenantId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TenantId::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A block: a UUID (version 7, so IDs sort roughly by creation time).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct BlockId(pub uuid::Uuid);

impl BlockId {
    /// A fresh, time-ordered block ID.
    pub fn new() -> Self {
        BlockId(uuid::Uuid::now_v7())
    }

    /// Parses the hyphenated UUID form used in object paths.
    pub fn parse(s: &str) -> Result<Self> {
        uuid::Uuid::try_parse(s)
            .map(BlockId)
            .map_err(|e| Error::invalid("block id", format!("{s:?}: {e}")))
    }
}

impl Default for BlockId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

impl fmt::Debug for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockId({})", self.0.hyphenated())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_hex_round_trip_and_padding() {
        let id = TraceId::from_hex("4290B5877A9930DE79BB428365398ECC").unwrap();
        assert_eq!(id.to_hex(), "4290b5877a9930de79bb428365398ecc");
        // Jaeger prints 64-bit IDs as 16 characters: the high half is zero.
        let short = TraceId::from_hex("79bb428365398ecc").unwrap();
        assert_eq!(short.to_hex(), "000000000000000079bb428365398ecc");
        // Odd length: a dropped leading zero.
        assert_eq!(
            TraceId::from_hex("abc").unwrap().to_hex(),
            format!("{:0>32}", "abc")
        );
    }

    #[test]
    fn malformed_hex_is_a_clear_error() {
        for bad in ["", "xyz", "0123456789abcdef0123456789abcdef0", "12 34"] {
            let err = TraceId::from_hex(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidInput {
                        what: "trace id",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
        assert!(SpanId::from_hex("0123456789abcdef01").is_err());
        assert!(SpanId::from_bytes(&[1, 2, 3]).is_err());
    }

    #[test]
    fn tenant_validation() {
        for ok in [
            "single-tenant",
            "a",
            "team_A.prod",
            "x!*'()-",
            &"t".repeat(150),
        ] {
            assert!(TenantId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "a b",
            "é",
            "__skein",
            &"t".repeat(151),
            "a\0",
        ] {
            let err = TenantId::new(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid tenant id"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn block_id_round_trip() {
        let id = BlockId::new();
        assert_eq!(BlockId::parse(&id.to_string()).unwrap(), id);
        assert!(BlockId::parse("not-a-uuid").is_err());
    }
}
