//! Prints syntax trees as canonical TraceQL, so that `parse(q.to_string()) == q`: the
//! querier logs and forwards queries in this form, and builds TraceQL text from legacy
//! searches with [`string_literal`] and [`attribute`].

use std::fmt::{self, Write as _};

use crate::ast::{
    Aggregate, AggregateFilter, AttrScope, BinaryOp, Field, FieldExpr, Pipeline, Query,
    SpansetExpr, SpansetOp, Stage,
};
use crate::lexer::is_attr_char;
use crate::parser::scope_prefix;
use crate::value::{Value, format_duration};

/// A TraceQL string literal for `s`: double quotes, with `\"`, `\\`, `\n` and `\t` escapes.
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TraceQL attribute reference: `span.http.method`, `resource."a b"`, `.x` (unscoped).
/// The key is quoted when it holds characters that would end an unquoted name.
pub fn attribute(scope: Option<AttrScope>, key: &str) -> String {
    let mut out = String::from(scope_prefix(scope));
    if !key.is_empty() && key.chars().all(is_attr_char) {
        out.push_str(key);
    } else {
        out.push('"');
        for c in key.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out
}

/// A value as a TraceQL literal (floats always with a `.` or an exponent).
pub(crate) fn literal(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_finite() => format!("{f:?}"),
        // Not produced by the parser; no literal spells these.
        Value::Float(_) => "nil".into(),
        Value::String(s) => string_literal(s),
        Value::Duration(d) => format_duration(*d),
        Value::Status(s) => s.keyword().into(),
        Value::Kind(k) => k.keyword().into(),
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.pipeline.fmt(f)
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, stage) in self.stages.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            stage.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Spanset(e) => e.fmt(f),
            Stage::Aggregate(a) => a.fmt(f),
            Stage::Select(fields) => {
                f.write_str("select(")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    field.fmt(f)?;
                }
                f.write_str(")")
            }
            Stage::By(e) => write!(f, "by({e})"),
            Stage::Coalesce => f.write_str("coalesce()"),
        }
    }
}

impl fmt::Display for AggregateFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.aggregate,
            self.op.symbol(),
            literal(&self.value)
        )
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aggregate::Count => f.write_str("count()"),
            Aggregate::Avg(e) => write!(f, "avg({e})"),
            Aggregate::Min(e) => write!(f, "min({e})"),
            Aggregate::Max(e) => write!(f, "max({e})"),
            Aggregate::Sum(e) => write!(f, "sum({e})"),
        }
    }
}

fn spanset_prec(e: &SpansetExpr) -> u8 {
    match e {
        SpansetExpr::Binary {
            op: SpansetOp::And | SpansetOp::Or,
            ..
        } => 1,
        SpansetExpr::Binary { .. } => 2,
        SpansetExpr::Filter(_) | SpansetExpr::Group(_) => 3,
    }
}

fn paren<T: fmt::Display>(f: &mut fmt::Formatter<'_>, x: &T, wrap: bool) -> fmt::Result {
    if wrap { write!(f, "({x})") } else { x.fmt(f) }
}

impl fmt::Display for SpansetExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpansetExpr::Filter(None) => f.write_str("{ }"),
            SpansetExpr::Filter(Some(e)) => write!(f, "{{ {e} }}"),
            SpansetExpr::Group(p) => write!(f, "({p})"),
            SpansetExpr::Binary { op, lhs, rhs } => {
                let p = spanset_prec(self);
                paren(f, lhs.as_ref(), spanset_prec(lhs) < p)?;
                write!(f, " {} ", op.symbol())?;
                paren(f, rhs.as_ref(), spanset_prec(rhs) <= p)
            }
        }
    }
}

/// Binding power, as in the parser: `&&`/`||` 1, comparisons 2, `+ -` 3, `!` 4,
/// `* / %` 5, `^` 6, unary minus 7, operands 8.
fn field_prec(e: &FieldExpr) -> u8 {
    match e {
        FieldExpr::And(_) | FieldExpr::Or(_) => 1,
        FieldExpr::Match { .. } => 2,
        FieldExpr::Binary { op, .. } => match op {
            BinaryOp::Add | BinaryOp::Sub => 3,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 5,
            BinaryOp::Pow => 6,
            _ => 2,
        },
        FieldExpr::Not(_) => 4,
        FieldExpr::Neg(_) => 7,
        FieldExpr::Literal(_) | FieldExpr::Field(_) => 8,
    }
}

impl fmt::Display for FieldExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldExpr::Literal(v) => f.write_str(&literal(v)),
            FieldExpr::Field(field) => field.fmt(f),
            FieldExpr::And(xs) | FieldExpr::Or(xs) => {
                let sep = if matches!(self, FieldExpr::And(_)) {
                    " && "
                } else {
                    " || "
                };
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    paren(f, x, field_prec(x) <= 1)?;
                }
                Ok(())
            }
            FieldExpr::Not(x) => {
                f.write_char('!')?;
                let prefix = matches!(x.as_ref(), FieldExpr::Not(_) | FieldExpr::Neg(_));
                paren(f, x.as_ref(), field_prec(x) < 5 && !prefix)
            }
            FieldExpr::Neg(x) => {
                f.write_char('-')?;
                let bare = matches!(
                    x.as_ref(),
                    FieldExpr::Field(_) | FieldExpr::Literal(Value::Duration(_))
                );
                paren(f, x.as_ref(), !bare)
            }
            FieldExpr::Match {
                lhs,
                negated,
                pattern,
            } => {
                paren(f, lhs.as_ref(), field_prec(lhs) < 2)?;
                let op = if *negated { "!~" } else { "=~" };
                write!(f, " {op} {}", string_literal(pattern.source()))
            }
            FieldExpr::Binary { op, lhs, rhs } => {
                let p = field_prec(self);
                let (wrap_l, wrap_r) = if *op == BinaryOp::Pow {
                    (field_prec(lhs) <= p, field_prec(rhs) < p)
                } else {
                    (field_prec(lhs) < p, field_prec(rhs) <= p)
                };
                paren(f, lhs.as_ref(), wrap_l)?;
                write!(f, " {} ", op.symbol())?;
                paren(f, rhs.as_ref(), wrap_r)
            }
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Field::Name => "name",
            Field::Status => "status",
            Field::StatusMessage => "statusMessage",
            Field::Kind => "kind",
            Field::Duration => "duration",
            Field::ChildCount => "span:childCount",
            Field::SpanId => "span:id",
            Field::ParentId => "span:parentID",
            Field::TraceId => "trace:id",
            Field::TraceDuration => "traceDuration",
            Field::RootName => "rootName",
            Field::RootServiceName => "rootServiceName",
            Field::EventName => "event:name",
            Field::LinkTraceId => "link:traceID",
            Field::LinkSpanId => "link:spanID",
            Field::InstrumentationName => "instrumentation:name",
            Field::InstrumentationVersion => "instrumentation:version",
            Field::NestedSetLeft => "nestedSetLeft",
            Field::NestedSetRight => "nestedSetRight",
            Field::NestedSetParent => "nestedSetParent",
            Field::Attribute { scope, key } => return f.write_str(&attribute(*scope, key)),
        };
        f.write_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn canon(q: &str) -> String {
        parse(q).unwrap().to_string()
    }

    #[test]
    fn helpers_quote_when_needed() {
        assert_eq!(string_literal("a\"b\\c\nd\te"), r#""a\"b\\c\nd\te""#);
        assert_eq!(
            attribute(Some(AttrScope::Span), "http.method"),
            "span.http.method"
        );
        assert_eq!(
            attribute(Some(AttrScope::Resource), "a b"),
            r#"resource."a b""#
        );
        assert_eq!(attribute(None, "x"), ".x");
        assert_eq!(attribute(Some(AttrScope::Link), "a\"b"), r#"link."a\"b""#);
        assert_eq!(attribute(Some(AttrScope::Event), ""), r#"event."""#);
        for (scope, key) in [(None, "a b"), (Some(AttrScope::Span), "x=y"), (None, "")] {
            let q = parse(&format!("{{ {} = 1 }}", attribute(scope, key))).unwrap();
            assert_eq!(
                q.to_string(),
                format!("{{ {} = 1 }}", attribute(scope, key))
            );
        }
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canon("{}"), "{ }");
        assert_eq!(canon("{span:name=\"a\"}"), "{ name = \"a\" }");
        assert_eq!(
            canon("{ .a = 1 } >> { .b = 2 } | count() > 2"),
            "{ .a = 1 } >> { .b = 2 } | count() > 2"
        );
        assert_eq!(
            canon("({ .a = 1 } && { .b = 2 }) >> { }"),
            "({ .a = 1 } && { .b = 2 }) >> { }"
        );
        assert_eq!(
            canon("{ (.a = 1 || .b = 2) && .c = 3 }"),
            "{ (.a = 1 || .b = 2) && .c = 3 }"
        );
        assert_eq!(canon("{ .a + .b * 2 > -(3) }"), "{ .a + .b * 2 > -(3) }");
        assert_eq!(canon("{ (.a + .b) * 2 > -3 }"), "{ (.a + .b) * 2 > -3 }");
        assert_eq!(canon("{ duration > 1500ms }"), "{ duration > 1.5s }");
        assert_eq!(
            canon("{ trace:rootService = `x` }"),
            "{ rootServiceName = \"x\" }"
        );
        assert_eq!(canon("{ .a =~ \"x.*\" }"), "{ .a =~ \"x.*\" }");
        assert_eq!(canon("({} | by(.a)) && {}"), "({ } | by(.a)) && { }");
        assert_eq!(canon("{ 2 ^ 3 ^ 2 = .x }"), "{ 2 ^ 3 ^ 2 = .x }");
        assert_eq!(canon("{ (2 ^ 3) ^ 2 = .x }"), "{ (2 ^ 3) ^ 2 = .x }");
    }
}
