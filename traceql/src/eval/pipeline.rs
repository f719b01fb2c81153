//! Pipeline stages: spanset expressions applied to each input spanset, aggregate filters,
//! `by()`, `coalesce()` and `select()`. Each stage maps a list of spansets to a new list;
//! empty spansets are dropped after every stage.

use std::collections::HashMap;

use super::filter::{SpanCtx, Val, as_f64, compare, eval_val, matches, numeric_cmp};
use super::structural::structural;
use super::{SpanSet, Trace};
use crate::ast::{Aggregate, CompareOp, FieldExpr, Pipeline, SpansetExpr, SpansetOp, Stage};
use crate::value::Value;

/// Runs `pipeline` on `input`.
pub(crate) fn run(pipeline: &Pipeline, trace: &Trace<'_>, mut sets: Vec<SpanSet>) -> Vec<SpanSet> {
    for stage in &pipeline.stages {
        sets = apply(stage, trace, sets);
        sets.retain(|s| !s.spans.is_empty());
        if sets.is_empty() {
            break;
        }
    }
    sets
}

fn apply(stage: &Stage, trace: &Trace<'_>, sets: Vec<SpanSet>) -> Vec<SpanSet> {
    match stage {
        Stage::Spanset(e) => sets.iter().flat_map(|s| spanset(e, trace, s)).collect(),
        Stage::Aggregate(f) => sets
            .into_iter()
            .filter_map(|mut s| {
                let v = aggregate(&f.aggregate, trace, &s)?;
                if !compare_values(f.op, &v, &f.value) {
                    return None;
                }
                s.set_attribute(f.aggregate.to_string(), v);
                Some(s)
            })
            .collect(),
        Stage::Select(_) => sets,
        Stage::By(e) => sets.iter().flat_map(|s| group_by(e, trace, s)).collect(),
        Stage::Coalesce => {
            let mut spans: Vec<usize> = sets.into_iter().flat_map(|s| s.spans).collect();
            trace.normalize(&mut spans);
            vec![SpanSet {
                spans,
                attributes: Vec::new(),
            }]
        }
    }
}

/// Evaluates a spanset expression on the spans of one input spanset.
fn spanset(e: &SpansetExpr, trace: &Trace<'_>, input: &SpanSet) -> Vec<SpanSet> {
    let with_spans = |spans: Vec<usize>| SpanSet {
        spans,
        attributes: input.attributes.clone(),
    };
    match e {
        SpansetExpr::Filter(None) => vec![input.clone()],
        SpansetExpr::Filter(Some(body)) => {
            let spans: Vec<usize> = input
                .spans
                .iter()
                .copied()
                .filter(|&i| matches(body, trace, i))
                .collect();
            if spans.is_empty() {
                Vec::new()
            } else {
                vec![with_spans(spans)]
            }
        }
        SpansetExpr::Group(p) => run(p, trace, vec![input.clone()]),
        SpansetExpr::Binary { op, lhs, rhs } => {
            let l = flatten(trace, spanset(lhs, trace, input));
            // `&&` needs both sides: skip the right one when the left matched nothing.
            if *op == SpansetOp::And && l.is_empty() {
                return Vec::new();
            }
            let r = flatten(trace, spanset(rhs, trace, input));
            let mut spans = match op {
                SpansetOp::And if r.is_empty() => Vec::new(),
                SpansetOp::And | SpansetOp::Or => {
                    let mut u = l;
                    u.extend(r);
                    u
                }
                _ if r.is_empty() => Vec::new(),
                _ => structural(trace.tree(), *op, &l, &r),
            };
            trace.normalize(&mut spans);
            if spans.is_empty() {
                Vec::new()
            } else {
                vec![with_spans(spans)]
            }
        }
    }
}

/// All spans of several spansets, in spanset order.
fn flatten(trace: &Trace<'_>, sets: Vec<SpanSet>) -> Vec<usize> {
    if sets.len() == 1 {
        return sets.into_iter().flat_map(|s| s.spans).collect();
    }
    let mut spans: Vec<usize> = sets.into_iter().flat_map(|s| s.spans).collect();
    trace.normalize(&mut spans);
    spans
}

fn compare_values(op: CompareOp, a: &Value, b: &Value) -> bool {
    compare(op, &Val::from_value(a), &Val::from_value(b))
}

/// The aggregate's value on a spanset; `None` when no span has a numeric value for it.
fn aggregate(a: &Aggregate, trace: &Trace<'_>, set: &SpanSet) -> Option<Value> {
    let expr = match a {
        Aggregate::Count => {
            return Some(Value::Int(
                i64::try_from(set.spans.len()).unwrap_or(i64::MAX),
            ));
        }
        Aggregate::Avg(e) | Aggregate::Min(e) | Aggregate::Max(e) | Aggregate::Sum(e) => e,
    };
    let values: Vec<Val<'_>> = set
        .spans
        .iter()
        .map(|&i| eval_val(expr, &SpanCtx::new(trace, i)))
        .filter(|v| as_f64(v).is_some())
        .collect();
    if values.is_empty() {
        return None;
    }
    let all_int = values.iter().all(|v| matches!(v, Val::Int(_)));
    let all_dur = values.iter().all(|v| matches!(v, Val::Dur(_)));
    let float_sum = || values.iter().filter_map(as_f64).sum::<f64>();
    let exact_sum = || -> i128 {
        values
            .iter()
            .map(|v| match v {
                Val::Int(i) => i128::from(*i),
                Val::Dur(d) => i128::from(*d),
                _ => 0,
            })
            .sum()
    };
    let n = values.len();
    let v = match a {
        Aggregate::Sum(_) if all_int => {
            i64::try_from(exact_sum()).map_or(Value::Float(float_sum()), Value::Int)
        }
        Aggregate::Sum(_) if all_dur => {
            u64::try_from(exact_sum()).map_or(Value::Float(float_sum()), Value::Duration)
        }
        Aggregate::Sum(_) => Value::Float(float_sum()),
        Aggregate::Avg(_) if all_dur => {
            let avg = exact_sum() / i128::try_from(n).unwrap_or(i128::MAX);
            Value::Duration(u64::try_from(avg).unwrap_or(u64::MAX))
        }
        Aggregate::Avg(_) => Value::Float(float_sum() / n as f64),
        Aggregate::Min(_) | Aggregate::Max(_) => {
            let want = if matches!(a, Aggregate::Min(_)) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            };
            let mut best = &values[0];
            for v in &values[1..] {
                if numeric_cmp(v, best) == Some(Some(want)) {
                    best = v;
                }
            }
            best.to_value()
        }
        Aggregate::Count => return None,
    };
    Some(v)
}

/// A hashable form of a value, for grouping (ints and floats are different groups).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Nil,
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(String),
    Dur(u64),
    Status(crate::value::Status),
    Kind(crate::value::Kind),
}

fn key(v: &Value) -> Key {
    match v {
        Value::Nil => Key::Nil,
        Value::Bool(b) => Key::Bool(*b),
        Value::Int(i) => Key::Int(*i),
        Value::Float(f) => Key::Float(if *f == 0.0 { 0 } else { f.to_bits() }),
        Value::String(s) => Key::Str(s.clone()),
        Value::Duration(d) => Key::Dur(*d),
        Value::Status(s) => Key::Status(*s),
        Value::Kind(k) => Key::Kind(*k),
    }
}

/// Splits a spanset by the value of `e`; spans without a value form the `nil` group.
fn group_by(e: &FieldExpr, trace: &Trace<'_>, input: &SpanSet) -> Vec<SpanSet> {
    let label = format!("by({e})");
    let mut index: HashMap<Key, usize> = HashMap::new();
    let mut out: Vec<SpanSet> = Vec::new();
    for &i in &input.spans {
        let v = eval_val(e, &SpanCtx::new(trace, i)).to_value();
        let slot = *index.entry(key(&v)).or_insert_with(|| {
            let mut set = SpanSet {
                spans: Vec::new(),
                attributes: input.attributes.clone(),
            };
            set.set_attribute(label.clone(), v);
            out.push(set);
            out.len() - 1
        });
        out[slot].spans.push(i);
    }
    out
}
