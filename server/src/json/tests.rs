//! Each shape serializes to the fields, values and order clients read.

use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use freshet_core::freshness::{Freshness, FreshnessState, StateChange};
use freshet_core::model::{CodeVersion, DataVersion, InputVersion, MaterializationId, Origin};
use freshet_core::planner::{NotRun, NotRunReason, PlannedStep, StepEstimate, StepKind};
use freshet_core::store::{
    LogLevel, LogLine, RunKind, RunRecord, RunStatus, StepCounts, StepRecord, StepState,
};
use freshet_core::{
    AssetDef, AssetKey, AssetKind, CauseCategory, Lineage, Materialization, Observation, RunId,
    StaleCause,
};
use serde::Serialize;

use super::*;

/// `value` as the compact JSON a client receives.
fn check(value: &impl Serialize, expect: &str) {
    assert_eq!(serde_json::to_string(value).unwrap(), expect);
}

fn key(k: &str) -> AssetKey {
    AssetKey::parse(k).unwrap()
}

/// 2026-11-22 10:03:12.250 UTC.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 3, 12).unwrap() + chrono::Duration::milliseconds(250)
}

fn data_cause() -> StaleCause {
    StaleCause {
        category: CauseCategory::Data,
        reason: "has a new dependency data version".to_owned(),
        dependency: Some(key("raw")),
    }
}

fn code_cause() -> StaleCause {
    StaleCause {
        category: CauseCategory::Code,
        reason: "has a new code version".to_owned(),
        dependency: None,
    }
}

#[test]
fn the_command_line_leaves_out_a_cause_without_dependency() {
    check(
        &CauseJson::new(&data_cause()),
        r#"{"category":"data","reason":"has a new dependency data version","dependency":"raw"}"#,
    );
    check(
        &CauseJson::new(&code_cause()),
        r#"{"category":"code","reason":"has a new code version"}"#,
    );
}

#[test]
fn the_api_says_null_for_a_cause_without_dependency_and_explains_it() {
    let def = AssetDef::new(
        key("clean"),
        AssetKind::Sql,
        Origin::File {
            path: "sql/clean.sql".to_owned(),
        },
    );
    check(
        &CauseJson::explained(&def, &code_cause(), &Lineage::new()),
        r#"{"category":"code","reason":"has a new code version","dependency":null,"words":"has a new code version"}"#,
    );
    let cause = CauseJson::explained(&def, &data_cause(), &Lineage::new());
    assert_eq!(cause.dependency, Some(Some("raw".to_owned())));
}

#[test]
fn freshness_with_and_without_a_next_change() {
    let f = Freshness {
        state: FreshnessState::Pass,
        last_updated: Some(t0()),
        next_change: Some(StateChange {
            at: t0() + chrono::Duration::hours(12),
            state: FreshnessState::Warn,
        }),
        policy: Some("max_age=1d warn_after=12h".to_owned()),
    };
    check(
        &FreshnessJson::new(&f, Precision::Seconds),
        r#"{"state":"pass","policy":"max_age=1d warn_after=12h","last_updated":"2026-11-22T10:03:12Z","next_change_at":"2026-11-22T22:03:12Z","next_state":"warn"}"#,
    );
    check(
        &FreshnessJson::new(&f, Precision::Micros),
        r#"{"state":"pass","policy":"max_age=1d warn_after=12h","last_updated":"2026-11-22T10:03:12.250000Z","next_change_at":"2026-11-22T22:03:12.250000Z","next_state":"warn"}"#,
    );
    check(
        &FreshnessJson::new(&Freshness::none(), Precision::Micros),
        r#"{"state":"none","policy":null,"last_updated":null,"next_change_at":null,"next_state":null}"#,
    );
}

#[test]
fn a_plan_step_and_what_is_left_out() {
    let step = PlannedStep {
        key: key("clean"),
        kind: StepKind::Conditional,
        partitions: None,
    };
    let reasons = ["upstream raw will change".to_owned()];
    let estimate = StepEstimate {
        duration: Some(Duration::from_micros(1_500_900)),
        bytes_read: Some(2048),
    };
    check(
        &PlanStepJson::new(&step, &reasons, &estimate),
        r#"{"key":"clean","kind":"conditional","reasons":["upstream raw will change"],"estimate":{"duration_ms":1500,"bytes_read":2048}}"#,
    );
    check(
        &StepEstimateJson::from(&StepEstimate::default()),
        r#"{"duration_ms":null,"bytes_read":null}"#,
    );
    let blocked = NotRun {
        key: key("report"),
        reason: NotRunReason::Blocked {
            input: key("never"),
        },
    };
    check(
        &NotRunJson::from(&blocked),
        r#"{"key":"report","reason":"blocked","input":"never"}"#,
    );
    let fresh = NotRun {
        key: key("report"),
        reason: NotRunReason::Fresh,
    };
    check(
        &NotRunJson::from(&fresh),
        r#"{"key":"report","reason":"fresh"}"#,
    );
    check(
        &TotalEstimateJson::new(&[estimate, StepEstimate::default()]),
        r#"{"duration_ms":1500,"bytes_read":2048,"steps_without_estimate":1}"#,
    );
}

#[test]
fn where_an_asset_is_defined() {
    let file = Origin::File {
        path: "sql/marts/daily_revenue.sql".to_owned(),
    };
    check(
        &OriginJson::from(&file),
        r#"{"type":"file","path":"sql/marts/daily_revenue.sql"}"#,
    );
    let rust = Origin::Rust {
        location: "assets/src/demo/sessions.rs:40".to_owned(),
    };
    check(
        &OriginJson::from(&rust),
        r#"{"type":"rust","location":"assets/src/demo/sessions.rs:40"}"#,
    );
}

#[test]
fn versions_of_an_asset_and_of_a_source() {
    let m = Materialization {
        id: MaterializationId::new("m1"),
        asset: key("clean"),
        run_id: RunId::new("r1"),
        code_version: CodeVersion::new("c0de"),
        data_version: DataVersion::new("da7a"),
        inputs: vec![InputVersion {
            asset: key("raw"),
            data_version: DataVersion::new("f00d"),
        }],
        location: "file:///d/clean/m1/".to_owned(),
        row_count: 61,
        byte_size: 4567,
        duration_us: 12_000,
        created_at: t0(),
        data_time: None,
        details: freshet_core::model::OutputDetails {
            file_count: 2,
            schema: vec![freshet_core::model::Column {
                name: "n".to_owned(),
                data_type: "Int64".to_owned(),
                nullable: false,
            }],
            metadata: [
                ("note".to_owned(), "ok".into()),
                ("sessions".to_owned(), 412.into()),
            ]
            .into(),
        },
        collected_at: Some(t0()),
    };
    check(
        &VersionJson::Materialization(MaterializationJson::from(&m)),
        r#"{"at":"2026-11-22T10:03:12.250000Z","byte_size":4567,"code_version":"c0de","collected_at":"2026-11-22T10:03:12.250000Z","data_time":null,"data_version":"da7a","duration_ms":12.0,"file_count":2,"id":"m1","inputs":[{"asset":"raw","data_version":"f00d"}],"kind":"materialization","location":"file:///d/clean/m1/","metadata":{"note":"ok","sessions":412.0},"row_count":61,"run_id":"r1","schema":[{"name":"n","type":"Int64","nullable":false}]}"#,
    );
    let o = Observation {
        asset: key("raw"),
        data_version: DataVersion::new("f00d"),
        file_count: 2,
        byte_size: 10,
        observed_at: t0(),
        checked_at: t0() + chrono::Duration::seconds(1),
    };
    check(
        &VersionJson::Observation(ObservationJson::new(None, &o)),
        r#"{"at":"2026-11-22T10:03:12.250000Z","byte_size":10,"checked_at":"2026-11-22T10:03:13.250000Z","data_version":"f00d","file_count":2,"id":null,"kind":"observation"}"#,
    );
    check(
        &PageJson {
            items: vec![ObservationJson::new(Some("o1"), &o)],
            next: None,
        },
        r#"{"items":[{"at":"2026-11-22T10:03:12.250000Z","byte_size":10,"checked_at":"2026-11-22T10:03:13.250000Z","data_version":"f00d","file_count":2,"id":"o1","kind":"observation"}],"next":null}"#,
    );
}

#[test]
fn a_run_record() {
    let mut run = RunRecord {
        id: RunId::new("0193"),
        kind: RunKind::Materialize,
        status: RunStatus::Failed,
        selection: "+daily_revenue".to_owned(),
        stale_only: false,
        started_at: t0(),
        finished_at: Some(t0() + chrono::Duration::microseconds(1_234_567)),
        error: Some("1 step failed".to_owned()),
        steps: StepCounts {
            total: 3,
            materialized: 1,
            skipped: 1,
            failed: 1,
            cancelled: 0,
        },
        triggered_by: "schedule nightly".to_owned(),
    };
    check(
        &RunJson::from(&run),
        r#"{"duration_ms":1234.567,"error":"1 step failed","finished_at":"2026-11-22T10:03:13.484567Z","id":"0193","kind":"materialize","selection":"+daily_revenue","stale_only":false,"started_at":"2026-11-22T10:03:12.250000Z","status":"failed","steps":{"cancelled":0,"failed":1,"materialized":1,"skipped":1,"total":3},"triggered_by":"schedule nightly"}"#,
    );
    run.status = RunStatus::Queued;
    run.finished_at = None;
    run.error = None;
    run.selection = String::new();
    let json = serde_json::to_value(RunJson::from(&run)).unwrap();
    assert_eq!(json["duration_ms"], serde_json::Value::Null);
    assert_eq!(json["finished_at"], serde_json::Value::Null);
    assert_eq!(json["selection"], "");
    assert_eq!(json["status"], "queued");
}

#[test]
fn a_step_before_and_after_it_ran() {
    let mut step = StepRecord {
        asset: "clean".to_owned(),
        state: StepState::Pending,
        started_at: None,
        finished_at: None,
        message: None,
        row_count: None,
        byte_size: None,
    };
    check(
        &StepJson::from(&step),
        r#"{"asset":"clean","byte_size":null,"duration_ms":null,"finished_at":null,"message":null,"row_count":null,"started_at":null,"state":"pending"}"#,
    );
    step.state = StepState::Skipped;
    step.started_at = Some(t0());
    step.finished_at = Some(t0() + chrono::Duration::milliseconds(12));
    step.message = Some("inputs unchanged".to_owned());
    check(
        &StepJson::from(&step),
        r#"{"asset":"clean","byte_size":null,"duration_ms":12.0,"finished_at":"2026-11-22T10:03:12.262000Z","message":"inputs unchanged","row_count":null,"started_at":"2026-11-22T10:03:12.250000Z","state":"skipped"}"#,
    );
}

#[test]
fn a_log_line_carries_the_run_id_only_as_a_live_update() {
    let line = LogLine {
        seq: 7,
        at: t0(),
        level: LogLevel::Warn,
        asset: Some("clean".to_owned()),
        message: "skipped clean: inputs unchanged".to_owned(),
    };
    check(
        &LogJson::new(None, &line),
        r#"{"asset":"clean","at":"2026-11-22T10:03:12.250000Z","level":"warn","message":"skipped clean: inputs unchanged","seq":7}"#,
    );
    let run = RunId::new("0193");
    check(
        &LogJson::new(Some(&run), &line),
        r#"{"asset":"clean","at":"2026-11-22T10:03:12.250000Z","level":"warn","message":"skipped clean: inputs unchanged","run_id":"0193","seq":7}"#,
    );
}

#[test]
fn small_bodies() {
    check(
        &ErrorJson {
            error: "wrong bearer token",
        },
        r#"{"error":"wrong bearer token"}"#,
    );
    check(&AcceptedJson { run_id: "0193" }, r#"{"run_id":"0193"}"#);
    check(&AssetsEventJson {}, "{}");
    check(
        &RunEventJson {
            run_id: "0193",
            status: "succeeded",
        },
        r#"{"run_id":"0193","status":"succeeded"}"#,
    );
    check(
        &StepEventJson {
            asset: "clean",
            message: None,
            run_id: "0193",
            state: "running",
        },
        r#"{"asset":"clean","message":null,"run_id":"0193","state":"running"}"#,
    );
}
