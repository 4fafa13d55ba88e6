//! `freshet daemon` (automation without the web server) and `freshet automation [SELECTION]
//! [--json]` (what automation decided lately, and why).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use freshet_core::Project;
use freshet_core::freshness::{Clock as _, SystemClock};

use super::{Chosen, open, open_store, shutdown_signal};
use crate::output::{print_json, print_table};
use crate::serve;

/// How long running runs get to end once the daemon is told to stop; then they are cancelled.
const GRACE: Duration = Duration::from_secs(30);

/// Runs automation until Ctrl-C or SIGTERM, then lets running runs end (cancelling what has not
/// ended within [`GRACE`]).
pub(super) async fn daemon(project: &Project, reload: super::Reload) -> anyhow::Result<ExitCode> {
    let (store, executor) = open(project).await?;
    let state = serve::AppState::new(
        project.clone(),
        store.clone(),
        executor,
        Arc::new(SystemClock),
        serve::generate_token(),
        true,
    );
    state.reload_on_change(reload.0, reload.1);
    let watcher = state.spawn_watcher();
    let automation = state.spawn_automation();
    let conditions = project
        .graph()
        .iter()
        .filter(|d| d.automation.is_some())
        .count();
    crate::notice(&format!(
        "daemon running: {conditions} asset(s) with a condition, {} schedule(s), {} source(s) watched; Ctrl-C to stop",
        project.triggers().schedules.len(),
        project
            .graph()
            .iter()
            .filter(|d| d.kind == freshet_core::AssetKind::Source)
            .count()
    ));
    let mut automation = automation;
    let ended_early = tokio::select! {
        () = shutdown_signal() => false,
        _ = &mut automation => true,
    };
    if ended_early {
        // Not asked to stop: automation ended by itself (a bug). Say so and stop with an error.
        crate::notice("automation stopped unexpectedly (see the log); stopping");
    } else {
        crate::notice(&format!(
            "stopping: no new runs; running ones get {}s to end",
            GRACE.as_secs()
        ));
    }
    state.stop();
    if !ended_early {
        let _ = automation.await;
    }
    state.finish_runs(GRACE).await;
    watcher.abort();
    store.close().await;
    Ok(if ended_early {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints each asset's latest decision, the latest evaluation and the schedules.
pub(super) async fn automation(
    project: &Project,
    selection: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let chosen = Chosen::parse(project.graph(), selection)?;
    let store = open_store(project).await?;
    let now = SystemClock.now();
    let only = match &chosen {
        Some(c) => Some(c.keys(project, &store, now).await?),
        None => None,
    };
    let report = crate::automation::report(project, &store, only.as_ref(), now).await?;
    if json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    match &report.evaluation {
        Some(e) => outln!(
            "last evaluation: {} ({:.1} ms, {} requested of {}){}",
            e.evaluated_at,
            e.duration_ms,
            e.requested,
            e.assets,
            e.next_at
                .as_ref()
                .map(|t| format!("; next by {t}"))
                .unwrap_or_default()
        ),
        None => outln!("no evaluation yet: start `freshet daemon` or `freshet serve`"),
    }
    if report.assets.is_empty() {
        outln!("no asset has an automation condition");
    } else {
        let mut rows = vec![
            ["ASSET", "CONDITION", "DECIDED", "DECISION"]
                .map(str::to_owned)
                .to_vec(),
        ];
        for a in &report.assets {
            rows.push(vec![
                a.asset.clone(),
                a.condition.clone(),
                a.decided_at.clone().unwrap_or_else(|| "-".to_owned()),
                a.reason
                    .clone()
                    .unwrap_or_else(|| "not evaluated yet".to_owned()),
            ]);
        }
        print_table(&rows)?;
    }
    if !report.schedules.is_empty() {
        let mut rows = vec![
            [
                "SCHEDULE",
                "CRON",
                "TIME ZONE",
                "LAST TICK",
                "NEXT TICK",
                "SELECTION",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        for s in &report.schedules {
            rows.push(vec![
                s.name.clone(),
                s.cron.clone(),
                s.timezone.clone(),
                s.last_tick.clone().unwrap_or_else(|| "-".to_owned()),
                s.next_tick.clone().unwrap_or_else(|| "-".to_owned()),
                s.selection.clone().unwrap_or_else(|| "(all)".to_owned()),
            ]);
        }
        print_table(&rows)?;
    }
    Ok(ExitCode::SUCCESS)
}
