//! Words for people, shared by what the command line prints and the JSON's `words` fields:
//! times, durations, sizes, short versions, stale causes.

use chrono::{DateTime, Utc};
use freshet_core::{AssetDef, CauseCategory, Lineage, StaleCause};

/// A time for people: `2026-11-22 10:03:12 UTC`.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A duration for people, to the largest two units: `3h 12m`, `45s`.
pub fn ago(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m {seconds}s"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// The first 12 characters of a version, enough to tell versions apart by eye.
pub fn short(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}

/// A byte count for people: `812 B`, `12.3 KB`, `4.1 MB`.
pub fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} KB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.1} GB", n as f64 / 1e9),
    }
}

/// Microseconds as milliseconds for people.
pub fn millis(us: u64) -> String {
    format!("{} ms", us / 1000)
}

/// One stale cause in words with its versions and times: "input raw_orders has a new data version
/// since observed 2026-11-22 10:03:12 UTC: consumed 1a2b3c4d5e6f, now 5e6f7a8b9c0d".
pub fn cause_words(def: &AssetDef, cause: &StaleCause, lineage: &Lineage) -> String {
    let m = lineage.materialization(&def.key);
    match (cause.category, &cause.dependency, m) {
        (CauseCategory::Code, _, Some(m)) => format!(
            "has a new code version: materialized at {} with {}, now {}",
            time(m.created_at),
            short(m.code_version.as_str()),
            def.code_version.as_ref().map_or("-", |v| short(v.as_str()))
        ),
        (CauseCategory::Data, Some(dep), Some(m)) => {
            let consumed = m
                .inputs
                .iter()
                .find(|i| &i.asset == dep)
                .map_or("-", |i| short(i.data_version.as_str()));
            let current = lineage.data_version(dep).map_or("-", |v| short(v.as_str()));
            let since = lineage
                .materialization(dep)
                .map(|d| format!("materialized {}", time(d.created_at)))
                .or_else(|| {
                    lineage
                        .observation(dep)
                        .map(|o| format!("observed {}", time(o.observed_at)))
                })
                .unwrap_or_default();
            format!(
                "input {dep} has a new data version since {since}: consumed {consumed}, now {current}"
            )
        }
        _ => cause.describe(),
    }
}

/// `8760` as `8,760`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
