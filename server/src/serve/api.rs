//! The JSON API under `/api`: handlers that check their input, ask the core, and answer in the
//! shapes documented in `openapi.json`.

use std::collections::{BTreeSet, HashSet};
use std::sync::OnceLock;

use axum::body::Bytes;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Json, http};
use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use freshet_core::freshness::Freshness;
use freshet_core::planner::{AssetReport, PlanRequest};
use freshet_core::project::Computation;
use freshet_core::selection::Selection;
use freshet_core::store::{LogLine, RunQuery, RunRecord, RunStatus, StepRecord};
use freshet_core::{AssetDef, AssetKey, AssetKind, Materialization, Observation, RunId};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiError, ApiJson, ApiQuery};
use super::layout::{self, NODE_HEIGHT, NODE_WIDTH};
use super::state::{AppState, Shared, Snapshot, SnapshotFacts, Work};
use crate::output::{UpstreamJson, cause_words};

type ApiResult<T> = Result<T, ApiError>;

/// Largest page of runs or history.
const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 50;
/// Most rows a preview returns.
const MAX_PREVIEW: usize = 1000;

// ---- shapes -------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct CauseJson {
    category: &'static str,
    reason: String,
    dependency: Option<String>,
    words: String,
}

#[derive(Debug, Serialize)]
struct FreshnessJson {
    state: &'static str,
    policy: Option<String>,
    last_updated: Option<String>,
    next_change_at: Option<String>,
    next_state: Option<&'static str>,
}

impl From<&Freshness> for FreshnessJson {
    fn from(f: &Freshness) -> Self {
        Self {
            state: f.state.as_str(),
            policy: f.policy.clone(),
            last_updated: f.last_updated.map(time),
            next_change_at: f.next_change.map(|c| time(c.at)),
            next_state: f.next_change.map(|c| c.state.as_str()),
        }
    }
}

#[derive(Debug, Serialize)]
struct AssetSummary {
    key: String,
    kind: &'static str,
    group: String,
    tags: Vec<String>,
    description: Option<String>,
    status: &'static str,
    run_state: Option<&'static str>,
    display_status: &'static str,
    summary: String,
    causes: Vec<CauseJson>,
    upstream: Vec<UpstreamJson>,
    upstream_truncated: bool,
    freshness: FreshnessJson,
    data_time: Option<String>,
    last_updated: Option<String>,
    data_version: Option<String>,
}

fn summary(
    running: &HashSet<AssetKey>,
    snapshot: &Snapshot,
    def: &AssetDef,
    report: &AssetReport,
) -> AssetSummary {
    let lineage = &snapshot.lineage;
    let run_state = run_state(running, snapshot, &def.key);
    AssetSummary {
        key: def.key.to_string(),
        kind: def.kind.as_str(),
        group: def.group.clone(),
        tags: def.tags.iter().cloned().collect(),
        description: def.description.clone(),
        status: report.status.as_str(),
        run_state,
        display_status: run_state.unwrap_or(report.status.as_str()),
        summary: report.summary(),
        causes: report
            .causes
            .iter()
            .map(|c| CauseJson {
                category: c.category.as_str(),
                reason: c.reason.clone(),
                dependency: c.dependency.as_ref().map(ToString::to_string),
                words: cause_words(def, c, lineage),
            })
            .collect(),
        upstream: report.upstream.iter().map(UpstreamJson::from).collect(),
        upstream_truncated: report.upstream_truncated,
        freshness: FreshnessJson::from(&report.freshness),
        data_time: report.data_time.map(time),
        last_updated: report.freshness.last_updated.map(time).or_else(|| {
            lineage
                .materialization(&def.key)
                .map(|m| time(m.created_at))
                .or_else(|| lineage.observation(&def.key).map(|o| time(o.observed_at)))
        }),
        data_version: lineage.data_version(&def.key).map(ToString::to_string),
    }
}

/// `running` while one of this server's runs computes it, `failed` when its latest attempt
/// failed after its current version, else nothing.
fn run_state(
    running: &HashSet<AssetKey>,
    snapshot: &Snapshot,
    key: &AssetKey,
) -> Option<&'static str> {
    if running.contains(key) {
        Some("running")
    } else if snapshot.failures.contains_key(key.as_str()) {
        Some("failed")
    } else {
        None
    }
}

fn materialization_json(m: &Materialization) -> Value {
    json!({
        "kind": "materialization",
        "id": m.id.as_str(),
        "run_id": m.run_id.as_str(),
        "at": time(m.created_at),
        "data_version": m.data_version.as_str(),
        "code_version": m.code_version.as_str(),
        "row_count": m.row_count,
        "byte_size": m.byte_size,
        "duration_ms": m.duration_us as f64 / 1000.0,
        "data_time": m.data_time.map(time),
        "location": m.location,
        "inputs": m.inputs.iter().map(|i| json!({
            "asset": i.asset.as_str(),
            "data_version": i.data_version.as_str(),
        })).collect::<Vec<_>>(),
    })
}

fn observation_json(id: Option<&str>, o: &Observation) -> Value {
    json!({
        "kind": "observation",
        "id": id,
        "at": time(o.observed_at),
        "checked_at": time(o.checked_at),
        "data_version": o.data_version.as_str(),
        "file_count": o.file_count,
        "byte_size": o.byte_size,
    })
}

fn run_json(r: &RunRecord) -> Value {
    json!({
        "id": r.id.as_str(),
        "kind": r.kind.as_str(),
        "status": r.status.as_str(),
        "selection": r.selection,
        "stale_only": r.stale_only,
        "started_at": time(r.started_at),
        "finished_at": r.finished_at.map(time),
        "duration_ms": r.finished_at.map(|f| millis_between(r.started_at, f)),
        "error": r.error,
        "steps": {
            "total": r.steps.total,
            "materialized": r.steps.materialized,
            "skipped": r.steps.skipped,
            "failed": r.steps.failed,
        },
    })
}

fn step_json(s: &StepRecord) -> Value {
    json!({
        "asset": s.asset,
        "state": s.state.as_str(),
        "started_at": s.started_at.map(time),
        "finished_at": s.finished_at.map(time),
        "duration_ms": s.started_at.zip(s.finished_at).map(|(a, b)| millis_between(a, b)),
        "message": s.message,
        "row_count": s.row_count,
        "byte_size": s.byte_size,
    })
}

/// A log line as JSON; with the run id for live updates.
pub(crate) fn log_json(run_id: Option<&RunId>, l: &LogLine) -> Value {
    let mut v = json!({
        "seq": l.seq,
        "at": time(l.at),
        "level": l.level.as_str(),
        "asset": l.asset,
        "message": l.message,
    });
    if let (Some(id), Some(map)) = (run_id, v.as_object_mut()) {
        map.insert("run_id".to_owned(), Value::from(id.as_str()));
    }
    v
}

/// Times with microseconds, so consecutive events sort.
fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn millis_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

// ---- input --------------------------------------------------------------------------------------

fn parse_key(shared: &Shared, text: &str) -> ApiResult<(usize, AssetKey)> {
    let key = AssetKey::parse(text)
        .map_err(|e| ApiError::bad_request(format!("invalid asset key {text:?}: {e}")))?;
    let i = shared
        .project
        .graph()
        .index_of(&key)
        .ok_or_else(|| ApiError::not_found(format!("unknown asset {:?}", key.as_str())))?;
    Ok((i, key))
}

/// Longest selection accepted: far beyond what people type, short enough that evaluating one
/// cannot hold the server up.
const MAX_SELECTION: usize = 2048;

fn parse_selection(text: &str) -> ApiResult<Selection> {
    if text.len() > MAX_SELECTION {
        return Err(ApiError::bad_request(format!(
            "selection too long: at most {MAX_SELECTION} characters"
        )));
    }
    Selection::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn parse_limit(limit: Option<u32>, default: u32, max: u32) -> ApiResult<u32> {
    match limit.unwrap_or(default) {
        n @ 1.. if n <= max => Ok(n),
        n => Err(ApiError::bad_request(format!(
            "limit must be between 1 and {max}, not {n}"
        ))),
    }
}

/// Cursors are `<epoch microseconds>~<id>` of the last item of the previous page.
fn parse_cursor(cursor: Option<&str>) -> ApiResult<Option<(DateTime<Utc>, String)>> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let invalid = || ApiError::bad_request(format!("invalid cursor {cursor:?}"));
    let (micros, id) = cursor.split_once('~').ok_or_else(invalid)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(invalid());
    }
    Ok(Some((at, id.to_owned())))
}

fn cursor(at: DateTime<Utc>, id: &str) -> String {
    format!("{}~{id}", at.timestamp_micros())
}

fn parse_run_id(text: &str) -> ApiResult<RunId> {
    if text.is_empty()
        || text.len() > 64
        || !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(ApiError::bad_request(format!("invalid run id {text:?}")));
    }
    Ok(RunId::new(text))
}

/// A selection as given, or `None` when absent or blank (meaning every asset).
fn given(selection: Option<&str>) -> Option<&str> {
    selection.map(str::trim).filter(|s| !s.is_empty())
}

/// The keys a selection picks, judged on `snapshot` for `status:` and `freshness:`.
fn select(shared: &Shared, snapshot: &Snapshot, text: &str) -> ApiResult<BTreeSet<AssetKey>> {
    let selection = parse_selection(text)?;
    let graph = shared.project.graph();
    selection
        .select(graph, &SnapshotFacts { graph, snapshot })
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

// ---- handlers -----------------------------------------------------------------------------------

pub(crate) async fn project(State(state): State<AppState>) -> Json<Value> {
    let project = &state.0.project;
    let groups: BTreeSet<&str> = project.graph().iter().map(|d| d.group.as_str()).collect();
    Json(json!({
        "name": project.name(),
        "asset_count": project.graph().len(),
        "groups": groups,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SelectionQuery {
    selection: Option<String>,
}

pub(crate) async fn assets(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SelectionQuery>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let snapshot = shared.snapshot().await?;
    let chosen = match given(q.selection.as_deref()) {
        Some(text) => Some(select(shared, &snapshot, text)?),
        None => None,
    };
    let render = || {
        let graph = shared.project.graph();
        let running = shared.running();
        let assets: Vec<AssetSummary> = snapshot
            .reports
            .iter()
            .filter(|r| chosen.as_ref().is_none_or(|c| c.contains(&r.key)))
            .filter_map(|r| Some(summary(&running, &snapshot, graph.get(&r.key)?, r)))
            .collect();
        json_body(&AssetList {
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

#[derive(Debug, Serialize)]
struct AssetList {
    count: usize,
    assets: Vec<AssetSummary>,
}

fn json_body<T: Serialize>(value: &T) -> ApiResult<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(&e))
}

/// The body in `cell`, rendered on first use.
fn cached(cell: &OnceLock<Bytes>, render: impl FnOnce() -> ApiResult<Bytes>) -> ApiResult<Bytes> {
    if let Some(body) = cell.get() {
        return Ok(body.clone());
    }
    let body = render()?;
    Ok(cell.get_or_init(|| body).clone())
}

fn json_response(body: Bytes) -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(crate) async fn asset(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let shared = &state.0;
    let (i, key) = parse_key(shared, &key)?;
    let snapshot = shared.snapshot().await?;
    let graph = shared.project.graph();
    let def = graph.def(i);
    // The full upstream list (the snapshot's is bounded).
    let report = freshet_core::planner::report_one(
        graph,
        &snapshot.lineage,
        &snapshot.statuses,
        &key,
        shared.clock.now(),
    )
    .ok_or_else(|| ApiError::not_found(format!("unknown asset {:?}", key.as_str())))?;
    let mut out = serde_json::to_value(summary(&shared.running(), &snapshot, def, &report))
        .map_err(|e| ApiError::internal(&e))?;
    let (sql, source) = match shared.project.computation(&key) {
        Some(Computation::Sql { query }) => (Some(query.clone()), None),
        Some(Computation::Source(spec)) => (
            None,
            Some(json!({
                "location": if spec.location.contains("://") {
                    freshet_core::store::redact_url(&spec.location)
                } else {
                    spec.location.clone()
                },
                "format": format!("{:?}", spec.format).to_lowercase(),
            })),
        ),
        _ => (None, None),
    };
    let current = match (
        snapshot.lineage.materialization(&key),
        snapshot.lineage.observation(&key),
    ) {
        (Some(m), _) => materialization_json(m),
        (None, Some(o)) => observation_json(None, o),
        (None, None) => Value::Null,
    };
    let schema = if def.kind == AssetKind::Source || current.is_null() {
        // A source's schema is read from its files by the preview; nothing is read here.
        None
    } else {
        let current = snapshot.lineage.materialization(&key);
        match shared.executor.preview_version(&key, current, 0).await {
            Ok((schema, _)) => Some(
                schema
                    .fields()
                    .iter()
                    .map(|f| {
                        json!({
                            "name": f.name(),
                            "type": f.data_type().to_string(),
                            "nullable": f.is_nullable(),
                        })
                    })
                    .collect::<Vec<_>>(),
            ),
            Err(e) => {
                tracing::warn!(asset = %key, error = %e, "cannot read the schema");
                None
            }
        }
    };
    let failure = snapshot
        .failures
        .get(key.as_str())
        .map(|f| json!({ "run_id": f.run_id.as_str(), "at": time(f.at), "error": f.error }));
    if let Some(map) = out.as_object_mut() {
        map.insert("owners".into(), json!(def.owners));
        map.insert(
            "deps".into(),
            json!(def.deps.iter().map(AssetKey::as_str).collect::<Vec<_>>()),
        );
        map.insert(
            "dependents".into(),
            json!(
                graph
                    .downstream_of_index(i)
                    .map(|j| graph.def(j).key.as_str())
                    .collect::<Vec<_>>()
            ),
        );
        map.insert(
            "code_version".into(),
            json!(def.code_version.as_ref().map(|v| v.as_str())),
        );
        map.insert("origin".into(), json!(def.origin));
        map.insert("sql".into(), json!(sql));
        map.insert("source".into(), source.unwrap_or(Value::Null));
        map.insert("current".into(), current);
        map.insert("schema".into(), json!(schema));
        map.insert("last_failure".into(), failure.unwrap_or(Value::Null));
    }
    Ok(Json(out))
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
) -> ApiResult<Json<Value>> {
    let shared = &state.0;
    let (i, key) = parse_key(shared, &key)?;
    let limit = parse_limit(q.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let before = parse_cursor(q.cursor.as_deref())?;
    let before = before.as_ref().map(|(at, id)| (*at, id.as_str()));
    let (items, next) = if shared.project.graph().def(i).kind == AssetKind::Source {
        let mut rows = shared
            .store
            .observations_of(&key, limit + 1, before)
            .await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = more
            .then(|| rows.last().map(|(id, o)| cursor(o.observed_at, id)))
            .flatten();
        let items: Vec<Value> = rows
            .iter()
            .map(|(id, o)| observation_json(Some(id), o))
            .collect();
        (items, next)
    } else {
        let rows = shared
            .store
            .materializations_of(&key, limit, before)
            .await?;
        let next = (rows.len() == limit as usize)
            .then(|| rows.last().map(|m| cursor(m.created_at, m.id.as_str())))
            .flatten();
        (rows.iter().map(materialization_json).collect(), next)
    };
    Ok(Json(json!({ "items": items, "next": next })))
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
) -> ApiResult<Json<Value>> {
    let shared = &state.0;
    let (i, key) = parse_key(shared, &key)?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_PREVIEW).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PREVIEW}, not {limit}"
        )));
    }
    let is_source = shared.project.graph().def(i).kind == AssetKind::Source;
    let version = match q.version.as_deref() {
        Some(id) if is_source => {
            return Err(ApiError::bad_request(format!(
                "{key} is a source: it has no stored versions to preview (asked for {id:?})"
            )));
        }
        Some(id) => {
            let id = parse_run_id(id)
                .map_err(|_| ApiError::bad_request(format!("invalid version {id:?}")))?;
            let m = shared
                .store
                .materialization(id.as_str())
                .await?
                .filter(|m| m.asset == key)
                .ok_or_else(|| {
                    ApiError::not_found(format!("{key} has no version {:?}", id.as_str()))
                })?;
            Some(m)
        }
        // The current version, as the snapshot already knows it (a source reads its files).
        None if is_source => None,
        None => Some(
            shared
                .snapshot()
                .await?
                .lineage
                .materialization(&key)
                .cloned()
                .ok_or_else(|| ApiError::not_found(format!("{key} has never been materialized")))?,
        ),
    };
    let (schema, batches) = shared
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
    let columns: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string() }))
        .collect();
    Ok(Json(json!({
        // Only a version asked for is named; the current one is `null`.
        "version": q.version.as_ref().and(version.as_ref()).map(|m| m.id.as_str()),
        "columns": columns,
        "rows": rows_json(&batches).map_err(|e| ApiError::internal(&e))?,
    })))
}

/// Cells as display strings (`null` for nulls), row by row.
fn rows_json(
    batches: &[RecordBatch],
) -> Result<Vec<Vec<Value>>, datafusion::arrow::error::ArrowError> {
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
                    .map(|(column, f)| {
                        if column.is_null(r) {
                            Value::Null
                        } else {
                            Value::String(f.value(r).to_string())
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

pub(crate) async fn lineage(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SelectionQuery>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let snapshot = shared.snapshot().await?;
    let graph = shared.project.graph();
    let selected = match given(q.selection.as_deref()) {
        Some(text) => {
            let keys = select(shared, &snapshot, text)?;
            let mut include = vec![false; graph.len()];
            for k in &keys {
                if let Some(i) = graph.index_of(k) {
                    include[i] = true;
                }
            }
            Some(include)
        }
        None => None,
    };
    let render = |layout: &layout::Layout| {
        let running = shared.running();
        let mut nodes = Vec::with_capacity(graph.len());
        let mut edges = Vec::new();
        for &i in graph.order() {
            let (Some((layer, x, y)), Some(report)) = (layout.at[i], snapshot.report(i)) else {
                continue;
            };
            let def = graph.def(i);
            let run_state = run_state(&running, &snapshot, &def.key);
            nodes.push(NodeJson {
                key: def.key.as_str(),
                kind: def.kind.as_str(),
                group: &def.group,
                layer,
                x,
                y,
                status: report.status.as_str(),
                run_state,
                display_status: run_state.unwrap_or(report.status.as_str()),
                freshness: report.freshness.state.as_str(),
            });
            for u in graph.upstream_of_index(i) {
                if layout.at[u].is_some() {
                    edges.push(EdgeJson {
                        from: graph.def(u).key.as_str(),
                        to: def.key.as_str(),
                    });
                }
            }
        }
        json_body(&LineageJson {
            nodes,
            edges,
            width: layout.width,
            height: layout.height,
            node_width: NODE_WIDTH,
            node_height: NODE_HEIGHT,
        })
    };
    let body = match &selected {
        None => cached(&snapshot.lineage_body, || render(&shared.layout))?,
        Some(include) => render(&layout::layout(graph, Some(include)))?,
    };
    Ok(json_response(body))
}

#[derive(Debug, Serialize)]
struct LineageJson<'a> {
    nodes: Vec<NodeJson<'a>>,
    edges: Vec<EdgeJson<'a>>,
    width: f64,
    height: f64,
    node_width: f64,
    node_height: f64,
}

#[derive(Debug, Serialize)]
struct NodeJson<'a> {
    key: &'a str,
    kind: &'static str,
    group: &'a str,
    layer: usize,
    x: f64,
    y: f64,
    status: &'static str,
    run_state: Option<&'static str>,
    display_status: &'static str,
    freshness: &'static str,
}

#[derive(Debug, Serialize)]
struct EdgeJson<'a> {
    from: &'a str,
    to: &'a str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RunsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    status: Option<String>,
    asset: Option<String>,
}

pub(crate) async fn runs(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> ApiResult<Json<Value>> {
    let shared = &state.0;
    let limit = parse_limit(q.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let before = match q.cursor.as_deref() {
        Some(id) => Some(
            parse_run_id(id)
                .map_err(|_| ApiError::bad_request(format!("invalid cursor {id:?}")))?,
        ),
        None => None,
    };
    let status = match q.status.as_deref() {
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown run status {s:?}: expected queued, running, succeeded, failed or cancelled"
            ))
        })?),
        None => None,
    };
    let asset = match q.asset.as_deref() {
        Some(text) => Some(parse_key(shared, text)?.1),
        None => None,
    };
    let mut records = shared
        .store
        .runs(&RunQuery {
            limit: limit + 1,
            before,
            status,
            asset,
        })
        .await?;
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next = more
        .then(|| records.last().map(|r| r.id.as_str().to_owned()))
        .flatten();
    let items: Vec<Value> = records.iter().map(run_json).collect();
    Ok(Json(json!({ "items": items, "next": next })))
}

pub(crate) async fn run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let shared = &state.0;
    let id = parse_run_id(&id)?;
    let record = shared
        .store
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown run {:?}", id.as_str())))?;
    let steps = shared.store.run_steps(&id).await?;
    let logs = shared.store.run_logs(&id, 0).await?;
    Ok(Json(json!({
        "run": run_json(&record),
        "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
        "logs": logs.iter().map(|l| log_json(None, l)).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunRequest {
    selection: Option<String>,
    #[serde(default)]
    stale_only: bool,
}

pub(crate) async fn request_run(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RunRequest>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let text = given(body.selection.as_deref());
    let request = match text {
        None => PlanRequest::stale(),
        Some(text) => {
            let snapshot = shared.snapshot().await?;
            let keys = select(shared, &snapshot, text)?;
            let graph = shared.project.graph();
            if keys.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "selection {text:?} selects no assets"
                )));
            }
            if !body.stale_only
                && keys
                    .iter()
                    .all(|k| graph.get(k).is_some_and(|d| d.kind == AssetKind::Source))
            {
                return Err(ApiError::bad_request(format!(
                    "selection {text:?} selects only sources, which are observed, not materialized"
                )));
            }
            PlanRequest {
                selection: Some(keys),
                stale_only: body.stale_only,
            }
        }
    };
    let id = shared
        .request(Work::Materialize(request), text.unwrap_or(""))
        .await?;
    Ok(accepted(&id))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ObserveRequest {
    selection: Option<String>,
}

pub(crate) async fn request_observe(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ObserveRequest>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let text = given(body.selection.as_deref());
    let keys = match text {
        None => Vec::new(),
        Some(text) => {
            let snapshot = shared.snapshot().await?;
            let graph = shared.project.graph();
            let sources: Vec<AssetKey> = select(shared, &snapshot, text)?
                .into_iter()
                .filter(|k| graph.get(k).is_some_and(|d| d.kind == AssetKind::Source))
                .collect();
            if sources.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "selection {text:?} selects no sources"
                )));
            }
            sources
        }
    };
    let id = shared
        .request(Work::Observe(keys), text.unwrap_or(""))
        .await?;
    Ok(accepted(&id))
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let id = parse_run_id(&id)?;
    let record = shared
        .store
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown run {:?}", id.as_str())))?;
    if record.status.is_finished() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run {} has already {}", id, record.status.as_str()),
        ));
    }
    if !shared.cancel(&id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run {id} is run by another process; stop it there"),
        ));
    }
    Ok(accepted(&id))
}

fn accepted(id: &RunId) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "run_id": id.as_str() }))).into_response()
}

pub(crate) async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    let receiver = state.0.events.subscribe();
    // A first comment sends the headers at once, so the client knows it is connected.
    let hello = futures::stream::once(async { Ok(Event::default().comment("connected")) });
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok((name, data)) => Event::default().event(name).data(data),
            // Missed some: tell the client to refetch everything.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                Event::default().event("assets").data("{}")
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    let mut stopping = state.0.stopping.subscribe();
    let stopped = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let stream = futures::StreamExt::take_until(futures::StreamExt::chain(hello, stream), stopped);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
}

pub(crate) async fn openapi() -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        super::OPENAPI,
    )
        .into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}
