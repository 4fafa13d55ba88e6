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

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use common::{project, state};
use freshet_server::serve;
use tower::ServiceExt as _;

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
    let (project, store) = project(dir.path(), n, 10, false).await;
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
    let (project, store) = project(dir.path(), n, 10, false).await;
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
