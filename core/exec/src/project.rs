//! Projects: a folder with a `freshet.toml`, its `.sql` assets, its sources, and the compiled Rust
//! catalogues it opts into. Loading reads and validates everything before anything is written.
//!
//! # `freshet.toml`
//!
//! ```toml
//! [project]
//! name = "shop"
//! sql_dir = "sql"               # default "sql"; every .sql file below it is an asset
//! catalogues = ["demo"]         # compiled Rust asset catalogues this project uses (default none)
//! storage = ".freshet/data"     # default; a folder or an object-store URL (file://...)
//! database = ".freshet/freshet.db"  # default; a SQLite file or a database URL
//!
//! [sources.raw_orders]
//! path = "data/orders.csv"      # a file, a glob (data/orders_*.csv) or a URL
//! format = "csv"                # csv, parquet or json (JSON lines); default from the extension
//! description = "Orders as exported by the shop."
//! group = "raw"
//! tags = ["shop"]
//! owners = ["data@shop.example"]
//! freshness = { max_age = "1d" }   # how long since its data last changed before it is overdue
//!
//! [groups.marts]
//! freshness = { cron = "0 6 * * *", timezone = "Europe/Paris" }  # default for the group's assets
//! automation = "freshness"      # default condition for the group's assets
//!
//! [automation]
//! default = "eager"             # for assets that set none (default "none": only on request)
//!
//! # [schedules.NAME] and [alerts], and observe intervals: see the triggers module.
//!
//! [execution]                   # how steps run; see the policy module
//! concurrency = 4
//! retries = 2
//! compression = "zstd(3)"       # outputs' Parquet codec
//! memory_limit = "4GB"          # spill to a temp folder past it
//! heartbeat_timeout = "60s"     # a silent owner on another host is taken for dead after it
//!
//! [pools]
//! warehouse = 2
//!
//! [gc]
//! keep = 10                     # versions `freshet gc` keeps before each current one
//! run_logs = "30d"              # `freshet gc` removes the log lines of runs that ended before
//! ```
//!
//! `storage` and `database` can also be set with `--storage`/`FRESHET_STORAGE` and
//! `--database`/`FRESHET_DATABASE`, which win over the file.
//!
//! **Invariant:** a loaded [`Project`] has a valid graph and a computation for every asset;
//! loading fails on the first invalid `freshet.toml`, catalogue or graph, before any output or
//! metadata is written. A `.sql` file whose text is wrong (it does not parse, its header is
//! invalid, it reads a table no asset is) fails only its own asset: the asset stays in the
//! graph, without dependencies, as [`Computation::Broken`] with its one-line error, so the rest
//! of the project can be read and run while materializing it is refused. A file name that is
//! not a key still fails the project (there is no asset to mark), and hidden `.sql` files are
//! listed in [`Project::skipped`] rather than read.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use url::Url;

use crate::graph::AssetGraph;
use crate::model::{AssetDef, AssetKey, AssetKind, AutomationCondition};
use crate::partitions::{Mapping, PartitionsDef};
use crate::policy::{Execution, StepPolicy, StepSettings};
use crate::rust_asset::{Catalogues, Compute};
use crate::sensor::Sensor;
use crate::triggers::Triggers;
use crate::{Error, Result};

mod catalogues;
mod config;
mod sql_files;
#[cfg(test)]
mod tests;

use config::{
    RawConfig, apply_automation, resolve_database, resolve_storage, source_def, toml_error,
};
use sql_files::{sql_def, sql_files};

pub use sql_files::MAX_SQL_BYTES;

/// The name of a project's configuration file.
pub const CONFIG_FILE: &str = "freshet.toml";

/// Settings given on the command line or in the environment, which win over `freshet.toml`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Where outputs are written: a folder or an object-store URL.
    pub storage: Option<String>,
    /// The metadata database: a SQLite file or a database URL.
    pub database: Option<String>,
    /// Steps at once (`--concurrency`).
    pub concurrency: Option<usize>,
    /// The memory limit (`--memory-limit`), as written (`4GB`).
    pub memory_limit: Option<String>,
    /// Object store settings (credentials, endpoint, region), named as object_store's builders
    /// name them (`aws_access_key_id`, `aws_endpoint`, `google_service_account`, ...). Secret:
    /// never printed.
    pub object_store_options: Vec<(String, String)>,
}

/// A loaded, validated project. Cheap to clone.
#[derive(Clone)]
pub struct Project(Arc<Inner>);

struct Inner {
    dir: PathBuf,
    /// The folder whose `.sql` files are assets (it may not exist).
    sql_dir: PathBuf,
    name: String,
    graph: AssetGraph,
    computations: HashMap<AssetKey, Computation>,
    /// Each asset's own execution settings (none for most).
    settings: HashMap<AssetKey, StepSettings>,
    execution: Execution,
    triggers: Triggers,
    sensors: Vec<Sensor>,
    storage_url: Url,
    database_url: String,
    gc_keep: u32,
    gc_run_logs: std::time::Duration,
    object_store_options: Vec<(String, String)>,
    /// Files in the SQL folder not read as assets, each with why.
    skipped: Vec<String>,
    /// `[partitions.NAME]` definitions, compiled.
    partitions: BTreeMap<String, PartitionsDef>,
    /// Each partitioned asset's input mappings that are not the default (`@inputs`).
    mappings: HashMap<AssetKey, Vec<(AssetKey, Mapping)>>,
}

/// Versions `freshet gc` keeps before each current one unless `[gc] keep` says otherwise.
pub const DEFAULT_GC_KEEP: u32 = 10;

/// How long `freshet gc` keeps the log lines of runs that ended, unless `[gc] run_logs` says.
pub const DEFAULT_GC_RUN_LOGS: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

impl fmt::Debug for Project {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Project")
            .field("dir", &self.0.dir)
            .field("assets", &self.0.graph.len())
            .finish()
    }
}

/// How an asset is computed.
#[derive(Clone)]
pub enum Computation {
    /// Read from external files; never written.
    Source(SourceSpec),
    /// A query over its dependencies.
    Sql {
        /// The file's text (DataFusion ignores the header comments).
        query: String,
    },
    /// A compiled function.
    Rust(Compute),
    /// A file that could not be loaded: its one-line error. The asset is known by its file
    /// name, so its readers still load, but it cannot run.
    Broken {
        /// The error, naming the file.
        error: String,
    },
}

impl fmt::Debug for Computation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Computation::Source(s) => f.debug_tuple("Source").field(s).finish(),
            Computation::Sql { .. } => f.write_str("Sql"),
            Computation::Rust(_) => f.write_str("Rust"),
            Computation::Broken { error } => f.debug_tuple("Broken").field(error).finish(),
        }
    }
}

/// Where a source's data lives and how to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// An absolute path (possibly a glob) or a URL; for a partitioned source, the folder that
    /// holds every partition's folder.
    pub location: String,
    /// The file format.
    pub format: SourceFormat,
    /// For a source whose path names a partitions definition (`date={daily}/*.parquet`), which.
    pub partition: Option<SourcePartition>,
}

/// A partitioned source's path: each partition's files are where its key replaces `{NAME}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePartition {
    /// The partitions definition.
    pub name: String,
    /// The location with `{NAME}` in it.
    pub template: String,
}

impl SourcePartition {
    /// Where partition `key`'s files are.
    pub fn location(&self, key: &str) -> String {
        self.template.replace(&format!("{{{}}}", self.name), key)
    }
}

/// File formats a source can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// One JSON object per line.
    Json,
}

impl Project {
    /// Loads the project in `dir` with the Rust catalogues this binary carries.
    pub fn load(dir: &Path, catalogues: &Catalogues, overrides: &Overrides) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let shown = config_path.display().to_string();
        let config_error = |message: String| Error::Config {
            path: shown.clone(),
            message,
        };
        let text = std::fs::read_to_string(&config_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                config_error(format!(
                    "not found: a project is a folder with a {CONFIG_FILE} (create one with `freshet init {}`)",
                    dir.display()
                ))
            } else {
                config_error(e.to_string())
            }
        })?;
        let raw: RawConfig =
            toml::from_str(&text).map_err(|e| config_error(toml_error(&text, &e)))?;
        let dir = dir.canonicalize().map_err(|e| Error::Io {
            path: dir.display().to_string(),
            error: e,
        })?;

        let execution = raw.execution(overrides).map_err(config_error)?;
        let gc_run_logs = match raw.gc.run_logs.as_deref() {
            Some(text) => freshet_plan::model::parse_duration(text)
                .and_then(|d| {
                    // Beyond a century a time before now is not a date any more.
                    (d <= std::time::Duration::from_secs(36_500 * 86_400))
                        .then_some(d)
                        .ok_or_else(|| format!("{text:?} is too long (at most 36500d)"))
                })
                .map_err(|e| config_error(format!("[gc] run_logs: {e}")))?,
            None => DEFAULT_GC_RUN_LOGS,
        };
        let mut defs = Vec::new();
        let mut computations = HashMap::new();
        let mut settings = HashMap::new();
        // Conditions the definitions set themselves (`None`: explicitly none).
        let mut own_automation: HashMap<AssetKey, Option<AutomationCondition>> = HashMap::new();

        let mut partitions = BTreeMap::new();
        for (name, spec) in &raw.partitions {
            if !crate::sql::is_identifier(name) {
                return Err(config_error(format!(
                    "[partitions.{name}]: use letters, digits and underscores in its name"
                )));
            }
            let def = PartitionsDef::compile(name, spec).map_err(config_error)?;
            partitions.insert(name.clone(), def);
        }
        let mut mappings = HashMap::new();

        for (name, source) in &raw.sources {
            let (def, spec) = source_def(&dir, name, source).map_err(config_error)?;
            if let Some(p) = &spec.partition
                && !partitions.contains_key(&p.name)
            {
                return Err(config_error(format!(
                    "source {name}: its path names {{{}}}, which no [partitions.{}] defines",
                    p.name, p.name
                )));
            }
            computations.insert(def.key.clone(), Computation::Source(spec));
            defs.push(def);
        }

        let sql_dir = raw.project.sql_dir.as_deref().unwrap_or("sql");
        let sql_root = dir.join(sql_dir);
        let mut skipped = Vec::new();
        if sql_root.is_dir() {
            for path in sql_files(&dir, &sql_root, &mut skipped)? {
                let (def, loaded) = sql_def(&dir, &sql_root, &path)?;
                let loaded = loaded.and_then(|(query, own, automation, inputs)| {
                    execution.check(&own).map_err(|message| Error::Definition {
                        origin: def.origin.to_string(),
                        message,
                    })?;
                    Ok((query, own, automation, inputs))
                });
                match loaded {
                    Ok((query, own, automation, inputs)) => {
                        if !inputs.is_empty() {
                            mappings.insert(def.key.clone(), inputs);
                        }
                        if let Some(condition) = automation {
                            own_automation.insert(def.key.clone(), condition);
                        }
                        settings.insert(def.key.clone(), own);
                        computations.insert(def.key.clone(), Computation::Sql { query });
                    }
                    Err(error) => {
                        let error = error.to_string();
                        computations.insert(def.key.clone(), Computation::Broken { error });
                    }
                }
                defs.push(def);
            }
        } else if raw.project.sql_dir.is_some() {
            return Err(config_error(format!("sql_dir {sql_dir:?} is not a folder")));
        }

        let (sensors, rust_assets) = catalogues::load(
            &raw.project.catalogues,
            catalogues,
            &execution,
            config_error,
        )?;
        for asset in rust_assets {
            if let Some(condition) = asset.automation {
                own_automation.insert(asset.def.key.clone(), condition);
            }
            settings.insert(asset.def.key.clone(), asset.settings);
            computations.insert(asset.def.key.clone(), Computation::Rust(asset.compute));
            defs.push(asset.def);
        }

        // Group defaults: a group's freshness policy applies to its assets that declare none.
        for (group, settings) in &raw.groups {
            let Some(freshness) = &settings.freshness else {
                continue;
            };
            let policy = freshness
                .parse()
                .map_err(|e| config_error(format!("group {group}: invalid freshness: {e}")))?;
            for def in defs.iter_mut().filter(|d| &d.group == group) {
                def.freshness.get_or_insert_with(|| policy.clone());
            }
        }
        apply_automation(&raw, &mut defs, &own_automation).map_err(config_error)?;
        let source_intervals: Vec<(AssetKey, Option<String>)> = raw
            .sources
            .iter()
            .filter_map(|(name, s)| Some((AssetKey::parse(name).ok()?, s.observe_interval.clone())))
            .collect();
        let triggers = crate::triggers::triggers(
            raw.automation.observe_interval.as_deref(),
            &source_intervals,
            &raw.schedules,
            &raw.alerts,
        )
        .map_err(config_error)?;

        mark_unknown_reads(&mut defs, &mut computations);
        check_partitions(&mut defs, &mut computations, &partitions, &mut mappings)?;
        let graph = AssetGraph::new(defs)?;
        for def in graph.iter().filter(|d| d.kind != AssetKind::Source) {
            if let Some(dep) = def.deps.iter().find(|d| d.segments().count() > 3) {
                return Err(Error::Definition {
                    origin: def.origin.to_string(),
                    message: format!(
                        "asset {} reads {dep}, but keys of more than three segments cannot be read as tables",
                        def.key
                    ),
                });
            }
        }
        let storage_url = resolve_storage(
            &dir,
            overrides
                .storage
                .as_deref()
                .or(raw.project.storage.as_deref()),
        )
        .map_err(config_error)?;
        let database_url = resolve_database(
            &dir,
            overrides
                .database
                .as_deref()
                .or(raw.project.database.as_deref()),
        );
        Ok(Self(Arc::new(Inner {
            sql_dir: sql_root,
            dir,
            name: raw.project.name,
            graph,
            computations,
            settings,
            execution,
            triggers,
            sensors,
            storage_url,
            database_url,
            gc_keep: raw.gc.keep.unwrap_or(DEFAULT_GC_KEEP),
            gc_run_logs,
            object_store_options: overrides.object_store_options.clone(),
            skipped,
            partitions,
            mappings,
        })))
    }

    /// Why `key` could not be loaded, when its file is broken: the one-line error (`sql/a.sql:
    /// invalid SQL: ...`). Such an asset stays in the graph, without dependencies, so the rest
    /// of the project works; materializing it is refused.
    pub fn load_error(&self, key: &AssetKey) -> Option<&str> {
        match self.0.computations.get(key) {
            Some(Computation::Broken { error }) => Some(error),
            _ => None,
        }
    }

    /// The `[partitions.NAME]` definitions, by name.
    pub fn partitions(&self) -> &BTreeMap<String, PartitionsDef> {
        &self.0.partitions
    }

    /// The partitions definition `key` is split by, with its name.
    pub fn partitions_of(&self, key: &AssetKey) -> Option<(&str, &PartitionsDef)> {
        let name = self.0.graph.get(key)?.partitions.as_deref()?;
        self.0
            .partitions
            .get_key_value(name)
            .map(|(n, d)| (n.as_str(), d))
    }

    /// Whether `key`'s mapping to `input` is given by `@inputs`, not the default.
    pub fn explicit_mapping(&self, key: &AssetKey, input: &AssetKey) -> bool {
        self.0
            .mappings
            .get(key)
            .is_some_and(|m| m.iter().any(|(i, _)| i == input))
    }

    /// How `key`'s partitions map to those of its input `input`: as `@inputs` says, else the
    /// default between their definitions ([`Mapping::default_between`]).
    pub fn mapping(&self, key: &AssetKey, input: &AssetKey) -> Mapping {
        if let Some((_, mapping)) = self
            .0
            .mappings
            .get(key)
            .and_then(|m| m.iter().find(|(i, _)| i == input))
        {
            return mapping.clone();
        }
        default_mapping(self.partitions_of(key), self.partitions_of(input))
    }

    /// The first of `keys` whose file is broken, with its error.
    pub fn first_broken<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k AssetKey>,
    ) -> Option<(&'k AssetKey, &str)> {
        keys.into_iter()
            .find_map(|k| Some((k, self.load_error(k)?)))
    }

    /// Files in the SQL folder that are not read, each with why (`sql/.draft.sql: not read:
    /// ...`): hidden ones. Commands say so rather than skip them silently.
    pub fn skipped(&self) -> &[String] {
        &self.0.skipped
    }

    /// Versions `freshet gc` keeps before each current one (`[gc] keep`, default 10).
    pub fn gc_keep(&self) -> u32 {
        self.0.gc_keep
    }

    /// How long `freshet gc` keeps the log lines of runs that ended (`[gc] run_logs`, default
    /// 30 days).
    pub fn gc_run_logs(&self) -> std::time::Duration {
        self.0.gc_run_logs
    }

    /// How steps run: concurrency, pools, defaults.
    pub fn execution(&self) -> &Execution {
        &self.0.execution
    }

    /// What sets runs off with nobody asking: source intervals, schedules, alerts.
    pub fn triggers(&self) -> &Triggers {
        &self.0.triggers
    }

    /// The custom sensors of the catalogues it uses.
    pub fn sensors(&self) -> &[Sensor] {
        &self.0.sensors
    }

    /// How `key`'s steps run: its own settings over the project's defaults.
    pub fn policy(&self, key: &AssetKey) -> StepPolicy {
        let none = StepSettings::default();
        self.0
            .execution
            .policy(self.0.settings.get(key).unwrap_or(&none))
    }

    /// The project's folder (absolute).
    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// The folder whose `.sql` files are its SQL assets (it may not exist).
    pub fn sql_dir(&self) -> &Path {
        &self.0.sql_dir
    }

    /// The project's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The validated asset graph.
    pub fn graph(&self) -> &AssetGraph {
        &self.0.graph
    }

    /// How `key` is computed.
    pub fn computation(&self, key: &AssetKey) -> Option<&Computation> {
        self.0.computations.get(key)
    }

    /// The folder or object-store URL outputs are written under.
    pub fn storage_url(&self) -> &Url {
        &self.0.storage_url
    }

    /// Settings for object stores (may hold secrets: never print them).
    pub fn object_store_options(&self) -> &[(String, String)] {
        &self.0.object_store_options
    }

    /// The metadata database URL (may hold a password: never print it unredacted).
    pub fn database_url(&self) -> &str {
        &self.0.database_url
    }

    /// Parses asset keys named by a user, checking each exists.
    pub fn resolve_keys<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<AssetKey>> {
        names
            .iter()
            .map(|n| {
                let n = n.as_ref();
                AssetKey::parse(n)
                    .ok()
                    .filter(|k| self.0.graph.contains(k))
                    .ok_or_else(|| Error::UnknownAsset(n.to_owned()))
            })
            .collect()
    }
}

/// The mapping between an asset partitioned by `down` and an input partitioned by `up` when
/// none is given (`None`: not partitioned).
fn default_mapping(
    down: Option<(&str, &PartitionsDef)>,
    up: Option<(&str, &PartitionsDef)>,
) -> Mapping {
    use crate::partitions::Partitioning;
    fn side<'a>(p: Option<(&str, &'a PartitionsDef)>) -> Partitioning<'a> {
        match p {
            Some((_, def)) => Partitioning::By { def, keys: None },
            None => Partitioning::Whole,
        }
    }
    let same = matches!((down, up), (Some((a, _)), Some((b, _))) if a == b);
    Mapping::default_between(&side(down), &side(up), same)
}

/// Checks every asset's `partitions` names a definition and every `@inputs` mapping fits the
/// two sides: a SQL asset that does not is marked broken with its one-line error (its
/// dependencies dropped, as for a file that does not parse); a Rust asset fails the load.
fn check_partitions(
    defs: &mut [AssetDef],
    computations: &mut HashMap<AssetKey, Computation>,
    partitions: &BTreeMap<String, PartitionsDef>,
    mappings: &mut HashMap<AssetKey, Vec<(AssetKey, Mapping)>>,
) -> Result<()> {
    let of: HashMap<AssetKey, Option<String>> = defs
        .iter()
        .map(|d| (d.key.clone(), d.partitions.clone()))
        .collect();
    let known = || {
        if partitions.is_empty() {
            "freshet.toml defines none".to_owned()
        } else {
            let names: Vec<&str> = partitions.keys().map(String::as_str).collect();
            format!("freshet.toml defines {}", names.join(", "))
        }
    };
    for def in defs.iter_mut() {
        let problem = match &def.partitions {
            Some(name) if !partitions.contains_key(name) => {
                Some(format!("unknown partitions {name:?} ({})", known()))
            }
            _ => mappings.get(&def.key).and_then(|inputs| {
                inputs.iter().find_map(|(input, mapping)| {
                    mapping_problem(
                        def,
                        input,
                        mapping,
                        of.get(input).cloned().flatten(),
                        partitions,
                    )
                })
            }),
        };
        let Some(message) = problem else { continue };
        match computations.get(&def.key) {
            Some(Computation::Sql { .. }) => {
                let error = format!("{}: {message}", def.origin);
                def.deps.clear();
                def.partitions = None;
                mappings.remove(&def.key);
                computations.insert(def.key.clone(), Computation::Broken { error });
            }
            Some(Computation::Broken { .. }) => {}
            _ => {
                return Err(Error::Definition {
                    origin: def.origin.to_string(),
                    message: format!("asset {}: {message}", def.key),
                });
            }
        }
    }
    Ok(())
}

/// What is wrong with mapping `def`'s partitions to `input`'s (partitioned by `up`).
fn mapping_problem(
    def: &AssetDef,
    input: &AssetKey,
    mapping: &Mapping,
    up: Option<String>,
    partitions: &BTreeMap<String, PartitionsDef>,
) -> Option<String> {
    if !def.deps.contains(input) {
        return Some(format!(
            "@inputs maps {input}, which the query does not read"
        ));
    }
    let Some(down) = &def.partitions else {
        return Some(format!(
            "@inputs maps {input}, but the asset is not partitioned (add @partitions)"
        ));
    };
    let time = |name: &str| partitions.get(name).and_then(PartitionsDef::time).is_some();
    match (mapping, up.as_deref()) {
        (Mapping::All, _) => None,
        (_, None) => Some(format!("{input} is not partitioned: only `all` maps to it")),
        (Mapping::Identity | Mapping::Previous(_), Some(up)) if up != down => Some(format!(
            "{input} is partitioned by {up}, not {down}: identity and previous map partitions of one definition"
        )),
        (Mapping::Window { .. }, Some(up)) if !time(up) || !time(down) => Some(format!(
            "window() maps time windows to time windows; {input} is partitioned by {up} and {} by {down}",
            def.key
        )),
        _ => None,
    }
}

/// Marks broken each SQL asset that reads a table no asset is (dropping its dependencies), so
/// a typo in one file leaves the rest of the project loadable.
fn mark_unknown_reads(defs: &mut [AssetDef], computations: &mut HashMap<AssetKey, Computation>) {
    let known: std::collections::HashSet<AssetKey> = defs.iter().map(|d| d.key.clone()).collect();
    for def in defs.iter_mut() {
        if !matches!(computations.get(&def.key), Some(Computation::Sql { .. })) {
            continue;
        }
        let Some(dep) = def.deps.iter().find(|d| !known.contains(*d)) else {
            continue;
        };
        let error = crate::graph::GraphError::UnknownDependency {
            asset: def.key.clone(),
            dependency: dep.clone(),
            origin: def.origin.clone(),
            hint: crate::graph::suggest(dep, known.iter()),
        };
        def.deps.clear();
        let error = error.to_string();
        computations.insert(def.key.clone(), Computation::Broken { error });
    }
}
