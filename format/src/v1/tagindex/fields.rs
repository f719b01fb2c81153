//! The tantivy schema of the tag index, one document per span: the field names, their
//! handles ([`Fields`]), the logarithmic buckets of the `dur` and `start` fast fields, and
//! the values of the `parent` fast field.

use tantivy::schema::{
    BytesOptions, FAST, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions,
};

use crate::error::{Error, Result};

pub(super) mod field {
    pub(crate) const NAME: &str = "name";
    pub(crate) const SPAN_ATTR: &str = "span_attr";
    pub(crate) const RES: &str = "res";
    pub(crate) const SCOPE: &str = "scope";
    pub(crate) const DUR: &str = "dur";
    pub(crate) const START: &str = "start";
    pub(crate) const KS: &str = "ks";
    pub(crate) const PARENT: &str = "parent";
}

/// `parent` of a span without a parent ID (a root).
pub(super) const PARENT_NONE: u64 = 0;
/// `parent` of a span whose parent is not known from this block alone: its parent ID names
/// no span, or several, of the trace's spans in the block, or the span lies on a cycle of
/// parent links.
pub(super) const PARENT_UNKNOWN: u64 = 1;
/// `parent` of a span whose parent is the trace's span at document `first + p` (the trace's
/// first document plus `p`) is `PARENT_AT + p`.
pub(super) const PARENT_AT: u64 = 2;

#[derive(Debug, Clone, Copy)]
pub(super) struct Fields {
    pub(super) name: Field,
    pub(super) span_attr: Field,
    pub(super) res: Field,
    pub(super) scope: Field,
    pub(super) dur: Field,
    pub(super) start: Field,
    pub(super) ks: Field,
    pub(super) parent: Field,
}

pub(super) fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let raw = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_fieldnorms(false)
            .set_index_option(IndexRecordOption::Basic),
    );
    let fields = Fields {
        name: b.add_text_field(field::NAME, raw),
        span_attr: b.add_bytes_field(field::SPAN_ATTR, BytesOptions::default().set_indexed()),
        res: b.add_u64_field(field::RES, FAST),
        scope: b.add_u64_field(field::SCOPE, FAST),
        dur: b.add_u64_field(field::DUR, FAST),
        start: b.add_u64_field(field::START, FAST),
        ks: b.add_u64_field(field::KS, FAST),
        parent: b.add_u64_field(field::PARENT, FAST),
    };
    (b.build(), fields)
}

pub(super) fn fields_of(schema: &Schema) -> Result<Fields> {
    let get = |name: &str| {
        schema
            .get_field(name)
            .map_err(|e| Error::corrupt("tag index", "schema", e))
    };
    Ok(Fields {
        name: get(field::NAME)?,
        span_attr: get(field::SPAN_ATTR)?,
        res: get(field::RES)?,
        scope: get(field::SCOPE)?,
        dur: get(field::DUR)?,
        start: get(field::START)?,
        ks: get(field::KS)?,
        parent: get(field::PARENT)?,
    })
}

/// The duration bucket of `nanos`: 16 buckets per power of two, monotonic, integer-only so
/// that writer and reader agree on every platform.
pub fn duration_bucket(nanos: u64) -> u64 {
    if nanos < 16 {
        return nanos;
    }
    let bits = 64 - u64::from(nanos.leading_zeros()); // ≥ 5
    let mantissa = (nanos >> (bits - 5)) & 0xf; // the 4 bits after the leading one
    (bits - 4) * 16 + mantissa
}

/// The smallest and largest value of bucket `b` of [`duration_bucket`].
pub fn bucket_range(b: u64) -> (u64, u64) {
    if b < 16 {
        return (b, b);
    }
    let shift = (b / 16 + 4).saturating_sub(5).min(59);
    let lo = (16 + b % 16) << shift;
    (lo, lo.saturating_add((1u64 << shift) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_ranges_hold_their_values_and_tile_the_line() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        for i in 0..100_000u64 {
            let v = match i % 3 {
                0 => i,
                1 => rng.random::<u64>() >> rng.random_range(0..64),
                _ => u64::MAX - i,
            };
            let b = duration_bucket(v);
            let (lo, hi) = bucket_range(b);
            assert!(lo <= v && v <= hi, "{v} in bucket {b} = {lo}..={hi}");
            assert_eq!(duration_bucket(lo), b);
            assert_eq!(duration_bucket(hi), b);
            if hi < u64::MAX {
                assert_eq!(duration_bucket(hi + 1), b + 1, "buckets are contiguous");
            }
        }
    }
}
