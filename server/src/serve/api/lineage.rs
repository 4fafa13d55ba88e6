//! `/api/lineage`: the dependency graph, laid out, with each node's status.

use axum::extract::State;
use axum::response::Response;

use super::{
    ApiResult, SelectionQuery, cached, given, json_body, json_response, run_state, select,
};
use crate::json::{EdgeJson, LineageLayoutJson, NodeJson};
use crate::serve::error::ApiQuery;
use crate::serve::layout::{self, Layout, NODE_HEIGHT, NODE_WIDTH};
use crate::serve::state::{AppState, Shared, Snapshot};

pub(crate) async fn lineage(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SelectionQuery>,
) -> ApiResult<Response> {
    let shared = &state.0;
    let snapshot = shared.snapshot().await?;
    let graph = snapshot.graph();
    let selected = match given(q.selection.as_deref()) {
        Some(text) => {
            let keys = select(&snapshot, text)?;
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
    let body = match &selected {
        // The whole graph is what the web view asks for again and again: kept with the snapshot.
        None => cached(&snapshot.lineage_body, || {
            json_body(&laid_out(shared, &snapshot, &snapshot.loaded.layout))
        })?,
        Some(include) => json_body(&laid_out(
            shared,
            &snapshot,
            &layout::layout(graph, Some(include)),
        ))?,
    };
    Ok(json_response(body))
}

/// The nodes `layout` places, with their statuses, and the edges between them.
fn laid_out<'a>(
    shared: &'a Shared,
    snapshot: &'a Snapshot,
    layout: &Layout,
) -> LineageLayoutJson<'a> {
    let graph = snapshot.graph();
    let running = shared.running();
    let mut nodes = Vec::with_capacity(graph.len());
    let mut edges = Vec::new();
    for &i in graph.order() {
        let (Some((layer, x, y)), Some(report)) = (layout.at[i], snapshot.report_at(i)) else {
            continue;
        };
        let def = graph.def(i);
        let run_state = run_state(&running, snapshot, &def.key);
        let (status, freshness) = freshet_core::Gone::shown(snapshot.gone(&def.key), report);
        let (status, freshness) = (status.as_str(), freshness.as_str());
        nodes.push(NodeJson {
            key: def.key.as_str(),
            kind: def.kind.as_str(),
            group: &def.group,
            layer,
            x,
            y,
            status,
            run_state,
            display_status: run_state.unwrap_or(status),
            freshness,
            partitions: snapshot
                .partitions(&def.key)
                .map(|p| p.counts.iter().map(|(s, n)| (s.as_str(), *n)).collect()),
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
    LineageLayoutJson {
        nodes,
        edges,
        width: layout.width,
        height: layout.height,
        node_width: NODE_WIDTH,
        node_height: NODE_HEIGHT,
    }
}
