//! Reading and validating `freshet.toml`: its raw sections as serde reads them, and what each
//! section becomes (execution settings, sources, automation conditions, storage and database).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;
use url::Url;

use crate::Result;
use crate::model::{
    AssetDef, AssetKey, AssetKind, AutomationCondition, FreshnessPolicy, Origin, parse_duration,
};
use crate::partitions::PartitionsSpec;
use crate::policy::{Execution, RetryPolicy, StepSettings, default_concurrency};
use crate::sql::is_identifier;
use crate::triggers::{RawAlerts, RawSchedule};

use super::{CONFIG_FILE, Overrides, SourceFormat, SourcePartition, SourceSpec};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) project: RawProject,
    #[serde(default)]
    pub(super) sources: BTreeMap<String, RawSource>,
    #[serde(default)]
    pub(super) groups: BTreeMap<String, RawGroup>,
    #[serde(default)]
    execution: RawExecution,
    #[serde(default)]
    pools: BTreeMap<String, usize>,
    #[serde(default)]
    pub(super) automation: RawAutomation,
    #[serde(default)]
    pub(super) schedules: BTreeMap<String, RawSchedule>,
    #[serde(default)]
    pub(super) alerts: RawAlerts,
    #[serde(default)]
    pub(super) gc: RawGc,
    #[serde(default)]
    pub(super) partitions: BTreeMap<String, PartitionsSpec>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGc {
    /// Versions `freshet gc` keeps before each current one.
    pub(super) keep: Option<u32>,
    /// How long `freshet gc` keeps the log lines of runs that ended.
    pub(super) run_logs: Option<String>,
}

impl RawConfig {
    /// `[execution]` and `[pools]`, with `--concurrency` winning.
    pub(super) fn execution(&self, overrides: &Overrides) -> Result<Execution, String> {
        let raw = &self.execution;
        let duration = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| parse_duration(v).map_err(|e| format!("execution.{name}: {e}")))
                .transpose()
        };
        let concurrency = overrides
            .concurrency
            .or(raw.concurrency)
            .unwrap_or_else(default_concurrency);
        if concurrency == 0 {
            return Err("execution.concurrency must be at least 1".to_owned());
        }
        if let Some((pool, _)) = self.pools.iter().find(|(_, limit)| **limit == 0) {
            return Err(format!("pools.{pool} must be at least 1"));
        }
        if let Some(pool) = self.pools.keys().find(|p| !is_identifier(p)) {
            return Err(format!(
                "invalid pool name {pool:?}: use letters, digits and underscores"
            ));
        }
        Ok(Execution {
            concurrency,
            pools: self.pools.clone(),
            defaults: StepSettings {
                pool: None,
                retries: raw.retries,
                retry_delay: duration("retry_delay", &raw.retry_delay)?,
                timeout: duration("timeout", &raw.timeout)?,
                compression: raw
                    .compression
                    .as_deref()
                    .map(|c| {
                        crate::policy::parse_compression(c)
                            .map_err(|e| format!("execution.compression: {e}"))
                    })
                    .transpose()?,
            },
            retry_max_delay: duration("retry_max_delay", &raw.retry_max_delay)?
                .unwrap_or(RetryPolicy::NONE.max_delay),
            memory_limit: overrides
                .memory_limit
                .clone()
                .or_else(|| raw.memory_limit.clone())
                .map(|v| {
                    crate::policy::parse_bytes(&v)
                        .map_err(|e| format!("execution.memory_limit: {e}"))
                })
                .transpose()?,
            heartbeat_timeout: match duration("heartbeat_timeout", &raw.heartbeat_timeout)? {
                None => crate::policy::DEFAULT_HEARTBEAT_TIMEOUT,
                Some(t) if t < std::time::Duration::from_secs(5) => {
                    return Err(
                        "execution.heartbeat_timeout must be at least 5s (owners beat every second)"
                            .to_owned(),
                    );
                }
                Some(t) if t > std::time::Duration::from_secs(24 * 3600) => {
                    return Err("execution.heartbeat_timeout must be at most 1d".to_owned());
                }
                Some(t) => t,
            },
            max_runs: match raw.max_runs {
                Some(0) => return Err("execution.max_runs must be at least 1".to_owned()),
                Some(n) if n > 1000 => {
                    return Err("execution.max_runs must be at most 1000".to_owned());
                }
                Some(n) => n,
                None => 1,
            },
        })
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExecution {
    concurrency: Option<usize>,
    max_runs: Option<usize>,
    retries: Option<u32>,
    retry_delay: Option<String>,
    retry_max_delay: Option<String>,
    timeout: Option<String>,
    compression: Option<String>,
    memory_limit: Option<String>,
    heartbeat_timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    pub(super) freshness: Option<RawFreshness>,
    automation: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAutomation {
    /// The condition of assets that set none and whose group sets none.
    default: Option<String>,
    pub(super) observe_interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProject {
    pub(super) name: String,
    pub(super) sql_dir: Option<String>,
    #[serde(default)]
    pub(super) catalogues: Vec<String>,
    pub(super) storage: Option<String>,
    pub(super) database: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    path: String,
    format: Option<String>,
    description: Option<String>,
    group: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    owners: Vec<String>,
    freshness: Option<RawFreshness>,
    pub(super) observe_interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFreshness {
    max_age: Option<String>,
    warn_after: Option<String>,
    cron: Option<String>,
    timezone: Option<String>,
}

impl RawFreshness {
    pub(super) fn parse(&self) -> Result<FreshnessPolicy, String> {
        let mut policy = FreshnessPolicy::default();
        for (name, value) in [
            ("max_age", &self.max_age),
            ("warn_after", &self.warn_after),
            ("cron", &self.cron),
            ("timezone", &self.timezone),
        ] {
            if let Some(value) = value {
                policy.set(name, value)?;
            }
        }
        policy.validate()?;
        Ok(policy)
    }
}

/// A TOML error as one line with its position.
pub(super) fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    // The parser may quote a value; a webhook URL can be a secret.
    let message = redact_urls(&message);
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// `text` with every `http://` or `https://` URL cut to its scheme and host.
pub(super) fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = [rest.find("http://"), rest.find("https://")]
            .into_iter()
            .flatten()
            .min();
        let Some(start) = next else {
            break;
        };
        out.push_str(&rest[..start]);
        let url = &rest[start..];
        let end = url
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
            .unwrap_or(url.len());
        let after_scheme = url.find("://").map_or(0, |s| s + 3);
        let host_end = url[after_scheme..end]
            .find('/')
            .map_or(end, |h| after_scheme + h);
        out.push_str(&url[..host_end]);
        if host_end < end {
            out.push_str("/***");
        }
        rest = &url[end..];
    }
    out.push_str(rest);
    out
}

pub(super) fn source_def(
    dir: &Path,
    name: &str,
    raw: &RawSource,
) -> Result<(AssetDef, SourceSpec), String> {
    let key = AssetKey::parse(name).map_err(|e| format!("source {e}"))?;
    let location = if raw.path.contains("://") {
        raw.path.clone()
    } else {
        dir.join(&raw.path).display().to_string()
    };
    let format = match raw.format.as_deref() {
        Some("csv") => SourceFormat::Csv,
        Some("parquet") => SourceFormat::Parquet,
        Some("json") => SourceFormat::Json,
        Some(other) => {
            return Err(format!(
                "source {key}: unknown format {other:?} (expected csv, parquet or json)"
            ));
        }
        None => {
            let file = raw.path.rsplit('/').next().unwrap_or(&raw.path);
            match file
                .rsplit_once('.')
                .map(|(_, ext)| ext.to_ascii_lowercase())
                .as_deref()
            {
                Some("csv") => SourceFormat::Csv,
                Some("parquet") => SourceFormat::Parquet,
                Some("json" | "jsonl" | "ndjson") => SourceFormat::Json,
                _ => {
                    return Err(format!(
                        "source {key}: cannot tell the format of {:?}; set format = \"csv\", \"parquet\" or \"json\"",
                        raw.path
                    ));
                }
            }
        }
    };
    let mut def = AssetDef::new(
        key.clone(),
        AssetKind::Source,
        Origin::File {
            path: CONFIG_FILE.to_owned(),
        },
    );
    def.description = raw.description.clone();
    if let Some(group) = &raw.group {
        if !is_identifier(group) {
            return Err(format!(
                "source {key}: invalid group {group:?}: use letters, digits and underscores"
            ));
        }
        def.group = group.clone();
    }
    def.tags = raw.tags.iter().cloned().collect();
    def.owners = raw.owners.clone();
    if let Some(f) = &raw.freshness {
        def.freshness = Some(
            f.parse()
                .map_err(|e| format!("source {key}: invalid freshness: {e}"))?,
        );
    }
    let (location, partition) = match placeholder(&location) {
        Some(name) => {
            def.partitions = Some(name.to_owned());
            let partition = SourcePartition {
                name: name.to_owned(),
                template: location.clone(),
            };
            // Every partition's files: the folder above the one named by the key (DataFusion's
            // listings take folders named `key=value` as Hive partitions and look inside).
            let cut = location
                .find(&format!("{{{name}}}"))
                .and_then(|at| location[..at].rfind('/'))
                .map_or(0, |slash| slash + 1);
            (location[..cut].to_owned(), Some(partition))
        }
        None => (location, None),
    };
    Ok((
        def,
        SourceSpec {
            location,
            format,
            partition,
        },
    ))
}

/// The partitions definition a source path names, as `{NAME}` (letters, digits, underscores).
fn placeholder(path: &str) -> Option<&str> {
    let start = path.find('{')?;
    let len = path[start..].find('}')?;
    let name = &path[start + 1..start + len];
    is_identifier(name).then_some(name)
}

/// Sets each non-source asset's automation condition: its own, else its group's, else the
/// project's `[automation] default`; and checks that `freshness` has a policy to keep.
pub(super) fn apply_automation(
    raw: &RawConfig,
    defs: &mut [AssetDef],
    own: &HashMap<AssetKey, Option<AutomationCondition>>,
) -> std::result::Result<(), String> {
    let parse = |what: &str, text: &str| {
        AutomationCondition::parse(text).map_err(|e| format!("{what}: invalid automation: {e}"))
    };
    let default = match &raw.automation.default {
        Some(text) => parse("[automation] default", text)?,
        None => None,
    };
    let mut groups = HashMap::new();
    for (group, settings) in &raw.groups {
        if let Some(text) = &settings.automation {
            groups.insert(group.as_str(), parse(&format!("group {group}"), text)?);
        }
    }
    for def in defs.iter_mut().filter(|d| d.kind != AssetKind::Source) {
        def.automation = match own.get(&def.key) {
            Some(condition) => condition.clone(),
            None => groups
                .get(def.group.as_str())
                .cloned()
                .unwrap_or_else(|| default.clone()),
        };
        if def.automation == Some(AutomationCondition::Freshness) && def.freshness.is_none() {
            return Err(format!(
                "asset {} ({}): automation freshness needs a freshness policy to keep",
                def.key, def.origin
            ));
        }
    }
    Ok(())
}

pub(super) fn resolve_storage(dir: &Path, configured: Option<&str>) -> Result<Url, String> {
    let mut url = match configured {
        Some(s) if s.contains("://") => {
            Url::parse(s).map_err(|e| format!("invalid storage URL {s:?}: {e}"))?
        }
        Some(s) => dir_url(&dir.join(s))?,
        None => dir_url(&dir.join(".freshet").join("data"))?,
    };
    match datafusion::object_store::ObjectStoreScheme::parse(&url) {
        Ok((datafusion::object_store::ObjectStoreScheme::Memory, _)) | Err(_) => {
            return Err(format!(
                "storage {}://: not an object store Freshet can write to \
                 (use a folder, file://, s3://, gs://, az:// or abfss://)",
                url.scheme()
            ));
        }
        Ok(_) => {}
    }
    // Storage is a folder: with a trailing slash, joining a relative path appends to it.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn dir_url(path: &Path) -> Result<Url, String> {
    let absolute = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Url::from_directory_path(&absolute)
        .map_err(|()| format!("{} is not a valid folder path", absolute.display()))
}

pub(super) fn resolve_database(dir: &Path, configured: Option<&str>) -> String {
    match configured {
        Some(s) if s.contains("://") || s.starts_with("sqlite:") => s.to_owned(),
        Some(s) => format!("sqlite://{}", dir.join(s).display()),
        None => format!(
            "sqlite://{}",
            dir.join(".freshet").join("freshet.db").display()
        ),
    }
}
