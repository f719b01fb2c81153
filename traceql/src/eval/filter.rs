//! Span-level evaluation: the value of a field expression on one span, comparisons with
//! TraceQL's typing rules (mismatched types and missing values compare false), arithmetic,
//! and the "any event / any link" quantification of `event.` and `link.` fields.

use std::borrow::Cow;
use std::cmp::Ordering;

use skein_format::model::value_string;
use skein_format::otlp::common::v1::{AnyValue, KeyValue, any_value};
use skein_format::otlp::trace::v1::span::{Event, Link};

use super::Trace;
use crate::ast::{AttrScope, BinaryOp, CompareOp, Field, FieldExpr, Pattern};
use crate::value::{Kind, Status, Value};

/// A value during evaluation; strings borrow from the span or the query when they can.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Dur(u64),
    Status(Status),
    Kind(Kind),
    /// An array attribute: comparisons apply to its elements.
    Arr(&'a [AnyValue]),
}

impl<'a> Val<'a> {
    pub(crate) fn from_value(v: &'a Value) -> Val<'a> {
        match v {
            Value::Nil => Val::Nil,
            Value::Bool(b) => Val::Bool(*b),
            Value::Int(i) => Val::Int(*i),
            Value::Float(f) => Val::Float(*f),
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            Value::Duration(d) => Val::Dur(*d),
            Value::Status(s) => Val::Status(*s),
            Value::Kind(k) => Val::Kind(*k),
        }
    }

    pub(crate) fn to_value(&self) -> Value {
        match self {
            Val::Nil => Value::Nil,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::Int(*i),
            Val::Float(f) => Value::Float(*f),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Dur(d) => Value::Duration(*d),
            Val::Status(s) => Value::Status(*s),
            Val::Kind(k) => Value::Kind(*k),
            Val::Arr(xs) => {
                let items: Vec<String> = xs.iter().map(value_string).collect();
                Value::String(format!("[{}]", items.join(",")))
            }
        }
    }

    fn is_true(&self) -> bool {
        matches!(self, Val::Bool(true))
    }
}

/// An attribute value as TraceQL sees it: strings, booleans, integers, doubles and arrays;
/// bytes and maps are treated as absent.
pub(crate) fn from_any(v: &AnyValue) -> Val<'_> {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Val::Str(Cow::Borrowed(s)),
        Some(any_value::Value::BoolValue(b)) => Val::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Val::Int(*i),
        Some(any_value::Value::DoubleValue(f)) => Val::Float(*f),
        Some(any_value::Value::ArrayValue(a)) => Val::Arr(&a.values),
        _ => Val::Nil,
    }
}

/// The shown form of an attribute value: like [`from_any`], and other types as text.
pub(crate) fn display_value(v: &AnyValue) -> Value {
    match from_any(v) {
        Val::Nil => Value::String(value_string(v)),
        other => other.to_value(),
    }
}

/// Where a span-level expression is evaluated: a span and, inside `event.`/`link.`
/// quantification, the event and link in focus.
#[derive(Clone, Copy)]
pub(crate) struct SpanCtx<'t, 'a> {
    pub(crate) trace: &'t Trace<'a>,
    pub(crate) idx: usize,
    event: Option<usize>,
    link: Option<usize>,
}

impl<'t, 'a> SpanCtx<'t, 'a> {
    pub(crate) fn new(trace: &'t Trace<'a>, idx: usize) -> Self {
        SpanCtx {
            trace,
            idx,
            event: None,
            link: None,
        }
    }
}

/// True when the span satisfies `expr` (it evaluates to `true`).
pub(crate) fn matches(expr: &FieldExpr, trace: &Trace<'_>, idx: usize) -> bool {
    eval_pred(expr, &SpanCtx::new(trace, idx)).is_true()
}

/// Evaluates the boolean structure (`&&`, `||`, `!`) and quantifies each operand over the
/// span's events and links when it reads them.
fn eval_pred<'a>(e: &'a FieldExpr, ctx: &SpanCtx<'_, 'a>) -> Val<'a> {
    match e {
        FieldExpr::And(xs) => Val::Bool(xs.iter().all(|x| eval_pred(x, ctx).is_true())),
        FieldExpr::Or(xs) => Val::Bool(xs.iter().any(|x| eval_pred(x, ctx).is_true())),
        FieldExpr::Not(x) => match eval_pred(x, ctx) {
            Val::Bool(b) => Val::Bool(!b),
            _ => Val::Nil,
        },
        _ => quantified(e, ctx),
    }
}

fn quantified<'a>(e: &'a FieldExpr, ctx: &SpanCtx<'_, 'a>) -> Val<'a> {
    let (uses_event, uses_link) = scopes(e);
    let span = &ctx.trace.spans[ctx.idx].span;
    let events = if uses_event { span.events.len() } else { 0 };
    let links = if uses_link { span.links.len() } else { 0 };
    if events == 0 && links == 0 {
        return eval_val(e, ctx);
    }
    let event_choices: Vec<Option<usize>> = if events == 0 {
        vec![None]
    } else {
        (0..events).map(Some).collect()
    };
    let link_choices: Vec<Option<usize>> = if links == 0 {
        vec![None]
    } else {
        (0..links).map(Some).collect()
    };
    let any = event_choices.iter().any(|&event| {
        link_choices.iter().any(|&link| {
            let inner = SpanCtx {
                event,
                link,
                ..*ctx
            };
            eval_val(e, &inner).is_true()
        })
    });
    Val::Bool(any)
}

/// Whether an expression reads event fields and link fields.
fn scopes(e: &FieldExpr) -> (bool, bool) {
    match e {
        FieldExpr::Literal(_) => (false, false),
        FieldExpr::Field(f) => match f {
            Field::EventName
            | Field::Attribute {
                scope: Some(AttrScope::Event),
                ..
            } => (true, false),
            Field::LinkTraceId
            | Field::LinkSpanId
            | Field::Attribute {
                scope: Some(AttrScope::Link),
                ..
            } => (false, true),
            _ => (false, false),
        },
        FieldExpr::And(xs) | FieldExpr::Or(xs) => xs.iter().fold((false, false), |acc, x| {
            let s = scopes(x);
            (acc.0 || s.0, acc.1 || s.1)
        }),
        FieldExpr::Not(x) | FieldExpr::Neg(x) | FieldExpr::Match { lhs: x, .. } => scopes(x),
        FieldExpr::Binary { lhs, rhs, .. } => {
            let (a, b) = (scopes(lhs), scopes(rhs));
            (a.0 || b.0, a.1 || b.1)
        }
    }
}

/// The value of `e` on the span in `ctx`.
pub(crate) fn eval_val<'a>(e: &'a FieldExpr, ctx: &SpanCtx<'_, 'a>) -> Val<'a> {
    match e {
        FieldExpr::Literal(v) => Val::from_value(v),
        FieldExpr::Field(f) => lookup(f, ctx),
        FieldExpr::And(xs) => Val::Bool(xs.iter().all(|x| eval_val(x, ctx).is_true())),
        FieldExpr::Or(xs) => Val::Bool(xs.iter().any(|x| eval_val(x, ctx).is_true())),
        FieldExpr::Not(x) => match eval_val(x, ctx) {
            Val::Bool(b) => Val::Bool(!b),
            _ => Val::Nil,
        },
        FieldExpr::Neg(x) => neg(eval_val(x, ctx)),
        FieldExpr::Match {
            lhs,
            negated,
            pattern,
        } => Val::Bool(regex_matches(&eval_val(lhs, ctx), pattern, *negated)),
        FieldExpr::Binary { op, lhs, rhs } => match op.comparison() {
            Some(cmp) => Val::Bool(eval_comparison(cmp, lhs, rhs, ctx)),
            None => arith(*op, eval_val(lhs, ctx), eval_val(rhs, ctx)),
        },
    }
}

fn eval_comparison<'a>(
    op: CompareOp,
    lhs: &'a FieldExpr,
    rhs: &'a FieldExpr,
    ctx: &SpanCtx<'_, 'a>,
) -> bool {
    // `x = nil` and `x != nil` test presence.
    for (nil_side, other) in [(rhs, lhs), (lhs, rhs)] {
        if *nil_side == FieldExpr::Literal(Value::Nil) {
            let absent = eval_val(other, ctx) == Val::Nil;
            return match op {
                CompareOp::Eq => absent,
                CompareOp::Ne => !absent,
                _ => false,
            };
        }
    }
    let mut l = eval_val(lhs, ctx);
    let mut r = eval_val(rhs, ctx);
    if is_hex_id(lhs) {
        r = lowercase(r);
    }
    if is_hex_id(rhs) {
        l = lowercase(l);
    }
    compare(op, &l, &r)
}

fn is_hex_id(e: &FieldExpr) -> bool {
    matches!(e, FieldExpr::Field(f) if f.is_hex_id())
}

fn lowercase(v: Val<'_>) -> Val<'_> {
    match v {
        Val::Str(s) if s.bytes().any(|b| b.is_ascii_uppercase()) => {
            Val::Str(Cow::Owned(s.to_ascii_lowercase()))
        }
        other => other,
    }
}

/// `a op b` with TraceQL's rules: arrays compare element-wise (`!=` must hold for every
/// element, the other operators for some element), missing values and mismatched types
/// compare false, numbers (ints, floats, durations in nanoseconds) compare numerically.
pub(crate) fn compare(op: CompareOp, a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Arr(_), Val::Arr(_)) => false,
        (Val::Arr(xs), s) => {
            let mut each = xs.iter().map(|x| compare_scalar(op, &element(x), s));
            if op == CompareOp::Ne {
                each.all(|m| m)
            } else {
                each.any(|m| m)
            }
        }
        (s, Val::Arr(xs)) => {
            let mut each = xs.iter().map(|x| compare_scalar(op, s, &element(x)));
            if op == CompareOp::Ne {
                each.all(|m| m)
            } else {
                each.any(|m| m)
            }
        }
        _ => compare_scalar(op, a, b),
    }
}

/// An array element; nested arrays are not searched.
fn element(v: &AnyValue) -> Val<'_> {
    match from_any(v) {
        Val::Arr(_) => Val::Nil,
        other => other,
    }
}

fn compare_scalar(op: CompareOp, a: &Val<'_>, b: &Val<'_>) -> bool {
    let ordering = match (a, b) {
        (Val::Nil, _) | (_, Val::Nil) => return false,
        (Val::Str(x), Val::Str(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (Val::Bool(x), Val::Bool(y)) => return equality(op, x == y),
        (Val::Status(x), Val::Status(y)) => return equality(op, x == y),
        (Val::Kind(x), Val::Kind(y)) => return equality(op, x == y),
        _ => match numeric_cmp(a, b) {
            Some(o) => o,
            None => return false,
        },
    };
    match (ordering, op) {
        (None, CompareOp::Ne) => true,
        (None, _) => false,
        (Some(o), op) => match op {
            CompareOp::Eq => o == Ordering::Equal,
            CompareOp::Ne => o != Ordering::Equal,
            CompareOp::Lt => o == Ordering::Less,
            CompareOp::Le => o != Ordering::Greater,
            CompareOp::Gt => o == Ordering::Greater,
            CompareOp::Ge => o != Ordering::Less,
            CompareOp::Regex | CompareOp::NotRegex => false,
        },
    }
}

fn equality(op: CompareOp, equal: bool) -> bool {
    match op {
        CompareOp::Eq => equal,
        CompareOp::Ne => !equal,
        _ => false,
    }
}

/// `Some(None)` for numbers that do not order (NaN), `None` for non-numbers.
pub(crate) fn numeric_cmp(a: &Val<'_>, b: &Val<'_>) -> Option<Option<Ordering>> {
    let exact = |v: &Val<'_>| match v {
        Val::Int(i) => Some(i128::from(*i)),
        Val::Dur(d) => Some(i128::from(*d)),
        _ => None,
    };
    if let (Some(x), Some(y)) = (exact(a), exact(b)) {
        return Some(Some(x.cmp(&y)));
    }
    let (x, y) = (as_f64(a)?, as_f64(b)?);
    Some(x.partial_cmp(&y))
}

/// The numeric value of ints, floats and durations (nanoseconds).
pub(crate) fn as_f64(v: &Val<'_>) -> Option<f64> {
    match v {
        Val::Int(i) => Some(*i as f64),
        Val::Float(f) => Some(*f),
        Val::Dur(d) => Some(*d as f64),
        _ => None,
    }
}

fn regex_matches(v: &Val<'_>, pattern: &Pattern, negated: bool) -> bool {
    match v {
        Val::Str(s) => pattern.is_match(s) != negated,
        Val::Arr(xs) => {
            let mut each = xs.iter().map(|x| match from_any(x) {
                Val::Str(s) => Some(pattern.is_match(&s)),
                _ => None,
            });
            if negated {
                each.all(|m| m == Some(false))
            } else {
                each.any(|m| m == Some(true))
            }
        }
        _ => false,
    }
}

fn neg(v: Val<'_>) -> Val<'static> {
    match v {
        Val::Int(i) => i.checked_neg().map_or(Val::Float(-(i as f64)), Val::Int),
        Val::Float(f) => Val::Float(-f),
        Val::Dur(0) => Val::Dur(0),
        Val::Dur(d) => Val::Float(-(d as f64)),
        _ => Val::Nil,
    }
}

/// Arithmetic: ints stay ints (falling back to floats on overflow), durations stay
/// durations where the result is one (`d + d`, `d - d` when not negative, `d * n`, `d / n`,
/// `d % d`), everything else is computed on floats. Division by zero is nil.
pub(crate) fn arith(op: BinaryOp, a: Val<'_>, b: Val<'_>) -> Val<'static> {
    let (Some(x), Some(y)) = (as_f64(&a), as_f64(&b)) else {
        return Val::Nil;
    };
    let exact = match (&a, &b) {
        (Val::Int(i), Val::Int(j)) => int_arith(op, *i, *j),
        (Val::Dur(d), Val::Dur(e)) => match op {
            BinaryOp::Add => d.checked_add(*e).map(Val::Dur),
            BinaryOp::Sub if d >= e => Some(Val::Dur(d - e)),
            BinaryOp::Mod if *e != 0 => Some(Val::Dur(d % e)),
            _ => None,
        },
        (Val::Dur(d), Val::Int(n)) | (Val::Int(n), Val::Dur(d))
            if op == BinaryOp::Mul && *n >= 0 =>
        {
            d.checked_mul(n.unsigned_abs()).map(Val::Dur)
        }
        (Val::Dur(d), Val::Int(n)) if op == BinaryOp::Div && *n > 0 => {
            Some(Val::Dur(d / n.unsigned_abs()))
        }
        _ => None,
    };
    if let Some(v) = exact {
        return v;
    }
    match op {
        BinaryOp::Add => Val::Float(x + y),
        BinaryOp::Sub => Val::Float(x - y),
        BinaryOp::Mul => Val::Float(x * y),
        BinaryOp::Div if y == 0.0 => Val::Nil,
        BinaryOp::Div => Val::Float(x / y),
        BinaryOp::Mod if y == 0.0 => Val::Nil,
        BinaryOp::Mod => Val::Float(x % y),
        BinaryOp::Pow => Val::Float(x.powf(y)),
        _ => Val::Nil,
    }
}

fn int_arith(op: BinaryOp, i: i64, j: i64) -> Option<Val<'static>> {
    match op {
        BinaryOp::Add => i.checked_add(j).map(Val::Int),
        BinaryOp::Sub => i.checked_sub(j).map(Val::Int),
        BinaryOp::Mul => i.checked_mul(j).map(Val::Int),
        BinaryOp::Div if j == 0 => Some(Val::Nil),
        BinaryOp::Div => i.checked_div(j).map(Val::Int),
        BinaryOp::Mod if j == 0 => Some(Val::Nil),
        BinaryOp::Mod => Some(Val::Int(i.checked_rem(j).unwrap_or(0))),
        BinaryOp::Pow => u32::try_from(j)
            .ok()
            .and_then(|e| i.checked_pow(e))
            .map(Val::Int),
        _ => None,
    }
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

fn hex(bytes: &[u8]) -> Val<'static> {
    if bytes.is_empty() {
        return Val::Nil;
    }
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    Val::Str(Cow::Owned(s))
}

fn focused_event(events: &[Event], focus: Option<usize>) -> Option<&Event> {
    match focus {
        Some(i) => events.get(i),
        None => events.first(),
    }
}

fn focused_link(links: &[Link], focus: Option<usize>) -> Option<&Link> {
    match focus {
        Some(i) => links.get(i),
        None => links.first(),
    }
}

/// The raw attribute value a field names on a span (outside quantification, `event.` and
/// `link.` read the first event or link that has the key).
pub(crate) fn attribute_value<'a>(
    scope: Option<AttrScope>,
    key: &str,
    ctx: &SpanCtx<'_, 'a>,
) -> Option<&'a AnyValue> {
    let rec = &ctx.trace.spans[ctx.idx];
    let span = &rec.span;
    match scope {
        Some(AttrScope::Span) => find(&span.attributes, key),
        Some(AttrScope::Resource) => find(&rec.resource.resource.attributes, key),
        Some(AttrScope::Instrumentation) => find(&rec.scope.scope.attributes, key),
        Some(AttrScope::Event) => match ctx.event {
            Some(i) => span.events.get(i).and_then(|e| find(&e.attributes, key)),
            None => span.events.iter().find_map(|e| find(&e.attributes, key)),
        },
        Some(AttrScope::Link) => match ctx.link {
            Some(i) => span.links.get(i).and_then(|l| find(&l.attributes, key)),
            None => span.links.iter().find_map(|l| find(&l.attributes, key)),
        },
        None => {
            find(&span.attributes, key).or_else(|| find(&rec.resource.resource.attributes, key))
        }
    }
}

fn lookup<'a>(f: &Field, ctx: &SpanCtx<'_, 'a>) -> Val<'a> {
    let trace = ctx.trace;
    let rec: &'a skein_format::SpanRecord = &trace.spans[ctx.idx];
    let span = &rec.span;
    let nested = |pick: fn(&super::structural::NestedSet) -> i64| {
        trace.tree().nested[ctx.idx]
            .as_ref()
            .map_or(Val::Nil, |n| Val::Int(pick(n)))
    };
    match f {
        Field::Name => Val::Str(Cow::Borrowed(&span.name)),
        Field::Status => Val::Status(Status::from_code(
            span.status.as_ref().map_or(0, |s| s.code),
        )),
        Field::StatusMessage => Val::Str(Cow::Borrowed(
            span.status.as_ref().map_or("", |s| s.message.as_str()),
        )),
        Field::Kind => Val::Kind(Kind::from_code(span.kind)),
        Field::Duration => Val::Dur(rec.duration_nanos()),
        Field::ChildCount => {
            Val::Int(i64::try_from(trace.tree().children[ctx.idx].len()).unwrap_or(i64::MAX))
        }
        Field::SpanId => hex(&span.span_id),
        Field::ParentId => hex(&span.parent_span_id),
        Field::TraceId => hex(&span.trace_id),
        Field::TraceDuration => Val::Dur(trace.duration()),
        Field::RootName => trace.root().map_or(Val::Nil, |r| {
            Val::Str(Cow::Borrowed(&trace.spans[r].span.name))
        }),
        Field::RootServiceName => match trace.root().map(|r| trace.spans[r].service_name()) {
            Some(s) if !s.is_empty() => Val::Str(Cow::Borrowed(s)),
            _ => Val::Nil,
        },
        Field::EventName => focused_event(&span.events, ctx.event)
            .map_or(Val::Nil, |e| Val::Str(Cow::Borrowed(&e.name))),
        Field::LinkTraceId => {
            focused_link(&span.links, ctx.link).map_or(Val::Nil, |l| hex(&l.trace_id))
        }
        Field::LinkSpanId => {
            focused_link(&span.links, ctx.link).map_or(Val::Nil, |l| hex(&l.span_id))
        }
        Field::InstrumentationName => Val::Str(Cow::Borrowed(&rec.scope.scope.name)),
        Field::InstrumentationVersion => Val::Str(Cow::Borrowed(&rec.scope.scope.version)),
        Field::NestedSetLeft => nested(|n| n.left),
        Field::NestedSetRight => nested(|n| n.right),
        Field::NestedSetParent => nested(|n| n.parent),
        Field::Attribute { scope, key } => {
            attribute_value(*scope, key, ctx).map_or(Val::Nil, from_any)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Val<'_> {
        Val::Str(Cow::Borrowed(x))
    }

    #[test]
    fn comparisons_follow_traceql_typing() {
        assert!(compare(CompareOp::Gt, &Val::Dur(200), &Val::Int(100)));
        assert!(compare(CompareOp::Eq, &Val::Int(2), &Val::Float(2.0)));
        assert!(!compare(CompareOp::Eq, &s("2"), &Val::Int(2)));
        assert!(!compare(CompareOp::Ne, &s("2"), &Val::Int(2)));
        assert!(!compare(CompareOp::Ne, &Val::Nil, &Val::Int(2)));
        assert!(compare(CompareOp::Lt, &s("abc"), &s("abd")));
        assert!(!compare(
            CompareOp::Lt,
            &Val::Status(Status::Ok),
            &Val::Status(Status::Error)
        ));
        assert!(compare(
            CompareOp::Ne,
            &Val::Kind(Kind::Client),
            &Val::Kind(Kind::Server)
        ));
        assert!(compare(
            CompareOp::Ge,
            &Val::Int(i64::MAX),
            &Val::Dur(u64::MAX / 2)
        ));
    }

    #[test]
    fn arrays_compare_per_element() {
        let arr = vec![
            AnyValue {
                value: Some(any_value::Value::StringValue("a".into())),
            },
            AnyValue {
                value: Some(any_value::Value::StringValue("b".into())),
            },
        ];
        assert!(compare(CompareOp::Eq, &Val::Arr(&arr), &s("b")));
        assert!(!compare(CompareOp::Ne, &Val::Arr(&arr), &s("b")));
        assert!(compare(CompareOp::Ne, &Val::Arr(&arr), &s("c")));
        let p = Pattern::new("a|c").unwrap();
        assert!(regex_matches(&Val::Arr(&arr), &p, false));
        assert!(!regex_matches(&Val::Arr(&arr), &p, true));
    }

    #[test]
    fn arithmetic_keeps_types_where_it_can() {
        assert_eq!(arith(BinaryOp::Add, Val::Int(2), Val::Int(3)), Val::Int(5));
        assert_eq!(arith(BinaryOp::Div, Val::Int(7), Val::Int(2)), Val::Int(3));
        assert_eq!(arith(BinaryOp::Div, Val::Int(7), Val::Int(0)), Val::Nil);
        assert_eq!(
            arith(BinaryOp::Mul, Val::Int(2), Val::Dur(100)),
            Val::Dur(200)
        );
        assert_eq!(
            arith(BinaryOp::Sub, Val::Dur(1), Val::Dur(3)),
            Val::Float(-2.0)
        );
        assert_eq!(
            arith(BinaryOp::Pow, Val::Int(2), Val::Int(10)),
            Val::Int(1024)
        );
        assert_eq!(
            arith(BinaryOp::Add, Val::Int(i64::MAX), Val::Int(1)),
            Val::Float(i64::MAX as f64 + 1.0)
        );
        assert_eq!(arith(BinaryOp::Add, s("a"), Val::Int(1)), Val::Nil);
        assert_eq!(
            arith(BinaryOp::Mul, Val::Float(1.5), Val::Int(2)),
            Val::Float(3.0)
        );
    }
}
