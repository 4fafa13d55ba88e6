//! Alerts: a JSON payload POSTed to each `[alerts] webhooks` URL when a run fails, when an
//! asset's freshness turns `fail`, and when either recovers. Delivery runs in a task of its own
//! (a time limit per attempt, three attempts with growing delays), so it never holds up a run;
//! each outcome is logged, naming the webhook's host only (its URL may carry a secret).
//!
//! # Payload (version 1)
//!
//! ```json
//! {"version": 1, "event": "run_failed", "project": "shop", "asset": "daily_revenue",
//!  "assets": ["daily_revenue"], "run_id": "0193...", "error": "failed: daily_revenue",
//!  "at": "2026-12-03T10:00:00.000000Z", "url": "http://127.0.0.1:3000/#/runs/0193...",
//!  "summary": "run 0193... failed: daily_revenue"}
//! ```
//!
//! At most eight deliveries go at once. `[alerts]` follows the project when it is loaded again.
//!
//! `event` is `run_failed`, `recovered` (an asset that failed is materialized again),
//! `freshness_failed` or `freshness_recovered`. `asset`, `run_id`, `error` and `url` may be
//! null. With `format = "slack"` the payload also has `text` (the summary), which Slack's
//! incoming webhooks show. Fields are added in later versions, never renamed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use freshet_core::store::{RunStatus, StepState};
use freshet_core::triggers::{AlertFormat, Alerts};
use freshet_core::{AssetKey, Project, RunId, Store};
use serde::Serialize;
use tokio::sync::Semaphore;
use url::Url;

/// The payload's version.
pub(crate) const PAYLOAD_VERSION: u32 = 1;

/// Delivery attempts per webhook.
const ATTEMPTS: u32 = 3;

/// One alert.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Alert {
    version: u32,
    event: &'static str,
    project: String,
    asset: Option<String>,
    assets: Vec<String>,
    run_id: Option<String>,
    error: Option<String>,
    at: String,
    url: Option<String>,
    summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

/// At most this many deliveries at once; the rest wait their turn.
const DELIVERIES: usize = 8;

/// Sends alerts as the project's `[alerts]` says; does nothing without webhooks.
pub(crate) struct Alerter {
    /// The settings of the project as last loaded (a reload that drops a webhook stops it).
    current: RwLock<Arc<Config>>,
    /// The server's address, for links when `web_url` is not configured.
    default_web_url: OnceLock<Url>,
    /// Assets whose latest step failed (`None` until first read from the store).
    failing: Mutex<Option<HashSet<AssetKey>>>,
    deliveries: Arc<Semaphore>,
}

/// `[alerts]` as loaded, with its HTTP client.
struct Config {
    settings: Alerts,
    project: String,
    client: Option<reqwest::Client>,
}

impl Config {
    fn of(project: &Project) -> Self {
        let settings = project.triggers().alerts.clone();
        let client = (!settings.webhooks.is_empty())
            .then(|| {
                reqwest::Client::builder()
                    .timeout(settings.timeout)
                    .build()
                    .ok()
            })
            .flatten();
        Self {
            settings,
            project: project.name().to_owned(),
            client,
        }
    }
}

impl Alerter {
    pub(crate) fn new(project: &Project) -> Self {
        Self {
            current: RwLock::new(Arc::new(Config::of(project))),
            default_web_url: OnceLock::new(),
            failing: Mutex::new(None),
            deliveries: Arc::new(Semaphore::new(DELIVERIES)),
        }
    }

    /// Takes up `[alerts]` of the project as loaded again.
    pub(crate) fn reload(&self, project: &Project) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(Config::of(project));
    }

    fn config(&self) -> Arc<Config> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The web view's address for links, unless `web_url` is configured.
    pub(crate) fn default_web_url(&self, url: Url) {
        let _ = self.default_web_url.set(url);
    }

    fn enabled(&self) -> bool {
        self.config().client.is_some()
    }

    fn link(&self, config: &Config, fragment: &str) -> Option<String> {
        config
            .settings
            .web_url
            .as_ref()
            .or_else(|| self.default_web_url.get())
            .map(|base| format!("{}#/{fragment}", base.as_str()))
    }

    fn alert(
        &self,
        event: &'static str,
        assets: Vec<String>,
        run_id: Option<&RunId>,
        error: Option<String>,
        at: DateTime<Utc>,
        summary: String,
    ) -> Alert {
        let config = self.config();
        let url = match (run_id, assets.first()) {
            (Some(run), _) => self.link(&config, &format!("runs/{run}")),
            (None, Some(asset)) => self.link(&config, &format!("assets/{asset}")),
            (None, None) => self.link(&config, ""),
        };
        Alert {
            version: PAYLOAD_VERSION,
            event,
            project: config.project.clone(),
            asset: assets.first().cloned(),
            assets,
            run_id: run_id.map(ToString::to_string),
            error,
            at: at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            url,
            text: (config.settings.format == AlertFormat::Slack).then(|| summary.clone()),
            summary,
        }
    }

    /// After a run of this process ended: `run_failed` when it failed, `recovered` for each
    /// asset it materialized whose latest step had failed.
    pub(crate) async fn run_ended(&self, store: &Store, run_id: &RunId, at: DateTime<Utc>) {
        if !self.enabled() {
            return;
        }
        let (Ok(Some(run)), Ok(steps)) = (store.run(run_id).await, store.run_steps(run_id).await)
        else {
            return;
        };
        let failing_before = self.failing(store).await;
        let failed: Vec<String> = steps
            .iter()
            .filter(|s| s.state == StepState::Failed)
            .map(|s| s.asset.clone())
            .collect();
        let recovered: Vec<String> = steps
            .iter()
            .filter(|s| s.state == StepState::Materialized)
            .map(|s| s.asset.clone())
            .filter(|a| failing_before.iter().any(|f| f.as_str() == a))
            .collect();
        {
            let mut failing = lock(&self.failing);
            let failing = failing.get_or_insert_with(HashSet::new);
            for asset in &recovered {
                failing.retain(|f| f.as_str() != asset);
            }
            failing.extend(failed.iter().filter_map(|a| AssetKey::parse(a).ok()));
        }
        if run.status == RunStatus::Failed {
            let error = run.error.clone();
            let summary = format!(
                "run {run_id} failed: {}",
                error.as_deref().unwrap_or("no error recorded")
            );
            self.send(self.alert("run_failed", failed, Some(run_id), error, at, summary));
        }
        for asset in recovered {
            let summary = format!("{asset} recovered: materialized by run {run_id}");
            self.send(self.alert("recovered", vec![asset], Some(run_id), None, at, summary));
        }
    }

    /// An asset's freshness turned `fail` (`failed`) or left it.
    pub(crate) fn freshness_changed(
        &self,
        asset: &AssetKey,
        failed: bool,
        policy: &str,
        at: DateTime<Utc>,
    ) {
        if !self.enabled() {
            return;
        }
        let (event, summary) = if failed {
            (
                "freshness_failed",
                format!("{asset} is overdue: freshness {policy} fails"),
            )
        } else {
            (
                "freshness_recovered",
                format!("{asset} is fresh again: freshness {policy} passes"),
            )
        };
        let error = failed.then(|| format!("freshness {policy} fails"));
        self.send(self.alert(event, vec![asset.to_string()], None, error, at, summary));
    }

    /// Reads which assets' latest step failed, so that the first run to materialize one of them
    /// after the start sends `recovered` (what `run_ended` compares with must predate the run).
    pub(crate) async fn seed(&self, store: &Store) {
        if self.enabled() {
            self.failing(store).await;
        }
    }

    async fn failing(&self, store: &Store) -> HashSet<AssetKey> {
        if let Some(known) = lock(&self.failing).clone() {
            return known;
        }
        let known: HashSet<AssetKey> = match store.failures().await {
            Ok(failures) => failures
                .iter()
                .filter_map(|f| AssetKey::parse(&f.asset).ok())
                .collect(),
            Err(_) => HashSet::new(),
        };
        lock(&self.failing).get_or_insert(known).clone()
    }

    /// Delivers `alert` to every webhook in a task of its own.
    fn send(&self, alert: Alert) {
        let config = self.config();
        let Some(client) = config.client.clone() else {
            return;
        };
        let Ok(body) = serde_json::to_vec(&alert) else {
            return;
        };
        tracing::info!(event = alert.event, summary = %alert.summary, "alert");
        for url in config.settings.webhooks.clone() {
            let (client, body) = (client.clone(), body.clone());
            let event = alert.event;
            let deliveries = self.deliveries.clone();
            tokio::spawn(async move {
                let Ok(_turn) = deliveries.acquire().await else {
                    return;
                };
                let host = url.host_str().unwrap_or("?").to_owned();
                match deliver(&client, url, body).await {
                    Ok(()) => tracing::info!(event, webhook = %host, "alert delivered"),
                    Err(e) => {
                        tracing::warn!(event, webhook = %host, error = %e, "alert not delivered")
                    }
                }
            });
        }
    }
}

/// POSTs `body` to `url`, trying [`ATTEMPTS`] times with growing delays.
async fn deliver(client: &reqwest::Client, url: Url, body: Vec<u8>) -> Result<(), String> {
    let mut delay = Duration::from_millis(500);
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(url.clone())
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return Ok(()),
            // The error text of reqwest may quote the URL: keep only its kind.
            Ok(response) => last = format!("answered {}", response.status()),
            Err(e) if e.is_timeout() => last = "timed out".to_owned(),
            Err(e) if e.is_connect() => last = "cannot connect".to_owned(),
            Err(_) => last = "request failed".to_owned(),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    Err(format!("{last} after {ATTEMPTS} attempts"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
