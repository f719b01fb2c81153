//! Reading OTLP protobuf on the wire, without decoding it into owned messages.
//!
//! [`scan_export_request`] walks an `ExportTraceServiceRequest` and returns what the ingester
//! needs of each span to accept a request unchanged (its trace ID and latest time), or
//! `None` when the request needs more than a look: it is malformed in any way `prost` would
//! refuse (or this reader does not follow), a span has an unusable ID, or an attribute value
//! is longer than the limit and must be truncated. The caller then decodes the request with
//! `prost` and takes the general path, so the answer never depends on which path ran.
//!
//! Field numbers are those of the OpenTelemetry protocol (`opentelemetry/proto/...`); unknown
//! fields are skipped, as `prost` skips them.

use crate::ids::TraceId;

/// What the ingester needs of one span of a request it accepts unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanFacts {
    /// The span's trace.
    pub trace_id: TraceId,
    /// The later of its start and end (ns since the epoch): what retention is checked on.
    pub latest_unix_nano: u64,
}

/// Deepest nesting of attribute values (arrays and key-value lists) followed; deeper values
/// send the request to the general path.
const MAX_VALUE_DEPTH: u32 = 16;

/// The facts of every span of an OTLP `ExportTraceServiceRequest` in `body`, in order, when
/// the request is well-formed, every span has a usable trace and span ID (16 and 8 bytes, not
/// all zero) and no attribute value (string or bytes, at any depth, on spans, events, links,
/// resources and scopes) is longer than `max_value_bytes`; `None` otherwise.
pub fn scan_export_request(body: &[u8], max_value_bytes: usize) -> Option<Vec<SpanFacts>> {
    let mut out = Vec::new();
    let mut r = Reader::new(body);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, LEN)?;
                resource_spans(r.bytes()?, max_value_bytes, &mut out)?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(out)
}

/// Wire types.
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The next field number and wire type; `Some(None)` at the end.
    fn key(&mut self) -> Option<Option<(u32, u8)>> {
        if self.pos == self.buf.len() {
            return Some(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).ok().filter(|f| *f > 0)?;
        Some(Some((field, (key & 7) as u8)))
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    fn fixed64(&mut self) -> Option<u64> {
        let b = self.buf.get(self.pos..self.pos.checked_add(8)?)?;
        self.pos += 8;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let b = self.buf.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        Some(b)
    }

    fn string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    /// Skips a field `prost` would skip; `None` for wire types it would refuse (groups).
    fn skip(&mut self, _field: u32, wire: u8) -> Option<()> {
        match wire {
            VARINT => self.varint().map(drop),
            I64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            I32 => {
                self.buf.get(self.pos..self.pos.checked_add(4)?)?;
                self.pos += 4;
                Some(())
            }
            _ => None,
        }
    }

    /// Reads a field of a known number: its wire type must be `want` (as `prost` requires).
    fn expect(&self, wire: u8, want: u8) -> Option<()> {
        (wire == want).then_some(())
    }
}

fn resource_spans(buf: &[u8], max: usize, out: &mut Vec<SpanFacts>) -> Option<()> {
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, LEN)?;
                resource(r.bytes()?, max)?;
            }
            2 => {
                r.expect(wire, LEN)?;
                scope_spans(r.bytes()?, max, out)?;
            }
            3 => {
                r.expect(wire, LEN)?;
                r.string()?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(())
}

fn resource(buf: &[u8], max: usize) -> Option<()> {
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, LEN)?;
                key_value(r.bytes()?, max, 0)?;
            }
            2 => {
                r.expect(wire, VARINT)?;
                r.varint()?;
            }
            3 => {
                r.expect(wire, LEN)?;
                entity_ref(r.bytes()?)?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(())
}

fn entity_ref(buf: &[u8]) -> Option<()> {
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1..=4 => {
                r.expect(wire, LEN)?;
                r.string()?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(())
}

fn scope_spans(buf: &[u8], max: usize, out: &mut Vec<SpanFacts>) -> Option<()> {
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, LEN)?;
                scope(r.bytes()?, max)?;
            }
            2 => {
                r.expect(wire, LEN)?;
                out.push(span(r.bytes()?, max)?);
            }
            3 => {
                r.expect(wire, LEN)?;
                r.string()?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(())
}

fn scope(buf: &[u8], max: usize) -> Option<()> {
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 | 2 => {
                r.expect(wire, LEN)?;
                r.string()?;
            }
            3 => {
                r.expect(wire, LEN)?;
                key_value(r.bytes()?, max, 0)?;
            }
            4 => {
                r.expect(wire, VARINT)?;
                r.varint()?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(())
}

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|b| *b != 0)
}

fn span(buf: &[u8], max: usize) -> Option<SpanFacts> {
    let mut r = Reader::new(buf);
    let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
    let (mut start, mut end) = (0u64, 0u64);
    while let Some((field, wire)) = r.key()? {
        match field {
            // A singular field given twice: the last one counts, as in `prost`.
            1 => {
                r.expect(wire, LEN)?;
                trace_id = r.bytes()?;
            }
            2 => {
                r.expect(wire, LEN)?;
                span_id = r.bytes()?;
            }
            4 => {
                r.expect(wire, LEN)?;
                r.bytes()?;
            }
            3 | 5 => {
                r.expect(wire, LEN)?;
                r.string()?;
            }
            6 | 10 | 12 | 14 => {
                r.expect(wire, VARINT)?;
                r.varint()?;
            }
            7 => {
                r.expect(wire, I64)?;
                start = r.fixed64()?;
            }
            8 => {
                r.expect(wire, I64)?;
                end = r.fixed64()?;
            }
            9 => {
                r.expect(wire, LEN)?;
                key_value(r.bytes()?, max, 0)?;
            }
            11 => {
                r.expect(wire, LEN)?;
                event(r.bytes()?, max)?;
            }
            13 => {
                r.expect(wire, LEN)?;
                link(r.bytes()?, max)?;
            }
            15 => {
                r.expect(wire, LEN)?;
                status(r.bytes()?)?;
            }
            16 => {
                r.expect(wire, I32)?;
                r.skip(field, wire)?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    if !valid_id(trace_id, 16) || !valid_id(span_id, 8) {
        return None;
    }
    Some(SpanFacts {
        trace_id: TraceId(trace_id.try_into().ok()?),
        latest_unix_nano: start.max(end),
    })
}

fn event(buf: &[u8], max: usize) -> Option<()> {
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, I64)?;
                r.fixed64()?;
            }
            2 => {
                r.expect(wire, LEN)?;
                r.string()?;
            }
            3 => {
                r.expect(wire, LEN)?;
                key_value(r.bytes()?, max, 0)?;
            }
            4 => {
                r.expect(wire, VARINT)?;
                r.varint()?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(())
}

fn link(buf: &[u8], max: usize) -> Option<()> {
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 | 2 => {
                r.expect(wire, LEN)?;
                r.bytes()?;
            }
            3 => {
                r.expect(wire, LEN)?;
                r.string()?;
            }
            4 => {
                r.expect(wire, LEN)?;
                key_value(r.bytes()?, max, 0)?;
            }
            5 => {
                r.expect(wire, VARINT)?;
                r.varint()?;
            }
            6 => {
                r.expect(wire, I32)?;
                r.skip(field, wire)?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(())
}

fn status(buf: &[u8]) -> Option<()> {
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            2 => {
                r.expect(wire, LEN)?;
                r.string()?;
            }
            3 => {
                r.expect(wire, VARINT)?;
                r.varint()?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(())
}

fn key_value(buf: &[u8], max: usize, depth: u32) -> Option<()> {
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, LEN)?;
                r.string()?;
            }
            2 => {
                r.expect(wire, LEN)?;
                any_value(r.bytes()?, max, depth)?;
            }
            3 => {
                r.expect(wire, VARINT)?;
                r.varint()?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(())
}

fn any_value(buf: &[u8], max: usize, depth: u32) -> Option<()> {
    if depth >= MAX_VALUE_DEPTH {
        return None;
    }
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, LEN)?;
                if r.string()?.len() > max {
                    return None;
                }
            }
            7 => {
                r.expect(wire, LEN)?;
                if r.bytes()?.len() > max {
                    return None;
                }
            }
            2 | 3 | 8 => {
                r.expect(wire, VARINT)?;
                r.varint()?;
            }
            4 => {
                r.expect(wire, I64)?;
                r.fixed64()?;
            }
            // An array's values, or a key-value list's entries.
            5 | 6 => {
                r.expect(wire, LEN)?;
                let mut inner = Reader::new(r.bytes()?);
                while let Some((f, w)) = inner.key()? {
                    match (field, f) {
                        (5, 1) => {
                            inner.expect(w, LEN)?;
                            any_value(inner.bytes()?, max, depth + 1)?;
                        }
                        (6, 1) => {
                            inner.expect(w, LEN)?;
                            key_value(inner.bytes()?, max, depth + 1)?;
                        }
                        _ => inner.skip(f, w)?,
                    }
                }
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
    use crate::otlp::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value,
    };
    use crate::otlp::resource::v1::Resource;
    use crate::otlp::trace::v1::span::{Event, Link};
    use crate::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn span(t: u8, s: u8) -> Span {
        Span {
            trace_id: vec![t; 16],
            span_id: vec![s; 8],
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            name: "op".into(),
            ..Default::default()
        }
    }

    fn text(n: usize) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(Value::StringValue("x".repeat(n))),
        })
    }

    #[test]
    fn clean_requests_give_their_spans() {
        let body = request(vec![span(1, 1), span(2, 1)]).encode_to_vec();
        let facts = scan_export_request(&body, 100).unwrap();
        assert_eq!(
            facts,
            vec![
                SpanFacts {
                    trace_id: TraceId([1; 16]),
                    latest_unix_nano: 20
                },
                SpanFacts {
                    trace_id: TraceId([2; 16]),
                    latest_unix_nano: 20
                }
            ]
        );
        assert_eq!(scan_export_request(&[], 100), Some(Vec::new()));
    }

    #[test]
    fn what_needs_the_general_path_is_declined() {
        let mut bad_id = span(1, 1);
        bad_id.span_id = vec![0; 8];
        let mut long = span(1, 2);
        long.attributes.push(KeyValue {
            key: "k".into(),
            value: Some(AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![text(3).unwrap(), text(101).unwrap()],
                })),
            }),
            ..Default::default()
        });
        for (what, s) in [("zero span id", bad_id), ("a long nested value", long)] {
            let body = request(vec![span(1, 1), s]).encode_to_vec();
            assert_eq!(scan_export_request(&body, 100), None, "{what}");
        }
        let body = request(vec![span(1, 1)]).encode_to_vec();
        assert_eq!(scan_export_request(&body[..body.len() - 1], 100), None);
        // A name that is not UTF-8: `prost` refuses it, so the scan declines.
        let mut raw = request(vec![span(1, 1)]).encode_to_vec();
        let at = raw.windows(2).position(|w| w == b"op").unwrap();
        raw[at] = 0xff;
        assert!(ExportTraceServiceRequest::decode(raw.as_slice()).is_err());
        assert_eq!(scan_export_request(&raw, 100), None);
    }

    /// On random bytes and random corruptions of a real request, the scan never accepts what
    /// `prost` refuses, and what it accepts `prost` decodes to the same spans.
    #[test]
    fn the_scan_agrees_with_prost() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut s = span(3, 4);
        s.attributes.push(KeyValue {
            key: "a".into(),
            value: text(5),
            ..Default::default()
        });
        s.events.push(Event {
            time_unix_nano: 15,
            name: "e".into(),
            attributes: vec![KeyValue {
                key: "b".into(),
                value: Some(AnyValue {
                    value: Some(Value::IntValue(-3)),
                }),
                ..Default::default()
            }],
            ..Default::default()
        });
        s.links.push(Link {
            trace_id: vec![5; 16],
            span_id: vec![6; 8],
            flags: 1,
            ..Default::default()
        });
        s.status = Some(Status {
            message: "m".into(),
            code: 2,
        });
        let mut req = request(vec![span(1, 1), s, span(2, 9)]);
        let kv = |k: &str| KeyValue {
            key: k.into(),
            value: text(4),
            ..Default::default()
        };
        req.resource_spans[0].resource = Some(Resource {
            attributes: vec![kv("service.name")],
            ..Default::default()
        });
        req.resource_spans[0].scope_spans[0].scope = Some(InstrumentationScope {
            name: "lib".into(),
            attributes: vec![kv("s")],
            ..Default::default()
        });
        let base = req.encode_to_vec();
        let (mut accepted, mut declined) = (0, 0);
        for round in 0..50_000 {
            let mut body = base.clone();
            let edits = 1 + next() % 3;
            for _ in 0..edits {
                let at = (next() as usize) % body.len();
                body[at] = next() as u8;
            }
            if round % 10 == 0 {
                body.truncate((next() as usize) % body.len());
            }
            match scan_export_request(&body, 100) {
                Some(facts) => {
                    accepted += 1;
                    let decoded = ExportTraceServiceRequest::decode(body.as_slice())
                        .unwrap_or_else(|e| panic!("round {round}: prost refuses: {e}"));
                    let spans: Vec<&Span> = decoded
                        .resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .flat_map(|s| &s.spans)
                        .collect();
                    assert_eq!(spans.len(), facts.len(), "round {round}");
                    for (s, f) in spans.iter().zip(&facts) {
                        assert_eq!(s.trace_id, f.trace_id.0, "round {round}");
                        assert_eq!(
                            s.start_time_unix_nano.max(s.end_time_unix_nano),
                            f.latest_unix_nano
                        );
                    }
                }
                None => declined += 1,
            }
        }
        assert!(accepted > 100 && declined > 100, "{accepted} / {declined}");
    }
}
