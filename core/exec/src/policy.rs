//! How steps run: how many at once, named pools for assets that share a scarce resource, and
//! each asset's retries and time limit.
//!
//! ```toml
//! [execution]
//! concurrency = 4          # steps at once (default: the number of cores; --concurrency N)
//! retries = 2              # project default for every asset (default 0)
//! retry_delay = "2s"       # the first retry's delay; doubled each retry, with jitter (default 1s)
//! retry_max_delay = "1m"   # the cap on a retry's delay (default 1m)
//! timeout = "1h"           # project default time limit per attempt (default none)
//! compression = "zstd(3)"  # outputs' Parquet codec: zstd, zstd(1..22), snappy, lz4,
//!                          # gzip, gzip(0..10), brotli, brotli(0..11) or none (default zstd(3))
//! memory_limit = "4GB"     # memory for sorts, joins and aggregates in one process; past it
//!                          # they spill to a temp folder (default none; --memory-limit)
//! heartbeat_timeout = "60s" # how long a run's owner on another host may stay silent before
//!                          # its run is taken for dead (default 60s; an owner on this host is
//!                          # judged by whether its process still exists, never by this)
//!
//! [pools]
//! warehouse = 2            # at most 2 steps of assets in pool `warehouse` at once
//! ```
//!
//! An asset's own settings (`@pool`, `@retries`, `@retry_delay`, `@timeout`, `@compression` in a
//! SQL header; `.pool(..)`, `.retries(..)`, `.retry_delay(..)`, `.timeout(..)`, `.compression(..)`
//! for Rust assets) win over the project's.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::time::Duration;

use datafusion::parquet::basic::{Compression, ZstdLevel};

/// One asset's execution settings; `None` fields take the project's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepSettings {
    /// The pool it runs in.
    pub pool: Option<String>,
    /// How many times a retryable failure is tried again.
    pub retries: Option<u32>,
    /// The first retry's delay.
    pub retry_delay: Option<Duration>,
    /// The time limit of one attempt.
    pub timeout: Option<Duration>,
    /// The Parquet codec of its output.
    pub compression: Option<Compression>,
}

/// How one asset's steps run, with the project's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPolicy {
    /// The pool it runs in, if any.
    pub pool: Option<String>,
    /// Retries of retryable failures.
    pub retry: RetryPolicy,
    /// The time limit of one attempt, if any.
    pub timeout: Option<Duration>,
    /// The Parquet codec of its output.
    pub compression: Compression,
}

/// Retries of retryable failures (I/O, object store, network, a Rust asset's
/// [`crate::Retryable`]): up to `retries` more attempts, the n-th after a delay of
/// `delay * 2^(n-1)`, capped at `max_delay`, of which a random part (up to half) is left out so
/// that steps failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    /// The first retry's delay before jitter.
    pub delay: Duration,
    /// The cap on any retry's delay.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// No retries.
    pub const NONE: RetryPolicy = RetryPolicy {
        retries: 0,
        delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
    };

    /// The delay before retry `retry` (1-based), jittered by `seed` (e.g. the run and the step):
    /// between half and all of `delay * 2^(retry-1)`, never over `max_delay`.
    pub fn delay_before(&self, retry: u32, seed: impl Hash) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        // At most a year, whatever the settings say, so the arithmetic below cannot overflow.
        let full = self
            .delay
            .saturating_mul(factor)
            .min(self.max_delay)
            .min(Duration::from_secs(365 * 24 * 3600));
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        seed.hash(&mut hasher);
        retry.hash(&mut hasher);
        // A fraction in [0, 1) from the hash's top 53 bits.
        let fraction = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
        full.mul_f64(0.5 + fraction / 2.0)
    }
}

/// The project's execution settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// Steps at once.
    pub concurrency: usize,
    /// Pools and their limits.
    pub pools: BTreeMap<String, usize>,
    /// Project defaults.
    pub defaults: StepSettings,
    /// The cap on any retry's delay.
    pub retry_max_delay: Duration,
    /// Runs at once in a server or daemon (`[execution] max_runs`, default 1); the others wait
    /// in the queue.
    pub max_runs: usize,
    /// Bytes that sorts, joins and aggregates may hold in one process before they spill to disk
    /// (`[execution] memory_limit`, `--memory-limit`); `None`: no limit.
    pub memory_limit: Option<usize>,
    /// How long a run's owner on another host may stay silent before its run is taken for dead
    /// (`[execution] heartbeat_timeout`, default [`DEFAULT_HEARTBEAT_TIMEOUT`]).
    pub heartbeat_timeout: Duration,
}

/// The default of `[execution] heartbeat_timeout`.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for Execution {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            pools: BTreeMap::new(),
            defaults: StepSettings::default(),
            retry_max_delay: RetryPolicy::NONE.max_delay,
            max_runs: 1,
            memory_limit: None,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
        }
    }
}

impl Execution {
    /// An asset's policy: its own settings over the project's defaults. Checked when the project
    /// loads, so the pool exists.
    pub fn policy(&self, own: &StepSettings) -> StepPolicy {
        StepPolicy {
            pool: own.pool.clone().or_else(|| self.defaults.pool.clone()),
            retry: RetryPolicy {
                retries: own.retries.or(self.defaults.retries).unwrap_or(0),
                delay: own
                    .retry_delay
                    .or(self.defaults.retry_delay)
                    .unwrap_or(RetryPolicy::NONE.delay),
                max_delay: self.retry_max_delay,
            },
            timeout: own.timeout.or(self.defaults.timeout),
            compression: own
                .compression
                .or(self.defaults.compression)
                .unwrap_or_else(default_compression),
        }
    }

    /// Checks that `settings` name a pool the project declares.
    pub fn check(&self, settings: &StepSettings) -> Result<(), String> {
        match &settings.pool {
            Some(pool) if !self.pools.contains_key(pool) => {
                let known: Vec<&str> = self.pools.keys().map(String::as_str).collect();
                Err(format!(
                    "unknown pool {pool:?} (freshet.toml [pools] has: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Outputs' codec unless the project or the asset says otherwise: zstd at level 3.
pub fn default_compression() -> Compression {
    Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default())
}

/// Parses a codec as `@compression` and `[execution] compression` spell it: `zstd`, `zstd(N)`,
/// `snappy`, `lz4`, `gzip`, `gzip(N)`, `brotli`, `brotli(N)` or `none`.
pub fn parse_compression(text: &str) -> Result<Compression, String> {
    let text = text.trim().to_ascii_lowercase();
    let spelled = match text.as_str() {
        "zstd" => "zstd(3)",
        "gzip" => "gzip(6)",
        "brotli" => "brotli(4)",
        "lz4" => "lz4_raw",
        "none" => "uncompressed",
        "lz4_raw" | "uncompressed" | "lzo" => "",
        other => other,
    };
    // Only `name` or `name(level)` reach parquet's parser, which slices the level by bytes and
    // panics on `zstd(` or a character of several bytes.
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let well_formed = match spelled.split_once('(') {
        None => word(spelled),
        Some((name, rest)) => {
            word(name)
                && rest.strip_suffix(')').is_some_and(|level| {
                    (1..=3).contains(&level.len()) && level.chars().all(|c| c.is_ascii_digit())
                })
        }
    };
    if !well_formed {
        return Err(format!("invalid compression {text:?}: {COMPRESSIONS}"));
    }
    spelled
        .parse::<Compression>()
        .map_err(|_| format!("invalid compression {text:?}: {COMPRESSIONS}"))
}

const COMPRESSIONS: &str =
    "use zstd, zstd(1..22), snappy, lz4, gzip, gzip(0..10), brotli, brotli(0..11) or none";

/// A memory size: `512MB`, `4GB`, `1.5GiB`, or a number of bytes.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let factor: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        "tib" | "t" => 1024.0f64.powi(4),
        _ => {
            return Err(format!(
                "invalid size {text:?}: use e.g. 512MB, 4GB or 2GiB"
            ));
        }
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && n * factor < usize::MAX as f64 => {
            Ok((n * factor) as usize)
        }
        _ => Err(format!(
            "invalid size {text:?}: use e.g. 512MB, 4GB or 2GiB"
        )),
    }
}

/// The number of cores, the default number of steps at once.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// A duration in words: `30s`, `1m30s`, `250ms`.
pub fn duration_words(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) if ms.is_multiple_of(1000) => format!("{s}s"),
        (0, 0, _) => format!("{:.1}s", d.as_secs_f64()),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_parsed_or_refused_never_a_panic() {
        assert_eq!(
            parse_compression(" ZSTD(6) "),
            Ok(Compression::ZSTD(ZstdLevel::try_new(6).unwrap()))
        );
        assert_eq!(parse_compression("snappy"), Ok(Compression::SNAPPY));
        // What parquet's own parser panics on (found by the SQL header fuzz target).
        for bad in [
            "zstd(",
            "gzip()",
            "zstd(𐊼)",
            "zstd(1",
            "zstd(99999)",
            "(3)",
            "é",
            "zstd (3)",
            "",
        ] {
            let err = parse_compression(bad).unwrap_err();
            assert!(err.starts_with("invalid compression "), "{bad}: {err}");
        }
    }

    #[test]
    fn retry_delays_grow_stay_jittered_and_are_capped() {
        let policy = RetryPolicy {
            retries: 5,
            delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(10),
        };
        for seed in 0..50 {
            let d: Vec<Duration> = (1..=5).map(|n| policy.delay_before(n, seed)).collect();
            assert!(
                d[0] >= Duration::from_secs(1) && d[0] <= Duration::from_secs(2),
                "{d:?}"
            );
            assert!(
                d[1] >= Duration::from_secs(2) && d[1] <= Duration::from_secs(4),
                "{d:?}"
            );
            assert!(
                d[2] >= Duration::from_secs(4) && d[2] <= Duration::from_secs(8),
                "{d:?}"
            );
            assert!(
                d[4] >= Duration::from_secs(5) && d[4] <= Duration::from_secs(10),
                "{d:?}"
            );
        }
    }

    #[test]
    fn an_assets_settings_win_over_the_projects() {
        let mut execution = Execution {
            concurrency: 2,
            pools: BTreeMap::from([("warehouse".to_owned(), 1)]),
            defaults: StepSettings {
                retries: Some(2),
                timeout: Some(Duration::from_secs(60)),
                ..StepSettings::default()
            },
            retry_max_delay: Duration::from_secs(30),
            max_runs: 1,
            memory_limit: None,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
        };
        let own = StepSettings {
            pool: Some("warehouse".to_owned()),
            retries: Some(5),
            ..StepSettings::default()
        };
        let policy = execution.policy(&own);
        assert_eq!(policy.pool.as_deref(), Some("warehouse"));
        assert_eq!(policy.retry.retries, 5);
        assert_eq!(policy.retry.delay, Duration::from_secs(1));
        assert_eq!(policy.timeout, Some(Duration::from_secs(60)));
        assert_eq!(execution.check(&own), Ok(()));
        execution.pools.clear();
        assert_eq!(
            execution.check(&own).unwrap_err(),
            "unknown pool \"warehouse\" (freshet.toml [pools] has: none)"
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration_words(Duration::from_millis(250)), "250ms");
        assert_eq!(duration_words(Duration::from_secs(30)), "30s");
        assert_eq!(duration_words(Duration::from_millis(1500)), "1.5s");
        assert_eq!(duration_words(Duration::from_secs(90)), "1m30s");
        assert_eq!(duration_words(Duration::from_secs(3600)), "1h");
    }
}
