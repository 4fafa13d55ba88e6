//! `/api/runs`, `/api/observe` and `/api/events`: runs listed, followed, requested and cancelled,
//! and live updates.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use freshet_core::planner::PlanRequest;
use freshet_core::store::{RunQuery, RunRecord, RunStatus};
use freshet_core::{AssetKey, AssetKind, RunId};
use futures::Stream;
use serde::Deserialize;

use super::{
    ApiResult, DEFAULT_PAGE, MAX_PAGE, given, json, json_body, json_response, parse_key,
    parse_limit, parse_run_id, select,
};
use crate::json::{
    AcceptedJson, LogJson, PageJson, RunDetailJson, RunJson, StepJson, attempts_json,
};
use crate::serve::error::{ApiError, ApiJson, ApiQuery};
use crate::serve::state::{AppState, Shared, Work};

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
) -> ApiResult<Response> {
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
        Some(text) => Some(parse_key(&shared.loaded().project, text)?.1),
        None => None,
    };
    let page = shared
        .store
        .runs(&RunQuery {
            limit,
            before,
            status,
            asset,
        })
        .await?;
    let next = page
        .more
        .then(|| page.items.last().map(|r| r.id.as_str().to_owned()))
        .flatten();
    json(&PageJson {
        items: page.items.iter().map(RunJson::from).collect(),
        next,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunPageQuery {
    /// Only the log lines after this `seq`.
    after: Option<u64>,
}

pub(crate) async fn run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RunPageQuery>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let (id, record) = known_run(shared, &id).await?;
    let steps = shared.store.run_steps(&id).await?;
    let logs = shared.store.run_logs(&id, q.after.unwrap_or(0)).await?;
    let attempts = shared.store.attempts(&id).await?;
    json(&RunDetailJson {
        attempts: attempts_json(&steps, &attempts),
        logs: logs.iter().map(|l| LogJson::new(None, l)).collect(),
        run: RunJson::from(&record),
        steps: steps.iter().map(StepJson::from).collect(),
    })
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
    let snapshot = shared.snapshot().await?;
    let request = match text {
        None => PlanRequest::stale(),
        Some(text) => {
            let keys = select(&snapshot, text)?;
            let graph = snapshot.graph();
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
                ..PlanRequest::default()
            }
        }
    };
    // As on the command line: an asset whose file does not load is not run, nor is a run
    // started around it.
    let project = &snapshot.loaded.project;
    let asked = match &request.selection {
        Some(keys) => project.first_broken(keys),
        None => project.first_broken(project.graph().iter().map(|d| &d.key)),
    };
    if let Some((_, error)) = asked {
        return Err(ApiError::bad_request(error.to_owned()));
    }
    drop(snapshot);
    let id = shared
        .request(Work::Materialize(request), text.unwrap_or(""), "api")
        .await?;
    accepted(&id)
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
            let graph = snapshot.graph();
            let sources: Vec<AssetKey> = select(&snapshot, text)?
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
        .request(Work::Observe(keys), text.unwrap_or(""), "api")
        .await?;
    accepted(&id)
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let (id, record) = known_run(shared, &id).await?;
    if record.status.is_finished() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run {} has already {}", id, record.status.as_str()),
        ));
    }
    // This server's own run stops at once; another process's when it next beats (about a
    // second).
    if !shared.cancel(&id) && !shared.store.request_cancel(&id, shared.clock.now()).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run {id} has already ended"),
        ));
    }
    accepted(&id)
}

/// The run named by the path, or a 400 (not a run id) or 404 (no such run).
async fn known_run(shared: &Shared, id: &str) -> ApiResult<(RunId, RunRecord)> {
    let id = parse_run_id(id)?;
    let record = shared
        .store
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown run {:?}", id.as_str())))?;
    Ok((id, record))
}

/// 202 with the run's id.
fn accepted(id: &RunId) -> ApiResult<Response> {
    let body = json_body(&AcceptedJson {
        run_id: id.as_str(),
    })?;
    Ok((StatusCode::ACCEPTED, json_response(body)).into_response())
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
