//! `/api/assets`: the list, one asset's page, its history and a preview of its rows.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use freshet_core::partitions::PartitionStatus;
use freshet_core::project::Computation;
use freshet_core::{AssetDef, AssetKey, AssetKind, Gone, Materialization};
use serde::Deserialize;

use super::{
    ApiResult, DEFAULT_PAGE, MAX_PAGE, SelectionQuery, cached, cursor, given, json, json_body,
    json_response, parse_cursor, parse_key, parse_limit, parse_run_id, run_state, select,
};
use crate::json::{
    AssetDetailJson, AssetListJson, AssetSummaryJson, FailureJson, FilesGoneJson,
    MaterializationJson, ObservationJson, OriginJson, PageJson, PartitionsDetailJson,
    PartitionsJson, PreviewColumnJson, PreviewJson, SchemaColumnJson, SourceJson, VersionJson,
    partition_ranges, range_json,
};
use crate::serve::error::{ApiError, ApiQuery};
use crate::serve::state::{AppState, Shared, Snapshot};

/// Most rows a preview returns.
const MAX_PREVIEW: usize = 1000;

fn summary(
    running: &HashSet<AssetKey>,
    snapshot: &Snapshot,
    def: &AssetDef,
    report: &freshet_core::planner::AssetReport,
) -> AssetSummaryJson {
    let run_state = run_state(running, snapshot, &def.key);
    let mut summary = AssetSummaryJson::new(def, report, snapshot.lineage(), run_state);
    if let Some(partitions) = snapshot.partitions(&def.key) {
        summary.summary = format!("partitions by {}: {}", partitions.by, partitions.summary);
        summary.partitions = Some(PartitionsJson::from(partitions));
    }
    summary.load_error = snapshot
        .loaded
        .project
        .load_error(&def.key)
        .map(str::to_owned);
    if let Some(gone) = snapshot.gone(&def.key) {
        let (status, freshness) = Gone::shown(Some(gone), report);
        summary.status = status.as_str();
        summary.display_status = run_state.unwrap_or(status.as_str());
        summary.freshness.state = freshness.as_str();
        summary.summary = Gone::SUMMARY.to_owned();
        summary.files_gone = Some(FilesGoneJson::new(gone, crate::json::Precision::Micros));
    }
    summary
}

pub(crate) async fn assets(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SelectionQuery>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let snapshot = shared.snapshot().await?;
    let chosen = match given(q.selection.as_deref()) {
        Some(text) => Some(select(&snapshot, text)?),
        None => None,
    };
    let render = || {
        let graph = snapshot.graph();
        let running = shared.running();
        let assets: Vec<AssetSummaryJson> = snapshot
            .reports()
            .iter()
            .filter(|r| chosen.as_ref().is_none_or(|c| c.contains(&r.key)))
            .filter_map(|r| Some(summary(&running, &snapshot, graph.get(&r.key)?, r)))
            .collect();
        json_body(&AssetListJson {
            count: assets.len(),
            assets,
        })
    };
    // The whole list is what the web view asks for again and again: kept with the snapshot.
    let body = match &chosen {
        None => cached(&snapshot.assets_body, render)?,
        Some(_) => render()?,
    };
    Ok(json_response(body))
}

pub(crate) async fn asset(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let snapshot = shared.snapshot().await?;
    let (i, key) = parse_key(&snapshot.loaded.project, &key)?;
    let graph = snapshot.graph();
    let def = graph.def(i);
    // The full upstream list (the snapshot's is bounded).
    let report = snapshot
        .explain(&key)
        .ok_or_else(|| ApiError::not_found(format!("unknown asset {:?}", key.as_str())))?;
    let summary = summary(&shared.running(), &snapshot, def, &report);
    let (sql, source) = match snapshot.loaded.project.computation(&key) {
        Some(Computation::Sql { query }) => (Some(query.as_str()), None),
        Some(Computation::Source(spec)) => (
            None,
            Some(SourceJson {
                format: format!("{:?}", spec.format).to_lowercase(),
                location: if spec.location.contains("://") {
                    freshet_core::store::redact_url(&spec.location)
                } else {
                    spec.location.clone()
                },
            }),
        ),
        _ => (None, None),
    };
    let current = match (
        snapshot.lineage().materialization(&key),
        snapshot.lineage().observation(&key),
    ) {
        (Some(m), _) => Some(VersionJson::Materialization(MaterializationJson::from(m))),
        (None, Some(o)) => Some(VersionJson::Observation(ObservationJson::new(None, o))),
        (None, None) => None,
    };
    let schema = match &current {
        // A source's schema is read from its files by the preview; nothing is read here.
        Some(_) if def.kind != AssetKind::Source => schema(&snapshot, &key).await,
        _ => None,
    };
    json(&AssetDetailJson {
        summary,
        owners: &def.owners,
        deps: def.deps.iter().map(AssetKey::as_str).collect(),
        dependents: graph
            .downstream_of_index(i)
            .map(|j| graph.def(j).key.as_str())
            .collect(),
        code_version: def.code_version.as_ref().map(|v| v.as_str()),
        origin: OriginJson::from(&def.origin),
        sql,
        source,
        current,
        schema,
        last_failure: snapshot.failures.get(key.as_str()).map(FailureJson::from),
    })
}

/// The columns of `key`'s current version; `None` (and a warning in the log) when unreadable.
async fn schema(snapshot: &Snapshot, key: &AssetKey) -> Option<Vec<SchemaColumnJson>> {
    let current = snapshot.lineage().materialization(key);
    match snapshot
        .loaded
        .executor
        .preview_version(key, current, 0)
        .await
    {
        Ok((schema, _)) => Some(
            schema
                .fields()
                .iter()
                .map(|f| SchemaColumnJson::from(f.as_ref()))
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(asset = %key, error = %e, "cannot read the schema");
            None
        }
    }
}

/// `?status=stale&range=2024-03-01..2024-03-31&width=200`.
#[derive(Debug, Deserialize)]
pub(crate) struct PartitionsQuery {
    status: Option<String>,
    range: Option<String>,
    width: Option<usize>,
}

/// Segments of a health bar at most.
const MAX_BAR: usize = 2000;
/// Ranges listed at most.
const MAX_RANGES: usize = 1000;

pub(crate) async fn partitions(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiQuery(q): ApiQuery<PartitionsQuery>,
) -> ApiResult<Response> {
    let snapshot = state.0.snapshot().await?;
    let (_, key) = parse_key(&snapshot.loaded.project, &key)?;
    let view = snapshot
        .loaded
        .executor
        .partition_view(&key, snapshot.lineage())
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("{key} is not partitioned")))?;
    let wanted = match q.status.as_deref() {
        None => None,
        Some(word) => Some(PartitionStatus::parse(word).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status {word:?}: expected failed, stale, missing, blocked or fresh"
            ))
        })?),
    };
    let valid = &view.statuses.valid;
    let mut within = valid.first().unwrap_or(0)..valid.last().map_or(0, |l| l + 1);
    if let Some(text) = q.range.as_deref() {
        let ordinal = |k: &str| {
            view.partitions.ordinal(k.trim()).ok_or_else(|| {
                ApiError::bad_request(format!("{k:?} is not a partition key of {key}"))
            })
        };
        let (from, to) = text.split_once("..").ok_or_else(|| {
            ApiError::bad_request(format!("range {text:?}: expected FIRST..LAST"))
        })?;
        let (a, b) = (ordinal(from)?, ordinal(to)?);
        if a > b {
            return Err(ApiError::bad_request(format!(
                "range {text}: {from} comes after {to}"
            )));
        }
        within = a..b + 1;
    }
    let width = q.width.unwrap_or(200);
    if !(1..=MAX_BAR).contains(&width) {
        return Err(ApiError::bad_request(format!(
            "width must be between 1 and {MAX_BAR}, not {width}"
        )));
    }
    let bar = view
        .statuses
        .health(within.clone(), width)
        .into_iter()
        .map(|s| range_json(&view, s.range, s.status, None))
        .collect();
    let (ranges, ranges_truncated) = partition_ranges(&view, wanted, within, MAX_RANGES);
    json(&PartitionsDetailJson {
        asset: key.as_str(),
        brief: PartitionsJson::from(&view),
        bar,
        ranges,
        ranges_truncated,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

pub(crate) async fn history(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let loaded = shared.loaded();
    let (i, key) = parse_key(&loaded.project, &key)?;
    let limit = parse_limit(q.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let before = parse_cursor(q.cursor.as_deref())?;
    let before = before.as_ref().map(|(at, id)| (*at, id.as_str()));
    if loaded.project.graph().def(i).kind == AssetKind::Source {
        let page = shared.store.observations_of(&key, limit, before).await?;
        let next = page
            .more
            .then(|| page.items.last().map(|(id, o)| cursor(o.observed_at, id)))
            .flatten();
        let items = page
            .items
            .iter()
            .map(|(id, o)| VersionJson::Observation(ObservationJson::new(Some(id), o)))
            .collect();
        json(&PageJson { items, next })
    } else {
        let page = shared
            .store
            .materializations_of(&key, limit, before)
            .await?;
        let next = page
            .more
            .then(|| {
                page.items
                    .last()
                    .map(|m| cursor(m.created_at, m.id.as_str()))
            })
            .flatten();
        let items = page
            .items
            .iter()
            .map(|m| VersionJson::Materialization(MaterializationJson::from(m)))
            .collect();
        json(&PageJson { items, next })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct PreviewQuery {
    limit: Option<usize>,
    version: Option<String>,
}

pub(crate) async fn preview(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let loaded = shared.loaded();
    let (i, key) = parse_key(&loaded.project, &key)?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_PREVIEW).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PREVIEW}, not {limit}"
        )));
    }
    let is_source = loaded.project.graph().def(i).kind == AssetKind::Source;
    let version = preview_version(shared, &key, is_source, q.version.as_deref()).await?;
    let (schema, batches) = loaded
        .executor
        .preview_version(&key, version.as_ref(), limit)
        .await
        .map_err(|e| match e {
            // What cannot be read is the user's data (a moved file, a changed source), worth
            // saying; nothing of the store is in these messages.
            freshet_core::Error::Execution { message, .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("cannot preview {key}: {message}"),
            ),
            other => ApiError::internal(&other),
        })?;
    json(&PreviewJson {
        columns: schema
            .fields()
            .iter()
            .map(|f| PreviewColumnJson::from(f.as_ref()))
            .collect(),
        rows: rows_json(&batches).map_err(|e| ApiError::internal(&e))?,
        // Only a version asked for is named; the current one is `null`.
        version: q
            .version
            .as_ref()
            .and(version.as_ref())
            .map(|m| m.id.as_str()),
    })
}

/// The version a preview reads: the one asked for, else the current one (`None` for a source,
/// whose files are read as they are now).
async fn preview_version(
    shared: &Shared,
    key: &AssetKey,
    is_source: bool,
    asked: Option<&str>,
) -> ApiResult<Option<Materialization>> {
    match asked {
        Some(id) if is_source => Err(ApiError::bad_request(format!(
            "{key} is a source: it has no stored versions to preview (asked for {id:?})"
        ))),
        Some(id) => {
            let id = parse_run_id(id)
                .map_err(|_| ApiError::bad_request(format!("invalid version {id:?}")))?;
            let m = shared
                .store
                .materialization(id.as_str())
                .await?
                .filter(|m| &m.asset == key)
                .ok_or_else(|| {
                    ApiError::not_found(format!("{key} has no version {:?}", id.as_str()))
                })?;
            if let Some(at) = m.collected_at {
                return Err(ApiError::gone(format!(
                    "version {} of {key} was removed by `freshet gc` at {}",
                    m.id,
                    crate::words::time(at)
                )));
            }
            Ok(Some(m))
        }
        None if is_source => Ok(None),
        // The current version, as the snapshot already knows it.
        None => Ok(Some(
            shared
                .snapshot()
                .await?
                .lineage()
                .materialization(key)
                .cloned()
                .ok_or_else(|| ApiError::not_found(format!("{key} has never been materialized")))?,
        )),
    }
}

/// Cells as display strings (`None` for nulls), row by row.
fn rows_json(
    batches: &[RecordBatch],
) -> Result<Vec<Vec<Option<String>>>, datafusion::arrow::error::ArrowError> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for r in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(column, f)| (!column.is_null(r)).then(|| f.value(r).to_string()))
                    .collect(),
            );
        }
    }
    Ok(rows)
}
