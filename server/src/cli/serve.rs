//! `freshet serve [--addr ADDR] [--token TOKEN] [--read-token TOKEN] [--no-automation]`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use freshet_core::Project;
use freshet_core::freshness::SystemClock;

use super::{open, shutdown_signal};
use crate::serve;

/// The tokens given on the command line or in the environment.
#[derive(Debug)]
pub(super) struct Tokens {
    /// `--token`/`FRESHET_TOKEN`: actions, and reads beyond loopback.
    pub(super) action: Option<String>,
    /// `--read-token`/`FRESHET_READ_TOKEN`: reads only, beyond loopback.
    pub(super) read: Option<String>,
}

/// Binds, prints where and the token (once), and serves until Ctrl-C.
pub(super) async fn serve(
    project: &Project,
    addr: SocketAddr,
    tokens: Tokens,
    automation: bool,
    reload: super::Reload,
) -> anyhow::Result<ExitCode> {
    // A bad token is refused before the store is opened (and perhaps created).
    if crate::logs_are_json() && tokens.action.as_deref().is_none_or(|t| t.trim().is_empty()) {
        anyhow::bail!(
            "with --log-format json, set FRESHET_TOKEN (or --token): a generated token would be \
             written to the logs"
        );
    }
    let (token, generated) = token_to_use(tokens.action, "FRESHET_TOKEN")?;
    let read_token = match tokens.read.filter(|t| !t.trim().is_empty()) {
        Some(t) => Some(token_to_use(Some(t), "FRESHET_READ_TOKEN")?.0),
        None => None,
    };
    let (store, executor) = open(project).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let loopback = serve::is_loopback(&bound);
    let state = serve::AppState::new(
        project.clone(),
        store.clone(),
        executor,
        Arc::new(SystemClock),
        token.clone(),
        loopback,
    );
    if let Some(read) = read_token {
        state.set_read_token(read);
    }
    state.reload_on_change(reload.0, reload.1);
    if let Ok(url) = url::Url::parse(&format!("http://{bound}/")) {
        state.set_web_url(url);
    }
    let automation = automation.then(|| state.spawn_automation());
    crate::notice(&format!("serving http://{bound}/ (API under /api)"));
    if generated {
        crate::notice(&format!(
            "token for actions (shown once; set FRESHET_TOKEN to choose one): {token}"
        ));
    }
    if !loopback {
        crate::notice(
            "listening beyond this machine: every request needs a token (the read token or the \
             action token); the page asks for one",
        );
    }
    serve::serve(state, listener, shutdown_signal())
        .await
        .context("the server stopped")?;
    if let Some(automation) = automation {
        automation.abort();
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// The token given (trimmed; blank counts as none) if it is good enough, else a generated one;
/// and whether it was generated.
fn token_to_use(given: Option<String>, name: &str) -> anyhow::Result<(String, bool)> {
    match given.filter(|t| !t.trim().is_empty()) {
        Some(t) if t.trim().len() < 16 => {
            anyhow::bail!("{name} is too short: use at least 16 characters")
        }
        Some(t) if !serve::is_valid_token(t.trim()) => anyhow::bail!(
            "{name} has characters a bearer token cannot carry: use letters, digits and - . _ ~ + /"
        ),
        Some(t) => Ok((t.trim().to_owned(), false)),
        None => Ok((serve::generate_token(), true)),
    }
}

#[cfg(test)]
mod tests {
    use super::token_to_use;

    #[test]
    fn a_token_is_trimmed_checked_or_generated() {
        let given =
            |t: &str| token_to_use(Some(t.to_owned()), "FRESHET_TOKEN").map_err(|e| e.to_string());
        assert_eq!(
            given("  0123456789abcdef  "),
            Ok(("0123456789abcdef".to_owned(), false))
        );
        assert_eq!(
            given("short"),
            Err("FRESHET_TOKEN is too short: use at least 16 characters".to_owned())
        );
        assert!(
            given("0123456789abcdef\"<script>")
                .is_err_and(|e| e.contains("characters a bearer token cannot carry"))
        );
        for blank in [None, Some("   ".to_owned())] {
            let (token, generated) = token_to_use(blank, "FRESHET_TOKEN")
                .map_err(|e| e.to_string())
                .unwrap_or_default();
            assert!(generated);
            assert_eq!(token.len(), 64);
            assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
        }
    }
}
