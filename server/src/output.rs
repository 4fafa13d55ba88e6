//! What the command line prints: text tables for people, JSON for scripts.
//!
//! The JSON shapes are defined here, not in core, and are part of Freshet's interface: fields are
//! added, never renamed or removed.

use std::collections::HashMap;
use std::io::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use freshet_core::executor::StepOutcome;
use freshet_core::freshness::{Freshness, FreshnessState};
use freshet_core::planner::{
    AssetReport, Lineage, NotRun, NotRunReason, Plan, PlannedStep, StepEstimate, StepKind,
    UpstreamCategory,
};
use freshet_core::{AssetDef, AssetKey, CauseCategory, Project, RunReport, StaleCause, Status};
use serde::Serialize;

/// One asset in `status --json`.
#[derive(Debug, Serialize)]
pub struct StatusJson {
    /// The asset key.
    pub key: String,
    /// `source`, `sql` or `rust`.
    pub kind: &'static str,
    /// Its group.
    pub group: String,
    /// `fresh`, `stale` or `missing`.
    pub status: &'static str,
    /// Why it is stale (empty otherwise), in a stable order: code, data, dependencies, then by
    /// dependency key.
    pub causes: Vec<CauseJson>,
    /// Ancestors that are behind, most upstream first.
    pub upstream: Vec<UpstreamJson>,
    /// Whether `upstream` was cut short (`status KEY` lists all).
    pub upstream_truncated: bool,
    /// The status in one line of words.
    pub summary: String,
    /// The freshness policy's verdict.
    pub freshness: FreshnessJson,
    /// The time of the oldest source data it reflects (RFC 3339, UTC).
    pub data_time: Option<String>,
    /// The current data version, if any.
    pub data_version: Option<String>,
    /// The code version of its definition (`null` for sources).
    pub code_version: Option<String>,
    /// When its current version was written (RFC 3339, UTC).
    pub last_materialized_at: Option<String>,
    /// For sources: when its current data version was first observed.
    pub last_observed_at: Option<String>,
    /// URL of the current version's Parquet object.
    pub location: Option<String>,
}

/// One stale cause in `status --json`.
#[derive(Debug, Serialize)]
pub struct CauseJson {
    /// `code`, `data` or `dependencies`.
    pub category: &'static str,
    /// Stable wording, e.g. `has a new dependency data version`.
    pub reason: String,
    /// The dependency involved, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
}

impl From<&StaleCause> for CauseJson {
    fn from(c: &StaleCause) -> Self {
        Self {
            category: c.category.as_str(),
            reason: c.reason.clone(),
            dependency: c.dependency.as_ref().map(ToString::to_string),
        }
    }
}

/// One ancestor that is behind, in `status --json`.
#[derive(Debug, Serialize)]
pub struct UpstreamJson {
    /// The ancestor.
    pub key: String,
    /// `missing`, `code`, `data` or `dependencies`.
    pub category: UpstreamCategory,
    /// In words, following the key: `has newer data not yet propagated`.
    pub reason: String,
}

/// Freshness in `status --json`.
#[derive(Debug, Serialize)]
pub struct FreshnessJson {
    /// `pass`, `warn`, `fail`, `unknown` or `none`.
    pub state: &'static str,
    /// The policy in compact form, e.g. `max_age=1d warn_after=12h`.
    pub policy: Option<String>,
    /// The latest materialization (for a source: its latest change).
    pub last_updated: Option<String>,
    /// When the state next changes if nothing is materialized, and to what.
    pub next_change_at: Option<String>,
    /// The state it changes to then.
    pub next_state: Option<&'static str>,
}

impl From<&freshet_core::planner::UpstreamIssue> for UpstreamJson {
    fn from(u: &freshet_core::planner::UpstreamIssue) -> Self {
        Self {
            key: u.key.to_string(),
            category: u.category,
            reason: u.reason.clone(),
        }
    }
}

impl From<&Freshness> for FreshnessJson {
    fn from(f: &Freshness) -> Self {
        Self {
            state: f.state.as_str(),
            policy: f.policy.clone(),
            last_updated: f.last_updated.map(rfc3339),
            next_change_at: f.next_change.map(|c| rfc3339(c.at)),
            next_state: f.next_change.map(|c| c.state.as_str()),
        }
    }
}

fn status_json(def: &AssetDef, report: &AssetReport, lineage: &Lineage) -> StatusJson {
    StatusJson {
        key: def.key.to_string(),
        kind: def.kind.as_str(),
        group: def.group.clone(),
        status: report.status.as_str(),
        causes: report.causes.iter().map(CauseJson::from).collect(),
        upstream: report.upstream.iter().map(UpstreamJson::from).collect(),
        upstream_truncated: report.upstream_truncated,
        summary: report.summary(),
        freshness: FreshnessJson::from(&report.freshness),
        data_time: report.data_time.map(rfc3339),
        data_version: lineage.data_version(&def.key).map(ToString::to_string),
        code_version: def.code_version.as_ref().map(ToString::to_string),
        last_materialized_at: lineage
            .materialization(&def.key)
            .map(|m| rfc3339(m.created_at)),
        last_observed_at: lineage
            .observation(&def.key)
            .map(|o| rfc3339(o.observed_at)),
        location: lineage
            .materialization(&def.key)
            .map(|m| m.location.clone()),
    }
}

/// Prints the status of the assets in `reports` (upstream first).
pub fn print_status(
    project: &Project,
    lineage: &Lineage,
    reports: &[&AssetReport],
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
            .map(|(d, r)| status_json(d, r, lineage))
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
            report.status.as_str().to_owned(),
            match report.freshness.state {
                FreshnessState::None => "-".to_owned(),
                state => state.as_str().to_owned(),
            },
            updated.map(time).unwrap_or_else(|| "-".into()),
            report.data_time.map(time).unwrap_or_else(|| "-".into()),
            why(report),
        ]);
    }
    print_table(&table)
}

/// The WHY column: causes and what upstream is behind, in words.
fn why(report: &AssetReport) -> String {
    let mut parts = Vec::new();
    if report.status == Status::Missing {
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

/// One stale cause in words with its versions and times: "input raw_orders has a new data version
/// since observed 2026-11-22 10:03:12 UTC: consumed 1a2b3c4d5e6f, now 5e6f7a8b9c0d".
pub fn cause_words(def: &AssetDef, cause: &StaleCause, lineage: &Lineage) -> String {
    let m = lineage.materialization(&def.key);
    match (cause.category, &cause.dependency, m) {
        (CauseCategory::Code, _, Some(m)) => format!(
            "has a new code version: materialized at {} with {}, now {}",
            time(m.created_at),
            short(m.code_version.as_str()),
            def.code_version.as_ref().map_or("-", |v| short(v.as_str()))
        ),
        (CauseCategory::Data, Some(dep), Some(m)) => {
            let consumed = m
                .inputs
                .iter()
                .find(|i| &i.asset == dep)
                .map_or("-", |i| short(i.data_version.as_str()));
            let current = lineage.data_version(dep).map_or("-", |v| short(v.as_str()));
            let since = lineage
                .materialization(dep)
                .map(|d| format!("materialized {}", time(d.created_at)))
                .or_else(|| {
                    lineage
                        .observation(dep)
                        .map(|o| format!("observed {}", time(o.observed_at)))
                })
                .unwrap_or_default();
            format!(
                "input {dep} has a new data version since {since}: consumed {consumed}, now {current}"
            )
        }
        _ => cause.describe(),
    }
}

/// Explains one asset in words: status, each cause with its times and versions, what upstream is
/// behind, freshness, data time and the current version.
pub fn print_explanation(
    project: &Project,
    lineage: &Lineage,
    report: &AssetReport,
    now: DateTime<Utc>,
    json: bool,
) -> anyhow::Result<()> {
    let graph = project.graph();
    let Some(def) = graph.get(&report.key) else {
        return Ok(());
    };
    if json {
        return print_json(&status_json(def, report, lineage));
    }
    let mut out = format!("{} ({}, group {})\n", def.key, def.kind, def.group);
    if let Some(d) = &def.description {
        out.push_str(&format!("  {d}\n"));
    }
    let m = lineage.materialization(&def.key);
    out.push_str(&format!("status: {}\n", report.status.as_str()));
    match (report.status, def.kind) {
        (Status::Missing, freshet_core::AssetKind::Source) => {
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
    let f = &report.freshness;
    out.push_str(&format!("freshness: {}", f.state));
    if let Some(policy) = &f.policy {
        out.push_str(&format!(" (policy {policy})"));
    }
    out.push('\n');
    if let Some(last) = f.last_updated {
        let verb = if def.kind == freshet_core::AssetKind::Source {
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
    if let Some(m) = m {
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
            if o.file_count == 1 { "" } else { "s" },
            bytes(o.byte_size)
        ));
    }
    write_stdout(&out)
}

/// A plan in `plan --json`.
#[derive(Debug, Serialize)]
struct PlanJson<'a> {
    steps: Vec<PlanStepJson<'a>>,
    not_run: &'a [NotRun],
    estimate: TotalEstimateJson,
}

#[derive(Debug, Serialize)]
struct PlanStepJson<'a> {
    #[serde(flatten)]
    step: &'a PlannedStep,
    reasons: &'a [String],
    estimate: StepEstimate,
}

#[derive(Debug, Serialize)]
struct TotalEstimateJson {
    /// Sum of the steps' estimates that are known.
    duration_ms: u64,
    bytes_read: u64,
    /// Steps without history, whose cost is not in the totals.
    steps_without_estimate: usize,
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
    let total = TotalEstimateJson {
        duration_ms: estimates
            .iter()
            .filter_map(|e| e.duration)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .sum(),
        bytes_read: estimates.iter().filter_map(|e| e.bytes_read).sum(),
        steps_without_estimate: estimates
            .iter()
            .filter(|e| e.duration.is_none() || e.bytes_read.is_none())
            .count(),
    };
    if json {
        return print_json(&PlanJson {
            steps: plan
                .steps
                .iter()
                .zip(reasons)
                .zip(estimates)
                .map(|((step, reasons), e)| PlanStepJson {
                    step,
                    reasons,
                    estimate: *e,
                })
                .collect(),
            not_run: &plan.not_run,
            estimate: total,
        });
    }
    let mut out = String::new();
    if plan.steps.is_empty() {
        out.push_str("nothing to materialize\n");
    } else {
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
        out.push_str(&format!(
            "{} step{} ({}); estimated {}{}, reading {}\n",
            plan.steps.len(),
            if plan.steps.len() == 1 { "" } else { "s" },
            kinds.join(", "),
            millis(total.duration_ms * 1000),
            if total.steps_without_estimate > 0 {
                format!(
                    " plus {} step{} without history",
                    total.steps_without_estimate,
                    if total.steps_without_estimate == 1 {
                        ""
                    } else {
                        "s"
                    }
                )
            } else {
                String::new()
            },
            bytes(total.bytes_read)
        ));
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
    }
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
        let fresh = plan
            .not_run
            .iter()
            .filter(|n| n.reason == NotRunReason::Fresh)
            .count();
        let sources = plan
            .not_run
            .iter()
            .filter(|n| n.reason == NotRunReason::Source)
            .count();
        out.push_str(&format!(
            "not run: {fresh} fresh asset{}; {sources} source{} (observed at the start of the run)\n",
            if fresh == 1 { "" } else { "s" },
            if sources == 1 { "" } else { "s" },
        ));
    }
    write_stdout(&out)
}

/// A time for people: `2026-11-22 10:03:12 UTC`.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A duration for people, to the largest two units: `3h 12m`, `45s`.
pub fn ago(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m {seconds}s"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// One asset in `assets --json` and `lineage --json`.
#[derive(Debug, Serialize)]
struct AssetJson<'a> {
    key: String,
    kind: &'static str,
    group: &'a str,
    deps: Vec<String>,
    description: Option<&'a str>,
    tags: Vec<&'a str>,
    owners: &'a [String],
    code_version: Option<String>,
    origin: String,
}

impl<'a> From<&'a AssetDef> for AssetJson<'a> {
    fn from(d: &'a AssetDef) -> Self {
        Self {
            key: d.key.to_string(),
            kind: d.kind.as_str(),
            group: &d.group,
            deps: d.deps.iter().map(ToString::to_string).collect(),
            description: d.description.as_deref(),
            tags: d.tags.iter().map(String::as_str).collect(),
            owners: &d.owners,
            code_version: d.code_version.as_ref().map(ToString::to_string),
            origin: d.origin.to_string(),
        }
    }
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

#[derive(Debug, Serialize)]
struct LineageJson<'a> {
    assets: Vec<AssetJson<'a>>,
    edges: Vec<EdgeJson>,
}

#[derive(Debug, Serialize)]
struct EdgeJson {
    from: String,
    to: String,
}

/// Prints the dependency graph as text, JSON or Graphviz DOT.
pub fn print_lineage(project: &Project, json: bool, dot: bool) -> anyhow::Result<()> {
    let graph = project.graph();
    let edges = || {
        graph
            .iter()
            .flat_map(|d| d.deps.iter().map(move |dep| (dep, &d.key)))
    };
    if json {
        let out = LineageJson {
            assets: graph.iter().map(AssetJson::from).collect(),
            edges: edges()
                .map(|(f, t)| EdgeJson {
                    from: f.to_string(),
                    to: t.to_string(),
                })
                .collect(),
        };
        return print_json(&out);
    }
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
    line
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_stdout(&text)
}

fn print_table(rows: &[Vec<String>]) -> anyhow::Result<()> {
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

/// The first 12 characters of a version, enough to tell versions apart by eye.
pub fn short(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}

/// RFC 3339 in UTC with second precision.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A byte count for people: `812 B`, `12.3 KB`, `4.1 MB`.
pub fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} KB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.1} GB", n as f64 / 1e9),
    }
}

/// Microseconds as milliseconds for people.
pub fn millis(us: u64) -> String {
    format!("{} ms", us / 1000)
}
