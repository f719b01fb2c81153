//! TraceQL arrives from anyone who can reach the query API: whatever the text, parsing
//! returns a query or an error with a position inside the text, never panics, and takes time
//! proportional to the text. Random strings are built from TraceQL's own tokens (so that they
//! reach deep into the parser) and from arbitrary characters; mutations of valid queries
//! truncate, duplicate and swap their pieces.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use skein_traceql::{MAX_QUERY_BYTES, parse};

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "&&",
    "||",
    "!",
    "=",
    "!=",
    "=~",
    "!~",
    "<",
    "<=",
    ">",
    ">=",
    ">>",
    "<<",
    "~",
    "!>>",
    "&>>",
    "|",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    ",",
    ".",
    "span.",
    "resource.",
    "event.",
    "link.",
    "instrumentation.",
    "name",
    "status",
    "kind",
    "duration",
    "traceDuration",
    "rootName",
    "span:id",
    "trace:id",
    "nestedSetParent",
    "error",
    "server",
    "nil",
    "true",
    "false",
    "count()",
    "avg(",
    "min(",
    "max(",
    "sum(",
    "by(",
    "select(",
    "coalesce()",
    "rate()",
    "\"",
    "\"a\\\"b\"",
    "\"(\"",
    "1",
    "-1",
    "1.5",
    "1e309",
    "9999999999999999999",
    "1.5s",
    "10us",
    "1parsec",
    "`raw`",
    "//",
    "/*",
    "*/",
    "\n",
    " ",
    "µs",
    "é",
    "\u{0}",
];

fn check(src: &str) {
    let started = Instant::now();
    let result = parse(src);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "parsing {} bytes took {:?}",
        src.len(),
        started.elapsed()
    );
    if let Err(e) = result {
        let lines = src.split('\n').count();
        assert!(e.line() >= 1 && e.line() <= lines.max(1), "{e} in {src:?}");
        assert!(e.column() >= 1, "{e} in {src:?}");
        assert!(!e.to_string().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..60)) {
        check(&tokens.concat());
    }

    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,200}") {
        check(&src);
    }

    #[test]
    fn mutated_queries_never_panic(cut in 0usize..200, dup in 0usize..200, swap in any::<bool>()) {
        let base = r#"{ resource.service.name = "api" && span.http.status_code >= 500 } >> { status = error && duration > 1.5s } | by(span.http.route) | count() > 2"#;
        let chars: Vec<char> = base.chars().collect();
        let (cut, dup) = (cut % chars.len(), dup % chars.len());
        let mut s: String = chars[..cut].iter().collect();
        s.extend(&chars[dup..]);
        if swap {
            s = s.chars().rev().collect();
        }
        check(&s);
    }
}

#[test]
fn deep_and_long_input_is_refused_quickly() {
    for src in [
        "(".repeat(100_000),
        "{".repeat(100_000),
        "!".repeat(100_000),
        format!("{{ {} }}", ".a = 1 && ".repeat(1_600) + ".a = 1"),
        "{ .a = 1 } && ".repeat(2_000) + "{ }",
        "\"".repeat(MAX_QUERY_BYTES + 1),
    ] {
        check(&src);
    }
    let near_limit = format!("{{ {} }}", "-".repeat(MAX_QUERY_BYTES / 2) + "1 > 0");
    check(&near_limit);
}
