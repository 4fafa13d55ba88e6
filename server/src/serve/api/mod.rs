//! The JSON API under `/api`: handlers that check their input, ask the core, and answer in the
//! shapes of [`crate::json`], documented in `openapi.json`. One module per resource; what they
//! share (reading keys, selections, limits and cursors; writing bodies) is here.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::State;
use axum::http;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use freshet_core::selection::Selection;
use freshet_core::{AssetKey, Project, RunId};
use serde::Serialize;

use super::error::ApiError;
use super::state::{AppState, Snapshot};
use crate::json::ProjectJson;

mod assets;
mod automation;
mod lineage;
mod runs;

pub(crate) use assets::{asset, assets, history, partitions, preview};
pub(crate) use automation::{asset_automation, automation};
pub(crate) use lineage::lineage;
pub(crate) use runs::{cancel, events, request_observe, request_run, run, runs};

type ApiResult<T> = Result<T, ApiError>;

/// Largest page of runs or history.
const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 50;

// ---- input --------------------------------------------------------------------------------------

/// `?selection=`: the assets a list or graph shows (all when absent or blank).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SelectionQuery {
    selection: Option<String>,
}

fn parse_key(project: &Project, text: &str) -> ApiResult<(usize, AssetKey)> {
    let key = AssetKey::parse(text)
        .map_err(|e| ApiError::bad_request(format!("invalid asset key {text:?}: {e}")))?;
    let i = project
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
fn select(snapshot: &Snapshot, text: &str) -> ApiResult<BTreeSet<AssetKey>> {
    let selection = parse_selection(text)?;
    snapshot
        .select(&selection)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `running` while one of this server's runs computes it, `broken` when its file does not load,
/// `failed` when its latest attempt failed after its current version, else nothing.
fn run_state(
    running: &std::collections::HashSet<AssetKey>,
    snapshot: &Snapshot,
    key: &AssetKey,
) -> Option<&'static str> {
    if running.contains(key) {
        Some("running")
    } else if snapshot.loaded.project.load_error(key).is_some() {
        Some("broken")
    } else if snapshot.failures.contains_key(key.as_str()) {
        Some("failed")
    } else {
        None
    }
}

// ---- output -------------------------------------------------------------------------------------

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

/// `value` as a 200 JSON response.
fn json<T: Serialize>(value: &T) -> ApiResult<Response> {
    Ok(json_response(json_body(value)?))
}

// ---- handlers -----------------------------------------------------------------------------------

pub(crate) async fn project(State(state): State<AppState>) -> ApiResult<Response> {
    let loaded = state.0.loaded();
    let project = &loaded.project;
    let groups: BTreeSet<&str> = project.graph().iter().map(|d| d.group.as_str()).collect();
    json(&ProjectJson {
        asset_count: project.graph().len(),
        groups: groups.into_iter().collect(),
        load_error: state.0.load_error(),
        name: project.name(),
        version: env!("CARGO_PKG_VERSION"),
    })
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone as _;
    use freshet_core::RunId;
    use freshet_core::store::{LogLevel, LogLine};

    use super::{parse_cursor, parse_limit, parse_run_id};
    use crate::json::LogJson;

    #[test]
    fn a_live_log_line_is_the_log_shape_with_the_run_id() {
        let line = LogLine {
            seq: 1,
            at: chrono::Utc
                .with_ymd_and_hms(2026, 11, 22, 10, 3, 12)
                .unwrap(),
            level: LogLevel::Info,
            asset: None,
            message: "run started".to_owned(),
        };
        assert_eq!(
            serde_json::to_string(&LogJson::new(Some(&RunId::new("0193")), &line)).unwrap(),
            r#"{"asset":null,"at":"2026-11-22T10:03:12.000000Z","level":"info","message":"run started","run_id":"0193","seq":1}"#
        );
    }

    #[test]
    fn limits_cursors_and_run_ids_are_checked() {
        assert_eq!(parse_limit(None, 50, 500).unwrap(), 50);
        assert_eq!(parse_limit(Some(500), 50, 500).unwrap(), 500);
        for bad in [0, 501] {
            assert_eq!(
                parse_limit(Some(bad), 50, 500).unwrap_err().message(),
                format!("limit must be between 1 and 500, not {bad}")
            );
        }
        let (at, id) = parse_cursor(Some("1795341792000000~0193-ab"))
            .unwrap()
            .unwrap();
        assert_eq!(super::cursor(at, &id), "1795341792000000~0193-ab");
        assert!(parse_cursor(None).unwrap().is_none());
        for bad in ["nonsense", "1~", "x~id", "1~a b", "1~a/b"] {
            assert_eq!(
                parse_cursor(Some(bad)).unwrap_err().message(),
                format!("invalid cursor {bad:?}")
            );
        }
        assert_eq!(parse_run_id("0193-ab").unwrap().as_str(), "0193-ab");
        for bad in ["", "a b", "../etc", &"a".repeat(65)] {
            assert!(parse_run_id(bad).is_err(), "{bad}");
        }
    }
}
