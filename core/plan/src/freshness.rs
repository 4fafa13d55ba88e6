//! Freshness: whether each asset was updated recently enough for its policy, and the time of the
//! source data it reflects. Judged against a [`Clock`] so tests can move time.
//!
//! # Policies
//!
//! A [`FreshnessPolicy`] is declared per asset (SQL header `@freshness`, the Rust builder, a
//! source's `freshness` in `freshet.toml`) or per group (`[groups.NAME] freshness = ...`). Its
//! "last update" is the asset's latest materialization, or for a source the moment its data
//! version last moved (like dbt's source freshness).
//!
//! - `max_age` (and optionally `warn_after`), no `cron`: `fail` once the last update is `max_age`
//!   old or older, `warn` once it is `warn_after` old, `pass` before.
//! - `cron` (five fields, in `timezone`, UTC by default): judged at the latest completed tick `T`.
//!   `pass` when the last update is at or after `T - max_age` (or, without `max_age`, after the
//!   tick before `T`: "updated during the latest period"); `warn` when it is before
//!   `T - warn_after`; `fail` otherwise. Ticks follow the wall clock in the time zone: a tick in a
//!   daylight-saving gap fires when the clock resumes, a tick in a repeated hour fires once.
//! - `unknown`: a policy, but never materialized (never observed, for a source); `none`: no policy.
//!
//! These match Dagster's `FreshnessPolicy.time_window` and `cron` (and its legacy policy with a
//! cron and `maximum_lag`). Each result says when it next changes if nothing is materialized
//! meanwhile, for the web view and the automation daemon.
//!
//! # Data time
//!
//! An asset's data time is the time of the oldest source data it incorporates ("this mart reflects
//! orders as of 05:00"). A source's is the last time it was observed with its current version. A
//! materialization records, when written, the oldest data time of its inputs (its own time when
//! it has none). While every input it consumed is still current, it reflects their current data
//! time, so an asset whose sources were checked since and found unchanged moves forward with them;
//! once an input has moved on, it reflects what it recorded.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

use crate::graph::AssetGraph;
use crate::model::{AssetKind, FreshnessPolicy, Lineage, format_duration, parse_duration};

pub use crate::model::FreshnessState;

/// Where the current time comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved, for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// Moves the time forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Parsing and checking a policy live here, beside the evaluator that compiles it, so the model
/// stays plain data.
impl FreshnessPolicy {
    /// Parses the compact form used in SQL headers: space-separated `name=value` pairs, e.g.
    /// `max_age=1h warn_after=30m` or `cron="0 6 * * *" timezone=Europe/Paris`.
    pub fn parse_compact(s: &str) -> Result<Self, String> {
        let mut policy = FreshnessPolicy::default();
        let mut rest = s.trim();
        while !rest.is_empty() {
            let (name, after) = rest
                .split_once('=')
                .ok_or_else(|| format!("expected name=value, found {rest:?}"))?;
            let after = after.trim_start();
            let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted
                    .find('"')
                    .ok_or_else(|| format!("unterminated quote in {after:?}"))?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                after.split_at(after.find(char::is_whitespace).unwrap_or(after.len()))
            };
            policy.set(name.trim(), value)?;
            rest = tail.trim_start();
        }
        policy.validate()?;
        Ok(policy)
    }

    /// Sets one field by name from its textual value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        match name {
            "max_age" => self.max_age = Some(parse_duration(value)?),
            "warn_after" => self.warn_after = Some(parse_duration(value)?),
            "cron" => self.cron = Some(value.to_owned()),
            "timezone" => self.timezone = Some(value.to_owned()),
            other => {
                return Err(format!(
                    "unknown freshness setting {other:?} (expected max_age, warn_after, cron or timezone)"
                ));
            }
        }
        Ok(())
    }

    /// Checks the fields agree with each other.
    pub fn validate(&self) -> Result<(), String> {
        if let (Some(warn), Some(max)) = (self.warn_after, self.max_age)
            && warn >= max
        {
            return Err("warn_after must be shorter than max_age".to_owned());
        }
        if self.warn_after.is_some() && self.max_age.is_none() {
            return Err("warn_after needs max_age".to_owned());
        }
        if self.max_age.is_none() && self.cron.is_none() {
            return Err("a freshness policy needs max_age or cron".to_owned());
        }
        if self.timezone.is_some() && self.cron.is_none() {
            return Err("timezone needs cron".to_owned());
        }
        CompiledPolicy::new(self)?;
        Ok(())
    }
}

/// A policy with its cron parsed and time zone resolved, ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    max_age: Option<Duration>,
    warn_after: Option<Duration>,
    cron: Option<(Cron, Tz)>,
    text: String,
}

impl CompiledPolicy {
    /// Parses the cron and the time zone of `policy`.
    pub fn new(policy: &FreshnessPolicy) -> Result<Self, String> {
        let duration = |d: std::time::Duration| {
            Duration::from_std(d)
                .map_err(|_| format!("duration {} is too long", format_duration(d)))
        };
        let cron = match &policy.cron {
            None => None,
            Some(pattern) => {
                let cron = CronParser::builder()
                    .seconds(Seconds::Disallowed)
                    .build()
                    .parse(pattern)
                    .map_err(|e| format!("invalid cron {pattern:?}: {e}"))?;
                let tz = match &policy.timezone {
                    None => Tz::UTC,
                    Some(name) => name.parse::<Tz>().map_err(|_| {
                        format!("unknown time zone {name:?} (expected an IANA name such as Europe/Paris)")
                    })?,
                };
                Some((cron, tz))
            }
        };
        Ok(Self {
            max_age: policy.max_age.map(duration).transpose()?,
            warn_after: policy.warn_after.map(duration).transpose()?,
            cron,
            text: describe_policy(policy),
        })
    }

    /// The state at `at`, for an asset last updated at `last`.
    fn state_at(&self, last: DateTime<Utc>, at: DateTime<Utc>) -> FreshnessState {
        match &self.cron {
            None => {
                let age = at - last;
                if self.max_age.is_some_and(|max| age >= max) {
                    FreshnessState::Fail
                } else if self.warn_after.is_some_and(|warn| age >= warn) {
                    FreshnessState::Warn
                } else {
                    FreshnessState::Pass
                }
            }
            Some((cron, tz)) => {
                let Some(tick) = latest_tick(cron, tz, at) else {
                    return FreshnessState::Pass;
                };
                let required = match self.max_age {
                    Some(max) => Some(tick - max),
                    None => previous_tick(cron, tz, tick),
                };
                if required.is_some_and(|r| last < r) {
                    FreshnessState::Fail
                } else if self.warn_after.is_some_and(|warn| last < tick - warn) {
                    FreshnessState::Warn
                } else {
                    FreshnessState::Pass
                }
            }
        }
    }

    /// The instants after `now` at which the state may change, earliest first.
    fn candidates(&self, last: DateTime<Utc>, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        match &self.cron {
            None => {
                out.extend(self.warn_after.map(|w| last + w));
                out.extend(self.max_age.map(|m| last + m));
            }
            Some((cron, tz)) => {
                // `last < t - d` first holds at the first tick strictly after `last + d`.
                for d in [self.warn_after, self.max_age].into_iter().flatten() {
                    out.extend(next_tick(cron, tz, (last + d).max(now)));
                }
                if self.max_age.is_none() {
                    // `last < previous tick` first holds at the tick after the first tick past `last`.
                    if let Some(first) = next_tick(cron, tz, last) {
                        out.extend(next_tick(cron, tz, first.max(now)));
                    }
                }
            }
        }
        out.retain(|&t| t > now);
        out.sort();
        out
    }

    /// Evaluates the policy for an asset last updated at `last` (`None`: never).
    pub fn evaluate(&self, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Freshness {
        let Some(last) = last else {
            return Freshness {
                state: FreshnessState::Unknown,
                last_updated: None,
                next_change: None,
                policy: Some(self.text.clone()),
            };
        };
        let state = self.state_at(last, now);
        let next_change = self
            .candidates(last, now)
            .into_iter()
            .map(|at| StateChange {
                at,
                state: self.state_at(last, at),
            })
            .find(|c| c.state != state);
        Freshness {
            state,
            last_updated: Some(last),
            next_change,
            policy: Some(self.text.clone()),
        }
    }
}

/// The latest tick at or before `at`.
fn latest_tick(cron: &Cron, tz: &Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&at.with_timezone(tz), true)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The tick strictly before the tick `tick`.
fn previous_tick(cron: &Cron, tz: &Tz, tick: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&tick.with_timezone(tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The first tick strictly after `after`.
fn next_tick(cron: &Cron, tz: &Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The policy in the words of the compact form: `max_age=1d warn_after=12h`.
fn describe_policy(policy: &FreshnessPolicy) -> String {
    let mut parts = Vec::new();
    if let Some(cron) = &policy.cron {
        parts.push(format!("cron=\"{cron}\""));
        parts.push(format!(
            "timezone={}",
            policy.timezone.as_deref().unwrap_or("UTC")
        ));
    }
    if let Some(d) = policy.max_age {
        parts.push(format!("max_age={}", format_duration(d)));
    }
    if let Some(d) = policy.warn_after {
        parts.push(format!("warn_after={}", format_duration(d)));
    }
    parts.join(" ")
}

/// A state the freshness of an asset will reach at a known moment if nothing is materialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    /// When.
    pub at: DateTime<Utc>,
    /// The state from then on.
    pub state: FreshnessState,
}

/// An asset's freshness at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// Pass, warn, fail, unknown or none.
    pub state: FreshnessState,
    /// The latest materialization, or for a source its latest change.
    pub last_updated: Option<DateTime<Utc>>,
    /// When the state changes next if nothing is materialized; `None` when time alone will not
    /// change it (it fails, is unknown, or has no policy).
    pub next_change: Option<StateChange>,
    /// The policy in compact form (`max_age=1d warn_after=12h`), if there is one.
    pub policy: Option<String>,
}

impl Freshness {
    /// No policy.
    pub fn none() -> Self {
        Self {
            state: FreshnessState::None,
            last_updated: None,
            next_change: None,
            policy: None,
        }
    }
}

/// Evaluates every asset's policy, reusing parsed crons across assets (most projects use few).
#[derive(Debug, Default)]
pub struct FreshnessEvaluator {
    compiled: std::collections::HashMap<FreshnessPolicy, Option<CompiledPolicy>>,
}

impl FreshnessEvaluator {
    /// An evaluator with nothing parsed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The freshness of the asset at dense index `i`.
    pub fn evaluate(
        &mut self,
        graph: &AssetGraph,
        lineage: &Lineage,
        i: usize,
        now: DateTime<Utc>,
    ) -> Freshness {
        let def = graph.def(i);
        let Some(policy) = &def.freshness else {
            return Freshness::none();
        };
        // Definitions are validated when loaded, so a policy that does not compile cannot reach
        // here from a project; judge it as having none rather than fail a status.
        let Some(compiled) = self
            .compiled
            .entry(policy.clone())
            .or_insert_with(|| CompiledPolicy::new(policy).ok())
        else {
            return Freshness::none();
        };
        let last = if def.kind == AssetKind::Source {
            lineage.observation(&def.key).map(|o| o.observed_at)
        } else {
            lineage.materialization(&def.key).map(|m| m.created_at)
        };
        compiled.evaluate(last, now)
    }
}

/// Data times of assets, computed on demand and remembered (see the module documentation).
#[derive(Debug)]
pub struct DataTimes {
    memo: Vec<Option<Option<DateTime<Utc>>>>,
}

impl DataTimes {
    /// Nothing computed yet, for a graph of `len` assets.
    pub fn new(len: usize) -> Self {
        Self {
            memo: vec![None; len],
        }
    }

    /// The data time of the asset at dense index `i`; `None` when it has no data, or when some
    /// input's data time is unknown.
    pub fn get(
        &mut self,
        graph: &AssetGraph,
        lineage: &Lineage,
        i: usize,
    ) -> Option<DateTime<Utc>> {
        // Iterative, upstream first, so a long chain cannot overflow the stack.
        let mut stack = vec![i];
        while let Some(&top) = stack.last() {
            if self.memo[top].is_some() {
                stack.pop();
                continue;
            }
            let pending: Vec<usize> = graph
                .upstream_of_index(top)
                .filter(|&d| self.memo[d].is_none())
                .collect();
            if pending.is_empty() {
                let value = self.compute(graph, lineage, top);
                self.memo[top] = Some(value);
                stack.pop();
            } else {
                stack.extend(pending);
            }
        }
        self.memo[i].flatten()
    }

    /// The oldest data time among `def`'s inputs as they are now: what a materialization of `def`
    /// records (`None` when it has no inputs, or one's is unknown).
    pub fn of_inputs(
        &mut self,
        graph: &AssetGraph,
        lineage: &Lineage,
        def: &crate::model::AssetDef,
    ) -> Option<DateTime<Utc>> {
        let mut oldest: Option<DateTime<Utc>> = None;
        for dep in &def.deps {
            let t = self.get(graph, lineage, graph.index_of(dep)?)?;
            oldest = Some(oldest.map_or(t, |o| o.min(t)));
        }
        oldest
    }

    /// Forgets what was computed for `i`, after it was materialized again. Nothing computed
    /// before depends on it when assets are materialized upstream first.
    pub fn forget(&mut self, i: usize) {
        self.memo[i] = None;
    }

    /// One asset's data time, its inputs' already known.
    fn compute(&self, graph: &AssetGraph, lineage: &Lineage, i: usize) -> Option<DateTime<Utc>> {
        let def = graph.def(i);
        if def.kind == AssetKind::Source {
            return lineage.observation(&def.key).map(|o| o.checked_at);
        }
        let m = lineage.materialization(&def.key)?;
        if def.deps.is_empty() {
            return Some(m.created_at);
        }
        let inputs_current = def.deps.len() == m.inputs.len()
            && m.inputs.iter().zip(&def.deps).all(|(input, dep)| {
                input.asset == *dep && lineage.data_version(dep) == Some(&input.data_version)
            });
        if !inputs_current {
            return m.data_time;
        }
        let mut oldest: Option<DateTime<Utc>> = None;
        for d in graph.upstream_of_index(i) {
            let t = self.memo[d].flatten()?;
            oldest = Some(oldest.map_or(t, |o| o.min(t)));
        }
        match (oldest, m.data_time) {
            (Some(now), Some(recorded)) => Some(now.max(recorded)),
            (t, recorded) => t.or(recorded),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration as StdDuration;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn policy(compact: &str) -> CompiledPolicy {
        CompiledPolicy::new(&FreshnessPolicy::parse_compact(compact).unwrap()).unwrap()
    }

    /// `state [-> next_state at TIME]` for a policy, last update and clock.
    fn judge(p: &CompiledPolicy, last: &str, now: &str) -> String {
        let f = p.evaluate(Some(at(last)), at(now));
        match f.next_change {
            Some(c) => format!("{} -> {} at {}", f.state, c.state, c.at.to_rfc3339()),
            None => f.state.to_string(),
        }
    }

    #[test]
    fn max_age_with_warning_moves_through_pass_warn_fail() {
        let p = policy("max_age=1h warn_after=30m");
        let last = "2026-11-22T10:00:00Z";
        let clock = ManualClock::new(at(last));
        let mut seen = Vec::new();
        for minutes in [0, 29, 30, 59, 60, 600] {
            clock.set(at(last) + Duration::minutes(minutes));
            seen.push(judge(&p, last, &clock.now().to_rfc3339()));
        }
        assert_eq!(
            seen,
            [
                "pass -> warn at 2026-11-22T10:30:00+00:00",
                "pass -> warn at 2026-11-22T10:30:00+00:00",
                "warn -> fail at 2026-11-22T11:00:00+00:00",
                "warn -> fail at 2026-11-22T11:00:00+00:00",
                "fail",
                "fail",
            ]
        );
    }

    #[test]
    fn never_updated_is_unknown_and_no_policy_is_none() {
        let p = policy("max_age=1h");
        let f = p.evaluate(None, at("2026-11-22T10:00:00Z"));
        assert_eq!((f.state, f.next_change), (FreshnessState::Unknown, None));
        assert_eq!(Freshness::none().state, FreshnessState::None);
    }

    #[test]
    fn cron_deadline_in_a_time_zone() {
        // "Updated since 06:00 Paris each day" (05:00 UTC in winter), within the previous day.
        let p = policy(r#"cron="0 6 * * *" timezone=Europe/Paris"#);
        // Updated yesterday 07:00 Paris; at 05:59 Paris today the latest tick is yesterday 06:00.
        assert_eq!(
            judge(&p, "2026-11-21T06:00:00Z", "2026-11-22T04:59:00Z"),
            "pass -> fail at 2026-11-23T05:00:00+00:00"
        );
        // Updated yesterday at 05:00 Paris, before yesterday's tick: fails once today's tick passes.
        assert_eq!(
            judge(&p, "2026-11-21T04:00:00Z", "2026-11-22T04:59:00Z"),
            "pass -> fail at 2026-11-22T05:00:00+00:00"
        );
        assert_eq!(
            judge(&p, "2026-11-21T04:00:00Z", "2026-11-22T05:00:00Z"),
            "fail"
        );
        // Tick-relative window: updated at most 1h before the tick.
        let p = policy(r#"cron="0 6 * * *" timezone=Europe/Paris max_age=1h warn_after=30m"#);
        assert_eq!(
            judge(&p, "2026-11-22T04:10:00Z", "2026-11-22T05:30:00Z"),
            "warn -> fail at 2026-11-23T05:00:00+00:00"
        );
        assert_eq!(
            judge(&p, "2026-11-22T04:40:00Z", "2026-11-22T05:30:00Z"),
            "pass -> fail at 2026-11-23T05:00:00+00:00"
        );
        assert_eq!(
            judge(&p, "2026-11-22T03:59:00Z", "2026-11-22T05:30:00Z"),
            "fail"
        );
    }

    #[test]
    fn cron_ticks_follow_daylight_saving_time() {
        // Europe/Berlin springs forward on 2026-03-29 at 02:00 (to 03:00 CEST): a 02:30 tick
        // fires at 03:00 CEST (01:00 UTC) that day.
        let p = policy(r#"cron="30 2 * * *" timezone=Europe/Berlin max_age=1m"#);
        assert_eq!(
            judge(&p, "2026-03-28T01:30:00Z", "2026-03-28T12:00:00Z"),
            "pass -> fail at 2026-03-29T01:00:00+00:00"
        );
        // The day after, the tick is back at 02:30 local, now 00:30 UTC (CEST).
        assert_eq!(
            judge(&p, "2026-03-29T01:00:00Z", "2026-03-29T12:00:00Z"),
            "pass -> fail at 2026-03-30T00:30:00+00:00"
        );
        // In autumn (2026-10-25, 03:00 CEST -> 02:00 CET) 02:30 happens twice; the tick fires once.
        let p = policy(r#"cron="30 2 * * *" timezone=Europe/Berlin"#);
        let f = p.evaluate(Some(at("2026-10-24T00:30:00Z")), at("2026-10-24T12:00:00Z"));
        let c = f.next_change.unwrap();
        assert_eq!(f.state, FreshnessState::Pass);
        // Passes through the 25th's tick (it was updated after the 24th's), fails at the 26th's.
        assert_eq!(c.state, FreshnessState::Fail);
        assert_eq!(c.at, at("2026-10-26T01:30:00Z"));
        let (cron, tz) = p.cron.as_ref().unwrap();
        let mut ticks_on_25th = Vec::new();
        let mut t = at("2026-10-24T22:00:00Z");
        while let Some(next) = next_tick(cron, tz, t).filter(|n| *n < at("2026-10-25T22:00:00Z")) {
            ticks_on_25th.push(next);
            t = next;
        }
        assert_eq!(ticks_on_25th.len(), 1, "{ticks_on_25th:?}");
    }

    #[test]
    fn policies_reject_bad_crons_and_zones() {
        let bad = |cron: &str, tz: Option<&str>| {
            CompiledPolicy::new(&FreshnessPolicy {
                cron: Some(cron.to_owned()),
                timezone: tz.map(str::to_owned),
                max_age: Some(StdDuration::from_secs(60)),
                ..FreshnessPolicy::default()
            })
            .unwrap_err()
        };
        assert!(bad("61 * * * *", None).starts_with("invalid cron \"61 * * * *\""));
        assert_eq!(
            bad("0 6 * * *", Some("Mars/Olympus")),
            "unknown time zone \"Mars/Olympus\" (expected an IANA name such as Europe/Paris)"
        );
    }
}
