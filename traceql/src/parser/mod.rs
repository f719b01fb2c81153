//! Turns tokens into the typed syntax tree, with positioned errors. Static type errors
//! (`{ status = 3 }`, `{ "a" }`) are rejected here, so evaluation never sees them; limits on
//! query length, nesting and tree height keep hostile input from exhausting the stack.

use crate::ast::{
    Aggregate, AggregateFilter, AttrScope, BinaryOp, CompareOp, Field, FieldExpr, Pattern,
    Pipeline, Query, SpansetExpr, SpansetOp, Stage,
};
use crate::error::{Error, Pos};
use crate::lexer::{Tok, Token, lex};
use crate::value::{Value, keyword_value};

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Deepest nesting of parentheses, braces and unary operators accepted.
pub const MAX_NESTING: usize = 64;
/// Tallest syntax tree accepted (chains of `&&` and `||` count as one level).
const MAX_HEIGHT: usize = 256;

/// Metrics and other functions of Tempo's TraceQL that Skein does not implement.
const UNSUPPORTED_FUNCTIONS: [&str; 11] = [
    "rate",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "sum_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
    "topk",
    "bottomk",
];

/// Parses a TraceQL query.
pub fn parse(src: &str) -> Result<Query, Error> {
    if src.len() > MAX_QUERY_BYTES {
        return Err(Error::parse(
            Pos::START,
            format!("query longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let mut p = Parser {
        toks: lex(src)?,
        i: 0,
        depth: 0,
    };
    let (pipeline, _) = p.pipeline()?;
    let t = p.peek();
    match &t.tok {
        Tok::Eof => Ok(Query { pipeline }),
        Tok::Ident(w) if w == "with" => Err(Error::unsupported(t.pos, "with() hints")),
        _ => Err(p.unexpected("'|' or end of query")),
    }
}

/// Static types, for rejecting nonsense before evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Bool,
    Num,
    Str,
    Status,
    Kind,
    Nil,
    /// An attribute: known only per span.
    Any,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "boolean",
            Ty::Num => "number",
            Ty::Str => "string",
            Ty::Status => "status",
            Ty::Kind => "kind",
            Ty::Nil => "nil",
            Ty::Any => "attribute",
        }
    }

    fn of_value(v: &Value) -> Ty {
        match v {
            Value::Nil => Ty::Nil,
            Value::Bool(_) => Ty::Bool,
            Value::Int(_) | Value::Float(_) | Value::Duration(_) => Ty::Num,
            Value::String(_) => Ty::Str,
            Value::Status(_) => Ty::Status,
            Value::Kind(_) => Ty::Kind,
        }
    }

    fn of_field(f: &Field) -> Ty {
        match f {
            Field::Status => Ty::Status,
            Field::Kind => Ty::Kind,
            Field::Duration
            | Field::ChildCount
            | Field::TraceDuration
            | Field::NestedSetLeft
            | Field::NestedSetRight
            | Field::NestedSetParent => Ty::Num,
            Field::Attribute { .. } => Ty::Any,
            _ => Ty::Str,
        }
    }

    fn is(self, want: Ty) -> bool {
        self == want || self == Ty::Any
    }
}

/// A field expression with its static type and tree height.
struct Typed {
    expr: FieldExpr,
    ty: Ty,
    height: usize,
    /// True while `expr` is an `&&`/`||` chain that later operands of the same kind extend.
    chain: bool,
}

impl Typed {
    fn leaf(expr: FieldExpr, ty: Ty) -> Typed {
        Typed {
            expr,
            ty,
            height: 1,
            chain: false,
        }
    }
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // `lex` always ends with `Eof`, and nothing advances past it.
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.i += 1;
        }
        t
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if &self.peek().tok == tok {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<Token, Error> {
        if &self.peek().tok == tok {
            Ok(self.bump())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn unexpected(&self, expected: &str) -> Error {
        let t = self.peek();
        Error::parse(
            t.pos,
            format!("unexpected {}, expected {expected}", describe(&t.tok)),
        )
    }

    fn enter(&mut self, pos: Pos) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(Error::parse(
                pos,
                format!("nesting deeper than {MAX_NESTING}"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn check_height(height: usize, pos: Pos) -> Result<usize, Error> {
        if height > MAX_HEIGHT {
            return Err(Error::parse(
                pos,
                format!("expression deeper than {MAX_HEIGHT} levels"),
            ));
        }
        Ok(height)
    }

    // ---- pipelines and spanset expressions ----

    fn pipeline(&mut self) -> Result<(Pipeline, usize), Error> {
        let mut stages = Vec::new();
        let mut height = 0;
        loop {
            let (stage, h) = self.stage()?;
            height = height.max(h);
            stages.push(stage);
            if !self.eat(&Tok::Pipe) {
                break;
            }
        }
        Ok((Pipeline { stages }, height + 1))
    }

    fn stage(&mut self) -> Result<(Stage, usize), Error> {
        let t = self.peek().clone();
        if let Tok::Ident(word) = &t.tok {
            match word.as_str() {
                "count" | "avg" | "min" | "max" | "sum" => return self.aggregate_filter(),
                "select" => return self.select(),
                "by" => {
                    self.bump();
                    self.expect(&Tok::LParen, "'(' after by")?;
                    self.enter(t.pos)?;
                    let arg = self.field_expr(1)?;
                    self.leave();
                    if self.peek().tok == Tok::Comma {
                        return Err(Error::parse(self.peek().pos, "by() takes one expression"));
                    }
                    self.expect(&Tok::RParen, "')' after the by() expression")?;
                    return Ok((Stage::By(arg.expr), arg.height + 1));
                }
                "coalesce" => {
                    self.bump();
                    self.expect(&Tok::LParen, "'(' after coalesce")?;
                    self.expect(&Tok::RParen, "')': coalesce() takes no arguments")?;
                    return Ok((Stage::Coalesce, 1));
                }
                "with" => return Err(Error::unsupported(t.pos, "with() hints")),
                w if UNSUPPORTED_FUNCTIONS.contains(&w) => {
                    return Err(Error::unsupported(t.pos, format!("{w}()")));
                }
                _ => {}
            }
        }
        let (expr, h) = self.spanset_expr(1)?;
        Ok((Stage::Spanset(expr), h))
    }

    fn spanset_expr(&mut self, min_prec: u8) -> Result<(SpansetExpr, usize), Error> {
        let (mut lhs, mut height) = self.spanset_atom()?;
        while let Some((op, prec)) = spanset_op(&self.peek().tok) {
            if prec < min_prec {
                break;
            }
            let pos = self.bump().pos;
            let (rhs, rh) = self.spanset_expr(prec + 1)?;
            height = Self::check_height(height.max(rh) + 1, pos)?;
            lhs = SpansetExpr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok((lhs, height))
    }

    fn spanset_atom(&mut self) -> Result<(SpansetExpr, usize), Error> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::LBrace => {
                self.bump();
                if self.eat(&Tok::RBrace) {
                    return Ok((SpansetExpr::Filter(None), 1));
                }
                self.enter(t.pos)?;
                let body_pos = self.peek().pos;
                let body = self.field_expr(1)?;
                self.leave();
                if self.peek().tok != Tok::RBrace {
                    return Err(self.unexpected("an operator or '}'"));
                }
                self.bump();
                if !body.ty.is(Ty::Bool) {
                    return Err(Error::parse(
                        body_pos,
                        format!(
                            "a spanset filter needs a boolean expression, not a {}",
                            body.ty.name()
                        ),
                    ));
                }
                Ok((SpansetExpr::Filter(Some(body.expr)), body.height + 1))
            }
            Tok::LParen => {
                self.bump();
                self.enter(t.pos)?;
                let (mut pipeline, h) = self.pipeline()?;
                self.leave();
                self.expect(&Tok::RParen, "'|', an operator or ')'")?;
                if pipeline.stages.len() == 1
                    && matches!(pipeline.stages.first(), Some(Stage::Spanset(_)))
                    && let Some(Stage::Spanset(inner)) = pipeline.stages.pop()
                {
                    return Ok((inner, h));
                }
                Ok((SpansetExpr::Group(Box::new(pipeline)), h + 1))
            }
            Tok::Ident(w)
                if matches!(
                    w.as_str(),
                    "count" | "avg" | "min" | "max" | "sum" | "select" | "by" | "coalesce"
                ) =>
            {
                Err(Error::parse(
                    t.pos,
                    format!("{w}() must be a pipeline stage, after '|'"),
                ))
            }
            _ => Err(self.unexpected("a spanset filter such as '{ }'")),
        }
    }

    fn aggregate_filter(&mut self) -> Result<(Stage, usize), Error> {
        let name_tok = self.bump();
        let Tok::Ident(name) = &name_tok.tok else {
            return Err(Error::parse(name_tok.pos, "expected an aggregate"));
        };
        self.expect(&Tok::LParen, "'('")?;
        let (aggregate, height) = if name == "count" {
            self.expect(&Tok::RParen, "')': count() takes no arguments")?;
            (Aggregate::Count, 1)
        } else {
            self.enter(name_tok.pos)?;
            let arg_pos = self.peek().pos;
            let arg = self.field_expr(1)?;
            self.leave();
            if !arg.ty.is(Ty::Num) {
                return Err(Error::parse(
                    arg_pos,
                    format!("{name}() needs a numeric argument, not a {}", arg.ty.name()),
                ));
            }
            self.expect(&Tok::RParen, "')'")?;
            let a = match name.as_str() {
                "avg" => Aggregate::Avg(arg.expr),
                "min" => Aggregate::Min(arg.expr),
                "max" => Aggregate::Max(arg.expr),
                _ => Aggregate::Sum(arg.expr),
            };
            (a, arg.height + 1)
        };
        let op = match self.peek().tok {
            Tok::Eq => CompareOp::Eq,
            Tok::Ne => CompareOp::Ne,
            Tok::Lt => CompareOp::Lt,
            Tok::Le => CompareOp::Le,
            Tok::Gt => CompareOp::Gt,
            Tok::Ge => CompareOp::Ge,
            _ => return Err(self.unexpected(&format!("a comparison after {name}()"))),
        };
        self.bump();
        let value = self.number_literal()?;
        Ok((
            Stage::Aggregate(AggregateFilter {
                aggregate,
                op,
                value,
            }),
            height + 1,
        ))
    }

    /// A number or duration, with an optional minus sign on numbers.
    fn number_literal(&mut self) -> Result<Value, Error> {
        let negative = self.eat(&Tok::Minus);
        let t = self.peek().clone();
        let v = match t.tok {
            Tok::Int(u) => int_value(u, negative, t.pos)?,
            Tok::Float(f) => Value::Float(if negative { -f } else { f }),
            Tok::Duration(d) if !negative => Value::Duration(d),
            _ => return Err(self.unexpected("a number or a duration")),
        };
        self.bump();
        Ok(v)
    }

    fn select(&mut self) -> Result<(Stage, usize), Error> {
        self.bump();
        self.expect(&Tok::LParen, "'(' after select")?;
        let mut fields = Vec::new();
        loop {
            let pos = self.peek().pos;
            match self.primary()?.expr {
                FieldExpr::Field(f) => fields.push(f),
                _ => {
                    return Err(Error::parse(
                        pos,
                        "select() takes attributes and intrinsics",
                    ));
                }
            }
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect(&Tok::RParen, "',' or ')'")?;
        Ok((Stage::Select(fields), 2))
    }

    // ---- field expressions ----

    fn field_expr(&mut self, min_prec: u8) -> Result<Typed, Error> {
        let mut lhs = self.prefix()?;
        while let Some(prec) = field_prec(&self.peek().tok) {
            if prec < min_prec {
                break;
            }
            let op_tok = self.bump();
            let pos = op_tok.pos;
            lhs = match op_tok.tok {
                Tok::And | Tok::Or => {
                    let rhs = self.field_expr(prec + 1)?;
                    for (side, t) in [(&lhs, "left"), (&rhs, "right")] {
                        if !side.ty.is(Ty::Bool) {
                            return Err(Error::parse(
                                pos,
                                format!(
                                    "the {t} operand of {} is a {}, not a boolean",
                                    describe(&op_tok.tok),
                                    side.ty.name()
                                ),
                            ));
                        }
                    }
                    join_logical(lhs, rhs, op_tok.tok == Tok::And, pos)?
                }
                Tok::Re | Tok::NRe => {
                    let t = self.peek().clone();
                    let Tok::Str(src) = &t.tok else {
                        return Err(self.unexpected("a string literal with the regular expression"));
                    };
                    let pattern = Pattern::compile(src, t.pos)?;
                    self.bump();
                    if !lhs.ty.is(Ty::Str) {
                        return Err(Error::parse(
                            pos,
                            format!("regular expressions match strings, not a {}", lhs.ty.name()),
                        ));
                    }
                    Typed {
                        height: Self::check_height(lhs.height + 1, pos)?,
                        expr: FieldExpr::Match {
                            lhs: Box::new(lhs.expr),
                            negated: op_tok.tok == Tok::NRe,
                            pattern,
                        },
                        ty: Ty::Bool,
                        chain: false,
                    }
                }
                tok => {
                    let op = binary_op(&tok).ok_or_else(|| {
                        Error::parse(pos, format!("unexpected {}", describe(&tok)))
                    })?;
                    let rhs = if op == BinaryOp::Pow {
                        self.enter(pos)?;
                        let r = self.field_expr(prec)?;
                        self.leave();
                        r
                    } else {
                        self.field_expr(prec + 1)?
                    };
                    let ty = check_binary(op, lhs.ty, rhs.ty, pos)?;
                    Typed {
                        height: Self::check_height(lhs.height.max(rhs.height) + 1, pos)?,
                        expr: FieldExpr::Binary {
                            op,
                            lhs: Box::new(lhs.expr),
                            rhs: Box::new(rhs.expr),
                        },
                        ty,
                        chain: false,
                    }
                }
            };
        }
        Ok(lhs)
    }

    fn prefix(&mut self) -> Result<Typed, Error> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Not => {
                self.bump();
                self.enter(t.pos)?;
                let operand = self.field_expr(5)?;
                self.leave();
                if !operand.ty.is(Ty::Bool) {
                    return Err(Error::parse(
                        t.pos,
                        format!("! needs a boolean operand, not a {}", operand.ty.name()),
                    ));
                }
                Ok(Typed {
                    height: Self::check_height(operand.height + 1, t.pos)?,
                    expr: FieldExpr::Not(Box::new(operand.expr)),
                    ty: Ty::Bool,
                    chain: false,
                })
            }
            Tok::Minus => {
                self.bump();
                let next = self.peek().clone();
                match next.tok {
                    Tok::Int(u) => {
                        self.bump();
                        Ok(Typed::leaf(
                            FieldExpr::Literal(int_value(u, true, next.pos)?),
                            Ty::Num,
                        ))
                    }
                    Tok::Float(f) => {
                        self.bump();
                        Ok(Typed::leaf(FieldExpr::Literal(Value::Float(-f)), Ty::Num))
                    }
                    _ => {
                        self.enter(t.pos)?;
                        let operand = self.field_expr(8)?;
                        self.leave();
                        if !operand.ty.is(Ty::Num) {
                            return Err(Error::parse(
                                t.pos,
                                format!("- needs a numeric operand, not a {}", operand.ty.name()),
                            ));
                        }
                        Ok(Typed {
                            height: Self::check_height(operand.height + 1, t.pos)?,
                            expr: FieldExpr::Neg(Box::new(operand.expr)),
                            ty: Ty::Num,
                            chain: false,
                        })
                    }
                }
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Typed, Error> {
        let t = self.peek().clone();
        let out = match &t.tok {
            Tok::Str(s) => Typed::leaf(FieldExpr::Literal(Value::String(s.clone())), Ty::Str),
            Tok::Int(u) => Typed::leaf(FieldExpr::Literal(int_value(*u, false, t.pos)?), Ty::Num),
            Tok::Float(f) => Typed::leaf(FieldExpr::Literal(Value::Float(*f)), Ty::Num),
            Tok::Duration(d) => Typed::leaf(FieldExpr::Literal(Value::Duration(*d)), Ty::Num),
            Tok::Attr(scope, key) => Typed::leaf(
                FieldExpr::Field(Field::Attribute {
                    scope: *scope,
                    key: key.clone(),
                }),
                Ty::Any,
            ),
            Tok::Scoped(scope, name) => {
                let field = scoped_intrinsic(scope, name, t.pos)?;
                let ty = Ty::of_field(&field);
                Typed::leaf(FieldExpr::Field(field), ty)
            }
            Tok::Ident(w) => {
                if let Some(v) = keyword_value(w) {
                    let ty = Ty::of_value(&v);
                    Typed::leaf(FieldExpr::Literal(v), ty)
                } else if let Some(field) = plain_intrinsic(w) {
                    let ty = Ty::of_field(&field);
                    Typed::leaf(FieldExpr::Field(field), ty)
                } else if UNSUPPORTED_FUNCTIONS.contains(&w.as_str()) {
                    return Err(Error::unsupported(t.pos, format!("{w}()")));
                } else {
                    return Err(Error::parse(t.pos, format!("unknown identifier {w}")));
                }
            }
            Tok::LParen => {
                self.bump();
                self.enter(t.pos)?;
                let inner = self.field_expr(1)?;
                self.leave();
                self.expect(&Tok::RParen, "an operator or ')'")?;
                return Ok(Typed {
                    chain: false,
                    ..inner
                });
            }
            Tok::LBrace => {
                return Err(Error::parse(t.pos, "spanset filters cannot be nested"));
            }
            _ => return Err(self.unexpected("a value")),
        };
        self.bump();
        Ok(out)
    }
}

fn join_logical(lhs: Typed, rhs: Typed, and: bool, pos: Pos) -> Result<Typed, Error> {
    let (expr, height) = match (lhs.expr, lhs.chain) {
        (FieldExpr::And(mut xs), true) if and => {
            xs.push(rhs.expr);
            (FieldExpr::And(xs), lhs.height.max(rhs.height + 1))
        }
        (FieldExpr::Or(mut xs), true) if !and => {
            xs.push(rhs.expr);
            (FieldExpr::Or(xs), lhs.height.max(rhs.height + 1))
        }
        (l, _) => {
            let height = lhs.height.max(rhs.height) + 1;
            if and {
                (FieldExpr::And(vec![l, rhs.expr]), height)
            } else {
                (FieldExpr::Or(vec![l, rhs.expr]), height)
            }
        }
    };
    Ok(Typed {
        expr,
        ty: Ty::Bool,
        height: Parser::check_height(height, pos)?,
        chain: true,
    })
}

fn check_binary(op: BinaryOp, l: Ty, r: Ty, pos: Pos) -> Result<Ty, Error> {
    if op.comparison().is_none() {
        for t in [l, r] {
            if !t.is(Ty::Num) {
                return Err(Error::parse(
                    pos,
                    format!("arithmetic needs numbers, not a {}", t.name()),
                ));
            }
        }
        return Ok(Ty::Num);
    }
    let ordering = !matches!(op, BinaryOp::Eq | BinaryOp::Ne);
    if ordering {
        for t in [l, r] {
            if matches!(t, Ty::Bool | Ty::Status | Ty::Kind | Ty::Nil) {
                return Err(Error::parse(
                    pos,
                    format!("{} cannot order {} values", op.symbol(), t.name()),
                ));
            }
        }
    }
    let compatible = l == Ty::Any || r == Ty::Any || l == Ty::Nil || r == Ty::Nil || l == r;
    if !compatible {
        return Err(Error::parse(
            pos,
            format!("cannot compare a {} with a {}", l.name(), r.name()),
        ));
    }
    Ok(Ty::Bool)
}

fn int_value(u: u64, negative: bool, pos: Pos) -> Result<Value, Error> {
    let v = if negative {
        0i128 - i128::from(u)
    } else {
        i128::from(u)
    };
    i64::try_from(v)
        .map(Value::Int)
        .map_err(|_| Error::parse(pos, "integer out of range"))
}

fn plain_intrinsic(word: &str) -> Option<Field> {
    Some(match word {
        "name" => Field::Name,
        "status" => Field::Status,
        "statusMessage" => Field::StatusMessage,
        "kind" => Field::Kind,
        "duration" => Field::Duration,
        "traceDuration" => Field::TraceDuration,
        "rootName" => Field::RootName,
        "rootServiceName" => Field::RootServiceName,
        "nestedSetLeft" => Field::NestedSetLeft,
        "nestedSetRight" => Field::NestedSetRight,
        "nestedSetParent" => Field::NestedSetParent,
        _ => return None,
    })
}

fn scoped_intrinsic(scope: &str, name: &str, pos: Pos) -> Result<Field, Error> {
    Ok(match (scope, name) {
        ("span", "name") => Field::Name,
        ("span", "status") => Field::Status,
        ("span", "statusMessage") => Field::StatusMessage,
        ("span", "kind") => Field::Kind,
        ("span", "duration") => Field::Duration,
        ("span", "childCount") => Field::ChildCount,
        ("span", "id") => Field::SpanId,
        ("span", "parentID") => Field::ParentId,
        ("trace", "id") => Field::TraceId,
        ("trace", "duration") => Field::TraceDuration,
        ("trace", "rootName") => Field::RootName,
        ("trace", "rootService") => Field::RootServiceName,
        ("event", "name") => Field::EventName,
        ("link", "traceID") => Field::LinkTraceId,
        ("link", "spanID") => Field::LinkSpanId,
        ("instrumentation", "name") => Field::InstrumentationName,
        ("instrumentation", "version") => Field::InstrumentationVersion,
        ("event", "timeSinceStart") => {
            return Err(Error::unsupported(pos, "event:timeSinceStart"));
        }
        _ => {
            return Err(Error::parse(
                pos,
                format!("unknown intrinsic {scope}:{name}"),
            ));
        }
    })
}

fn spanset_op(tok: &Tok) -> Option<(SpansetOp, u8)> {
    Some(match tok {
        Tok::And => (SpansetOp::And, 1),
        Tok::Or => (SpansetOp::Or, 1),
        Tok::Desc => (SpansetOp::Descendant, 2),
        Tok::Gt => (SpansetOp::Child, 2),
        Tok::Tilde => (SpansetOp::Sibling, 2),
        Tok::Anc => (SpansetOp::Ancestor, 2),
        Tok::Lt => (SpansetOp::Parent, 2),
        Tok::NotDesc => (SpansetOp::NotDescendant, 2),
        Tok::NotChild => (SpansetOp::NotChild, 2),
        Tok::NRe => (SpansetOp::NotSibling, 2),
        Tok::NotAnc => (SpansetOp::NotAncestor, 2),
        Tok::NotParent => (SpansetOp::NotParent, 2),
        Tok::UnionDesc => (SpansetOp::UnionDescendant, 2),
        Tok::UnionChild => (SpansetOp::UnionChild, 2),
        Tok::UnionSibl => (SpansetOp::UnionSibling, 2),
        Tok::UnionAnc => (SpansetOp::UnionAncestor, 2),
        Tok::UnionParent => (SpansetOp::UnionParent, 2),
        _ => return None,
    })
}

/// Binding power of infix operators in field expressions (see `print.rs` for the same table).
fn field_prec(tok: &Tok) -> Option<u8> {
    Some(match tok {
        Tok::And | Tok::Or => 1,
        Tok::Eq | Tok::Ne | Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge | Tok::Re | Tok::NRe => 2,
        Tok::Plus | Tok::Minus => 3,
        Tok::Star | Tok::Slash | Tok::Percent => 5,
        Tok::Caret => 6,
        _ => return None,
    })
}

fn binary_op(tok: &Tok) -> Option<BinaryOp> {
    Some(match tok {
        Tok::Eq => BinaryOp::Eq,
        Tok::Ne => BinaryOp::Ne,
        Tok::Lt => BinaryOp::Lt,
        Tok::Le => BinaryOp::Le,
        Tok::Gt => BinaryOp::Gt,
        Tok::Ge => BinaryOp::Ge,
        Tok::Plus => BinaryOp::Add,
        Tok::Minus => BinaryOp::Sub,
        Tok::Star => BinaryOp::Mul,
        Tok::Slash => BinaryOp::Div,
        Tok::Percent => BinaryOp::Mod,
        Tok::Caret => BinaryOp::Pow,
        _ => return None,
    })
}

fn describe(tok: &Tok) -> String {
    let s = match tok {
        Tok::LBrace => "'{'",
        Tok::RBrace => "'}'",
        Tok::LParen => "'('",
        Tok::RParen => "')'",
        Tok::Comma => "','",
        Tok::Eq => "'='",
        Tok::Ne => "'!='",
        Tok::Re => "'=~'",
        Tok::NRe => "'!~'",
        Tok::Gt => "'>'",
        Tok::Ge => "'>='",
        Tok::Lt => "'<'",
        Tok::Le => "'<='",
        Tok::Desc => "'>>'",
        Tok::Anc => "'<<'",
        Tok::Tilde => "'~'",
        Tok::NotChild => "'!>'",
        Tok::NotParent => "'!<'",
        Tok::NotDesc => "'!>>'",
        Tok::NotAnc => "'!<<'",
        Tok::UnionSibl => "'&~'",
        Tok::UnionChild => "'&>'",
        Tok::UnionParent => "'&<'",
        Tok::UnionDesc => "'&>>'",
        Tok::UnionAnc => "'&<<'",
        Tok::And => "'&&'",
        Tok::Or => "'||'",
        Tok::Not => "'!'",
        Tok::Pipe => "'|'",
        Tok::Plus => "'+'",
        Tok::Minus => "'-'",
        Tok::Star => "'*'",
        Tok::Slash => "'/'",
        Tok::Percent => "'%'",
        Tok::Caret => "'^'",
        Tok::Str(_) => "a string",
        Tok::Int(_) | Tok::Float(_) => "a number",
        Tok::Duration(_) => "a duration",
        Tok::Ident(w) => return format!("'{w}'"),
        Tok::Attr(..) => "an attribute",
        Tok::Scoped(s, n) => return format!("'{s}:{n}'"),
        Tok::Eof => "end of query",
    };
    s.to_owned()
}

/// The scope prefixes, for printing.
pub(crate) fn scope_prefix(scope: Option<AttrScope>) -> &'static str {
    match scope {
        None => ".",
        Some(AttrScope::Span) => "span.",
        Some(AttrScope::Resource) => "resource.",
        Some(AttrScope::Event) => "event.",
        Some(AttrScope::Link) => "link.",
        Some(AttrScope::Instrumentation) => "instrumentation.",
    }
}

#[cfg(test)]
mod tests;
