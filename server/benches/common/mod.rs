//! What the server's benchmarks share: a synthetic project of Rust assets in a SQLite store.

#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;

use chrono::Utc;
use freshet_core::freshness::SystemClock;
use freshet_core::model::{
    DataVersion, FreshnessPolicy, InputVersion, Materialization, MaterializationId, RunId,
};
use freshet_core::store::{NewRun, RunKind};
use freshet_core::{
    AssetKind, AutomationCondition, Catalogue, Catalogues, CodeVersion, Executor, Overrides,
    Project, RustAsset, Store,
};
use freshet_server::serve::AppState;

/// `n` Rust assets in layers of up to 1,000 (at least 10 layers), each reading 1 to 3 assets of
/// the two layers above it, in 20 groups.
fn catalogue(n: usize, automation: bool) -> Catalogue {
    let width = 1000.min(n.div_ceil(10)).max(1);
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let key = |i: usize| format!("l{:03}/a{i:06}", i / width);
    let mut assets = Vec::with_capacity(n);
    for i in 0..n {
        let layer = i / width;
        let mut asset = RustAsset::new(&key(i))
            .code_version(&format!("v{}", next() % 1000))
            .group(&format!("g{}", i % 20))
            .compute(|_| async {
                Err::<freshet_core::AssetOutput, _>("not run in the benchmark".into())
            });
        if automation {
            // Mostly eager; one in ten on a cron, one in ten kept fresh by its policy.
            let condition = match i % 10 {
                1 => r#"on_cron "0 6 * * *" Europe/Paris"#,
                2 => "freshness",
                _ => "eager",
            };
            asset = asset
                .automation(AutomationCondition::parse(condition).unwrap())
                .freshness(FreshnessPolicy::parse_compact("max_age=1d").unwrap());
        }
        if layer > 0 {
            let lo = layer.saturating_sub(2) * width;
            let hi = layer * width;
            let count = 1 + next() % 3;
            let deps: Vec<String> = (0..count)
                .map(|_| key(lo + (next() as usize) % (hi - lo)))
                .collect();
            asset = asset.deps(deps);
        }
        assets.push(asset);
    }
    Catalogue::new("bench").assets(assets)
}

/// Loads an `n`-asset project in `dir` (with automation conditions when `automation`) and
/// records one materialization per asset, one in `stale_every` of them with an older code
/// version (so stale).
pub(crate) async fn project(
    dir: &std::path::Path,
    n: usize,
    stale_every: usize,
    automation: bool,
) -> (Project, Store) {
    std::fs::write(
        dir.join("freshet.toml"),
        "[project]\nname = \"bench\"\ncatalogues = [\"bench\"]\n",
    )
    .unwrap();
    let project = Project::load(
        dir,
        &Catalogues::new().with(catalogue(n, automation)),
        &Overrides::default(),
    )
    .unwrap();
    let store = Store::open(project.database_url()).await.unwrap();
    let run = RunId::generate();
    // History recorded an hour ago.
    let now = Utc::now() - chrono::TimeDelta::hours(1);
    store
        .begin_run(
            &run,
            &NewRun {
                kind: RunKind::Materialize,
                selection: "",
                stale_only: false,
                triggered_by: "cli",
            },
            now,
        )
        .await
        .unwrap();
    let mut batch = Vec::new();
    for (i, def) in project.graph().iter().enumerate() {
        assert_ne!(def.kind, AssetKind::Source);
        batch.push(Materialization {
            id: MaterializationId::generate(),
            asset: def.key.clone(),
            run_id: run.clone(),
            code_version: if i % stale_every == 3 {
                CodeVersion::new("old")
            } else {
                def.code_version.clone().unwrap()
            },
            data_version: DataVersion::new(format!("d-{}", def.key)),
            inputs: def
                .deps
                .iter()
                .map(|d| InputVersion {
                    asset: d.clone(),
                    data_version: DataVersion::new(format!("d-{d}")),
                })
                .collect(),
            location: format!("file:///data/{}/{run}.parquet", def.key),
            row_count: 1000,
            byte_size: 64 << 10,
            duration_us: 50_000,
            created_at: now,
            data_time: Some(now),
            details: Default::default(),
            collected_at: None,
        });
    }
    store.record_materializations(&batch).await.unwrap();
    (project, store)
}

pub(crate) fn state(project: Project, store: Store) -> AppState {
    let executor = Executor::new(project.clone(), store.clone()).unwrap();
    AppState::new(
        project,
        store,
        executor,
        Arc::new(SystemClock),
        "bench-token-0123456789".to_owned(),
        true,
    )
}
