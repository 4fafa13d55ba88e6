//! The `freshet` command line, and (in [`serve`]) the HTTP API and web view.
//!
//! **Boundary:** the only crate that knows about terminals, JSON output and HTTP. Core types
//! never become the wire format: [`output`] owns the JSON shapes and converts from core types.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::collections::BTreeSet;

use freshet_core::executor::{RunEvent, RunObserver, StepOutcome};
use freshet_core::freshness::{Clock, FreshnessState, SystemClock};
use freshet_core::planner::{self, AssetReport, Facts, Lineage, PlanError, PlanRequest, Statuses};
use freshet_core::selection::{AssetFacts, Selection};
use freshet_core::{
    AssetGraph, AssetKey, AssetKind, Catalogues, Error, Executor, Overrides, Project, Status, Store,
};

mod init;
pub mod output;
pub mod serve;

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
    /// The metadata database: a SQLite file or URL (default <project>/.freshet/freshet.db).
    #[arg(long, global = true, env = "FRESHET_DATABASE", hide_env_values = true)]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
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
    },
    /// Show what `materialize --stale [SELECTION]` would run, in order and why, what it would not
    /// run and why, and what it is expected to cost.
    Plan {
        /// Selections; every asset when none.
        selection: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
    /// Print the first rows of an asset's current version.
    Preview {
        /// The asset key.
        key: String,
        /// How many rows.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Observe sources (all, or the selected ones) and record new data versions.
    Observe {
        /// Selections; the sources among them are observed. All sources when none.
        selection: Vec<String>,
    },
    /// Serve the web view and the HTTP API (under /api).
    Serve {
        /// The address to listen on. Anything other than a loopback address exposes the
        /// project to the network: the page then asks for the token.
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: std::net::SocketAddr,
        /// The bearer token that actions (materialize, observe, cancel) need; a random one is
        /// generated and printed when unset.
        #[arg(long, env = "FRESHET_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

/// Runs the command line with the Rust catalogues this binary carries.
pub fn run(cli: Cli, catalogues: Catalogues) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(cli, catalogues))
}

/// Installs the log subscriber: warnings by default, `RUST_LOG` to change, on stderr.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run_async(cli: Cli, catalogues: Catalogues) -> anyhow::Result<ExitCode> {
    if let Command::Init { dir } = &cli.command {
        return init::init(dir).map(|()| ExitCode::SUCCESS);
    }
    let overrides = Overrides {
        storage: cli.storage.clone(),
        database: cli.database.clone(),
        object_store_options: object_store_options_from_env(),
    };
    // Load and validate everything before opening (and so creating) the store.
    let project = Project::load(&cli.project, &catalogues, &overrides)?;

    if let Command::Assets { json } = &cli.command {
        output::print_assets(&project, *json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Lineage { json, dot } = &cli.command {
        output::print_lineage(&project, *json, *dot)?;
        return Ok(ExitCode::SUCCESS);
    }

    // Selections and keys are checked before the store is opened, so a typo writes nothing.
    let graph = project.graph();
    let selection = match &cli.command {
        Command::Materialize { selection, .. }
        | Command::Plan { selection, .. }
        | Command::Status { selection, .. }
        | Command::Observe { selection }
            if !selection.is_empty() =>
        {
            let parts: Vec<&str> = selection.iter().map(String::as_str).collect();
            let parsed = Selection::union_of(&parts)?;
            let chosen = parsed.select(graph, &NoFacts)?;
            // Materializing nothing but sources is a mistake worth stopping before the store opens.
            if let Command::Materialize { stale: false, .. } = &cli.command
                && !parsed.needs_facts()
                && chosen
                    .iter()
                    .all(|k| graph.get(k).is_some_and(|d| d.kind == AssetKind::Source))
                && let Some(first) = chosen.first()
            {
                return Err(PlanError::Source(first.clone()).into());
            }
            Some(Chosen {
                selection: parsed,
                keys: chosen,
            })
        }
        _ => None,
    };
    let preview_key = match &cli.command {
        Command::Preview { key, .. } => project.resolve_keys(&[key])?.pop(),
        _ => None,
    };
    // `status KEY` and `observe KEY` name one asset: check it is of the right kind first.
    let single_key = match &cli.command {
        Command::Status { selection, .. } | Command::Observe { selection }
            if selection.len() == 1 =>
        {
            AssetKey::parse(&selection[0]).ok()
        }
        _ => None,
    };
    if let (Command::Observe { .. }, Some(key)) = (&cli.command, &single_key)
        && graph.get(key).is_some_and(|d| d.kind != AssetKind::Source)
    {
        return Err(PlanError::NotSource(key.clone()).into());
    }

    let store = Store::open(project.database_url()).await?;
    let executor = Executor::new(project.clone(), store.clone())?;
    if let Command::Serve { addr, token } = &cli.command {
        return serve_command(project, store, executor, *addr, token.clone()).await;
    }
    let now = SystemClock.now();
    let code = match &cli.command {
        Command::Materialize { stale, .. } => {
            let request = PlanRequest {
                selection: match &selection {
                    Some(chosen) => Some(chosen.keys(graph, &store, now).await?),
                    None => None,
                },
                stale_only: *stale || selection.is_none(),
            };
            let report = executor
                .materialize_until(&request, &Progress, shutdown_signal())
                .await?;
            if report.interrupted {
                eprintln!(
                    "interrupted: run {} stopped; the step that was running was not recorded",
                    report
                        .run_id
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                );
                store.close().await;
                return Ok(ExitCode::from(130));
            }
            if report.run_id.is_none() {
                eprintln!("nothing to materialize: every selected asset is fresh");
            } else {
                eprintln!("{}", output::run_summary(&report));
            }
            let lineage = store.load_lineage().await?;
            let statuses = Statuses::compute(graph, &lineage);
            let reports = planner::report_all(graph, &lineage, &statuses, now);
            output::print_status(
                &project,
                &lineage,
                &reports.iter().collect::<Vec<_>>(),
                false,
            )?;
            if report.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Plan { json, .. } => {
            let mut lineage = store.load_lineage().await?;
            // What a run would see: sources as they are now (observed, not recorded).
            executor.peek_sources(&mut lineage).await?;
            let statuses = Statuses::compute(graph, &lineage);
            let request = PlanRequest {
                selection: selection
                    .as_ref()
                    .map(|c| c.keys_given(graph, &lineage, &statuses, now))
                    .transpose()?,
                stale_only: true,
            };
            let plan = planner::plan(graph, &lineage, &statuses, &request)?;
            let history = store.recent_durations(5).await?;
            let estimates = plan.estimate(graph, &lineage, &history);
            // A fresh asset left out may still be behind something upstream: say so.
            let mut notes = std::collections::HashMap::new();
            if request.selection.is_some() {
                let reports = planner::report_all(graph, &lineage, &statuses, now);
                let by_key: std::collections::HashMap<&AssetKey, &AssetReport> =
                    reports.iter().map(|r| (&r.key, r)).collect();
                for n in &plan.not_run {
                    let Some(r) = by_key.get(&n.key) else {
                        continue;
                    };
                    if n.reason != planner::NotRunReason::Fresh || r.upstream.is_empty() {
                        continue;
                    }
                    notes.insert(
                        n.key.clone(),
                        format!("upstream {}; select it with +{}", r.upstream_words(), n.key),
                    );
                }
            }
            let reasons: Vec<Vec<String>> = plan
                .steps
                .iter()
                .map(|step| plan.reasons(graph, &statuses, step))
                .collect();
            output::print_plan(
                &plan,
                &reasons,
                &estimates,
                request.selection.is_none(),
                &notes,
                *json,
            )?;
            ExitCode::SUCCESS
        }
        Command::Status { json, .. } => {
            let lineage = store.load_lineage().await?;
            let statuses = Statuses::compute(graph, &lineage);
            if let Some(key) = &single_key {
                let report = planner::report_one(graph, &lineage, &statuses, key, now)
                    .ok_or_else(|| Error::UnknownAsset(key.to_string()))?;
                output::print_explanation(&project, &lineage, &report, now, *json)?;
            } else {
                let chosen = selection
                    .as_ref()
                    .map(|c| c.keys_given(graph, &lineage, &statuses, now))
                    .transpose()?;
                let reports = planner::report_all(graph, &lineage, &statuses, now);
                let shown: Vec<&AssetReport> = reports
                    .iter()
                    .filter(|r| chosen.as_ref().is_none_or(|c| c.contains(&r.key)))
                    .collect();
                output::print_status(&project, &lineage, &shown, *json)?;
            }
            ExitCode::SUCCESS
        }
        Command::Preview { limit, .. } => {
            let Some(key) = &preview_key else {
                return Ok(ExitCode::FAILURE);
            };
            let batches = executor.preview(key, *limit).await?;
            let table = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .context("cannot format the rows")?;
            println!("{table}");
            ExitCode::SUCCESS
        }
        Command::Observe { .. } => {
            let keys: Vec<AssetKey> = match &selection {
                None => Vec::new(),
                Some(chosen) => {
                    let sources: Vec<AssetKey> = chosen
                        .keys(graph, &store, now)
                        .await?
                        .into_iter()
                        .filter(|k| graph.get(k).is_some_and(|d| d.kind == AssetKind::Source))
                        .collect();
                    if sources.is_empty() {
                        eprintln!("no sources selected");
                        store.close().await;
                        return Ok(ExitCode::SUCCESS);
                    }
                    sources
                }
            };
            executor.observe(&keys, &Progress).await?;
            ExitCode::SUCCESS
        }
        Command::Init { .. }
        | Command::Assets { .. }
        | Command::Lineage { .. }
        | Command::Serve { .. } => ExitCode::SUCCESS,
    };
    store.close().await;
    Ok(code)
}

/// Facts for selections that need none (`status:` and `freshness:` absent): never consulted.
struct NoFacts;

impl AssetFacts for NoFacts {
    fn status(&self, _: &AssetKey) -> Status {
        Status::Missing
    }
    fn freshness(&self, _: &AssetKey) -> FreshnessState {
        FreshnessState::None
    }
}

/// A parsed selection and what it selects without facts: final unless it uses `status:` or
/// `freshness:`, which are judged against the store.
struct Chosen {
    selection: Selection,
    keys: BTreeSet<AssetKey>,
}

impl Chosen {
    /// The selected keys, judged against `lineage` and `statuses` if the selection needs facts.
    fn keys_given(
        &self,
        graph: &AssetGraph,
        lineage: &Lineage,
        statuses: &Statuses,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<BTreeSet<AssetKey>> {
        if !self.selection.needs_facts() {
            return Ok(self.keys.clone());
        }
        let facts = Facts::new(graph, lineage, statuses, now);
        Ok(self.selection.select(graph, &facts)?)
    }

    /// The selected keys, reading the store only if the selection needs facts.
    async fn keys(
        &self,
        graph: &AssetGraph,
        store: &Store,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<BTreeSet<AssetKey>> {
        if !self.selection.needs_facts() {
            return Ok(self.keys.clone());
        }
        let lineage = store.load_lineage().await?;
        self.keys_given(graph, &lineage, &Statuses::compute(graph, &lineage), now)
    }
}

/// `freshet serve`: binds, prints where and the token (once), and serves until Ctrl-C.
async fn serve_command(
    project: Project,
    store: Store,
    executor: Executor,
    addr: std::net::SocketAddr,
    token: Option<String>,
) -> anyhow::Result<ExitCode> {
    let (token, generated) = match token.filter(|t| !t.trim().is_empty()) {
        Some(t) if t.trim().len() < 16 => {
            anyhow::bail!("FRESHET_TOKEN is too short: use at least 16 characters")
        }
        Some(t) if !serve::is_valid_token(t.trim()) => anyhow::bail!(
            "FRESHET_TOKEN has characters a bearer token cannot carry: use letters, digits and - . _ ~ + /"
        ),
        Some(t) => (t.trim().to_owned(), false),
        None => (serve::generate_token(), true),
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let loopback = serve::is_loopback(&bound);
    // Runs a killed server left queued never ran: say so rather than show them waiting forever.
    store
        .cancel_queued_runs(SystemClock.now(), "the server stopped before it ran")
        .await?;
    let state = serve::AppState::new(
        project,
        store.clone(),
        executor,
        std::sync::Arc::new(SystemClock),
        token.clone(),
        loopback,
    );
    eprintln!("freshet: serving http://{bound}/ (API under /api)");
    if generated {
        eprintln!(
            "freshet: token for actions (shown once; set FRESHET_TOKEN to choose one): {token}"
        );
    }
    if !loopback {
        eprintln!(
            "freshet: listening beyond this machine; the page asks for the token before any action"
        );
    }
    serve::serve(state, listener, shutdown_signal())
        .await
        .context("the server stopped")?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
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

/// Prints progress lines on stderr as a run goes.
struct Progress;

impl RunObserver for Progress {
    fn event(&self, event: &RunEvent<'_>) {
        match event {
            RunEvent::Observed {
                observation: o,
                changed,
            } => {
                let what = if *changed {
                    "new data version"
                } else {
                    "unchanged"
                };
                eprintln!(
                    "observed {}: {what} {} ({} file{}, {})",
                    o.asset,
                    output::short(o.data_version.as_str()),
                    o.file_count,
                    if o.file_count == 1 { "" } else { "s" },
                    output::bytes(o.byte_size)
                );
            }
            RunEvent::Planned { run_id, steps } => {
                eprintln!(
                    "run {run_id}: {} asset{} planned",
                    steps.len(),
                    if steps.len() == 1 { "" } else { "s" }
                );
            }
            RunEvent::StepStarted { key, index, total } => eprintln!("[{index}/{total}] {key} ..."),
            RunEvent::StepFinished {
                key,
                index,
                total,
                outcome,
            } => {
                let detail = match outcome {
                    StepOutcome::Materialized(m) => format!(
                        "materialized {} rows, {} in {}",
                        m.row_count,
                        output::bytes(m.byte_size),
                        output::millis(m.duration_us)
                    ),
                    StepOutcome::Skipped(reason) => format!("skipped: {reason}"),
                    StepOutcome::Failed { error, .. } => format!("FAILED: {error}"),
                };
                eprintln!("[{index}/{total}] {key} {detail}");
            }
            _ => {}
        }
    }
}
