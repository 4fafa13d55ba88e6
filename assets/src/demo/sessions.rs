//! `web_sessions`: web events cut into sessions per customer, a new session starting after 30
//! minutes without an event. A sequential scan over sorted events is a few lines here and a
//! stack of window functions in SQL.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use freshet_core::{AssetContext, BoxError, RustAsset};

/// Inactivity that ends a session.
const SESSION_GAP_NANOS: i64 = 30 * 60 * 1_000_000_000;

pub(crate) fn web_sessions() -> RustAsset {
    RustAsset::new("web_sessions")
        .deps(["raw_events"])
        .code_version("1")
        .description(
            "One row per web session: events of a customer less than 30 minutes apart, \
             with duration, distinct pages and whether it ended in a purchase.",
        )
        .group("staging")
        .tags(["web"])
        .owners(["web@shop.example"])
        .compute(sessionize)
}

async fn sessionize(ctx: AssetContext) -> Result<RecordBatch, BoxError> {
    let events = ctx
        .sql(
            "SELECT CAST(customer_id AS BIGINT) AS customer_id, CAST(ts AS TIMESTAMP) AS ts, event, page \
             FROM raw_events WHERE customer_id IS NOT NULL AND ts IS NOT NULL \
             ORDER BY customer_id, ts, page, event",
        )
        .await?;
    let schema = Arc::new(events.schema().as_arrow().clone());
    let batch = concat_batches(&schema, &events.collect().await?)?;
    let customers = column::<Int64Array>(&batch, 0)?;
    let times = column::<TimestampNanosecondArray>(&batch, 1)?;
    let kinds = column::<StringArray>(&batch, 2)?;
    let pages = column::<StringArray>(&batch, 3)?;

    let mut out = Sessions::default();
    let mut current: Option<Session> = None;
    for i in 0..batch.num_rows() {
        let (customer, t) = (customers.value(i), times.value(i));
        let continues = current
            .as_ref()
            .is_some_and(|s| s.customer == customer && t - s.ended_at <= SESSION_GAP_NANOS);
        if !continues {
            if let Some(done) = current.take() {
                out.push(done);
            }
            let number = out.next_number(customer);
            current = Some(Session::start(customer, number, t));
        }
        if let Some(s) = current.as_mut() {
            s.add(
                t,
                pages.is_valid(i).then(|| pages.value(i)),
                kinds.is_valid(i) && kinds.value(i) == "purchase",
            );
        }
    }
    if let Some(done) = current {
        out.push(done);
    }
    // Recorded with the materialization and plotted over time on the asset's page.
    let sessions = out.ids.len();
    let converted = out.converted.iter().filter(|c| **c).count();
    ctx.add_metadata("sessions", sessions)?;
    if sessions > 0 {
        ctx.add_metadata("purchase_rate", converted as f64 / sessions as f64)?;
    }
    out.finish()
}

fn column<T: 'static>(batch: &RecordBatch, i: usize) -> Result<&T, BoxError> {
    batch.column(i).as_any().downcast_ref::<T>().ok_or_else(|| {
        format!(
            "raw_events column {i} has unexpected type {}",
            batch.column(i).data_type()
        )
        .into()
    })
}

struct Session {
    customer: i64,
    number: u32,
    started_at: i64,
    ended_at: i64,
    events: i64,
    pages: BTreeSet<String>,
    converted: bool,
}

impl Session {
    fn start(customer: i64, number: u32, at: i64) -> Self {
        Self {
            customer,
            number,
            started_at: at,
            ended_at: at,
            events: 0,
            pages: BTreeSet::new(),
            converted: false,
        }
    }

    fn add(&mut self, at: i64, page: Option<&str>, purchase: bool) {
        self.ended_at = at;
        self.events += 1;
        if let Some(page) = page {
            self.pages.insert(page.to_owned());
        }
        self.converted |= purchase;
    }
}

/// Column builders for finished sessions.
#[derive(Default)]
struct Sessions {
    last_customer: Option<i64>,
    last_number: u32,
    ids: Vec<String>,
    customers: Vec<i64>,
    started: Vec<i64>,
    ended: Vec<i64>,
    durations: Vec<i64>,
    events: Vec<i64>,
    pages: Vec<i64>,
    converted: Vec<bool>,
}

impl Sessions {
    /// Sessions are numbered from 1 per customer, in time order.
    fn next_number(&mut self, customer: i64) -> u32 {
        if self.last_customer == Some(customer) {
            self.last_number += 1;
        } else {
            self.last_customer = Some(customer);
            self.last_number = 1;
        }
        self.last_number
    }

    fn push(&mut self, s: Session) {
        self.ids.push(format!("{}-{}", s.customer, s.number));
        self.customers.push(s.customer);
        self.started.push(s.started_at);
        self.ended.push(s.ended_at);
        self.durations
            .push((s.ended_at - s.started_at) / 1_000_000_000);
        self.events.push(s.events);
        self.pages.push(s.pages.len() as i64);
        self.converted.push(s.converted);
    }

    fn finish(self) -> Result<RecordBatch, BoxError> {
        let timestamp = DataType::Timestamp(TimeUnit::Nanosecond, None);
        let schema = Schema::new(vec![
            Field::new("session_id", DataType::Utf8, false),
            Field::new("customer_id", DataType::Int64, false),
            Field::new("started_at", timestamp.clone(), false),
            Field::new("ended_at", timestamp, false),
            Field::new("duration_seconds", DataType::Int64, false),
            Field::new("events", DataType::Int64, false),
            Field::new("distinct_pages", DataType::Int64, false),
            Field::new("converted", DataType::Boolean, false),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(self.ids)),
            Arc::new(Int64Array::from(self.customers)),
            Arc::new(TimestampNanosecondArray::from(self.started)),
            Arc::new(TimestampNanosecondArray::from(self.ended)),
            Arc::new(Int64Array::from(self.durations)),
            Arc::new(Int64Array::from(self.events)),
            Arc::new(Int64Array::from(self.pages)),
            Arc::new(BooleanArray::from(self.converted)),
        ];
        Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
    }
}
