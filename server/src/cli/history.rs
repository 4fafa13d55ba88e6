//! `freshet history KEY [--limit N] [--json]`.

use std::process::ExitCode;

use freshet_core::{AssetKind, Materialization, Project};

use super::open_read_store;
use crate::json::{MaterializationJson, ObservationJson, VersionJson};
use crate::output::{print_json, print_table};
use crate::words;

/// Lists `key`'s versions, newest first: for an asset its materializations (time, rows, bytes,
/// files, code and data versions, metadata, whether current or collected), for a source the
/// versions it was observed at.
pub(super) async fn history(
    project: &Project,
    key: &str,
    limit: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let Some(key) = project.resolve_keys(&[key])?.pop() else {
        return Ok(ExitCode::FAILURE);
    };
    let is_source = project
        .graph()
        .get(&key)
        .is_some_and(|d| d.kind == AssetKind::Source);
    let store = open_read_store(project).await?;
    let limit = limit.clamp(1, 10_000);
    let result = if is_source {
        let page = store.observations_of(&key, limit, None).await?;
        if json {
            let items: Vec<VersionJson<'_>> = page
                .items
                .iter()
                .map(|(id, o)| VersionJson::Observation(ObservationJson::new(Some(id), o)))
                .collect();
            print_json(&items)
        } else {
            let mut rows = vec![
                ["OBSERVED", "FILES", "SIZE", "DATA VERSION"]
                    .map(str::to_owned)
                    .to_vec(),
            ];
            for (_, o) in &page.items {
                rows.push(vec![
                    words::time(o.observed_at),
                    o.file_count.to_string(),
                    words::bytes(o.byte_size),
                    words::short(o.data_version.as_str()).to_owned(),
                ]);
            }
            print_table(&rows)
        }
    } else {
        let page = store.materializations_of(&key, limit, None).await?;
        let current = store.load_heads(std::slice::from_ref(&key)).await?;
        let current = current.materialization(&key).map(|m| m.id.clone());
        if json {
            let items: Vec<VersionJson<'_>> = page
                .items
                .iter()
                .map(|m| VersionJson::Materialization(MaterializationJson::from(m)))
                .collect();
            print_json(&items)
        } else if page.items.is_empty() {
            eprintln!("{key} has never been materialized");
            Ok(())
        } else {
            let mut rows = vec![
                [
                    "VERSION",
                    "MATERIALIZED",
                    "ROWS",
                    "SIZE",
                    "FILES",
                    "TOOK",
                    "CODE",
                    "DATA",
                    "NOTE",
                ]
                .map(str::to_owned)
                .to_vec(),
            ];
            for m in &page.items {
                rows.push(vec![
                    m.id.to_string(),
                    words::time(m.created_at),
                    m.row_count.to_string(),
                    words::bytes(m.byte_size),
                    m.details.file_count.max(1).to_string(),
                    words::millis(m.duration_us),
                    words::short(m.code_version.as_str()).to_owned(),
                    words::short(m.data_version.as_str()).to_owned(),
                    note(m, current.as_ref() == Some(&m.id)),
                ]);
            }
            print_table(&rows)
        }
    };
    store.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

/// Whether current or collected, then the asset's metadata (`name=value`, text cut at 40).
fn note(m: &Materialization, current: bool) -> String {
    let mut parts = Vec::new();
    if current {
        parts.push("current".to_owned());
    }
    if let Some(at) = m.collected_at {
        parts.push(format!("removed by gc {}", words::time(at)));
    }
    for (name, value) in &m.details.metadata {
        let value = match value {
            freshet_core::model::MetadataValue::Number(n) => n.to_string(),
            freshet_core::model::MetadataValue::Text(t) => {
                let one_line = t.split_whitespace().collect::<Vec<_>>().join(" ");
                match one_line.char_indices().nth(40) {
                    Some((i, _)) => format!("{}…", &one_line[..i]),
                    None => one_line,
                }
            }
        };
        parts.push(format!("{name}={value}"));
    }
    parts.join(", ")
}
