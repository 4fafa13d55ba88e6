//! Partitioned assets as far as they go today: definitions and headers load and are checked,
//! and a partitioned asset is refused rather than run as one table.

use crate::support::TempProject;

const TOML: &str = "[project]\nname = \"t\"\n\
    [partitions.daily]\nevery = \"day\"\nstart = \"2024-01-01\"\ntimezone = \"Europe/Paris\"\n";

#[test]
fn a_partitioned_asset_is_refused_and_the_rest_runs() {
    let project = TempProject::with_files(&[
        ("freshet.toml", TOML),
        ("sql/seed.sql", "SELECT 1 AS n"),
        (
            "sql/events.sql",
            "-- @partitions: daily\nSELECT n FROM seed",
        ),
        ("sql/other.sql", "SELECT n + 1 AS m FROM seed"),
    ]);
    let out = project.run(&["materialize"]);
    assert!(!out.success, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("events: partitioned by daily: materializing partitions is not built yet"),
        "{}",
        out.stderr
    );
    let status = project.status();
    assert_eq!(status["other"]["status"], "fresh");
    assert_eq!(status["events"]["status"], "missing");
}

#[test]
fn a_header_naming_no_definition_breaks_its_asset_in_one_line() {
    let project = TempProject::with_files(&[
        ("freshet.toml", TOML),
        ("sql/seed.sql", "SELECT 1 AS n"),
        (
            "sql/events.sql",
            "-- @partitions: hourly\nSELECT n FROM seed",
        ),
    ]);
    let out = project.run(&["status", "events"]);
    assert!(
        out.stdout
            .contains("sql/events.sql: unknown partitions \"hourly\" (freshet.toml defines daily)"),
        "{}",
        out.stdout
    );
    let bad = TempProject::with_files(&[(
        "freshet.toml",
        "[project]\nname = \"t\"\n[partitions.daily]\nevery = \"day\"\n",
    )]);
    let out = bad.run(&["status"]);
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("partitions.daily: time windows need a start, e.g. start = \"2024-01-01\""),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
}
