//! What the command line prints: text tables for people, JSON for scripts.
//!
//! The JSON shapes are defined here, not in core, and are part of Freshet's interface: fields are
//! added, never renamed or removed.

use std::io::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use freshet_core::executor::StepOutcome;
use freshet_core::planner::{self, AssetStatus, Lineage};
use freshet_core::{AssetDef, CauseCategory, Project, RunReport, StaleCause};
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
    /// Why it is stale (empty otherwise).
    pub causes: Vec<CauseJson>,
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

fn status_json(def: &AssetDef, status: &AssetStatus, lineage: &Lineage) -> StatusJson {
    StatusJson {
        key: def.key.to_string(),
        kind: def.kind.as_str(),
        group: def.group.clone(),
        status: status.status.as_str(),
        causes: status.causes.iter().map(CauseJson::from).collect(),
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

/// Prints every asset's status, upstream first.
pub fn print_status(project: &Project, lineage: &Lineage, json: bool) -> anyhow::Result<()> {
    let graph = project.graph();
    let statuses = planner::statuses(graph, lineage);
    let rows: Vec<(&AssetDef, &AssetStatus)> = graph.iter().zip(&statuses).collect();
    if json {
        let out: Vec<StatusJson> = rows
            .iter()
            .map(|(d, s)| status_json(d, s, lineage))
            .collect();
        return print_json(&out);
    }
    let mut table = vec![
        ["ASSET", "KIND", "STATUS", "UPDATED", "DATA VERSION", "WHY"]
            .map(String::from)
            .to_vec(),
    ];
    for (def, status) in rows {
        let updated = lineage
            .materialization(&def.key)
            .map(|m| m.created_at)
            .or_else(|| lineage.observation(&def.key).map(|o| o.observed_at));
        table.push(vec![
            def.key.to_string(),
            def.kind.to_string(),
            status.status.as_str().to_owned(),
            updated
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_else(|| "-".into()),
            lineage
                .data_version(&def.key)
                .map(|v| short(v.as_str()).to_owned())
                .unwrap_or_else(|| "-".into()),
            explain(status),
        ]);
    }
    print_table(&table)
}

/// A status's causes in words.
fn explain(status: &AssetStatus) -> String {
    if status.causes.is_empty() {
        return match status.status {
            planner::Status::Missing => "never materialized".to_owned(),
            _ => String::new(),
        };
    }
    status
        .causes
        .iter()
        .map(|c| match (c.category, &c.dependency) {
            (CauseCategory::Data, Some(dep)) => format!("input {dep} has a new data version"),
            (CauseCategory::Code, _) => "its code changed".to_owned(),
            _ => c.reason.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
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
    write_stdout(&out)
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
