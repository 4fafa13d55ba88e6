//! The web view's files, embedded in the binary: one page, its script modules (`app.js` the entry,
//! importing `core.js`, `graph.js`, `asset.js` and `runs.js`), its style and its icon.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::state::AppState;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const CORE_JS: &str = include_str!("../../web/core.js");
const GRAPH_JS: &str = include_str!("../../web/graph.js");
const ASSET_JS: &str = include_str!("../../web/asset.js");
const RUNS_JS: &str = include_str!("../../web/runs.js");
const AUTOMATION_JS: &str = include_str!("../../web/automation.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");
const FAVICON: &str = include_str!("../../web/favicon.svg");

const TOKEN_META: &str = r#"<meta name="freshet-token" content="">"#;

/// Scripts, styles and connections from this origin only, and never inside another site's frame.
pub(crate) const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
    script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'";

/// The page. On a loopback server (whose requests were checked to name a loopback host, so no
/// other site can read this through DNS rebinding) it carries the token; other origins cannot
/// read it (no CORS, no framing). Elsewhere the page asks the user for the token.
pub(crate) async fn index(State(state): State<AppState>) -> Response {
    // Tokens are checked to be token68 characters when the server starts; nothing to escape.
    let page = if state.0.loopback && super::is_valid_token(&state.0.token) {
        INDEX.replacen(
            TOKEN_META,
            &format!(r#"<meta name="freshet-token" content="{}">"#, state.0.token),
            1,
        )
    } else {
        INDEX.to_owned()
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    (headers, page).into_response()
}

pub(crate) async fn app_js() -> Response {
    script(APP_JS)
}

pub(crate) async fn core_js() -> Response {
    script(CORE_JS)
}

pub(crate) async fn graph_js() -> Response {
    script(GRAPH_JS)
}

pub(crate) async fn asset_js() -> Response {
    script(ASSET_JS)
}

pub(crate) async fn runs_js() -> Response {
    script(RUNS_JS)
}

pub(crate) async fn automation_js() -> Response {
    script(AUTOMATION_JS)
}

pub(crate) async fn style_css() -> Response {
    file("text/css; charset=utf-8", STYLE_CSS)
}

pub(crate) async fn favicon() -> Response {
    file("image/svg+xml", FAVICON)
}

/// A module script: browsers run modules only when served with a JavaScript type.
fn script(body: &'static str) -> Response {
    file("text/javascript; charset=utf-8", body)
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}
