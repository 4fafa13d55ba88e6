//! Sources: CSV, JSON lines and Parquet; single files, globs and URLs.

use crate::support::TempProject;

#[test]
fn glob_sources_read_every_match_and_see_new_files() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n\n[sources.raw_parts]\npath = \"data/part_*.csv\"\n",
        ),
        ("data/part_1.csv", "id,amount\n1,10\n2,20\n"),
        ("data/part_2.csv", "id,amount\n3,30\n"),
        ("data/other.csv", "id,amount\n99,990\n"),
        (
            "sql/total.sql",
            "SELECT count(*) AS n, sum(amount) AS amount FROM raw_parts",
        ),
    ]);
    let out = project.ok(&["materialize"]);
    assert!(
        out.stderr.contains("observed raw_parts: new data version"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("(2 files,"), "{}", out.stderr);
    let preview = project.ok(&["preview", "total"]).stdout;
    assert!(preview.contains("| 3 | 60     |"), "{preview}");

    project.write("data/part_3.csv", "id,amount\n4,40\n");
    project.ok(&["observe"]);
    assert_eq!(project.status()["total"]["status"], "stale");
    project.ok(&["materialize"]);
    let preview = project.ok(&["preview", "total"]).stdout;
    assert!(preview.contains("| 4 | 100    |"), "{preview}");
}

#[test]
fn parquet_and_json_sources_by_url() {
    // A first project's output is a second project's Parquet source, named by file:// URL.
    let first = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"a\"\n\n[sources.raw]\npath = \"events.jsonl\"\n",
        ),
        (
            "events.jsonl",
            "{\"user\":\"a\",\"n\":1}\n{\"user\":\"b\",\"n\":2}\n{\"user\":\"a\",\"n\":3}\n",
        ),
        (
            "sql/per_user.sql",
            "SELECT \"user\", sum(n) AS n FROM raw GROUP BY \"user\"",
        ),
    ]);
    first.ok(&["materialize"]);
    let location = first.status()["per_user"]["location"]
        .as_str()
        .expect("location")
        .to_owned();
    // A version is a folder of Parquet files.
    assert!(
        location.starts_with("file:///") && location.ends_with('/'),
        "{location}"
    );

    let second = TempProject::with_files(&[
        (
            "freshet.toml",
            &format!(
                "[project]\nname = \"b\"\n\n[sources.per_user]\npath = \"{location}\"\nformat = \"parquet\"\n"
            ),
        ),
        (
            "sql/top.sql",
            "SELECT \"user\" FROM per_user ORDER BY n DESC LIMIT 1",
        ),
    ]);
    second.ok(&["materialize"]);
    let preview = second.ok(&["preview", "top"]).stdout;
    assert!(preview.contains("| a    |"), "{preview}");
}

#[test]
fn storage_and_database_can_be_set_by_flag() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n\n[sources.raw]\npath = \"raw.csv\"\n",
        ),
        ("raw.csv", "id\n1\n2\n"),
        ("sql/ids.sql", "SELECT id FROM raw"),
    ]);
    let out_dir = project.path().join("elsewhere/out");
    // A storage URL without a trailing slash is still the folder to write under.
    let storage = format!("file://{}", out_dir.display());
    let database = project.path().join("meta/lineage.db");
    let flags = [
        "--storage",
        storage.as_str(),
        "--database",
        database.to_str().expect("utf-8"),
    ];
    let run = |args: &[&str]| project.ok(&[&flags[..], args].concat());
    run(&["materialize"]);
    assert!(
        !project.path().join(".freshet").exists(),
        "the defaults were not used"
    );
    assert!(database.exists());
    let status: Vec<serde_json::Value> =
        serde_json::from_str(&run(&["status", "--json"]).stdout).expect("JSON");
    let location = status
        .iter()
        .find(|s| s["key"] == "ids")
        .and_then(|s| s["location"].as_str())
        .expect("location");
    assert!(
        location.starts_with(&format!("{storage}/ids/")),
        "{location}"
    );
    assert!(run(&["preview", "ids"]).stdout.contains("| 2  |"));
}

/// A source whose files were deleted is not shown fresh: `status` says `missing`, freshness
/// `unknown`, that its files are gone and when they were last seen; what was materialized from
/// it stays as it was; the files back, it is fresh again.
#[test]
fn a_source_whose_files_are_gone_is_reported_as_such() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n\n[sources.raw]\npath = \"raw.csv\"\nfreshness = { max_age = \"1d\" }\n",
        ),
        ("raw.csv", "id,amount\n1,2.5\n"),
        (
            "sql/doubled.sql",
            "SELECT id, amount * 2 AS doubled FROM raw",
        ),
    ]);
    project.ok(&["materialize"]);
    let before = project.status();
    assert_eq!(before["raw"]["status"], "fresh");
    assert_eq!(before["raw"]["freshness"]["state"], "pass");
    std::fs::remove_file(project.path().join("raw.csv")).expect("remove");

    let status = project.status();
    let raw = &status["raw"];
    assert_eq!(raw["status"], "missing", "{raw}");
    assert_eq!(raw["freshness"]["state"], "unknown", "{raw}");
    let file = project.path().join("raw.csv").display().to_string();
    assert_eq!(
        raw["files_gone"]["reason"],
        format!("no files match {file}")
    );
    let seen = raw["files_gone"]["last_seen"].as_str().expect("last_seen");
    let seen = seen.replace('T', " ").replace('Z', " UTC");
    let gone = format!("its files are gone: no files match {file} (last seen {seen})");
    assert_eq!(
        status["doubled"]["status"], "fresh",
        "its output is still there"
    );
    assert_eq!(status["doubled"]["files_gone"], serde_json::Value::Null);

    let table = project.ok(&["status"]).stdout;
    let row = table
        .lines()
        .find(|l| l.starts_with("raw "))
        .expect("raw listed");
    assert!(
        row.contains(" missing ") && row.contains(" unknown ") && row.contains(&gone),
        "{table}"
    );
    let explained = project.ok(&["status", "raw"]).stdout;
    assert!(explained.contains("status: missing\n"), "{explained}");
    assert!(explained.contains(&format!("  {gone}\n")), "{explained}");
    assert!(
        explained.contains("freshness: unknown (policy max_age=1d)"),
        "{explained}"
    );

    project.write("raw.csv", "id,amount\n1,2.5\n");
    let back = project.status();
    assert_eq!(back["raw"]["status"], "fresh");
    assert_eq!(back["raw"]["freshness"]["state"], "pass");
    assert_eq!(back["raw"]["files_gone"], serde_json::Value::Null);
}
