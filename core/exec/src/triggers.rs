//! What sets runs off with nobody asking, as `freshet.toml` declares it: how often sources are
//! observed, schedules, and where alerts go. Checked when the project loads; acted on by
//! `freshet daemon` and `freshet serve`.
//!
//! ```toml
//! [automation]
//! default = "eager"            # condition of assets that set none (see freshet_plan::automation)
//! observe_interval = "1m"      # how often sources on object stores are observed (default 30s);
//!                              # local files and folders are looked at every quarter second
//!
//! [sources.raw_orders]
//! path = "s3://bucket/orders/*.parquet"
//! observe_interval = "5m"      # this source's own
//!
//! [schedules.nightly]
//! cron = "0 2 * * *"
//! timezone = "Europe/Paris"    # default UTC
//! selection = "+daily_revenue" # default: every asset
//! stale_only = true            # default; false materializes the whole selection
//! catch_up = "once"            # ticks missed while no daemon ran: "once" (default) runs once,
//!                              # "skip" runs none
//!
//! [alerts]
//! webhooks = ["https://hooks.example/freshet"]
//! format = "json"              # or "slack" (a `text` field)
//! web_url = "https://freshet.example/"  # links in alerts point here (default: the server's)
//! timeout = "5s"
//! ```

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::automation::compile_cron;
use crate::model::{AssetKey, parse_duration};
use crate::selection::Selection;

/// Default of `[automation] observe_interval`.
pub const DEFAULT_OBSERVE_INTERVAL: Duration = Duration::from_secs(30);

/// How often a source on local disk is looked at.
pub const LOCAL_OBSERVE_INTERVAL: Duration = Duration::from_millis(250);

/// Automation's settings, checked.
#[derive(Debug, Clone, Default)]
pub struct Triggers {
    /// How often sources on object stores are observed.
    pub observe_interval: Duration,
    /// Sources with an interval of their own.
    pub source_intervals: HashMap<AssetKey, Duration>,
    /// `[schedules.NAME]`, by name.
    pub schedules: Vec<Schedule>,
    /// `[alerts]`.
    pub alerts: Alerts,
}

/// A classic schedule: materialize a selection after each tick.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Its name.
    pub name: String,
    /// Five-field cron expression.
    pub cron: String,
    /// IANA time zone; UTC when absent.
    pub timezone: Option<String>,
    /// What it materializes; every asset when absent.
    pub selection: Option<String>,
    /// Only what is missing or stale in the selection (the default), or all of it.
    pub stale_only: bool,
    /// What to do about ticks missed while no daemon ran.
    pub catch_up: CatchUp,
}

/// What a schedule does about the ticks it missed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CatchUp {
    /// Run once for all of them.
    #[default]
    Once,
    /// Run for none; wait for the next tick.
    Skip,
}

/// Where alerts go.
#[derive(Debug, Clone, Default)]
pub struct Alerts {
    /// URLs that each alert is POSTed to.
    pub webhooks: Vec<Url>,
    /// The payload's shape.
    pub format: AlertFormat,
    /// Where the web view is, for links; the server's own address when unset.
    pub web_url: Option<Url>,
    /// How long one delivery attempt may take.
    pub timeout: Duration,
}

/// The shape of an alert's payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AlertFormat {
    /// Freshet's documented JSON payload.
    #[default]
    Json,
    /// The same, with a `text` field as Slack's incoming webhooks read it.
    Slack,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    cron: String,
    timezone: Option<String>,
    selection: Option<String>,
    stale_only: Option<bool>,
    catch_up: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    #[serde(default)]
    webhooks: Vec<String>,
    format: Option<String>,
    web_url: Option<String>,
    timeout: Option<String>,
}

/// Checks the raw settings: every cron, time zone, selection, URL and duration.
pub(crate) fn triggers(
    observe_interval: Option<&str>,
    source_intervals: &[(AssetKey, Option<String>)],
    schedules: &std::collections::BTreeMap<String, RawSchedule>,
    alerts: &RawAlerts,
) -> Result<Triggers, String> {
    let interval = |what: &str, text: &str| {
        parse_duration(text).map_err(|e| format!("{what}: invalid observe_interval: {e}"))
    };
    let observe_interval = match observe_interval {
        Some(text) => interval("[automation]", text)?,
        None => DEFAULT_OBSERVE_INTERVAL,
    };
    let mut own = HashMap::new();
    for (key, text) in source_intervals {
        if let Some(text) = text {
            own.insert(key.clone(), interval(&format!("source {key}"), text)?);
        }
    }
    let mut out = Vec::new();
    for (name, raw) in schedules {
        let bad = |message: String| format!("schedule {name}: {message}");
        if !crate::sql::is_identifier(name) {
            return Err(bad(
                "use letters, digits and underscores in its name".to_owned()
            ));
        }
        compile_cron(&raw.cron, raw.timezone.as_deref()).map_err(bad)?;
        if let Some(selection) = &raw.selection {
            Selection::parse(selection).map_err(|e| bad(format!("invalid selection: {e}")))?;
        }
        let catch_up = match raw.catch_up.as_deref() {
            None | Some("once") => CatchUp::Once,
            Some("skip") => CatchUp::Skip,
            Some(other) => {
                return Err(bad(format!(
                    "unknown catch_up {other:?} (expected \"once\" or \"skip\")"
                )));
            }
        };
        out.push(Schedule {
            name: name.clone(),
            cron: raw.cron.clone(),
            timezone: raw.timezone.clone(),
            selection: raw.selection.clone(),
            stale_only: raw.stale_only.unwrap_or(true),
            catch_up,
        });
    }
    // A webhook URL may carry a secret (Slack's do): errors name its position, not its text.
    let url = |what: &str, text: &str| {
        Url::parse(text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| format!("[alerts]: {what} is not an http or https URL"))
    };
    let alerts = Alerts {
        webhooks: alerts
            .webhooks
            .iter()
            .enumerate()
            .map(|(i, w)| url(&format!("webhook {}", i + 1), w))
            .collect::<Result<_, _>>()?,
        format: match alerts.format.as_deref() {
            None | Some("json") => AlertFormat::Json,
            Some("slack") => AlertFormat::Slack,
            Some(other) => {
                return Err(format!(
                    "[alerts]: unknown format {other:?} (expected \"json\" or \"slack\")"
                ));
            }
        },
        web_url: alerts
            .web_url
            .as_deref()
            .map(|u| url("web_url", u))
            .transpose()?,
        timeout: match &alerts.timeout {
            Some(text) => {
                parse_duration(text).map_err(|e| format!("[alerts]: invalid timeout: {e}"))?
            }
            None => Duration::from_secs(5),
        },
    };
    Ok(Triggers {
        observe_interval,
        source_intervals: own,
        schedules: out,
        alerts,
    })
}
