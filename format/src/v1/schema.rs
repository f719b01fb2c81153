//! The Arrow/Parquet schema of `data.parquet`, block format v1.
//!
//! One row per span, rows sorted by trace ID. Columns fall into four groups:
//!
//! - **trace-level facts** repeated on every row of a trace (`trace_id`, `trace_start`,
//!   `trace_duration_nano`, `root_service_name`, `root_span_name`): run-length encoding makes
//!   them nearly free, and they let search answer without reassembling traces;
//! - **span columns** (`span_id`, `parent_index`, times relative to the trace start, name,
//!   kind, status, …);
//! - **dedicated attribute columns** for the attributes search uses most ([`DEDICATED`]);
//! - **generic attribute lists** holding every other attribute of the span, its resource, its
//!   scope, its events and its links, typed so that nothing is lost.
//!
//! Every column is documented in `docs/block-format.md`; the names below are part of the
//! format.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// Column names. Each column is specified in `docs/block-format.md` ("Parquet schema").
#[allow(missing_docs)]
pub mod col {
    pub const TRACE_ID: &str = "trace_id";
    pub const TRACE_START: &str = "trace_start";
    pub const TRACE_DURATION: &str = "trace_duration_nano";
    pub const ROOT_SERVICE_NAME: &str = "root_service_name";
    pub const ROOT_SPAN_NAME: &str = "root_span_name";
    pub const SPAN_ID: &str = "span_id";
    pub const PARENT_INDEX: &str = "parent_index";
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    pub const TRACE_STATE: &str = "trace_state";
    pub const FLAGS: &str = "flags";
    pub const SERVICE_NAME: &str = "service_name";
    pub const NAME: &str = "name";
    pub const KIND: &str = "kind";
    pub const START_OFFSET: &str = "start_offset_nano";
    pub const DURATION: &str = "duration_nano";
    pub const STATUS_CODE: &str = "status_code";
    pub const STATUS_MESSAGE: &str = "status_message";
    pub const ATTRS: &str = "attrs";
    pub const DROPPED_ATTRS: &str = "dropped_attributes_count";
    pub const EVENTS: &str = "events";
    pub const DROPPED_EVENTS: &str = "dropped_events_count";
    pub const LINKS: &str = "links";
    pub const DROPPED_LINKS: &str = "dropped_links_count";
    pub const RESOURCE_ATTRS: &str = "resource_attrs";
    pub const RESOURCE_DROPPED_ATTRS: &str = "resource_dropped_attributes_count";
    pub const RESOURCE_SCHEMA_URL: &str = "resource_schema_url";
    pub const RESOURCE_ENTITY_REFS: &str = "resource_entity_refs";
    pub const SCOPE_NAME: &str = "scope_name";
    pub const SCOPE_VERSION: &str = "scope_version";
    pub const SCOPE_ATTRS: &str = "scope_attrs";
    pub const SCOPE_DROPPED_ATTRS: &str = "scope_dropped_attributes_count";
    pub const SCOPE_SCHEMA_URL: &str = "scope_schema_url";
}

/// Fields of one entry of a generic attribute list (`docs/block-format.md`, "Generic
/// attributes").
#[allow(missing_docs)]
pub mod attr {
    pub const KEY: &str = "key";
    pub const TYPE: &str = "type";
    pub const STR: &str = "str";
    pub const INT: &str = "int";
    pub const DOUBLE: &str = "double";
    pub const BOOL: &str = "bool";
    pub const BYTES: &str = "bytes";
}

/// The `type` of a generic attribute entry, saying which value field holds its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum AttrType {
    /// `KeyValue.value` absent.
    Absent = 0,
    /// An `AnyValue` with no value set.
    Empty = 1,
    /// `str`.
    String = 2,
    /// `bool`.
    Bool = 3,
    /// `int`.
    Int = 4,
    /// `double`.
    Double = 5,
    /// `bytes`: raw bytes.
    Bytes = 6,
    /// `bytes`: the protobuf encoding of the `AnyValue` (array).
    Array = 7,
    /// `bytes`: the protobuf encoding of the `AnyValue` (key-value list).
    KvList = 8,
    /// `int`: a string-table index (profiling signal; kept, not interpreted).
    StrIndex = 9,
}

impl AttrType {
    /// Decodes a stored type tag.
    pub fn from_i8(v: i8) -> Option<Self> {
        use AttrType::*;
        Some(match v {
            0 => Absent,
            1 => Empty,
            2 => String,
            3 => Bool,
            4 => Int,
            5 => Double,
            6 => Bytes,
            7 => Array,
            8 => KvList,
            9 => StrIndex,
            _ => return None,
        })
    }
}

/// Where a dedicated attribute lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrScope {
    /// A span attribute.
    Span,
    /// A resource attribute.
    Resource,
}

/// The value type a dedicated column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedicatedType {
    /// A string attribute.
    Str,
    /// An integer attribute.
    Int,
}

/// A frequently searched attribute that gets a column of its own.
#[derive(Debug, Clone, Copy)]
pub struct Dedicated {
    /// Attribute key.
    pub key: &'static str,
    /// Span or resource attribute.
    pub scope: AttrScope,
    /// Value type. An attribute with this key but another type stays in the generic list.
    pub ty: DedicatedType,
    /// Column name.
    pub column: &'static str,
}

const fn ded(
    key: &'static str,
    scope: AttrScope,
    ty: DedicatedType,
    column: &'static str,
) -> Dedicated {
    Dedicated {
        key,
        scope,
        ty,
        column,
    }
}

/// Dedicated attribute columns. Old and new semantic-convention names both occur in the wild,
/// so both get a column. The first attribute with the key and the right value type goes to
/// the column; any other stays in the generic list, so the mapping is lossless.
///
/// Appending entries is a compatible change within format version 1 (readers treat a missing
/// column as all-null); removing or renaming one is not.
pub const DEDICATED: &[Dedicated] = {
    use AttrScope::{Resource as R, Span as S};
    use DedicatedType::{Int as I, Str as T};
    &[
        ded("service.name", R, T, col::SERVICE_NAME),
        ded("service.namespace", R, T, "res_service_namespace"),
        ded("service.version", R, T, "res_service_version"),
        ded(
            "deployment.environment.name",
            R,
            T,
            "res_deployment_environment_name",
        ),
        ded("deployment.environment", R, T, "res_deployment_environment"),
        ded("k8s.namespace.name", R, T, "res_k8s_namespace_name"),
        ded("k8s.pod.name", R, T, "res_k8s_pod_name"),
        ded("host.name", R, T, "res_host_name"),
        ded("http.request.method", S, T, "http_request_method"),
        ded("http.method", S, T, "http_method"),
        ded(
            "http.response.status_code",
            S,
            I,
            "http_response_status_code",
        ),
        ded("http.status_code", S, I, "http_status_code"),
        ded("http.route", S, T, "http_route"),
        ded("url.full", S, T, "url_full"),
        ded("http.url", S, T, "http_url"),
        ded("url.path", S, T, "url_path"),
        ded("server.address", S, T, "server_address"),
        ded("peer.service", S, T, "peer_service"),
        ded("db.system.name", S, T, "db_system_name"),
        ded("db.system", S, T, "db_system"),
        ded("db.namespace", S, T, "db_namespace"),
        ded("db.name", S, T, "db_name"),
        ded("db.operation.name", S, T, "db_operation_name"),
        ded("db.query.text", S, T, "db_query_text"),
        ded("db.statement", S, T, "db_statement"),
        ded("rpc.system", S, T, "rpc_system"),
        ded("rpc.service", S, T, "rpc_service"),
        ded("rpc.method", S, T, "rpc_method"),
        ded("messaging.system", S, T, "messaging_system"),
        ded(
            "messaging.destination.name",
            S,
            T,
            "messaging_destination_name",
        ),
        ded("error.type", S, T, "error_type"),
    ]
};

/// The struct fields of one generic attribute entry.
pub fn attr_fields() -> Fields {
    Fields::from(vec![
        Field::new(attr::KEY, DataType::Utf8, false),
        Field::new(attr::TYPE, DataType::Int8, false),
        Field::new(attr::STR, DataType::Utf8, true),
        Field::new(attr::INT, DataType::Int64, true),
        Field::new(attr::DOUBLE, DataType::Float64, true),
        Field::new(attr::BOOL, DataType::Boolean, true),
        Field::new(attr::BYTES, DataType::Binary, true),
    ])
}

/// The type of a generic attribute list column.
pub fn attr_list_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(attr_fields()),
        false,
    )))
}

/// Struct fields of one event.
pub fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("time_offset_nano", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("attrs", attr_list_type(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
}

/// Struct fields of one link.
pub fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::Binary, false),
        Field::new("span_id", DataType::Binary, false),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("flags", DataType::UInt32, false),
        Field::new("attrs", attr_list_type(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
}

fn list_of(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(fields),
        false,
    )))
}

/// The timestamp type used for absolute times (nanoseconds since the Unix epoch, UTC).
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    let mut fields = vec![
        Field::new(col::TRACE_ID, FixedSizeBinary(16), false),
        Field::new(col::TRACE_START, timestamp_type(), false),
        Field::new(col::TRACE_DURATION, Int64, false),
        Field::new(col::ROOT_SERVICE_NAME, Utf8, true),
        Field::new(col::ROOT_SPAN_NAME, Utf8, true),
        Field::new(col::SPAN_ID, FixedSizeBinary(8), false),
        Field::new(col::PARENT_INDEX, Int32, true),
        Field::new(col::PARENT_SPAN_ID, Binary, true),
        Field::new(col::TRACE_STATE, Utf8, false),
        Field::new(col::FLAGS, UInt32, false),
        Field::new(col::NAME, Utf8, false),
        Field::new(col::KIND, Int32, false),
        Field::new(col::START_OFFSET, Int64, false),
        Field::new(col::DURATION, Int64, false),
        Field::new(col::STATUS_CODE, Int32, false),
        Field::new(col::STATUS_MESSAGE, Utf8, false),
        Field::new(col::ATTRS, attr_list_type(), false),
        Field::new(col::DROPPED_ATTRS, UInt32, false),
        Field::new(col::EVENTS, list_of(event_fields()), false),
        Field::new(col::DROPPED_EVENTS, UInt32, false),
        Field::new(col::LINKS, list_of(link_fields()), false),
        Field::new(col::DROPPED_LINKS, UInt32, false),
        Field::new(col::RESOURCE_ATTRS, attr_list_type(), false),
        Field::new(col::RESOURCE_DROPPED_ATTRS, UInt32, false),
        Field::new(col::RESOURCE_SCHEMA_URL, Utf8, false),
        Field::new(col::RESOURCE_ENTITY_REFS, Binary, true),
        Field::new(col::SCOPE_NAME, Utf8, false),
        Field::new(col::SCOPE_VERSION, Utf8, false),
        Field::new(col::SCOPE_ATTRS, attr_list_type(), false),
        Field::new(col::SCOPE_DROPPED_ATTRS, UInt32, false),
        Field::new(col::SCOPE_SCHEMA_URL, Utf8, false),
    ];
    for d in DEDICATED {
        let ty = match d.ty {
            DedicatedType::Str => Utf8,
            DedicatedType::Int => Int64,
        };
        fields.push(Field::new(d.column, ty, true));
    }
    Arc::new(Schema::new(fields))
});

/// The schema of `data.parquet`.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_unique() {
        let s = schema();
        let mut names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn dedicated_keys_are_unique_per_scope() {
        for (i, a) in DEDICATED.iter().enumerate() {
            for b in &DEDICATED[i + 1..] {
                assert!(!(a.key == b.key && a.scope == b.scope), "{}", a.key);
            }
        }
    }
}
