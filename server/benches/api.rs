//! API and web view benchmark: a synthetic project of Rust assets with one materialization each in
//! a SQLite store. Prints figures; asserts nothing.
//!
//! ```sh
//! cargo bench -p freshet-server --bench api --profile perf -- 10000 --page 1000
//! ```
//!
//! Measures, per size: the asset list and the lineage through the router (the first request,
//! which computes every status, then the cached ones, which are what a browser refreshing sees),
//! filtered lists and one asset. With `--page N`, also serves an N-asset project on a loopback
//! port and measures the web view's load to first paint of the graph in headless Chromium
//! (`node tests/e2e/first_paint.mjs`; needs what `tests/run.sh` installs).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use chrono::Utc;
use freshet_core::freshness::SystemClock;
use freshet_core::model::{DataVersion, InputVersion, Materialization, MaterializationId, RunId};
use freshet_core::store::{NewRun, RunKind};
use freshet_core::{
    AssetKind, Catalogue, Catalogues, CodeVersion, Executor, Overrides, Project, RustAsset, Store,
};
use freshet_server::serve::{self, AppState};
use tower::ServiceExt as _;

/// `n` Rust assets in layers of up to 1,000 (at least 10 layers), each reading 1 to 3 assets of
/// the two layers above it, in 20 groups.
fn catalogue(n: usize) -> Catalogue {
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

/// Loads an `n`-asset project in `dir` and records one materialization per asset, one in ten of
/// them with an older code version (so stale).
async fn project(dir: &std::path::Path, n: usize) -> (Project, Store) {
    std::fs::write(
        dir.join("freshet.toml"),
        "[project]\nname = \"bench\"\ncatalogues = [\"bench\"]\n",
    )
    .unwrap();
    let project = Project::load(
        dir,
        &Catalogues::new().with(catalogue(n)),
        &Overrides::default(),
    )
    .unwrap();
    let store = Store::open(project.database_url()).await.unwrap();
    let run = RunId::generate();
    let now = Utc::now();
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
            code_version: if i % 10 == 3 {
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
        });
    }
    store.record_materializations(&batch).await.unwrap();
    (project, store)
}

fn state(project: Project, store: Store) -> AppState {
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

/// Time to the last byte of the body, and the body's size.
async fn get(router: &axum::Router, uri: &str) -> (Duration, usize) {
    let started = Instant::now();
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{uri}: {}",
        response.status()
    );
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (started.elapsed(), body.len())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn api(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (project, store) = project(dir.path(), n).await;
    println!(
        "{n} assets: project and store ready in {}",
        ms(started.elapsed())
    );
    let state = state(project, store);
    let router = serve::router(state.clone());
    // After a change (a run's step, another process): the first request reads the store,
    // judges every asset and renders; the ones after it are served from the cache.
    for uri in ["/api/assets", "/api/lineage"] {
        let mut times = Vec::new();
        for _ in 0..5 {
            state.refresh();
            times.push(get(&router, uri).await.0);
        }
        times.sort();
        println!(
            "  GET {uri:<36} after a change: median {:>9}  max {:>9}",
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        );
    }
    for uri in [
        "/api/assets",
        "/api/lineage",
        "/api/assets?selection=group:g3",
        "/api/assets?selection=status:stale",
        "/api/lineage?selection=group:g3",
        "/api/assets/l005%2Fa005000",
    ] {
        let (first, size) = get(&router, uri).await;
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..20 {
            times.push(get(&router, uri).await.0);
        }
        times.sort();
        println!(
            "  GET {uri:<36} {:>6} KB  first {:>9}  then median {:>9}  max {:>9}",
            size / 1024,
            ms(first),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        );
    }
}

async fn page(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (project, store) = project(dir.path(), n).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve::serve(state(project, store), listener, async {
        let _ = stopped.await;
    }));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("{n} assets: page load in headless Chromium ({url})");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("tests/e2e/first_paint.mjs")
            .arg(&url)
            .arg("5")
            .current_dir(&root)
            .output()
    })
    .await
    .unwrap();
    match out {
        Ok(out) => {
            print!("{}", String::from_utf8_lossy(&out.stdout));
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
        Err(e) => println!("  cannot run node ({e}); run tests/run.sh once to install it"),
    }
    let _ = stop.send(());
    let _ = server.await;
}

#[tokio::main]
async fn main() {
    let mut sizes = Vec::new();
    let mut pages = Vec::new();
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(arg) = args.next() {
        if arg == "--page" {
            pages.push(args.next().and_then(|n| n.parse().ok()).unwrap_or(1000));
        } else if let Ok(n) = arg.parse() {
            sizes.push(n);
        }
    }
    if sizes.is_empty() && pages.is_empty() {
        sizes.push(10_000);
        pages.push(1000);
    }
    for n in sizes {
        api(n).await;
    }
    for n in pages {
        page(n).await;
    }
}
