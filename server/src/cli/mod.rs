//! The `freshet` command line: the arguments, a dispatcher, and what the commands share.
//! Each command is one function in its own module.
//!
//! **Invariant:** everything a command line names (selections, keys, the project) is checked
//! before the store is opened, so a typo never creates or writes a database.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use freshet_core::freshness::{Clock as _, SystemClock};
use freshet_core::selection::Selection;
use freshet_core::{
    AssetGraph, AssetKey, AssetKind, Catalogues, Executor, Overrides, Project, Snapshot, Store,
};

use crate::output;

mod daemon;
mod gc;
mod history;
pub(crate) mod live;
mod materialize;
mod observe;
mod partitions;
mod plan;
mod preview;
mod progress;
mod runs;
mod serve;
mod status;

use progress::{JsonProgress, Progress};

/// Asset-based data orchestration: declare the data you want, materialize what is missing or stale.
#[derive(Debug, Parser)]
#[command(name = "freshet", version, about, long_about = None)]
pub struct Cli {
    /// The project folder (holding freshet.toml).
    #[arg(long, global = true, default_value = ".", env = "FRESHET_PROJECT")]
    project: PathBuf,
    /// Where outputs are written: a folder or file:// URL (default <project>/.freshet/data).
    #[arg(long, global = true, env = "FRESHET_STORAGE")]
    storage: Option<String>,
    /// The metadata database: a SQLite file, sqlite://PATH or postgres://USER:PASSWORD@HOST/DB
    /// (default <project>/.freshet/freshet.db).
    #[arg(long, global = true, env = "FRESHET_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// How many steps run at once (default: [execution] concurrency in freshet.toml, else the
    /// number of cores).
    #[arg(long, global = true, env = "FRESHET_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: Option<u32>,
    /// Memory that sorts, joins and aggregates may use in this process before they spill to a
    /// temp folder, e.g. `4GB` (default: [execution] memory_limit in freshet.toml, else none).
    #[arg(long, global = true, env = "FRESHET_MEMORY_LIMIT")]
    memory_limit: Option<String>,
    /// How log lines are written to stderr: `text` for people, `json` (one object per line) for
    /// a log collector. Which lines: RUST_LOG (default warn).
    #[arg(long, global = true, env = "FRESHET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `freshet partitions add`.
#[derive(Debug, Subcommand)]
enum PartitionsAction {
    /// Add keys to a dynamic partitions definition (new keys get the next ordinals; a key
    /// already there is left as it is).
    Add {
        /// The definition (`[partitions.NAME]` with `dynamic = true`).
        definition: String,
        /// The keys to add.
        keys: Vec<String>,
        /// A file with more keys, one per line.
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line: time, level, target, message and fields.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a small working project to start from.
    Init {
        /// The folder to create the project in (created if missing; must not hold a freshet.toml).
        dir: PathBuf,
    },
    /// List the project's assets.
    Assets {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Materialize the selected assets, or, with no selection, everything missing or stale.
    Materialize {
        /// Selections (`+daily_revenue`, `tag:finance`, `status:stale`; see the README);
        /// several are united. Their inputs must already have data or be selected too.
        selection: Vec<String>,
        /// Only what is missing or stale in the selection, plus what may change downstream of it
        /// (the default with no selection).
        #[arg(long)]
        stale: bool,
        /// Print one JSON object per line on stdout for each thing the run does, and none of
        /// the text.
        #[arg(long)]
        json: bool,
        /// Of the selected partitioned assets, run this partition (its key, e.g. 2024-03-08).
        #[arg(long, conflicts_with_all = ["range", "stale"])]
        partition: Option<String>,
        /// Of the selected partitioned assets, run these partitions, FIRST..LAST both included
        /// (e.g. 2024-03-01..2024-03-31), as one step each.
        #[arg(long, conflicts_with = "stale")]
        range: Option<String>,
    },
    /// List a partitioned asset's partitions as ranges with their status (failed, stale, missing,
    /// blocked, fresh) and why; or add keys to a dynamic partitions definition.
    #[command(args_conflicts_with_subcommands = true)]
    Partitions {
        #[command(subcommand)]
        action: Option<PartitionsAction>,
        /// The partitioned asset.
        key: Option<String>,
        /// Only the partitions with this status.
        #[arg(long)]
        status: Option<String>,
        /// Only partitions FIRST..LAST (keys, both included).
        #[arg(long)]
        range: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what `materialize --stale [SELECTION]` would run, in order and why, what it would not
    /// run and why, and what it is expected to cost.
    Plan {
        /// Selections; every asset when none.
        selection: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// For each partitioned asset in the plan, say how its partitions map to each input's
        /// and which of its partitions are due now.
        #[arg(long)]
        explain: bool,
    },
    /// Show each asset's status (fresh, stale, missing), freshness and why; given one asset key,
    /// explain that asset in words.
    Status {
        /// An asset key to explain, or selections to list; every asset when none.
        selection: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the dependency graph.
    Lineage {
        /// Print JSON (assets and edges).
        #[arg(long, conflicts_with = "dot")]
        json: bool,
        /// Print Graphviz DOT.
        #[arg(long)]
        dot: bool,
    },
    /// Print the first rows of an asset's current version, or of an older one.
    Preview {
        /// The asset key.
        key: String,
        /// How many rows.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// A version's id, as `freshet history KEY` lists them (default: the current one).
        #[arg(long)]
        version: Option<String>,
    },
    /// List an asset's versions, newest first: time, rows, size, files, code and data versions,
    /// metadata; which one is current and which gc removed.
    History {
        /// The asset key.
        key: String,
        /// How many versions.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove old versions' files (beyond the newest N before each current one) and files no
    /// version references (left by killed writes), and say what was freed.
    Gc {
        /// Versions to keep before each current one (default: [gc] keep in freshet.toml, else 10).
        #[arg(long)]
        keep: Option<u32>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Observe sources (all, or the selected ones) and record new data versions.
    Observe {
        /// Selections; the sources among them are observed. All sources when none.
        selection: Vec<String>,
    },
    /// Cancel a queued or running run, whichever process runs it (it stops within about a
    /// second; steps it was computing keep their assets' previous versions, steps that had
    /// finished keep their new ones).
    Cancel {
        /// The run's id.
        run_id: String,
    },
    /// List recent runs; given a run id, show that run with its steps, attempts and log.
    Runs {
        /// A run's id.
        run_id: Option<String>,
        /// How many runs to list.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the web view and the HTTP API (under /api).
    Serve {
        /// The address to listen on. On anything other than a loopback address every request,
        /// the page included, needs the read token or the action token.
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: std::net::SocketAddr,
        /// The bearer token that actions (materialize, observe, cancel) need; a random one is
        /// generated and printed when unset.
        #[arg(long, env = "FRESHET_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// A second token that allows reading only (the page, the API's GETs, /metrics),
        /// needed beyond loopback along with the action token. Unset: reads need the action
        /// token.
        #[arg(long, env = "FRESHET_READ_TOKEN", hide_env_values = true)]
        read_token: Option<String>,
        /// Serve only: no sensors, schedules, automation conditions or alerts.
        #[arg(long)]
        no_automation: bool,
    },
    /// Keep declared assets fresh without the web server: observe sources, run schedules,
    /// evaluate automation conditions, send alerts, until Ctrl-C or SIGTERM.
    Daemon,
    /// Show the automation conditions' latest decisions and why, the next evaluation, and the
    /// schedules with their last and next ticks.
    Automation {
        /// Selections; every asset with a condition when none.
        selection: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line with the Rust catalogues this binary carries.
pub fn run(cli: Cli, catalogues: Catalogues) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // DataFusion clones and plans a query's expressions recursively: the deepest a SQL file
        // may hold (`freshet_core::sql::MAX_DEPTH`) needs more than tokio's 2 MiB in a debug
        // build (a chain of 480 additions overflowed it). Only what is used is committed.
        .thread_stack_size(32 << 20)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(cli, catalogues))
}

async fn run_async(cli: Cli, catalogues: Catalogues) -> anyhow::Result<ExitCode> {
    let load = || load_project(&cli, &catalogues);
    match &cli.command {
        Command::Init { dir } => crate::init::init(dir).map(|()| ExitCode::SUCCESS),
        Command::Assets { json } => {
            output::print_assets(&load()?, *json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lineage { json, dot } => {
            output::print_lineage(&load()?, *json, *dot)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Materialize {
            selection,
            stale,
            json,
            partition,
            range,
        } => {
            let partitions = materialize::partitions(partition.as_deref(), range.as_deref())?;
            materialize::materialize(&load()?, selection, *stale, *json, partitions).await
        }
        Command::Partitions {
            action:
                Some(PartitionsAction::Add {
                    definition,
                    keys,
                    from_file,
                }),
            ..
        } => partitions::add(&load()?, definition, keys, from_file.as_deref()).await,
        Command::Partitions {
            action: None,
            key,
            status,
            range,
            json,
        } => {
            let Some(key) = key else {
                anyhow::bail!("name a partitioned asset: freshet partitions KEY");
            };
            partitions::list(&load()?, key, status.as_deref(), range.as_deref(), *json).await
        }
        Command::Plan {
            selection,
            json,
            explain,
        } => plan::plan(&load()?, selection, *json, *explain).await,
        Command::Status { selection, json } => status::status(&load()?, selection, *json).await,
        Command::Preview {
            key,
            limit,
            version,
        } => preview::preview(&load()?, key, *limit, version.as_deref()).await,
        Command::History { key, limit, json } => {
            history::history(&load()?, key, *limit, *json).await
        }
        Command::Gc { keep, dry_run } => gc::gc(&load()?, *keep, *dry_run).await,
        Command::Observe { selection } => observe::observe(&load()?, selection).await,
        Command::Cancel { run_id } => runs::cancel(&load()?, run_id).await,
        Command::Runs {
            run_id,
            limit,
            json,
        } => runs::runs(&load()?, run_id.as_deref(), *limit, *json).await,
        Command::Serve {
            addr,
            token,
            read_token,
            no_automation,
        } => {
            let project = load()?;
            let reload = (catalogues.clone(), overrides(&cli));
            let tokens = serve::Tokens {
                action: token.clone(),
                read: read_token.clone(),
            };
            serve::serve(&project, *addr, tokens, !*no_automation, reload).await
        }
        Command::Daemon => {
            let project = load()?;
            daemon::daemon(&project, (catalogues.clone(), overrides(&cli))).await
        }
        Command::Automation { selection, json } => {
            daemon::automation(&load()?, selection, *json).await
        }
    }
}

/// Loads and validates the project (nothing is opened or written), saying which files of the
/// SQL folder it does not read.
fn load_project(cli: &Cli, catalogues: &Catalogues) -> anyhow::Result<Project> {
    let project = Project::load(&cli.project, catalogues, &overrides(cli))?;
    for skipped in project.skipped() {
        crate::warning(skipped);
    }
    Ok(project)
}

/// What the command line and the environment set over `freshet.toml`.
fn overrides(cli: &Cli) -> Overrides {
    Overrides {
        storage: cli.storage.clone(),
        database: cli.database.clone(),
        concurrency: cli.concurrency.map(|n| n as usize),
        memory_limit: cli.memory_limit.clone(),
        object_store_options: object_store_options_from_env(),
    }
}

/// How a long-running command loads the project again when its files change.
type Reload = (Catalogues, Overrides);

/// Opens (and so creates) the store, and makes the executor: only once everything the command
/// line names has been checked.
async fn open(project: &Project) -> anyhow::Result<(Store, Executor)> {
    let store = open_store(project).await?;
    let executor = Executor::new(project.clone(), store.clone())?;
    Ok((store, executor))
}

/// Opens the store to read only (see [`Store::open_read_only`]), and makes the executor: for
/// commands that write nothing (`status`, `plan`, `preview`, `history`). They leave the runs of
/// processes that died to the next command that writes.
async fn open_read(project: &Project) -> anyhow::Result<(Store, Executor)> {
    let store = open_read_store(project).await?;
    let executor = Executor::new(project.clone(), store.clone())?;
    Ok((store, executor))
}

/// [`open_read`] without the executor, for a command that reads only the store.
async fn open_read_store(project: &Project) -> anyhow::Result<Store> {
    let outputs = earlier_outputs(project).await;
    Ok(Store::open_read_only(project.database_url(), outputs.as_deref()).await?)
}

/// Opens the store and fails the runs of processes that died (saying so), so that nothing
/// stays `running` for ever.
async fn open_store(project: &Project) -> anyhow::Result<Store> {
    let store = Store::open_beside(
        project.database_url(),
        earlier_outputs(project).await.as_deref(),
    )
    .await?;
    for run in store
        .fail_dead_runs(SystemClock.now(), project.execution().heartbeat_timeout)
        .await?
    {
        let by = run
            .owner
            .map(|o| format!(" (process {} on {})", o.pid, o.host))
            .unwrap_or_default();
        eprintln!(
            "freshet: run {} was left unfinished by a process that died{by}; marked failed",
            run.id
        );
    }
    Ok(store)
}

/// Where outputs an earlier store recorded are, when the database is an empty SQLite file (so
/// only then is the output folder or bucket listed).
async fn earlier_outputs(project: &Project) -> Option<String> {
    let path = project.database_url().strip_prefix("sqlite://")?;
    let new = std::fs::metadata(path.split('?').next()?).map_or_else(
        |e| e.kind() == std::io::ErrorKind::NotFound,
        |m| m.len() == 0,
    );
    if !new {
        return None;
    }
    freshet_core::executor::outputs_exist(project).await
}

/// The one asset a command names when given exactly one argument that is a key (`status KEY`,
/// `observe KEY`).
fn single_key(selection: &[String]) -> Option<AssetKey> {
    match selection {
        [one] => AssetKey::parse(one).ok(),
        _ => None,
    }
}

/// A parsed selection and what it selects without facts: final unless it uses `status:` or
/// `freshness:`, which are judged against the store.
struct Chosen {
    selection: Selection,
    keys: BTreeSet<AssetKey>,
}

impl Chosen {
    /// The selections of a command line, united and checked against the graph; `None` when
    /// there are none (every asset).
    fn parse(graph: &AssetGraph, selection: &[String]) -> anyhow::Result<Option<Self>> {
        if selection.is_empty() {
            return Ok(None);
        }
        let parts: Vec<&str> = selection.iter().map(String::as_str).collect();
        let selection = Selection::union_of(&parts)?;
        let keys = selection.select_by_definition(graph)?;
        Ok(Some(Self { selection, keys }))
    }

    /// The first key, if the selection surely picks only sources (it needs no facts).
    fn only_sources(&self, graph: &AssetGraph) -> Option<&AssetKey> {
        let all_sources = self
            .keys
            .iter()
            .all(|k| graph.get(k).is_some_and(|d| d.kind == AssetKind::Source));
        if self.selection.needs_facts() || !all_sources {
            return None;
        }
        self.keys.first()
    }

    /// The selected keys when the selection needs no facts to tell.
    fn definite(&self) -> Option<&BTreeSet<AssetKey>> {
        (!self.selection.needs_facts()).then_some(&self.keys)
    }

    /// The selected keys, judged by `snapshot` if the selection needs facts.
    fn keys_in(&self, snapshot: &Snapshot) -> anyhow::Result<BTreeSet<AssetKey>> {
        if !self.selection.needs_facts() {
            return Ok(self.keys.clone());
        }
        Ok(snapshot.select(&self.selection)?)
    }

    /// The selected keys, reading the store only if the selection needs facts.
    async fn keys(
        &self,
        project: &Project,
        store: &Store,
        now: DateTime<Utc>,
    ) -> anyhow::Result<BTreeSet<AssetKey>> {
        if !self.selection.needs_facts() {
            return Ok(self.keys.clone());
        }
        self.keys_in(&Snapshot::load(project, store, now).await?)
    }
}

/// Refuses to run any of `keys` whose file does not load, with that file's one-line error (as
/// a project that did not load at all was refused).
fn refuse_broken<'k>(
    project: &Project,
    keys: impl IntoIterator<Item = &'k AssetKey>,
) -> anyhow::Result<()> {
    match project.first_broken(keys) {
        Some((_, error)) => Err(anyhow::anyhow!("{error}")),
        None => Ok(()),
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Object store settings from the environment, as the cloud SDKs name them: every `AWS_*`,
/// `GOOGLE_*` and `AZURE_*` variable (e.g. `AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, `AWS_REGION`,
/// `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`), lower-cased as object_store expects.
fn object_store_options_from_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| {
            ["AWS_", "GOOGLE_", "AZURE_"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}
