//! The typed syntax tree of a TraceQL query. It is public so that callers can inspect a
//! query (which fields it reads, whether it is a plain filter) without re-parsing text, and
//! build queries in tests; `Display` prints any tree back as canonical TraceQL.

use std::fmt;

use regex::Regex;

use crate::error::{Error, Pos};
use crate::value::Value;

/// A parsed TraceQL query: a pipeline of stages evaluated on one trace at a time.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// The stages, first to last.
    pub pipeline: Pipeline,
}

/// Stages separated by `|`. Each stage takes the spansets the previous one produced (the
/// first stage takes one spanset holding every span of the trace).
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    /// At least one stage.
    pub stages: Vec<Stage>,
}

/// One stage of a pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// A spanset expression, evaluated on the spans of each input spanset: `{ status = error }`.
    Spanset(SpansetExpr),
    /// An aggregate compared with a value, per spanset: `count() > 3`.
    Aggregate(AggregateFilter),
    /// `select(field, …)`: fields to show with matched spans; filters nothing.
    Select(Vec<Field>),
    /// `by(expr)`: splits each spanset into one per distinct value of `expr`.
    By(FieldExpr),
    /// `coalesce()`: merges all spansets into one.
    Coalesce,
}

/// An expression over spansets.
#[derive(Clone, Debug, PartialEq)]
pub enum SpansetExpr {
    /// `{ expr }`, or `{ }` (`None`) which selects every span.
    Filter(Option<FieldExpr>),
    /// Two spanset expressions joined by a spanset operator.
    Binary {
        /// The operator.
        op: SpansetOp,
        /// Left side.
        lhs: Box<SpansetExpr>,
        /// Right side.
        rhs: Box<SpansetExpr>,
    },
    /// A parenthesised pipeline of more than one stage (or one non-spanset stage):
    /// `({ } | count() > 2)`.
    Group(Box<Pipeline>),
}

/// Operators between spansets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpansetOp {
    /// `&&`: both sides matched; the union of their spans.
    And,
    /// `||`: either side matched; the union of their spans.
    Or,
    /// `>>`: right spans with an ancestor among the left spans.
    Descendant,
    /// `>`: right spans whose parent is a left span.
    Child,
    /// `~`: right spans with a sibling (same parent, not itself) among the left spans.
    Sibling,
    /// `<<`: right spans that are an ancestor of a left span.
    Ancestor,
    /// `<`: right spans that are the parent of a left span.
    Parent,
    /// `!>>`: right spans without an ancestor among the left spans.
    NotDescendant,
    /// `!>`: right spans whose parent is not a left span.
    NotChild,
    /// `!~`: right spans without a sibling among the left spans.
    NotSibling,
    /// `!<<`: right spans that are no ancestor of a left span.
    NotAncestor,
    /// `!<`: right spans that are not the parent of a left span.
    NotParent,
    /// `&>>`: like `>>`, plus the left spans that have a right descendant.
    UnionDescendant,
    /// `&>`: like `>`, plus the left spans that are the parent of a right span.
    UnionChild,
    /// `&~`: like `~`, plus the left spans with a right sibling.
    UnionSibling,
    /// `&<<`: like `<<`, plus the left spans that have a right ancestor.
    UnionAncestor,
    /// `&<`: like `<`, plus the left spans whose parent is a right span.
    UnionParent,
}

impl SpansetOp {
    /// The operator as written in TraceQL.
    pub fn symbol(self) -> &'static str {
        match self {
            SpansetOp::And => "&&",
            SpansetOp::Or => "||",
            SpansetOp::Descendant => ">>",
            SpansetOp::Child => ">",
            SpansetOp::Sibling => "~",
            SpansetOp::Ancestor => "<<",
            SpansetOp::Parent => "<",
            SpansetOp::NotDescendant => "!>>",
            SpansetOp::NotChild => "!>",
            SpansetOp::NotSibling => "!~",
            SpansetOp::NotAncestor => "!<<",
            SpansetOp::NotParent => "!<",
            SpansetOp::UnionDescendant => "&>>",
            SpansetOp::UnionChild => "&>",
            SpansetOp::UnionSibling => "&~",
            SpansetOp::UnionAncestor => "&<<",
            SpansetOp::UnionParent => "&<",
        }
    }
}

/// An aggregate over the spans of a spanset, compared with a value: `avg(duration) > 1s`.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateFilter {
    /// The aggregate.
    pub aggregate: Aggregate,
    /// The comparison (`Regex` and `NotRegex` never hold).
    pub op: CompareOp,
    /// The value compared with.
    pub value: Value,
}

/// Aggregate functions over a spanset.
#[derive(Clone, Debug, PartialEq)]
pub enum Aggregate {
    /// `count()`: the number of spans.
    Count,
    /// `avg(expr)`: the mean of the numeric values.
    Avg(FieldExpr),
    /// `min(expr)`: the smallest numeric value.
    Min(FieldExpr),
    /// `max(expr)`: the largest numeric value.
    Max(FieldExpr),
    /// `sum(expr)`: the sum of the numeric values.
    Sum(FieldExpr),
}

/// An expression evaluated on one span.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldExpr {
    /// A literal value.
    Literal(Value),
    /// An intrinsic or an attribute of the span.
    Field(Field),
    /// `a && b && …` (at least two operands).
    And(Vec<FieldExpr>),
    /// `a || b || …` (at least two operands).
    Or(Vec<FieldExpr>),
    /// `!a`.
    Not(Box<FieldExpr>),
    /// `-a`.
    Neg(Box<FieldExpr>),
    /// A comparison or an arithmetic operation.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        lhs: Box<FieldExpr>,
        /// Right operand.
        rhs: Box<FieldExpr>,
    },
    /// `lhs =~ "re"` or, when `negated`, `lhs !~ "re"`.
    Match {
        /// The value matched.
        lhs: Box<FieldExpr>,
        /// True for `!~`.
        negated: bool,
        /// The regular expression.
        pattern: Pattern,
    },
}

/// Binary operators on values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
}

impl BinaryOp {
    /// The operator as written in TraceQL.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Eq => "=",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
        }
    }

    /// The comparison this operator is, if it is one.
    pub fn comparison(self) -> Option<CompareOp> {
        Some(match self {
            BinaryOp::Eq => CompareOp::Eq,
            BinaryOp::Ne => CompareOp::Ne,
            BinaryOp::Lt => CompareOp::Lt,
            BinaryOp::Le => CompareOp::Le,
            BinaryOp::Gt => CompareOp::Gt,
            BinaryOp::Ge => CompareOp::Ge,
            _ => return None,
        })
    }
}

/// Comparison operators, as used by [`AggregateFilter`] and by index requirements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `=~`, fully anchored.
    Regex,
    /// `!~`, fully anchored.
    NotRegex,
}

impl CompareOp {
    /// The operator as written in TraceQL.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Regex => "=~",
            CompareOp::NotRegex => "!~",
        }
    }

    /// The operator with its operands swapped: `a < b` is `b > a`.
    pub fn flipped(self) -> CompareOp {
        match self {
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::Le => CompareOp::Ge,
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::Ge => CompareOp::Le,
            other => other,
        }
    }
}

/// Attribute scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttrScope {
    /// `span.`: the span's attributes.
    Span,
    /// `resource.`: the attributes of the resource the span was sent with.
    Resource,
    /// `event.`: the attributes of any of the span's events.
    Event,
    /// `link.`: the attributes of any of the span's links.
    Link,
    /// `instrumentation.`: the attributes of the instrumentation scope.
    Instrumentation,
}

impl AttrScope {
    /// The scope's prefix without the dot.
    pub fn name(self) -> &'static str {
        match self {
            AttrScope::Span => "span",
            AttrScope::Resource => "resource",
            AttrScope::Event => "event",
            AttrScope::Link => "link",
            AttrScope::Instrumentation => "instrumentation",
        }
    }
}

/// What an expression can read from a span: intrinsics and attributes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `name` / `span:name`.
    Name,
    /// `status` / `span:status`.
    Status,
    /// `statusMessage` / `span:statusMessage`.
    StatusMessage,
    /// `kind` / `span:kind`.
    Kind,
    /// `duration` / `span:duration`: end minus start.
    Duration,
    /// `span:childCount`: the number of direct children in the trace.
    ChildCount,
    /// `span:id`: lowercase hex.
    SpanId,
    /// `span:parentID`: lowercase hex; nil for a span without parent.
    ParentId,
    /// `trace:id`: lowercase hex.
    TraceId,
    /// `traceDuration` / `trace:duration`: latest end minus earliest start in the trace.
    TraceDuration,
    /// `rootName` / `trace:rootName`: the root span's name.
    RootName,
    /// `rootServiceName` / `trace:rootService`: the root span's service name.
    RootServiceName,
    /// `event:name`: the name of any event of the span.
    EventName,
    /// `link:traceID`: lowercase hex trace ID of any link of the span.
    LinkTraceId,
    /// `link:spanID`: lowercase hex span ID of any link of the span.
    LinkSpanId,
    /// `instrumentation:name`: the instrumentation scope's name.
    InstrumentationName,
    /// `instrumentation:version`: the instrumentation scope's version.
    InstrumentationVersion,
    /// `nestedSetLeft`: the span's left number in the trace's nested-set numbering.
    NestedSetLeft,
    /// `nestedSetRight`: the span's right number.
    NestedSetRight,
    /// `nestedSetParent`: the parent's left number, `-1` for a root.
    NestedSetParent,
    /// An attribute; `scope` `None` is the unscoped form `.key` (span, else resource).
    Attribute {
        /// The scope, or `None` for `.key`.
        scope: Option<AttrScope>,
        /// The key, without scope and unquoted.
        key: String,
    },
}

impl Field {
    /// True for fields whose value is the same on every span of a trace.
    pub fn is_trace_level(&self) -> bool {
        matches!(
            self,
            Field::TraceId | Field::TraceDuration | Field::RootName | Field::RootServiceName
        )
    }

    /// True for the intrinsics that hold hexadecimal IDs, compared case-insensitively.
    pub fn is_hex_id(&self) -> bool {
        matches!(
            self,
            Field::SpanId
                | Field::ParentId
                | Field::TraceId
                | Field::LinkTraceId
                | Field::LinkSpanId
        )
    }
}

/// A compiled regular expression, matched fully anchored. Equality compares source text.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

/// Compiled programs larger than this are rejected: the query text is untrusted.
const REGEX_SIZE_LIMIT: usize = 4 << 20;

impl Pattern {
    /// Compiles `source` (RE2 syntax) anchored at both ends, as `^(?:source)$`.
    pub fn new(source: &str) -> Result<Pattern, Error> {
        Pattern::compile(source, Pos::START)
    }

    pub(crate) fn compile(source: &str, pos: Pos) -> Result<Pattern, Error> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| Error::parse(pos, regex_message(&e)))?;
        Ok(Pattern {
            source: source.to_owned(),
            regex,
        })
    }

    /// The pattern as written in the query.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

fn regex_message(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(_) => "regular expression too large".into(),
        regex::Error::Syntax(text) => {
            let reason = text
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .unwrap_or("syntax error");
            format!("invalid regular expression: {reason}")
        }
        _ => "invalid regular expression".into(),
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_anchored() {
        let p = Pattern::new("ab|cd").unwrap();
        assert!(p.is_match("ab"));
        assert!(p.is_match("cd"));
        assert!(!p.is_match("xab"));
        assert!(!p.is_match("abx"));
        assert_eq!(p, Pattern::new("ab|cd").unwrap());
    }

    #[test]
    fn bad_patterns_are_errors() {
        let e = Pattern::new("(").unwrap_err();
        assert!(e.to_string().contains("invalid regular expression"), "{e}");
        let e = Pattern::new(r"\w{1000}\w{1000}\w{1000}").unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }
}
