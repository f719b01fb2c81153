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
use skein_format::tagindex::{AttrType, IndexCondition, IndexRelation, RelationOp};
use skein_traceql::{
    AttrScope, CompareOp, Field, Kind, Leaf, Relation, SpanCondition, SpansetOp, Status, Value,
};

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

/// The index form of a structural relation; `None` when the index cannot use it (a negated
/// operator whose left-hand side the index cannot express exactly).
pub fn index_relation(r: &Relation) -> Option<IndexRelation> {
    let op = match r.op {
        SpansetOp::Child => RelationOp::Child,
        SpansetOp::Descendant => RelationOp::Descendant,
        SpansetOp::NotChild => RelationOp::NotChild,
        SpansetOp::NotDescendant => RelationOp::NotDescendant,
        _ => return None,
    };
    let any = |c: &Option<SpanCondition>| c.as_ref().map_or(IndexCondition::All, index_condition);
    let parent = match op {
        RelationOp::Child | RelationOp::Descendant => any(&r.lhs),
        // The left-hand spans exactly: every leaf must translate.
        _ => match &r.lhs {
            None => IndexCondition::All,
            Some(c) => exact_condition(c)?,
        },
    };
    Some(IndexRelation {
        op,
        parent,
        child: any(&r.rhs),
    })
}

/// The index form of `c` when it means exactly `c` (the index may still judge it less
/// precisely: see `IndexRelation`). Unscoped attributes mean "the span's, else the
/// resource's", which no index condition says: they do not translate.
fn exact_condition(c: &SpanCondition) -> Option<IndexCondition> {
    match c {
        SpanCondition::And(parts) => Some(IndexCondition::And(
            parts.iter().map(exact_condition).collect::<Option<_>>()?,
        )),
        SpanCondition::Or(parts) => Some(IndexCondition::Or(
            parts.iter().map(exact_condition).collect::<Option<_>>()?,
        )),
        SpanCondition::Leaf(l) => match (&l.field, l.op, &l.value) {
            (Field::Attribute { scope: None, .. }, _, _) => None,
            // `leaf` keeps the bounds of strict comparisons, which only widens.
            (Field::Duration, CompareOp::Gt, Value::Duration(d)) => {
                Some(IndexCondition::Duration {
                    min: Some(d.checked_add(1)?),
                    max: None,
                })
            }
            (Field::Duration, CompareOp::Lt, Value::Duration(d)) => {
                Some(IndexCondition::Duration {
                    min: None,
                    max: Some(d.checked_sub(1)?),
                })
            }
            _ => leaf(l),
        },
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

/// The generic span attribute values (key, string) a span satisfying `c` holds: equality
/// conditions on `span.` attributes that have no dedicated column, as a Bloom filter of those
/// values can rule row groups out for them (see `ScanFilter::attr_values`).
pub fn needles(c: &SpanCondition) -> Vec<(String, String)> {
    match c {
        SpanCondition::And(parts) => parts.iter().flat_map(needles).collect(),
        // A span satisfying an `or` need not hold any one value.
        SpanCondition::Or(_) => Vec::new(),
        SpanCondition::Leaf(l) => match (&l.field, l.op, &l.value) {
            (
                Field::Attribute {
                    scope: Some(AttrScope::Span),
                    key,
                },
                CompareOp::Eq,
                Value::String(v),
            ) if !skein_format::schema::DEDICATED.iter().any(|d| {
                d.scope == skein_format::schema::AttrScope::Span && d.key == key.as_str()
            }) =>
            {
                vec![(key.clone(), v.clone())]
            }
            _ => Vec::new(),
        },
    }
}
