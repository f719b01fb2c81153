//! Parsing what the Tempo and Jaeger APIs share: the tenant header, query parameters (unknown
//! ones ignored and logged), Go durations and logfmt tags, and the largest search they accept.

use axum::http::HeaderMap;
use skein_format::TenantId;
use skein_query::recent::TENANT_HEADER;

use super::error::BadRequest;

/// Most traces one search may ask for.
pub(crate) const MAX_LIMIT: usize = 10_000;

/// The tenant of a request: `X-Scope-OrgID`, `single-tenant` when absent.
pub(crate) fn tenant(headers: &HeaderMap) -> Result<TenantId, BadRequest> {
    let Some(v) = headers.get(TENANT_HEADER) else {
        return Ok(TenantId::default_tenant());
    };
    let s = v
        .to_str()
        .map_err(|_| BadRequest(format!("{TENANT_HEADER} header is not valid text")))?;
    TenantId::new(s).map_err(|e| BadRequest(format!("{TENANT_HEADER} header: {e}")))
}

/// Logs (at debug) the query parameters an endpoint of a compatibility API does not know,
/// without refusing them: proxies and clients add their own (Grafana's resource proxy
/// forwards its own parameters), and Tempo and Jaeger ignore them too.
pub(crate) fn ignore_unknown<'a>(names: impl IntoIterator<Item = &'a str>, known: &[&str]) {
    for k in names.into_iter().filter(|k| !known.contains(k)) {
        tracing::debug!(parameter = k, "ignoring an unknown query parameter");
    }
}

/// Query parameters in order, repeated keys kept (Jaeger repeats `traceID` and `tag`).
pub(crate) fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The names of the parameters `pairs`, in order.
pub(crate) fn names(pairs: &[(String, String)]) -> impl Iterator<Item = &str> {
    pairs.iter().map(|(k, _)| k.as_str())
}

/// Parses a Go duration (`300ms`, `1.5s`, `1h30m`, `10us`, `10µs`, `5ns`) into nanoseconds.
pub(crate) fn go_duration(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || format!("{s:?} is not a duration; write it like 300ms, 1.5s or 2m");
    if t.is_empty() {
        return Err(bad());
    }
    if t == "0" {
        return Ok(0);
    }
    let mut rest = t;
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("{s:?} is too long a duration"));
    }
    Ok(total.round() as u64)
}

/// Parses logfmt `key=value key2="quoted value"` pairs, as Tempo's `tags` parameter.
pub(crate) fn logfmt(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return Err(format!(
                "tags {s:?}: expected key=value pairs separated by spaces near {key:?}"
            ));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!(
                    "tags {s:?}: the value of {key:?} has no closing quote"
                ));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_keep_their_order() {
        let p = pairs(Some("service=api&tag=a%3A1&tag=b%3A2"));
        assert_eq!(names(&p).collect::<Vec<_>>(), ["service", "tag", "tag"]);
        assert_eq!(p[2].1, "b:2");
    }

    #[test]
    fn the_tenant_comes_from_the_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(tenant(&headers), Ok(TenantId::default_tenant()));
        headers.insert(TENANT_HEADER, "team-a".parse().unwrap());
        assert_eq!(tenant(&headers), Ok(TenantId::new("team-a").unwrap()));
        headers.insert(TENANT_HEADER, "a/b".parse().unwrap());
        assert!(tenant(&headers).is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("300ms"), Ok(300_000_000));
        assert_eq!(go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(go_duration("10us"), Ok(10_000));
        assert_eq!(go_duration("10µs"), Ok(10_000));
        assert_eq!(go_duration("0"), Ok(0));
        for bad in ["", "10", "ms", "1x", "1.2.3s", "-1s", "1 s"] {
            assert!(go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn logfmt_pairs() {
        assert_eq!(
            logfmt(r#"service.name=api name="GET /x" http.status_code=500"#).unwrap(),
            vec![
                ("service.name".into(), "api".into()),
                ("name".into(), "GET /x".into()),
                ("http.status_code".into(), "500".into())
            ]
        );
        assert_eq!(logfmt("  ").unwrap(), vec![]);
        assert_eq!(
            logfmt(r#"a="x \"y\"""#).unwrap(),
            vec![("a".into(), "x \"y\"".into())]
        );
        for bad in ["novalue", "=x", r#"a="open"#] {
            assert!(logfmt(bad).is_err(), "{bad}");
        }
    }
}
