//! The HTTP API through its router, without sockets: every endpoint, its errors and its paging,
//! on a copy of the demo project with a real SQLite store and real Parquet files.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use freshet_core::freshness::SystemClock;
use freshet_core::{Executor, Project, Store};
use freshet_server::serve::{self, AppState};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::support::TempProject;

const TOKEN: &str = "test-token-0123456789abcdef";

/// A demo project, materialized, then with `daily_revenue`'s logic edited (stale by code), served
/// by an in-process router.
struct Api {
    project: TempProject,
    router: Router,
}

impl Api {
    async fn demo() -> Self {
        let project = TempProject::demo_with_stale_revenue();
        let router = router_for(&project, true).await;
        Self { project, router }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(text) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(text.to_owned())
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
            .await
            .expect("body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{uri}: not JSON: {}", String::from_utf8_lossy(&bytes)));
        (status, value)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None, None).await
    }

    async fn post(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        self.call(Method::POST, uri, Some(TOKEN), Some(body)).await
    }

    /// Waits (at most 30 s) for a run to end and returns its page.
    async fn finished(&self, id: &str) -> Value {
        for _ in 0..300 {
            let (status, page) = self.get(&format!("/api/runs/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let s = page["run"]["status"].as_str().unwrap_or("");
            if !matches!(s, "queued" | "running") {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("run {id} did not finish within 30 s");
    }

    /// Requests a run with `body`, waits for it and checks it succeeded.
    async fn run_to_success(&self, body: &str) -> Value {
        let (status, run) = self.post("/api/runs", body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{run}");
        let page = self.finished(run["run_id"].as_str().unwrap()).await;
        assert_eq!(page["run"]["status"], "succeeded", "{page}");
        page
    }

    fn asset<'a>(list: &'a Value, key: &str) -> &'a Value {
        list["assets"]
            .as_array()
            .and_then(|a| a.iter().find(|v| v["key"] == key))
            .unwrap_or_else(|| panic!("{key} not listed"))
    }
}

async fn router_for(project: &TempProject, loopback: bool) -> Router {
    router_with(project, loopback, None).await
}

/// The router, with a read token beside the action token when `read_token` is given.
async fn router_with(project: &TempProject, loopback: bool, read_token: Option<&str>) -> Router {
    let project = Project::load(
        project.path(),
        &freshet_assets::catalogues(),
        &project.overrides(),
    )
    .expect("project loads");
    let store = Store::open(project.database_url()).await.expect("store");
    let executor = Executor::new(project.clone(), store.clone()).expect("executor");
    let state = AppState::new(
        project,
        store,
        executor,
        Arc::new(SystemClock),
        TOKEN.to_owned(),
        loopback,
    );
    if let Some(read) = read_token {
        state.set_read_token(read.to_owned());
    }
    serve::router(state)
}

/// Sends a request with `headers` and returns its status, `Set-Cookie` and body as text.
async fn raw_call(
    router: &Router,
    method: Method,
    uri: &str,
    headers: &[(header::HeaderName, String)],
    body: &str,
) -> (StatusCode, Option<String>, String) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .expect("body");
    (status, cookie, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn lists_assets_with_status_causes_and_selection() {
    let api = Api::demo().await;
    let (status, list) = api.get("/api/assets").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["count"], 10);
    let revenue = Api::asset(&list, "daily_revenue");
    assert_eq!(revenue["status"], "stale");
    assert_eq!(revenue["display_status"], "stale");
    assert_eq!(revenue["group"], "marts");
    assert_eq!(revenue["kind"], "sql");
    assert_eq!(revenue["causes"][0]["category"], "code");
    let words = revenue["causes"][0]["words"].as_str().unwrap_or("");
    assert!(
        words.starts_with("has a new code version: materialized at "),
        "{words}"
    );
    assert_eq!(revenue["freshness"]["state"], "pass");
    assert_eq!(revenue["freshness"]["next_state"], "warn");
    assert!(revenue["data_time"].is_string());
    assert_eq!(Api::asset(&list, "raw_orders")["kind"], "source");
    assert_eq!(Api::asset(&list, "daily_sessions")["status"], "fresh");

    let (_, stale) = api.get("/api/assets?selection=status:stale").await;
    let keys: Vec<&str> = stale["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["daily_revenue"]);
    let (_, marts) = api.get("/api/assets?selection=group:marts").await;
    assert_eq!(marts["count"], 3);
    let (_, up) = api.get("/api/assets?selection=%2Bdaily_revenue").await;
    assert_eq!(up["count"], 6, "{up}");

    let (status, error) = api.get("/api/assets?selection=%2Bnope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error["error"],
        "invalid selection \"+nope\": column 2: unknown asset \"nope\""
    );
    let long = format!("/api/assets?selection={}", "a%20or%20".repeat(500) + "a");
    let (status, error) = api.get(&long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error["error"],
        "selection too long: at most 2048 characters"
    );
    let (status, error) = api.get("/api/assets?selection=status:soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"].as_str().unwrap().contains("column 8"),
        "{error}"
    );

    let (status, project) = api.get("/api/project").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(project["name"], "shop_demo");
    assert_eq!(project["asset_count"], 10);
    assert_eq!(project["groups"], json!(["marts", "raw", "staging"]));
}

#[tokio::test]
async fn one_asset_with_definition_schema_history_and_preview() {
    let api = Api::demo().await;
    // Two more versions of daily_revenue, so history has three.
    api.project.ok(&["materialize", "daily_revenue"]);
    api.project.ok(&["materialize", "daily_revenue"]);

    let (status, asset) = api.get("/api/assets/daily_revenue").await;
    assert_eq!(status, StatusCode::OK, "{asset}");
    assert!(
        asset["sql"]
            .as_str()
            .unwrap()
            .contains("count(order_id) AS orders")
    );
    assert_eq!(
        asset["origin"],
        json!({"type": "file", "path": "sql/marts/daily_revenue.sql"})
    );
    assert_eq!(asset["owners"], json!(["finance@shop.example"]));
    assert_eq!(asset["deps"], json!(["orders_enriched"]));
    assert_eq!(asset["status"], "fresh");
    assert_eq!(asset["current"]["kind"], "materialization");
    assert_eq!(asset["current"]["row_count"], 61);
    let columns: Vec<&str> = asset["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["order_date", "orders", "customers", "revenue"]);
    assert_eq!(asset["schema"][1]["type"], "Int64");

    let (_, rust) = api.get("/api/assets/web_sessions").await;
    assert_eq!(rust["origin"]["type"], "rust");
    assert!(
        rust["origin"]["location"]
            .as_str()
            .unwrap()
            .contains("sessions.rs:"),
        "{rust}"
    );
    let (_, source) = api.get("/api/assets/raw_orders").await;
    assert_eq!(source["current"]["kind"], "observation");
    assert_eq!(source["source"]["format"], "csv");
    assert_eq!(source["dependents"], json!(["stg_orders"]));

    // History, newest first, two per page.
    let (status, first) = api.get("/api/assets/daily_revenue/history?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], asset["current"]["id"]);
    assert!(items[0]["at"].as_str().unwrap() > items[1]["at"].as_str().unwrap());
    let next = first["next"].as_str().expect("a next page");
    let (_, second) = api
        .get(&format!(
            "/api/assets/daily_revenue/history?limit=2&cursor={next}"
        ))
        .await;
    let rest = second["items"].as_array().unwrap();
    assert_eq!(rest.len(), 1, "{second}");
    assert!(rest[0]["at"].as_str().unwrap() < items[1]["at"].as_str().unwrap());
    assert_eq!(second["next"], Value::Null);
    // A full last page says it is the last, as a page of runs does.
    let (_, all) = api.get("/api/assets/daily_revenue/history?limit=3").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");
    assert_eq!(all["next"], Value::Null, "{all}");
    let oldest = rest[0]["id"].as_str().unwrap().to_owned();
    let (_, observations) = api.get("/api/assets/raw_orders/history").await;
    assert_eq!(observations["items"][0]["kind"], "observation");

    for bad in [
        "limit=0",
        "limit=501",
        "limit=ten",
        "cursor=nonsense",
        "cursor=1~x%20y",
    ] {
        let (status, error) = api
            .get(&format!("/api/assets/daily_revenue/history?{bad}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {error}");
        assert!(error["error"].is_string());
    }

    // Preview of the current version and of an older one.
    let (status, preview) = api.get("/api/assets/daily_revenue/preview?limit=3").await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["rows"].as_array().unwrap().len(), 3);
    assert_eq!(preview["columns"][0]["name"], "order_date");
    assert!(preview["rows"][0][0].as_str().unwrap().starts_with("2026-"));
    let (status, old) = api
        .get(&format!(
            "/api/assets/daily_revenue/preview?version={oldest}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{old}");
    assert_eq!(old["version"], oldest);
    let (status, _) = api
        .get("/api/assets/daily_revenue/preview?version=01a20000-0000-7000-8000-000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .get("/api/assets/daily_revenue/preview?limit=100000")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, raw) = api.get("/api/assets/raw_orders/preview?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert_eq!(raw["rows"].as_array().unwrap().len(), 2);

    // Bad and unknown keys.
    let (status, error) = api.get("/api/assets/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"], "unknown asset \"nope\"");
    let (status, error) = api.get("/api/assets/bad%20key").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid asset key \"bad key\""),
        "{error}"
    );
    let (status, _) = api.get("/api/assets/nope/history").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lineage_is_laid_out_left_to_right() {
    let api = Api::demo().await;
    let (status, lineage) = api.get("/api/lineage").await;
    assert_eq!(status, StatusCode::OK);
    let nodes = lineage["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 10);
    assert_eq!(lineage["edges"].as_array().unwrap().len(), 8);
    let at = |key: &str| {
        let n = nodes.iter().find(|n| n["key"] == key).unwrap();
        (n["x"].as_f64().unwrap(), n["y"].as_f64().unwrap())
    };
    for edge in lineage["edges"].as_array().unwrap() {
        let (from, to) = (
            at(edge["from"].as_str().unwrap()),
            at(edge["to"].as_str().unwrap()),
        );
        assert!(from.0 < to.0, "{edge} does not point right");
    }
    let (w, h) = (
        lineage["node_width"].as_f64().unwrap(),
        lineage["node_height"].as_f64().unwrap(),
    );
    for (i, a) in nodes.iter().enumerate() {
        let (ax, ay) = at(a["key"].as_str().unwrap());
        assert!(ax + w <= lineage["width"].as_f64().unwrap() + 0.5);
        assert!(ay + h <= lineage["height"].as_f64().unwrap() + 0.5);
        for b in &nodes[i + 1..] {
            let (bx, by) = at(b["key"].as_str().unwrap());
            assert!(
                (ax - bx).abs() >= w || (ay - by).abs() >= h,
                "{a} overlaps {b}"
            );
        }
    }
    let revenue = nodes.iter().find(|n| n["key"] == "daily_revenue").unwrap();
    assert_eq!(revenue["display_status"], "stale");
    assert_eq!(revenue["freshness"], "pass");

    let (_, sub) = api.get("/api/lineage?selection=%2Bdaily_revenue").await;
    assert_eq!(sub["nodes"].as_array().unwrap().len(), 6);
    assert_eq!(sub["edges"].as_array().unwrap().len(), 5);
    let (status, _) = api.get("/api/lineage?selection=(").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn actions_need_the_token_and_a_small_valid_body() {
    let api = Api::demo().await;
    let body = r#"{"selection": "daily_revenue"}"#;
    for uri in [
        "/api/runs",
        "/api/observe",
        "/api/runs/01a20000-0000-7000-8000-000000000000/cancel",
    ] {
        let (status, error) = api.call(Method::POST, uri, None, Some(body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(
            error["error"]
                .as_str()
                .unwrap()
                .starts_with("missing bearer token")
        );
        let (status, error) = api
            .call(
                Method::POST,
                uri,
                Some("wrong-token-0123456789"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(error["error"], "wrong bearer token");
    }
    let big = format!(r#"{{"selection": "{}"}}"#, "a".repeat(20_000));
    let (status, error) = api.post("/api/runs", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        error["error"],
        "request body too large: at most 16384 bytes"
    );
    let (status, _) = api.post("/api/runs", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, error) = api
        .post("/api/runs", r#"{"selection": "x", "force": true}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `force`"),
        "{error}"
    );
    let (status, error) = api.post("/api/runs", r#"{"selection": "nope+"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("unknown asset \"nope\""),
        "{error}"
    );
    let (status, error) = api
        .post("/api/runs", r#"{"selection": "raw_orders"}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"].as_str().unwrap().contains("only sources"),
        "{error}"
    );
    let (status, _) = api
        .post("/api/observe", r#"{"selection": "daily_revenue"}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // None of it started a run.
    let (_, runs) = api.get("/api/runs").await;
    assert_eq!(
        runs["items"].as_array().unwrap().len(),
        1,
        "only the first materialize: {runs}"
    );

    let (status, error) = api.get("/api/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"], "no such endpoint");
    let (status, _) = api
        .call(Method::DELETE, "/api/runs", Some(TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

/// An asset whose file does not load is listed as `broken` with its error, and a run that
/// would include it is refused; the rest runs.
#[tokio::test]
async fn a_broken_file_is_shown_and_refused_while_the_rest_runs() {
    let project = TempProject::demo_with_stale_revenue();
    project.write("sql/marts/broken.sql", "select * from daily_revenue whre 1");
    let api = Api {
        router: router_for(&project, true).await,
        project,
    };
    let (status, list) = api.get("/api/assets").await;
    assert_eq!(status, StatusCode::OK);
    let broken = Api::asset(&list, "broken");
    assert_eq!(broken["run_state"], "broken");
    assert_eq!(broken["display_status"], "broken");
    let error = broken["load_error"].as_str().unwrap();
    assert!(
        error.starts_with("sql/marts/broken.sql: invalid SQL: "),
        "{error}"
    );
    assert_eq!(
        Api::asset(&list, "daily_revenue")["load_error"],
        Value::Null
    );
    let (_, page) = api.get("/api/assets/broken").await;
    assert_eq!(page["load_error"], error);

    for body in [
        "{}",
        r#"{"selection": "broken"}"#,
        r#"{"selection": "daily_revenue or broken"}"#,
    ] {
        let (status, refused) = api.post("/api/runs", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(refused["error"], error, "{body}");
    }
    api.run_to_success(r#"{"selection": "daily_revenue"}"#)
        .await;
    assert!(api.project.path().join("sql/marts/broken.sql").exists());
}

/// A source whose files are gone is shown `missing`, freshness `unknown`, with why, in the list,
/// its page and the lineage.
#[tokio::test]
async fn a_source_whose_files_are_gone_is_shown_missing() {
    let project = TempProject::demo_with_stale_revenue();
    let router = router_for(&project, true).await;
    let api = Api { project, router };
    let (_, list) = api.get("/api/assets").await;
    assert_eq!(Api::asset(&list, "raw_customers")["status"], "fresh");
    let location = api.project.path().join("data/customers.csv");
    std::fs::remove_file(&location).expect("remove");
    // A new router: the first snapshot looks at the files.
    let api = Api {
        router: router_for(&api.project, true).await,
        project: api.project,
    };
    let (_, list) = api.get("/api/assets").await;
    let gone = Api::asset(&list, "raw_customers");
    assert_eq!(gone["status"], "missing", "{gone}");
    assert_eq!(gone["display_status"], "missing", "{gone}");
    assert_eq!(
        gone["files_gone"]["reason"],
        format!("no files match {}", location.display())
    );
    assert!(gone["files_gone"]["last_seen"].is_string(), "{gone}");
    let (_, page) = api.get("/api/assets/raw_customers").await;
    assert_eq!(page["files_gone"], gone["files_gone"]);
    let (_, lineage) = api.get("/api/lineage").await;
    let node = lineage["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["key"] == "raw_customers"))
        .expect("node");
    assert_eq!(node["display_status"], "missing", "{node}");
}

#[tokio::test]
async fn a_requested_run_makes_the_stale_asset_fresh_and_records_its_steps() {
    let api = Api::demo().await;
    let (status, accepted) = api
        .post("/api/runs", r#"{"selection": "daily_revenue"}"#)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["run_id"].as_str().unwrap().to_owned();
    let page = api.finished(&id).await;
    assert_eq!(page["run"]["status"], "succeeded", "{page}");
    assert_eq!(page["run"]["selection"], "daily_revenue");
    assert_eq!(
        page["run"]["steps"],
        json!({"total": 1, "materialized": 1, "skipped": 0, "failed": 0, "cancelled": 0})
    );
    assert_eq!(page["steps"][0]["asset"], "daily_revenue");
    assert_eq!(page["steps"][0]["state"], "materialized");
    assert_eq!(page["steps"][0]["row_count"], 61);
    assert!(page["steps"][0]["duration_ms"].as_f64().unwrap() > 0.0);
    let logs: Vec<&str> = page["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert!(
        logs.iter()
            .any(|l| l.starts_with("materialized daily_revenue: 61 rows")),
        "{logs:?}"
    );
    assert!(
        logs.last()
            .unwrap()
            .starts_with("run succeeded: 1 materialized"),
        "{logs:?}"
    );
    // A client following the run asks only for the lines after the last it has.
    let seqs: Vec<u64> = page["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let (status, rest) = api.get(&format!("/api/runs/{id}?after=2")).await;
    assert_eq!(status, StatusCode::OK);
    let after: Vec<u64> = rest["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(after, seqs[2..].to_vec());
    assert_eq!(rest["steps"], page["steps"]);
    let (status, _) = api.get(&format!("/api/runs/{id}?after=-1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, asset) = api.get("/api/assets/daily_revenue").await;
    assert_eq!(asset["status"], "fresh");
    assert_eq!(asset["current"]["run_id"], id.as_str());

    // Nothing stale left: a stale-only run says so and succeeds.
    let (_, accepted) = api
        .post("/api/runs", r#"{"selection": null, "stale_only": true}"#)
        .await;
    let empty = api.finished(accepted["run_id"].as_str().unwrap()).await;
    assert_eq!(empty["run"]["status"], "succeeded");
    assert_eq!(empty["run"]["steps"]["total"], 0);
    assert!(
        empty["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "nothing to materialize: every selected asset is fresh")
    );

    // Listing and filtering runs, a page at a time.
    let (_, all) = api.get("/api/runs").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    let (_, page1) = api.get("/api/runs?limit=2").await;
    assert_eq!(page1["items"][0]["id"], empty["run"]["id"]);
    assert_eq!(page1["items"][1]["id"], id.as_str());
    let next = page1["next"].as_str().unwrap();
    let (_, page2) = api.get(&format!("/api/runs?limit=2&cursor={next}")).await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert_eq!(page2["next"], Value::Null);
    let (_, touching) = api.get("/api/runs?asset=daily_revenue").await;
    assert_eq!(touching["items"].as_array().unwrap().len(), 2);
    let (_, failed) = api.get("/api/runs?status=failed").await;
    assert_eq!(failed["items"].as_array().unwrap().len(), 0);
    let (status, _) = api.get("/api/runs?status=done").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api.get("/api/runs?limit=1000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, error) = api.post(&format!("/api/runs/{id}/cancel"), "{}").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error["error"], format!("run {id} has already succeeded"));
    let (status, _) = api
        .get("/api/runs/01a20000-0000-7000-8000-000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.get("/api/runs/not%20an%20id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn observe_runs_and_a_queued_run_can_be_cancelled() {
    let api = Api::demo().await;
    let (status, accepted) = api.post("/api/observe", r#"{"selection": null}"#).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let page = api.finished(accepted["run_id"].as_str().unwrap()).await;
    assert_eq!(page["run"]["kind"], "observe");
    assert_eq!(page["run"]["status"], "succeeded");
    assert!(
        page["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "observed raw_orders: unchanged")
    );

    // Runs go one at a time: the second waits behind the first and is cancelled while it does.
    let (_, first) = api
        .post("/api/runs", r#"{"selection": "*", "stale_only": false}"#)
        .await;
    let (_, second) = api
        .post("/api/runs", r#"{"selection": "daily_revenue"}"#)
        .await;
    let second = second["run_id"].as_str().unwrap().to_owned();
    let (status, _) = api.post(&format!("/api/runs/{second}/cancel"), "").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let cancelled = api.finished(&second).await;
    assert_eq!(cancelled["run"]["status"], "cancelled", "{cancelled}");
    let first = api.finished(first["run_id"].as_str().unwrap()).await;
    assert_eq!(first["run"]["status"], "succeeded", "{first}");
    // The cancelled run changed nothing: daily_revenue is still as the first run left it.
    let (_, asset) = api.get("/api/assets/daily_revenue").await;
    assert_eq!(asset["current"]["run_id"], first["run"]["id"]);
}

#[tokio::test]
async fn live_updates_announce_runs() {
    let api = Api::demo().await;
    let response = api
        .router
        .clone()
        .oneshot(
            Request::get("/api/events")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut stream = response.into_body().into_data_stream();
    let (_, accepted) = api
        .post("/api/runs", r#"{"selection": "daily_revenue"}"#)
        .await;
    let id = accepted["run_id"].as_str().unwrap().to_owned();
    let mut seen = String::new();
    let finished = format!(r#"{{"run_id":"{id}","status":"succeeded"}}"#);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    use futures::StreamExt as _;
    while !seen.contains(&finished) {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the run's end within 30 s")
            .expect("stream open")
            .expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains(&format!(
            "event: run\ndata: {{\"run_id\":\"{id}\",\"status\":\"queued\"}}"
        )),
        "{seen}"
    );
    assert!(seen.contains("event: step\ndata: "), "{seen}");
    assert!(seen.contains("\"state\":\"materialized\""), "{seen}");
    assert!(seen.contains("event: log\ndata: "), "{seen}");
    assert!(seen.contains("event: assets\n"), "{seen}");
}

#[tokio::test]
async fn the_page_carries_the_token_only_for_loopback_hosts() {
    let api = Api::demo().await;
    let page = |router: Router, host: &'static str| async move {
        let response = router
            .oneshot(
                Request::get("/")
                    .header(header::HOST, host)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        let status = response.status();
        let csp = response
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, csp, String::from_utf8_lossy(&body).into_owned())
    };
    let (status, csp, html) = page(api.router.clone(), "127.0.0.1:3000").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!(r#"<meta name="freshet-token" content="{TOKEN}">"#)));
    let csp = csp.expect("a CSP");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let (_, _, html) = page(api.router.clone(), "localhost:3000").await;
    assert!(html.contains(TOKEN));
    // Another name pointing here (DNS rebinding) gets nothing, not even the page.
    let (status, _, html) = page(api.router.clone(), "evil.example:3000").await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    assert!(!html.contains(TOKEN));
    // A server listening beyond loopback answers the page only to a token, and carries the
    // token only to a request that presented it.
    let open = router_for(&api.project, false).await;
    let (status, _, html) = page(open.clone(), "data.example.com").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!html.contains(TOKEN));
    assert!(
        html.contains(r#"<form method="post" action="/login">"#),
        "{html}"
    );
    let cookie = [(header::COOKIE, format!("theme=dark; freshet_token={TOKEN}"))];
    let (status, _, html) = raw_call(&open, Method::GET, "/", &cookie, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!(r#"<meta name="freshet-token" content="{TOKEN}">"#)));
}

/// Beyond loopback: every route, the page and the metrics included, refuses a request without
/// one of the server's tokens; the read token reads but cannot act; `/login` turns a token into
/// the page's cookie, and that cookie alone never makes a POST.
#[tokio::test]
async fn beyond_loopback_nothing_answers_without_a_token() {
    const READ: &str = "read-only-token-0123456789";
    let project = TempProject::demo_with_stale_revenue();
    let router = router_with(&project, false, Some(READ)).await;
    let mut routes: Vec<(&str, String)> = serve::ROUTES
        .iter()
        .map(|(method, path)| {
            let uri = path
                .replace("{key}", "daily_revenue")
                .replace("{id}", "01a20000-0000-7000-8000-000000000000");
            (*method, uri)
        })
        .collect();
    for page in [
        "/",
        "/app.js",
        "/core.js",
        "/style.css",
        "/favicon.svg",
        "/metrics",
        "/nowhere",
    ] {
        routes.push(("GET", page.to_owned()));
    }
    let bearer = |t: &str| vec![(header::AUTHORIZATION, format!("Bearer {t}"))];
    for (method, uri) in &routes {
        let method: Method = method.parse().unwrap();
        let (status, _, body) = raw_call(&router, method.clone(), uri, &[], "{}").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}: {body}");
        assert!(
            !body.contains("daily_revenue") && !body.contains("orders"),
            "{method} {uri} leaked: {body}"
        );
        let (status, _, _) = raw_call(
            &router,
            method.clone(),
            uri,
            &bearer("not-this-servers-token"),
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}");
        if method == Method::POST {
            // The read token and a cookie are not the action token's header.
            let (status, _, _) = raw_call(&router, method.clone(), uri, &bearer(READ), "{}").await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}");
            let cookie = [(header::COOKIE, format!("freshet_token={TOKEN}"))];
            let (status, _, _) = raw_call(&router, method.clone(), uri, &cookie, "{}").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        } else if uri != "/api/events" {
            let (status, _, body) = raw_call(&router, method.clone(), uri, &bearer(READ), "").await;
            assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                "{method} {uri} with the read token: {status} {body}"
            );
        }
    }
    let (status, _, body) = raw_call(
        &router,
        Method::GET,
        "/api/assets/daily_revenue/preview",
        &bearer(READ),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The login form: a wrong token gets the form again; a right one, the cookie and the page.
    let form = [(
        header::CONTENT_TYPE,
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let (status, cookie, body) = raw_call(
        &router,
        Method::POST,
        "/login",
        &form,
        "token=guess-guess-guess-guess",
    )
    .await;
    assert_eq!((status, cookie), (StatusCode::FORBIDDEN, None));
    assert!(
        body.contains("That token is not this server&#x27;s")
            || body.contains("That token is not this server's"),
        "{body}"
    );
    let (status, cookie, _) = raw_call(
        &router,
        Method::POST,
        "/login",
        &form,
        &format!("token={READ}"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("a cookie");
    assert_eq!(
        cookie,
        format!("freshet_token={READ}; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict")
    );
    let (status, _, html) = raw_call(
        &router,
        Method::GET,
        "/",
        &[(header::COOKIE, format!("freshet_token={READ}"))],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"<meta name="freshet-token" content="">"#),
        "the read token's page carries no action token"
    );
    // The action token acts.
    let mut act = bearer(TOKEN);
    act.push((header::CONTENT_TYPE, "application/json".to_owned()));
    let (status, _, body) = raw_call(&router, Method::POST, "/api/observe", &act, "{}").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// `/metrics` in Prometheus's text format: runs by status, assets by status and freshness, and
/// the steps this server's runs finished.
#[tokio::test]
async fn metrics_count_runs_assets_and_steps() {
    let api = Api::demo().await;
    api.run_to_success(r#"{"selection": "daily_revenue"}"#)
        .await;
    let (status, _, text) = raw_call(&api.router, Method::GET, "/metrics", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert_eq!(
        value("freshet_runs{status=\"succeeded\"}"),
        2.0,
        "the demo's first run and this one"
    );
    assert_eq!(value("freshet_runs{status=\"running\"}"), 0.0);
    assert_eq!(value("freshet_assets{status=\"fresh\"}"), 10.0);
    assert_eq!(value("freshet_assets{status=\"stale\"}"), 0.0);
    assert_eq!(value("freshet_assets_freshness{state=\"pass\"}"), 3.0);
    assert_eq!(value("freshet_queue_depth"), 0.0);
    assert_eq!(
        value("freshet_step_duration_seconds_count{outcome=\"materialized\"}"),
        1.0
    );
    assert_eq!(
        value("freshet_step_duration_seconds_bucket{outcome=\"materialized\",le=\"+Inf\"}"),
        1.0
    );
    assert!(value("freshet_step_duration_seconds_sum{outcome=\"materialized\"}") > 0.0);
    assert!(
        text.contains("# TYPE freshet_step_duration_seconds histogram"),
        "{text}"
    );
    assert!(text.contains("freshet_up{version=\""), "{text}");
}

#[tokio::test]
async fn openapi_documents_every_route_and_every_route_answers() {
    let api = Api::demo().await;
    let (status, doc) = api.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in serve::ROUTES {
        let operation = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} not documented"))[method.to_lowercase()];
        assert!(operation.is_object(), "{method} {path} not documented");
        assert!(operation["operationId"].is_string());
    }
    let mut documented = 0;
    for (path, item) in paths {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
        {
            documented += 1;
            assert!(
                serve::ROUTES
                    .iter()
                    .any(|(m, p)| m.eq_ignore_ascii_case(method) && p == path),
                "{method} {path} is documented but not routed"
            );
        }
    }
    assert_eq!(documented, serve::ROUTES.len());
    // Each route reaches a handler: not the fallback's 404 nor a 405.
    for (method, path) in serve::ROUTES {
        if *path == "/api/events" {
            continue; // never ends; covered by live_updates_announce_runs
        }
        let uri = path
            .replace("{key}", "daily_revenue")
            .replace("{id}", "01a20000-0000-7000-8000-000000000000");
        let method: Method = method.parse().unwrap();
        let (status, body) = api
            .call(method.clone(), &uri, Some(TOKEN), Some("{}"))
            .await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_ne!(body["error"], "no such endpoint", "{method} {uri}");
    }
}

#[test]
fn openapi_document_is_valid() {
    let python = crate::demo::python();
    let validator = std::path::Path::new(&python).with_file_name("openapi-spec-validator");
    let doc =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src/serve/openapi.json");
    let out = std::process::Command::new(&validator)
        .arg(&doc)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (tests/run.sh installs it): {e}",
                validator.display()
            )
        });
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains(": OK"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_a_run_that_another_process_owns() {
    let project = crate::support::long_project();
    let (mut child, run_id, _rx) = crate::support::start_materialize(&project);
    let api = Api {
        router: router_for(&project, true).await,
        project,
    };
    let (status, body) = api.post(&format!("/api/runs/{run_id}/cancel"), "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // The owner honours the request recorded in the store, and records the end itself.
    let page = api.finished(&run_id).await;
    assert_eq!(page["run"]["status"], "cancelled", "{page}");
    let mut code = None;
    for _ in 0..300 {
        if let Some(status) = child.try_wait().expect("try_wait") {
            code = status.code();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if code.is_none() {
        let _ = child.kill();
    }
    assert_eq!(code, Some(130), "the owning process exits as interrupted");
    let (_, assets) = api.get("/api/assets").await;
    assert_eq!(Api::asset(&assets, "big")["status"], "missing");
}

/// Requests made of the API's pieces, a little of anything, with and without the token: never a
/// 5xx, and every 4xx is `{"error": one line}`. `FRESHET_FUZZ_CASES` of them (2,000 unless set).
#[test]
fn fuzz_requests_never_fail_the_server() {
    use proptest::prelude::*;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let project = TempProject::demo_with_stale_revenue();
    let router = runtime.block_on(router_for(&project, true));
    let cases = std::env::var("FRESHET_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(2000);
    let segment = prop_oneof![
        Just("assets".to_owned()),
        Just("daily_revenue".to_owned()),
        Just("marts%2Fdaily_revenue".to_owned()),
        Just("history".to_owned()),
        Just("preview".to_owned()),
        Just("automation".to_owned()),
        Just("lineage".to_owned()),
        Just("runs".to_owned()),
        Just("cancel".to_owned()),
        Just("observe".to_owned()),
        Just("project".to_owned()),
        Just("01a20000-0000-7000-8000-000000000000".to_owned()),
        Just("%ZZ".to_owned()),
        Just("..".to_owned()),
        "[a-z0-9_%.-]{0,12}",
    ];
    let query = prop_oneof![
        Just(String::new()),
        "(selection|limit|cursor|after|version|status|asset|nope)=[a-z0-9:+*%_-]{0,12}"
            .prop_map(|q| format!("?{q}")),
        "\\?[a-z=&%0-9]{0,16}",
    ];
    let body = prop_oneof![
        Just(String::new()),
        Just("{}".to_owned()),
        Just(r#"{"selection": "+daily_revenue"}"#.to_owned()),
        Just(r#"{"selection": "nope", "stale_only": true}"#.to_owned()),
        Just(r#"{"selection": 7}"#.to_owned()),
        Just(r#"{"force": true}"#.to_owned()),
        "\\PC{0,24}",
    ];
    let method = prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::DELETE),
        Just(Method::PUT)
    ];
    let request = (
        method,
        proptest::collection::vec(segment, 0..4),
        query,
        body,
        any::<bool>(),
    );
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    });
    let sent = std::cell::Cell::new(0_u32);
    let result = runner.run(&request, |(method, segments, query, body, token)| {
        let uri = format!("/api/{}{query}", segments.join("/"));
        let Ok(uri) = uri.parse::<axum::http::Uri>() else {
            return Ok(()); // not a request a client can send
        };
        sent.set(sent.get() + 1);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri.clone())
            .header(header::CONTENT_TYPE, "application/json");
        if token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
        }
        let request = request.body(Body::from(body)).expect("request");
        let (status, streaming, bytes) = runtime.block_on(async {
            let response = router.clone().oneshot(request).await.expect("infallible");
            let status = response.status();
            let streaming = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            let bytes = if streaming {
                Default::default()
            } else {
                axum::body::to_bytes(response.into_body(), 64 << 20)
                    .await
                    .expect("body")
            };
            (status, streaming, bytes)
        });
        prop_assert!(!status.is_server_error(), "{method} {uri}: {status}");
        if status.is_client_error() && !streaming {
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|_| TestCaseError::fail(format!("{method} {uri}: not JSON")))?;
            let error = value["error"].as_str().unwrap_or_default();
            prop_assert!(
                !error.is_empty() && !error.contains('\n'),
                "{method} {uri}: {value}"
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let sent = sent.get();
    eprintln!("fuzz_requests_never_fail_the_server: {sent} of {cases} inputs sent as requests");
    assert!(
        sent >= cases * 9 / 10,
        "only {sent} of {cases} inputs were requests"
    );
}
