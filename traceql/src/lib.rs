//! # skein-traceql
//!
//! TraceQL, the query language of Grafana Tempo, as Skein implements it: a parser with
//! positioned errors ([`parse`]), a typed syntax tree ([`Query`] and the [`ast`] types), the
//! reference evaluator every executor must agree with ([`Query::evaluate`]), and the
//! conditions an index may use to skip traces ([`Query::requirements`]). The language as
//! Skein supports it is described in `docs/traceql.md`.
//!
//! A query is evaluated on one whole trace at a time and yields spansets: sets of that
//! trace's spans, with spanset-level attributes such as aggregate values.
//!
//! ```
//! use skein_traceql::{Value, parse};
//!
//! let query = parse(r#"{ resource.service.name = "api" && status = error } | count() > 0"#)?;
//! assert_eq!(
//!     query.to_string(),
//!     r#"{ resource.service.name = "api" && status = error } | count() > 0"#
//! );
//!
//! # let trace = skein_testkit::spans::small_trace();
//! // `trace` holds every span of one trace, in any order.
//! let sets = query.evaluate(&trace);
//! for set in &sets {
//!     for &i in &set.spans {
//!         println!("{} matched", trace[i].span.name);
//!     }
//!     assert_eq!(set.attributes, vec![("count()".to_string(), Value::Int(1))]);
//! }
//! assert!(query.matches(&trace));
//! # Ok::<(), skein_traceql::Error>(())
//! ```
//!
//! Errors carry a line and column:
//!
//! ```
//! let err = skein_traceql::parse("{ .a = }").unwrap_err();
//! assert_eq!((err.line(), err.column()), (1, 8));
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod ast;
mod error;
mod eval;
mod lexer;
mod parser;
mod print;
mod requirements;
mod value;

use std::str::FromStr;

use skein_format::SpanRecord;

pub use ast::{
    Aggregate, AggregateFilter, AttrScope, BinaryOp, CompareOp, Field, FieldExpr, Pattern,
    Pipeline, Query, SpansetExpr, SpansetOp, Stage,
};
pub use error::Error;
pub use eval::SpanSet;
pub use parser::{MAX_NESTING, MAX_QUERY_BYTES, parse};
pub use print::{attribute, string_literal};
pub use requirements::{Leaf, Relation, Requirements, SpanCondition};
pub use value::{Kind, Status, Value};

impl Query {
    /// The spansets the query yields on one whole trace: `trace` holds all of the trace's
    /// spans, in any order, and no span of another trace. Empty when the trace does not
    /// match.
    pub fn evaluate(&self, trace: &[SpanRecord]) -> Vec<SpanSet> {
        eval::evaluate(self, trace)
    }

    /// Whether the query yields at least one spanset on the trace; the same as
    /// `!self.evaluate(trace).is_empty()`, cheaper for plain filters.
    pub fn matches(&self, trace: &[SpanRecord]) -> bool {
        eval::matches(self, trace)
    }

    /// Conditions every matching trace satisfies, for pruning with an index.
    pub fn requirements(&self) -> Requirements {
        requirements::requirements(self)
    }

    /// The attributes to show with a matched span: every attribute that the query's
    /// conditions, aggregates, `by()` and `select()` reference and that the span has, as
    /// (key without scope, value), in order of first reference. Intrinsics are not included.
    /// `event.` and `link.` attributes come from the first event or link that has the key;
    /// values TraceQL cannot compare (bytes, maps) are shown as text.
    pub fn shown_attributes(&self, span: &SpanRecord) -> Vec<(String, Value)> {
        let refs: Vec<(Option<AttrScope>, &str)> = self
            .fields()
            .into_iter()
            .filter_map(|f| match f {
                Field::Attribute { scope, key } => Some((*scope, key.as_str())),
                _ => None,
            })
            .collect();
        let spans = std::slice::from_ref(span);
        let trace = eval::Trace::new(spans);
        let ctx = eval::filter::SpanCtx::new(&trace, 0);
        let mut out: Vec<(String, Value)> = Vec::new();
        for (scope, key) in refs {
            if let Some(v) = eval::filter::attribute_value(scope, key, &ctx) {
                let entry = (key.to_owned(), eval::filter::display_value(v));
                if !out.contains(&entry) {
                    out.push(entry);
                }
            }
        }
        out
    }

    /// Every field the query reads (intrinsics and attributes), each once, in order of
    /// appearance: what an executor must decode for the evaluator to see what it would see on
    /// whole spans.
    pub fn fields(&self) -> Vec<&Field> {
        let mut out = Vec::new();
        collect_pipeline(&self.pipeline, &mut out);
        out
    }

    /// True for queries that match every span: `{ }` and `{ true }`.
    pub fn is_match_all(&self) -> bool {
        matches!(
            self.pipeline.stages.as_slice(),
            [Stage::Spanset(SpansetExpr::Filter(
                None | Some(FieldExpr::Literal(Value::Bool(true)))
            ))]
        )
    }
}

impl FromStr for Query {
    type Err = Error;

    fn from_str(s: &str) -> Result<Query, Error> {
        parse(s)
    }
}

fn collect_pipeline<'q>(p: &'q Pipeline, out: &mut Vec<&'q Field>) {
    for stage in &p.stages {
        match stage {
            Stage::Spanset(e) => collect_spanset(e, out),
            Stage::Aggregate(a) => match &a.aggregate {
                Aggregate::Count => {}
                Aggregate::Avg(e) | Aggregate::Min(e) | Aggregate::Max(e) | Aggregate::Sum(e) => {
                    collect_field_expr(e, out)
                }
            },
            Stage::Select(fields) => fields.iter().for_each(|f| collect_field(f, out)),
            Stage::By(e) => collect_field_expr(e, out),
            Stage::Coalesce => {}
        }
    }
}

fn collect_spanset<'q>(e: &'q SpansetExpr, out: &mut Vec<&'q Field>) {
    match e {
        SpansetExpr::Filter(None) => {}
        SpansetExpr::Filter(Some(body)) => collect_field_expr(body, out),
        SpansetExpr::Binary { lhs, rhs, .. } => {
            collect_spanset(lhs, out);
            collect_spanset(rhs, out);
        }
        SpansetExpr::Group(p) => collect_pipeline(p, out),
    }
}

fn collect_field_expr<'q>(e: &'q FieldExpr, out: &mut Vec<&'q Field>) {
    match e {
        FieldExpr::Literal(_) => {}
        FieldExpr::Field(f) => collect_field(f, out),
        FieldExpr::And(xs) | FieldExpr::Or(xs) => {
            xs.iter().for_each(|x| collect_field_expr(x, out))
        }
        FieldExpr::Not(x) | FieldExpr::Neg(x) | FieldExpr::Match { lhs: x, .. } => {
            collect_field_expr(x, out)
        }
        FieldExpr::Binary { lhs, rhs, .. } => {
            collect_field_expr(lhs, out);
            collect_field_expr(rhs, out);
        }
    }
}

fn collect_field<'q>(f: &'q Field, out: &mut Vec<&'q Field>) {
    if !out.contains(&f) {
        out.push(f);
    }
}
