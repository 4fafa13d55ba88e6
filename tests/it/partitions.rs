//! Partitioned assets: definitions and headers are checked; ranges run partition by partition
//! with typed parameters and scoped inputs into Hive-style folders that pyarrow reads as one
//! table; staleness, early cut-off and blocked partitions per partition; dynamic keys; a changed
//! start; a SIGKILL mid-range.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::TempProject;

const TOML: &str = "[project]\nname = \"t\"\n\
    [partitions.daily]\nevery = \"day\"\nstart = \"2024-01-01\"\ntimezone = \"Europe/Paris\"\n";

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

/// `partitions KEY --json [ARGS]`.
fn partitions(project: &TempProject, key: &str, args: &[&str]) -> Value {
    let mut all = vec!["partitions", key, "--json"];
    all.extend_from_slice(args);
    let out = project.ok(&all);
    serde_json::from_str(&out.stdout).expect("partitions --json is JSON")
}

/// `(first, last, status)` of each range `partitions KEY --json` lists within `range`.
fn ranges(project: &TempProject, key: &str, range: &str) -> Vec<(String, String, String)> {
    partitions(project, key, &["--range", range])["ranges"]
        .as_array()
        .expect("ranges")
        .iter()
        .map(|r| {
            let text = |f: &str| r[f].as_str().expect("a text").to_owned();
            (text("first"), text("last"), text("status"))
        })
        .collect()
}

fn range(first: &str, last: &str, status: &str) -> (String, String, String) {
    (first.to_owned(), last.to_owned(), status.to_owned())
}

/// The rows of the Hive-style folder `folder`, read by pyarrow as one dataset, sorted by
/// `sort_by`, as `{column: [values]}`.
fn pyarrow_rows(folder: &Path, sort_by: &str) -> Value {
    let python = crate::demo::python();
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, json, pyarrow.dataset as ds\n\
             t = ds.dataset(sys.argv[1], format='parquet', partitioning='hive').to_table()\n\
             t = t.sort_by(sys.argv[2])\n\
             print(json.dumps({c: [str(v) for v in t[c].to_pylist()] for c in t.column_names}))",
        ])
        .arg(folder)
        .arg(sort_by)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from pyarrow")
}

/// Events by hour (naive UTC timestamps), from Paris midnight on 2024-03-30 for `hours` hours:
/// the 31st of March 2024 has 23 hours in Paris.
fn hourly_raw(hours: u32) -> String {
    // 1711753200 is 2024-03-29T23:00:00Z, midnight in Paris.
    format!(
        "SELECT to_timestamp_seconds(1711753200 + value * 3600) AS ts, value AS n \
         FROM range(0, {hours})"
    )
}

const PARIS: &str = "[project]\nname = \"t\"\n\
    [partitions.daily]\nevery = \"day\"\nstart = \"2024-03-30\"\ntimezone = \"Europe/Paris\"\n";

#[test]
fn a_range_runs_each_paris_day_from_its_window_into_folders_pyarrow_reads_as_one_table() {
    let project = TempProject::with_files(&[
        ("freshet.toml", PARIS),
        ("sql/raw.sql", &hourly_raw(72)),
        (
            "sql/events.sql",
            "-- @partitions: daily\nSELECT ts, n FROM raw WHERE ts >= $start AND ts < $end",
        ),
        (
            "sql/hours.sql",
            "-- @partitions: daily\n\
             SELECT $partition_key AS day, count(*) AS hours, min(n) AS first FROM events",
        ),
    ]);
    project.ok(&["materialize", "raw"]);
    let out = project.ok(&[
        "materialize",
        "events",
        "hours",
        "--range",
        "2024-03-30..2024-04-01",
    ]);
    assert!(
        out.stderr
            .contains("hours materialized 3 partitions (2024-03-30..2024-04-01), 3 rows"),
        "{}",
        out.stderr
    );
    // A folder per partition, a folder per version in it.
    let data = project.path().join(".freshet/data");
    for day in ["2024-03-30", "2024-03-31", "2024-04-01"] {
        let versions: Vec<_> = std::fs::read_dir(data.join(format!("hours/daily={day}")))
            .expect("a partition folder")
            .collect();
        assert_eq!(versions.len(), 1, "{day}");
    }
    // 24, 23 (the clocks go forward) and 24 hours; each day's first hour is where the one
    // before ended.
    let rows = pyarrow_rows(&data.join("hours"), "day");
    assert_eq!(
        rows,
        serde_json::json!({
            "day": ["2024-03-30", "2024-03-31", "2024-04-01"],
            "hours": ["24", "23", "24"],
            "first": ["0", "24", "47"],
            "daily": ["2024-03-30", "2024-03-31", "2024-04-01"],
        })
    );
    let rows = pyarrow_rows(&data.join("events"), "ts");
    assert_eq!(rows["n"].as_array().map(Vec::len), Some(71));

    assert_eq!(
        ranges(&project, "hours", "2024-03-30..2024-04-02"),
        [
            range("2024-03-30", "2024-04-01", "fresh"),
            range("2024-04-02", "2024-04-02", "blocked"),
        ]
    );
    let status = project.status();
    assert_eq!(
        status["events"]["status"], "missing",
        "later days are missing"
    );
    assert_eq!(status["events"]["partitions"]["counts"]["fresh"], 3);
    assert_eq!(status["hours"]["partitions"]["worst"], "blocked");
}

const UTC_DAYS: &str = "[project]\nname = \"t\"\n\
    [partitions.daily]\nevery = \"day\"\nstart = \"2024-01-01\"\n";

/// Three days of events, ten a day, and a total per day.
fn three_days(events_sql: &str) -> TempProject {
    TempProject::with_files(&[
        ("freshet.toml", UTC_DAYS),
        (
            "sql/raw.sql",
            "SELECT to_timestamp_seconds(1704067200 + value * 7200) AS ts, value AS n \
             FROM range(0, 36)",
        ),
        ("sql/events.sql", events_sql),
        (
            "sql/totals.sql",
            "-- @partitions: daily\nSELECT $partition_key AS day, sum(n) AS total FROM events",
        ),
    ])
}

const EVENTS: &str =
    "-- @partitions: daily\nSELECT ts, n FROM raw WHERE ts >= $start AND ts < $end";

#[test]
fn a_partition_is_stale_for_its_own_code_or_its_own_inputs_with_early_cut_off() {
    let project = three_days(EVENTS);
    project.ok(&["materialize", "raw"]);
    project.ok(&[
        "materialize",
        "events",
        "totals",
        "--range",
        "2024-01-01..2024-01-03",
    ]);
    let days = "2024-01-01..2024-01-03";
    assert_eq!(
        ranges(&project, "totals", days),
        [range("2024-01-01", "2024-01-03", "fresh")]
    );

    // New code, same rows: every day of events is stale by code; rebuilt, totals stay fresh.
    project.write(
        "sql/events.sql",
        "-- @partitions: daily\nSELECT ts, n * 1 AS n FROM raw WHERE ts >= $start AND ts < $end",
    );
    assert_eq!(
        ranges(&project, "events", days),
        [range("2024-01-01", "2024-01-03", "stale")]
    );
    let why = partitions(&project, "events", &["--range", days]);
    assert!(
        why["ranges"][0]["why"]
            .as_str()
            .is_some_and(|w| w.starts_with("made with code version")),
        "{why}"
    );
    project.ok(&["materialize", "events", "--range", days]);
    assert_eq!(
        ranges(&project, "events", days),
        [range("2024-01-01", "2024-01-03", "fresh")]
    );
    assert_eq!(
        ranges(&project, "totals", days),
        [range("2024-01-01", "2024-01-03", "fresh")]
    );

    // New code that changes the second day only: only that day of totals is stale.
    project.write(
        "sql/events.sql",
        "-- @partitions: daily\nSELECT ts, CASE WHEN $partition_key = '2024-01-02' THEN n + 1 \
         ELSE n END AS n FROM raw WHERE ts >= $start AND ts < $end",
    );
    project.ok(&["materialize", "events", "--range", days]);
    assert_eq!(
        ranges(&project, "totals", days),
        [
            range("2024-01-01", "2024-01-01", "fresh"),
            range("2024-01-02", "2024-01-02", "stale"),
            range("2024-01-03", "2024-01-03", "fresh"),
        ]
    );
    // `partitions:stale` selects the assets with a stale partition.
    let out = project.ok(&["status", "--json", "partitions:stale"]);
    let picked: Vec<Value> = serde_json::from_str(&out.stdout).expect("JSON");
    let picked: Vec<&str> = picked.iter().filter_map(|a| a["key"].as_str()).collect();
    assert_eq!(picked, ["totals"]);
    let stale = partitions(&project, "totals", &["--status", "stale"]);
    assert_eq!(
        stale["ranges"][0]["why"],
        "events changed since they read it"
    );
    assert_eq!(stale["counts"]["stale"], 1);

    // A new version of the unpartitioned input stales every day that read it.
    project.write(
        "sql/raw.sql",
        "SELECT to_timestamp_seconds(1704067200 + value * 7200) \
        AS ts, value AS n FROM range(0, 37)",
    );
    project.ok(&["materialize", "raw"]);
    assert_eq!(
        ranges(&project, "events", days),
        [range("2024-01-01", "2024-01-03", "stale")]
    );

    // Moving the start renumbers nothing: the days recorded keep their state.
    project.write(
        "freshet.toml",
        &UTC_DAYS.replace("2024-01-01", "2023-12-01"),
    );
    assert_eq!(
        ranges(&project, "totals", "2023-12-31..2024-01-03"),
        [
            range("2023-12-31", "2023-12-31", "blocked"),
            range("2024-01-01", "2024-01-01", "fresh"),
            range("2024-01-02", "2024-01-02", "stale"),
            range("2024-01-03", "2024-01-03", "fresh"),
        ]
    );
}

#[test]
fn partitions_whose_inputs_are_not_there_wait_and_are_never_run() {
    let project = three_days(EVENTS);
    project.ok(&["materialize", "raw"]);
    project.ok(&["materialize", "events", "--partition", "2024-01-01"]);
    let out = project.run(&["materialize", "totals", "--range", "2024-01-02..2024-01-03"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "none of its 2 partitions can run yet: partition 2024-01-02 waits: events has no \
             version of partition 2024-01-02"
        ),
        "{}",
        out.stderr
    );
    // A range with some of each runs those it can and says what waits.
    let out = project.ok(&["materialize", "totals", "--range", "2024-01-01..2024-01-02"]);
    assert!(
        out.stderr.contains("1 partition (2024-01-01), 1 rows")
            && out
                .stderr
                .contains("; 1 waits for its inputs (partition 2024-01-02 waits"),
        "{}",
        out.stderr
    );
    assert_eq!(
        ranges(&project, "totals", "2024-01-01..2024-01-03"),
        [
            range("2024-01-01", "2024-01-01", "fresh"),
            range("2024-01-02", "2024-01-03", "blocked"),
        ]
    );
    // Named wrongly: one line each, nothing run.
    for (args, message) in [
        (
            &["materialize", "totals", "--partition", "2024-13-01"][..],
            "\"2024-13-01\" is not a partition key of totals (partitioned by daily)",
        ),
        (
            &["materialize", "raw", "--partition", "2024-01-01"][..],
            "raw is not partitioned: --partition and --range apply to partitioned assets",
        ),
        (
            &["materialize", "totals", "--range", "2024-01-03..2024-01-01"][..],
            "range 2024-01-03..2024-01-01: 2024-01-03 comes after 2024-01-01",
        ),
        (
            &["materialize", "--partition", "2024-01-01"][..],
            "--partition and --range need the partitioned assets to run named",
        ),
        (&["partitions", "raw"][..], "raw is not partitioned"),
    ] {
        let out = project.run(args);
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn dynamic_keys_are_added_and_a_plain_materialize_runs_the_missing_partitions() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n[partitions.customers]\ndynamic = true\n",
        ),
        ("sql/raw.sql", "SELECT value AS n FROM range(0, 5)"),
        (
            "sql/per_customer.sql",
            "-- @partitions: customers\nSELECT $partition_key AS customer, count(*) AS n FROM raw",
        ),
    ]);
    let out = project.ok(&["partitions", "add", "customers", "acme", "globex"]);
    assert_eq!(
        out.stdout.trim(),
        "added 2 keys to customers (0 already there)"
    );
    project.write("more.txt", "globex\ninitech\n\n");
    let more = project.path().join("more.txt");
    let more = more.to_str().expect("a UTF-8 path");
    let out = project.ok(&["partitions", "add", "customers", "--from-file", more]);
    assert_eq!(
        out.stdout.trim(),
        "added 1 key to customers (1 already there)"
    );
    let out = project.run(&["partitions", "add", "customers", "a/b"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    let out = project.run(&["partitions", "add", "nobody", "x"]);
    assert!(
        out.stderr
            .contains("unknown partitions \"nobody\" (defined: customers)"),
        "{}",
        out.stderr
    );

    project.ok(&["materialize"]);
    let view = partitions(&project, "per_customer", &[]);
    assert_eq!(view["summary"], "fresh: 3 of 3");
    let rows = pyarrow_rows(
        &project.path().join(".freshet/data/per_customer"),
        "customer",
    );
    assert_eq!(
        rows["customer"],
        serde_json::json!(["acme", "globex", "initech"])
    );
    assert_eq!(
        rows["customers"],
        serde_json::json!(["acme", "globex", "initech"])
    );
    assert_eq!(rows["n"], serde_json::json!(["5", "5", "5"]));

    // A new key is missing; the next plain materialize runs it alone.
    project.ok(&["partitions", "add", "customers", "hooli"]);
    assert_eq!(
        partitions(&project, "per_customer", &[])["summary"],
        "missing: 1 of 4"
    );
    let out = project.ok(&["materialize"]);
    assert!(out.stderr.contains("1 partition (hooli)"), "{}", out.stderr);
    // Then nothing is due: nothing is planned.
    let out = project.ok(&["materialize"]);
    assert!(
        out.stderr
            .contains("nothing to materialize: every selected asset is fresh"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_sigkill_mid_range_leaves_every_recorded_partition_whole() {
    const DAYS: u32 = 20;
    let project = three_days(EVENTS);
    // Each day takes a moment, so the kill lands between and within partitions.
    project.write(
        "sql/slow.sql",
        "-- @partitions: daily\nSELECT $partition_key AS day, count(*) AS n, \
         sum(value % 7) AS s FROM range(0, 8000000)",
    );
    let mut child = project
        .command()
        .args(["materialize", "slow", "--range", "2024-01-01..2024-01-20"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start freshet");
    let deadline = Instant::now() + Duration::from_secs(120);
    let recorded = loop {
        let view = partitions(&project, "slow", &["--range", "2024-01-01..2024-01-20"]);
        let fresh = view["counts"]["fresh"].as_u64().unwrap_or(0);
        if fresh >= 3 || Instant::now() > deadline {
            break fresh;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(
        recorded >= 3,
        "three partitions recorded within two minutes"
    );
    let view = partitions(&project, "slow", &["--range", "2024-01-01..2024-01-20"]);
    let fresh = view["counts"]["fresh"].as_u64().unwrap_or(0);
    assert!(
        fresh < u64::from(DAYS),
        "killed before the end ({fresh} fresh)"
    );
    // Every recorded partition reads whole; nothing else is current.
    let out = project.ok(&["gc", "--keep", "0"]);
    let rows = pyarrow_rows(&project.path().join(".freshet/data/slow"), "day");
    assert_eq!(
        rows["day"].as_array().map(Vec::len),
        Some(fresh as usize),
        "{out:?}"
    );
    assert!(
        rows["n"]
            .as_array()
            .expect("n")
            .iter()
            .all(|n| n == "8000000")
    );
    // The rest runs next time, and the table is exactly one row per day.
    project.ok(&["materialize", "slow", "--range", "2024-01-01..2024-01-20"]);
    project.ok(&["gc", "--keep", "0"]);
    let rows = pyarrow_rows(&project.path().join(".freshet/data/slow"), "day");
    assert_eq!(rows["day"].as_array().map(Vec::len), Some(DAYS as usize));
}

#[test]
fn a_late_file_in_an_old_folder_stales_exactly_its_day_and_what_maps_to_it() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\n\
             [partitions.daily]\nevery = \"day\"\nstart = \"2024-01-01\"\n\
             [sources.events]\npath = \"data/events/date={daily}/*.csv\"\n",
        ),
        (
            "sql/totals.sql",
            "-- @partitions: daily\nSELECT $partition_key AS day, count(*) AS n FROM events",
        ),
        (
            "sql/two_days.sql",
            "-- @partitions: daily\n-- @inputs: totals=window(-1..0)\n\
             SELECT $partition_key AS day, sum(n) AS n FROM totals",
        ),
        ("sql/everything.sql", "SELECT count(*) AS n FROM events"),
    ]);
    for day in 1..=4 {
        project.write(
            &format!("data/events/date=2024-01-0{day}/a.csv"),
            "ts,v\n2024-01-01T10:00:00,1\n2024-01-01T11:00:00,2\n",
        );
    }
    project.ok(&["observe"]);
    assert_eq!(
        ranges(&project, "events", "2024-01-01..2024-01-05"),
        [
            range("2024-01-01", "2024-01-04", "fresh"),
            range("2024-01-05", "2024-01-05", "missing"),
        ]
    );
    let days = "2024-01-01..2024-01-04";
    project.ok(&["materialize", "totals", "two_days", "--range", days]);
    project.ok(&["materialize", "everything"]);
    // Each day read its own folder only.
    let rows = pyarrow_rows(&project.path().join(".freshet/data/two_days"), "day");
    assert_eq!(rows["n"], serde_json::json!(["2", "4", "4", "4"]));
    assert_eq!(
        ranges(&project, "two_days", days),
        [range("2024-01-01", "2024-01-04", "fresh")]
    );

    // A file lands in the second day's folder: that day of totals is stale (two_days is judged
    // from totals, which has not changed yet).
    project.write(
        "data/events/date=2024-01-02/late.csv",
        "ts,v\n2024-01-02T23:00:00,5\n",
    );
    project.ok(&["observe"]);
    assert_eq!(
        ranges(&project, "totals", days),
        [
            range("2024-01-01", "2024-01-01", "fresh"),
            range("2024-01-02", "2024-01-02", "stale"),
            range("2024-01-03", "2024-01-04", "fresh"),
        ]
    );
    assert_eq!(
        ranges(&project, "two_days", days),
        [range("2024-01-01", "2024-01-04", "fresh")]
    );
    assert_eq!(project.status()["everything"]["status"], "stale");

    // A plain materialize runs that day of totals, then the two windows of two_days that
    // cover it, which its new data stales (the days not run yet stay blocked: no files).
    let out = project.ok(&["materialize"]);
    assert!(
        out.stderr
            .contains("totals materialized 1 partition (2024-01-02)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("two_days materialized 2 partitions (2024-01-02..2024-01-03)"),
        "{}",
        out.stderr
    );
    assert_eq!(
        ranges(&project, "two_days", days),
        [range("2024-01-01", "2024-01-04", "fresh")]
    );
    project.ok(&["gc", "--keep", "0"]);
    let rows = pyarrow_rows(&project.path().join(".freshet/data/two_days"), "day");
    assert_eq!(rows["n"], serde_json::json!(["2", "5", "5", "4"]));
}

#[test]
fn a_failing_partition_fails_the_step_is_recorded_failed_and_runs_again_once_fixed() {
    let project = TempProject::with_files(&[
        ("freshet.toml", UTC_DAYS),
        (
            "sql/days.sql",
            // Fails when it runs, for the second day only.
            "-- @partitions: daily\nSELECT $partition_key AS day, CAST(s AS INT) AS v FROM \
             (VALUES (CASE WHEN $partition_key = '2024-01-02' THEN 'x' ELSE '1' END)) t(s)",
        ),
    ]);
    let out = project.run(&["materialize", "days", "--range", "2024-01-01..2024-01-03"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("days: partition 2024-01-02: "),
        "{}",
        out.stderr
    );
    let failed = partitions(&project, "days", &["--status", "failed"]);
    assert_eq!(
        failed["ranges"],
        serde_json::json!([{
            "first": "2024-01-02", "last": "2024-01-02", "count": 1, "status": "failed"
        }])
    );
    assert_eq!(
        failed["summary"]
            .as_str()
            .map(|s| s.starts_with("failed: 1 of ")),
        Some(true)
    );
    assert_eq!(
        project.status()["days"]["status"],
        "stale",
        "a failed partition makes it stale"
    );
    // Every partition recorded reads whole; the failed one has no version.
    let rows = pyarrow_rows(&project.path().join(".freshet/data/days"), "day");
    assert!(
        !rows["day"]
            .as_array()
            .expect("days")
            .iter()
            .any(|d| d == "2024-01-02")
    );

    project.write(
        "sql/days.sql",
        "-- @partitions: daily\nSELECT $partition_key AS day, 1 AS v",
    );
    project.ok(&["materialize", "days", "--range", "2024-01-01..2024-01-03"]);
    assert_eq!(
        ranges(&project, "days", "2024-01-01..2024-01-03"),
        [range("2024-01-01", "2024-01-03", "fresh")]
    );
}
