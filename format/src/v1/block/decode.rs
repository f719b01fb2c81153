//! Turning `data.parquet` record batches back into span records.
//!
//! Parents are stored as row positions within the trace, and a child may come before its
//! parent, so spans are resolved one whole trace at a time: [`TraceAssembler`] buffers the
//! rows of the current trace and hands them out once the next trace starts.

use std::sync::Arc;

use arrow::array::{
    Array, BinaryArray, FixedSizeBinaryArray, Int32Array, Int64Array, ListArray, StringArray,
    StructArray, TimestampNanosecondArray, UInt32Array,
};
use arrow::record_batch::RecordBatch;
use prost::Message;

use super::attrs::AttrListReader;
use crate::error::{Error, Result};
use crate::model::{ResourceInfo, ScopeInfo, SpanRecord};
use crate::otlp::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use crate::otlp::resource::v1::Resource;
use crate::otlp::trace::v1::{Span, Status, span};
use crate::schema::{AttrScope, DEDICATED, col};

fn corrupt(reason: impl std::fmt::Display) -> Error {
    Error::corrupt("data.parquet", "record batch", reason)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .ok_or_else(|| corrupt(format!("column {name} missing")))?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| corrupt(format!("column {name} has an unexpected type")))
}

fn struct_field<'a, T: 'static>(s: &'a StructArray, name: &str) -> Result<&'a T> {
    s.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| corrupt(format!("field {name} missing or mistyped")))
}

enum DedicatedColumn<'a> {
    Str(&'a StringArray),
    Int(&'a Int64Array),
    Missing,
}

/// Typed views of every column of one batch.
struct Columns<'a> {
    trace_id: &'a FixedSizeBinaryArray,
    trace_start: &'a TimestampNanosecondArray,
    span_id: &'a FixedSizeBinaryArray,
    parent_index: &'a Int32Array,
    parent_span_id: &'a BinaryArray,
    trace_state: &'a StringArray,
    flags: &'a UInt32Array,
    name: &'a StringArray,
    kind: &'a Int32Array,
    start_offset: &'a Int64Array,
    duration: &'a Int64Array,
    status_code: &'a Int32Array,
    status_message: &'a StringArray,
    attrs: AttrListReader<'a>,
    dropped_attrs: &'a UInt32Array,
    events: &'a ListArray,
    event_time: &'a Int64Array,
    event_name: &'a StringArray,
    event_attrs: AttrListReader<'a>,
    event_dropped: &'a UInt32Array,
    dropped_events: &'a UInt32Array,
    links: &'a ListArray,
    link_trace_id: &'a BinaryArray,
    link_span_id: &'a BinaryArray,
    link_trace_state: &'a StringArray,
    link_flags: &'a UInt32Array,
    link_attrs: AttrListReader<'a>,
    link_dropped: &'a UInt32Array,
    dropped_links: &'a UInt32Array,
    resource_attrs: AttrListReader<'a>,
    resource_dropped: &'a UInt32Array,
    resource_schema_url: &'a StringArray,
    resource_entity_refs: &'a BinaryArray,
    scope_name: &'a StringArray,
    scope_version: &'a StringArray,
    scope_attrs: AttrListReader<'a>,
    scope_dropped: &'a UInt32Array,
    scope_schema_url: &'a StringArray,
    dedicated: Vec<DedicatedColumn<'a>>,
}

impl<'a> Columns<'a> {
    fn new(b: &'a RecordBatch) -> Result<Self> {
        let events: &ListArray = column(b, col::EVENTS)?;
        let ev = events
            .values()
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| corrupt("events is not a list of structs"))?;
        let links: &ListArray = column(b, col::LINKS)?;
        let lk = links
            .values()
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| corrupt("links is not a list of structs"))?;
        let attr_list = |name: &str| -> Result<AttrListReader<'a>> {
            AttrListReader::new(
                b.column_by_name(name)
                    .ok_or_else(|| corrupt(format!("column {name} missing")))?
                    .as_ref(),
            )
        };
        let nested_attrs = |s: &'a StructArray| -> Result<AttrListReader<'a>> {
            AttrListReader::new(
                s.column_by_name("attrs")
                    .ok_or_else(|| corrupt("nested attrs missing"))?
                    .as_ref(),
            )
        };
        let dedicated = DEDICATED
            .iter()
            .map(|d| match b.column_by_name(d.column) {
                // Columns appended to the format later are simply absent in older blocks.
                None => Ok(DedicatedColumn::Missing),
                Some(c) => {
                    if let Some(a) = c.as_any().downcast_ref::<StringArray>() {
                        Ok(DedicatedColumn::Str(a))
                    } else if let Some(a) = c.as_any().downcast_ref::<Int64Array>() {
                        Ok(DedicatedColumn::Int(a))
                    } else {
                        Err(corrupt(format!(
                            "column {} has an unexpected type",
                            d.column
                        )))
                    }
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Columns {
            trace_id: column(b, col::TRACE_ID)?,
            trace_start: column(b, col::TRACE_START)?,
            span_id: column(b, col::SPAN_ID)?,
            parent_index: column(b, col::PARENT_INDEX)?,
            parent_span_id: column(b, col::PARENT_SPAN_ID)?,
            trace_state: column(b, col::TRACE_STATE)?,
            flags: column(b, col::FLAGS)?,
            name: column(b, col::NAME)?,
            kind: column(b, col::KIND)?,
            start_offset: column(b, col::START_OFFSET)?,
            duration: column(b, col::DURATION)?,
            status_code: column(b, col::STATUS_CODE)?,
            status_message: column(b, col::STATUS_MESSAGE)?,
            attrs: attr_list(col::ATTRS)?,
            dropped_attrs: column(b, col::DROPPED_ATTRS)?,
            events,
            event_time: struct_field(ev, "time_offset_nano")?,
            event_name: struct_field(ev, "name")?,
            event_attrs: nested_attrs(ev)?,
            event_dropped: struct_field(ev, "dropped_attributes_count")?,
            dropped_events: column(b, col::DROPPED_EVENTS)?,
            links,
            link_trace_id: struct_field(lk, "trace_id")?,
            link_span_id: struct_field(lk, "span_id")?,
            link_trace_state: struct_field(lk, "trace_state")?,
            link_flags: struct_field(lk, "flags")?,
            link_attrs: nested_attrs(lk)?,
            link_dropped: struct_field(lk, "dropped_attributes_count")?,
            dropped_links: column(b, col::DROPPED_LINKS)?,
            resource_attrs: attr_list(col::RESOURCE_ATTRS)?,
            resource_dropped: column(b, col::RESOURCE_DROPPED_ATTRS)?,
            resource_schema_url: column(b, col::RESOURCE_SCHEMA_URL)?,
            resource_entity_refs: column(b, col::RESOURCE_ENTITY_REFS)?,
            scope_name: column(b, col::SCOPE_NAME)?,
            scope_version: column(b, col::SCOPE_VERSION)?,
            scope_attrs: attr_list(col::SCOPE_ATTRS)?,
            scope_dropped: column(b, col::SCOPE_DROPPED_ATTRS)?,
            scope_schema_url: column(b, col::SCOPE_SCHEMA_URL)?,
            dedicated,
        })
    }

    /// Appends the dedicated attributes of `scope` at `row` to `out`.
    fn dedicated_into(&self, scope: AttrScope, row: usize, out: &mut Vec<KeyValue>) {
        for (d, c) in DEDICATED.iter().zip(&self.dedicated) {
            if d.scope != scope {
                continue;
            }
            let value = match c {
                DedicatedColumn::Str(a) if a.is_valid(row) => {
                    Value::StringValue(a.value(row).to_owned())
                }
                DedicatedColumn::Int(a) if a.is_valid(row) => Value::IntValue(a.value(row)),
                _ => continue,
            };
            out.push(KeyValue {
                key: d.key.to_owned(),
                value: Some(AnyValue { value: Some(value) }),
                ..Default::default()
            });
        }
    }

    fn resource(&self, row: usize) -> Result<ResourceInfo> {
        let mut attributes = Vec::new();
        self.dedicated_into(AttrScope::Resource, row, &mut attributes);
        self.resource_attrs.read_into(row, &mut attributes)?;
        let entity_refs = if self.resource_entity_refs.is_valid(row) {
            Resource::decode(self.resource_entity_refs.value(row))
                .map_err(|e| corrupt(format!("undecodable entity refs: {e}")))?
                .entity_refs
        } else {
            Vec::new()
        };
        Ok(ResourceInfo {
            resource: Resource {
                attributes,
                dropped_attributes_count: self.resource_dropped.value(row),
                entity_refs,
            },
            schema_url: self.resource_schema_url.value(row).to_owned(),
        })
    }

    fn scope(&self, row: usize) -> Result<ScopeInfo> {
        Ok(ScopeInfo {
            scope: InstrumentationScope {
                name: self.scope_name.value(row).to_owned(),
                version: self.scope_version.value(row).to_owned(),
                attributes: self.scope_attrs.read(row)?,
                dropped_attributes_count: self.scope_dropped.value(row),
            },
            schema_url: self.scope_schema_url.value(row).to_owned(),
        })
    }

    fn span(&self, row: usize) -> Result<Span> {
        let trace_start = self.trace_start.value(row) as u64;
        let start = trace_start.wrapping_add(self.start_offset.value(row) as u64);
        let end = start.wrapping_add(self.duration.value(row) as u64);
        let mut attributes = Vec::new();
        self.dedicated_into(AttrScope::Span, row, &mut attributes);
        self.attrs.read_into(row, &mut attributes)?;

        let ev = self.events.value_offsets();
        let events = (ev[row] as usize..ev[row + 1] as usize)
            .map(|i| {
                Ok(span::Event {
                    time_unix_nano: start.wrapping_add(self.event_time.value(i) as u64),
                    name: self.event_name.value(i).to_owned(),
                    attributes: self.event_attrs.read(i)?,
                    dropped_attributes_count: self.event_dropped.value(i),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lk = self.links.value_offsets();
        let links = (lk[row] as usize..lk[row + 1] as usize)
            .map(|i| {
                Ok(span::Link {
                    trace_id: self.link_trace_id.value(i).to_vec(),
                    span_id: self.link_span_id.value(i).to_vec(),
                    trace_state: self.link_trace_state.value(i).to_owned(),
                    attributes: self.link_attrs.read(i)?,
                    dropped_attributes_count: self.link_dropped.value(i),
                    flags: self.link_flags.value(i),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (code, message) = (self.status_code.value(row), self.status_message.value(row));
        let status = (code != 0 || !message.is_empty()).then(|| Status {
            code,
            message: message.to_owned(),
        });
        Ok(Span {
            trace_id: self.trace_id.value(row).to_vec(),
            span_id: self.span_id.value(row).to_vec(),
            trace_state: self.trace_state.value(row).to_owned(),
            // Filled in by the assembler once the whole trace is known.
            parent_span_id: if self.parent_span_id.is_valid(row) {
                self.parent_span_id.value(row).to_vec()
            } else {
                Vec::new()
            },
            flags: self.flags.value(row),
            name: self.name.value(row).to_owned(),
            kind: self.kind.value(row),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            dropped_attributes_count: self.dropped_attrs.value(row),
            events,
            dropped_events_count: self.dropped_events.value(row),
            links,
            dropped_links_count: self.dropped_links.value(row),
            status,
        })
    }
}

/// Reassembles spans from batches that hold whole traces in row order.
#[derive(Debug, Default)]
pub struct TraceAssembler {
    current: Vec<SpanRecord>,
    parents: Vec<Option<i32>>,
    last_resource: Option<Arc<ResourceInfo>>,
    last_scope: Option<Arc<ScopeInfo>>,
}

impl TraceAssembler {
    /// A new assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a batch; returns the spans of every trace that is now complete.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Vec<SpanRecord>> {
        let c = Columns::new(batch)?;
        let mut done = Vec::new();
        for row in 0..batch.num_rows() {
            let id = c.trace_id.value(row);
            if self.current.first().is_some_and(|s| s.span.trace_id != id) {
                done.extend(self.take_trace()?);
            }
            // Consecutive rows usually share resource and scope: share the `Arc` too.
            let resource = c.resource(row)?;
            let resource = match &self.last_resource {
                Some(r) if **r == resource => Arc::clone(r),
                _ => {
                    let r = Arc::new(resource);
                    self.last_resource = Some(Arc::clone(&r));
                    r
                }
            };
            let scope = c.scope(row)?;
            let scope = match &self.last_scope {
                Some(s) if **s == scope => Arc::clone(s),
                _ => {
                    let s = Arc::new(scope);
                    self.last_scope = Some(Arc::clone(&s));
                    s
                }
            };
            self.parents.push(
                c.parent_index
                    .is_valid(row)
                    .then(|| c.parent_index.value(row)),
            );
            self.current.push(SpanRecord {
                resource,
                scope,
                span: c.span(row)?,
            });
        }
        Ok(done)
    }

    /// Returns the last trace; call after the final batch.
    pub fn finish(&mut self) -> Result<Vec<SpanRecord>> {
        self.take_trace()
    }

    fn take_trace(&mut self) -> Result<Vec<SpanRecord>> {
        let mut trace = std::mem::take(&mut self.current);
        let parents = std::mem::take(&mut self.parents);
        for (i, p) in parents.into_iter().enumerate() {
            if let Some(p) = p {
                let parent_id = usize::try_from(p)
                    .ok()
                    .and_then(|p| trace.get(p))
                    .map(|parent| parent.span.span_id.clone())
                    .ok_or_else(|| {
                        corrupt(format!(
                            "parent_index {p} outside its trace of {} rows",
                            trace.len()
                        ))
                    })?;
                trace[i].span.parent_span_id = parent_id;
            }
        }
        Ok(trace)
    }
}
