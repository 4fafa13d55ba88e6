//! Partitioned assets: a step runs its partitions one after another, each computed with its own
//! parameters from only the partitions of its inputs that it maps to, written as a version of
//! its own in a Hive-style folder and recorded on its own, so a step stopped halfway leaves every
//! partition it recorded complete and the rest as they were.
//!
//! Layout: `<storage>/<asset>/<definition>=<key>/<materialization id>/part-*.parquet`. Readers
//! that understand Hive folders (DuckDB, Spark, pyarrow) read the asset folder as one table with
//! a `<definition>` column; superseded versions stay beside the current ones until `gc` removes
//! them.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::options::ReadOptions;
use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::DataFusionError;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use futures::StreamExt;
use tracing::{info, warn};

use super::engine::Executor;
use crate::error::{local_paths, one_line};
use crate::model::{
    AssetDef, AssetKey, DataVersion, InputVersion, Lineage, Materialization, MaterializationId,
    MetadataValue, RunId,
};
use crate::partitions::{
    Input, KeyList, Mapping, Ordinal, PartitionSet, PartitionState, PartitionStatus,
    PartitionStatuses, Partitioning, PartitionsDef, mapped_partitions, partition_statuses,
};
use crate::planner::{PartitionRequest, PlanError};
use crate::project::Computation;
use crate::project::{Project, SourceFormat, SourceSpec};
use crate::rust_asset::PartitionContext;
use crate::store::{PartitionCommit, Store, StoredPartitions};
use crate::tables::{ensure_namespace, table_reference};
use crate::{Error, Result};

/// A version to compute: where it goes and what it reads.
pub(super) struct Version {
    pub(super) id: MaterializationId,
    pub(super) folder: ObjectPath,
    pub(super) location: String,
    pub(super) inputs: Vec<InputVersion>,
    pub(super) data_time: Option<DateTime<Utc>>,
}

/// What computing one partition sees: its parameters and, per partitioned input, the versions
/// of the partitions it maps to.
pub(super) struct Scope {
    pub(super) params: ParamValues,
    /// For time partitions, the window's first local date and the one after its last.
    pub(super) local_dates: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    pub(super) inputs: HashMap<AssetKey, MappedInput>,
    /// The partition computed; `None` for an unpartitioned asset reading partitioned inputs.
    pub(super) context: Option<PartitionContext>,
}

/// The partitions of one input a partition reads.
pub(super) struct MappedInput {
    /// Their versions' folders.
    pub(super) locations: Vec<String>,
    /// A folder of another partition of the input, to take the columns from when it reads none.
    pub(super) schema_from: Option<String>,
    /// For a partitioned source, how its files are read (the locations are its partitions'
    /// paths); `None` for an asset's versions (folders of Parquet).
    pub(super) source: Option<SourceSpec>,
}

/// An asset's partitions: its definition, by name, and a dynamic definition's keys.
#[derive(Debug)]
pub struct AssetPartitions<'p> {
    pub name: &'p str,
    pub def: &'p PartitionsDef,
    pub keys: Option<KeyList>,
}

impl AssetPartitions<'_> {
    pub fn partitioning(&self) -> Partitioning<'_> {
        Partitioning::By {
            def: self.def,
            keys: self.keys.as_ref(),
        }
    }

    /// The key of partition `ordinal` (`None` for a removed dynamic key).
    pub fn key(&self, ordinal: Ordinal) -> Option<String> {
        self.def.key(ordinal, self.keys.as_ref())
    }

    /// The ordinal of the partition with `key`.
    pub fn ordinal(&self, key: &str) -> Option<Ordinal> {
        self.def.ordinal(key, self.keys.as_ref())
    }

    /// What the ordinals count: a stored state numbered otherwise is not this one's.
    pub fn numbering(&self) -> String {
        self.def.numbering(self.name)
    }
}

impl PartitionView<'_> {
    /// The partitions a run materializes when none are named, in ranges: those failed, stale
    /// or missing, not those whose inputs are not there yet.
    pub fn due(&self) -> Vec<Range<Ordinal>> {
        let mut due = PartitionSet::new();
        for status in [
            PartitionStatus::Failed,
            PartitionStatus::Stale,
            PartitionStatus::Missing,
        ] {
            due |= self.statuses.get(status);
        }
        due.ranges().collect()
    }
}

/// Every partition of an asset by status, with what the causes' input numbers name.
#[derive(Debug)]
pub struct PartitionView<'p> {
    pub partitions: AssetPartitions<'p>,
    pub statuses: PartitionStatuses,
    /// The asset's inputs, in the order [`crate::partitions::PartitionCause::Input`] numbers them.
    pub inputs: Vec<AssetKey>,
    /// The code versions a [`crate::partitions::PartitionCause::Code`] numbers, by number.
    pub code_versions: HashMap<u32, String>,
}

impl Executor {
    /// `key`'s partitions, if it is partitioned (a dynamic definition's keys read from the store).
    pub async fn asset_partitions(&self, key: &AssetKey) -> Result<Option<AssetPartitions<'_>>> {
        asset_partitions(&self.project, &self.store, key).await
    }

    /// The status of every partition of `key` now, from the store and `lineage` (the current
    /// versions of its unpartitioned inputs); `None` when it is not partitioned.
    pub async fn partition_view(
        &self,
        key: &AssetKey,
        lineage: &Lineage,
    ) -> Result<Option<PartitionView<'_>>> {
        let states = self.store.partition_states().await?;
        partition_view(
            &self.project,
            &self.store,
            key,
            lineage,
            &states,
            self.clock.now(),
        )
        .await
    }

    /// The partitions of `key` a run materializes when none are named: those failed, stale or
    /// missing, not those whose inputs are not there yet.
    pub(super) async fn partitions_to_run(
        &self,
        key: &AssetKey,
        lineage: &Lineage,
    ) -> Result<Vec<Range<Ordinal>>> {
        let view = self.partition_view(key, lineage).await?;
        Ok(view.map(|v| v.due()).unwrap_or_default())
    }

    /// The ordinals `request` names among `key`'s partitions: one partition, or a range of
    /// existing ones, both ends included.
    pub async fn requested_partitions(
        &self,
        key: &AssetKey,
        request: &PartitionRequest,
    ) -> Result<Range<Ordinal>> {
        let Some(partitions) = self.asset_partitions(key).await? else {
            return Err(Error::Plan(PlanError::Partitions(format!(
                "{key} is not partitioned: --partition and --range apply to partitioned assets"
            ))));
        };
        let valid = partitions.partitioning().valid(self.clock.now());
        let ordinal = |k: &str| match partitions.ordinal(k) {
            Some(o) if valid.contains(o) => Ok(o),
            Some(_) => Err(Error::Plan(PlanError::Partitions(format!(
                "partition {k:?} of {key} does not exist yet (or is before the definition's start)"
            )))),
            None => Err(Error::Plan(PlanError::Partitions(format!(
                "{k:?} is not a partition key of {key} (partitioned by {})",
                partitions.name
            )))),
        };
        match request {
            PartitionRequest::Key(k) => {
                let o = ordinal(k)?;
                Ok(o..o + 1)
            }
            PartitionRequest::Range { from, to } => {
                let (a, b) = (ordinal(from)?, ordinal(to)?);
                if a > b {
                    return Err(Error::Plan(PlanError::Partitions(format!(
                        "range {from}..{to}: {from} comes after {to}"
                    ))));
                }
                Ok(a..b + 1)
            }
        }
    }

    /// Computes and records partitions `ranges` of `def`, as many at once as cores, each as a
    /// version of its own. A partition whose input partitions are not all there is left as it
    /// is (blocked); when every one is, the step fails saying so. A partition that fails is
    /// recorded as failed and the others go on; the step then fails naming the first.
    pub(super) async fn materialize_partitions(
        &self,
        run_id: &RunId,
        def: &AssetDef,
        lineage: &Lineage,
        data_time: Option<DateTime<Utc>>,
        ranges: &[Range<Ordinal>],
    ) -> Result<Materialization> {
        let key = &def.key;
        let Some(partitions) = self.asset_partitions(key).await? else {
            return Err(not_partitioned(key));
        };
        let numbering = partitions.numbering();
        let down = partitions.partitioning();
        let now = self.clock.now();
        // States first, then heads: a partition committed in between makes the cursor older
        // than what is read, which at worst runs it again, never misses a change.
        let states = self.store.partition_states().await?;
        let mut ups = Vec::with_capacity(def.deps.len());
        let mut whole_inputs = HashMap::new();
        for dep in &def.deps {
            let side = input_side(&self.project, &self.store, key, dep, &states, lineage).await?;
            if side.partitions.is_none() {
                whole_inputs.insert(dep.clone(), self.check_input(dep, lineage).await?);
            }
            ups.push(side);
        }
        let mut heads = Vec::with_capacity(ups.len());
        for up in &ups {
            heads.push(match &up.partitions {
                Some(_) => self.current_partitions(&up.key).await?,
                None => HashMap::new(),
            });
        }

        let started = std::time::Instant::now();
        let total: u64 = ranges.iter().map(|r| u64::from(r.end - r.start)).sum();
        // What partition `ordinal` reads and where it goes; `Err` with why it waits.
        let prepare =
            |ordinal: Ordinal| -> Option<std::result::Result<Prepared, (String, String)>> {
                let partition = partitions.key(ordinal)?;
                let window = partitions.def.time().and_then(|w| w.window(ordinal));
                let mut scope_inputs = HashMap::new();
                let mut inputs = Vec::with_capacity(def.deps.len());
                let mut cursor = 0u64;
                for (up, heads) in ups.iter().zip(&heads) {
                    let Some(up_partitions) = &up.partitions else {
                        cursor = cursor.max(up.state.changed.max());
                        if let Some(version) = whole_inputs.get(&up.key) {
                            inputs.push(InputVersion {
                                asset: up.key.clone(),
                                data_version: version.clone(),
                            });
                        }
                        continue;
                    };
                    let range =
                        mapped_partitions(&down, ordinal, &up.partitioning(), &up.mapping, now);
                    let Some(range) = range else {
                        return Some(Err((
                            partition,
                            format!("{} has no partition for it yet", up.key),
                        )));
                    };
                    let mut locations = Vec::new();
                    let mut versions = Vec::new();
                    for u in range.clone() {
                        let Some(k) = up_partitions.key(u) else {
                            continue;
                        };
                        let Some((location, version)) = heads.get(&k) else {
                            let why = format!("{} has no version of partition {k}", up.key);
                            return Some(Err((partition, why)));
                        };
                        locations.push(location.clone());
                        versions.push(version.as_str().to_owned());
                    }
                    cursor = cursor.max(up.state.changed.max_in(range));
                    inputs.push(InputVersion {
                        asset: up.key.clone(),
                        data_version: combined_version(&versions),
                    });
                    scope_inputs.insert(
                        up.key.clone(),
                        MappedInput {
                            locations,
                            schema_from: heads.values().next().map(|(l, _)| l.clone()),
                            source: self.source_spec(&up.key),
                        },
                    );
                }
                inputs.sort_by(|a, b| a.asset.cmp(&b.asset));
                let local_dates = partitions.def.time().zip(window).map(|(w, (start, end))| {
                    let zone = w.timezone();
                    (
                        start.with_timezone(&zone).date_naive(),
                        end.with_timezone(&zone).date_naive(),
                    )
                });
                let scope = Scope {
                    params: params(&partition, window),
                    local_dates,
                    inputs: scope_inputs,
                    context: Some(PartitionContext {
                        key: partition.clone(),
                        window,
                    }),
                };
                let id = MaterializationId::generate();
                let folder = self
                    .asset_folder(key)
                    .join(format!("{}={partition}", partitions.name))
                    .join(id.as_str());
                let location = self.partition_location(key, partitions.name, &partition, &id);
                Some(Ok(Prepared {
                    ordinal,
                    partition,
                    cursor,
                    scope,
                    version: Version {
                        id,
                        folder,
                        location,
                        inputs,
                        data_time,
                    },
                }))
            };
        // As many partitions at once as cores: one partition's query over one day's files
        // often keeps one core busy only. Each is recorded on its own as it ends.
        let numbering = &numbering;
        let mut running = futures::stream::iter(ranges.iter().flat_map(Clone::clone))
            .filter_map(|ordinal| std::future::ready(prepare(ordinal)))
            .map(|prepared| async move {
                let p = match prepared {
                    Ok(p) => p,
                    Err(waits) => return Done::Waits(waits),
                };
                let commit = PartitionCommit {
                    key: &p.partition,
                    ordinal: p.ordinal,
                    definition: numbering,
                    cursor: p.cursor,
                };
                let made = self
                    .make_version(
                        run_id,
                        def,
                        lineage,
                        p.version,
                        Some(Arc::new(p.scope)),
                        Some(&commit),
                    )
                    .await;
                // Recorded here, while this future is polled: the loop below must not wait on
                // the store while others hold its turn.
                if made.is_err() {
                    let failed = p.ordinal..p.ordinal + 1;
                    if let Err(e) = self
                        .store
                        .record_partition_failure(key, numbering, failed, now)
                        .await
                    {
                        warn!(asset = %key, partition = p.partition, error = %e, "cannot record the failure");
                    }
                }
                Done::Made(p.ordinal, p.partition, made)
            })
            .buffer_unordered(self.partitions.max(1));
        let mut last: Option<Materialization> = None;
        let mut made = Made::default();
        let mut waiting: Option<String> = None;
        let mut failures = 0u64;
        let mut first_failure: Option<(Ordinal, String, Error)> = None;
        while let Some(done) = running.next().await {
            let (ordinal, partition, result) = match done {
                Done::Waits((partition, why)) => {
                    info!(asset = %key, partition, %why, "partition waits for its inputs");
                    waiting.get_or_insert(format!("partition {partition} waits: {why}"));
                    made.waiting += 1;
                    continue;
                }
                Done::Made(ordinal, partition, result) => (ordinal, partition, result),
            };
            match result {
                Ok(m) => {
                    info!(asset = %key, partition, rows = m.row_count, "partition materialized");
                    made.add(ordinal, &partition, &m);
                    if last.as_ref().is_none_or(|l| l.created_at <= m.created_at) {
                        last = Some(m);
                    }
                }
                Err(e) => {
                    // The others go on: one bad day does not hold up the rest.
                    failures += 1;
                    if first_failure.as_ref().is_none_or(|(o, _, _)| ordinal < *o) {
                        first_failure = Some((ordinal, partition, e));
                    }
                }
            }
        }
        drop(running);
        if let Some((_, partition, e)) = first_failure {
            let also = match (failures, made.count) {
                (1, 0) => String::new(),
                (1, n) => format!(" ({n} other partition{} materialized)", plural(n)),
                (f, n) => format!(" ({} more failed, {n} materialized)", f - 1),
            };
            return Err(match e {
                Error::Execution {
                    asset,
                    message,
                    retryable,
                } => Error::Execution {
                    asset,
                    message: format!("partition {partition}: {message}{also}"),
                    retryable,
                },
                other => other,
            });
        }
        let Some(mut m) = last else {
            return Err(Error::Execution {
                asset: key.to_string(),
                message: match waiting {
                    Some(why) if total == 1 => why,
                    Some(why) => format!("none of its {total} partitions can run yet: {why}"),
                    None => "no partition to materialize".to_owned(),
                },
                retryable: false,
            });
        };
        // What the step made in all, for its report: each partition's own record is stored.
        m.row_count = made.rows;
        m.byte_size = made.bytes;
        // The step's wall time (partitions ran side by side).
        m.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let metadata = &mut m.details.metadata;
        metadata.insert(
            PARTITIONS_MADE.to_owned(),
            MetadataValue::Text(made.words()),
        );
        if let Some(why) = waiting {
            let words = match made.waiting {
                1 => format!("1 waits for its inputs ({why})"),
                n => format!("{n} wait for their inputs ({why})"),
            };
            metadata.insert(PARTITIONS_WAITING.to_owned(), MetadataValue::Text(words));
        }
        Ok(m)
    }

    /// What an unpartitioned asset reads of its partitioned input `dep`: every partition's
    /// current version, in order, and the data version of the whole (which its whole head
    /// carries, so the reader is stale once a partition's data changes).
    pub(super) async fn all_partitions(
        &self,
        dep: &AssetKey,
    ) -> Result<(DataVersion, MappedInput)> {
        let Some(partitions) = self.asset_partitions(dep).await? else {
            return Err(not_partitioned(dep));
        };
        let heads = self.store.partition_heads(dep).await?;
        let mut current: Vec<(Ordinal, &Materialization)> = heads
            .iter()
            .filter_map(|(k, m)| Some((partitions.ordinal(k)?, m)))
            .collect();
        if current.is_empty() {
            return Err(Error::Execution {
                asset: dep.to_string(),
                message: "has no partition materialized".to_owned(),
                retryable: false,
            });
        }
        current.sort_by_key(|(o, _)| *o);
        let input = MappedInput {
            locations: current.iter().map(|(_, m)| m.location.clone()).collect(),
            schema_from: None,
            source: None,
        };
        // The version its whole head carries (`PartitionState::whole_version`).
        let states = self.store.partition_states().await?;
        let state = stored_state(&states, dep, &partitions.numbering());
        Ok((DataVersion::new(state.whole_version()), input))
    }

    /// Registers the versions `input` holds of the partitions a partition maps to, as table
    /// `dep`: only their files are read.
    pub(super) async fn register_partitions(
        &self,
        ctx: &SessionContext,
        dep: &AssetKey,
        input: &MappedInput,
    ) -> Result<()> {
        let table = table_reference(dep)?;
        ensure_namespace(ctx, &table);
        let error = |e: DataFusionError| Error::Execution {
            asset: dep.to_string(),
            message: format!("cannot read: {}", local_paths(&one_line(&e))),
            retryable: matches!(
                e,
                DataFusionError::ObjectStore(_) | DataFusionError::IoError(_)
            ),
        };
        let (config, tables) = (ctx.copied_config(), ctx.copied_table_options());
        let options = match &input.source {
            None => ParquetReadOptions::default().to_listing_options(&config, tables),
            Some(spec) => {
                let extension = super::sources::extension(spec);
                match spec.format {
                    SourceFormat::Parquet => ParquetReadOptions::default()
                        .file_extension(extension)
                        .to_listing_options(&config, tables),
                    SourceFormat::Csv => CsvReadOptions::new()
                        .file_extension(extension)
                        .to_listing_options(&config, tables),
                    SourceFormat::Json => JsonReadOptions::default()
                        .file_extension(extension)
                        .to_listing_options(&config, tables),
                }
            }
        };
        if input.locations.is_empty() {
            let Some(other) = &input.schema_from else {
                return Err(not_partitioned(dep));
            };
            let url = ListingTableUrl::parse(other).map_err(error)?;
            let schema = options
                .infer_schema(&ctx.state(), &url)
                .await
                .map_err(error)?;
            let empty = MemTable::try_new(schema, vec![vec![]]).map_err(error)?;
            ctx.register_table(table, Arc::new(empty)).map_err(error)?;
            return Ok(());
        }
        let urls = input
            .locations
            .iter()
            .map(|l| ListingTableUrl::parse(l))
            .collect::<datafusion::error::Result<Vec<_>>>()
            .map_err(error)?;
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .infer_schema(&ctx.state())
            .await
            .map_err(error)?;
        let listing = ListingTable::try_new(config).map_err(error)?;
        ctx.register_table(table, Arc::new(listing))
            .map_err(error)?;
        Ok(())
    }

    /// The current version of each recorded partition of the partitioned input `key`, by
    /// partition key: where it is and its data version (for a source, its partition's path and
    /// latest observation).
    async fn current_partitions(
        &self,
        key: &AssetKey,
    ) -> Result<HashMap<String, (String, DataVersion)>> {
        if let Some(spec) = self.source_spec(key) {
            let Some(partition) = spec.partition else {
                return Ok(HashMap::new());
            };
            let observed = self.store.partition_observations(key).await?;
            return Ok(observed
                .into_iter()
                .map(|(k, o)| (partition.location(&k), (k, o.data_version)))
                .map(|(location, (k, version))| (k, (location, version)))
                .collect());
        }
        let heads = self.store.partition_heads(key).await?;
        Ok(heads
            .into_iter()
            .map(|(k, m)| (k, (m.location, m.data_version)))
            .collect())
    }

    /// `key`'s spec, if it is a source.
    fn source_spec(&self, key: &AssetKey) -> Option<SourceSpec> {
        match self.project.computation(key) {
            Some(Computation::Source(spec)) => Some(spec.clone()),
            _ => None,
        }
    }

    /// The URL of version `id` of partition `partition` of `key`: its folder, ending in `/`.
    fn partition_location(
        &self,
        key: &AssetKey,
        definition: &str,
        partition: &str,
        id: &MaterializationId,
    ) -> String {
        let base = self.project.storage_url();
        let path = format!("{key}/{definition}={partition}/{id}/");
        match base.join(&path) {
            Ok(url) => url.to_string(),
            Err(_) => format!("{base}{path}"),
        }
    }
}

/// `key`'s partitions in `project`, if it is partitioned (a dynamic definition's keys read from
/// `store`).
pub(crate) async fn asset_partitions<'p>(
    project: &'p Project,
    store: &Store,
    key: &AssetKey,
) -> Result<Option<AssetPartitions<'p>>> {
    let Some((name, def)) = project.partitions_of(key) else {
        return Ok(None);
    };
    let keys = match def {
        PartitionsDef::Dynamic => Some(store.partition_keys(name).await?),
        _ => None,
    };
    Ok(Some(AssetPartitions { name, def, keys }))
}

/// The status of every partition of `key` at `now`, from the stored `states` and `lineage` (the
/// current versions of its unpartitioned inputs); `None` when it is not partitioned.
pub(crate) async fn partition_view<'p>(
    project: &'p Project,
    store: &Store,
    key: &AssetKey,
    lineage: &Lineage,
    states: &HashMap<AssetKey, StoredPartitions>,
    now: DateTime<Utc>,
) -> Result<Option<PartitionView<'p>>> {
    let Some(partitions) = asset_partitions(project, store, key).await? else {
        return Ok(None);
    };
    let Some(def) = project.graph().get(key) else {
        return Ok(None);
    };
    let own = stored_state(states, key, &partitions.numbering());
    let codes = store.partition_code_versions(key).await?;
    let code = match project.computation(key) {
        // A source's partitions have no code: all number 1.
        Some(Computation::Source(_)) => 1,
        _ => def
            .code_version
            .as_ref()
            .and_then(|c| codes.get(c.as_str()).copied())
            .unwrap_or(0),
    };
    let mut ups = Vec::with_capacity(def.deps.len());
    for dep in &def.deps {
        ups.push(input_side(project, store, key, dep, states, lineage).await?);
    }
    let inputs: Vec<Input<'_>> = ups
        .iter()
        .map(|up| Input {
            partitioning: up.partitioning(),
            state: &up.state,
            mapping: &up.mapping,
        })
        .collect();
    let statuses = partition_statuses(&partitions.partitioning(), &own, code, &inputs, now);
    drop(inputs);
    Ok(Some(PartitionView {
        partitions,
        statuses,
        inputs: def.deps.clone(),
        code_versions: codes.into_iter().map(|(v, id)| (id, v)).collect(),
    }))
}

/// What an asset knows of its input `dep`: how it is partitioned, its state and mapping.
async fn input_side<'p>(
    project: &'p Project,
    store: &Store,
    key: &AssetKey,
    dep: &AssetKey,
    states: &HashMap<AssetKey, StoredPartitions>,
    lineage: &Lineage,
) -> Result<InputSide<'p>> {
    let partitions = asset_partitions(project, store, dep).await?;
    let (state, mapping) = match &partitions {
        Some(p) => (
            stored_state(states, dep, &p.numbering()),
            project.mapping(key, dep),
        ),
        None => (whole_state(dep, lineage), Mapping::All),
    };
    Ok(InputSide {
        key: dep.clone(),
        partitions,
        state,
        mapping,
    })
}

/// The metadata entry of a partitioned step's report saying which partitions it made.
pub(super) const PARTITIONS_MADE: &str = "partitions";
/// The metadata entry of a partitioned step's report saying which partitions wait.
pub(super) const PARTITIONS_WAITING: &str = "partitions_waiting";

/// What a partitioned step made so far.
#[derive(Debug, Default)]
struct Made {
    count: u64,
    /// The first and the last partition made, by ordinal, with their keys.
    first: Option<(Ordinal, String)>,
    last: Option<(Ordinal, String)>,
    rows: u64,
    bytes: u64,
    waiting: u64,
}

impl Made {
    fn add(&mut self, ordinal: Ordinal, partition: &str, m: &Materialization) {
        self.count += 1;
        if self.first.as_ref().is_none_or(|(o, _)| ordinal < *o) {
            self.first = Some((ordinal, partition.to_owned()));
        }
        if self.last.as_ref().is_none_or(|(o, _)| ordinal > *o) {
            self.last = Some((ordinal, partition.to_owned()));
        }
        self.rows += m.row_count;
        self.bytes += m.byte_size;
    }

    /// `3 partitions (2024-03-01..2024-03-03)`.
    fn words(&self) -> String {
        match (&self.first, &self.last) {
            (Some((_, first)), Some((_, last))) if first != last => {
                format!("{} partitions ({first}..{last})", self.count)
            }
            (Some((_, first)), _) => format!("1 partition ({first})"),
            _ => "no partition".to_owned(),
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A partition ready to compute.
struct Prepared {
    ordinal: Ordinal,
    partition: String,
    cursor: u64,
    scope: Scope,
    version: Version,
}

/// How one partition of a step ended.
enum Done {
    /// It waits for its inputs: its key and why.
    Waits((String, String)),
    /// It was computed, or failed.
    Made(Ordinal, String, Result<Materialization>),
}

/// One input as a partitioned asset's staleness and runs see it.
struct InputSide<'p> {
    key: AssetKey,
    partitions: Option<AssetPartitions<'p>>,
    state: PartitionState,
    mapping: Mapping,
}

impl InputSide<'_> {
    fn partitioning(&self) -> Partitioning<'_> {
        match &self.partitions {
            Some(p) => p.partitioning(),
            None => Partitioning::Whole,
        }
    }
}

/// `key`'s stored state if it counts partitions as `numbering` does, else an empty one.
fn stored_state(
    states: &HashMap<AssetKey, StoredPartitions>,
    key: &AssetKey,
    numbering: &str,
) -> PartitionState {
    states
        .get(key)
        .filter(|s| s.definition == numbering)
        .map(|s| s.state.clone())
        .unwrap_or_default()
}

/// An unpartitioned input as one partition: there if it has a current version, changed when
/// that version was made or observed (in the microseconds partition commits are numbered at
/// least by). Rebuilding it with the same rows counts as a change here: the early cut-off of
/// unpartitioned inputs is per asset, not per partition.
fn whole_state(key: &AssetKey, lineage: &Lineage) -> PartitionState {
    let at = lineage
        .materialization(key)
        .map(|m| m.created_at)
        .or_else(|| lineage.observation(key).map(|o| o.observed_at));
    let mut state = PartitionState::default();
    if let Some(at) = at {
        let seq = u64::try_from(at.timestamp_micros()).unwrap_or(0);
        state.commit(0..1, seq, 0, 1, &PartitionSet::from_range(0..1));
    }
    state
}

/// One data version for the versions of several partitions read (in order).
fn combined_version(versions: &[String]) -> DataVersion {
    match versions {
        [one] => DataVersion::new(one.clone()),
        _ => {
            let joined = versions.join("\n");
            DataVersion::new(format!(
                "{:032x}",
                xxhash_rust::xxh3::xxh3_128(joined.as_bytes())
            ))
        }
    }
}

/// The parameters a partition's query gets: `$partition_key`, and for time partitions `$start`
/// and `$end`, its window (end excluded), as UTC timestamps until [`typed_params`] fits them to
/// what the query compares them with.
fn params(partition: &str, window: Option<(DateTime<Utc>, DateTime<Utc>)>) -> ParamValues {
    let mut values = vec![(
        "partition_key".to_owned(),
        ScalarValue::Utf8(Some(partition.to_owned())),
    )];
    if let Some((start, end)) = window {
        for (name, at) in [("start", start), ("end", end)] {
            values.push((
                name.to_owned(),
                ScalarValue::TimestampMicrosecond(Some(at.timestamp_micros()), Some("UTC".into())),
            ));
        }
    }
    ParamValues::from(values)
}

/// `scope`'s parameters cast to the types the query compares them with (`types`, as the plan
/// infers them): a timestamp column's unit and zone (a timestamp without a zone gets UTC wall
/// time), or for a date column the window's first and last-plus-one local dates.
pub(super) fn typed_params(
    scope: &Scope,
    types: &HashMap<String, Option<DataType>>,
) -> datafusion::error::Result<ParamValues> {
    let ParamValues::Map(map) = &scope.params else {
        return Ok(scope.params.clone());
    };
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let mut typed = HashMap::with_capacity(map.len());
    for (name, value) in map {
        let wanted = types.get(name).cloned().flatten();
        let date = match (name.as_str(), scope.local_dates) {
            ("start", Some((start, _))) => Some(start),
            ("end", Some((_, end))) => Some(end),
            _ => None,
        };
        let bound = match (&wanted, date) {
            (Some(t @ (DataType::Date32 | DataType::Date64)), Some(date)) => {
                let days = date.signed_duration_since(epoch).num_days();
                ScalarValue::Date32(Some(i32::try_from(days).unwrap_or(i32::MAX))).cast_to(t)?
            }
            (Some(t), _) if *t != value.value.data_type() && !t.is_null() => {
                value.value.cast_to(t)?
            }
            _ => value.value.clone(),
        };
        typed.insert(name.clone(), bound.into());
    }
    Ok(ParamValues::Map(typed))
}

fn not_partitioned(key: &AssetKey) -> Error {
    Error::Execution {
        asset: key.to_string(),
        message: "is not partitioned".to_owned(),
        retryable: false,
    }
}
