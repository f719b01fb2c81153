//! Encoding and decoding of the generic attribute lists (`attrs`, `resource_attrs`,
//! `scope_attrs`, and the `attrs` of events and links).
//!
//! Each entry is a struct `{key, type, str, int, double, bool, bytes}`; `type` says which
//! value field is set (see [`AttrType`]). Arrays and key-value lists keep their protobuf
//! encoding in `bytes`, so any nesting depth round-trips exactly.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder, Float64Array,
    Float64Builder, Int8Array, Int8Builder, Int64Array, Int64Builder, ListArray, StringArray,
    StringBuilder, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::Field;
use prost::Message;

use super::source::{KvRef, ValueRef};
use crate::error::{Error, Result};
use crate::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
use crate::schema::{AttrType, attr, attr_fields};

/// Builds one generic attribute list column (or a nested one, inside events and links).
#[derive(Debug)]
pub(crate) struct AttrListBuilder {
    offsets: Vec<i32>,
    len: i32,
    keys: StringBuilder,
    types: Int8Builder,
    strs: StringBuilder,
    ints: Int64Builder,
    doubles: Float64Builder,
    bools: BooleanBuilder,
    bytes: BinaryBuilder,
}

impl AttrListBuilder {
    pub(crate) fn new() -> Self {
        AttrListBuilder {
            offsets: vec![0],
            len: 0,
            keys: StringBuilder::new(),
            types: Int8Builder::new(),
            strs: StringBuilder::new(),
            ints: Int64Builder::new(),
            doubles: Float64Builder::new(),
            bools: BooleanBuilder::new(),
            bytes: BinaryBuilder::new(),
        }
    }

    /// Appends one entry to the current list.
    pub(crate) fn push(&mut self, kv: &KvRef<'_>) {
        self.len += 1;
        self.keys.append_value(kv.key);
        let (ty, s, i, d, b, raw): (AttrType, Option<&str>, _, _, _, Option<&[u8]>) =
            match &kv.value {
                ValueRef::Absent => (AttrType::Absent, None, None, None, None, None),
                ValueRef::Empty => (AttrType::Empty, None, None, None, None, None),
                ValueRef::Str(s) => (AttrType::String, Some(*s), None, None, None, None),
                ValueRef::Bool(b) => (AttrType::Bool, None, None, None, Some(*b), None),
                ValueRef::Int(i) => (AttrType::Int, None, Some(*i), None, None, None),
                ValueRef::Double(d) => (AttrType::Double, None, None, Some(*d), None, None),
                ValueRef::Bytes(b) => (AttrType::Bytes, None, None, None, None, Some(*b)),
                ValueRef::Array(raw) => (AttrType::Array, None, None, None, None, Some(raw)),
                ValueRef::KvList(raw) => (AttrType::KvList, None, None, None, None, Some(raw)),
                ValueRef::StrIndex(i) => (
                    AttrType::StrIndex,
                    None,
                    Some(i64::from(*i)),
                    None,
                    None,
                    None,
                ),
            };
        self.types.append_value(ty as i8);
        self.strs.append_option(s);
        self.ints.append_option(i);
        self.doubles.append_option(d);
        self.bools.append_option(b);
        self.bytes.append_option(raw);
    }

    /// Closes the current list (one row, or one event/link).
    pub(crate) fn finish_list(&mut self) {
        self.offsets.push(self.len);
    }

    pub(crate) fn finish(&mut self) -> ArrayRef {
        let values = StructArray::new(
            attr_fields(),
            vec![
                Arc::new(self.keys.finish()) as ArrayRef,
                Arc::new(self.types.finish()),
                Arc::new(self.strs.finish()),
                Arc::new(self.ints.finish()),
                Arc::new(self.doubles.finish()),
                Arc::new(self.bools.finish()),
                Arc::new(self.bytes.finish()),
            ],
            None,
        );
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        self.len = 0;
        Arc::new(ListArray::new(
            Arc::new(Field::new("item", values.data_type().clone(), false)),
            OffsetBuffer::new(offsets.into()),
            Arc::new(values),
            None,
        ))
    }
}

/// Reads a generic attribute list column back.
#[derive(Debug)]
pub(crate) struct AttrListReader<'a> {
    list: &'a ListArray,
    keys: &'a StringArray,
    types: &'a Int8Array,
    strs: &'a StringArray,
    ints: &'a Int64Array,
    doubles: &'a Float64Array,
    bools: &'a BooleanArray,
    bytes: &'a BinaryArray,
}

fn field<'a, T: 'static>(s: &'a StructArray, name: &str) -> Result<&'a T> {
    s.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            Error::corrupt(
                "data.parquet",
                "attribute list",
                format!("field {name} missing or mistyped"),
            )
        })
}

impl<'a> AttrListReader<'a> {
    pub(crate) fn new(array: &'a dyn Array) -> Result<Self> {
        let list = array
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(|| Error::corrupt("data.parquet", "attribute list", "not a list"))?;
        let s = list
            .values()
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| {
                Error::corrupt("data.parquet", "attribute list", "not a list of structs")
            })?;
        Ok(AttrListReader {
            list,
            keys: field(s, attr::KEY)?,
            types: field(s, attr::TYPE)?,
            strs: field(s, attr::STR)?,
            ints: field(s, attr::INT)?,
            doubles: field(s, attr::DOUBLE)?,
            bools: field(s, attr::BOOL)?,
            bytes: field(s, attr::BYTES)?,
        })
    }

    /// The attributes of list `row`, appended to `out`.
    pub(crate) fn read_into(&self, row: usize, out: &mut Vec<KeyValue>) -> Result<()> {
        let offsets = self.list.value_offsets();
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        out.reserve(end - start);
        for i in start..end {
            out.push(self.entry(i)?);
        }
        Ok(())
    }

    pub(crate) fn read(&self, row: usize) -> Result<Vec<KeyValue>> {
        let mut out = Vec::new();
        self.read_into(row, &mut out)?;
        Ok(out)
    }

    fn entry(&self, i: usize) -> Result<KeyValue> {
        let bad =
            |reason: &str| Error::corrupt("data.parquet", "attribute list", reason.to_owned());
        let ty = AttrType::from_i8(self.types.value(i))
            .ok_or_else(|| bad(&format!("unknown attribute type {}", self.types.value(i))))?;
        let value = match ty {
            AttrType::Absent => None,
            AttrType::Empty => Some(AnyValue { value: None }),
            AttrType::String => Some(av(Value::StringValue(self.strs.value(i).to_owned()))),
            AttrType::Bool => Some(av(Value::BoolValue(self.bools.value(i)))),
            AttrType::Int => Some(av(Value::IntValue(self.ints.value(i)))),
            AttrType::Double => Some(av(Value::DoubleValue(self.doubles.value(i)))),
            AttrType::Bytes => Some(av(Value::BytesValue(self.bytes.value(i).to_vec()))),
            AttrType::Array | AttrType::KvList => Some(
                AnyValue::decode(self.bytes.value(i))
                    .map_err(|e| bad(&format!("undecodable nested value: {e}")))?,
            ),
            AttrType::StrIndex => Some(av(Value::StringValueStrindex(
                i32::try_from(self.ints.value(i)).map_err(|_| bad("string index out of range"))?,
            ))),
        };
        Ok(KeyValue {
            key: self.keys.value(i).to_owned(),
            value,
            ..Default::default()
        })
    }
}

fn av(v: Value) -> AnyValue {
    AnyValue { value: Some(v) }
}
