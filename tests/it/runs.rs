//! Runs across processes: a killed process's run is failed by the next command, two
//! `materialize` processes on one project do each asset once, `freshet cancel` stops another
//! process's run, and `@timeout` in a SQL header.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{TempProject, long_project, spawn_materialize, start_materialize, wait_exit};

/// `freshet runs --json`.
fn runs(project: &TempProject) -> Vec<Value> {
    let out = project.ok(&["runs", "--json"]);
    serde_json::from_str(&out.stdout).expect("runs --json is JSON")
}

#[test]
fn a_killed_process_run_is_failed_by_the_next_command_and_the_work_completes_later() {
    let project = long_project();
    let (mut child, run_id, _rx) = start_materialize(&project);
    child.kill().expect("kill");
    child.wait().expect("wait");

    // `status` reads only, so it records nothing, but it says what it sees: `big`'s last
    // attempt died with its process.
    let seen = project.status();
    let failure = &seen["big"]["last_failure"];
    assert_eq!(failure["run_id"], run_id.as_str(), "{seen:?}");
    assert!(
        failure["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("process died")),
        "{failure}"
    );

    // The next command that writes (here `runs`; `status` opens the store to read only) finds
    // the run's process gone.
    let out = project.ok(&["runs"]);
    assert!(
        out.stderr.contains(&format!(
            "run {run_id} was left unfinished by a process that died"
        )),
        "{}",
        out.stderr
    );
    let listed = runs(&project);
    let run = listed
        .iter()
        .find(|r| r["id"] == run_id.as_str())
        .expect("the run is listed");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"], "process died", "{run}");
    let shown = project.ok(&["runs", &run_id, "--json"]);
    let shown: Value = serde_json::from_str(&shown.stdout).expect("JSON");
    let step = |asset: &str| {
        shown["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["asset"] == asset))
            .cloned()
            .expect("the asset's step")
    };
    // What the run made before it died is recorded as made, what it was computing as failed.
    assert_eq!(step("seed")["state"], "materialized", "{shown}");
    assert_eq!(step("seed")["row_count"], 1, "{shown}");
    assert_eq!(step("big")["state"], "failed", "{shown}");

    // Every current version is complete, and the next run does the work.
    let status = project.status();
    assert_eq!(status["seed"]["status"], "fresh");
    assert_eq!(status["big"]["status"], "missing");
    project.write(
        "sql/big.sql",
        "SELECT value AS n FROM seed CROSS JOIN generate_series(1, 3)",
    );
    project.ok(&["materialize"]);
    assert!(project.ok(&["preview", "big"]).stdout.contains("| 3 |"));
}

#[test]
fn cancel_from_another_process_stops_a_long_run() {
    let project = long_project();
    let (mut child, run_id, _rx) = start_materialize(&project);
    let asked = Instant::now();
    let out = project.ok(&["cancel", &run_id]);
    let took = asked.elapsed();
    assert!(
        out.stdout.contains(&format!("run {run_id} cancelled")),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let status = wait_exit(&mut child, Duration::from_secs(30)).expect("the run's process exits");
    assert_eq!(status.code(), Some(130));
    eprintln!("cancel took {took:?}");
    let shown = project.ok(&["runs", &run_id, "--json"]);
    let shown: Value = serde_json::from_str(&shown.stdout).expect("JSON");
    assert_eq!(shown["run"]["status"], "cancelled", "{shown}");
    assert_eq!(project.status()["big"]["status"], "missing");

    // A finished run cannot be cancelled again.
    let again = project.run(&["cancel", &run_id]);
    assert!(!again.success);
    assert!(
        again.stderr.contains("has already cancelled"),
        "{}",
        again.stderr
    );
    let unknown = project.run(&["cancel", "0190aaaa-0000-7000-8000-000000000000"]);
    assert!(!unknown.success);
    assert!(unknown.stderr.contains("unknown run"), "{}", unknown.stderr);
}

#[test]
fn two_materialize_processes_on_one_project_do_each_asset_once() {
    let work = "SELECT sum(value) AS s FROM seed CROSS JOIN generate_series(1, 2000000)";
    let project = TempProject::with_files(&[
        ("freshet.toml", "[project]\nname = \"t\"\n"),
        ("sql/seed.sql", "SELECT 1 AS n"),
        ("sql/a.sql", work),
        ("sql/b.sql", work),
        ("sql/c.sql", "SELECT a.s + b.s AS s FROM a, b"),
        ("sql/d.sql", work),
    ]);
    // Both start on a project with no store yet, so they also race to create it.
    let (first, second) = (spawn_materialize(&project), spawn_materialize(&project));
    for child in [first, second] {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = runs(&project);
    let done: u64 = listed
        .iter()
        .map(|r| r["steps"]["materialized"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(done, 5, "each of the 5 assets once in total: {listed:#?}");
    for (key, s) in project.status() {
        assert_eq!(s["status"], "fresh", "{key}");
    }
}

#[test]
fn a_sql_timeout_fails_the_step_and_says_so() {
    let project = long_project();
    project.write(
        "sql/big.sql",
        "-- @timeout: 1s\nSELECT value AS n FROM seed CROSS JOIN generate_series(1, 2000000000)",
    );
    let out = project.run(&["materialize"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("big FAILED: big: timed out after 1s"),
        "{}",
        out.stderr
    );
    assert_eq!(project.status()["seed"]["status"], "fresh");
}

#[test]
fn materialize_json_prints_one_event_per_line_and_runs_shows_the_run() {
    let project = TempProject::demo();
    let out = project.ok(&["materialize", "--json"]);
    let events: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let planned = events
        .iter()
        .find(|e| e["event"] == "planned")
        .expect("a planned event");
    let steps = planned["steps"].as_array().expect("steps").len();
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .collect();
    assert_eq!(finished.len(), steps, "{events:#?}");
    assert!(finished.iter().all(|e| e["outcome"] == "materialized"));
    let last = events.last().expect("events");
    assert_eq!(last["event"], "finished");
    assert_eq!(last["status"], "succeeded");
    assert_eq!(last["materialized"].as_u64(), Some(steps as u64));
    let run_id = last["run_id"].as_str().expect("run id");

    let listed = project.ok(&["runs"]);
    assert!(listed.stdout.contains(run_id), "{}", listed.stdout);
    assert!(listed.stdout.contains("succeeded"), "{}", listed.stdout);
    let shown = project.ok(&["runs", run_id]);
    assert!(
        shown
            .stdout
            .contains(&format!("run {run_id}: materialize succeeded")),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("daily_revenue"), "{}", shown.stdout);

    // Nothing left to do: one line saying so.
    let again = project.ok(&["materialize", "--json"]);
    let last: Value =
        serde_json::from_str(again.stdout.lines().last().expect("a line")).expect("JSON");
    assert_eq!(last["status"], "fresh");
}

#[test]
fn on_a_terminal_materialize_shows_running_steps_live() {
    let project = long_project();
    project.write(
        "sql/big.sql",
        "-- @timeout: 2s\nSELECT value AS n FROM seed CROSS JOIN generate_series(1, 2000000000)",
    );
    // `script` gives the command a pseudo-terminal and copies what it writes.
    let command = format!(
        "{} --project {} materialize",
        env!("CARGO_BIN_EXE_freshet"),
        project.path().to_str().expect("utf-8")
    );
    let out = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .envs(project.database_env())
        .env("TERM", "xterm")
        // Info, for a log line while big runs: its failure, which the executor logs at info.
        .env("RUST_LOG", "freshet_core::executor::schedule=info,warn")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{screen}");
    // The footer showed big running with its elapsed time, and was redrawn in place.
    assert!(screen.contains("running  big 1."), "{screen}");
    assert!(screen.contains("1/2 done, 1 running, 0 queued"), "{screen}");
    assert!(screen.contains("\x1b[2F\x1b[J"), "{screen}");
    // Finished steps stay as lines; a starting step gets none of its own.
    assert!(
        screen.contains("[1/2] seed materialized 1 rows"),
        "{screen}"
    );
    assert!(
        screen.contains("[2/2] big FAILED: big: timed out after 2s"),
        "{screen}"
    );
    assert!(!screen.contains("big ..."), "{screen}");
    // A log line (big's failure) is written above the footer, which is taken away first, rather
    // than through it.
    let warn = screen
        .find("materialization failed")
        .expect("big's failure was logged");
    let line_start = screen[..warn].rfind('\n').map_or(0, |i| i + 1);
    assert!(
        screen[line_start..warn].contains("\x1b[J"),
        "{:?}",
        &screen[line_start..warn]
    );
}

/// A failed step is said once, and log lines are coloured only on a terminal without `NO_COLOR`.
#[test]
fn a_failed_step_is_said_once_and_colour_only_on_a_terminal_without_no_color() {
    let project = TempProject::with_files(&[
        ("freshet.toml", "[project]\nname = \"t\"\n"),
        ("sql/bad.sql", "SELECT CAST('x' AS INT) AS n"),
    ]);
    let out = project.run(&["materialize"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr.matches("Cannot cast string 'x'").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains('\x1b'),
        "no escape codes on a pipe: {:?}",
        out.stderr
    );

    // On a terminal (`script` gives one), info lines are coloured, unless NO_COLOR is set.
    let on_terminal = |no_color: bool| {
        let command = format!(
            "{} --project {} materialize",
            env!("CARGO_BIN_EXE_freshet"),
            project.path().to_str().expect("utf-8")
        );
        let mut script = Command::new("script");
        script
            .args(["--quiet", "--return", "--command", &command, "/dev/null"])
            .env("TERM", "xterm")
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .envs(project.database_env())
            .stdin(Stdio::null());
        if no_color {
            script.env("NO_COLOR", "1");
        }
        let out = script.output().expect("run script");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = on_terminal(false);
    assert!(coloured.contains("materialization failed"), "{coloured}");
    assert!(
        coloured.contains("\x1b[2m"),
        "dim timestamps on a terminal: {coloured:?}"
    );
    let plain = on_terminal(true);
    assert!(plain.contains("materialization failed"), "{plain}");
    assert!(
        !plain.contains("\x1b[2m") && !plain.contains("\x1b[3"),
        "NO_COLOR: {plain:?}"
    );
}

/// `status`, `status KEY` and `--json` show an asset's last attempt when it failed after its
/// current version, and stop showing it once a later attempt succeeds.
#[test]
fn status_shows_the_last_failed_attempt_until_a_later_one_succeeds() {
    let project = TempProject::with_files(&[
        ("freshet.toml", "[project]\nname = \"t\"\n"),
        ("sql/n.sql", "SELECT 1 AS n"),
    ]);
    project.ok(&["materialize"]);
    project.write("sql/n.sql", "SELECT CAST('x' AS INT) AS n");
    let failed = project.run(&["materialize"]);
    assert_eq!(failed.code, Some(1), "{failed:?}");
    let run = project.ok(&["runs", "--json"]).stdout;
    let runs: Vec<serde_json::Value> = serde_json::from_str(&run).expect("runs --json");
    let run_id = runs[0]["id"].as_str().expect("the failed run").to_owned();

    let status = project.status();
    let last = &status["n"]["last_failure"];
    assert_eq!(last["run_id"], run_id.as_str(), "{last}");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("Cannot cast string 'x'")),
        "{last}"
    );
    assert_eq!(
        status["n"]["status"], "stale",
        "the previous version stays current"
    );
    let table = project.ok(&["status"]).stdout;
    assert!(
        table.contains("last attempt failed at ")
            && table.contains(&format!("in run {run_id}: n: ")),
        "{table}"
    );
    let explained = project.ok(&["status", "n"]).stdout;
    assert!(
        explained.contains(&format!("in run {run_id}: ")),
        "{explained}"
    );
    assert!(
        explained.contains("Cannot cast string 'x' to value of Int32 type"),
        "{explained}"
    );

    project.write("sql/n.sql", "SELECT 2 AS n");
    project.ok(&["materialize"]);
    let status = project.status();
    assert!(status["n"]["last_failure"].is_null(), "{}", status["n"]);
    assert!(
        !project
            .ok(&["status"])
            .stdout
            .contains("last attempt failed")
    );
}
