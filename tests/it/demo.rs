//! The demo project end to end: the README's main command, read back by an independent reader.

use std::process::Command;

use crate::support::TempProject;

/// The Python with pyarrow and moto that the test command installs (`tests/run.sh`), or `python3`.
pub(crate) fn python() -> String {
    std::env::var("FRESHET_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

#[test]
fn materializes_every_demo_asset_then_nothing() {
    let project = TempProject::demo();
    let first = project.ok(&["materialize"]);
    assert!(
        first.stderr.contains(": materialized 7\n"),
        "{}",
        first.stderr
    );
    let status = project.status();
    assert_eq!(status.len(), 10, "3 sources, 6 SQL assets and 1 Rust asset");
    for (key, asset) in &status {
        assert_eq!(asset["status"], "fresh", "{key}: {asset}");
        assert!(
            asset["data_version"].is_string(),
            "{key} has a data version"
        );
        if asset["kind"] != "source" {
            let at = asset["last_materialized_at"]
                .as_str()
                .expect("materialized at");
            assert!(chrono_like(at), "{key}: {at} is RFC 3339");
        }
    }
    assert_eq!(status["web_sessions"]["kind"], "rust");
    assert_eq!(status["daily_revenue"]["kind"], "sql");
    let files = project.output_files();
    assert_eq!(
        files.len(),
        7,
        "one Parquet object per materialized asset: {files:?}"
    );

    // Running again materializes nothing and says so; nothing new is written.
    let second = project.ok(&["materialize"]);
    assert!(
        second.stderr.contains("nothing to materialize"),
        "{}",
        second.stderr
    );
    assert_eq!(project.output_files(), files);
    // Only the data times move: the sources were checked again and found unchanged.
    let without_data_time = |mut all: std::collections::BTreeMap<String, serde_json::Value>| {
        for v in all.values_mut() {
            v.as_object_mut().map(|o| o.remove("data_time"));
        }
        all
    };
    let again = project.status();
    for (key, v) in &again {
        assert!(
            v["data_time"].as_str() >= status[key]["data_time"].as_str(),
            "{key}"
        );
    }
    assert_eq!(without_data_time(again), without_data_time(status.clone()));

    // The Parquet files read back in pyarrow, with the aggregates the raw files imply.
    let status_file = project.path().join("status.json");
    std::fs::write(&status_file, project.ok(&["status", "--json"]).stdout).expect("write status");
    let checker = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/it/check_demo.py");
    let out = Command::new(python())
        .arg(checker)
        .arg(project.path())
        .arg(&status_file)
        .output()
        .expect("run the Python checker (set FRESHET_TEST_PYTHON or run tests/run.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'pyarrow'"),
        "pyarrow is missing: run the test suite with tests/run.sh, which installs it"
    );
    assert!(
        out.status.success(),
        "independent check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.starts_with("ok: 2492 orders"), "{stdout}");
}

#[test]
fn preview_lineage_and_assets_show_the_demo() {
    let project = TempProject::demo();
    let out = project.run(&["preview", "daily_revenue"]);
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("daily_revenue: has never been materialized"),
        "{}",
        out.stderr
    );
    project.ok(&["materialize"]);
    let out = project.ok(&["preview", "stg_customers", "--limit", "3"]);
    let rows = out.stdout.lines().filter(|l| l.starts_with("| ")).count();
    assert_eq!(rows, 4, "a header and 3 rows:\n{}", out.stdout);
    assert!(out.stdout.contains("email"));

    let lineage = project.ok(&["lineage", "--json"]);
    let lineage: serde_json::Value = serde_json::from_str(&lineage.stdout).expect("JSON");
    let edges = lineage["edges"].as_array().expect("edges");
    assert!(
        edges
            .iter()
            .any(|e| e["from"] == "web_sessions" && e["to"] == "daily_sessions")
    );
    assert_eq!(edges.len(), 8);
    let dot = project.ok(&["lineage", "--dot"]).stdout;
    assert!(
        dot.starts_with("digraph freshet {")
            && dot.contains("\"orders_enriched\" -> \"daily_revenue\";"),
        "{dot}"
    );

    let assets = project.ok(&["assets"]).stdout;
    assert!(
        assets.contains("web_sessions") && assets.contains("rust"),
        "{assets}"
    );
}

/// `2026-11-22T08:04:13Z`-shaped.
fn chrono_like(s: &str) -> bool {
    s.len() == 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}
