//! The core loop: edits and new data make exactly the right assets stale, and `materialize` runs
//! exactly those.

use crate::support::{TempProject, edit, lines, long_project, start_materialize};

const ALL_FRESH: &str = "
    raw_customers: fresh
    raw_events: fresh
    raw_orders: fresh
    stg_customers: fresh
    stg_orders: fresh
    orders_enriched: fresh
    customer_lifetime_value: fresh
    daily_revenue: fresh
    web_sessions: fresh
    daily_sessions: fresh
";

/// The assets a `materialize` reported materialized, in plan order (steps that do not depend
/// on each other may finish in any order).
fn materialized(out: &crate::support::Output) -> Vec<String> {
    let mut done: Vec<(usize, String)> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with('[') && l.contains(" materialized "))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let index = words
                .next()?
                .trim_start_matches('[')
                .split('/')
                .next()?
                .parse()
                .ok()?;
            Some((index, words.next()?.to_owned()))
        })
        .collect();
    done.sort();
    done.into_iter().map(|(_, key)| key).collect()
}

#[test]
fn whitespace_and_comment_edits_change_nothing() {
    let project = TempProject::demo();
    project.ok(&["materialize"]);
    edit(
        &project,
        "sql/staging/stg_orders.sql",
        "WHERE status = 'completed'",
        "-- only completed orders\nWHERE   status='completed'\n\n",
    );
    edit(
        &project,
        "sql/marts/daily_revenue.sql",
        "count(*) AS orders",
        "COUNT(*)   AS orders /* per day */",
    );
    assert_eq!(project.status_lines(), lines(ALL_FRESH));
    let out = project.ok(&["materialize"]);
    assert!(
        out.stderr.contains("nothing to materialize"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_logic_edit_is_a_code_cause_and_new_output_a_data_cause_downstream() {
    let project = TempProject::demo();
    project.ok(&["materialize"]);
    edit(
        &project,
        "sql/staging/stg_orders.sql",
        "AND amount > 0",
        "AND amount > 20",
    );
    assert_eq!(
        project.status_lines(),
        lines(&ALL_FRESH.replace("stg_orders: fresh", "stg_orders: stale [code]")),
        "only the edited asset is stale until it is re-materialized"
    );
    let status = project.status();
    assert_eq!(
        status["stg_orders"]["causes"][0]["reason"],
        "has a new code version"
    );

    // Re-materializing it with different output makes its direct dependent stale with a data cause.
    let out = project.ok(&["materialize", "stg_orders"]);
    assert_eq!(materialized(&out), ["stg_orders"]);
    assert_eq!(
        project.status_lines(),
        lines(&ALL_FRESH.replace(
            "orders_enriched: fresh",
            "orders_enriched: stale [data stg_orders]"
        ))
    );
    let cause = &project.status()["orders_enriched"]["causes"][0];
    assert_eq!(cause["reason"], "has a new dependency data version");
    assert_eq!(cause["dependency"], "stg_orders");

    // `materialize` then runs what is stale and what turns stale as a result, nothing else.
    let out = project.ok(&["materialize"]);
    assert_eq!(
        materialized(&out),
        [
            "orders_enriched",
            "customer_lifetime_value",
            "daily_revenue"
        ]
    );
    assert_eq!(project.status_lines(), lines(ALL_FRESH));
}

#[test]
fn new_source_data_after_observe_makes_dependents_stale() {
    let project = TempProject::demo();
    project.ok(&["materialize"]);
    let mut orders = project.read("data/orders.csv");
    orders.push_str("199999,1,2026-10-30T12:00:00Z,completed,42.00\n");
    project.write("data/orders.csv", &orders);
    // Until observed, Freshet has not seen the change.
    assert_eq!(project.status_lines(), lines(ALL_FRESH));
    let out = project.ok(&["observe"]);
    assert!(
        out.stderr.contains("observed raw_orders: new data version"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("observed raw_customers: unchanged"),
        "{}",
        out.stderr
    );
    assert_eq!(
        project.status_lines(),
        lines(&ALL_FRESH.replace("stg_orders: fresh", "stg_orders: stale [data raw_orders]"))
    );
    // Observing again without a change changes nothing.
    project.ok(&["observe", "raw_orders"]);
    assert_eq!(
        project.status_lines(),
        lines(&ALL_FRESH.replace("stg_orders: fresh", "stg_orders: stale [data raw_orders]"))
    );
    let out = project.ok(&["materialize"]);
    assert_eq!(
        materialized(&out),
        [
            "stg_orders",
            "orders_enriched",
            "customer_lifetime_value",
            "daily_revenue"
        ]
    );
    assert_eq!(project.status_lines(), lines(ALL_FRESH));
}

#[test]
fn a_source_rewritten_with_the_same_bytes_or_back_to_consumed_content_is_not_new_data() {
    let project = TempProject::demo();
    project.ok(&["materialize"]);
    let original = project.read("data/orders.csv");
    // Rewritten with identical bytes (a new modification time): the same data version.
    std::thread::sleep(std::time::Duration::from_millis(20));
    project.write("data/orders.csv", &original);
    let out = project.ok(&["observe"]);
    assert!(
        out.stderr.contains("observed raw_orders: unchanged"),
        "{}",
        out.stderr
    );
    assert_eq!(project.status_lines(), lines(ALL_FRESH));
    // Changed, observed (stale), then changed back to what stg_orders consumed: fresh again.
    project.write(
        "data/orders.csv",
        &format!("{original}199999,1,2026-10-30T12:00:00Z,completed,42.00\n"),
    );
    project.ok(&["observe"]);
    assert_eq!(
        project.status_lines(),
        lines(&ALL_FRESH.replace("stg_orders: fresh", "stg_orders: stale [data raw_orders]"))
    );
    project.write("data/orders.csv", &original);
    let out = project.ok(&["observe"]);
    assert!(
        out.stderr.contains("observed raw_orders: new data version"),
        "{}",
        out.stderr
    );
    assert_eq!(project.status_lines(), lines(ALL_FRESH));
}

#[test]
fn identical_output_stops_propagation() {
    let project = TempProject::demo();
    project.ok(&["materialize"]);
    // Same events in another order: a new source version, but the same sessions.
    let events = project.read("data/events.jsonl");
    let mut reversed: Vec<&str> = events.lines().collect();
    reversed.reverse();
    project.write("data/events.jsonl", &(reversed.join("\n") + "\n"));
    let before = project.status()["web_sessions"]["data_version"].clone();
    let out = project.ok(&["materialize"]);
    assert_eq!(materialized(&out), ["web_sessions"]);
    assert!(
        out.stderr
            .contains("daily_sessions skipped: inputs unchanged"),
        "{}",
        out.stderr
    );
    let status = project.status();
    assert_eq!(
        status["web_sessions"]["data_version"], before,
        "row order does not change the data version"
    );
    assert_eq!(project.status_lines(), lines(ALL_FRESH));
}

#[test]
fn a_failing_step_records_nothing_and_skips_its_downstream() {
    let project = TempProject::demo();
    project.ok(&["materialize"]);
    let files = project.output_files();
    edit(
        &project,
        "sql/staging/stg_customers.sql",
        "trim(name) AS name",
        "trim(no_such_column) AS name",
    );
    let out = project.run(&["materialize"]);
    assert!(!out.success);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("stg_customers FAILED: stg_customers:"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("no_such_column"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("orders_enriched skipped: upstream stg_customers failed"),
        "{}",
        out.stderr
    );
    // The previous versions stay current, and no new object was left behind.
    assert_eq!(project.output_files(), files);
    assert_eq!(
        project.status_lines(),
        lines(&ALL_FRESH.replace("stg_customers: fresh", "stg_customers: stale [code]"))
    );
}

#[test]
fn named_assets_run_exactly_and_need_their_inputs() {
    let project = TempProject::demo();
    let out = project.run(&["materialize", "daily_revenue"]);
    assert!(!out.success);
    assert_eq!(
        out.stderr.trim(),
        "error: cannot materialize daily_revenue: its input orders_enriched has never been materialized; \
         include orders_enriched or run `freshet materialize` to build what is missing"
    );
    let out = project.ok(&["materialize", "web_sessions", "daily_sessions"]);
    assert_eq!(materialized(&out), ["web_sessions", "daily_sessions"]);
    // A fresh asset named explicitly runs anyway.
    let out = project.ok(&["materialize", "daily_sessions"]);
    assert_eq!(materialized(&out), ["daily_sessions"]);
    let status = project.status();
    assert_eq!(status["daily_sessions"]["status"], "fresh");
    assert_eq!(status["stg_orders"]["status"], "missing");
    assert_eq!(
        status["stg_orders"]["causes"].as_array().map(Vec::len),
        Some(0)
    );
}

/// Starts `materialize` on a project whose second asset streams rows for far longer than any
/// test waits, and returns once that asset has been written for a while.
fn start_long_run() -> (
    TempProject,
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
) {
    let project = long_project();
    let (child, _, rx) = start_materialize(&project);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    (project, child, rx)
}

/// After an interrupted run, `big` has no current version and the next run starts cleanly.
fn check_recovers(project: &TempProject) {
    let status = project.status();
    assert_eq!(status["seed"]["status"], "fresh");
    assert_eq!(
        status["big"]["status"], "missing",
        "an interrupted step has no current version"
    );
    assert!(status["big"]["location"].is_null());
    project.write(
        "sql/big.sql",
        "SELECT value AS n FROM seed CROSS JOIN generate_series(1, 3)",
    );
    let out = project.ok(&["materialize"]);
    assert_eq!(materialized(&out), ["big"]);
    assert!(project.ok(&["preview", "big"]).stdout.contains("| 3 |"));
}

#[test]
fn a_killed_run_leaves_the_previous_state_current() {
    let (project, mut child, _) = start_long_run();
    child.kill().expect("kill");
    child.wait().expect("wait");
    // What the killed write left (a staging file or finished parts) is gone after `gc`.
    project.ok(&["gc"]);
    assert_eq!(files_of(&project, "big"), Vec::<String>::new());
    check_recovers(&project);
}

/// The output files under `key`'s folder, relative to the output folder.
fn files_of(project: &TempProject, key: &str) -> Vec<String> {
    let root = project.path().join(".freshet/data");
    project
        .output_files()
        .iter()
        .filter_map(|f| f.strip_prefix(&root).ok())
        .map(|f| f.display().to_string())
        .filter(|f| f.starts_with(&format!("{key}/")))
        .collect()
}

#[test]
fn sigterm_stops_a_run_and_records_it_as_interrupted() {
    let (project, mut child, rx) = start_long_run();
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(sent.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "exit code after SIGTERM");
    // Everything it said to its end: the reader thread may still be passing on the last lines
    // after the exit, and ends at the pipe's end (bounded, in case it never does).
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
        rest.push(line);
    }
    assert!(
        rest.iter().any(|l| l.starts_with("interrupted: run ")),
        "{rest:?}"
    );
    // The stopped step removed what it had written: nothing is left for `gc`.
    assert_eq!(files_of(&project, "big"), Vec::<String>::new());
    check_recovers(&project);
}

/// A step stopped while it writes removes what it wrote (SIGTERM); what a killed one leaves
/// (SIGKILL: its staging file) the next `gc` removes. Either way nothing is current.
#[test]
fn a_stopped_write_leaves_no_file_and_a_killed_one_none_after_gc() {
    for signal in ["-TERM", "-KILL"] {
        let project = crate::support::long_project();
        let (mut child, _, _rx) = crate::support::start_materialize(&project);
        // Until `big` has begun writing (bounded).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        while files_of(&project, "big").is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let writing = files_of(&project, "big");
        assert!(!writing.is_empty(), "big never began writing");
        let sent = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        child.wait().expect("wait");
        if signal == "-KILL" {
            assert!(
                !files_of(&project, "big").is_empty(),
                "a killed write leaves its file"
            );
            let out = project.ok(&["gc"]);
            assert!(out.stdout.contains("unreferenced"), "{}", out.stdout);
        }
        assert_eq!(files_of(&project, "big"), Vec::<String>::new(), "{signal}");
        assert_eq!(project.status()["big"]["status"], "missing");
    }
}
