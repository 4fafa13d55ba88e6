//! What the command line prints: text tables for people, JSON for scripts (in the shapes of
//! [`crate::json`]).

use std::collections::HashMap;
use std::io::Write as _;

use chrono::{DateTime, Utc};
use freshet_core::executor::StepOutcome;
use freshet_core::model::FreshnessState;
use freshet_core::planner::{
    AssetReport, Lineage, NotRun, NotRunReason, Plan, StepEstimate, StepKind,
};
use freshet_core::{
    AssetDef, AssetKey, AssetKind, Gone, PartitionSummary, Project, RunReport, Status,
};
use serde::Serialize;

use crate::json::{
    AssetJson, LineageJson, PartitionsJson, PlanJson, StatusJson, TotalEstimateJson,
};
use crate::words::{ago, bytes, cause_words, millis, short, time};

/// Prints the status of the assets in `reports` (upstream first).
pub fn print_status(
    project: &Project,
    lineage: &Lineage,
    reports: &[&AssetReport],
    failures: &Failures,
    gone: &std::collections::BTreeMap<AssetKey, Gone>,
    partitions: &std::collections::BTreeMap<AssetKey, PartitionSummary>,
    json: bool,
) -> anyhow::Result<()> {
    let graph = project.graph();
    let rows: Vec<(&AssetDef, &AssetReport)> = reports
        .iter()
        .filter_map(|r| Some((graph.get(&r.key)?, *r)))
        .collect();
    if json {
        let out: Vec<StatusJson> = rows
            .iter()
            .map(|(d, r)| {
                let mut json = StatusJson::new(d, r, lineage, failures.get(d.key.as_str()));
                json.load_error = project.load_error(&d.key).map(str::to_owned);
                json.files_gone = gone.get(&d.key).map(files_gone_json);
                json.partitions = partitions.get(&d.key).map(PartitionsJson::from);
                shown_in_json(&mut json, r, gone.get(&d.key));
                json
            })
            .collect();
        return print_json(&out);
    }
    let mut table = vec![
        [
            "ASSET",
            "KIND",
            "STATUS",
            "FRESHNESS",
            "UPDATED",
            "DATA TIME",
            "WHY",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for (def, report) in rows {
        let updated = lineage
            .materialization(&def.key)
            .map(|m| m.created_at)
            .or_else(|| lineage.observation(&def.key).map(|o| o.observed_at));
        table.push(vec![
            def.key.to_string(),
            def.kind.to_string(),
            Gone::shown(gone.get(&def.key), report)
                .0
                .as_str()
                .to_owned(),
            match Gone::shown(gone.get(&def.key), report).1 {
                FreshnessState::None => "-".to_owned(),
                state => state.as_str().to_owned(),
            },
            updated.map(time).unwrap_or_else(|| "-".into()),
            report.data_time.map(time).unwrap_or_else(|| "-".into()),
            match partitions.get(&def.key) {
                Some(summary) => partitions_why(summary, failures.get(def.key.as_str())),
                None => why(
                    report,
                    project.load_error(&def.key),
                    gone.get(&def.key),
                    failures.get(def.key.as_str()),
                ),
            },
        ]);
    }
    print_table(&table)
}

/// Each asset's latest failed attempt after its current version, by key.
pub type Failures = std::collections::HashMap<String, freshet_core::store::Failure>;

/// The WHY column of a partitioned asset: its partitions in brief (`freshet partitions KEY`
/// lists them), after its latest failed attempt if any.
fn partitions_why(
    summary: &PartitionSummary,
    failure: Option<&freshet_core::store::Failure>,
) -> String {
    let text = format!("partitions by {}: {}", summary.by, summary.summary);
    match failure {
        Some(f) => format!("{}; {text}", failure_words(f, 80)),
        None => text,
    }
}

/// The WHY column: the latest attempt if it failed, causes and what upstream is behind, in
/// words.
fn why(
    report: &AssetReport,
    load_error: Option<&str>,
    gone: Option<&Gone>,
    failure: Option<&freshet_core::store::Failure>,
) -> String {
    let mut parts = Vec::new();
    if let Some(error) = load_error {
        parts.push(format!("its file does not load: {}", cut(error, 80)));
    }
    if let Some(f) = failure {
        parts.push(failure_words(f, 80));
    }
    if let Some(gone) = gone {
        parts.push(gone_words(gone));
    } else if report.status == Status::Missing {
        parts.push("never materialized".to_owned());
    }
    if !report.causes.is_empty() {
        parts.push(report.causes_words());
    }
    if !report.upstream.is_empty() {
        parts.push(format!("upstream {}", report.upstream_words()));
    }
    parts.join("; ")
}

/// Explains one asset in words: status, each cause with its times and versions, what upstream is
/// behind, freshness, data time and the current version.
pub fn print_explanation(
    project: &Project,
    lineage: &Lineage,
    report: &AssetReport,
    failure: Option<&freshet_core::store::Failure>,
    gone: Option<&Gone>,
    now: DateTime<Utc>,
    json: bool,
) -> anyhow::Result<()> {
    let graph = project.graph();
    let Some(def) = graph.get(&report.key) else {
        return Ok(());
    };
    if json {
        let mut json = StatusJson::new(def, report, lineage, failure);
        json.load_error = project.load_error(&def.key).map(str::to_owned);
        json.files_gone = gone.map(files_gone_json);
        shown_in_json(&mut json, report, gone);
        return print_json(&json);
    }
    let mut out = status_words(def, lineage, report, gone);
    if let Some(error) = project.load_error(&def.key) {
        out.push_str(&format!("  its file does not load: {error}\n"));
    }
    if let Some(f) = failure {
        out.push_str(&format!("  {}\n", failure_words(f, usize::MAX)));
    }
    out.push_str(&freshness_words(def, report, gone, now));
    out.push_str(&version_words(def, lineage));
    write_stdout(&out)
}

/// The first part of `status KEY`: what the asset is, its status and why.
fn status_words(
    def: &AssetDef,
    lineage: &Lineage,
    report: &AssetReport,
    gone: Option<&Gone>,
) -> String {
    let mut out = format!("{} ({}, group {})\n", def.key, def.kind, def.group);
    if let Some(d) = &def.description {
        out.push_str(&format!("  {d}\n"));
    }
    out.push_str(&format!(
        "status: {}\n",
        Gone::shown(gone, report).0.as_str()
    ));
    match (report.status, def.kind) {
        _ if gone.is_some() => {
            out.push_str(&format!("  {}\n", gone.map(gone_words).unwrap_or_default()));
        }
        (Status::Missing, AssetKind::Source) => {
            out.push_str("  never observed: run `freshet observe` or `freshet materialize`\n")
        }
        (Status::Missing, _) => out.push_str("  never materialized\n"),
        _ => {}
    }
    for cause in &report.causes {
        let detail = cause_words(def, cause, lineage);
        out.push_str(&format!("  - {detail}\n"));
    }
    if !report.upstream.is_empty() {
        out.push_str("upstream behind:\n");
        for u in &report.upstream {
            out.push_str(&format!("  - {} {}\n", u.key, u.reason));
        }
    }
    out
}

/// The freshness and data time of `status KEY`.
fn freshness_words(
    def: &AssetDef,
    report: &AssetReport,
    gone: Option<&Gone>,
    now: DateTime<Utc>,
) -> String {
    let f = &report.freshness;
    let mut out = format!("freshness: {}", Gone::shown(gone, report).1);
    if let Some(policy) = &f.policy {
        out.push_str(&format!(" (policy {policy})"));
    }
    out.push('\n');
    if let Some(last) = f.last_updated {
        let verb = if def.kind == AssetKind::Source {
            "changed"
        } else {
            "materialized"
        };
        out.push_str(&format!(
            "  last {verb} {} ({} ago)\n",
            time(last),
            ago(now - last)
        ));
    }
    if let Some(change) = f.next_change {
        out.push_str(&format!(
            "  becomes {} at {} (in {})\n",
            change.state,
            time(change.at),
            ago(change.at - now)
        ));
    }
    match report.data_time {
        Some(t) => out.push_str(&format!(
            "data time: {} (the oldest source data it reflects)\n",
            time(t)
        )),
        None => out.push_str("data time: unknown\n"),
    }
    out
}

/// The current version of `status KEY`.
fn version_words(def: &AssetDef, lineage: &Lineage) -> String {
    let mut out = String::new();
    if let Some(m) = lineage.materialization(&def.key) {
        out.push_str(&format!(
            "current version: {} by run {}, {} rows, {}, in {}\n  {}\n",
            short(m.data_version.as_str()),
            m.run_id,
            m.row_count,
            bytes(m.byte_size),
            millis(m.duration_us),
            m.location
        ));
    }
    if let Some(o) = lineage.observation(&def.key) {
        out.push_str(&format!(
            "current version: {} first observed {}, last checked {}, {} file{}, {}\n",
            short(o.data_version.as_str()),
            time(o.observed_at),
            time(o.checked_at),
            o.file_count,
            plural(o.file_count),
            bytes(o.byte_size)
        ));
    }
    out
}

/// Prints a plan: steps in order with reasons and estimates, and what will not run and why.
/// With `everything`, fresh assets and sources are counted rather than listed.
///
/// `notes` adds words to fresh assets left out, such as what upstream of them is behind.
pub fn print_plan(
    plan: &Plan,
    reasons: &[Vec<String>],
    estimates: &[StepEstimate],
    everything: bool,
    notes: &HashMap<AssetKey, String>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        return print_json(&PlanJson::new(plan, reasons, estimates));
    }
    let mut out = steps_text(plan, reasons, estimates);
    out.push_str(&not_run_text(plan, everything, notes));
    write_stdout(&out)
}

/// The steps of a plan: a line of totals, then a table.
fn steps_text(plan: &Plan, reasons: &[Vec<String>], estimates: &[StepEstimate]) -> String {
    if plan.steps.is_empty() {
        return "nothing to materialize\n".to_owned();
    }
    let total = TotalEstimateJson::new(estimates);
    let count = |k: StepKind| plan.steps.iter().filter(|s| s.kind == k).count();
    let mut kinds = Vec::new();
    for (k, name) in [
        (StepKind::Requested, "requested"),
        (StepKind::Needed, "needed"),
        (StepKind::Conditional, "conditional"),
    ] {
        let n = count(k);
        if n > 0 {
            kinds.push(format!("{n} {name}"));
        }
    }
    let without = match total.steps_without_estimate {
        0 => String::new(),
        n => format!(" plus {n} step{} without history", plural(n)),
    };
    let mut out = format!(
        "{} step{} ({}); estimated {}{without}, reading {}\n",
        plan.steps.len(),
        plural(plan.steps.len()),
        kinds.join(", "),
        millis(total.duration_ms * 1000),
        bytes(total.bytes_read)
    );
    let mut table = vec![
        ["#", "ASSET", "RUNS", "ESTIMATE", "READS", "WHY"]
            .map(String::from)
            .to_vec(),
    ];
    for (n, ((step, reasons), e)) in plan.steps.iter().zip(reasons).zip(estimates).enumerate() {
        table.push(vec![
            (n + 1).to_string(),
            step.key.to_string(),
            match step.kind {
                StepKind::Requested => "requested",
                StepKind::Needed => "yes",
                StepKind::Conditional => "if inputs change",
            }
            .to_owned(),
            e.duration.map_or("?".to_owned(), |d| {
                millis(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            }),
            e.bytes_read.map_or("?".to_owned(), bytes),
            reasons.join("; "),
        ]);
    }
    out.push_str(&table_text(&table));
    out
}

/// What a plan leaves out: listed (with `everything`, only the blocked ones), then counted.
fn not_run_text(plan: &Plan, everything: bool, notes: &HashMap<AssetKey, String>) -> String {
    let mut out = String::new();
    let listed: Vec<&NotRun> = plan
        .not_run
        .iter()
        .filter(|n| !everything || matches!(n.reason, NotRunReason::Blocked { .. }))
        .collect();
    if !listed.is_empty() {
        out.push_str("not run:\n");
        for n in &listed {
            match notes.get(&n.key) {
                Some(note) => out.push_str(&format!("  {}: {} ({note})\n", n.key, n.reason)),
                None => out.push_str(&format!("  {}: {}\n", n.key, n.reason)),
            }
        }
    }
    if everything {
        let count =
            |reason: NotRunReason| plan.not_run.iter().filter(|n| n.reason == reason).count();
        let fresh = count(NotRunReason::Fresh);
        let sources = count(NotRunReason::Source);
        out.push_str(&format!(
            "not run: {fresh} fresh asset{}; {sources} source{} (observed at the start of the run)\n",
            plural(fresh),
            plural(sources),
        ));
    }
    out
}

/// `"s"` unless `n` is 1.
fn plural<N: PartialEq + From<u8>>(n: N) -> &'static str {
    if n == N::from(1) { "" } else { "s" }
}

/// Lists assets, upstream first.
pub fn print_assets(project: &Project, json: bool) -> anyhow::Result<()> {
    let graph = project.graph();
    if json {
        return print_json(&graph.iter().map(AssetJson::from).collect::<Vec<_>>());
    }
    let mut table = vec![
        ["ASSET", "KIND", "GROUP", "DEPENDS ON", "DESCRIPTION"]
            .map(String::from)
            .to_vec(),
    ];
    for d in graph.iter() {
        table.push(vec![
            d.key.to_string(),
            d.kind.to_string(),
            d.group.clone(),
            d.deps
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            d.description.clone().unwrap_or_default(),
        ]);
    }
    print_table(&table)
}

/// Prints the dependency graph as text, JSON or Graphviz DOT.
pub fn print_lineage(project: &Project, json: bool, dot: bool) -> anyhow::Result<()> {
    let graph = project.graph();
    if json {
        return print_json(&LineageJson::from(graph));
    }
    let edges = || {
        graph
            .iter()
            .flat_map(|d| d.deps.iter().map(move |dep| (dep, &d.key)))
    };
    let mut out = String::new();
    if dot {
        out.push_str("digraph freshet {\n  rankdir=LR;\n  node [shape=box];\n");
        for d in graph.iter() {
            out.push_str(&format!(
                "  \"{}\" [label=\"{}\\n{}\"];\n",
                d.key, d.key, d.kind
            ));
        }
        for (from, to) in edges() {
            out.push_str(&format!("  \"{from}\" -> \"{to}\";\n"));
        }
        out.push_str("}\n");
    } else {
        for d in graph.iter() {
            if d.deps.is_empty() {
                out.push_str(&format!("{} ({})\n", d.key, d.kind));
            } else {
                let deps: Vec<_> = d.deps.iter().map(ToString::to_string).collect();
                out.push_str(&format!("{} ({}) <- {}\n", d.key, d.kind, deps.join(", ")));
            }
        }
    }
    write_stdout(&out)
}

/// A one-line summary of a run.
pub fn run_summary(report: &RunReport) -> String {
    let count = |f: fn(&StepOutcome) -> bool| report.steps.iter().filter(|(_, o)| f(o)).count();
    let materialized = count(|o| matches!(o, StepOutcome::Materialized(_)));
    let skipped = count(|o| matches!(o, StepOutcome::Skipped(_)));
    let failed = count(|o| matches!(o, StepOutcome::Failed { .. }));
    let cancelled = count(|o| matches!(o, StepOutcome::Cancelled));
    let run = report
        .run_id
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut line = format!("run {run}: materialized {materialized}");
    if skipped > 0 {
        line.push_str(&format!(", skipped {skipped}"));
    }
    if failed > 0 {
        line.push_str(&format!(", FAILED {failed}"));
    }
    if cancelled > 0 {
        line.push_str(&format!(", cancelled {cancelled}"));
    }
    line
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_stdout(&text)
}

pub(crate) fn print_table(rows: &[Vec<String>]) -> anyhow::Result<()> {
    write_stdout(&table_text(rows))
}

fn table_text(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Writes to stdout, treating a closed pipe (`freshet status | head`) as success.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// "last attempt failed at TIME in run R: ERROR", the error cut to `max` characters.
fn failure_words(f: &freshet_core::store::Failure, max: usize) -> String {
    format!(
        "last attempt failed at {} in run {}: {}",
        time(f.at),
        f.run_id,
        cut(&f.error, max)
    )
}

/// [`Gone::shown`] in `status --json`.
fn shown_in_json(json: &mut StatusJson, report: &AssetReport, gone: Option<&Gone>) {
    let (status, freshness) = Gone::shown(gone, report);
    json.status = status.as_str();
    json.freshness.state = freshness.as_str();
    if gone.is_some() {
        json.summary = Gone::SUMMARY.to_owned();
    }
}

/// A source whose files are gone, in words: "its files are gone: no files match /data/raw.csv
/// (last seen 2026-12-03 10:02:00 UTC)"; for one never observed, "no files match ...".
fn gone_words(gone: &Gone) -> String {
    match gone.last_observed_at {
        Some(t) => format!(
            "its files are gone: {} (last seen {})",
            gone.reason,
            time(t)
        ),
        None => gone.reason.clone(),
    }
}

/// `files_gone` in `status --json`.
fn files_gone_json(gone: &Gone) -> crate::json::FilesGoneJson {
    crate::json::FilesGoneJson::new(gone, crate::json::Precision::Seconds)
}

/// `text` cut to `max` characters, an ellipsis marking the cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        let kept: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use chrono::{DateTime, TimeZone as _, Utc};
    use freshet_core::executor::{SkipReason, StepOutcome};
    use freshet_core::model::{CodeVersion, DataVersion, InputVersion, MaterializationId, Origin};
    use freshet_core::planner::{NotRun, NotRunReason, Plan, PlannedStep, StepEstimate, StepKind};
    use freshet_core::{
        AssetDef, AssetKey, AssetKind, CauseCategory, Lineage, Materialization, Observation, RunId,
        RunReport, StaleCause,
    };

    use super::{not_run_text, run_summary, steps_text, table_text};
    use crate::words::{ago, bytes, cause_words, millis, short, time};

    fn key(k: &str) -> AssetKey {
        AssetKey::parse(k).unwrap()
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, h, m, 12).unwrap()
    }

    #[test]
    fn sizes_durations_and_versions_for_people() {
        for (n, text) in [
            (0, "0 B"),
            (999, "999 B"),
            (1_000, "1.0 KB"),
            (12_345, "12.3 KB"),
            (4_100_000, "4.1 MB"),
            (7_300_000_000, "7.3 GB"),
        ] {
            assert_eq!(bytes(n), text, "{n}");
        }
        assert_eq!(millis(0), "0 ms");
        assert_eq!(millis(1_999), "1 ms");
        assert_eq!(millis(120_500), "120 ms");
        assert_eq!(short("1a2b3c4d5e6f7a8b9c0d"), "1a2b3c4d5e6f");
        assert_eq!(short("1a2b"), "1a2b");
        assert_eq!(time(at(10, 3)), "2026-11-22 10:03:12 UTC");
    }

    #[test]
    fn ago_shows_the_largest_two_units() {
        for (secs, text) in [
            (-5, "0s"),
            (45, "45s"),
            (75, "1m 15s"),
            (3 * 3600 + 12 * 60 + 5, "3h 12m"),
            (2 * 86_400 + 5 * 3600 + 59 * 60, "2d 5h"),
        ] {
            assert_eq!(ago(chrono::Duration::seconds(secs)), text, "{secs}");
        }
    }

    #[test]
    fn tables_align_columns_and_trim_line_ends() {
        let rows = [
            vec!["ASSET".to_owned(), "KIND".to_owned(), "WHY".to_owned()],
            vec!["daily_revenue".to_owned(), "sql".to_owned(), String::new()],
            vec![
                "raw".to_owned(),
                "source".to_owned(),
                "never materialized".to_owned(),
            ],
        ];
        assert_eq!(
            table_text(&rows),
            "ASSET          KIND    WHY\n\
             daily_revenue  sql\n\
             raw            source  never materialized\n"
        );
    }

    #[test]
    fn a_run_summary_counts_what_happened() {
        let mut report = RunReport {
            run_id: Some(RunId::new("0193-run")),
            steps: vec![(key("a"), StepOutcome::Skipped(SkipReason::InputsUnchanged))],
            interrupted: false,
        };
        assert_eq!(
            run_summary(&report),
            "run 0193-run: materialized 0, skipped 1"
        );
        report.steps.push((
            key("b"),
            StepOutcome::Failed {
                error: "boom".to_owned(),
                retryable: false,
            },
        ));
        assert_eq!(
            run_summary(&report),
            "run 0193-run: materialized 0, skipped 1, FAILED 1"
        );
    }

    fn materialization(asset: &str, input: &str, consumed: &str) -> Materialization {
        Materialization {
            id: MaterializationId::new("m1"),
            asset: key(asset),
            run_id: RunId::new("r1"),
            code_version: CodeVersion::new("c0de00000000aaaa"),
            data_version: DataVersion::new("da7a00000000bbbb"),
            inputs: vec![InputVersion {
                asset: key(input),
                data_version: DataVersion::new(consumed),
            }],
            location: "file:///data/x.parquet".to_owned(),
            row_count: 3,
            byte_size: 1200,
            duration_us: 12_500,
            created_at: at(9, 0),
            data_time: None,
            details: Default::default(),
            collected_at: None,
        }
    }

    #[test]
    fn a_data_cause_names_the_versions_and_when_the_input_changed() {
        let def = AssetDef::new(
            key("clean"),
            AssetKind::Sql,
            Origin::File {
                path: "sql/clean.sql".to_owned(),
            },
        )
        .with_deps([key("raw")]);
        let mut lineage = Lineage::new();
        lineage.set_materialization(materialization("clean", "raw", "1a2b3c4d5e6f0000"));
        lineage.set_observation(Observation {
            asset: key("raw"),
            data_version: DataVersion::new("5e6f7a8b9c0d1111"),
            file_count: 1,
            byte_size: 10,
            observed_at: at(10, 3),
            checked_at: at(10, 4),
        });
        let cause = StaleCause {
            category: CauseCategory::Data,
            reason: "has a new dependency data version".to_owned(),
            dependency: Some(key("raw")),
        };
        assert_eq!(
            cause_words(&def, &cause, &lineage),
            "input raw has a new data version since observed 2026-11-22 10:03:12 UTC: \
             consumed 1a2b3c4d5e6f, now 5e6f7a8b9c0d"
        );
        let code = StaleCause {
            category: CauseCategory::Code,
            reason: "has a new code version".to_owned(),
            dependency: None,
        };
        let mut edited = def.clone();
        edited.code_version = Some(CodeVersion::new("9999aaaabbbbcccc"));
        assert_eq!(
            cause_words(&edited, &code, &lineage),
            "has a new code version: materialized at 2026-11-22 09:00:12 UTC with c0de00000000, \
             now 9999aaaabbbb"
        );
    }

    #[test]
    fn a_plan_in_words() {
        let mut plan = Plan::default();
        plan.steps = vec![
            PlannedStep {
                key: key("clean"),
                kind: StepKind::Needed,
                partitions: None,
            },
            PlannedStep {
                key: key("report"),
                kind: StepKind::Conditional,
                partitions: None,
            },
        ];
        let reasons = vec![
            vec!["has a new code version".to_owned()],
            vec!["upstream clean will change".to_owned()],
        ];
        let estimates = [
            StepEstimate {
                duration: Some(Duration::from_millis(1500)),
                bytes_read: Some(2_000),
            },
            StepEstimate::default(),
        ];
        assert_eq!(
            steps_text(&plan, &reasons, &estimates),
            "2 steps (1 needed, 1 conditional); estimated 1500 ms plus 1 step without history, \
             reading 2.0 KB\n\
             #  ASSET   RUNS              ESTIMATE  READS   WHY\n\
             1  clean   yes               1500 ms   2.0 KB  has a new code version\n\
             2  report  if inputs change  ?         ?       upstream clean will change\n"
        );
        assert_eq!(
            steps_text(&Plan::default(), &[], &[]),
            "nothing to materialize\n"
        );

        plan.not_run = vec![
            NotRun {
                key: key("raw"),
                reason: NotRunReason::Source,
            },
            NotRun {
                key: key("other"),
                reason: NotRunReason::Fresh,
            },
            NotRun {
                key: key("blocked"),
                reason: NotRunReason::Blocked {
                    input: key("never"),
                },
            },
        ];
        let notes = HashMap::from([(key("other"), "upstream raw has new data".to_owned())]);
        // Everything: only what is blocked is listed, the rest counted.
        assert_eq!(
            not_run_text(&plan, true, &notes),
            "not run:\n  blocked: blocked: input never has never been materialized and is not in \
             the selection\n\
             not run: 1 fresh asset; 1 source (observed at the start of the run)\n"
        );
        // A selection: each is listed, with its note.
        let listed = not_run_text(&plan, false, &notes);
        assert!(
            listed.contains("  other: fresh (upstream raw has new data)\n"),
            "{listed}"
        );
        assert!(listed.contains("  raw: source: observed at the start of the run\n"));
        assert!(!listed.contains("fresh asset"), "{listed}");
    }
}
