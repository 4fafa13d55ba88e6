//! Condition tests: parsing, the rules one at a time, and a simulated week of source changes,
//! cron ticks across a daylight saving change, freshness deadlines and a failure.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::model::{
    AssetDef, CodeVersion, DataVersion, FreshnessPolicy, InputVersion, Materialization,
    MaterializationId, Observation, Origin,
};
use crate::planner::{self, PlanRequest, StepKind};

fn key(s: &str) -> AssetKey {
    s.parse().unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn parses_conditions_and_refuses_bad_ones() {
    assert_eq!(
        AutomationCondition::parse("eager"),
        Ok(Some(AutomationCondition::Eager))
    );
    assert_eq!(AutomationCondition::parse(" none "), Ok(None));
    let cron = AutomationCondition::parse(r#"on_cron "0 6 * * *" Europe/Paris"#)
        .unwrap()
        .unwrap();
    assert_eq!(cron.as_text(), r#"on_cron "0 6 * * *" Europe/Paris"#);
    assert_eq!(AutomationCondition::parse(&cron.as_text()), Ok(Some(cron)));
    assert_eq!(
        AutomationCondition::parse("lazy").unwrap_err(),
        r#"unknown condition "lazy" (expected eager, on_cron "CRON" [TIME_ZONE], freshness or none)"#
    );
    assert!(
        AutomationCondition::parse("on_cron 0 6 * * *")
            .unwrap_err()
            .starts_with("on_cron needs a quoted cron expression")
    );
    assert!(
        AutomationCondition::parse(r#"on_cron "61 6 * * *""#)
            .unwrap_err()
            .starts_with(r#"invalid cron "61 6 * * *""#)
    );
    assert_eq!(
        AutomationCondition::parse(r#"on_cron "0 6 * * *" Mars/Olympus"#).unwrap_err(),
        r#"unknown time zone "Mars/Olympus" (expected an IANA name such as Europe/Paris)"#
    );
}

/// A simulated project: definitions, lineage, runs, and the cursors automation keeps.
struct World {
    graph: AssetGraph,
    lineage: Lineage,
    now: DateTime<Utc>,
    cursors: HashMap<AssetKey, Cursor>,
    runs: HashMap<RunId, RunFact>,
    failures: HashMap<AssetKey, FailureFact>,
    in_progress: HashSet<AssetKey>,
    durations: HashMap<AssetKey, StdDuration>,
    /// Assets whose computation fails while their input has this data version.
    broken: Vec<(AssetKey, String)>,
    /// Requested decisions as `time asset: reason`, and each run's outcome.
    log: Vec<String>,
}

impl World {
    fn new(defs: Vec<AssetDef>, start: &str) -> Self {
        Self {
            graph: AssetGraph::new(defs).unwrap(),
            lineage: Lineage::new(),
            now: at(start),
            cursors: HashMap::new(),
            runs: HashMap::new(),
            failures: HashMap::new(),
            in_progress: HashSet::new(),
            durations: HashMap::new(),
            broken: Vec::new(),
            log: Vec::new(),
        }
    }

    fn observe(&mut self, k: &str, version: &str) {
        self.lineage.set_observation(Observation {
            asset: key(k),
            data_version: DataVersion::new(version),
            file_count: 1,
            byte_size: 10,
            observed_at: self.now,
            checked_at: self.now,
        });
    }

    fn evaluate(&self) -> Evaluation {
        let statuses = planner::Statuses::compute(&self.graph, &self.lineage);
        let facts = Facts {
            graph: &self.graph,
            lineage: &self.lineage,
            statuses: &statuses,
            now: self.now,
            in_progress: &self.in_progress,
            failures: &self.failures,
            runs: &self.runs,
            durations: &self.durations,
        };
        evaluate(&facts, &self.cursors)
    }

    /// One evaluation; its requests run at once, as one run, the way the daemon asks for them.
    fn step(&mut self) -> Evaluation {
        let evaluation = self.evaluate();
        let requested: Vec<&Decision> = evaluation.requested().collect();
        for d in &evaluation.decisions {
            if !d.requested() {
                self.cursors.insert(d.key.clone(), d.cursor.clone());
            }
        }
        if requested.is_empty() {
            return evaluation;
        }
        let run = RunId::generate();
        let time = self.now.format("%m-%d %H:%M");
        for d in &requested {
            self.log.push(format!("{time} {}: {}", d.key, d.reason));
            let mut cursor = d.cursor.clone();
            cursor.run_id = Some(run.clone());
            self.cursors.insert(d.key.clone(), cursor);
        }
        let mut selection: BTreeSet<AssetKey> = requested.iter().map(|d| d.key.clone()).collect();
        selection.extend(evaluation.upstream.iter().cloned());
        let request = PlanRequest {
            selection: Some(selection),
            stale_only: true,
            force: requested
                .iter()
                .filter(|d| d.request == Some(RequestKind::Always))
                .map(|d| d.key.clone())
                .collect(),
            partitions: None,
        };
        let fact = self.run(&run, &request);
        self.log.push(format!("{time} run: {fact:?}"));
        self.runs.insert(run, fact);
        evaluation
    }

    /// Runs a plan the way the executor does: upstream first, a failure skips what reads it,
    /// a conditional step whose inputs came out unchanged is skipped.
    fn run(&mut self, run: &RunId, request: &PlanRequest) -> RunFact {
        let statuses = planner::Statuses::compute(&self.graph, &self.lineage);
        let plan = planner::plan(&self.graph, &self.lineage, &statuses, request).unwrap();
        let mut failed: HashSet<AssetKey> = HashSet::new();
        let mut error = None;
        for step in &plan.steps {
            let def = self.graph.get(&step.key).unwrap().clone();
            if def.deps.iter().any(|d| failed.contains(d)) {
                failed.insert(def.key.clone());
                continue;
            }
            let fresh = planner::status_of(&def, &self.lineage).status == Status::Fresh;
            if step.kind == StepKind::Conditional && fresh {
                continue;
            }
            let inputs: Vec<InputVersion> = def
                .deps
                .iter()
                .map(|d| InputVersion {
                    asset: d.clone(),
                    data_version: self.lineage.data_version(d).cloned().unwrap(),
                })
                .collect();
            let broken = self
                .broken
                .iter()
                .any(|(k, v)| *k == def.key && inputs.iter().any(|i| i.data_version.as_str() == v));
            if broken {
                failed.insert(def.key.clone());
                self.failures.insert(
                    def.key.clone(),
                    FailureFact {
                        at: self.now,
                        run_id: run.clone(),
                        error: "Divide by zero".to_owned(),
                    },
                );
                error = Some(format!("failed: {}", def.key));
                continue;
            }
            let output: Vec<&str> = inputs.iter().map(|i| i.data_version.as_str()).collect();
            self.lineage.set_materialization(Materialization {
                id: MaterializationId::generate(),
                asset: def.key.clone(),
                run_id: run.clone(),
                code_version: def.code_version.clone().unwrap(),
                data_version: DataVersion::new(format!("{}<{}>", def.key, output.join(","))),
                inputs,
                location: String::new(),
                row_count: 1,
                byte_size: 10,
                duration_us: 0,
                created_at: self.now,
                data_time: None,
                details: Default::default(),
                collected_at: None,
            });
            self.failures.remove(&def.key);
        }
        match error {
            Some(e) => RunFact::Failed(e),
            None => RunFact::Succeeded,
        }
    }
}

fn asset(k: &str, deps: &[&str], condition: &str) -> AssetDef {
    let mut def = AssetDef::new(
        key(k),
        AssetKind::Sql,
        Origin::File {
            path: format!("sql/{k}.sql"),
        },
    )
    .with_deps(deps.iter().map(|d| key(d)));
    def.code_version = Some(CodeVersion::new("1"));
    def.automation = AutomationCondition::parse(condition).unwrap();
    def
}

fn source(k: &str) -> AssetDef {
    AssetDef::new(
        key(k),
        AssetKind::Source,
        Origin::File {
            path: "freshet.toml".into(),
        },
    )
}

/// A week from Thursday 22 October 2026, 00:00 UTC, evaluated every 5 minutes. Europe/Paris
/// leaves summer time on Sunday 25 October (06:00 there is 04:00 UTC before, 05:00 UTC after).
/// The source changes at 07:00 UTC every day but Saturday; the version of Monday 26 breaks
/// `clean`, and Tuesday's fixes it.
#[test]
fn a_simulated_week_requests_exactly_the_expected_runs() {
    let mut mart = asset("mart", &["clean"], "freshness");
    mart.freshness = Some(FreshnessPolicy {
        max_age: Some(StdDuration::from_secs(86_400)),
        ..FreshnessPolicy::default()
    });
    let mut world = World::new(
        vec![
            source("raw"),
            asset("clean", &["raw"], "eager"),
            asset("report", &["clean"], r#"on_cron "0 6 * * *" Europe/Paris"#),
            mart,
        ],
        "2026-10-22T00:00:00Z",
    );
    // mart usually takes 10 minutes, so it is requested 20 minutes before its deadline.
    world
        .durations
        .insert(key("mart"), StdDuration::from_secs(600));
    world.broken.push((key("clean"), "v5".to_owned()));
    world.observe("raw", "v1");
    let changes = [
        ("2026-10-22T07:00:00Z", "v2"),
        ("2026-10-23T07:00:00Z", "v3"),
        ("2026-10-25T07:00:00Z", "v4"),
        ("2026-10-26T07:00:00Z", "v5"),
        ("2026-10-27T07:00:00Z", "v6"),
        ("2026-10-28T07:00:00Z", "v7"),
    ];
    let end = at("2026-10-29T00:00:00Z");
    let mut decisions_at = HashMap::new();
    while world.now < end {
        for (when, version) in changes {
            if at(when) == world.now {
                world.observe("raw", version);
            }
        }
        let evaluation = world.step();
        let stamp = world.now.format("%m-%d %H:%M").to_string();
        for d in evaluation.decisions {
            decisions_at.insert((stamp.clone(), d.key.to_string()), d.reason);
        }
        world.now += Duration::minutes(5);
    }
    let expected = [
        "10-22 00:00 clean: requested: missing",
        "10-22 00:00 mart: requested: never materialized",
        "10-22 00:00 run: Succeeded",
        "10-22 07:00 clean: requested: input raw has a new data version",
        "10-22 07:00 report: requested: the 2026-10-22 04:00 UTC tick passed and its inputs updated since",
        "10-22 07:00 run: Succeeded",
        "10-22 23:40 mart: requested: freshness would fail at 2026-10-23 00:00 UTC (last materialized 2026-10-22 00:00 UTC)",
        "10-22 23:40 run: Succeeded",
        "10-23 07:00 clean: requested: input raw has a new data version",
        "10-23 07:00 report: requested: the 2026-10-23 04:00 UTC tick passed and its inputs updated since",
        "10-23 07:00 run: Succeeded",
        "10-23 23:20 mart: requested: freshness would fail at 2026-10-23 23:40 UTC (last materialized 2026-10-22 23:40 UTC)",
        "10-23 23:20 run: Succeeded",
        "10-24 23:00 mart: requested: freshness would fail at 2026-10-24 23:20 UTC (last materialized 2026-10-23 23:20 UTC)",
        "10-24 23:00 run: Succeeded",
        // Winter time: 06:00 in Paris is now 05:00 UTC.
        "10-25 07:00 clean: requested: input raw has a new data version",
        "10-25 07:00 report: requested: the 2026-10-25 05:00 UTC tick passed and its inputs updated since",
        "10-25 07:00 run: Succeeded",
        "10-25 22:40 mart: requested: freshness would fail at 2026-10-25 23:00 UTC (last materialized 2026-10-24 23:00 UTC)",
        "10-25 22:40 run: Succeeded",
        "10-26 07:00 clean: requested: input raw has a new data version",
        "10-26 07:00 report: requested: the 2026-10-26 05:00 UTC tick passed and its inputs updated since",
        "10-26 07:00 run: Failed(\"failed: clean\")",
        // mart takes clean along (it is behind), which fails again: mart is not refreshed.
        "10-26 22:20 mart: requested: freshness would fail at 2026-10-26 22:40 UTC (last materialized 2026-10-25 22:40 UTC)",
        "10-26 22:20 run: Failed(\"failed: clean\")",
        "10-27 07:00 clean: requested: input raw has a new data version",
        "10-27 07:00 report: requested: the 2026-10-27 05:00 UTC tick passed and its inputs updated since",
        "10-27 07:00 run: Succeeded",
        // mart failed at its deadline and waited for its input to change before asking again.
        "10-27 07:05 mart: requested: freshness fails (last materialized 2026-10-25 22:40 UTC)",
        "10-27 07:05 run: Succeeded",
        "10-28 06:45 mart: requested: freshness would fail at 2026-10-28 07:05 UTC (last materialized 2026-10-27 07:05 UTC)",
        "10-28 06:45 run: Succeeded",
        "10-28 07:00 clean: requested: input raw has a new data version",
        "10-28 07:00 report: requested: the 2026-10-28 05:00 UTC tick passed and its inputs updated since",
        "10-28 07:00 run: Succeeded",
    ];
    assert_eq!(world.log, expected, "{:#?}", world.log);

    // And why nothing ran in between, in words.
    let why = |when: &str, k: &str| decisions_at[&(when.to_owned(), k.to_owned())].clone();
    assert_eq!(
        why("10-22 00:00", "report"),
        "not requested: waiting for the next tick at 2026-10-22 04:00 UTC"
    );
    assert_eq!(
        why("10-24 12:00", "report"),
        "not requested: waiting for input clean to update since the 2026-10-24 04:00 UTC tick"
    );
    assert_eq!(why("10-24 12:00", "clean"), "not requested: fresh");
    assert!(
        why("10-26 12:00", "clean").starts_with("not requested: run ")
            && why("10-26 12:00", "clean").ends_with(
                " failed for these inputs (failed: clean); requested again when an input or its code changes"
            ),
        "{}",
        why("10-26 12:00", "clean")
    );
    assert_eq!(
        why("10-26 12:00", "mart"),
        "not requested: freshness passes until 2026-10-26 22:40 UTC (last materialized 2026-10-25 22:40 UTC)"
    );
    assert!(
        why("10-27 06:00", "mart").starts_with("not requested: run "),
        "{}",
        why("10-27 06:00", "mart")
    );
    assert_eq!(
        why("10-27 12:00", "mart"),
        "not requested: freshness passes until 2026-10-28 07:05 UTC (last materialized 2026-10-27 07:05 UTC)"
    );
}

#[test]
fn eager_waits_for_inputs_and_runs_in_progress() {
    let mut world = World::new(
        vec![
            source("raw"),
            asset("a", &["raw"], "eager"),
            asset("b", &["a"], "eager"),
            asset("c", &["other"], "eager"),
            asset("other", &[], "none"),
        ],
        "2026-11-02T00:00:00Z",
    );
    // No source data yet: nothing can run.
    let reason = |e: &Evaluation, k: &str| {
        e.decisions
            .iter()
            .find(|d| d.key == key(k))
            .map(|d| d.reason.clone())
            .unwrap()
    };
    let e = world.evaluate();
    assert_eq!(
        reason(&e, "a"),
        "not requested: input raw has never been observed"
    );
    assert_eq!(
        reason(&e, "b"),
        "not requested: input a has never been materialized"
    );
    assert_eq!(
        reason(&e, "c"),
        "not requested: input other has never been materialized"
    );

    // An input requested in the same evaluation carries its reader along.
    world.observe("raw", "v1");
    let e = world.evaluate();
    assert_eq!(reason(&e, "a"), "requested: missing");
    assert_eq!(reason(&e, "b"), "requested: missing");

    // Something else is materializing a: neither is requested.
    world.in_progress.insert(key("a"));
    let e = world.evaluate();
    assert_eq!(
        reason(&e, "a"),
        "not requested: a run in progress is materializing it"
    );
    assert_eq!(
        reason(&e, "b"),
        "not requested: input a is being materialized"
    );
}

#[test]
fn a_request_whose_process_died_is_made_again_and_a_cancelled_one_is_not() {
    let mut world = World::new(
        vec![source("raw"), asset("a", &["raw"], "eager")],
        "2026-11-02T00:00:00Z",
    );
    world.observe("raw", "v1");
    let first = world.evaluate();
    let decision = first.requested().next().unwrap().clone();
    let run = RunId::generate();
    let mut cursor = decision.cursor.clone();
    cursor.run_id = Some(run.clone());
    world.cursors.insert(key("a"), cursor);

    world.runs.insert(run.clone(), RunFact::InProgress);
    let e = world.evaluate();
    assert_eq!(
        e.decisions[0].reason,
        format!("not requested: run {run} is materializing it")
    );

    world.runs.insert(run.clone(), RunFact::Died);
    let e = world.evaluate();
    assert_eq!(
        e.decisions[0].reason,
        "requested: missing (again: the last run's process died)"
    );

    world.runs.insert(run.clone(), RunFact::Cancelled);
    let e = world.evaluate();
    assert_eq!(
        e.decisions[0].reason,
        format!(
            "not requested: run {run} for these inputs was cancelled; requested again when an \
             input or its code changes"
        )
    );
    // New data: requested again.
    world.observe("raw", "v2");
    assert_eq!(world.evaluate().decisions[0].reason, "requested: missing");
}

#[test]
fn on_cron_without_inputs_runs_once_per_tick() {
    let mut world = World::new(
        vec![asset("hourly", &[], r#"on_cron "0 * * * *""#)],
        "2026-11-02T00:30:00Z",
    );
    let mut requested = Vec::new();
    for _ in 0..(4 * 12) {
        if world.step().requested().next().is_some() {
            requested.push(world.now.format("%H:%M").to_string());
        }
        world.now += Duration::minutes(5);
    }
    assert_eq!(requested, ["01:00", "02:00", "03:00", "04:00"]);
}

#[test]
fn schedules_run_once_per_tick_and_catch_up_once_or_not_at_all() {
    let (cron, tz) = compile_cron("0 2 * * *", Some("Europe/Paris")).unwrap();
    let act = |handled: Option<&str>, now: &str, since: &str, catch_up: bool| {
        schedule_action(&cron, &tz, handled.map(at), at(now), at(since), catch_up)
    };
    // 02:00 in Paris is 01:00 UTC in winter.
    assert_eq!(
        act(None, "2026-11-03T12:00:00Z", "2026-11-03T12:00:00Z", true),
        TickAction::Pass(at("2026-11-03T01:00:00Z")),
        "a new schedule waits for its next tick"
    );
    assert_eq!(
        act(
            Some("2026-11-03T01:00:00Z"),
            "2026-11-03T23:59:00Z",
            "2026-11-03T00:00:00Z",
            true
        ),
        TickAction::Wait
    );
    assert_eq!(
        act(
            Some("2026-11-03T01:00:00Z"),
            "2026-11-04T01:00:00Z",
            "2026-11-03T00:00:00Z",
            true
        ),
        TickAction::Run(at("2026-11-04T01:00:00Z"))
    );
    // Down for three days: one run for the latest tick, or none.
    let down = |catch_up| {
        act(
            Some("2026-11-03T01:00:00Z"),
            "2026-11-06T09:00:00Z",
            "2026-11-06T09:00:00Z",
            catch_up,
        )
    };
    assert_eq!(down(true), TickAction::Run(at("2026-11-06T01:00:00Z")));
    assert_eq!(down(false), TickAction::Pass(at("2026-11-06T01:00:00Z")));
}

#[test]
fn a_cron_tick_whose_run_died_or_was_stopped_by_a_shutdown_is_run_again() {
    let mut world = World::new(
        vec![asset("hourly", &[], r#"on_cron "0 * * * *""#)],
        "2026-11-02T00:30:00Z",
    );
    world.step();
    world.now = at("2026-11-02T01:00:00Z");
    let requested = world.evaluate();
    let decision = requested
        .requested()
        .next()
        .expect("the 01:00 tick")
        .clone();
    // The request became a run that its process took down with it.
    let run = RunId::generate();
    let mut cursor = decision.cursor.clone();
    cursor.run_id = Some(run.clone());
    world.cursors.insert(key("hourly"), cursor);
    world.runs.insert(run.clone(), RunFact::Succeeded);
    world.now = at("2026-11-02T01:10:00Z");
    assert_eq!(world.evaluate().requested().count(), 0, "handled");
    world.runs.insert(run, RunFact::Died);
    let again = world.evaluate();
    assert_eq!(
        again.requested().next().map(|d| d.reason.as_str()),
        Some("requested: the 2026-11-02 01:00 UTC tick passed and it has no inputs")
    );
}
