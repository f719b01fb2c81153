//! Random syntax trees shared by the property tests: type-correct field expressions,
//! spanset expressions and pipelines, over a configurable set of fields and keys.

#![allow(dead_code, unreachable_pub)]

use proptest::prelude::*;
use skein_traceql::{
    Aggregate, AggregateFilter, AttrScope, BinaryOp, CompareOp, Field, FieldExpr, Kind, Pattern,
    Pipeline, SpansetExpr, SpansetOp, Stage, Status, Value,
};

pub fn scope() -> impl Strategy<Value = Option<AttrScope>> {
    prop_oneof![
        Just(None),
        Just(Some(AttrScope::Span)),
        Just(Some(AttrScope::Resource)),
        Just(Some(AttrScope::Event)),
        Just(Some(AttrScope::Link)),
        Just(Some(AttrScope::Instrumentation)),
    ]
}

pub fn status() -> impl Strategy<Value = Status> {
    prop_oneof![Just(Status::Unset), Just(Status::Ok), Just(Status::Error)]
}

pub fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Unspecified),
        Just(Kind::Internal),
        Just(Kind::Server),
        Just(Kind::Client),
        Just(Kind::Producer),
        Just(Kind::Consumer),
    ]
}

pub fn compare_op() -> impl Strategy<Value = BinaryOp> {
    prop_oneof![
        Just(BinaryOp::Eq),
        Just(BinaryOp::Ne),
        Just(BinaryOp::Lt),
        Just(BinaryOp::Le),
        Just(BinaryOp::Gt),
        Just(BinaryOp::Ge),
    ]
}

pub fn arith_op() -> impl Strategy<Value = BinaryOp> {
    prop_oneof![
        Just(BinaryOp::Add),
        Just(BinaryOp::Sub),
        Just(BinaryOp::Mul),
        Just(BinaryOp::Div),
        Just(BinaryOp::Mod),
        Just(BinaryOp::Pow),
    ]
}

pub fn spanset_op() -> impl Strategy<Value = SpansetOp> {
    prop_oneof![
        Just(SpansetOp::And),
        Just(SpansetOp::Or),
        Just(SpansetOp::Descendant),
        Just(SpansetOp::Child),
        Just(SpansetOp::Sibling),
        Just(SpansetOp::Ancestor),
        Just(SpansetOp::Parent),
        Just(SpansetOp::NotDescendant),
        Just(SpansetOp::NotChild),
        Just(SpansetOp::NotSibling),
        Just(SpansetOp::NotAncestor),
        Just(SpansetOp::NotParent),
        Just(SpansetOp::UnionDescendant),
        Just(SpansetOp::UnionChild),
        Just(SpansetOp::UnionSibling),
        Just(SpansetOp::UnionAncestor),
        Just(SpansetOp::UnionParent),
    ]
}

/// Which fields and literals the trees use.
#[derive(Clone)]
pub struct Vocabulary {
    pub attributes: Vec<(Option<AttrScope>, String)>,
    pub strings: Vec<String>,
    pub patterns: Vec<&'static str>,
    /// Arbitrary strings, keys, ints and floats instead of the lists above.
    pub wild: bool,
    /// Fields with values they often hold; comparisons of these are generated often.
    pub pairs: Vec<(Field, Vec<Value>)>,
    /// Recursion depth of expressions.
    pub depth: u32,
}

impl Vocabulary {
    fn attribute(&self) -> BoxedStrategy<Field> {
        if self.wild {
            (scope(), any::<String>())
                .prop_map(|(scope, key)| Field::Attribute { scope, key })
                .boxed()
        } else {
            proptest::sample::select(self.attributes.clone())
                .prop_map(|(scope, key)| Field::Attribute { scope, key })
                .boxed()
        }
    }

    fn string(&self) -> BoxedStrategy<String> {
        if self.wild {
            any::<String>().boxed()
        } else {
            proptest::sample::select(self.strings.clone()).boxed()
        }
    }

    fn number(&self) -> BoxedStrategy<Value> {
        if self.wild {
            prop_oneof![
                any::<i64>().prop_map(Value::Int),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::Float),
                any::<u64>().prop_map(Value::Duration),
            ]
            .boxed()
        } else {
            prop_oneof![
                (-3i64..600).prop_map(Value::Int),
                (-2.0f64..3.0).prop_map(Value::Float),
                (0u64..300).prop_map(Value::Duration),
            ]
            .boxed()
        }
    }

    pub fn num_expr(&self) -> BoxedStrategy<FieldExpr> {
        let leaf = prop_oneof![
            self.number().prop_map(FieldExpr::Literal),
            prop_oneof![
                Just(Field::Duration),
                Just(Field::TraceDuration),
                Just(Field::ChildCount),
                Just(Field::NestedSetLeft),
                Just(Field::NestedSetParent),
            ]
            .prop_map(FieldExpr::Field),
            self.attribute().prop_map(FieldExpr::Field),
        ];
        leaf.prop_recursive(self.depth.min(3), 8, 2, |inner| {
            prop_oneof![
                (arith_op(), inner.clone(), inner.clone()).prop_map(|(op, l, r)| {
                    FieldExpr::Binary {
                        op,
                        lhs: Box::new(l),
                        rhs: Box::new(r),
                    }
                }),
                inner.prop_map(|x| FieldExpr::Neg(Box::new(x))),
            ]
        })
        .boxed()
    }

    pub fn str_expr(&self) -> BoxedStrategy<FieldExpr> {
        prop_oneof![
            self.string()
                .prop_map(|s| FieldExpr::Literal(Value::String(s))),
            prop_oneof![
                Just(Field::Name),
                Just(Field::StatusMessage),
                Just(Field::RootName),
                Just(Field::RootServiceName),
                Just(Field::SpanId),
                Just(Field::EventName),
                Just(Field::InstrumentationName),
            ]
            .prop_map(FieldExpr::Field),
            self.attribute().prop_map(FieldExpr::Field),
        ]
        .boxed()
    }

    pub fn bool_leaf(&self) -> BoxedStrategy<FieldExpr> {
        let bin = |op: BinaryOp, l: FieldExpr, r: FieldExpr| FieldExpr::Binary {
            op,
            lhs: Box::new(l),
            rhs: Box::new(r),
        };
        let eq_ne = prop_oneof![Just(BinaryOp::Eq), Just(BinaryOp::Ne)];
        let pairs = proptest::sample::select(self.pairs.clone())
            .prop_flat_map(|(f, vs)| (Just(f), proptest::sample::select(vs)));
        prop_oneof![
            8 => (compare_op(), pairs, any::<bool>()).prop_map(move |(op, (f, v), flip)| {
                // Statuses, kinds and booleans only compare with = and !=.
                let op = match (&v, op) {
                    (Value::Status(_) | Value::Kind(_) | Value::Bool(_), BinaryOp::Eq | BinaryOp::Lt | BinaryOp::Le) => BinaryOp::Eq,
                    (Value::Status(_) | Value::Kind(_) | Value::Bool(_), _) => BinaryOp::Ne,
                    _ => op,
                };
                let (f, v) = (FieldExpr::Field(f), FieldExpr::Literal(v));
                if flip { bin(op, v, f) } else { bin(op, f, v) }
            }),
            3 => (compare_op(), self.num_expr(), self.num_expr()).prop_map(move |(op, l, r)| bin(op, l, r)),
            3 => (compare_op(), self.str_expr(), self.str_expr()).prop_map(move |(op, l, r)| bin(op, l, r)),
            1 => (eq_ne.clone(), status(), any::<bool>()).prop_map(move |(op, s, flip)| {
                let (f, v) = (FieldExpr::Field(Field::Status), FieldExpr::Literal(Value::Status(s)));
                if flip { bin(op, v, f) } else { bin(op, f, v) }
            }),
            1 => (eq_ne.clone(), kind()).prop_map(move |(op, k)| {
                bin(op, FieldExpr::Field(Field::Kind), FieldExpr::Literal(Value::Kind(k)))
            }),
            1 => (eq_ne, self.attribute()).prop_map(move |(op, f)| {
                bin(op, FieldExpr::Field(f), FieldExpr::Literal(Value::Nil))
            }),
            2 => (self.str_expr(), any::<bool>(), proptest::sample::select(self.patterns.clone()))
                .prop_map(|(lhs, negated, p)| FieldExpr::Match {
                    lhs: Box::new(lhs),
                    negated,
                    pattern: Pattern::new(p).expect("valid pattern"),
                }),
            1 => any::<bool>().prop_map(|b| FieldExpr::Literal(Value::Bool(b))),
            1 => self.attribute().prop_map(FieldExpr::Field),
        ]
        .boxed()
    }

    pub fn bool_expr(&self) -> BoxedStrategy<FieldExpr> {
        self.bool_leaf()
            .prop_recursive(self.depth, 12, 3, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 2..4).prop_map(FieldExpr::And),
                    proptest::collection::vec(inner.clone(), 2..4).prop_map(FieldExpr::Or),
                    inner.prop_map(|x| FieldExpr::Not(Box::new(x))),
                ]
            })
            .boxed()
    }

    pub fn filter(&self) -> BoxedStrategy<SpansetExpr> {
        prop_oneof![
            1 => Just(SpansetExpr::Filter(None)),
            4 => self.bool_expr().prop_map(|e| SpansetExpr::Filter(Some(e))),
        ]
        .boxed()
    }

    pub fn stage(&self, spanset: BoxedStrategy<SpansetExpr>) -> BoxedStrategy<Stage> {
        let agg = prop_oneof![
            Just(Aggregate::Count),
            self.num_expr().prop_map(Aggregate::Avg),
            self.num_expr().prop_map(Aggregate::Min),
            self.num_expr().prop_map(Aggregate::Max),
            self.num_expr().prop_map(Aggregate::Sum),
        ];
        let cmp = prop_oneof![
            Just(CompareOp::Eq),
            Just(CompareOp::Ne),
            Just(CompareOp::Lt),
            Just(CompareOp::Le),
            Just(CompareOp::Gt),
            Just(CompareOp::Ge),
        ];
        prop_oneof![
            4 => spanset.prop_map(Stage::Spanset),
            2 => (agg, cmp, self.number()).prop_map(|(aggregate, op, value)| {
                Stage::Aggregate(AggregateFilter { aggregate, op, value })
            }),
            1 => proptest::collection::vec(self.attribute(), 1..3).prop_map(Stage::Select),
            1 => prop_oneof![self.str_expr(), self.num_expr()].prop_map(Stage::By),
            1 => Just(Stage::Coalesce),
        ]
        .boxed()
    }

    pub fn spanset_expr(&self) -> BoxedStrategy<SpansetExpr> {
        let this = self.clone();
        self.filter()
            .prop_recursive(self.depth, 8, 2, move |inner| {
                let stage = this.stage(inner.clone());
                prop_oneof![
                    3 => (spanset_op(), inner.clone(), inner.clone()).prop_map(|(op, l, r)| {
                        SpansetExpr::Binary {
                            op,
                            lhs: Box::new(l),
                            rhs: Box::new(r),
                        }
                    }),
                    1 => (inner, proptest::collection::vec(stage, 1..3)).prop_map(|(first, rest)| {
                        let mut stages = vec![Stage::Spanset(first)];
                        stages.extend(rest);
                        SpansetExpr::Group(Box::new(Pipeline { stages }))
                    }),
                ]
            })
            .boxed()
    }

    pub fn pipeline(&self) -> BoxedStrategy<Pipeline> {
        let first = self.spanset_expr().prop_map(Stage::Spanset);
        let rest = proptest::collection::vec(self.stage(self.spanset_expr()), 0..3);
        (first, rest)
            .prop_map(|(first, rest)| {
                let mut stages = vec![first];
                stages.extend(rest);
                Pipeline { stages }
            })
            .boxed()
    }
}
