//! What an index may assume about every trace a query matches. Block scans prune with these
//! conditions before evaluating the query, so they must be conservative: when a trace
//! matches, every requirement holds on it. Anything that cannot be expressed as "some span
//! satisfies this comparison" is left out, which only makes pruning weaker.

use crate::ast::{CompareOp, Field, FieldExpr, Pipeline, Query, SpansetExpr, SpansetOp, Stage};
use crate::eval::filter::{SpanCtx, Val};
use crate::value::Value;

/// Conditions that hold on every trace the query matches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Requirements {
    /// The trace satisfies every entry; empty means there is nothing to prune with.
    pub all: Vec<SpanCondition>,
    /// And every structural relation.
    pub relations: Vec<Relation>,
}

/// "Some span of the trace satisfying `rhs` relates by `op` to the left-hand spans": what a
/// structural operator of the query's first stage needs of a matching trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Relation {
    /// `Child` (`>`), `Descendant` (`>>`), `NotChild` (`!>`) or `NotDescendant` (`!>>`).
    pub op: SpansetOp,
    /// The left-hand spans (in the window a search evaluates on). For `Child` and
    /// `Descendant`, a condition every one of them satisfies (`None`: no condition); for the
    /// negated operators, a condition exactly they satisfy (`None`: every span).
    pub lhs: Option<SpanCondition>,
    /// A condition every result span satisfies (`None`: no condition).
    pub rhs: Option<SpanCondition>,
}

/// "Some span of the trace satisfies this."
///
/// `And` and `Or` combine conditions on the *same* span: `And([a, b])` needs one span
/// satisfying both, `Or([a, b])` one span satisfying either.
#[derive(Clone, Debug, PartialEq)]
pub enum SpanCondition {
    /// Every part holds on the span.
    And(Vec<SpanCondition>),
    /// Some part holds on the span.
    Or(Vec<SpanCondition>),
    /// One comparison.
    Leaf(Leaf),
}

/// A comparison of a span field with a static value, exactly as TraceQL evaluates it on
/// one span (see [`Leaf::matches`]): mismatched types and missing values compare false,
/// arrays compare per element, `event.`/`link.` fields hold when any event or link
/// satisfies the comparison, ID intrinsics compare as lowercase hex. For `Regex` and
/// `NotRegex` the value is the pattern as written; it matches fully anchored.
#[derive(Clone, Debug, PartialEq)]
pub struct Leaf {
    /// The field compared; never a trace-level or structural intrinsic.
    pub field: Field,
    /// The comparison.
    pub op: CompareOp,
    /// The value compared with; never `Nil`.
    pub value: Value,
}

impl Leaf {
    /// Whether `span` satisfies the comparison, evaluated on that span alone.
    pub fn matches(&self, span: &skein_format::SpanRecord) -> bool {
        let expr = self.to_expr();
        let trace = crate::eval::Trace::new(std::slice::from_ref(span));
        crate::eval::filter::matches(&expr, &trace, 0)
    }

    fn to_expr(&self) -> FieldExpr {
        let lhs = Box::new(FieldExpr::Field(self.field.clone()));
        match (self.op, &self.value) {
            (CompareOp::Regex | CompareOp::NotRegex, Value::String(src)) => {
                match crate::ast::Pattern::new(src) {
                    Ok(pattern) => FieldExpr::Match {
                        lhs,
                        negated: self.op == CompareOp::NotRegex,
                        pattern,
                    },
                    Err(_) => FieldExpr::Literal(Value::Bool(false)),
                }
            }
            (CompareOp::Regex | CompareOp::NotRegex, _) => FieldExpr::Literal(Value::Bool(false)),
            (op, v) => FieldExpr::Binary {
                op: match op {
                    CompareOp::Eq => crate::ast::BinaryOp::Eq,
                    CompareOp::Ne => crate::ast::BinaryOp::Ne,
                    CompareOp::Lt => crate::ast::BinaryOp::Lt,
                    CompareOp::Le => crate::ast::BinaryOp::Le,
                    CompareOp::Gt => crate::ast::BinaryOp::Gt,
                    _ => crate::ast::BinaryOp::Ge,
                },
                lhs,
                rhs: Box::new(FieldExpr::Literal(v.clone())),
            },
        }
    }
}

pub(crate) fn requirements(q: &Query) -> Requirements {
    let mut relations = Vec::new();
    // Later stages see only the spans of the spansets before them, so their left-hand sides
    // are not what a condition on the whole trace describes: only the first stage counts.
    if let Some(Stage::Spanset(e)) = q.pipeline.stages.first() {
        structure(e, &mut relations);
    }
    Requirements {
        all: pipeline(&q.pipeline),
        relations,
    }
}

/// The relations that hold whenever `e`, evaluated on every span, yields a span.
fn structure(e: &SpansetExpr, out: &mut Vec<Relation>) {
    let SpansetExpr::Binary { op, lhs, rhs } = e else {
        return;
    };
    match op {
        SpansetOp::And => {
            structure(lhs, out);
            structure(rhs, out);
        }
        SpansetOp::Child | SpansetOp::Descendant => {
            out.push(Relation {
                op: *op,
                lhs: result(lhs),
                rhs: result(rhs),
            });
            structure(lhs, out);
            structure(rhs, out);
        }
        SpansetOp::NotChild | SpansetOp::NotDescendant => {
            if let Some(left) = exact(lhs) {
                out.push(Relation {
                    op: *op,
                    lhs: left,
                    rhs: result(rhs),
                });
            }
            structure(rhs, out);
        }
        _ => {}
    }
}

/// A condition every span `e` yields satisfies; `None` when there is none to express.
fn result(e: &SpansetExpr) -> Option<SpanCondition> {
    match e {
        SpansetExpr::Filter(None) | SpansetExpr::Group(_) => None,
        SpansetExpr::Filter(Some(body)) => condition(body),
        SpansetExpr::Binary { op, lhs, rhs } => match op {
            SpansetOp::And
            | SpansetOp::Or
            | SpansetOp::UnionDescendant
            | SpansetOp::UnionChild
            | SpansetOp::UnionSibling
            | SpansetOp::UnionAncestor
            | SpansetOp::UnionParent => Some(SpanCondition::Or(vec![result(lhs)?, result(rhs)?])),
            // The other structural operators yield right-hand spans.
            _ => result(rhs),
        },
    }
}

/// For a spanset filter: `Some(condition)` that exactly its spans satisfy (`Some(None)`: every
/// span); `None` when that cannot be expressed.
fn exact(e: &SpansetExpr) -> Option<Option<SpanCondition>> {
    match e {
        SpansetExpr::Filter(None) => Some(None),
        SpansetExpr::Filter(Some(body)) => exact_condition(body).map(Some),
        _ => None,
    }
}

/// A condition a span satisfies exactly when `e` holds on it.
fn exact_condition(e: &FieldExpr) -> Option<SpanCondition> {
    match e {
        FieldExpr::And(xs) => Some(conjunction(
            xs.iter().map(exact_condition).collect::<Option<Vec<_>>>()?,
        )),
        FieldExpr::Or(xs) => Some(SpanCondition::Or(
            xs.iter().map(exact_condition).collect::<Option<Vec<_>>>()?,
        )),
        FieldExpr::Match { .. } | FieldExpr::Binary { .. } => condition(e),
        _ => None,
    }
}

/// Every stage's output is a subset of the spans before it, so a match needs every spanset
/// stage to have matched something.
fn pipeline(p: &Pipeline) -> Vec<SpanCondition> {
    p.stages
        .iter()
        .flat_map(|s| match s {
            Stage::Spanset(e) => spanset(e),
            _ => Vec::new(),
        })
        .collect()
}

/// Conditions that hold whenever `e` yields a span.
fn spanset(e: &SpansetExpr) -> Vec<SpanCondition> {
    match e {
        SpansetExpr::Filter(None) => Vec::new(),
        SpansetExpr::Filter(Some(body)) => condition(body).into_iter().collect(),
        SpansetExpr::Group(p) => pipeline(p),
        SpansetExpr::Binary { op, lhs, rhs } => match op {
            SpansetOp::Or => {
                let (l, r) = (spanset(lhs), spanset(rhs));
                if l.is_empty() || r.is_empty() {
                    Vec::new()
                } else {
                    vec![SpanCondition::Or(vec![conjunction(l), conjunction(r)])]
                }
            }
            // Negated structural operators return right-hand spans whether or not the left
            // side matched anything.
            SpansetOp::NotDescendant
            | SpansetOp::NotChild
            | SpansetOp::NotSibling
            | SpansetOp::NotAncestor
            | SpansetOp::NotParent => spanset(rhs),
            _ => {
                let mut all = spanset(lhs);
                all.extend(spanset(rhs));
                all
            }
        },
    }
}

fn conjunction(mut parts: Vec<SpanCondition>) -> SpanCondition {
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        SpanCondition::And(parts)
    }
}

/// A condition every span satisfying `e` satisfies; `None` when there is none to express.
fn condition(e: &FieldExpr) -> Option<SpanCondition> {
    match e {
        FieldExpr::And(xs) => {
            let parts: Vec<SpanCondition> = xs.iter().filter_map(condition).collect();
            if parts.is_empty() {
                None
            } else {
                Some(conjunction(parts))
            }
        }
        FieldExpr::Or(xs) => {
            let parts: Option<Vec<SpanCondition>> = xs.iter().map(condition).collect();
            Some(SpanCondition::Or(parts?))
        }
        FieldExpr::Field(f) if prunable(f) => {
            Some(leaf(f.clone(), CompareOp::Eq, Value::Bool(true)))
        }
        FieldExpr::Match {
            lhs,
            negated,
            pattern,
        } => match lhs.as_ref() {
            FieldExpr::Field(f) if prunable(f) => Some(leaf(
                f.clone(),
                if *negated {
                    CompareOp::NotRegex
                } else {
                    CompareOp::Regex
                },
                Value::String(pattern.source().to_owned()),
            )),
            _ => None,
        },
        FieldExpr::Binary { op, lhs, rhs } => {
            let op = op.comparison()?;
            let (field, op, value) = match (lhs.as_ref(), rhs.as_ref()) {
                (FieldExpr::Field(f), other) => (f, op, constant(other)?),
                (other, FieldExpr::Field(f)) => (f, op.flipped(), constant(other)?),
                _ => return None,
            };
            if !prunable(field) || value == Value::Nil {
                return None;
            }
            Some(leaf(field.clone(), op, value))
        }
        _ => None,
    }
}

fn leaf(field: Field, op: CompareOp, value: Value) -> SpanCondition {
    SpanCondition::Leaf(Leaf { field, op, value })
}

/// Fields whose value depends on the span alone.
fn prunable(f: &Field) -> bool {
    !f.is_trace_level()
        && !matches!(
            f,
            Field::ChildCount
                | Field::NestedSetLeft
                | Field::NestedSetRight
                | Field::NestedSetParent
        )
}

/// The value of an expression that reads no field.
fn constant(e: &FieldExpr) -> Option<Value> {
    if reads_fields(e) {
        return None;
    }
    // Constant expressions never look at the span; evaluate them on an empty one.
    let span = skein_format::SpanRecord {
        resource: Default::default(),
        scope: Default::default(),
        span: Default::default(),
    };
    let spans = std::slice::from_ref(&span);
    let trace = crate::eval::Trace::new(spans);
    let v = crate::eval::filter::eval_val(e, &SpanCtx::new(&trace, 0));
    match v {
        Val::Float(f) if !f.is_finite() => None,
        Val::Nil | Val::Arr(_) => Some(Value::Nil),
        v => Some(v.to_value()),
    }
}

fn reads_fields(e: &FieldExpr) -> bool {
    match e {
        FieldExpr::Literal(_) => false,
        FieldExpr::Field(_) => true,
        FieldExpr::And(xs) | FieldExpr::Or(xs) => xs.iter().any(reads_fields),
        FieldExpr::Not(x) | FieldExpr::Neg(x) | FieldExpr::Match { lhs: x, .. } => reads_fields(x),
        FieldExpr::Binary { lhs, rhs, .. } => reads_fields(lhs) || reads_fields(rhs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::AttrScope;
    use crate::parse;

    fn reqs(src: &str) -> Vec<SpanCondition> {
        parse(src).unwrap().requirements().all
    }

    fn attr(key: &str, op: CompareOp, value: Value) -> SpanCondition {
        SpanCondition::Leaf(Leaf {
            field: Field::Attribute {
                scope: Some(AttrScope::Span),
                key: key.into(),
            },
            op,
            value,
        })
    }

    #[test]
    fn derivation() {
        let a1 = attr("a", CompareOp::Eq, Value::Int(1));
        let b2 = attr("b", CompareOp::Eq, Value::Int(2));
        assert_eq!(reqs("{ }"), vec![]);
        assert_eq!(reqs("{ span.a = 1 }"), vec![a1.clone()]);
        assert_eq!(
            reqs("{ span.a = 1 && span.b = 2 }"),
            vec![SpanCondition::And(vec![a1.clone(), b2.clone()])]
        );
        assert_eq!(
            reqs("{ span.a = 1 || span.b = 2 }"),
            vec![SpanCondition::Or(vec![a1.clone(), b2.clone()])]
        );
        // Negations, nil checks, trace-level fields and field-to-field comparisons drop out.
        assert_eq!(
            reqs("{ span.a = 1 && !(span.b = 2) && span.c != nil && traceDuration > 1s }"),
            vec![a1.clone()]
        );
        assert_eq!(reqs("{ span.a = 1 || !(span.b = 2) }"), vec![]);
        assert_eq!(reqs("{ span.a = span.b }"), vec![]);
        assert_eq!(
            reqs("{ span.a = 1 } && { span.b = 2 }"),
            vec![a1.clone(), b2.clone()]
        );
        assert_eq!(
            reqs("{ span.a = 1 } || { span.b = 2 }"),
            vec![SpanCondition::Or(vec![a1.clone(), b2.clone()])]
        );
        assert_eq!(reqs("{ span.a = 1 } || { }"), vec![]);
        assert_eq!(
            reqs("{ span.a = 1 } >> { span.b = 2 }"),
            vec![a1.clone(), b2.clone()]
        );
        assert_eq!(
            reqs("{ span.a = 1 } &~ { span.b = 2 }"),
            vec![a1.clone(), b2.clone()]
        );
        assert_eq!(reqs("{ span.a = 1 } !>> { span.b = 2 }"), vec![b2.clone()]);
        assert_eq!(
            reqs("{ span.a = 1 } | by(span.x) | count() > 2 | { span.b = 2 }"),
            vec![a1.clone(), b2.clone()]
        );
        assert_eq!(
            reqs("({ span.a = 1 } | count() > 1) && { }"),
            vec![a1.clone()]
        );
        // Literals on the left are flipped; constant arithmetic is folded.
        assert_eq!(
            reqs("{ 3 < span.a }"),
            vec![attr("a", CompareOp::Gt, Value::Int(3))]
        );
        assert_eq!(
            reqs("{ duration > 2 * 100ms }"),
            vec![SpanCondition::Leaf(Leaf {
                field: Field::Duration,
                op: CompareOp::Gt,
                value: Value::Duration(200_000_000)
            })]
        );
        assert_eq!(
            reqs(r#"{ name =~ "GET .*" }"#),
            vec![SpanCondition::Leaf(Leaf {
                field: Field::Name,
                op: CompareOp::Regex,
                value: Value::String("GET .*".into())
            })]
        );
        assert_eq!(
            reqs("{ span.flag }"),
            vec![attr("flag", CompareOp::Eq, Value::Bool(true))]
        );
    }

    #[test]
    fn relations() {
        let rels = |src: &str| parse(src).unwrap().requirements().relations;
        let a1 = attr("a", CompareOp::Eq, Value::Int(1));
        let b2 = attr("b", CompareOp::Eq, Value::Int(2));
        let rel =
            |op, lhs: Option<SpanCondition>, rhs: Option<SpanCondition>| Relation { op, lhs, rhs };
        assert_eq!(
            rels("{ span.a = 1 } > { span.b = 2 }"),
            vec![rel(SpansetOp::Child, Some(a1.clone()), Some(b2.clone()))]
        );
        assert_eq!(
            rels("{ } >> { span.b = 2 }"),
            vec![rel(SpansetOp::Descendant, None, Some(b2.clone()))]
        );
        // Negated: the left side exactly, or no relation at all.
        assert_eq!(
            rels("{ span.a = 1 } !> { span.b = 2 }"),
            vec![rel(SpansetOp::NotChild, Some(a1.clone()), Some(b2.clone()))]
        );
        assert_eq!(
            rels("{ } !>> { span.b = 2 }"),
            vec![rel(SpansetOp::NotDescendant, None, Some(b2.clone()))]
        );
        assert_eq!(
            rels("{ span.a = 1 && span.c != nil } !> { span.b = 2 }"),
            vec![]
        );
        assert_eq!(rels("{ !(span.a = 1) } !> { span.b = 2 }"), vec![]);
        // Results of a structural operator are its right side's spans; of `&&`, either side's.
        assert_eq!(
            rels("({ span.a = 1 } > { span.b = 2 }) > { }"),
            vec![
                rel(SpansetOp::Child, Some(b2.clone()), None),
                rel(SpansetOp::Child, Some(a1.clone()), Some(b2.clone())),
            ]
        );
        assert_eq!(
            rels("({ span.a = 1 } && { span.b = 2 }) > { }"),
            vec![rel(
                SpansetOp::Child,
                Some(SpanCondition::Or(vec![a1.clone(), b2.clone()])),
                None
            )]
        );
        // Not needed by a match: under `||`, on a negated operator's left, in later stages.
        assert_eq!(rels("({ span.a = 1 } > { }) || { span.b = 2 }"), vec![]);
        assert_eq!(rels("({ span.a = 1 } > { }) !> { span.b = 2 }"), vec![]);
        assert_eq!(rels("{ span.b = 2 } | { span.a = 1 } > { }"), vec![]);
        assert_eq!(rels("{ span.a = 1 } ~ { span.b = 2 }"), vec![]);
    }

    #[test]
    fn leaves_match_as_the_evaluator_does() {
        let trace = skein_testkit::spans::small_trace();
        let leaf = |field: Field, op: CompareOp, value: Value| Leaf { field, op, value };
        let status = leaf(
            Field::Status,
            CompareOp::Eq,
            Value::Status(crate::Status::Error),
        );
        assert_eq!(trace.iter().filter(|s| status.matches(s)).count(), 1);
        let re = leaf(Field::Name, CompareOp::Regex, Value::String("GET.*".into()));
        assert_eq!(trace.iter().filter(|s| re.matches(s)).count(), 2);
        let event = leaf(
            Field::Attribute {
                scope: Some(AttrScope::Event),
                key: "attempt".into(),
            },
            CompareOp::Ge,
            Value::Int(2),
        );
        assert_eq!(trace.iter().filter(|s| event.matches(s)).count(), 1);
        let id = leaf(
            Field::SpanId,
            CompareOp::Eq,
            Value::String("0202020202020202".into()),
        );
        assert_eq!(trace.iter().filter(|s| id.matches(s)).count(), 1);
    }
}
