//! The `freshet` command line (and, later, the HTTP API and web view).
//!
//! **Boundary:** the only crate that knows about terminals, JSON output and (later) HTTP. Core types
//! never become the wire format: [`output`] owns the JSON shapes and converts from core types.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use freshet_core::executor::{RunEvent, RunObserver, StepOutcome};
use freshet_core::planner::PlanError;
use freshet_core::{AssetKey, AssetKind, Catalogues, Executor, Overrides, Project, Store};

mod init;
pub mod output;

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
    /// Materialize the named assets, or, with none named, everything missing or stale.
    Materialize {
        /// Asset keys to materialize exactly (their inputs must already have data or be named too).
        keys: Vec<String>,
    },
    /// Show each asset's status (fresh, stale, missing) and why.
    Status {
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
    /// Observe sources (all, or those named) and record new data versions.
    Observe {
        /// Source keys; all sources when none.
        keys: Vec<String>,
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

    // Asset names are checked before the store is opened, so a typo writes nothing.
    let keys = match &cli.command {
        Command::Materialize { keys } | Command::Observe { keys } => project.resolve_keys(keys)?,
        Command::Preview { key, .. } => project.resolve_keys(&[key])?,
        _ => Vec::new(),
    };
    let is_source = |k: &&AssetKey| {
        project
            .graph()
            .get(k)
            .is_some_and(|d| d.kind == AssetKind::Source)
    };
    match &cli.command {
        Command::Materialize { .. } => {
            if let Some(key) = keys.iter().find(is_source) {
                return Err(PlanError::Source(key.clone()).into());
            }
        }
        Command::Observe { .. } => {
            if let Some(key) = keys.iter().find(|k| !is_source(k)) {
                return Err(PlanError::NotSource(key.clone()).into());
            }
        }
        _ => {}
    }
    let store = Store::open(project.database_url()).await?;
    let executor = Executor::new(project.clone(), store.clone())?;
    let code = match &cli.command {
        Command::Materialize { .. } => {
            let report = executor
                .materialize_until(&keys, &Progress, shutdown_signal())
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
                eprintln!("nothing to materialize: every asset is fresh");
            } else {
                eprintln!("{}", output::run_summary(&report));
            }
            output::print_status(&project, &store.load_lineage().await?, false)?;
            if report.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Status { json } => {
            output::print_status(&project, &store.load_lineage().await?, *json)?;
            ExitCode::SUCCESS
        }
        Command::Preview { limit, .. } => {
            let batches = executor.preview(&keys[0], *limit).await?;
            let table = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .context("cannot format the rows")?;
            println!("{table}");
            ExitCode::SUCCESS
        }
        Command::Observe { .. } => {
            executor.observe(&keys, &Progress).await?;
            ExitCode::SUCCESS
        }
        Command::Init { .. } | Command::Assets { .. } | Command::Lineage { .. } => {
            ExitCode::SUCCESS
        }
    };
    store.close().await;
    Ok(code)
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
