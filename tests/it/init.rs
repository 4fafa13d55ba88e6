//! `freshet init` and SQL-only projects.

use crate::support::{TempProject, freshet};

#[test]
fn init_makes_a_project_that_materializes_and_picks_up_new_sql_files() {
    let root = TempProject::empty();
    let dir = root.path().join("shop");
    let out = freshet(&["init", dir.to_str().expect("utf-8")]);
    assert!(out.success, "{}", out.stderr);
    let run = |args: &[&str]| {
        let mut full = vec!["--project", dir.to_str().expect("utf-8")];
        full.extend_from_slice(args);
        freshet(&full)
    };

    // A SQL-only project lists only its own assets, not the demo's Rust assets.
    let assets = run(&["assets"]).stdout;
    let keys: Vec<&str> = assets
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(keys, ["raw_sales", "daily_sales", "sales_by_store"]);

    let out = run(&["materialize"]);
    assert!(out.success, "{}", out.stderr);
    assert!(out.stderr.contains(": materialized 2\n"), "{}", out.stderr);
    let preview = run(&["preview", "sales_by_store"]).stdout;
    assert!(preview.contains("| north | 10    | 27.0    |"), "{preview}");

    // A new .sql file is a new asset, with no rebuild.
    std::fs::write(
        dir.join("sql/best_store.sql"),
        "SELECT store, revenue FROM sales_by_store ORDER BY revenue DESC LIMIT 1",
    )
    .expect("write");
    let assets = run(&["assets"]).stdout;
    assert!(
        assets.contains("best_store") && assets.contains("sales_by_store"),
        "{assets}"
    );
    let out = run(&["materialize"]);
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stderr.contains("best_store materialized 1 rows"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(": materialized 1\n"),
        "only the new asset runs:\n{}",
        out.stderr
    );

    // init refuses to overwrite.
    let out = freshet(&["init", dir.to_str().expect("utf-8")]);
    assert!(!out.success);
    assert!(
        out.stderr.contains("freshet.toml already exists"),
        "{}",
        out.stderr
    );
}
