//! A deterministic generator of shop data as Parquet, for benchmarks and examples: `n` orders
//! (id, customer, time over one year, amount, one of five statuses) in time order, and the
//! customers they reference. The same `n` and seed always give the same files' rows.
//!
//! ```no_run
//! let dir = std::path::Path::new("/tmp/shop");
//! freshet_assets::generate::write_shop(dir, 1_000_000, 42).unwrap();
//! // dir/orders.parquet and dir/customers.parquet
//! ```

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

/// The five order statuses, with how often each occurs (per 100 orders).
pub const STATUSES: [(&str, u64); 5] = [
    ("completed", 70),
    ("shipped", 12),
    ("pending", 8),
    ("cancelled", 6),
    ("returned", 4),
];

const COUNTRIES: [&str; 8] = ["DE", "FR", "GB", "US", "NL", "ES", "IT", "SE"];
/// 2025-01-01T00:00:00Z in microseconds.
const YEAR_START_US: i64 = 1_735_689_600_000_000;
const YEAR_US: i64 = 365 * 24 * 3600 * 1_000_000;
const BATCH: usize = 65_536;

/// SplitMix64: small, fast and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How many customers `orders` orders are spread over: one per 20 orders, at least 10.
pub fn customer_count(orders: u64) -> u64 {
    (orders / 20).max(10)
}

/// Writes `orders.parquet` (`orders` rows) and `customers.parquet` into `dir` (created if
/// missing), zstd-compressed, in row groups of 1 Mi rows.
pub fn write_shop(dir: &Path, orders: u64, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let customers = customer_count(orders);
    write_orders(&dir.join("orders.parquet"), orders, customers, seed)?;
    write_customers(&dir.join("customers.parquet"), customers, seed)?;
    Ok(())
}

fn properties() -> anyhow::Result<WriterProperties> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(1 << 20))
        .build())
}

/// Writes `n` rows of `schema` to `path`, a batch of at most [`BATCH`] rows at a time: `batch`
/// gives the columns of the rows after the first `done`, `len` of them.
fn write_rows(
    path: &Path,
    schema: Arc<Schema>,
    n: u64,
    mut batch: impl FnMut(u64, usize) -> anyhow::Result<Vec<ArrayRef>>,
) -> anyhow::Result<()> {
    let mut writer =
        ArrowWriter::try_new(File::create(path)?, schema.clone(), Some(properties()?))?;
    let mut done = 0u64;
    while done < n {
        let len = usize::try_from((n - done).min(BATCH as u64))?;
        writer.write(&RecordBatch::try_new(schema.clone(), batch(done, len)?)?)?;
        done += len as u64;
    }
    writer.close()?;
    Ok(())
}

fn write_orders(path: &Path, n: u64, customers: u64, seed: u64) -> anyhow::Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int64, false),
        Field::new(
            "ordered_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("amount", DataType::Float64, false),
        Field::new("status", DataType::Utf8, false),
    ]));
    let mut rng = Rng(seed);
    let step = YEAR_US / i64::try_from(n.max(1))?;
    write_rows(path, schema, n, |done, len| {
        let (mut ids, mut custs, mut times, mut amounts, mut statuses) = (
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
        );
        for id in done + 1..=done + len as u64 {
            let i = i64::try_from(id)?;
            ids.push(i);
            custs.push(i64::try_from(1 + rng.below(customers))?);
            // In time order, with jitter inside the slot so times are not evenly spaced.
            times.push(
                YEAR_START_US + (i - 1) * step + i64::try_from(rng.below(step.max(1) as u64))?,
            );
            // Cents from 1.00 to 500.00, skewed towards small orders; a few refunds below zero.
            let cents = 100 + rng.below(50_000) * rng.below(1_000) / 1_000;
            let sign = if rng.below(200) == 0 { -1.0 } else { 1.0 };
            amounts.push(sign * cents as f64 / 100.0);
            let mut pick = rng.below(100);
            let status = STATUSES
                .iter()
                .find(|(_, weight)| {
                    let hit = pick < *weight;
                    pick = pick.saturating_sub(*weight);
                    hit
                })
                .map_or(STATUSES[0].0, |(s, _)| s);
            statuses.push(status);
        }
        Ok(vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Int64Array::from(custs)),
            Arc::new(TimestampMicrosecondArray::from(times)),
            Arc::new(Float64Array::from(amounts)),
            Arc::new(StringArray::from(statuses)),
        ])
    })
}

fn write_customers(path: &Path, n: u64, seed: u64) -> anyhow::Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new(
            "signed_up_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]));
    let mut rng = Rng(seed ^ 0x00C0_FFEE);
    write_rows(path, schema, n, |done, len| {
        let (mut ids, mut names, mut countries, mut times) = (
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
        );
        for id in done + 1..=done + len as u64 {
            ids.push(i64::try_from(id)?);
            names.push(format!("customer {id}"));
            countries.push(COUNTRIES[usize::try_from(rng.below(COUNTRIES.len() as u64))?]);
            // Signed up in the three years before the orders start.
            times.push(YEAR_START_US - i64::try_from(rng.below(3 * YEAR_US as u64))?);
        }
        Ok(vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
            Arc::new(StringArray::from(countries)),
            Arc::new(TimestampMicrosecondArray::from(times)),
        ])
    })
}
