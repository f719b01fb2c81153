//! The table of the tag index (`traces.bin`, zstd): per trace its summary, the distinct
//! resources and scopes with their attributes, the span attribute keys, the operations and
//! the calls between services. [`TableBuilder`] collects and encodes it while the index is
//! built; [`Table`] is its decoded form.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::HashMap;

use super::cursor::{Cursor, push_varint};
use super::terms::{Attr, attr};
use crate::error::{Error, Result};
use crate::ids::TraceId;
use crate::model::SpanRecord;
use crate::summary::{ServiceStats, TraceSummary};

/// A resource or scope of the block: its service name (resources only) and attributes.
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
pub(super) struct Holder {
    pub(super) service: String,
    pub(super) attrs: Vec<Attr>,
}

#[derive(Default)]
pub(super) struct TableBuilder {
    pub(super) traces: Vec<TraceSummary>,
    resources: Vec<Holder>,
    resource_ids: HashMap<Holder, u64>,
    /// Spans share their resource and scope through an `Arc`: one lookup per distinct one.
    resource_by_ptr: HashMap<*const crate::model::ResourceInfo, u64>,
    scope_by_ptr: HashMap<*const crate::model::ScopeInfo, u64>,
    scopes: Vec<Holder>,
    scope_ids: HashMap<Holder, u64>,
    span_keys: BTreeMap<String, bool>,
    pub(super) operations: BTreeSet<(String, String, i32)>,
    pub(super) calls: BTreeMap<(String, String), u64>,
}

#[derive(Default)]
struct Strings {
    ids: HashMap<String, u32>,
    list: Vec<String>,
}

impl Strings {
    fn id(&mut self, s: &str) -> u64 {
        if let Some(&i) = self.ids.get(s) {
            return u64::from(i);
        }
        let i = self.list.len() as u32;
        self.ids.insert(s.to_owned(), i);
        self.list.push(s.to_owned());
        u64::from(i)
    }
}

fn intern(list: &mut Vec<Holder>, ids: &mut HashMap<Holder, u64>, h: Holder) -> u64 {
    if let Some(&i) = ids.get(&h) {
        return i;
    }
    let i = list.len() as u64;
    list.push(h.clone());
    ids.insert(h, i);
    i
}

impl TableBuilder {
    /// A builder whose span attribute keys (and whether each has terms) are `span_keys`.
    pub(super) fn new(span_keys: BTreeMap<String, bool>) -> Self {
        TableBuilder {
            span_keys,
            ..TableBuilder::default()
        }
    }

    pub(super) fn resource(&mut self, s: &SpanRecord) -> u64 {
        let ptr = std::sync::Arc::as_ptr(&s.resource);
        if let Some(&i) = self.resource_by_ptr.get(&ptr) {
            return i;
        }
        let h = Holder {
            service: s.service_name().to_owned(),
            attrs: s.resource.resource.attributes.iter().map(attr).collect(),
        };
        let i = intern(&mut self.resources, &mut self.resource_ids, h);
        self.resource_by_ptr.insert(ptr, i);
        i
    }

    pub(super) fn scope(&mut self, s: &SpanRecord) -> u64 {
        let ptr = std::sync::Arc::as_ptr(&s.scope);
        if let Some(&i) = self.scope_by_ptr.get(&ptr) {
            return i;
        }
        let h = Holder {
            service: String::new(),
            attrs: s.scope.scope.attributes.iter().map(attr).collect(),
        };
        let i = intern(&mut self.scopes, &mut self.scope_ids, h);
        self.scope_by_ptr.insert(ptr, i);
        i
    }

    pub(super) fn encode(&self) -> Result<Vec<u8>> {
        let mut strings = Strings::default();
        let mut body = Vec::new();
        push_varint(&mut body, self.traces.len() as u64);
        let base = self
            .traces
            .iter()
            .map(|t| t.start_unix_nano)
            .min()
            .unwrap_or(0);
        push_varint(&mut body, base);
        for t in &self.traces {
            body.extend_from_slice(&t.trace_id.0);
            push_varint(&mut body, t.start_unix_nano - base);
            push_varint(&mut body, t.duration_nanos);
            push_varint(&mut body, t.span_count);
            push_varint(&mut body, t.error_count);
            push_varint(&mut body, t.orphan_span_count);
            push_varint(&mut body, strings.id(&t.root_service_name));
            push_varint(&mut body, strings.id(&t.root_span_name));
            push_varint(&mut body, t.services.len() as u64);
            for (name, st) in &t.services {
                push_varint(&mut body, strings.id(name));
                push_varint(&mut body, st.spans);
                push_varint(&mut body, st.errors);
            }
        }
        for holders in [&self.resources, &self.scopes] {
            push_varint(&mut body, holders.len() as u64);
            for h in holders {
                push_varint(&mut body, strings.id(&h.service));
                push_varint(&mut body, h.attrs.len() as u64);
                for (k, ty, v) in &h.attrs {
                    push_varint(&mut body, strings.id(k));
                    body.push(*ty);
                    push_varint(&mut body, strings.id(v));
                }
            }
        }
        push_varint(&mut body, self.span_keys.len() as u64);
        for (key, indexed) in &self.span_keys {
            push_varint(&mut body, strings.id(key));
            body.push(u8::from(*indexed));
        }
        push_varint(&mut body, self.operations.len() as u64);
        for (svc, name, kind) in &self.operations {
            push_varint(&mut body, strings.id(svc));
            push_varint(&mut body, strings.id(name));
            push_varint(&mut body, u64::from(*kind as u32));
        }
        push_varint(&mut body, self.calls.len() as u64);
        for ((parent, child), n) in &self.calls {
            push_varint(&mut body, strings.id(parent));
            push_varint(&mut body, strings.id(child));
            push_varint(&mut body, *n);
        }
        let mut out = Vec::new();
        push_varint(&mut out, strings.list.len() as u64);
        for s in &strings.list {
            push_varint(&mut out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(&body);
        zstd::encode_all(out.as_slice(), 3).map_err(|e| Error::Task(e.to_string()))
    }
}

/// The decoded table.
#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) traces: Vec<TraceSummary>,
    /// First document of each trace, plus the document count at the end.
    pub(super) first_doc: Vec<u32>,
    pub(super) resources: Vec<Holder>,
    pub(super) scopes: Vec<Holder>,
    /// Span attribute keys, and whether each has terms.
    pub(super) span_keys: BTreeMap<String, bool>,
    pub(super) operations: BTreeSet<(String, String, i32)>,
    pub(super) calls: BTreeMap<(String, String), u64>,
}

impl Table {
    pub(super) fn decode(packed: &[u8], location: &str) -> Result<Table> {
        let raw = zstd::decode_all(packed).map_err(|e| Error::corrupt("tag index", location, e))?;
        Self::decode_raw(&raw).ok_or_else(|| {
            Error::corrupt(
                "tag index",
                location,
                "the trace table is truncated or corrupt",
            )
        })
    }

    fn decode_raw(raw: &[u8]) -> Option<Table> {
        let mut r = Cursor { buf: raw, pos: 0 };
        let n_strings = r.varint()?;
        let mut strings = Vec::new();
        for _ in 0..n_strings {
            let len = r.len()?;
            strings.push(std::str::from_utf8(r.take(len)?).ok()?.to_owned());
        }
        let s = |i: u64| strings.get(usize::try_from(i).ok()?).cloned();
        let mut t = Table::default();
        let n = r.varint()?;
        let base = r.varint()?;
        let mut doc = 0u32;
        for _ in 0..n {
            let trace_id = TraceId(r.array()?);
            let start_unix_nano = base.checked_add(r.varint()?)?;
            let duration_nanos = r.varint()?;
            let span_count = r.varint()?;
            let error_count = r.varint()?;
            let orphan_span_count = r.varint()?;
            let root_service_name = s(r.varint()?)?;
            let root_span_name = s(r.varint()?)?;
            let mut services = BTreeMap::new();
            for _ in 0..r.varint()? {
                let name = s(r.varint()?)?;
                let spans = r.varint()?;
                let errors = r.varint()?;
                services.insert(name, ServiceStats { spans, errors });
            }
            t.first_doc.push(doc);
            doc = doc.checked_add(u32::try_from(span_count).ok()?)?;
            t.traces.push(TraceSummary {
                trace_id,
                root_service_name,
                root_span_name,
                start_unix_nano,
                duration_nanos,
                span_count,
                error_count,
                orphan_span_count,
                services,
            });
        }
        t.first_doc.push(doc);
        for which in 0..2 {
            let mut holders = Vec::new();
            for _ in 0..r.varint()? {
                let service = s(r.varint()?)?;
                let mut attrs = Vec::new();
                for _ in 0..r.varint()? {
                    let k = s(r.varint()?)?;
                    let ty = r.byte()?;
                    let v = s(r.varint()?)?;
                    attrs.push((k, ty, v));
                }
                holders.push(Holder { service, attrs });
            }
            match which {
                0 => t.resources = holders,
                _ => t.scopes = holders,
            }
        }
        for _ in 0..r.varint()? {
            let key = s(r.varint()?)?;
            let indexed = r.byte()? != 0;
            t.span_keys.insert(key, indexed);
        }
        for _ in 0..r.varint()? {
            let svc = s(r.varint()?)?;
            let name = s(r.varint()?)?;
            let kind = u32::try_from(r.varint()?).ok()? as i32;
            t.operations.insert((svc, name, kind));
        }
        for _ in 0..r.varint()? {
            let parent = s(r.varint()?)?;
            let child = s(r.varint()?)?;
            t.calls.insert((parent, child), r.varint()?);
        }
        (r.pos == raw.len()).then_some(t)
    }
}
