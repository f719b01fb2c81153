//! What a block's tag index can decide of a TraceQL candidate condition: the condition as an
//! [`IndexCondition`], with every leaf the index cannot judge replaced by "any span".
//!
//! The translation keeps the condition **necessary** (a span satisfying the TraceQL condition
//! satisfies its index form), which is all pruning needs: the traces the index returns are
//! decided on their spans by the evaluator. Leaves only appear unnegated in a candidate
//! condition, so widening a leaf widens the whole.
//!
//! What the index decides: span name equality (`name` terms), attribute equality on span,
//! event and link attributes (`span_attr` terms, typed), resource and instrumentation
//! attributes (the table's holders), kind and status (`ks`), and duration ranges (`dur`
//! buckets). Typed terms follow TraceQL's comparison: an integer literal also matches a
//! double of the same value and the reverse; a string only a string.

use skein_format::model::value_string;
use skein_format::otlp::common::v1::{AnyValue, any_value::Value as V};
use skein_format::tagindex::{AttrType, IndexCondition};
use skein_traceql::{AttrScope, CompareOp, Field, Kind, Leaf, SpanCondition, Status, Value};

/// The index form of `c`.
pub fn index_condition(c: &SpanCondition) -> IndexCondition {
    match c {
        SpanCondition::And(parts) => {
            let parts: Vec<IndexCondition> = parts
                .iter()
                .map(index_condition)
                .filter(|p| *p != IndexCondition::All)
                .collect();
            match parts.len() {
                0 => IndexCondition::All,
                _ => IndexCondition::And(parts),
            }
        }
        SpanCondition::Or(parts) => {
            let parts: Vec<IndexCondition> = parts.iter().map(index_condition).collect();
            match parts.contains(&IndexCondition::All) {
                true => IndexCondition::All,
                false => IndexCondition::Or(parts),
            }
        }
        SpanCondition::Leaf(l) => leaf(l).unwrap_or(IndexCondition::All),
    }
}

fn float_form(f: f64) -> String {
    value_string(&AnyValue {
        value: Some(V::DoubleValue(f)),
    })
}

/// The typed string forms an attribute equal to `v` may have in the index.
fn attr_values(v: &Value) -> Option<Vec<(AttrType, String)>> {
    Some(match v {
        Value::String(s) => vec![(AttrType::String, s.clone())],
        Value::Bool(b) => vec![(AttrType::Bool, b.to_string())],
        Value::Int(i) => vec![
            (AttrType::Int, i.to_string()),
            (AttrType::Float, float_form(*i as f64)),
        ],
        Value::Float(f) => {
            let mut out = vec![(AttrType::Float, float_form(*f))];
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                out.push((AttrType::Int, (*f as i64).to_string()));
            }
            out
        }
        _ => return None,
    })
}

fn leaf(l: &Leaf) -> Option<IndexCondition> {
    match (&l.field, l.op, &l.value) {
        (Field::Name, CompareOp::Eq, Value::String(s)) => Some(IndexCondition::Name(s.clone())),
        (Field::Attribute { scope, key }, CompareOp::Eq, v) => {
            let (span, resource, scope) = match scope {
                Some(AttrScope::Span | AttrScope::Event | AttrScope::Link) => (true, false, false),
                Some(AttrScope::Resource) => (false, true, false),
                Some(AttrScope::Instrumentation) => (false, false, true),
                None => (true, true, true),
            };
            Some(IndexCondition::Attr {
                key: key.clone(),
                values: attr_values(v)?,
                span,
                resource,
                scope,
            })
        }
        (Field::Kind, CompareOp::Eq, Value::Kind(k)) => Some(IndexCondition::Kind(kind_number(*k))),
        (Field::Status, CompareOp::Eq, Value::Status(s)) => {
            Some(IndexCondition::StatusCode(status_number(*s)))
        }
        (Field::Duration, op, Value::Duration(d)) => {
            let d = *d;
            let (min, max) = match op {
                CompareOp::Eq => (Some(d), Some(d)),
                CompareOp::Gt | CompareOp::Ge => (Some(d), None),
                CompareOp::Lt | CompareOp::Le => (None, Some(d)),
                _ => return None,
            };
            Some(IndexCondition::Duration { min, max })
        }
        _ => None,
    }
}

fn kind_number(k: Kind) -> i32 {
    match k {
        Kind::Unspecified => 0,
        Kind::Internal => 1,
        Kind::Server => 2,
        Kind::Client => 3,
        Kind::Producer => 4,
        Kind::Consumer => 5,
    }
}

fn status_number(s: Status) -> i32 {
    match s {
        Status::Unset => 0,
        Status::Ok => 1,
        Status::Error => 2,
    }
}
