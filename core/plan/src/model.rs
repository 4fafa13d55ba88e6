//! The asset model: keys, definitions, versions and the lineage records a materialization leaves.
//!
//! Everything here is plain data. Parsing constructors enforce each type's invariant, so code that
//! holds an [`AssetKey`] or a [`DataVersion`] never re-validates it.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

mod lineage;
mod state;

pub use lineage::{
    Column, InputVersion, Lineage, Materialization, MetadataValue, Observation, OutputDetails,
};
pub use state::{FreshnessState, Status};

/// The name of an asset: one or more segments joined by `/`, each made of ASCII letters, digits
/// and underscores (`raw_orders`, `marts/daily_revenue`).
///
/// In SQL a multi-segment key is written with dots (`marts.daily_revenue`).
///
/// # Example
/// ```
/// use freshet_plan::AssetKey;
/// let key: AssetKey = "marts/daily_revenue".parse().unwrap();
/// assert_eq!(key.segments().collect::<Vec<_>>(), ["marts", "daily_revenue"]);
/// assert!("daily-revenue".parse::<AssetKey>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetKey(Arc<str>);

/// Why a string is not a valid [`AssetKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid asset key {key:?}: {reason}")]
pub struct InvalidKey {
    /// The rejected input.
    pub key: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl AssetKey {
    /// Parses and validates a key written with `/` between segments.
    pub fn parse(s: &str) -> Result<Self, InvalidKey> {
        let invalid = |reason| InvalidKey {
            key: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(invalid("it is empty"));
        }
        for segment in s.split('/') {
            if segment.is_empty() {
                return Err(invalid("it has an empty segment"));
            }
            if !segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(invalid(
                    "segments may contain only ASCII letters, digits and underscores",
                ));
            }
        }
        Ok(Self(Arc::from(s)))
    }

    /// Builds a key from its segments, validating each.
    pub fn from_segments<S: AsRef<str>>(segments: &[S]) -> Result<Self, InvalidKey> {
        let joined = segments
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join("/");
        Self::parse(&joined)
    }

    /// The key as written, segments joined by `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl FromStr for AssetKey {
    type Err = InvalidKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for AssetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AssetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssetKey({})", self.0)
    }
}

impl serde::Serialize for AssetKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AssetKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a string that the caller knows to be well formed (it came from Freshet).
            pub fn new(s: impl Into<Arc<str>>) -> Self {
                Self(s.into())
            }

            /// The value as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

string_newtype!(
    /// The version of the logic that produces an asset: a fingerprint of the parsed query for SQL
    /// assets, the declared version string for Rust assets. A change makes the asset `stale`.
    CodeVersion
);
string_newtype!(
    /// A fingerprint of an asset's data: of its output rows for materialized assets (independent
    /// of row order and file layout), of its observed objects for sources.
    DataVersion
);
string_newtype!(
    /// Identifies one run of `materialize` (a UUIDv7, so ids sort by start time).
    RunId
);
string_newtype!(
    /// Identifies one materialization (a UUIDv7, so ids sort by time).
    MaterializationId
);

string_newtype!(
    /// Identifies one evaluation of the automation conditions (a UUIDv7, so ids sort by time).
    EvaluationId
);

impl EvaluationId {
    /// A new, time-ordered evaluation id.
    pub fn generate() -> Self {
        Self::new(uuid::Uuid::now_v7().to_string())
    }
}

impl RunId {
    /// A new, time-ordered run id.
    pub fn generate() -> Self {
        Self::new(uuid::Uuid::now_v7().to_string())
    }
}

impl MaterializationId {
    /// A new, time-ordered materialization id.
    pub fn generate() -> Self {
        Self::new(uuid::Uuid::now_v7().to_string())
    }
}

/// How an asset comes to exist. A closed set: every kind is handled by the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssetKind {
    /// External data Freshet observes but never writes (files or objects named in `freshet.toml`).
    Source,
    /// A query in a `.sql` file of the project.
    Sql,
    /// An async Rust function compiled into the binary.
    Rust,
}

impl AssetKind {
    /// The lower-case name used in output and selections.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetKind::Source => "source",
            AssetKind::Sql => "sql",
            AssetKind::Rust => "rust",
        }
    }
}

impl fmt::Display for AssetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A freshness policy as declared. Evaluating it against the clock belongs to the planner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FreshnessPolicy {
    /// Fail when the last materialization is older than this.
    pub max_age: Option<Duration>,
    /// Warn when the last materialization is older than this (less than `max_age`).
    pub warn_after: Option<Duration>,
    /// Fail when not materialized since the latest tick of this cron schedule.
    pub cron: Option<String>,
    /// Time zone of `cron` (IANA name); UTC when absent.
    pub timezone: Option<String>,
}

/// When an asset is materialized without anyone asking (see [`crate::automation`]). Parsing and
/// judging it belong to that module.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AutomationCondition {
    /// When missing or stale and its inputs are ready.
    Eager,
    /// Once after each tick of a cron schedule, once its inputs have updated since.
    OnCron {
        /// Five fields (minute, hour, day of month, month, day of week).
        cron: String,
        /// IANA time zone of the schedule; UTC when absent.
        timezone: Option<String>,
    },
    /// Just in time to keep its freshness policy passing.
    Freshness,
}

/// Parses durations such as `90s`, `15m`, `1h30m`, `2d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (expected e.g. 30m, 1h30m, 2d)");
    let mut total = 0u64;
    let mut digits = String::new();
    if s.is_empty() {
        return Err(bad());
    }
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Formats a whole-second duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [('d', 86_400), ('h', 3600), ('m', 60), ('s', 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// Where a definition came from, for error messages and the asset page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file of the project (`sql/daily_revenue.sql`, `freshet.toml`), relative to its folder.
    File {
        /// The path, relative to the project folder.
        path: String,
    },
    /// Rust code compiled into the binary.
    Rust {
        /// The source file and line of the declaration, e.g. `assets/src/demo/sessions.rs:40`.
        location: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path } => f.write_str(path),
            Origin::Rust { location } => f.write_str(location),
        }
    }
}

/// The declaration of one asset: what it is called, what it reads, and what describes it.
///
/// How it is computed (query, function, source location) lives with the project, not here.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetDef {
    /// Unique within a project.
    pub key: AssetKey,
    /// Source, SQL or Rust.
    pub kind: AssetKind,
    /// Upstream assets, sorted and without repeats.
    pub deps: Vec<AssetKey>,
    /// One or more sentences for people.
    pub description: Option<String>,
    /// A grouping for display and selection; `default` when not given.
    pub group: String,
    /// Free-form labels.
    pub tags: BTreeSet<String>,
    /// People or teams responsible (e-mail addresses or team names).
    pub owners: Vec<String>,
    /// `None` for sources, which have no code.
    pub code_version: Option<CodeVersion>,
    /// Declared freshness policy, if any.
    pub freshness: Option<FreshnessPolicy>,
    /// When it is materialized without anyone asking; `None`: only on request.
    pub automation: Option<AutomationCondition>,
    /// The partitions definition (`[partitions.NAME]`) it is split by; `None`: one table.
    pub partitions: Option<String>,
    /// Where the definition was written.
    pub origin: Origin,
}

/// The group an asset belongs to when its definition names none.
pub const DEFAULT_GROUP: &str = "default";

impl AssetDef {
    /// A definition with no metadata; fill the public fields as needed.
    pub fn new(key: AssetKey, kind: AssetKind, origin: Origin) -> Self {
        Self {
            key,
            kind,
            deps: Vec::new(),
            description: None,
            group: DEFAULT_GROUP.to_owned(),
            tags: BTreeSet::new(),
            owners: Vec::new(),
            code_version: None,
            freshness: None,
            automation: None,
            partitions: None,
            origin,
        }
    }

    /// Sets the dependencies, sorting them and dropping repeats.
    pub fn with_deps(mut self, deps: impl IntoIterator<Item = AssetKey>) -> Self {
        let mut deps: Vec<_> = deps.into_iter().collect();
        deps.sort();
        deps.dedup();
        self.deps = deps;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_key(input: &str, expect: Result<&[&str], &str>) {
        match (AssetKey::parse(input), expect) {
            (Ok(key), Ok(segments)) => {
                assert_eq!(key.segments().collect::<Vec<_>>(), segments);
                assert_eq!(key.to_string(), input);
            }
            (Err(err), Err(message)) => assert_eq!(err.to_string(), message),
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn asset_keys() {
        check_key("orders", Ok(&["orders"]));
        check_key("marts/daily_revenue", Ok(&["marts", "daily_revenue"]));
        check_key("Raw_2024", Ok(&["Raw_2024"]));
        check_key("", Err(r#"invalid asset key "": it is empty"#));
        check_key(
            "a//b",
            Err(r#"invalid asset key "a//b": it has an empty segment"#),
        );
        check_key(
            "/a",
            Err(r#"invalid asset key "/a": it has an empty segment"#),
        );
        check_key(
            "daily-revenue",
            Err(
                r#"invalid asset key "daily-revenue": segments may contain only ASCII letters, digits and underscores"#,
            ),
        );
        check_key(
            "a.b",
            Err(
                r#"invalid asset key "a.b": segments may contain only ASCII letters, digits and underscores"#,
            ),
        );
        check_key(
            "café",
            Err(
                r#"invalid asset key "café": segments may contain only ASCII letters, digits and underscores"#,
            ),
        );
    }

    #[test]
    fn durations_round_trip() {
        for (text, secs) in [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172_800)] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        for bad in ["", "10", "1x", "h", "0m", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn freshness_compact_form() {
        let p = FreshnessPolicy::parse_compact("max_age=1h warn_after=30m").unwrap();
        assert_eq!(p.max_age, Some(Duration::from_secs(3600)));
        assert_eq!(p.warn_after, Some(Duration::from_secs(1800)));
        let p =
            FreshnessPolicy::parse_compact(r#"cron="0 6 * * *" timezone=Europe/Paris"#).unwrap();
        assert_eq!(p.cron.as_deref(), Some("0 6 * * *"));
        assert_eq!(p.timezone.as_deref(), Some("Europe/Paris"));
        for (bad, message) in [
            (
                "max_age=1h warn_after=2h",
                "warn_after must be shorter than max_age",
            ),
            ("warn_after=2h", "warn_after needs max_age"),
            ("max_age", r#"expected name=value, found "max_age""#),
            (
                "cron=\"0 6 * *\"",
                r#"invalid cron "0 6 * *": Invalid pattern: Pattern must have 5 fields when seconds are disallowed."#,
            ),
            (
                "colour=red",
                r#"unknown freshness setting "colour" (expected max_age, warn_after, cron or timezone)"#,
            ),
        ] {
            assert_eq!(
                FreshnessPolicy::parse_compact(bad).unwrap_err(),
                message,
                "{bad}"
            );
        }
    }
}
