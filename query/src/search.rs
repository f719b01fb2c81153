//! The one model of "find traces like this", shared by the querier (over blocks) and the
//! ingesters (over recent data), so both sides agree on what matches.
//!
//! Two semantics, as the APIs that use them define them:
//!
//! - [`Semantics::Span`] (Jaeger): a trace matches when **one span** satisfies every filter;
//!   the duration bounds and the time range apply to that span.
//! - [`Semantics::Trace`] (Tempo): the tags (including service and span name) must hold on one
//!   span; the duration bounds apply to the **trace**, and the trace must overlap the time
//!   range.
//!
//! Tags compare the string form of a value and are looked up on the span's attributes, its
//! resource, its scope, its events and its links. Bounds are inclusive.
//!
//! Every search runs as TraceQL ([`TraceQuery::to_search`] translates, see
//! `docs/traceql.md`); [`TraceQuery::matches`] states the legacy meaning the translation
//! keeps, and the tests hold the two together. Two conventions of the APIs go beyond it: the
//! tag `error=true` also finds spans whose status is ERROR (as Jaeger marks them), and
//! Tempo's `status=error` and `status.code=error` tags name the span status.

use skein_format::SpanRecord;
use skein_format::model::value_string;
use skein_format::otlp::common::v1::KeyValue;
use skein_format::summary::TraceSummary;
use skein_traceql::string_literal;

use crate::plan::{Search, WindowOn, legacy_attribute_places};

/// Which span a filter has to hold on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Semantics {
    /// Jaeger: one span satisfies every filter, durations are span durations.
    #[default]
    Span,
    /// Tempo: tags on one span, duration of the whole trace.
    Trace,
}

/// A trace search.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceQuery {
    /// Earliest time of interest, ns since the epoch (inclusive).
    pub start_unix_nano: Option<u64>,
    /// Latest time of interest (inclusive).
    pub end_unix_nano: Option<u64>,
    /// `service.name` of the span.
    pub service_name: Option<String>,
    /// Span name (Jaeger's "operation").
    pub span_name: Option<String>,
    /// Attribute key = string form of the value.
    pub tags: Vec<(String, String)>,
    /// Minimum duration, ns (span or trace, by `semantics`).
    pub min_duration_nanos: Option<u64>,
    /// Maximum duration, ns.
    pub max_duration_nanos: Option<u64>,
    /// Span- or trace-level matching.
    pub semantics: Semantics,
    /// Most traces to return.
    pub limit: usize,
}

fn attrs_have(attrs: &[KeyValue], key: &str, want: &str) -> bool {
    attrs
        .iter()
        .any(|kv| kv.key == key && kv.value.as_ref().is_some_and(|v| value_string(v) == want))
}

/// True when the span, its resource, scope, events or links carry `key` = `want`.
pub fn span_has_tag(s: &SpanRecord, key: &str, want: &str) -> bool {
    attrs_have(&s.span.attributes, key, want)
        || attrs_have(&s.resource.resource.attributes, key, want)
        || attrs_have(&s.scope.scope.attributes, key, want)
        || s.span
            .events
            .iter()
            .any(|e| attrs_have(&e.attributes, key, want))
        || s.span
            .links
            .iter()
            .any(|l| attrs_have(&l.attributes, key, want))
}

fn span_duration(s: &SpanRecord) -> u64 {
    s.duration_nanos()
}

impl TraceQuery {
    fn span_matches_tags(&self, s: &SpanRecord) -> bool {
        self.service_name
            .as_deref()
            .is_none_or(|w| s.service_name() == w)
            && self.span_name.as_deref().is_none_or(|w| s.span.name == w)
            && self.tags.iter().all(|(k, v)| span_has_tag(s, k, v))
    }

    fn span_in_range(&self, s: &SpanRecord) -> bool {
        let start = s.span.start_time_unix_nano;
        self.start_unix_nano.is_none_or(|t| start >= t)
            && self.end_unix_nano.is_none_or(|t| start <= t)
    }

    fn duration_ok(&self, d: u64) -> bool {
        self.min_duration_nanos.is_none_or(|m| d >= m)
            && self.max_duration_nanos.is_none_or(|m| d <= m)
    }

    /// True when the trace (all its spans known so far) matches.
    pub fn matches(&self, trace: &[SpanRecord]) -> bool {
        match self.semantics {
            Semantics::Span => trace.iter().any(|s| {
                self.span_matches_tags(s)
                    && self.span_in_range(s)
                    && self.duration_ok(span_duration(s))
            }),
            Semantics::Trace => {
                let summary = TraceSummary::from_spans(trace);
                let Some(summary) = summary else { return false };
                let end = summary
                    .start_unix_nano
                    .saturating_add(summary.duration_nanos);
                self.duration_ok(summary.duration_nanos)
                    && self.start_unix_nano.is_none_or(|t| end >= t)
                    && self
                        .end_unix_nano
                        .is_none_or(|t| summary.start_unix_nano <= t)
                    && trace.iter().any(|s| self.span_matches_tags(s))
            }
        }
    }
}

/// The TraceQL literals a legacy tag value may stand for: the string, and the number or
/// boolean it spells (tags compare string forms; TraceQL compares typed values).
fn typed_literals(v: &str) -> Vec<String> {
    let mut out = vec![string_literal(v)];
    if let Ok(i) = v.parse::<i64>() {
        if i.to_string() == v {
            out.push(i.to_string());
        }
    } else if let Ok(f) = v.parse::<f64>()
        && f.is_finite()
        && f.to_string() == v
    {
        out.push(format!("{f:?}"));
    }
    if v == "true" || v == "false" {
        out.push(v.to_owned());
    }
    out
}

/// A legacy tag as a TraceQL condition on one span.
fn tag_condition(key: &str, value: &str, semantics: Semantics) -> String {
    let status = match (key, semantics) {
        ("error", _) if value == "true" => Some("status = error"),
        ("status" | "status.code", Semantics::Trace) => match value {
            "error" | "ERROR" | "STATUS_CODE_ERROR" | "2" => Some("status = error"),
            "ok" | "OK" | "STATUS_CODE_OK" | "1" => Some("status = ok"),
            "unset" | "UNSET" | "STATUS_CODE_UNSET" | "0" => Some("status = unset"),
            _ => None,
        },
        _ => None,
    };
    let mut alternatives: Vec<String> = Vec::new();
    for place in legacy_attribute_places(key) {
        for lit in typed_literals(value) {
            alternatives.push(format!("{place} = {lit}"));
        }
    }
    if let Some(s) = status {
        alternatives.insert(0, s.to_owned());
    }
    format!("({})", alternatives.join(" || "))
}

impl TraceQuery {
    /// The TraceQL text of this search's span conditions: one spanset filter.
    pub fn traceql(&self) -> String {
        let mut conditions: Vec<String> = Vec::new();
        if let Some(svc) = &self.service_name {
            conditions.push(format!("resource.service.name = {}", string_literal(svc)));
        }
        if let Some(name) = &self.span_name {
            conditions.push(format!("name = {}", string_literal(name)));
        }
        for (k, v) in &self.tags {
            conditions.push(tag_condition(k, v, self.semantics));
        }
        let duration = match self.semantics {
            Semantics::Span => "duration",
            Semantics::Trace => "traceDuration",
        };
        if let Some(min) = self.min_duration_nanos {
            conditions.push(format!("{duration} >= {min}ns"));
        }
        if let Some(max) = self.max_duration_nanos {
            conditions.push(format!("{duration} <= {max}ns"));
        }
        match conditions.is_empty() {
            true => "{}".to_owned(),
            false => format!("{{ {} }}", conditions.join(" && ")),
        }
    }

    /// This search as TraceQL with its window and limit. Fails only when the search is too
    /// large for a TraceQL query (every part is written with the TraceQL crate's quoting).
    pub fn to_search(&self) -> Result<Search, skein_traceql::Error> {
        let query = skein_traceql::parse(&self.traceql())?;
        let mut search = Search::new(query);
        if self.start_unix_nano.is_some() || self.end_unix_nano.is_some() {
            search.window = Some((
                self.start_unix_nano.unwrap_or(0),
                self.end_unix_nano.unwrap_or(u64::MAX),
            ));
        }
        search.window_on = match self.semantics {
            Semantics::Span => WindowOn::MatchedSpan,
            Semantics::Trace => WindowOn::Trace,
        };
        search.limit = self.limit;
        Ok(search)
    }
}

#[cfg(test)]
mod tests {
    use skein_testkit::spans::small_trace as trace;

    use super::*;

    #[test]
    fn jaeger_semantics_is_one_span_for_all_filters() {
        let t = trace();
        let q = |f: &dyn Fn(&mut TraceQuery)| {
            let mut q = TraceQuery::default();
            f(&mut q);
            q.matches(&t)
        };
        assert!(q(&|q| q.service_name = Some("api".into())));
        assert!(q(&|q| q.tags = vec![
            ("db.system".into(), "pg".into()),
            ("attempt".into(), "2".into())
        ]));
        // Tags on different spans do not combine.
        assert!(!q(&|q| q.tags = vec![
            ("db.system".into(), "pg".into()),
            ("http.status_code".into(), "500".into())
        ]));
        // Resource attributes count as tags.
        assert!(q(&|q| q.tags = vec![("service.name".into(), "web".into())]));
        // Durations are the span's, inclusive.
        assert!(q(&|q| {
            q.service_name = Some("api".into());
            q.min_duration_nanos = Some(80);
            q.max_duration_nanos = Some(80)
        }));
        assert!(!q(&|q| {
            q.service_name = Some("api".into());
            q.min_duration_nanos = Some(81)
        }));
        assert!(!q(&|q| {
            q.span_name = Some("query".into());
            q.min_duration_nanos = Some(50)
        }));
        // The time range applies to the matching span's start.
        assert!(q(&|q| {
            q.span_name = Some("query".into());
            q.start_unix_nano = Some(150);
            q.end_unix_nano = Some(150)
        }));
        assert!(!q(&|q| {
            q.span_name = Some("query".into());
            q.start_unix_nano = Some(151)
        }));
    }

    #[test]
    fn tempo_semantics_uses_trace_duration() {
        let t = trace();
        let mut q = TraceQuery {
            semantics: Semantics::Trace,
            span_name: Some("query".into()),
            min_duration_nanos: Some(200),
            ..Default::default()
        };
        assert!(q.matches(&t), "the query span lasts 10 but the trace 200");
        q.min_duration_nanos = Some(201);
        assert!(!q.matches(&t));
        q.min_duration_nanos = None;
        q.start_unix_nano = Some(300);
        assert!(q.matches(&t), "the trace overlaps the range at its end");
        q.start_unix_nano = Some(301);
        assert!(!q.matches(&t));
    }
}
