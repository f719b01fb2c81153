//! Reading OTLP protobuf on the wire, without decoding it into owned messages.
//!
//! One reader walks an `ExportTraceServiceRequest`, checking every field as `prost` would
//! and handing out each span as slices of the request ([`WireSpan`]):
//! [`read_export_request`] gives the spans (the block encoder reads them in place), and
//! [`scan_export_request`] gives what the ingester needs of each span to accept a request
//! unchanged (its trace ID and latest time). Both say `None` when the request needs more
//! than a look: it is malformed in any way `prost` would refuse, or holds something this
//! reader does not take exactly as `prost` would (a singular message field given twice,
//! which `prost` merges); the scan also when a span has an unusable ID or an attribute value
//! is longer than the limit and must be truncated. The caller then decodes the request with
//! `prost` and takes the general path, so the answer never depends on which path ran.
//!
//! Field numbers are those of the OpenTelemetry protocol (`opentelemetry/proto/...`); unknown
//! fields are skipped, as `prost` skips them.

use std::borrow::Cow;

use crate::ids::TraceId;
use crate::v1::block::source::{EventRef, KvRef, LinkRef, SpanSource, ValueRef};

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
    read_spans(body, max_value_bytes, &mut |s| {
        if !valid_id(s.trace_id, 16) || !valid_id(s.span_id, 8) {
            return None;
        }
        out.push(SpanFacts {
            trace_id: TraceId(s.trace_id.try_into().ok()?),
            latest_unix_nano: s.start.max(s.end),
        });
        Some(())
    })?;
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

    fn fixed32(&mut self) -> Option<u32> {
        let b = self.buf.get(self.pos..self.pos.checked_add(4)?)?;
        self.pos += 4;
        Some(u32::from_le_bytes(b.try_into().ok()?))
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

/// An OTLP trace or span ID the ingester accepts: `len` bytes, not all zero.
pub fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|b| *b != 0)
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

    /// An attribute as text, arrays and lists by their decoded value (bytes written by
    /// clients and by prost may differ, say in unknown fields, and decode alike).
    fn kv_text(kv: &KvRef<'_>) -> String {
        match &kv.value {
            ValueRef::Array(b) | ValueRef::KvList(b) => {
                format!("{}={:?}", kv.key, AnyValue::decode(b.as_ref()).ok())
            }
            v => format!("{}={v:?}", kv.key),
        }
    }

    /// Everything the block encoder reads of a span, as text.
    fn seen(s: &impl SpanSource) -> String {
        let (mut a, mut e, mut l, mut r, mut c) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        s.attributes(&mut a);
        s.events(&mut e);
        s.links(&mut l);
        s.resource_attributes(&mut r);
        s.scope_attributes(&mut c);
        let texts = |kvs: &[KvRef<'_>]| kvs.iter().map(kv_text).collect::<Vec<_>>();
        let (a, r, c) = (texts(&a), texts(&r), texts(&c));
        let e: Vec<_> = e
            .iter()
            .map(|e| {
                (
                    e.time_unix_nano,
                    e.name,
                    texts(&e.attributes),
                    e.dropped_attributes_count,
                )
            })
            .collect();
        let l: Vec<_> = l
            .iter()
            .map(|l| {
                let head = (l.trace_id, l.span_id, l.trace_state, l.flags);
                (head, texts(&l.attributes), l.dropped_attributes_count)
            })
            .collect();
        format!(
            "{:?}",
            (
                (s.trace_id_bytes(), s.span_id_bytes(), s.parent_span_id()),
                (s.trace_state(), s.flags(), s.name(), s.kind()),
                (s.start_time_unix_nano(), s.end_time_unix_nano(), s.status()),
                (s.dropped_counts(), a, e, l),
                (
                    s.resource_service_name(),
                    r,
                    s.resource_dropped_attributes_count()
                ),
                (
                    s.resource_schema_url(),
                    s.resource_entity_refs()
                        .map(|b| Resource::decode(b.as_ref()).map(|r| r.entity_refs).ok()),
                ),
                (
                    s.scope_name(),
                    s.scope_version(),
                    c,
                    s.scope_dropped_attributes_count()
                ),
                s.scope_schema_url(),
            )
        )
    }

    /// What reading in place sees is what decoding with prost gives, on random corruptions
    /// of a request and on fields in an order prost does not write.
    #[test]
    fn reading_in_place_sees_what_prost_decodes() {
        use crate::model::spans_from_otlp;
        use prost::encoding::{WireType, encode_key, encode_varint};

        let mut s = span(3, 4);
        s.attributes.push(KeyValue {
            key: "a".into(),
            value: text(5),
            ..Default::default()
        });
        s.events.push(Event {
            time_unix_nano: 15,
            name: "e".into(),
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
        req.resource_spans[0].schema_url = "https://r".into();
        req.resource_spans[0].resource = Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: text(4),
                ..Default::default()
            }],
            ..Default::default()
        });
        req.resource_spans[0].scope_spans[0].schema_url = "https://s".into();
        let agree = |body: &[u8], what: &str| -> bool {
            let Some(views) = read_export_request(body) else {
                return false;
            };
            let decoded = ExportTraceServiceRequest::decode(body)
                .unwrap_or_else(|e| panic!("{what}: prost refuses what was read: {e}"));
            let spans = spans_from_otlp(decoded.resource_spans);
            assert_eq!(views.len(), spans.len(), "{what}");
            for (v, d) in views.iter().zip(&spans) {
                assert_eq!(seen(v), seen(d), "{what}");
            }
            true
        };
        // The schema URLs before the resource and the scope.
        let rs = &req.resource_spans[0];
        let mut scope_spans = Vec::new();
        encode_key(3, WireType::LengthDelimited, &mut scope_spans);
        encode_varint(9, &mut scope_spans);
        scope_spans.extend_from_slice(b"https://s");
        for sp in &rs.scope_spans[0].spans {
            encode_key(2, WireType::LengthDelimited, &mut scope_spans);
            encode_varint(sp.encoded_len() as u64, &mut scope_spans);
            sp.encode(&mut scope_spans).unwrap();
        }
        let mut inner = Vec::new();
        encode_key(3, WireType::LengthDelimited, &mut inner);
        encode_varint(9, &mut inner);
        inner.extend_from_slice(b"https://r");
        let resource = rs.resource.as_ref().unwrap().encode_to_vec();
        encode_key(2, WireType::LengthDelimited, &mut inner);
        encode_varint(scope_spans.len() as u64, &mut inner);
        inner.extend_from_slice(&scope_spans);
        encode_key(1, WireType::LengthDelimited, &mut inner);
        encode_varint(resource.len() as u64, &mut inner);
        inner.extend_from_slice(&resource);
        let mut body = Vec::new();
        encode_key(1, WireType::LengthDelimited, &mut body);
        encode_varint(inner.len() as u64, &mut body);
        body.extend_from_slice(&inner);
        assert!(
            agree(&body, "reordered"),
            "a reordered request reads in place"
        );
        assert!(agree(&req.encode_to_vec(), "as prost writes it"));

        let base = req.encode_to_vec();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut read = 0;
        for round in 0..20_000 {
            let mut body = base.clone();
            for _ in 0..1 + next() % 2 {
                let at = (next() as usize) % body.len();
                body[at] = next() as u8;
            }
            read += usize::from(agree(&body, &format!("round {round}")));
        }
        assert!(read > 100, "{read} corrupted requests read");
    }
}

/// One span of a request, read in place: its fields borrow the request's bytes, and its
/// attributes, events and links are read from them when asked for.
#[derive(Debug, Clone)]
pub struct WireSpan<'a> {
    pub(crate) trace_id: &'a [u8],
    pub(crate) span_id: &'a [u8],
    pub(crate) parent_span_id: &'a [u8],
    pub(crate) trace_state: &'a str,
    pub(crate) flags: u32,
    pub(crate) name: &'a str,
    pub(crate) kind: i32,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) status_code: i32,
    pub(crate) status_message: &'a str,
    pub(crate) dropped: (u32, u32, u32),
    /// The span message.
    pub(crate) body: &'a [u8],
    pub(crate) resource: WireResource<'a>,
    pub(crate) scope: WireScope<'a>,
}

impl WireSpan<'_> {
    /// The span's trace ID bytes.
    pub fn trace_id(&self) -> &[u8] {
        self.trace_id
    }
}

/// The resource of a span, read in place.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WireResource<'a> {
    /// The resource message.
    pub(crate) body: &'a [u8],
    pub(crate) service_name: &'a str,
    pub(crate) dropped: u32,
    pub(crate) schema_url: &'a str,
    pub(crate) has_entity_refs: bool,
}

/// The instrumentation scope of a span, read in place.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WireScope<'a> {
    /// The scope message.
    pub(crate) body: &'a [u8],
    pub(crate) name: &'a str,
    pub(crate) version: &'a str,
    pub(crate) dropped: u32,
    pub(crate) schema_url: &'a str,
}

/// Every span of an `ExportTraceServiceRequest`, read in place; `None` when the request
/// holds anything this reader does not take exactly as `prost` would (malformed data, a
/// singular message field given twice, which `prost` merges, nesting deeper than it
/// follows): the caller then decodes it with `prost`.
pub fn read_export_request(body: &[u8]) -> Option<Vec<WireSpan<'_>>> {
    let mut out = Vec::new();
    read_spans(body, usize::MAX, &mut |s| {
        out.push(s);
        Some(())
    })?;
    Some(out)
}

/// Hands every span of the request in `body` to `each`, in order; `None` as soon as the request
/// is not taken in place (see [`read_export_request`]), holds a string or bytes value longer
/// than `max_value_bytes`, or `each` says `None`.
fn read_spans<'a>(
    body: &'a [u8],
    max_value_bytes: usize,
    each: &mut dyn FnMut(WireSpan<'a>) -> Option<()>,
) -> Option<()> {
    let mut r = Reader::new(body);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, LEN)?;
                read_resource_spans(r.bytes()?, max_value_bytes, each)?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(())
}

/// What a `ResourceSpans` and a `ScopeSpans` share in shape: field 1 its resource or scope (at
/// most once: prost would merge two, which this reader declines), field 2 the repeated
/// children, field 3 the schema URL (before or after field 1).
struct Group<'a> {
    head: Option<&'a [u8]>,
    children: Vec<&'a [u8]>,
    schema_url: &'a str,
}

fn read_group(buf: &[u8]) -> Option<Group<'_>> {
    let mut g = Group {
        head: None,
        children: Vec::new(),
        schema_url: "",
    };
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, LEN)?;
                if g.head.replace(r.bytes()?).is_some() {
                    return None;
                }
            }
            2 => {
                r.expect(wire, LEN)?;
                g.children.push(r.bytes()?);
            }
            3 => {
                r.expect(wire, LEN)?;
                g.schema_url = r.string()?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(g)
}

fn read_resource_spans<'a>(
    buf: &'a [u8],
    max: usize,
    each: &mut dyn FnMut(WireSpan<'a>) -> Option<()>,
) -> Option<()> {
    let g = read_group(buf)?;
    let mut resource = match g.head {
        Some(b) => read_resource(b, max)?,
        None => WireResource::default(),
    };
    resource.schema_url = g.schema_url;
    for ss in g.children {
        read_scope_spans(ss, resource, max, each)?;
    }
    Some(())
}

fn read_resource(buf: &[u8], max: usize) -> Option<WireResource<'_>> {
    let mut res = WireResource {
        body: buf,
        ..Default::default()
    };
    let mut seen_service = false;
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, LEN)?;
                let kv = read_kv(r.bytes()?, 0, max)?;
                // The first `service.name`, when it holds a string, as `model::service_name`
                // reads it.
                if kv.key == crate::model::SERVICE_NAME
                    && !std::mem::replace(&mut seen_service, true)
                    && let ValueRef::Str(s) = kv.value
                {
                    res.service_name = s;
                }
            }
            2 => {
                r.expect(wire, VARINT)?;
                res.dropped = r.varint()? as u32;
            }
            3 => {
                r.expect(wire, LEN)?;
                entity_ref(r.bytes()?)?;
                res.has_entity_refs = true;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(res)
}

fn read_scope_spans<'a>(
    buf: &'a [u8],
    resource: WireResource<'a>,
    max: usize,
    each: &mut dyn FnMut(WireSpan<'a>) -> Option<()>,
) -> Option<()> {
    let g = read_group(buf)?;
    let mut scope = match g.head {
        Some(b) => read_scope(b, max)?,
        None => WireScope::default(),
    };
    scope.schema_url = g.schema_url;
    for s in g.children {
        each(read_span(s, resource, scope, max)?)?;
    }
    Some(())
}

fn read_scope(buf: &[u8], max: usize) -> Option<WireScope<'_>> {
    let mut scope = WireScope {
        body: buf,
        ..Default::default()
    };
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, LEN)?;
                scope.name = r.string()?;
            }
            2 => {
                r.expect(wire, LEN)?;
                scope.version = r.string()?;
            }
            3 => {
                r.expect(wire, LEN)?;
                read_kv(r.bytes()?, 0, max)?;
            }
            4 => {
                r.expect(wire, VARINT)?;
                scope.dropped = r.varint()? as u32;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(scope)
}

fn read_span<'a>(
    buf: &'a [u8],
    resource: WireResource<'a>,
    scope: WireScope<'a>,
    max: usize,
) -> Option<WireSpan<'a>> {
    let mut s = WireSpan {
        trace_id: &[],
        span_id: &[],
        parent_span_id: &[],
        trace_state: "",
        flags: 0,
        name: "",
        kind: 0,
        start: 0,
        end: 0,
        status_code: 0,
        status_message: "",
        dropped: (0, 0, 0),
        body: buf,
        resource,
        scope,
    };
    let mut seen_status = false;
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, LEN)?;
                s.trace_id = r.bytes()?;
            }
            2 => {
                r.expect(wire, LEN)?;
                s.span_id = r.bytes()?;
            }
            3 => {
                r.expect(wire, LEN)?;
                s.trace_state = r.string()?;
            }
            4 => {
                r.expect(wire, LEN)?;
                s.parent_span_id = r.bytes()?;
            }
            5 => {
                r.expect(wire, LEN)?;
                s.name = r.string()?;
            }
            6 => {
                r.expect(wire, VARINT)?;
                s.kind = r.varint()? as i32;
            }
            7 => {
                r.expect(wire, I64)?;
                s.start = r.fixed64()?;
            }
            8 => {
                r.expect(wire, I64)?;
                s.end = r.fixed64()?;
            }
            9 => {
                r.expect(wire, LEN)?;
                read_kv(r.bytes()?, 0, max)?;
            }
            10 => {
                r.expect(wire, VARINT)?;
                s.dropped.0 = r.varint()? as u32;
            }
            11 => {
                r.expect(wire, LEN)?;
                read_event(r.bytes()?, max)?;
            }
            12 => {
                r.expect(wire, VARINT)?;
                s.dropped.1 = r.varint()? as u32;
            }
            13 => {
                r.expect(wire, LEN)?;
                read_link(r.bytes()?, max)?;
            }
            14 => {
                r.expect(wire, VARINT)?;
                s.dropped.2 = r.varint()? as u32;
            }
            15 => {
                r.expect(wire, LEN)?;
                if std::mem::replace(&mut seen_status, true) {
                    return None;
                }
                let mut st = Reader::new(r.bytes()?);
                while let Some((f, w)) = st.key()? {
                    match f {
                        2 => {
                            st.expect(w, LEN)?;
                            s.status_message = st.string()?;
                        }
                        3 => {
                            st.expect(w, VARINT)?;
                            s.status_code = st.varint()? as i32;
                        }
                        _ => st.skip(f, w)?,
                    }
                }
            }
            16 => {
                r.expect(wire, I32)?;
                s.flags = r.fixed32()?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(s)
}

/// An event, read in place.
fn read_event(buf: &[u8], max: usize) -> Option<EventRef<'_>> {
    let mut e = EventRef {
        time_unix_nano: 0,
        name: "",
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    };
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, I64)?;
                e.time_unix_nano = r.fixed64()?;
            }
            2 => {
                r.expect(wire, LEN)?;
                e.name = r.string()?;
            }
            3 => {
                r.expect(wire, LEN)?;
                e.attributes.push(read_kv(r.bytes()?, 0, max)?);
            }
            4 => {
                r.expect(wire, VARINT)?;
                e.dropped_attributes_count = r.varint()? as u32;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(e)
}

/// A link, read in place.
fn read_link(buf: &[u8], max: usize) -> Option<LinkRef<'_>> {
    let mut l = LinkRef {
        trace_id: &[],
        span_id: &[],
        trace_state: "",
        flags: 0,
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    };
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, LEN)?;
                l.trace_id = r.bytes()?;
            }
            2 => {
                r.expect(wire, LEN)?;
                l.span_id = r.bytes()?;
            }
            3 => {
                r.expect(wire, LEN)?;
                l.trace_state = r.string()?;
            }
            4 => {
                r.expect(wire, LEN)?;
                l.attributes.push(read_kv(r.bytes()?, 0, max)?);
            }
            5 => {
                r.expect(wire, VARINT)?;
                l.dropped_attributes_count = r.varint()? as u32;
            }
            6 => {
                r.expect(wire, I32)?;
                l.flags = r.fixed32()?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(l)
}

/// A `KeyValue`, read in place.
fn read_kv(buf: &[u8], depth: u32, max: usize) -> Option<KvRef<'_>> {
    let mut kv = KvRef {
        key: "",
        value: ValueRef::Absent,
    };
    let mut seen_value = false;
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                r.expect(wire, LEN)?;
                kv.key = r.string()?;
            }
            2 => {
                r.expect(wire, LEN)?;
                if std::mem::replace(&mut seen_value, true) {
                    return None;
                }
                kv.value = read_any_value(r.bytes()?, depth, max)?;
            }
            3 => {
                r.expect(wire, VARINT)?;
                r.varint()?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Some(kv)
}

/// An `AnyValue`, read in place: the last value field set wins, as in `prost`; arrays and
/// key-value lists are checked (to the depth `prost` decodes) and kept as the message bytes.
fn read_any_value(buf: &[u8], depth: u32, max: usize) -> Option<ValueRef<'_>> {
    if depth >= MAX_VALUE_DEPTH {
        return None;
    }
    let mut v = ValueRef::Empty;
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        v = match field {
            1 => {
                r.expect(wire, LEN)?;
                ValueRef::Str(r.string()?).check(max)?
            }
            2 => {
                r.expect(wire, VARINT)?;
                ValueRef::Bool(r.varint()? != 0)
            }
            3 => {
                r.expect(wire, VARINT)?;
                ValueRef::Int(r.varint()? as i64)
            }
            4 => {
                r.expect(wire, I64)?;
                ValueRef::Double(f64::from_bits(r.fixed64()?))
            }
            7 => {
                r.expect(wire, LEN)?;
                ValueRef::Bytes(r.bytes()?).check(max)?
            }
            8 => {
                r.expect(wire, VARINT)?;
                ValueRef::StrIndex(r.varint()? as i32)
            }
            5 | 6 => {
                r.expect(wire, LEN)?;
                // A second array or list would be merged into the first by `prost`.
                if matches!(v, ValueRef::Array(_) | ValueRef::KvList(_)) {
                    return None;
                }
                let mut inner = Reader::new(r.bytes()?);
                while let Some((f, w)) = inner.key()? {
                    match (field, f) {
                        (5, 1) => {
                            inner.expect(w, LEN)?;
                            read_any_value(inner.bytes()?, depth + 1, max)?;
                        }
                        (6, 1) => {
                            inner.expect(w, LEN)?;
                            read_kv(inner.bytes()?, depth + 1, max)?;
                        }
                        _ => inner.skip(f, w)?,
                    }
                }
                match field {
                    5 => ValueRef::Array(Cow::Borrowed(buf)),
                    _ => ValueRef::KvList(Cow::Borrowed(buf)),
                }
            }
            _ => {
                r.skip(field, wire)?;
                continue;
            }
        };
    }
    Some(v)
}

impl<'a> ValueRef<'a> {
    /// The value, unless it is a string or bytes longer than `max`.
    fn check(self, max: usize) -> Option<Self> {
        match &self {
            ValueRef::Str(s) if s.len() > max => None,
            ValueRef::Bytes(b) if b.len() > max => None,
            _ => Some(self),
        }
    }
}

/// The attributes (`KeyValue` field `field`) of a message read in place; the message was
/// checked when it was first read.
fn kvs_of<'a>(body: &'a [u8], field: u32, out: &mut Vec<KvRef<'a>>) {
    let mut r = Reader::new(body);
    while let Some(Some((f, wire))) = r.key() {
        if f == field && wire == LEN {
            if let Some(kv) = r.bytes().and_then(|b| read_kv(b, 0, usize::MAX)) {
                out.push(kv);
            }
        } else if r.skip(f, wire).is_none() {
            return;
        }
    }
}

impl SpanSource for WireSpan<'_> {
    fn trace_id_bytes(&self) -> &[u8] {
        self.trace_id
    }
    fn span_id_bytes(&self) -> &[u8] {
        self.span_id
    }
    fn parent_span_id(&self) -> &[u8] {
        self.parent_span_id
    }
    fn trace_state(&self) -> &str {
        self.trace_state
    }
    fn flags(&self) -> u32 {
        self.flags
    }
    fn name(&self) -> &str {
        self.name
    }
    fn kind(&self) -> i32 {
        self.kind
    }
    fn start_time_unix_nano(&self) -> u64 {
        self.start
    }
    fn end_time_unix_nano(&self) -> u64 {
        self.end
    }
    fn status(&self) -> (i32, &str) {
        (self.status_code, self.status_message)
    }
    fn dropped_counts(&self) -> (u32, u32, u32) {
        self.dropped
    }
    fn attributes<'s>(&'s self, out: &mut Vec<KvRef<'s>>) {
        kvs_of(self.body, 9, out);
    }
    fn events<'s>(&'s self, out: &mut Vec<EventRef<'s>>) {
        let mut r = Reader::new(self.body);
        while let Some(Some((f, wire))) = r.key() {
            if f == 11 && wire == LEN {
                if let Some(e) = r.bytes().and_then(|b| read_event(b, usize::MAX)) {
                    out.push(e);
                }
            } else if r.skip(f, wire).is_none() {
                return;
            }
        }
    }
    fn links<'s>(&'s self, out: &mut Vec<LinkRef<'s>>) {
        let mut r = Reader::new(self.body);
        while let Some(Some((f, wire))) = r.key() {
            if f == 13 && wire == LEN {
                if let Some(l) = r.bytes().and_then(|b| read_link(b, usize::MAX)) {
                    out.push(l);
                }
            } else if r.skip(f, wire).is_none() {
                return;
            }
        }
    }
    fn resource_service_name(&self) -> &str {
        self.resource.service_name
    }
    fn resource_attributes<'s>(&'s self, out: &mut Vec<KvRef<'s>>) {
        kvs_of(self.resource.body, 1, out);
    }
    fn resource_dropped_attributes_count(&self) -> u32 {
        self.resource.dropped
    }
    fn resource_schema_url(&self) -> &str {
        self.resource.schema_url
    }
    fn resource_entity_refs(&self) -> Option<Cow<'_, [u8]>> {
        if !self.resource.has_entity_refs {
            return None;
        }
        // A `Resource` holding only its entity references: those fields as they came.
        let mut out = Vec::new();
        let mut r = Reader::new(self.resource.body);
        loop {
            let from = r.pos;
            let Some(Some((f, wire))) = r.key() else {
                break;
            };
            if r.skip(f, wire).is_none() {
                break;
            }
            if f == 3 {
                out.extend_from_slice(&self.resource.body[from..r.pos]);
            }
        }
        Some(Cow::Owned(out))
    }
    fn scope_name(&self) -> &str {
        self.scope.name
    }
    fn scope_version(&self) -> &str {
        self.scope.version
    }
    fn scope_attributes<'s>(&'s self, out: &mut Vec<KvRef<'s>>) {
        kvs_of(self.scope.body, 3, out);
    }
    fn scope_dropped_attributes_count(&self) -> u32 {
        self.scope.dropped
    }
    fn scope_schema_url(&self) -> &str {
        self.scope.schema_url
    }
}
