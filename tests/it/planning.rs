//! `freshet plan`, `freshet status KEY` and selections, on the demo project.

#![allow(clippy::unwrap_used)]

use serde_json::Value;

use crate::support::{TempProject, edit};

/// The demo, materialized, then one more order in the raw export, observed.
fn demo_with_new_orders() -> TempProject {
    let project = TempProject::demo();
    project.ok(&["materialize"]);
    let mut orders = project.read("data/orders.csv");
    orders.push_str("999001,1,2026-10-01T10:00:00Z,completed,10.00\n");
    project.write("data/orders.csv", &orders);
    project.ok(&["observe"]);
    project
}

fn plan_json(project: &TempProject, args: &[&str]) -> Value {
    let mut full = vec!["plan", "--json"];
    full.extend_from_slice(args);
    serde_json::from_str(&project.ok(&full).stdout).expect("plan --json is JSON")
}

/// `key(kind): reasons` per step.
fn steps(plan: &Value) -> Vec<String> {
    plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            let reasons: Vec<&str> = s["reasons"]
                .as_array()
                .expect("reasons")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "{}({}): {}",
                s["key"].as_str().unwrap_or("?"),
                s["kind"].as_str().unwrap_or("?"),
                reasons.join("; ")
            )
        })
        .collect()
}

#[test]
fn plan_shows_what_materialize_runs_in_order_and_why() {
    let project = demo_with_new_orders();
    let plan = plan_json(&project, &[]);
    assert_eq!(
        steps(&plan),
        [
            "stg_orders(needed): input raw_orders has a new data version",
            "orders_enriched(conditional): upstream stg_orders will change",
            "customer_lifetime_value(conditional): upstream orders_enriched will change",
            "daily_revenue(conditional): upstream orders_enriched will change",
        ]
    );
    // Every step has run before: each has a duration and input sizes from its history.
    for step in plan["steps"].as_array().unwrap() {
        assert!(step["estimate"]["duration_ms"].is_u64(), "{step}");
        assert!(
            step["estimate"]["bytes_read"].as_u64().unwrap() > 0,
            "{step}"
        );
    }
    assert_eq!(plan["estimate"]["steps_without_estimate"], 0);

    // The text form says the same, then materialize runs exactly the planned steps.
    let text = project.ok(&["plan"]).stdout;
    assert!(
        text.starts_with("4 steps (1 needed, 3 conditional); estimated "),
        "{text}"
    );
    assert!(
        text.contains("not run: 3 fresh assets; 3 sources"),
        "{text}"
    );
    let out = project.ok(&["materialize"]);
    // Independent steps run at once and may end in any order: each line says its place in the
    // plan (`[i/n] key ...`), so put them back in that order.
    let mut ran: Vec<(usize, &str)> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with('[') && !l.ends_with("..."))
        .filter_map(|l| {
            let (place, rest) = l.strip_prefix('[')?.split_once('/')?;
            Some((place.parse().ok()?, rest.split_whitespace().nth(1)?))
        })
        .collect();
    ran.sort();
    let ran: Vec<&str> = ran.into_iter().map(|(_, key)| key).collect();
    assert_eq!(
        ran,
        [
            "stg_orders",
            "orders_enriched",
            "customer_lifetime_value",
            "daily_revenue"
        ]
    );
    assert_eq!(steps(&plan_json(&project, &[])), Vec::<String>::new());
}

#[test]
fn plan_sees_source_changes_not_yet_observed_and_records_nothing() {
    let project = TempProject::demo();
    project.ok(&["materialize"]);
    let mut customers = project.read("data/customers.csv");
    customers.push_str("999,New Customer,new.999@example.com,fr,2026-10-01T00:00:00Z\n");
    project.write("data/customers.csv", &customers);
    let before = project.status_lines();
    assert_eq!(
        steps(&plan_json(&project, &[]))[0],
        "stg_customers(needed): input raw_customers has a new data version"
    );
    // Planning observed the source without recording it: statuses are as before.
    assert_eq!(project.status_lines(), before);
}

#[test]
fn plan_of_a_selection_lists_what_it_leaves_out_and_why() {
    let project = demo_with_new_orders();
    let plan = plan_json(&project, &["daily_revenue"]);
    assert_eq!(steps(&plan), Vec::<String>::new());
    assert_eq!(
        plan["not_run"],
        serde_json::json!([{"key": "daily_revenue", "reason": "fresh"}])
    );
    let text = project.ok(&["plan", "daily_revenue"]).stdout;
    assert!(
        text.contains(
            "daily_revenue: fresh (upstream raw_orders has newer data not yet propagated; \
             select it with +daily_revenue)"
        ),
        "{text}"
    );
    // With its ancestors, the work upstream is planned; sources and fresh branches are left out.
    let plan = plan_json(&project, &["+daily_revenue"]);
    assert_eq!(
        steps(&plan),
        [
            "stg_orders(needed): input raw_orders has a new data version",
            "orders_enriched(conditional): upstream stg_orders will change",
            "daily_revenue(conditional): upstream orders_enriched will change",
        ]
    );
    let not_run: Vec<String> = plan["not_run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            format!(
                "{} {}",
                n["key"].as_str().unwrap(),
                n["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        not_run,
        [
            "raw_customers source",
            "raw_orders source",
            "stg_customers fresh"
        ]
    );
}

#[test]
fn materialize_stale_runs_only_the_stale_part_of_a_selection() {
    let project = demo_with_new_orders();
    let out = project.ok(&["materialize", "--stale", "+daily_revenue"]);
    assert!(out.stderr.contains("materialized 3"), "{}", out.stderr);
    let status = project.status();
    assert_eq!(status["daily_revenue"]["status"], "fresh");
    // customer_lifetime_value was not selected: it now reads an input with new data.
    assert_eq!(status["customer_lifetime_value"]["status"], "stale");
    assert_eq!(
        status["customer_lifetime_value"]["causes"][0]["dependency"],
        "orders_enriched"
    );
}

#[test]
fn status_lists_upstream_that_is_behind_and_explains_one_asset() {
    let project = demo_with_new_orders();
    let status = project.status();
    let revenue = &status["daily_revenue"];
    assert_eq!(revenue["status"], "fresh");
    assert_eq!(
        revenue["upstream"],
        serde_json::json!([{
            "key": "raw_orders",
            "category": "data",
            "reason": "has newer data not yet propagated"
        }])
    );
    assert_eq!(
        revenue["summary"],
        "fresh, but upstream raw_orders has newer data not yet propagated"
    );
    assert_eq!(revenue["freshness"]["state"], "pass");
    assert_eq!(revenue["freshness"]["policy"], "max_age=1d warn_after=12h");
    assert_eq!(revenue["freshness"]["next_state"], "warn");
    assert!(revenue["data_time"].is_string());
    assert_eq!(status["stg_orders"]["upstream"], serde_json::json!([]));
    assert_eq!(status["raw_events"]["freshness"]["state"], "none");

    let text = project.ok(&["status", "stg_orders"]).stdout;
    for expected in [
        "stg_orders (sql, group staging)",
        "status: stale",
        "  - input raw_orders has a new data version since observed ",
        "freshness: none",
        "data time: ",
        "current version: ",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let text = project.ok(&["status", "daily_revenue"]).stdout;
    for expected in [
        "status: fresh",
        "upstream behind:\n  - raw_orders has newer data not yet propagated",
        "freshness: pass (policy max_age=1d warn_after=12h)",
        "  becomes warn at ",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let one: Value =
        serde_json::from_str(&project.ok(&["status", "daily_revenue", "--json"]).stdout).unwrap();
    assert_eq!(one["key"], "daily_revenue");
}

#[test]
fn status_filters_by_selection_including_status_and_freshness() {
    let project = demo_with_new_orders();
    let keys = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["status", "--json"];
        full.extend_from_slice(args);
        let list: Vec<Value> = serde_json::from_str(&project.ok(&full).stdout).unwrap();
        list.iter()
            .map(|v| v["key"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(keys(&["status:stale"]), ["stg_orders"]);
    assert_eq!(keys(&["group:marts and freshness:pass"]), ["daily_revenue"]);
    assert_eq!(
        keys(&["orders_enriched+1", "kind:rust"]),
        [
            "orders_enriched",
            "customer_lifetime_value",
            "daily_revenue",
            "web_sessions"
        ]
    );
}

#[test]
fn bad_selections_fail_with_the_position_and_write_nothing() {
    let project = TempProject::demo();
    for (args, message) in [
        (
            vec!["plan", "daily_revenue and (stg_orders"],
            "error: invalid selection \"daily_revenue and (stg_orders\": column 30: expected ')' to close the '(' at column 19",
        ),
        (
            vec!["materialize", "status:old"],
            "error: invalid selection \"status:old\": column 8: unknown status \"old\"",
        ),
        (
            vec!["status", "daily_revnue+"],
            "error: invalid selection \"daily_revnue+\": column 1: unknown asset \"daily_revnue\" (did you mean daily_revenue?)",
        ),
    ] {
        let out = project.run(&args);
        assert_eq!(out.code, Some(1), "{args:?}");
        assert!(out.stderr.starts_with(message), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    }
    assert!(!project.path().join(".freshet").exists());
}

#[test]
fn a_failed_run_changes_no_status() {
    let project = demo_with_new_orders();
    edit(
        &project,
        "sql/marts/daily_revenue.sql",
        "count(*) AS orders",
        "count(*) AS orders, no_such_column AS broken",
    );
    let before = project.status_lines();
    assert!(before.contains("daily_revenue: stale [code]"), "{before}");
    let failed = project.run(&["materialize", "daily_revenue"]);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    assert!(failed.stderr.contains("FAILED"), "{}", failed.stderr);
    assert_eq!(project.status_lines(), before);
}
