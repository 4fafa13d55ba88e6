//! Fingerprints: stable 128-bit hashes for code versions and data versions.
//!
//! XXH3-128 is used throughout: its output is fixed by a published specification, so a version
//! computed today matches one computed by a later build. It is not a cryptographic hash; versions
//! detect change, they do not defend against an adversary.
//!
//! **Invariant:** a [`RowFingerprint`] depends on the schema and the multiset of rows only: not on
//! row order, batch boundaries or file layout. Rows are encoded with Arrow's row format, each row
//! hashed, and the hashes summed (mod 2^128), which is order-independent and, unlike XOR, does not
//! let duplicate rows cancel out.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{RowConverter, SortField};
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

use crate::model::DataVersion;

/// Hex of the XXH3-128 hash of `bytes`.
pub(crate) fn hash_hex(bytes: &[u8]) -> String {
    format!("{:032x}", xxh3_128(bytes))
}

/// Incremental hashing of several byte strings, each length-prefixed so that boundaries count.
#[derive(Default)]
pub(crate) struct Hasher(Xxh3);

impl Hasher {
    pub(crate) fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// Adds `bytes` as they are, for a value that arrives in chunks.
    pub(crate) fn chunk(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(bytes);
        self
    }

    pub(crate) fn finish_hex(&self) -> String {
        format!("{:032x}", self.0.digest128())
    }
}

/// Accumulates an order-independent fingerprint of record batches.
///
/// # Example
/// ```
/// # use std::sync::Arc;
/// # use datafusion::arrow::array::{Int64Array, RecordBatch};
/// # use datafusion::arrow::datatypes::{DataType, Field, Schema};
/// use freshet_core::fingerprint::RowFingerprint;
/// let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
/// let batch = |v: Vec<i64>| RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(v))]).unwrap();
/// let mut a = RowFingerprint::new(schema.clone()).unwrap();
/// a.update(&batch(vec![1, 2, 3])).unwrap();
/// let mut b = RowFingerprint::new(schema.clone()).unwrap();
/// b.update(&batch(vec![3])).unwrap();
/// b.update(&batch(vec![2, 1])).unwrap();
/// assert_eq!(a.finish(), b.finish());
/// ```
pub struct RowFingerprint {
    schema: SchemaRef,
    converter: RowConverter,
    sum: u128,
    rows: u64,
}

impl std::fmt::Debug for RowFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowFingerprint")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl RowFingerprint {
    /// Starts a fingerprint for batches of `schema`. Fails for column types Arrow's row format
    /// cannot encode.
    pub fn new(schema: SchemaRef) -> Result<Self, ArrowError> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields)?;
        Ok(Self {
            schema,
            converter,
            sum: 0,
            rows: 0,
        })
    }

    /// Adds a batch's rows.
    pub fn update(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        let rows = self.converter.convert_columns(batch.columns())?;
        for row in rows.iter() {
            self.sum = self.sum.wrapping_add(xxh3_128(row.as_ref()));
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Adds the rows `other` saw (a fingerprint of the same schema): the parts of an output
    /// fingerprinted separately combine to the fingerprint of the whole.
    pub fn merge(&mut self, other: &RowFingerprint) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.rows += other.rows;
    }

    /// Rows seen so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The data version: a hash of the schema (names, types, nullability), the row count and the
    /// sum of row hashes.
    pub fn finish(&self) -> DataVersion {
        let mut h = Hasher::default();
        for field in self.schema.fields() {
            h.field(field.name().as_bytes())
                .field(field.data_type().to_string().as_bytes())
                .field(&[u8::from(field.is_nullable())]);
        }
        h.field(&self.rows.to_le_bytes())
            .field(&self.sum.to_le_bytes());
        DataVersion::new(h.finish_hex())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
        ]))
    }

    fn batch(rows: &[(i64, Option<&str>, Option<f64>)]) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0)));
        let names: ArrayRef = Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1)));
        let amounts: ArrayRef = Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.2)));
        RecordBatch::try_new(schema(), vec![ids, names, amounts]).unwrap()
    }

    fn version(batches: &[RecordBatch]) -> DataVersion {
        let mut fp = RowFingerprint::new(schema()).unwrap();
        for b in batches {
            fp.update(b).unwrap();
        }
        fp.finish()
    }

    const ROWS: [(i64, Option<&str>, Option<f64>); 4] = [
        (1, Some("a"), Some(1.5)),
        (2, None, Some(2.0)),
        (3, Some("c"), None),
        (4, Some(""), Some(0.0)),
    ];

    #[test]
    fn independent_of_row_order_and_batching() {
        let base = version(&[batch(&ROWS)]);
        let mut reversed = ROWS;
        reversed.reverse();
        assert_eq!(base, version(&[batch(&reversed)]));
        assert_eq!(
            base,
            version(&[batch(&ROWS[..1]), batch(&[]), batch(&ROWS[1..])])
        );
        assert_eq!(base, version(&[batch(&ROWS[2..]), batch(&ROWS[..2])]));
    }

    #[test]
    fn parts_merge_into_the_whole() {
        let mut whole = RowFingerprint::new(schema()).unwrap();
        whole.update(&batch(&ROWS)).unwrap();
        let mut a = RowFingerprint::new(schema()).unwrap();
        a.update(&batch(&ROWS[3..])).unwrap();
        a.update(&batch(&ROWS[..1])).unwrap();
        let mut b = RowFingerprint::new(schema()).unwrap();
        b.update(&batch(&ROWS[1..3])).unwrap();
        let mut merged = RowFingerprint::new(schema()).unwrap();
        merged.merge(&b);
        merged.merge(&a);
        assert_eq!(merged.rows(), 4);
        assert_eq!(merged.finish(), whole.finish());
    }

    #[test]
    fn sensitive_to_values_duplicates_nulls_and_schema() {
        let base = version(&[batch(&ROWS)]);
        let mut changed = ROWS;
        changed[0].2 = Some(1.25);
        assert_ne!(base, version(&[batch(&changed)]));
        // A duplicated row is a different multiset.
        assert_ne!(base, version(&[batch(&ROWS), batch(&ROWS[..1])]));
        assert_ne!(
            version(&[batch(&ROWS[..1])]),
            version(&[batch(&ROWS[..1]), batch(&ROWS[..1])])
        );
        // Null and empty string differ.
        let mut nulled = ROWS;
        nulled[3].1 = None;
        assert_ne!(base, version(&[batch(&nulled)]));
        // The same values under another column name are another version.
        let renamed = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let other = Arc::new(Schema::new(vec![Field::new("m", DataType::Int64, false)]));
        let one = |s: &SchemaRef| {
            let b =
                RecordBatch::try_new(s.clone(), vec![Arc::new(Int64Array::from(vec![7]))]).unwrap();
            let mut fp = RowFingerprint::new(s.clone()).unwrap();
            fp.update(&b).unwrap();
            fp.finish()
        };
        assert_ne!(one(&renamed), one(&other));
        // No rows is still a version, and a stable one.
        assert_eq!(version(&[]), version(&[batch(&[])]));
    }
}
