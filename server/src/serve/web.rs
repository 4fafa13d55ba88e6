//! The web view's files, embedded in the binary: one page, its script modules (`app.js` the entry,
//! importing `core.js`, `graph.js`, `asset.js` and `runs.js`), its style and its icon.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
/// read it (no CORS, no framing). Elsewhere it carries the action token only to a request that
/// presented it (the page asks for it before an action otherwise).
pub(crate) async fn index(State(state): State<AppState>, request: HeaderMap) -> Response {
    let presented_action = super::presented_token(&request).is_some_and(|t| state.0.may_act(t));
    // Tokens are checked to be token68 characters when the server starts; nothing to escape.
    let page = if (state.0.loopback || presented_action) && super::is_valid_token(&state.0.token) {
        INDEX.replacen(
            TOKEN_META,
            &format!(r#"<meta name="freshet-token" content="{}">"#, state.0.token),
            1,
        )
    } else {
        INDEX.to_owned()
    };
    (html_headers(), page).into_response()
}

/// A page's headers: HTML, under the CSP.
fn html_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers
}

/// What the login page says when no token was presented.
pub(crate) const ASK_TOKEN: &str =
    "This Freshet server needs a token: its read token, or its action token to request runs too.";
/// What it says when the token presented is not one of this server's.
pub(crate) const WRONG_TOKEN: &str =
    "That token is not this server's. Enter its read token or its action token.";

/// The login page: a form and nothing of the project. Plain HTML (the CSP allows no inline style
/// or script, and nothing else is served without a token).
pub(crate) fn login_response(status: StatusCode, message: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Freshet: sign in</title>\n</head>\n<body>\n<h1>Freshet</h1>\n\
         <p id=\"login-message\">{message}</p>\n\
         <form method=\"post\" action=\"/login\">\n\
         <label>Token <input name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus></label>\n\
         <button type=\"submit\">Open</button>\n</form>\n</body>\n</html>\n"
    );
    (status, html_headers(), page).into_response()
}

/// `GET /login`: the form (a loopback server needs none, so it goes to the page).
pub(crate) async fn login_page(State(state): State<AppState>) -> Response {
    if state.0.loopback {
        return see_other("/", None);
    }
    login_response(StatusCode::OK, ASK_TOKEN)
}

/// `POST /login` with the form's `token`: a token of this server becomes the page's cookie
/// (HttpOnly, SameSite=Strict: sent only by this site's own pages, never readable by a script;
/// for 12 hours), then the page; any other answer is the form again. The page of one who signed
/// in with the action token carries that token for its own script to send with actions, as a
/// loopback server's page does.
pub(crate) async fn login(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    body: Bytes,
) -> Response {
    let client = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let sign_ins = &state.0.sign_ins;
    if let Some(wait) = sign_ins.refused(client, std::time::Instant::now()) {
        return login_response(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many wrong tokens from this address: try again in {} s.",
                wait.as_secs().max(1)
            ),
        );
    }
    let token = url::form_urlencoded::parse(&body)
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    if token.is_empty() || !super::is_valid_token(&token) || !state.0.may_read(&token) {
        sign_ins.failed(client, std::time::Instant::now());
        return login_response(StatusCode::FORBIDDEN, WRONG_TOKEN);
    }
    let cookie = format!(
        "{}={token}; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict",
        super::TOKEN_COOKIE
    );
    see_other("/", HeaderValue::from_str(&cookie).ok())
}

/// Failed sign-ins per client address: after [`SignIns::ALLOWED`] wrong tokens within
/// [`SignIns::WINDOW`], the address is refused (429) until the window since its first failure
/// has passed, so guessing a token goes at a few tries a minute. A request without a known
/// address (the router driven without a socket) counts as one client.
#[derive(Debug, Default)]
pub(crate) struct SignIns(std::sync::Mutex<HashMap<Option<IpAddr>, (u32, Instant)>>);

impl SignIns {
    const ALLOWED: u32 = 5;
    const WINDOW: Duration = Duration::from_secs(60);

    /// How long `client` must wait, if it is refused now.
    fn refused(&self, client: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (count, since) = map.get(&client)?;
        let end = *since + Self::WINDOW;
        (*count >= Self::ALLOWED && now < end).then(|| end - now)
    }

    /// Counts a wrong token from `client`.
    fn failed(&self, client: Option<IpAddr>, now: Instant) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded: windows that have passed are forgotten.
        map.retain(|_, (_, since)| now < *since + Self::WINDOW);
        let entry = map.entry(client).or_insert((0, now));
        entry.0 += 1;
    }
}

fn see_other(to: &'static str, cookie: Option<HeaderValue>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::LOCATION, HeaderValue::from_static(to));
    if let Some(cookie) = cookie {
        headers.insert(header::SET_COOKIE, cookie);
    }
    (StatusCode::SEE_OTHER, headers).into_response()
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
