//! `freshet runs [RUN_ID] [--json]` and `freshet cancel RUN_ID`.

use std::process::ExitCode;
use std::time::Duration;

use freshet_core::freshness::{Clock as _, SystemClock};
use freshet_core::store::{RunQuery, RunRecord, Store};
use freshet_core::{Project, RunId};

use super::open_store;
use crate::json::{LogJson, RunDetailJson, RunJson, StepJson, attempts_json};
use crate::output::{print_json, print_table};
use crate::words;

/// How long `cancel` waits for the run to say it stopped.
const CANCEL_PATIENCE: Duration = Duration::from_secs(10);

/// Lists recent runs, or shows one with its steps, attempts and log.
pub(super) async fn runs(
    project: &Project,
    run_id: Option<&str>,
    limit: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let id = run_id.map(parse_run_id).transpose()?;
    let store = open_store(project).await?;
    let result = match id {
        None => list(&store, limit, json).await,
        Some(id) => show(&store, &id, json).await,
    };
    store.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn list(store: &Store, limit: u32, json: bool) -> anyhow::Result<()> {
    let page = store
        .runs(&RunQuery {
            limit: limit.clamp(1, 1000),
            ..RunQuery::default()
        })
        .await?;
    if json {
        let runs: Vec<RunJson<'_>> = page.items.iter().map(RunJson::from).collect();
        return print_json(&runs);
    }
    if page.items.is_empty() {
        eprintln!("no runs yet");
        return Ok(());
    }
    let mut rows = vec![
        [
            "RUN", "STATUS", "KIND", "BY", "STARTED", "TOOK", "STEPS", "ERROR",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for r in &page.items {
        rows.push(vec![
            r.id.to_string(),
            r.status.as_str().to_owned(),
            r.kind.as_str().to_owned(),
            r.triggered_by.clone(),
            words::time(r.started_at),
            took(r),
            format!(
                "{} done, {} skipped, {} failed of {}",
                r.steps.materialized, r.steps.skipped, r.steps.failed, r.steps.total
            ),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    print_table(&rows)
}

async fn show(store: &Store, id: &RunId, json: bool) -> anyhow::Result<()> {
    let Some(run) = store.run(id).await? else {
        anyhow::bail!("unknown run {:?}", id.as_str());
    };
    let steps = store.run_steps(id).await?;
    let attempts = store.attempts(id).await?;
    let logs = store.run_logs(id, 0).await?;
    if json {
        return print_json(&RunDetailJson {
            attempts: attempts_json(&steps, &attempts),
            logs: logs.iter().map(|l| LogJson::new(None, l)).collect(),
            run: RunJson::from(&run),
            steps: steps.iter().map(StepJson::from).collect(),
        });
    }
    outln!(
        "run {}: {} {} (by {}, started {}, took {})",
        run.id,
        run.kind.as_str(),
        run.status.as_str(),
        run.triggered_by,
        words::time(run.started_at),
        took(&run)
    );
    if let Some(error) = &run.error {
        outln!("error: {error}");
    }
    let mut rows = vec![
        ["STEP", "STATE", "ATTEMPTS", "TOOK", "ROWS", "MESSAGE"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for (position, s) in steps.iter().enumerate() {
        let tries = attempts.iter().filter(|a| a.position == position).count();
        rows.push(vec![
            s.asset.clone(),
            s.state.as_str().to_owned(),
            tries.to_string(),
            s.started_at
                .zip(s.finished_at)
                .map(|(a, b)| words::ago(b - a))
                .unwrap_or_default(),
            s.row_count.map(|n| n.to_string()).unwrap_or_default(),
            s.message.clone().unwrap_or_default(),
        ]);
    }
    if !steps.is_empty() {
        outln!();
        print_table(&rows)?;
    }
    let failed: Vec<_> = attempts.iter().filter(|a| a.error.is_some()).collect();
    if !failed.is_empty() {
        outln!("\nfailed attempts:");
        for a in failed {
            let asset = steps.get(a.position).map_or("?", |s| s.asset.as_str());
            outln!(
                "  {asset} attempt {} at {}: {}",
                a.attempt,
                words::time(a.started_at),
                a.error.as_deref().unwrap_or_default()
            );
        }
    }
    if !logs.is_empty() {
        outln!("\nlog:");
        for l in &logs {
            outln!(
                "  {} {:5} {}",
                words::time(l.at),
                l.level.as_str(),
                l.message
            );
        }
    }
    Ok(())
}

/// Asks a run to cancel, whichever process runs it, and waits (a while) for it to stop.
pub(super) async fn cancel(project: &Project, run_id: &str) -> anyhow::Result<ExitCode> {
    let id = parse_run_id(run_id)?;
    let store = open_store(project).await?;
    let result = cancel_in(&store, &id).await;
    store.close().await;
    result
}

async fn cancel_in(store: &Store, id: &RunId) -> anyhow::Result<ExitCode> {
    let Some(run) = store.run(id).await? else {
        anyhow::bail!("unknown run {:?}", id.as_str());
    };
    if run.status.is_finished() {
        anyhow::bail!("run {id} has already {}", run.status.as_str());
    }
    if !store.request_cancel(id, SystemClock.now()).await? {
        // It ended between the two reads.
        let run = store.run(id).await?;
        anyhow::bail!(
            "run {id} has already {}",
            run.as_ref().map_or("ended", |r| r.status.as_str())
        );
    }
    eprintln!("freshet: asked run {id} to cancel");
    let deadline = tokio::time::Instant::now() + CANCEL_PATIENCE;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(run) = store.run(id).await?
            && run.status.is_finished()
        {
            outln!("run {id} {}", run.status.as_str());
            return Ok(ExitCode::SUCCESS);
        }
    }
    eprintln!(
        "freshet: run {id} has not stopped yet; its process stops it at its next step boundary or \
         heartbeat, or it is marked failed once that process is found dead"
    );
    Ok(ExitCode::FAILURE)
}

fn took(run: &RunRecord) -> String {
    run.finished_at
        .map(|f| words::ago(f - run.started_at))
        .unwrap_or_else(|| "-".to_owned())
}

/// A run id as typed: UUID-like text.
fn parse_run_id(text: &str) -> anyhow::Result<RunId> {
    let text = text.trim();
    if text.is_empty()
        || text.len() > 64
        || !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        anyhow::bail!("invalid run id {text:?}");
    }
    Ok(RunId::new(text))
}
