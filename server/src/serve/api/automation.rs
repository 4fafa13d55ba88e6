//! `GET /api/automation` (every automated asset's latest decision, the latest evaluation, the
//! schedules and the sensors) and `GET /api/assets/{key}/automation` (one asset's decisions).

use axum::extract::{Path, State};
use axum::response::Response;

use super::{
    ApiResult, DEFAULT_PAGE, MAX_PAGE, SelectionQuery, given, json, parse_key, parse_limit, select,
};
use crate::serve::error::ApiQuery;
use crate::serve::state::AppState;

pub(crate) async fn automation(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SelectionQuery>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let snapshot = shared.snapshot().await?;
    let only = match given(q.selection.as_deref()) {
        Some(text) => Some(select(&snapshot, text)?),
        None => None,
    };
    let report = crate::automation::report(
        &snapshot.loaded.project,
        &shared.store,
        only.as_ref(),
        shared.clock.now(),
    )
    .await?;
    json(&report)
}

/// `?limit=`: how many decisions of its history.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct LimitQuery {
    limit: Option<u32>,
}

pub(crate) async fn asset_automation(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let loaded = shared.loaded();
    let (_, key) = parse_key(&loaded.project, &key)?;
    let limit = parse_limit(q.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let report =
        crate::automation::asset_report(&loaded.project, &shared.store, &key, limit).await?;
    json(&report)
}
