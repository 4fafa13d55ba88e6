//! `freshet serve`: the JSON API under `/api` (documented in `openapi.json`) and the web view,
//! from one process.
//!
//! **Invariant:** every state-changing request (every POST) carries the action token in its
//! `Authorization` header, compared in constant time, before its handler runs; a server on a
//! loopback address only answers requests naming a loopback host (no DNS rebinding); a server on
//! any other address answers nothing, page and metrics included, without a token (the read token
//! or the action token, as a bearer header or the cookie `/login` sets); there is no CORS, so
//! other origins can neither read responses nor send a token.
//!
//! **Boundary:** handlers translate HTTP to core calls and core values to JSON; what a status,
//! a plan or a run is stays in the core. Errors reaching a client are one line; internal ones are
//! a generic 500 with the detail in the log only.

mod api;
mod error;
mod layout;
mod metrics;
mod state;
mod web;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use state::AppState;

use error::ApiError;

/// The OpenAPI document of the API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Every API route, as `(method, path)` in the OpenAPI document's spelling.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/project"),
    ("GET", "/api/assets"),
    ("GET", "/api/assets/{key}"),
    ("GET", "/api/assets/{key}/history"),
    ("GET", "/api/assets/{key}/preview"),
    ("GET", "/api/assets/{key}/partitions"),
    ("GET", "/api/assets/{key}/automation"),
    ("GET", "/api/automation"),
    ("GET", "/api/lineage"),
    ("GET", "/api/runs"),
    ("POST", "/api/runs"),
    ("GET", "/api/runs/{id}"),
    ("POST", "/api/runs/{id}/cancel"),
    ("POST", "/api/observe"),
    ("GET", "/api/events"),
    ("GET", "/api/openapi.json"),
];

/// The API and the web view.
pub fn router(state: AppState) -> Router {
    let actions = Router::new()
        .route("/api/runs", post(api::request_run))
        .route("/api/runs/{id}/cancel", post(api::cancel))
        .route("/api/observe", post(api::request_observe))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let reads = Router::new()
        .route("/api/project", get(api::project))
        .route("/api/assets", get(api::assets))
        .route("/api/assets/{key}", get(api::asset))
        .route("/api/assets/{key}/history", get(api::history))
        .route("/api/assets/{key}/preview", get(api::preview))
        .route("/api/assets/{key}/partitions", get(api::partitions))
        .route("/api/assets/{key}/automation", get(api::asset_automation))
        .route("/api/automation", get(api::automation))
        .route("/api/lineage", get(api::lineage))
        .route("/api/runs", get(api::runs))
        .route("/api/runs/{id}", get(api::run))
        .route("/api/events", get(api::events))
        .route("/api/openapi.json", get(api::openapi))
        .route("/", get(web::index))
        .route("/app.js", get(web::app_js))
        .route("/core.js", get(web::core_js))
        .route("/graph.js", get(web::graph_js))
        .route("/asset.js", get(web::asset_js))
        .route("/runs.js", get(web::runs_js))
        .route("/automation.js", get(web::automation_js))
        .route("/style.css", get(web::style_css))
        .route("/favicon.svg", get(web::favicon))
        .route("/metrics", get(metrics::metrics))
        .route("/login", get(web::login_page).post(web::login));
    actions
        .merge(reads)
        .fallback(api::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_access,
        ))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .with_state(state)
}

/// Serves until `shutdown` completes. The token is printed by the caller.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let watcher = state.spawn_watcher();
    let shared = state.0.clone();
    let stopping = shared.clone();
    let service = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Open event streams would otherwise hold the shutdown forever.
            stopping.stopping.send_replace(true);
        })
        .await;
    watcher.abort();
    // Runs still going are cancelled and recorded as such, not left `running`.
    shared.cancel_all(std::time::Duration::from_secs(10)).await;
    result
}

/// Whether `addr` only accepts connections from this machine.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// A fresh random token: 64 hex digits (244 random bits).
pub fn generate_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether `token` is made of the characters a bearer token may carry (RFC 6750's token68), which
/// also makes it safe to put in the page as is.
pub fn is_valid_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    match given {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send the header `Authorization: Bearer <token>` \
             (printed by `freshet serve`, or set with FRESHET_TOKEN)",
        )
        .into_response(),
        Some(value) => {
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or("")
                .trim();
            if state.0.may_act(token) {
                next.run(request).await
            } else {
                ApiError::new(StatusCode::FORBIDDEN, "wrong bearer token").into_response()
            }
        }
    }
}

/// The cookie `/login` sets: the token, for the page's own requests (reads only: a POST needs the
/// header, which another site's form cannot send).
pub(crate) const TOKEN_COOKIE: &str = "freshet_token";

/// The token a request presents: its bearer header, else its cookie.
/// Another kind of `Authorization` (a proxy's basic authentication) is not a token: the
/// cookie counts then.
pub(crate) fn presented_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == TOKEN_COOKIE)
            .map(|(_, value)| value.trim())
    })
}

/// On a server beyond loopback, refuses every request (but `/login`) that does not present the
/// read token or the action token. A loopback server answers reads as before.
async fn require_access(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.0.loopback || request.uri().path() == "/login" {
        return next.run(request).await;
    }
    let page = request.uri().path() == "/";
    match presented_token(request.headers()) {
        Some(token) if state.0.may_read(token) => next.run(request).await,
        Some(_) if page => web::login_response(StatusCode::FORBIDDEN, web::WRONG_TOKEN),
        None if page => web::login_response(StatusCode::UNAUTHORIZED, web::ASK_TOKEN),
        Some(_) => ApiError::new(StatusCode::FORBIDDEN, "wrong token").into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this server needs a token: send the header `Authorization: Bearer <token>` \
             (its read token or its action token)",
        )
        .into_response(),
    }
}

/// Compares without stopping at the first difference or at a length mismatch: every byte of the
/// longer input is read, so timing does not reveal how much of the token a guess got right, nor
/// its length.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// On a loopback server, refuses requests whose Host is not a loopback name: a page from another
/// site that rebinds its domain to 127.0.0.1 sends its own name.
async fn check_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.0.loopback
        && let Some(host) = request.headers().get(header::HOST)
        && !host.to_str().is_ok_and(is_loopback_host)
    {
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "this server answers only requests addressed to localhost or a loopback address",
        )
        .into_response();
    }
    next.run(request).await
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn security_headers(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if api || headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed here"),
    )
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"abcdefghijklmnop", b"abcdefghijklmnop"));
        assert!(!constant_time_eq(b"abcdefghijklmnop", b"abcdefghijklmnoq"));
        // A prefix, an extension, or padding with zero bytes is not the token.
        assert!(!constant_time_eq(b"abcdefgh", b"abcdefghijklmnop"));
        assert!(!constant_time_eq(
            b"abcdefghijklmnop",
            b"abcdefghijklmnop\0"
        ));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
