//! The executor itself: the project, the store, the object stores it reaches, and its clock.

use std::fmt;
use std::sync::Arc;

use std::num::NonZeroUsize;

use datafusion::config::ConfigOptions;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::object_store::ObjectStore;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::prelude::{SessionConfig, SessionContext};
use url::Url;

use crate::error::one_line;
use crate::freshness::{Clock, SystemClock};
use crate::policy::default_concurrency;
use crate::project::{Computation, Project};
use crate::store::Store;
use crate::{Error, Result};

/// Runs a project's assets against a store and an output location. Cheap to clone: each step
/// runs in a task of its own with a clone.
#[derive(Clone)]
pub struct Executor {
    pub(super) project: Project,
    pub(super) store: Store,
    pub(super) output: Arc<dyn ObjectStore>,
    pub(super) output_base: ObjectPath,
    /// The number of cores: writers per output at most, and DataFusion partitions per step (three
    /// times as many for large inputs), so that a step alone keeps the whole machine busy (steps
    /// that run at once share it).
    pub(super) partitions: usize,
    /// What every session runs in: the memory pool (the limit, shared by all steps, spilling to a
    /// temp folder past it) and the object stores other than local disk.
    pub(super) runtime: Arc<RuntimeEnv>,
    /// DataFusion's settings for every session: Freshet's defaults under the environment's.
    pub(super) options: ConfigOptions,
    /// Where every time the executor records comes from.
    pub(super) clock: Arc<dyn Clock>,
    /// Folders of versions whose steps were stopped before they were recorded, to remove once
    /// their writers have surely ended (see `step.rs`'s `Unrecorded`).
    pub(super) abandoned: Arc<std::sync::Mutex<Vec<Abandoned>>>,
    /// Versions whose record was asked for but whose answer never came (the step was stopped
    /// waiting, or the store failed): once the run has ended, the store refuses them for good,
    /// and those it did not record are removed.
    pub(super) unconfirmed: Arc<std::sync::Mutex<Vec<Unconfirmed>>>,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("project", &self.project)
            .field("output", &self.output_base)
            .finish()
    }
}

impl Executor {
    /// An executor writing under the project's storage URL.
    pub fn new(project: Project, store: Store) -> Result<Self> {
        let url = project.storage_url();
        let (output, output_base) = object_store_for(url, project.object_store_options())?;
        let mut remote_stores = Vec::new();
        if url.scheme() != "file" {
            remote_stores.push((url.clone(), output.clone()));
        }
        for def in project.graph().iter() {
            if let Some(Computation::Source(spec)) = project.computation(&def.key)
                && let Ok(source_url) = Url::parse(&spec.location)
                && source_url.scheme() != "file"
            {
                let (store, _) = object_store_for(&source_url, project.object_store_options())?;
                remote_stores.push((source_url, store));
            }
        }
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(limit) = project.execution().memory_limit {
            // The five largest consumers are named when a query still runs out.
            let pool = TrackConsumersPool::new(
                FairSpillPool::new(limit),
                NonZeroUsize::new(5).unwrap_or(NonZeroUsize::MIN),
            );
            runtime = runtime.with_memory_pool(Arc::new(pool));
        }
        let runtime = runtime.build_arc().map_err(|e| Error::Storage {
            message: format!("cannot set up execution: {}", one_line(&e)),
            retryable: false,
        })?;
        for (url, store) in &remote_stores {
            runtime.register_object_store(url, store.clone());
        }
        Ok(Self {
            project,
            store,
            output,
            output_base,
            partitions: default_concurrency(),
            runtime,
            options: session_options()?,
            clock: Arc::new(SystemClock),
            abandoned: Arc::default(),
            unconfirmed: Arc::default(),
        })
    }

    /// The same executor reading the time from `clock` (a test's manual clock) for every time
    /// it records: run and step starts and ends, log lines, materializations, observations.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The project.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A new DataFusion session that can reach the output storage and every source's store.
    ///
    /// Parquet inputs are read with the query's filters pruning row groups and pages by their
    /// statistics, and only the columns a query uses decoded. Any DataFusion setting can be changed
    /// with its `DATAFUSION_*` environment variable (e.g. `DATAFUSION_EXECUTION_BATCH_SIZE`),
    /// which wins over these.
    pub(super) fn session(&self) -> SessionContext {
        self.session_for(0)
    }

    /// A session for a step whose inputs hold `input_bytes`: with large inputs
    /// ([`LARGE_INPUTS`] or more) and no memory limit, three partitions per core, so that while
    /// one waits (on a repartition, a scan) another computes; measured on the ETL benchmark's
    /// join, with batches of 64 Ki rows, 25% faster than one per core with 8 Ki. Otherwise one
    /// per core, as DataFusion chooses: more only cost small steps time, and under a memory
    /// limit (batches of 8 Ki rows then) each sort must still hold a batch.
    pub(super) fn session_for(&self, input_bytes: u64) -> SessionContext {
        let mut config = SessionConfig::from(self.options.clone()).with_information_schema(false);
        let limit = self.project.execution().memory_limit;
        let unset = |name: &str| std::env::var_os(name).is_none();
        if unset("DATAFUSION_EXECUTION_TARGET_PARTITIONS") {
            let per_core = if limit.is_none() && input_bytes >= LARGE_INPUTS {
                3
            } else {
                1
            };
            config = config.with_target_partitions(per_core * self.partitions);
        }
        if let Some(limit) = limit {
            if unset("DATAFUSION_EXECUTION_BATCH_SIZE") {
                config = config.with_batch_size(8192);
            }
            let partitions = config.target_partitions();
            let execution = &mut config.options_mut().execution;
            // What a sort sets aside to merge what it spilled: a share of the limit, so that a
            // small limit still leaves room for the sort itself (DataFusion's default is 10 MB).
            let share = limit / (4 * partitions.max(1));
            execution.sort_spill_reservation_bytes =
                execution.sort_spill_reservation_bytes.min(share);
        }
        SessionContext::new_with_config_rt(config, self.runtime.clone())
    }
}

/// Inputs (their Parquet or source files) from which a step gets three partitions per core.
const LARGE_INPUTS: u64 = 32 << 20;

/// DataFusion's settings: Freshet's defaults, then any `DATAFUSION_*` environment variable.
fn session_options() -> Result<ConfigOptions> {
    let error = |e: datafusion::error::DataFusionError| Error::Storage {
        message: format!("a DATAFUSION_* environment variable: {}", one_line(&e)),
        retryable: false,
    };
    let mut options = ConfigOptions::from_env().map_err(error)?;
    let ours = [
        // Measured with the ETL benchmark: plain strings group, join and write faster than
        // string views here, a partial aggregate judged on a larger sample is kept where it
        // pays (500,000 customers over 9 million orders), still skipped where it does not, and
        // batches of 64 Ki rows (with three partitions per core) speed up the join.
        (
            "datafusion.execution.parquet.schema_force_view_types",
            "false",
        ),
        (
            "datafusion.execution.skip_partial_aggregation_probe_rows_threshold",
            "1000000",
        ),
        ("datafusion.execution.batch_size", "65536"),
    ];
    for (key, value) in ours {
        // DataFusion's own spelling of a setting's variable.
        if std::env::var_os(key.to_ascii_uppercase().replace('.', "_")).is_none() {
            options.set(key, value).map_err(error)?;
        }
    }
    Ok(options)
}

/// A stopped step's version folder, and the flag its computation sets once it has ended.
pub(super) type Abandoned = (ObjectPath, Option<super::cpu::Ended>);

/// A version whose record got no answer: its run, its id and its folder.
pub(super) type Unconfirmed = (
    crate::model::RunId,
    crate::model::MaterializationId,
    ObjectPath,
);

/// Whether `project`'s output folder or bucket prefix holds any file, and then its URL: what an
/// empty metadata database must not silently start over beside. One listing, stopped at the
/// first object or after 10 s; a store that cannot be listed counts as holding none.
pub async fn outputs_exist(project: &Project) -> Option<String> {
    use futures::StreamExt as _;
    let url = project.storage_url();
    if let Ok(folder) = url.to_file_path() {
        let root = folder.clone();
        let any = tokio::task::spawn_blocking(move || any_file_under(&root)).await;
        return any.unwrap_or(false).then(|| folder.display().to_string());
    }
    let (store, base) = object_store_for(url, project.object_store_options()).ok()?;
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        store.list(Some(&base)).next().await
    })
    .await;
    matches!(first, Ok(Some(Ok(_)))).then(|| url.to_string())
}

/// Whether any file is under `folder` (at any depth).
fn any_file_under(folder: &std::path::Path) -> bool {
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => pending.push(entry.path()),
                Ok(_) => return true,
                Err(_) => {}
            }
        }
    }
    false
}

/// The object store for `url`, configured with `options` (credentials, endpoint, region). A
/// cloud store built on a tokio runtime (the IO runtime) sends its HTTP requests there, even
/// when a step on the CPU runtime asks (`cpu.rs`).
fn object_store_for(
    url: &Url,
    options: &[(String, String)],
) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    use datafusion::object_store::client::SpawnedReqwestConnector;
    use datafusion::object_store::{ObjectStoreScheme, aws, azure, gcp};
    let error = |e: &dyn std::error::Error| Error::Storage {
        message: format!("object store {url}: {}", one_line(e)),
        retryable: false,
    };
    let io = tokio::runtime::Handle::try_current().ok();
    // As `object_store::parse_url_opts` builds them, with the IO runtime's connector.
    macro_rules! cloud {
        ($builder:ty) => {{
            let mut builder = options.iter().fold(
                <$builder>::new().with_url(url.to_string()),
                |builder, (key, value)| match key.to_ascii_lowercase().parse() {
                    Ok(key) => builder.with_config(key, value.clone()),
                    Err(_) => builder,
                },
            );
            if let Some(io) = &io {
                builder = builder.with_http_connector(SpawnedReqwestConnector::new(io.clone()));
            }
            Arc::new(builder.build().map_err(|e| error(&e))?) as Arc<dyn ObjectStore>
        }};
    }
    let (scheme, path) = ObjectStoreScheme::parse(url).map_err(|e| error(&e))?;
    let store = match scheme {
        ObjectStoreScheme::AmazonS3 => cloud!(aws::AmazonS3Builder),
        ObjectStoreScheme::GoogleCloudStorage => cloud!(gcp::GoogleCloudStorageBuilder),
        ObjectStoreScheme::MicrosoftAzure => cloud!(azure::MicrosoftAzureBuilder),
        _ => {
            let (store, path) =
                datafusion::object_store::parse_url_opts(url, options.iter().cloned())
                    .map_err(|e| error(&e))?;
            return Ok((Arc::from(store), path));
        }
    };
    Ok((store, ObjectPath::parse(path).map_err(|e| error(&e))?))
}
