//! Reading part of a span: a search decodes only the columns its query can observe
//! ([`SpanParts`]), which saves most of the decoding (a block has some sixty leaf columns, and
//! every column chunk read costs its decompression and a codec's set-up).
//!
//! The parts left out come back empty, in one canonical form ([`SpanParts::strip`]), so that a
//! span read in part from a block and the same span held whole elsewhere (an ingester) compare
//! equal once both are stripped: the merge of a trace's pieces still drops the copies.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::{Field, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::model::{ResourceInfo, SERVICE_NAME, ScopeInfo, SpanRecord};
use crate::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
use crate::otlp::resource::v1::Resource;
use crate::schema::{AttrScope, DEDICATED, col};

/// Which attributes of a list a read decodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// None: the list comes back empty.
    None,
    /// The attributes with these keys (every one of them, wherever the block stores it).
    Only(BTreeSet<String>),
    /// Every attribute, and the list's other fields (dropped count, schema URL, entity
    /// references).
    All,
}

impl Keys {
    fn reads_key(&self, key: &str) -> bool {
        match self {
            Keys::None => false,
            Keys::Only(keys) => keys.contains(key),
            Keys::All => true,
        }
    }

    /// Reads what `other` reads too.
    pub fn merge(&mut self, other: &Keys) {
        match (&mut *self, other) {
            (_, Keys::None) | (Keys::All, _) => {}
            (_, Keys::All) => *self = Keys::All,
            (Keys::None, Keys::Only(b)) => *self = Keys::Only(b.clone()),
            (Keys::Only(a), Keys::Only(b)) => a.extend(b.iter().cloned()),
        }
    }

    /// Adds `key` to the keys read.
    pub fn add(&mut self, key: &str) {
        match self {
            Keys::None => *self = Keys::Only(BTreeSet::from([key.to_owned()])),
            Keys::Only(keys) => {
                keys.insert(key.to_owned());
            }
            Keys::All => {}
        }
    }
}

/// Which parts of a span a read decodes. The core of a span is always read: IDs, parent,
/// name, kind, times, status code, and the service name. The trace-level columns (the
/// trace's duration and root) are never read: spans do not hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanParts {
    /// The span's attributes (generic list and dedicated span columns) and dropped count.
    pub span_attrs: Keys,
    /// The span's events.
    pub events: bool,
    /// The span's links.
    pub links: bool,
    /// The resource's attributes besides the first string `service.name` (always read),
    /// and with [`Keys::All`] its dropped count, schema URL and entity references.
    pub resource: Keys,
    /// The instrumentation scope: name, version, attributes, schema URL.
    pub scope: bool,
    /// The span's status message, trace state and flags.
    pub extras: bool,
}

impl Default for SpanParts {
    fn default() -> Self {
        SpanParts::ALL
    }
}

impl SpanParts {
    /// Every part: whole spans.
    pub const ALL: SpanParts = SpanParts {
        span_attrs: Keys::All,
        events: true,
        links: true,
        resource: Keys::All,
        scope: true,
        extras: true,
    };

    /// The core only.
    pub const CORE: SpanParts = SpanParts {
        span_attrs: Keys::None,
        events: false,
        links: false,
        resource: Keys::None,
        scope: false,
        extras: false,
    };

    /// Reads what `other` reads too.
    pub fn merge(&mut self, other: &SpanParts) {
        self.span_attrs.merge(&other.span_attrs);
        self.events |= other.events;
        self.links |= other.links;
        self.resource.merge(&other.resource);
        self.scope |= other.scope;
        self.extras |= other.extras;
    }

    /// True when every part is read.
    pub fn is_all(&self) -> bool {
        *self == SpanParts::ALL
    }

    /// Whether the top-level column `name` is read.
    pub(crate) fn reads(&self, name: &str) -> bool {
        if let Some(d) = DEDICATED.iter().find(|d| d.column == name) {
            return match d.scope {
                AttrScope::Span => self.span_attrs.reads_key(d.key),
                AttrScope::Resource => name == col::SERVICE_NAME || self.resource.reads_key(d.key),
            };
        }
        match name {
            // Facts of the whole trace, for pruning and statistics: a span does not hold them.
            col::TRACE_DURATION | col::ROOT_SERVICE_NAME | col::ROOT_SPAN_NAME => false,
            col::STATUS_MESSAGE | col::TRACE_STATE | col::FLAGS => self.extras,
            col::ATTRS | col::DROPPED_ATTRS => self.span_attrs != Keys::None,
            col::EVENTS | col::DROPPED_EVENTS => self.events,
            col::LINKS | col::DROPPED_LINKS => self.links,
            col::RESOURCE_ATTRS => self.resource != Keys::None,
            col::RESOURCE_DROPPED_ATTRS | col::RESOURCE_SCHEMA_URL | col::RESOURCE_ENTITY_REFS => {
                self.resource == Keys::All
            }
            col::SCOPE_NAME
            | col::SCOPE_VERSION
            | col::SCOPE_ATTRS
            | col::SCOPE_DROPPED_ATTRS
            | col::SCOPE_SCHEMA_URL => self.scope,
            _ => true,
        }
    }

    /// Empties the parts of `s` this value does not read, in the canonical form a partial
    /// read gives them.
    pub fn strip(&self, s: &mut SpanRecord) {
        match &self.span_attrs {
            Keys::All => {}
            Keys::None => {
                s.span.attributes.clear();
                s.span.dropped_attributes_count = 0;
            }
            Keys::Only(keys) => {
                s.span.attributes.retain(|kv| keys.contains(&kv.key));
                s.span.dropped_attributes_count = 0;
            }
        }
        if !self.events {
            s.span.events.clear();
            s.span.dropped_events_count = 0;
        }
        if !self.links {
            s.span.links.clear();
            s.span.dropped_links_count = 0;
        }
        if let Keys::Only(keys) = &self.resource {
            let mut attributes = s.resource.resource.attributes.clone();
            attributes.retain(|kv| kv.key == SERVICE_NAME || keys.contains(&kv.key));
            s.resource = Arc::new(ResourceInfo {
                resource: Resource {
                    attributes,
                    ..Default::default()
                },
                schema_url: String::new(),
            });
        }
        if self.resource == Keys::None {
            let service = s.service_name().to_owned();
            let attributes = match service.is_empty() {
                true => Vec::new(),
                false => vec![KeyValue {
                    key: SERVICE_NAME.to_owned(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue(service)),
                    }),
                    ..Default::default()
                }],
            };
            s.resource = Arc::new(ResourceInfo {
                resource: Resource {
                    attributes,
                    ..Default::default()
                },
                schema_url: String::new(),
            });
        }
        if !self.scope {
            s.scope = Arc::new(ScopeInfo::default());
        }
        if !self.extras {
            s.span.trace_state.clear();
            s.span.flags = 0;
            // As the decoder writes a status without a message: none when the code is unset.
            if let Some(st) = &mut s.span.status {
                st.message.clear();
                if st.code == 0 {
                    s.span.status = None;
                }
            }
        }
    }
}

/// `batch` with the columns of `full` it lacks added as nulls (which decode as empty values),
/// so that the one decoder reads a partial batch like a whole one.
pub(crate) fn complete(batch: &RecordBatch, full: &SchemaRef) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let mut fields: Vec<Field> = Vec::with_capacity(full.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(full.fields().len());
    for f in full.fields() {
        match batch.column_by_name(f.name()) {
            Some(c) => {
                fields.push(f.as_ref().clone().with_nullable(true));
                columns.push(Arc::clone(c));
            }
            None => {
                fields.push(f.as_ref().clone().with_nullable(true));
                columns.push(new_null_array(f.data_type(), n));
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::corrupt("block", "partial read", e))
}
