//! Parser tests: error positions and messages, static type errors, unsupported constructs,
//! limits on hostile input, precedence, and the accepted forms.

use super::*;

fn err(src: &str) -> Error {
    match parse(src) {
        Ok(q) => panic!("{src:?} parsed as {q:?}"),
        Err(e) => e,
    }
}

fn at(src: &str) -> (usize, usize, String) {
    let e = err(src);
    (e.line(), e.column(), e.to_string())
}

fn filter(src: &str) -> FieldExpr {
    match parse(src).unwrap().pipeline.stages.as_slice() {
        [Stage::Spanset(SpansetExpr::Filter(Some(e)))] => e.clone(),
        other => panic!("not a filter: {other:?}"),
    }
}

fn attr(key: &str) -> FieldExpr {
    FieldExpr::Field(Field::Attribute {
        scope: None,
        key: key.into(),
    })
}

fn cmp(key: &str, v: i64) -> FieldExpr {
    FieldExpr::Binary {
        op: BinaryOp::Eq,
        lhs: Box::new(attr(key)),
        rhs: Box::new(FieldExpr::Literal(Value::Int(v))),
    }
}

#[test]
fn errors_point_at_the_offending_token() {
    let (l, c, m) = at("{ .a = }");
    assert_eq!((l, c), (1, 8));
    assert!(m.ends_with("unexpected '}', expected a value"), "{m}");
    let (_, c, m) = at("{ span:foo = 1 }");
    assert_eq!(c, 3);
    assert!(m.ends_with("unknown intrinsic span:foo"), "{m}");
    let (_, c, m) = at("{ foo = 1 }");
    assert_eq!(c, 3);
    assert!(m.ends_with("unknown identifier foo"), "{m}");
    let (_, c, m) = at("{ name = \"abc }");
    assert_eq!(c, 10);
    assert!(m.ends_with("unterminated string"), "{m}");
    let (_, c, m) = at("{ duration > 10parsecs }");
    assert_eq!(c, 14);
    assert!(m.contains("invalid duration"), "{m}");
    let (l, c, m) = at("{ name = \"a\" &&\n  .b =~ \"(x\" }");
    assert_eq!((l, c), (2, 9));
    assert!(m.contains("invalid regular expression"), "{m}");
    let (_, c, _) = at("{ .a = 1 } &&");
    assert_eq!(c, 14);
    let (_, c, m) = at("{ .a = 1 } { }");
    assert_eq!(c, 12);
    assert!(m.ends_with("expected '|' or end of query"), "{m}");
    let (_, c, m) = at("{ .a = 1 ");
    assert_eq!(c, 10);
    assert!(m.contains("end of query"), "{m}");
    assert!(at("").2.contains("expected a spanset filter"));
}

#[test]
fn static_type_errors() {
    assert!(
        at("{ status = 3 }")
            .2
            .contains("cannot compare a status with a number")
    );
    assert!(at("{ \"a\" }").2.contains("needs a boolean expression"));
    assert!(
        at("{ status > ok }")
            .2
            .contains("cannot order status values")
    );
    assert!(
        at("{ name + 1 > 2 }")
            .2
            .contains("arithmetic needs numbers")
    );
    assert!(at("{ duration =~ \"1\" }").2.contains("match strings"));
    assert!(at("{ .a =~ .b }").2.contains("string literal"));
    assert!(at("{ !name }").2.contains("boolean operand"));
    assert!(at("{ } | avg(name) > 1").2.contains("numeric argument"));
    assert!(
        at("{ } | count() > \"x\"")
            .2
            .contains("a number or a duration")
    );
    assert!(at("{ { } }").2.contains("cannot be nested"));
    assert!(at("{ } | by(.a, .b)").2.contains("one expression"));
    assert!(
        at("{ } | select(1)")
            .2
            .contains("attributes and intrinsics")
    );
    assert!(at("{ } && count() > 1").2.contains("pipeline stage"));
    // Attributes may hold anything: only statically known types are checked.
    parse("{ .a = 1 && .a = \"x\" && .a = ok && .a + 1 > 2 && .a }").unwrap();
}

#[test]
fn unsupported_constructs_are_named() {
    for (src, construct) in [
        ("{ } | rate()", "rate()"),
        (
            "{ } | quantile_over_time(duration, .9)",
            "quantile_over_time()",
        ),
        (
            "{ } | count_over_time() by (resource.service.name)",
            "count_over_time()",
        ),
        (
            "{ } | histogram_over_time(duration)",
            "histogram_over_time()",
        ),
        ("{ } | compare({ status = error })", "compare()"),
        ("{ } with (most_recent=true)", "with() hints"),
        ("{ event:timeSinceStart > 1ms }", "event:timeSinceStart"),
        ("{ parent.span.x = 1 }", "the parent. scope"),
    ] {
        match err(src) {
            Error::Unsupported { construct: c, .. } => assert_eq!(c, construct, "{src}"),
            e => panic!("{src}: {e}"),
        }
    }
}

#[test]
fn hostile_input_is_bounded() {
    let deep = format!("{}{{ }}{}", "(".repeat(100), ")".repeat(100));
    assert!(at(&deep).2.contains("nesting deeper than 64"));
    let deep = format!("{{ {}true }}", "!".repeat(100));
    assert!(at(&deep).2.contains("nesting deeper than 64"));
    let deep = format!("{{ .a = {}1 }}", "2 ^ ".repeat(100));
    assert!(at(&deep).2.contains("nesting deeper than 64"));
    let long = format!("{{ .a = \"{}\" }}", "x".repeat(MAX_QUERY_BYTES));
    assert!(at(&long).2.contains("query longer than"));
    let tall = format!("{{ .a = 1{} }}", " + 1".repeat(300));
    assert!(at(&tall).2.contains("expression deeper than"));
    let chain = format!("{{ .a = 1{} }}", " && .a = 1".repeat(1500));
    match filter(&chain) {
        FieldExpr::And(xs) => assert_eq!(xs.len(), 1501),
        other => panic!("{other:?}"),
    }
    let chain = format!("{{ }}{}", " >> { }".repeat(300));
    assert!(at(&chain).2.contains("expression deeper than"));
    let nested = format!("{}{{ }}{}", "(".repeat(64), ")".repeat(64));
    parse(&nested).unwrap();
}

#[test]
fn precedence() {
    // `&&` and `||` share one level, left-associative, as in Tempo's grammar.
    assert_eq!(
        filter("{ .a = 1 || .b = 2 && .c = 3 }"),
        FieldExpr::And(vec![
            FieldExpr::Or(vec![cmp("a", 1), cmp("b", 2)]),
            cmp("c", 3)
        ])
    );
    assert_eq!(
        filter("{ .a = 1 && .b = 2 && .c = 3 }"),
        FieldExpr::And(vec![cmp("a", 1), cmp("b", 2), cmp("c", 3)])
    );
    assert_eq!(
        filter("{ (.a = 1 && .b = 2) && .c = 3 }"),
        FieldExpr::And(vec![
            FieldExpr::And(vec![cmp("a", 1), cmp("b", 2)]),
            cmp("c", 3)
        ])
    );
    let lit = |v: i64| Box::new(FieldExpr::Literal(Value::Int(v)));
    // -2 ^ 2: unary minus binds tightest.
    assert_eq!(
        filter("{ .x = -2 ^ 2 }"),
        FieldExpr::Binary {
            op: BinaryOp::Eq,
            lhs: Box::new(attr("x")),
            rhs: Box::new(FieldExpr::Binary {
                op: BinaryOp::Pow,
                lhs: lit(-2),
                rhs: lit(2)
            }),
        }
    );
    assert_eq!(
        filter("{ .x > minInt }"),
        FieldExpr::Binary {
            op: BinaryOp::Gt,
            lhs: Box::new(attr("x")),
            rhs: lit(i64::MIN),
        }
    );
    assert_eq!(
        filter("{ .x > -9223372036854775808 }"),
        filter("{ .x > minInt }")
    );
    // { A } && { B } >> { C } is { A } && ({ B } >> { C }).
    let q = parse("{ .a = 1 } && { .b = 2 } >> { .c = 3 }").unwrap();
    let Stage::Spanset(SpansetExpr::Binary { op, rhs, .. }) = &q.pipeline.stages[0] else {
        panic!("{q:?}")
    };
    assert_eq!(*op, SpansetOp::And);
    assert!(matches!(
        rhs.as_ref(),
        SpansetExpr::Binary {
            op: SpansetOp::Descendant,
            ..
        }
    ));
}

#[test]
fn forms() {
    for src in [
        "{}",
        "{ true }",
        "{ span.http.status_code >= 200 && span.http.status_code < 300 } | count() > 2",
        "{ resource.service.name = \"frontend\" } >> { status = error }",
        "{ } !< { resource.service.name = \"productcatalogservice\" }",
        "{ .a = 1 } &>> { .b = 1 } | by(resource.service.name) | avg(duration) > 1s",
        "{ span:status = ok && span:kind = server && trace:id = \"AB\" && span:parentID != nil }",
        "{ event:name = \"exception\" && link:traceID =~ \"ab.*\" && instrumentation:name = \"x\" }",
        "{ nestedSetParent = -1 && nestedSetLeft > 0 && span:childCount = 0 }",
        "{ traceDuration > 1m && trace:duration > 1h30m && rootServiceName = \"a\" }",
        "({ .a = 1 } && { .b = 2 }) | count() > 1",
        "{ } | select(span.a, resource.b, duration) | coalesce()",
        "{ .a = 1 } // trailing comment",
        "{ span.a + span.b > 3 && duration > 2 * 100ms && .x % 2 = 1 && -.y < 0 }",
        "{ } | min(span.x) < -1.5 | max(duration) >= 10us | sum(.n) = 3",
        "count() > 1",
    ] {
        let q = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(parse(&q.to_string()).unwrap(), q, "{src} -> {q}");
    }
}

#[test]
fn regex_error_message() {
    let e = err("{ name =~ \"(x\" }");
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 11: invalid regular expression: unclosed group"
    );
    let e = err("{ } | rate()");
    assert_eq!(
        e.to_string(),
        "unsupported at line 1, col 7: rate() is not supported"
    );
}
