//! Rust assets: async functions compiled into the binary, declared with a builder and grouped in
//! named catalogues that a project opts into from its `freshet.toml`.
//!
//! # Example
//! ```
//! use freshet_core::{AssetContext, Catalogue, RustAsset};
//!
//! let catalogue = Catalogue::new("shop").asset(
//!     RustAsset::new("big_orders")
//!         .deps(["orders"])
//!         .code_version("1")
//!         .description("Orders over 100.")
//!         .compute(|ctx: AssetContext| async move {
//!             ctx.sql("SELECT * FROM orders WHERE amount > 100").await
//!         }),
//! );
//! assert_eq!(catalogue.name(), "shop");
//! ```
//!
//! # Code versions
//!
//! A Rust asset's code version is the string given to [`RustAsset::code_version`]. Bump it whenever
//! a change to the function can change its output (logic, constants, a dependency's behaviour);
//! leave it for refactors that cannot. Freshet cannot see inside compiled code, so an unbumped
//! change is invisible to staleness.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use crate::model::{
    AssetDef, AssetKey, AssetKind, AutomationCondition, CodeVersion, FreshnessPolicy,
    MetadataValue, Origin,
};
use crate::policy::StepSettings;
use crate::{Error, Result};

/// Any error a Rust asset's function returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Wraps an error that trying again may cure (a network blip, a busy service): the step is
/// retried under the asset's retry policy. Other errors are not retried, except I/O errors.
///
/// ```
/// use freshet_core::{BoxError, Retryable};
/// let e: BoxError = Retryable::new("the API answered 503").into();
/// assert_eq!(e.to_string(), "the API answered 503");
/// ```
#[derive(Debug)]
pub struct Retryable(pub BoxError);

impl Retryable {
    /// `error`, marked retryable.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self(error.into())
    }
}

impl fmt::Display for Retryable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Retryable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Whether a Rust asset's error may pass if tried again: marked [`Retryable`], or an I/O error.
pub(crate) fn is_retryable(e: &BoxError) -> bool {
    e.is::<Retryable>() || e.is::<std::io::Error>()
}

/// What a Rust asset produces: a DataFrame to execute, a stream of batches, or batches already
/// computed. A DataFrame or a stream is written as it comes, so an output larger than memory
/// never has to be held whole.
pub enum AssetOutput {
    /// A lazy DataFrame; the executor streams it to Parquet.
    DataFrame(DataFrame),
    /// Batches as they are computed (e.g. a `RecordBatchStreamAdapter` over any stream).
    Stream(SendableRecordBatchStream),
    /// Batches in memory, all of `schema`.
    Batches {
        /// The schema of every batch (needed when there are none).
        schema: SchemaRef,
        /// The rows.
        batches: Vec<RecordBatch>,
    },
}

impl fmt::Debug for AssetOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataFrame(_) => f.write_str("AssetOutput::DataFrame"),
            Self::Stream(s) => write!(f, "AssetOutput::Stream({:?})", s.schema()),
            Self::Batches { batches, .. } => {
                write!(f, "AssetOutput::Batches({} batches)", batches.len())
            }
        }
    }
}

impl From<SendableRecordBatchStream> for AssetOutput {
    fn from(stream: SendableRecordBatchStream) -> Self {
        AssetOutput::Stream(stream)
    }
}

impl From<DataFrame> for AssetOutput {
    fn from(df: DataFrame) -> Self {
        AssetOutput::DataFrame(df)
    }
}

impl From<RecordBatch> for AssetOutput {
    fn from(batch: RecordBatch) -> Self {
        AssetOutput::Batches {
            schema: batch.schema(),
            batches: vec![batch],
        }
    }
}

/// What a Rust asset's function receives: its inputs, registered as tables in a DataFusion
/// session, and a place for the numbers and text it wants recorded with its materialization.
#[derive(Clone)]
pub struct AssetContext {
    key: AssetKey,
    deps: Vec<AssetKey>,
    session: SessionContext,
    metadata: Arc<Mutex<BTreeMap<String, MetadataValue>>>,
    partition: Option<PartitionContext>,
}

/// The partition a partitioned asset's function is computing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionContext {
    /// Its key (`2024-03-08`, `eu`).
    pub key: String,
    /// Its time window, start included and end excluded, for time partitions.
    pub window: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
}

impl fmt::Debug for AssetContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssetContext")
            .field("key", &self.key)
            .field("deps", &self.deps)
            .finish()
    }
}

impl AssetContext {
    pub(crate) fn new(key: AssetKey, deps: Vec<AssetKey>, session: SessionContext) -> Self {
        Self {
            key,
            deps,
            session,
            metadata: Arc::default(),
            partition: None,
        }
    }

    /// The context of partition `partition` of a partitioned asset.
    pub(crate) fn with_partition(mut self, partition: PartitionContext) -> Self {
        self.partition = Some(partition);
        self
    }

    /// The partition being computed, for a partitioned asset: its inputs are registered as the
    /// partitions it maps to only, and its output is that partition's version.
    pub fn partition(&self) -> Option<&PartitionContext> {
        self.partition.as_ref()
    }

    /// Attaches a number or a text to this materialization under `name` (again: replaced). It is
    /// recorded with the output, shown in `freshet history` and the web view, and numbers are
    /// plotted over time on the asset's page.
    ///
    /// ```
    /// # async fn f(ctx: freshet_core::AssetContext) -> Result<(), freshet_core::BoxError> {
    /// ctx.add_metadata("sessions", 412)?;
    /// ctx.add_metadata("source", "events export of 06:00")?;
    /// # Ok(()) }
    /// ```
    ///
    /// Fails for an empty name, a name over 100 characters, a number that is not finite, or a
    /// text over 10,000 characters.
    pub fn add_metadata(
        &self,
        name: &str,
        value: impl Into<MetadataValue>,
    ) -> Result<(), BoxError> {
        let value = value.into();
        if name.trim().is_empty() || name.chars().count() > 100 {
            return Err(format!("metadata name {name:?}: use 1 to 100 characters").into());
        }
        match &value {
            MetadataValue::Number(n) if !n.is_finite() => {
                return Err(format!("metadata {name}: {n} is not a finite number").into());
            }
            MetadataValue::Text(t) if t.chars().count() > 10_000 => {
                return Err(format!("metadata {name}: text over 10,000 characters").into());
            }
            _ => {}
        }
        self.metadata
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), value);
        Ok(())
    }

    /// What was attached so far.
    pub(crate) fn metadata(&self) -> BTreeMap<String, MetadataValue> {
        self.metadata
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The asset being materialized.
    pub fn key(&self) -> &AssetKey {
        &self.key
    }

    /// A declared input as a DataFrame.
    pub async fn table(&self, key: &str) -> Result<DataFrame, BoxError> {
        let key = AssetKey::parse(key)?;
        if !self.deps.contains(&key) {
            return Err(format!("{key} is not a declared dependency of {}", self.key).into());
        }
        Ok(self
            .session
            .table(crate::tables::table_reference(&key)?)
            .await?)
    }

    /// Runs a query over the declared inputs.
    pub async fn sql(&self, query: &str) -> Result<DataFrame, BoxError> {
        Ok(self.session.sql(query).await?)
    }

    /// The DataFusion session, for anything else (UDFs, the DataFrame API).
    pub fn session(&self) -> &SessionContext {
        &self.session
    }
}

/// The function behind a Rust asset.
pub(crate) type Compute =
    Arc<dyn Fn(AssetContext) -> BoxFuture<'static, Result<AssetOutput, BoxError>> + Send + Sync>;

/// A Rust asset under construction. Validated when a project that uses its catalogue loads.
#[derive(Clone)]
pub struct RustAsset {
    key: String,
    deps: Vec<String>,
    code_version: Option<String>,
    description: Option<String>,
    group: Option<String>,
    tags: BTreeSet<String>,
    owners: Vec<String>,
    freshness: Option<FreshnessPolicy>,
    automation: Option<Option<AutomationCondition>>,
    execution: StepSettings,
    compression: Option<String>,
    partitions: Option<String>,
    location: String,
    compute: Option<Compute>,
}

impl fmt::Debug for RustAsset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustAsset")
            .field("key", &self.key)
            .field("deps", &self.deps)
            .finish_non_exhaustive()
    }
}

impl RustAsset {
    /// Starts a definition of the asset `key` (`name` or `group/name`).
    #[track_caller]
    pub fn new(key: &str) -> Self {
        let caller = std::panic::Location::caller();
        Self {
            key: key.to_owned(),
            deps: Vec::new(),
            code_version: None,
            description: None,
            group: None,
            tags: BTreeSet::new(),
            owners: Vec::new(),
            freshness: None,
            automation: None,
            execution: StepSettings::default(),
            compression: None,
            partitions: None,
            location: format!("{}:{}", caller.file(), caller.line()),
            compute: None,
        }
    }

    /// The assets it reads; they are registered as tables under their keys.
    pub fn deps<S: Into<String>>(mut self, deps: impl IntoIterator<Item = S>) -> Self {
        self.deps.extend(deps.into_iter().map(Into::into));
        self
    }

    /// The version of its logic: bump it when a change can change the output.
    pub fn code_version(mut self, version: &str) -> Self {
        self.code_version = Some(version.to_owned());
        self
    }

    /// A description for people.
    pub fn description(mut self, text: &str) -> Self {
        self.description = Some(text.to_owned());
        self
    }

    /// The partitions definition (`[partitions.NAME]` of `freshet.toml`) it is split by.
    pub fn partitions(mut self, name: &str) -> Self {
        self.partitions = Some(name.to_owned());
        self
    }

    /// The group it is shown and selected in.
    pub fn group(mut self, group: &str) -> Self {
        self.group = Some(group.to_owned());
        self
    }

    /// Free-form labels.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// People or teams responsible.
    pub fn owners<S: Into<String>>(mut self, owners: impl IntoIterator<Item = S>) -> Self {
        self.owners.extend(owners.into_iter().map(Into::into));
        self
    }

    /// A freshness policy.
    pub fn freshness(mut self, policy: FreshnessPolicy) -> Self {
        self.freshness = Some(policy);
        self
    }

    /// When it is materialized without anyone asking (over its group's and the project's
    /// default); `None` keeps it to requests only.
    pub fn automation(mut self, condition: Option<AutomationCondition>) -> Self {
        self.automation = Some(condition);
        self
    }

    /// The condition it sets itself, if it sets one (`Some(None)`: explicitly none).
    pub(crate) fn own_automation(&self) -> Option<Option<AutomationCondition>> {
        self.automation.clone()
    }

    /// The pool it runs in (declared under `[pools]` in `freshet.toml`).
    pub fn pool(mut self, pool: &str) -> Self {
        self.execution.pool = Some(pool.to_owned());
        self
    }

    /// How many times a retryable failure ([`Retryable`], I/O) is tried again.
    pub fn retries(mut self, retries: u32) -> Self {
        self.execution.retries = Some(retries);
        self
    }

    /// The first retry's delay; each further retry waits twice as long, with jitter.
    pub fn retry_delay(mut self, delay: std::time::Duration) -> Self {
        self.execution.retry_delay = Some(delay);
        self
    }

    /// The time limit of one attempt.
    pub fn timeout(mut self, limit: std::time::Duration) -> Self {
        self.execution.timeout = Some(limit);
        self
    }

    /// Its output's Parquet codec: `zstd`, `zstd(N)`, `snappy`, `lz4`, `gzip(N)`, `brotli(N)` or
    /// `none` (default: the project's `[execution] compression`, else `zstd(3)`). Checked when
    /// the project loads.
    pub fn compression(mut self, codec: &str) -> Self {
        self.compression = Some(codec.to_owned());
        self
    }

    /// The async function that computes it.
    pub fn compute<F, Fut, O>(mut self, f: F) -> Self
    where
        F: Fn(AssetContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, BoxError>> + Send + 'static,
        O: Into<AssetOutput>,
    {
        self.compute = Some(Arc::new(move |ctx| {
            let fut = f(ctx);
            Box::pin(async move { fut.await.map(Into::into) })
        }));
        self
    }

    /// Validates the declaration into a definition and its function.
    pub(crate) fn build(&self) -> Result<(AssetDef, Compute, StepSettings)> {
        let origin = Origin::Rust {
            location: self.location.clone(),
        };
        let invalid = |message: String| Error::Definition {
            origin: origin.to_string(),
            message,
        };
        let key = AssetKey::parse(&self.key).map_err(|e| invalid(e.to_string()))?;
        let deps = self
            .deps
            .iter()
            .map(|d| {
                AssetKey::parse(d).map_err(|e| invalid(format!("asset {key}: dependency {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let code_version = self
            .code_version
            .clone()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| invalid(format!("asset {key} has no code_version")))?;
        let compute = self
            .compute
            .clone()
            .ok_or_else(|| invalid(format!("asset {key} has no compute function")))?;
        let mut def = AssetDef::new(key, AssetKind::Rust, origin.clone()).with_deps(deps);
        def.code_version = Some(CodeVersion::new(format!("rust:{code_version}")));
        def.description = self.description.clone();
        if let Some(group) = &self.group {
            def.group = group.clone();
        }
        def.tags = self.tags.clone();
        def.owners = self.owners.clone();
        def.freshness = self.freshness.clone();
        def.partitions = self.partitions.clone();
        if let Some(pool) = &self.execution.pool
            && !crate::sql::is_identifier(pool)
        {
            return Err(invalid(format!(
                "asset {}: invalid pool {pool:?}: use letters, digits and underscores",
                def.key
            )));
        }
        let mut execution = self.execution.clone();
        if let Some(codec) = &self.compression {
            execution.compression = Some(
                crate::policy::parse_compression(codec)
                    .map_err(|e| invalid(format!("asset {}: {e}", def.key)))?,
            );
        }
        Ok((def, compute, execution))
    }
}

/// A named set of Rust assets that a project includes with `catalogues = ["name"]`.
#[derive(Debug, Clone)]
pub struct Catalogue {
    name: String,
    assets: Vec<RustAsset>,
    sensors: Vec<crate::sensor::RustSensor>,
}

impl Catalogue {
    /// An empty catalogue.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            assets: Vec::new(),
            sensors: Vec::new(),
        }
    }

    /// Adds a sensor (see [`crate::sensor`]).
    pub fn sensor(mut self, sensor: crate::sensor::RustSensor) -> Self {
        self.sensors.push(sensor);
        self
    }

    /// Its sensors.
    pub fn sensors(&self) -> impl Iterator<Item = &crate::sensor::RustSensor> {
        self.sensors.iter()
    }

    /// Adds an asset.
    pub fn asset(mut self, asset: RustAsset) -> Self {
        self.assets.push(asset);
        self
    }

    /// Adds several assets.
    pub fn assets(mut self, assets: impl IntoIterator<Item = RustAsset>) -> Self {
        self.assets.extend(assets);
        self
    }

    /// The name projects refer to it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its assets.
    pub fn iter(&self) -> impl Iterator<Item = &RustAsset> {
        self.assets.iter()
    }
}

/// The catalogues compiled into a binary, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalogues(BTreeMap<String, Catalogue>);

impl Catalogues {
    /// No catalogues: projects may use SQL and sources only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a catalogue.
    pub fn with(mut self, catalogue: Catalogue) -> Self {
        self.0.insert(catalogue.name.clone(), catalogue);
        self
    }

    /// The catalogue called `name`.
    pub fn get(&self, name: &str) -> Option<&Catalogue> {
        self.0.get(name)
    }

    /// The names of all catalogues.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}
