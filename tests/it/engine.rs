//! The run engine, in process with Rust assets whose timing and failures a test controls:
//! concurrency and pools, retries, time limits, panics and waiting for another run's lease,
//! judged from what the store recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use freshet_core::store::{NewRun, RunKind, StepRecord, StepState};
use freshet_core::{
    AssetContext, AssetKey, BoxError, Catalogue, Catalogues, Executor, PlanRequest, Project,
    Retryable, RunId, RunReport, RustAsset, StepOutcome, Store,
};

use crate::support::TempProject;

/// A Rust asset that waits `ms` and then produces one row.
fn sleeper(key: &str, ms: u64) -> RustAsset {
    RustAsset::new(key)
        .code_version("1")
        .compute(move |ctx: AssetContext| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ctx.sql("SELECT 1 AS n").await
        })
}

/// Loads `toml` with `assets`, materializes everything and returns the report with the steps
/// the store recorded.
async fn run(
    toml: &str,
    assets: Vec<RustAsset>,
) -> (TempProject, RunReport, Vec<StepRecord>, Store) {
    let project = TempProject::with_files(&[(
        "freshet.toml",
        &format!("[project]\nname = \"t\"\ncatalogues = [\"test\"]\n{toml}"),
    )]);
    let catalogues = Catalogues::new().with(Catalogue::new("test").assets(assets));
    let loaded =
        Project::load(project.path(), &catalogues, &project.overrides()).expect("project loads");
    let store = Store::open(loaded.database_url()).await.expect("store");
    let executor = Executor::new(loaded, store.clone()).expect("executor");
    let report = executor
        .materialize(&PlanRequest::stale(), &())
        .await
        .expect("run");
    let run_id = report.run_id.clone().expect("a run");
    let steps = store.run_steps(&run_id).await.expect("steps");
    (project, report, steps, store)
}

/// The most steps (among those `keep` accepts) that were computing at one moment, from their
/// recorded start and end times.
fn most_at_once(steps: &[StepRecord], keep: impl Fn(&StepRecord) -> bool) -> usize {
    let spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = steps
        .iter()
        .filter(|s| keep(s))
        .filter_map(|s| s.started_at.zip(s.finished_at))
        .collect();
    spans
        .iter()
        .map(|(t, _)| spans.iter().filter(|(a, b)| a <= t && t < b).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn independent_steps_overlap_up_to_the_concurrency_limit() {
    let assets = (0..6).map(|i| sleeper(&format!("s{i}"), 400)).collect();
    let (_project, report, steps, _) = run("[execution]\nconcurrency = 3\n", assets).await;
    assert_eq!(report.materialized(), 6, "{:?}", report.steps);
    let most = most_at_once(&steps, |_| true);
    assert!(most >= 2, "independent steps never overlapped: {steps:#?}");
    assert!(
        most <= 3,
        "{most} steps ran at once with a limit of 3: {steps:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_limits_its_assets_but_not_the_others() {
    let mut assets: Vec<RustAsset> = (0..3)
        .map(|i| sleeper(&format!("db{i}"), 300).pool("warehouse"))
        .collect();
    assets.extend((0..3).map(|i| sleeper(&format!("free{i}"), 300)));
    let (_project, report, steps, _) = run(
        "[execution]\nconcurrency = 4\n[pools]\nwarehouse = 1\n",
        assets,
    )
    .await;
    assert_eq!(report.materialized(), 6, "{:?}", report.steps);
    assert_eq!(
        most_at_once(&steps, |s| s.asset.starts_with("db")),
        1,
        "the pool's limit of 1 was exceeded: {steps:#?}"
    );
    assert!(
        most_at_once(&steps, |_| true) >= 2,
        "nothing ran beside the pool: {steps:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_after_its_inputs_starts_as_soon_as_they_are_done() {
    // slow and fast are independent; after_fast reads only fast, so it must not wait for slow.
    let assets = vec![
        sleeper("slow", 1500),
        sleeper("fast", 100),
        RustAsset::new("after_fast")
            .deps(["fast"])
            .code_version("1")
            .compute(|ctx: AssetContext| async move { ctx.sql("SELECT n FROM fast").await }),
    ];
    let (_project, report, steps, _) = run("[execution]\nconcurrency = 4\n", assets).await;
    assert_eq!(report.materialized(), 3, "{:?}", report.steps);
    let by = |key: &str| steps.iter().find(|s| s.asset == key).expect(key);
    let (slow, after) = (by("slow"), by("after_fast"));
    assert!(
        after.finished_at < slow.finished_at,
        "after_fast waited for slow: {steps:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retryable_failures_are_retried_with_growing_delays_and_recorded() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let flaky = RustAsset::new("flaky")
        .code_version("1")
        .retries(3)
        .retry_delay(Duration::from_secs(1))
        .compute(move |ctx: AssetContext| {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                if n <= 2 {
                    return Err(BoxError::from(Retryable::new(format!("busy, call {n}"))));
                }
                ctx.sql("SELECT 1 AS n").await
            }
        });
    let broken = RustAsset::new("broken")
        .code_version("1")
        .retries(3)
        .compute(|_ctx: AssetContext| async move {
            Err::<datafusion::dataframe::DataFrame, BoxError>("a bug".into())
        });
    let (_project, report, steps, store) = run("", vec![flaky, broken]).await;
    let outcome = |key: &str| {
        report
            .steps
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, o)| o.clone())
            .expect(key)
    };
    assert!(
        matches!(outcome("flaky"), StepOutcome::Materialized(_)),
        "{:?}",
        report.steps
    );
    assert!(
        matches!(
            outcome("broken"),
            StepOutcome::Failed {
                retryable: false,
                ..
            }
        ),
        "{:?}",
        report.steps
    );
    let run_id = report.run_id.clone().expect("run");
    let attempts = store.attempts(&run_id).await.expect("attempts");
    let position = |key: &str| steps.iter().position(|s| s.asset == key).expect(key);
    let of = |key: &str| {
        attempts
            .iter()
            .filter(|a| a.position == position(key))
            .collect::<Vec<_>>()
    };
    let flaky = of("flaky");
    assert_eq!(flaky.len(), 3, "{attempts:#?}");
    assert!(
        flaky[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("busy, call 1"))
    );
    assert!(
        flaky[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("busy, call 2"))
    );
    assert_eq!(flaky[2].error, None);
    let gap = |a: usize, b: usize| flaky[b].started_at - flaky[a].started_at;
    assert!(
        gap(0, 1) >= chrono::Duration::milliseconds(500),
        "{flaky:#?}"
    );
    assert!(gap(1, 2) >= gap(0, 1), "delays did not grow: {flaky:#?}");
    assert_eq!(of("broken").len(), 1, "a non-retryable error was retried");
    // The log says so too.
    let log = store.run_logs(&run_id, 0).await.expect("log");
    assert!(
        log.iter()
            .any(|l| l.message.contains("attempt 1 of 4 at flaky failed")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timeout_stops_the_step_and_is_recorded() {
    let stuck = sleeper("stuck", 60_000).timeout(Duration::from_secs(1));
    let (_project, report, steps, _) = run("", vec![stuck, sleeper("other", 10)]).await;
    let stuck = steps.iter().find(|s| s.asset == "stuck").expect("stuck");
    assert_eq!(stuck.state, StepState::Failed);
    assert_eq!(
        stuck.message.as_deref(),
        Some("stuck: timed out after 1s"),
        "{steps:#?}"
    );
    assert!(report.failed());
    assert_eq!(report.materialized(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_asset_fails_its_own_step_only() {
    let assets = vec![
        RustAsset::new("boom")
            .code_version("1")
            .compute(|_ctx: AssetContext| async move {
                if std::hint::black_box(true) {
                    panic!("kaboom");
                }
                Err::<datafusion::dataframe::DataFrame, BoxError>("unreachable".into())
            }),
        RustAsset::new("after_boom")
            .deps(["boom"])
            .code_version("1")
            .compute(|ctx: AssetContext| async move { ctx.sql("SELECT n FROM boom").await }),
        sleeper("fine", 10),
    ];
    let (_project, report, steps, _) = run("", assets).await;
    let state = |key: &str| {
        let s = steps.iter().find(|s| s.asset == key).expect(key);
        (s.state, s.message.clone().unwrap_or_default())
    };
    assert_eq!(
        state("boom"),
        (StepState::Failed, "boom: panicked: kaboom".to_owned())
    );
    assert_eq!(
        state("after_boom"),
        (StepState::Skipped, "upstream boom failed".to_owned())
    );
    assert_eq!(state("fine").0, StepState::Materialized);
    assert!(report.failed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_waits_while_another_live_run_holds_its_asset() {
    let project = TempProject::with_files(&[(
        "freshet.toml",
        "[project]\nname = \"t\"\ncatalogues = [\"test\"]\n",
    )]);
    let catalogues = Catalogues::new()
        .with(Catalogue::new("test").assets(vec![sleeper("held", 10), sleeper("free", 10)]));
    let loaded =
        Project::load(project.path(), &catalogues, &project.overrides()).expect("project loads");
    let store = Store::open(loaded.database_url()).await.expect("store");
    // Another run, alive (this process, a fresh heartbeat), holds `held`.
    let other = RunId::generate();
    store
        .begin_run(
            &other,
            &NewRun {
                kind: RunKind::Materialize,
                selection: "held",
                stale_only: false,
                triggered_by: "cli",
            },
            Utc::now(),
        )
        .await
        .expect("other run");
    let held = AssetKey::parse("held").expect("key");
    let taken = store
        .claim_asset(&held, &other, Utc::now())
        .await
        .expect("claim");
    assert_eq!(taken, None);

    let executor = Executor::new(loaded, store.clone()).expect("executor");
    let run = tokio::spawn(async move {
        executor
            .materialize(&PlanRequest::stale(), &())
            .await
            .expect("run")
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let released_at = Utc::now();
    store.release_asset(&held, &other).await.expect("release");
    let report = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run ends once the lease is let go")
        .expect("run task");

    let run_id = report.run_id.clone().expect("a run");
    let steps = store.run_steps(&run_id).await.expect("steps");
    let step = |key: &str| steps.iter().find(|s| s.asset == key).expect(key);
    // `free` did not wait; `held` started only after the other run let go, and computed (the
    // other run made nothing fresh).
    assert_eq!(step("free").state, StepState::Materialized);
    assert!(step("free").finished_at.expect("ended") < released_at);
    assert_eq!(step("held").state, StepState::Materialized);
    assert!(step("held").started_at.expect("started") >= released_at);
    let logs = store.run_logs(&run_id, 0).await.expect("logs");
    assert!(
        logs.iter()
            .any(|l| l.message == format!("waiting for run {other}, which is materializing held")),
        "{logs:#?}"
    );
}
