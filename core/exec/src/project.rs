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

use serde::Deserialize;
use url::Url;

use crate::graph::AssetGraph;
use crate::model::{
    AssetDef, AssetKey, AssetKind, AutomationCondition, DEFAULT_GROUP, FreshnessPolicy, Origin,
    parse_duration,
};
use crate::policy::{Execution, RetryPolicy, StepPolicy, StepSettings, default_concurrency};
use crate::rust_asset::{Catalogues, Compute};
use crate::sensor::Sensor;
use crate::sql::{is_identifier, parse_sql_asset};
use crate::triggers::{RawAlerts, RawSchedule, Triggers};
use crate::{Error, Result};

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
    /// An absolute path (possibly a glob) or a URL.
    pub location: String,
    /// The file format.
    pub format: SourceFormat,
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
        let mut sensors = Vec::new();

        for (name, source) in &raw.sources {
            let (def, spec) = source_def(&dir, name, source).map_err(config_error)?;
            computations.insert(def.key.clone(), Computation::Source(spec));
            defs.push(def);
        }

        let sql_dir = raw.project.sql_dir.as_deref().unwrap_or("sql");
        let sql_root = dir.join(sql_dir);
        let mut skipped = Vec::new();
        if sql_root.is_dir() {
            for path in sql_files(&dir, &sql_root, &mut skipped)? {
                let (def, loaded) = sql_def(&dir, &sql_root, &path)?;
                let loaded = loaded.and_then(|(query, own, automation)| {
                    execution.check(&own).map_err(|message| Error::Definition {
                        origin: def.origin.to_string(),
                        message,
                    })?;
                    Ok((query, own, automation))
                });
                match loaded {
                    Ok((query, own, automation)) => {
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

        for name in &raw.project.catalogues {
            let catalogue = catalogues.get(name).ok_or_else(|| {
                let known: Vec<_> = catalogues.names().collect();
                config_error(format!(
                    "unknown catalogue {name:?} (this binary has: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ))
            })?;
            for sensor in catalogue.sensors() {
                let sensor = sensor.build().map_err(|message| Error::Definition {
                    origin: format!("catalogue {name}"),
                    message,
                })?;
                if sensors.iter().any(|s: &Sensor| s.name == sensor.name) {
                    return Err(Error::Definition {
                        origin: format!("catalogue {name}"),
                        message: format!("two sensors are called {}", sensor.name),
                    });
                }
                sensors.push(sensor);
            }
            for asset in catalogue.iter() {
                let (def, compute, own) = asset.build()?;
                if let Some(condition) = asset.own_automation() {
                    own_automation.insert(def.key.clone(), condition);
                }
                execution.check(&own).map_err(|message| Error::Definition {
                    origin: def.origin.to_string(),
                    message: format!("asset {}: {message}", def.key),
                })?;
                settings.insert(def.key.clone(), own);
                computations.insert(def.key.clone(), Computation::Rust(compute));
                defs.push(def);
            }
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    project: RawProject,
    #[serde(default)]
    sources: BTreeMap<String, RawSource>,
    #[serde(default)]
    groups: BTreeMap<String, RawGroup>,
    #[serde(default)]
    execution: RawExecution,
    #[serde(default)]
    pools: BTreeMap<String, usize>,
    #[serde(default)]
    automation: RawAutomation,
    #[serde(default)]
    schedules: BTreeMap<String, RawSchedule>,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    gc: RawGc,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGc {
    /// Versions `freshet gc` keeps before each current one.
    keep: Option<u32>,
    /// How long `freshet gc` keeps the log lines of runs that ended.
    run_logs: Option<String>,
}

impl RawConfig {
    /// `[execution]` and `[pools]`, with `--concurrency` winning.
    fn execution(&self, overrides: &Overrides) -> Result<Execution, String> {
        let raw = &self.execution;
        let duration = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| parse_duration(v).map_err(|e| format!("execution.{name}: {e}")))
                .transpose()
        };
        let concurrency = overrides
            .concurrency
            .or(raw.concurrency)
            .unwrap_or_else(default_concurrency);
        if concurrency == 0 {
            return Err("execution.concurrency must be at least 1".to_owned());
        }
        if let Some((pool, _)) = self.pools.iter().find(|(_, limit)| **limit == 0) {
            return Err(format!("pools.{pool} must be at least 1"));
        }
        if let Some(pool) = self.pools.keys().find(|p| !is_identifier(p)) {
            return Err(format!(
                "invalid pool name {pool:?}: use letters, digits and underscores"
            ));
        }
        Ok(Execution {
            concurrency,
            pools: self.pools.clone(),
            defaults: StepSettings {
                pool: None,
                retries: raw.retries,
                retry_delay: duration("retry_delay", &raw.retry_delay)?,
                timeout: duration("timeout", &raw.timeout)?,
                compression: raw
                    .compression
                    .as_deref()
                    .map(|c| {
                        crate::policy::parse_compression(c)
                            .map_err(|e| format!("execution.compression: {e}"))
                    })
                    .transpose()?,
            },
            retry_max_delay: duration("retry_max_delay", &raw.retry_max_delay)?
                .unwrap_or(RetryPolicy::NONE.max_delay),
            memory_limit: overrides
                .memory_limit
                .clone()
                .or_else(|| raw.memory_limit.clone())
                .map(|v| {
                    crate::policy::parse_bytes(&v)
                        .map_err(|e| format!("execution.memory_limit: {e}"))
                })
                .transpose()?,
            max_runs: match raw.max_runs {
                Some(0) => return Err("execution.max_runs must be at least 1".to_owned()),
                Some(n) if n > 1000 => {
                    return Err("execution.max_runs must be at most 1000".to_owned());
                }
                Some(n) => n,
                None => 1,
            },
        })
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExecution {
    concurrency: Option<usize>,
    max_runs: Option<usize>,
    retries: Option<u32>,
    retry_delay: Option<String>,
    retry_max_delay: Option<String>,
    timeout: Option<String>,
    compression: Option<String>,
    memory_limit: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    freshness: Option<RawFreshness>,
    automation: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAutomation {
    /// The condition of assets that set none and whose group sets none.
    default: Option<String>,
    observe_interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    name: String,
    sql_dir: Option<String>,
    #[serde(default)]
    catalogues: Vec<String>,
    storage: Option<String>,
    database: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    path: String,
    format: Option<String>,
    description: Option<String>,
    group: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    owners: Vec<String>,
    freshness: Option<RawFreshness>,
    observe_interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFreshness {
    max_age: Option<String>,
    warn_after: Option<String>,
    cron: Option<String>,
    timezone: Option<String>,
}

impl RawFreshness {
    fn parse(&self) -> Result<FreshnessPolicy, String> {
        let mut policy = FreshnessPolicy::default();
        for (name, value) in [
            ("max_age", &self.max_age),
            ("warn_after", &self.warn_after),
            ("cron", &self.cron),
            ("timezone", &self.timezone),
        ] {
            if let Some(value) = value {
                policy.set(name, value)?;
            }
        }
        policy.validate()?;
        Ok(policy)
    }
}

/// A TOML error as one line with its position.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    // The parser may quote a value; a webhook URL can be a secret.
    let message = redact_urls(&message);
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// `text` with every `http://` or `https://` URL cut to its scheme and host.
fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = [rest.find("http://"), rest.find("https://")]
            .into_iter()
            .flatten()
            .min();
        let Some(start) = next else {
            break;
        };
        out.push_str(&rest[..start]);
        let url = &rest[start..];
        let end = url
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
            .unwrap_or(url.len());
        let after_scheme = url.find("://").map_or(0, |s| s + 3);
        let host_end = url[after_scheme..end]
            .find('/')
            .map_or(end, |h| after_scheme + h);
        out.push_str(&url[..host_end]);
        if host_end < end {
            out.push_str("/***");
        }
        rest = &url[end..];
    }
    out.push_str(rest);
    out
}

fn source_def(dir: &Path, name: &str, raw: &RawSource) -> Result<(AssetDef, SourceSpec), String> {
    let key = AssetKey::parse(name).map_err(|e| format!("source {e}"))?;
    let location = if raw.path.contains("://") {
        raw.path.clone()
    } else {
        dir.join(&raw.path).display().to_string()
    };
    let format = match raw.format.as_deref() {
        Some("csv") => SourceFormat::Csv,
        Some("parquet") => SourceFormat::Parquet,
        Some("json") => SourceFormat::Json,
        Some(other) => {
            return Err(format!(
                "source {key}: unknown format {other:?} (expected csv, parquet or json)"
            ));
        }
        None => {
            let file = raw.path.rsplit('/').next().unwrap_or(&raw.path);
            match file
                .rsplit_once('.')
                .map(|(_, ext)| ext.to_ascii_lowercase())
                .as_deref()
            {
                Some("csv") => SourceFormat::Csv,
                Some("parquet") => SourceFormat::Parquet,
                Some("json" | "jsonl" | "ndjson") => SourceFormat::Json,
                _ => {
                    return Err(format!(
                        "source {key}: cannot tell the format of {:?}; set format = \"csv\", \"parquet\" or \"json\"",
                        raw.path
                    ));
                }
            }
        }
    };
    let mut def = AssetDef::new(
        key.clone(),
        AssetKind::Source,
        Origin::File {
            path: CONFIG_FILE.to_owned(),
        },
    );
    def.description = raw.description.clone();
    if let Some(group) = &raw.group {
        if !is_identifier(group) {
            return Err(format!(
                "source {key}: invalid group {group:?}: use letters, digits and underscores"
            ));
        }
        def.group = group.clone();
    }
    def.tags = raw.tags.iter().cloned().collect();
    def.owners = raw.owners.clone();
    if let Some(f) = &raw.freshness {
        def.freshness = Some(
            f.parse()
                .map_err(|e| format!("source {key}: invalid freshness: {e}"))?,
        );
    }
    Ok((def, SourceSpec { location, format }))
}

/// Every `.sql` file below `root`, sorted, skipping hidden folders.
fn sql_files(dir: &Path, root: &Path, skipped: &mut Vec<String>) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let io = |e| Error::Io {
            path: folder.display().to_string(),
            error: e,
        };
        for entry in std::fs::read_dir(&folder).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let is_sql = path.extension().is_some_and(|e| e == "sql");
            let name = path.file_name().map(|n| n.to_string_lossy());
            if name.as_deref().is_some_and(|n| n.starts_with('.')) {
                // Hidden: version control, editors' files. A hidden `.sql` file is said, as
                // a user may well have meant it as an asset (`..sql`, `.orders.sql`).
                if is_sql {
                    let shown = path
                        .strip_prefix(dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    skipped.push(format!(
                        "{}: not read: its name starts with '.' (hidden); rename it to make it an asset",
                        crate::error::escaped(&shown)
                    ));
                }
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if is_sql {
                out.push(path);
            }
        }
    }
    out.sort();
    skipped.sort();
    Ok(out)
}

/// A SQL file's query, execution settings and own automation condition.
type SqlParts = (String, StepSettings, Option<Option<AutomationCondition>>);

/// A SQL file's definition and, unless its text is broken, its parts. Only a file name that is
/// not a key fails the whole project: without a key there is no asset to mark broken.
fn sql_def(dir: &Path, sql_root: &Path, path: &Path) -> Result<(AssetDef, Result<SqlParts>)> {
    let relative = path.strip_prefix(dir).unwrap_or(path).display().to_string();
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let key = AssetKey::parse(stem).map_err(|e| Error::Definition {
        origin: relative.clone(),
        message: format!("{e} (the file name is the asset key)"),
    })?;
    // A file in a sub-folder of the SQL folder belongs to the group named after that folder.
    let folder_group = path
        .strip_prefix(sql_root)
        .ok()
        .and_then(|p| p.parent())
        .and_then(|p| p.components().next())
        .and_then(|c| c.as_os_str().to_str())
        .filter(|g| is_identifier(g));
    let mut def = AssetDef::new(
        key,
        AssetKind::Sql,
        Origin::File {
            path: relative.clone(),
        },
    );
    def.group = folder_group.unwrap_or(DEFAULT_GROUP).to_owned();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            let error = Error::Io {
                path: relative,
                error,
            };
            return Ok((def, Err(error)));
        }
    };
    // A broken file's version is its bytes', so fixing it or breaking it otherwise changes it.
    def.code_version = Some(crate::model::CodeVersion::new(format!(
        "file:{}",
        crate::fingerprint::hash_hex(&bytes)
    )));
    let parsed = String::from_utf8(bytes)
        .map_err(|_| Error::Definition {
            origin: relative.clone(),
            message: "not UTF-8 text".to_owned(),
        })
        .and_then(|text| {
            parse_sql_asset(&text).map_err(|error| Error::Sql {
                path: relative.clone(),
                error,
            })
        });
    let asset = match parsed {
        Ok(asset) => asset,
        Err(error) => return Ok((def, Err(error))),
    };
    def.deps = asset.deps;
    def.code_version = Some(asset.code_version);
    def.description = asset.header.description;
    if let Some(group) = asset.header.group {
        def.group = group;
    }
    def.tags = asset.header.tags;
    def.owners = asset.header.owners;
    def.freshness = asset.header.freshness;
    Ok((
        def,
        Ok((asset.query, asset.header.execution, asset.header.automation)),
    ))
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

/// Sets each non-source asset's automation condition: its own, else its group's, else the
/// project's `[automation] default`; and checks that `freshness` has a policy to keep.
fn apply_automation(
    raw: &RawConfig,
    defs: &mut [AssetDef],
    own: &HashMap<AssetKey, Option<AutomationCondition>>,
) -> std::result::Result<(), String> {
    let parse = |what: &str, text: &str| {
        AutomationCondition::parse(text).map_err(|e| format!("{what}: invalid automation: {e}"))
    };
    let default = match &raw.automation.default {
        Some(text) => parse("[automation] default", text)?,
        None => None,
    };
    let mut groups = HashMap::new();
    for (group, settings) in &raw.groups {
        if let Some(text) = &settings.automation {
            groups.insert(group.as_str(), parse(&format!("group {group}"), text)?);
        }
    }
    for def in defs.iter_mut().filter(|d| d.kind != AssetKind::Source) {
        def.automation = match own.get(&def.key) {
            Some(condition) => condition.clone(),
            None => groups
                .get(def.group.as_str())
                .cloned()
                .unwrap_or_else(|| default.clone()),
        };
        if def.automation == Some(AutomationCondition::Freshness) && def.freshness.is_none() {
            return Err(format!(
                "asset {} ({}): automation freshness needs a freshness policy to keep",
                def.key, def.origin
            ));
        }
    }
    Ok(())
}

fn resolve_storage(dir: &Path, configured: Option<&str>) -> Result<Url, String> {
    let mut url = match configured {
        Some(s) if s.contains("://") => {
            Url::parse(s).map_err(|e| format!("invalid storage URL {s:?}: {e}"))?
        }
        Some(s) => dir_url(&dir.join(s))?,
        None => dir_url(&dir.join(".freshet").join("data"))?,
    };
    match datafusion::object_store::ObjectStoreScheme::parse(&url) {
        Ok((datafusion::object_store::ObjectStoreScheme::Memory, _)) | Err(_) => {
            return Err(format!(
                "storage {}://: not an object store Freshet can write to \
                 (use a folder, file://, s3://, gs://, az:// or abfss://)",
                url.scheme()
            ));
        }
        Ok(_) => {}
    }
    // Storage is a folder: with a trailing slash, joining a relative path appends to it.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn dir_url(path: &Path) -> Result<Url, String> {
    let absolute = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Url::from_directory_path(&absolute)
        .map_err(|()| format!("{} is not a valid folder path", absolute.display()))
}

fn resolve_database(dir: &Path, configured: Option<&str>) -> String {
    match configured {
        Some(s) if s.contains("://") || s.starts_with("sqlite:") => s.to_owned(),
        Some(s) => format!("sqlite://{}", dir.join(s).display()),
        None => format!(
            "sqlite://{}",
            dir.join(".freshet").join("freshet.db").display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)]) -> Result<Project, String> {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let result = Project::load(dir.path(), &Catalogues::new(), &Overrides::default());
        assert!(
            !dir.path().join(".freshet").exists(),
            "loading must not write"
        );
        result.map_err(|e| {
            e.to_string()
                .replace(&dir.path().display().to_string(), "DIR")
        })
    }

    const TOML: &str = "[project]\nname = \"t\"\n[sources.raw]\npath = \"raw.csv\"\n";

    #[test]
    fn loads_sources_and_sql_with_groups_from_folders() {
        let p = load(&[
            ("freshet.toml", TOML),
            ("sql/clean.sql", "select * from raw"),
            (
                "sql/marts/total.sql",
                "-- @tags: x\nselect count(*) as n from clean",
            ),
        ])
        .unwrap();
        let keys: Vec<_> = p
            .graph()
            .iter()
            .map(|d| format!("{}:{}:{}", d.key, d.kind, d.group))
            .collect();
        assert_eq!(
            keys,
            ["raw:source:default", "clean:sql:default", "total:sql:marts"]
        );
        assert!(p.storage_url().as_str().ends_with("/.freshet/data/"));
    }

    #[test]
    fn automation_is_the_asset_s_own_else_its_group_s_else_the_project_s() {
        let toml = "[project]\nname = \"t\"\n[automation]\ndefault = \"eager\"\n\
                    [groups.marts]\nautomation = \"freshness\"\nfreshness = { max_age = \"1h\" }\n";
        let p = load(&[
            ("freshet.toml", toml),
            ("sql/a.sql", "select 1 as x"),
            ("sql/b.sql", "-- @automation: none\nselect 1 as x"),
            ("sql/marts/c.sql", "select 1 as x"),
            (
                "sql/marts/d.sql",
                "-- @automation: on_cron \"0 6 * * *\"\nselect 1 as x",
            ),
        ])
        .unwrap();
        let condition = |k: &str| {
            let def = p.graph().get(&k.parse().unwrap()).unwrap();
            def.automation
                .as_ref()
                .map_or_else(|| "none".to_owned(), |c| c.as_text())
        };
        assert_eq!(
            [
                condition("a"),
                condition("b"),
                condition("c"),
                condition("d")
            ],
            ["eager", "none", "freshness", "on_cron \"0 6 * * *\""]
        );
        let no_policy = "[project]\nname = \"t\"\n";
        assert_eq!(
            load(&[
                ("freshet.toml", no_policy),
                ("sql/a.sql", "-- @automation: freshness\nselect 1 as x"),
            ])
            .unwrap_err(),
            "DIR/freshet.toml: asset a (sql/a.sql): automation freshness needs a freshness policy to keep"
        );
        let bad = "[project]\nname = \"t\"\n[automation]\ndefault = \"often\"\n";
        assert_eq!(
            load(&[("freshet.toml", bad)]).unwrap_err(),
            "DIR/freshet.toml: [automation] default: invalid automation: unknown condition \"often\" (expected eager, on_cron \"CRON\" [TIME_ZONE], freshness or none)"
        );
    }

    #[test]
    fn config_errors_never_show_a_webhook_url_s_path() {
        let toml = "[project]\nname = \"t\"\n[alerts]\nwebhooks = \"https://hooks.example/T000/B000/secret\"\n";
        let error = load(&[("freshet.toml", toml)]).unwrap_err();
        assert!(
            !error.contains("secret") && !error.contains("T000"),
            "{error}"
        );
        assert_eq!(
            redact_urls("a \"https://h.example/x/y\" and http://h2:80/p q"),
            "a \"https://h.example/***\" and http://h2:80/*** q"
        );
    }

    #[test]
    fn max_runs_defaults_to_one_and_must_be_positive() {
        let p = load(&[("freshet.toml", "[project]\nname = \"t\"\n")]).unwrap();
        assert_eq!(p.execution().max_runs, 1);
        let two = "[project]\nname = \"t\"\n[execution]\nmax_runs = 2\n";
        assert_eq!(
            load(&[("freshet.toml", two)]).unwrap().execution().max_runs,
            2
        );
        let zero = "[project]\nname = \"t\"\n[execution]\nmax_runs = 0\n";
        assert_eq!(
            load(&[("freshet.toml", zero)]).unwrap_err(),
            "DIR/freshet.toml: execution.max_runs must be at least 1"
        );
    }

    #[test]
    fn group_freshness_is_the_default_for_its_assets() {
        let toml = "[project]\nname = \"t\"\n[groups.marts]\nfreshness = { max_age = \"2h\" }\n";
        let p = load(&[
            ("freshet.toml", toml),
            ("sql/marts/a.sql", "select 1 as x"),
            (
                "sql/marts/b.sql",
                "-- @freshness: max_age=1d\nselect 1 as x",
            ),
            ("sql/c.sql", "select 1 as x"),
        ])
        .unwrap();
        let policy = |k: &str| {
            let def = p.graph().get(&k.parse().unwrap()).unwrap();
            def.freshness
                .as_ref()
                .and_then(|f| f.max_age)
                .map(|d| d.as_secs())
        };
        assert_eq!(
            (policy("a"), policy("b"), policy("c")),
            (Some(7200), Some(86_400), None)
        );
        let bad = "[project]\nname = \"t\"\n[groups.marts]\nfreshness = { cron = \"0 6 * * *\", timezone = \"Mars/Base\" }\n";
        assert_eq!(
            load(&[("freshet.toml", bad)]).unwrap_err(),
            "DIR/freshet.toml: group marts: invalid freshness: unknown time zone \"Mars/Base\" (expected an IANA name such as Europe/Paris)"
        );
    }

    #[test]
    fn invalid_projects_fail_with_one_line_naming_the_file() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[],
                "DIR/freshet.toml: not found: a project is a folder with a freshet.toml (create one with `freshet init DIR`)",
            ),
            (
                &[("freshet.toml", "[project\nname = 1")],
                "DIR/freshet.toml: line 1, column 9: unclosed table, expected `]`",
            ),
            (
                &[("freshet.toml", "[project]\nname = \"t\"\ncolour = 1\n")],
                "DIR/freshet.toml: line 3, column 1: unknown field `colour`, expected one of `name`, `sql_dir`, `catalogues`, `storage`, `database`",
            ),
            (
                &[(
                    "freshet.toml",
                    "[project]\nname = \"t\"\ncatalogues = [\"demo\"]\n",
                )],
                "DIR/freshet.toml: unknown catalogue \"demo\" (this binary has: none)",
            ),
            (
                &[(
                    "freshet.toml",
                    "[project]\nname = \"t\"\n[sources.raw]\npath = \"raw.txt\"\n",
                )],
                "DIR/freshet.toml: source raw: cannot tell the format of \"raw.txt\"; set format = \"csv\", \"parquet\" or \"json\"",
            ),
            (
                &[(
                    "freshet.toml",
                    "[project]\nname = \"t\"\n[sources.\"raw-x\"]\npath = \"raw.csv\"\n",
                )],
                "DIR/freshet.toml: source invalid asset key \"raw-x\": segments may contain only ASCII letters, digits and underscores",
            ),
            (
                &[("freshet.toml", TOML), ("sql/bad-name.sql", "select 1")],
                "sql/bad-name.sql: invalid asset key \"bad-name\": segments may contain only ASCII letters, digits and underscores (the file name is the asset key)",
            ),
            (
                &[("freshet.toml", TOML), ("sql/raw.sql", "select 1")],
                "duplicate asset key raw: defined in freshet.toml and in sql/raw.sql",
            ),
            (
                &[
                    ("freshet.toml", TOML),
                    ("sql/a.sql", "select * from b"),
                    ("sql/b.sql", "select * from a"),
                ],
                "dependency cycle: a -> b -> a (each asset depends on the next)",
            ),
            (
                &[(
                    "freshet.toml",
                    "[project]\nname = \"t\"\nstorage = \"ftp://host/x\"\n",
                )],
                "DIR/freshet.toml: storage ftp://: not an object store Freshet can write to (use a folder, file://, s3://, gs://, az:// or abfss://)",
            ),
        ];
        for (files, expect) in cases {
            let got = load(files).unwrap_err();
            assert_eq!(&got, expect);
        }
    }

    /// A SQL file whose text is wrong breaks only its asset: the project loads, the asset keeps
    /// its key (so its readers load) without dependencies, and says why.
    #[test]
    fn a_broken_sql_file_breaks_only_its_asset() {
        let cases = [
            ("select * frm raw", "sql/a.sql: invalid SQL: "),
            (
                "select * from nowhere",
                "asset a (sql/a.sql) depends on unknown asset nowhere",
            ),
            ("-- @pool: nope\nselect 1 as x", "sql/a.sql: "),
            (
                "-- @colour: blue\nselect 1 as x",
                "sql/a.sql: line 1: unknown setting @colour",
            ),
        ];
        for (text, expect) in cases {
            let project = load(&[
                ("freshet.toml", TOML),
                ("sql/a.sql", text),
                ("sql/b.sql", "select * from a"),
                ("sql/c.sql", "select * from raw"),
            ])
            .unwrap();
            let key = |k: &str| AssetKey::parse(k).unwrap();
            let error = project.load_error(&key("a")).unwrap();
            assert!(error.starts_with(expect), "{text}: {error}");
            assert!(project.graph().get(&key("a")).unwrap().deps.is_empty());
            assert_eq!(project.graph().get(&key("b")).unwrap().deps, [key("a")]);
            assert_eq!(project.load_error(&key("c")), None);
            assert_eq!(
                project.first_broken([&key("c"), &key("b"), &key("a")]),
                Some((&key("a"), error))
            );
        }
    }

    fn toml_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let value = prop_oneof![
            Just("\"t\"".to_owned()),
            Just("\"raw.csv\"".to_owned()),
            Just("\"1h\"".to_owned()),
            Just("\"soon\"".to_owned()),
            Just("\"0 6 * * *\"".to_owned()),
            Just("[\"a\", \"b\"]".to_owned()),
            Just("{ x = 1 }".to_owned()),
            Just("true".to_owned()),
            "-?[0-9]{1,12}",
            "\"\\PC{0,6}\"",
        ];
        let key = prop_oneof![
            "(name|sql_dir|catalogues|storage|database|path|format|observe_interval|cron|selection|stale_only|keep|run_logs|concurrency|max_runs|memory_limit|compression|default|webhooks|nope)",
            "[a-z_]{1,6}",
        ];
        let line = prop_oneof![
            "\\[(project|sources\\.raw|sources\\.x y|execution|pools|gc|automation|schedules\\.nightly|alerts|groups\\.marts|nope)\\]",
            (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
            "\\PC{0,8}",
        ];
        proptest::collection::vec(line, 0..12)
            .prop_map(|lines| format!("[project]\nname = \"t\"\n{}", lines.join("\n")))
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: crate::sql::tests::fuzz_cases() / 4,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// Any freshet.toml loads or fails in one line naming the file, and loading writes
        /// nothing (the helper checks it).
        #[test]
        fn fuzz_project_files_load_or_fail_in_one_line(toml in toml_text()) {
            match load(&[("freshet.toml", &toml), ("raw.csv", "n\n1\n")]) {
                Ok(_) => {}
                Err(message) => {
                    proptest::prop_assert!(!message.contains('\n'), "{}", message);
                    proptest::prop_assert!(message.starts_with("DIR/freshet.toml: "), "{}", message);
                }
            }
        }
    }
}
