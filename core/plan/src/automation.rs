//! Declarative automation: which assets to materialize with nobody asking, judged from the same
//! facts as a status, with the reason in words for every decision.
//!
//! # Conditions
//!
//! - `eager`: materialize when missing or stale (a new code version, new data in an input, a
//!   changed set of inputs), or when an input is being materialized in the same request, and no
//!   input is missing, failed since its last materialization, or in progress.
//! - `on_cron "EXPR" [TZ]`: once after each tick of the cron schedule (5 fields, in the time zone,
//!   UTC by default), as soon as every input has updated since the tick (at once when it has
//!   none). The first evaluation waits for the next tick: adding a condition runs nothing at
//!   once.
//! - `freshness`: just in time to keep the asset's freshness policy passing: when it warns, fails
//!   or has never been materialized, or will warn within its lead time (twice its usual duration,
//!   at least [`MIN_LEAD`]). The request takes along what is behind upstream.
//!
//! # Requests are handled once
//!
//! A [`Cursor`] per asset remembers what it was last requested for: the asset's code version and
//! its inputs' data versions (for `on_cron`, the tick). An asset is not requested again for the
//! same situation while that run is in progress, or after it failed or was cancelled (it is
//! requested again when an input or its code changes); it is when the run's process died. So a
//! failing asset is not retried in a loop, and a cancelled request is not re-queued.
//!
//! Pure: the caller loads the facts (lineage, statuses, runs in progress, failures) and records
//! the decisions and cursors.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

use crate::freshness::FreshnessEvaluator;
use crate::graph::AssetGraph;
pub use crate::model::AutomationCondition;
use crate::model::{AssetKey, AssetKind, FreshnessState, Lineage, RunId, Status};
use crate::planner::Statuses;

/// The least time before a freshness deadline at which a `freshness` asset is requested.
pub const MIN_LEAD: Duration = Duration::from_secs(60);

impl AutomationCondition {
    /// Parses `eager`, `on_cron "0 6 * * *" [Europe/Paris]`, `freshness` or `none` (`Ok(None)`:
    /// only on request), checking the cron and the time zone.
    pub fn parse(text: &str) -> Result<Option<Self>, String> {
        let text = text.trim();
        let condition = match text {
            "none" => return Ok(None),
            "eager" => Self::Eager,
            "freshness" => Self::Freshness,
            _ => {
                let Some(rest) = text.strip_prefix("on_cron") else {
                    return Err(format!(
                        "unknown condition {text:?} (expected eager, on_cron \"CRON\" [TIME_ZONE], \
                         freshness or none)"
                    ));
                };
                let rest = rest.trim_start();
                let quoted = rest
                    .strip_prefix('"')
                    .and_then(|r| r.split_once('"'))
                    .ok_or_else(|| {
                        format!(
                            "on_cron needs a quoted cron expression, e.g. on_cron \"0 6 * * *\" \
                             Europe/Paris; found {rest:?}"
                        )
                    })?;
                let (cron, zone) = (quoted.0.trim(), quoted.1.trim());
                Self::OnCron {
                    cron: cron.to_owned(),
                    timezone: (!zone.is_empty()).then(|| zone.to_owned()),
                }
            }
        };
        condition.compile()?;
        Ok(Some(condition))
    }

    /// The condition in the form [`AutomationCondition::parse`] reads.
    pub fn as_text(&self) -> String {
        self.to_string()
    }

    fn compile(&self) -> Result<Compiled, String> {
        Ok(match self {
            Self::Eager => Compiled::Eager,
            Self::Freshness => Compiled::Freshness,
            Self::OnCron { cron, timezone } => {
                Compiled::OnCron(Box::new(compile_cron(cron, timezone.as_deref())?))
            }
        })
    }
}

impl fmt::Display for AutomationCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Eager => f.write_str("eager"),
            Self::Freshness => f.write_str("freshness"),
            Self::OnCron { cron, timezone } => {
                write!(f, "on_cron \"{cron}\"")?;
                match timezone {
                    Some(tz) => write!(f, " {tz}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Parses a five-field cron expression and an IANA time zone (UTC when `None`).
pub fn compile_cron(pattern: &str, timezone: Option<&str>) -> Result<(Cron, Tz), String> {
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(pattern)
        .map_err(|e| format!("invalid cron {pattern:?}: {e}"))?;
    let tz = match timezone {
        None => Tz::UTC,
        Some(name) => name.parse::<Tz>().map_err(|_| {
            format!("unknown time zone {name:?} (expected an IANA name such as Europe/Paris)")
        })?,
    };
    Ok((cron, tz))
}

/// The latest tick of `cron` in `tz` at or before `at`.
pub fn latest_tick(cron: &Cron, tz: &Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&at.with_timezone(tz), true)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The first tick of `cron` in `tz` strictly after `after`.
pub fn next_tick(cron: &Cron, tz: &Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What a schedule does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickAction {
    /// Nothing: no tick passed since the one handled.
    Wait,
    /// Remember `tick` as handled without running (a new schedule, or a missed tick skipped).
    Pass(DateTime<Utc>),
    /// Run for `tick` (the latest; earlier missed ticks are covered by it).
    Run(DateTime<Utc>),
}

/// What a schedule with the latest handled tick `handled` does at `now`. A new schedule waits
/// for its next tick. Ticks that passed while no daemon ran (before `since`) run once when
/// `catch_up`, else are passed over; a tick that passes while it runs always runs.
pub fn schedule_action(
    cron: &Cron,
    tz: &Tz,
    handled: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
    catch_up: bool,
) -> TickAction {
    let Some(tick) = latest_tick(cron, tz, now) else {
        return TickAction::Wait;
    };
    match handled {
        None => TickAction::Pass(tick),
        Some(h) if h >= tick => TickAction::Wait,
        Some(_) if tick < since && !catch_up => TickAction::Pass(tick),
        Some(_) => TickAction::Run(tick),
    }
}

enum Compiled {
    Eager,
    OnCron(Box<(Cron, Tz)>),
    Freshness,
}

/// What automation remembers of one asset between evaluations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The situation it was last requested for (code and input versions, or a tick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_for: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<DateTime<Utc>>,
    /// The run that request became.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// `on_cron`: the latest tick handled (requested, or passed before the condition was seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<DateTime<Utc>>,
}

/// How a run that automation requested is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunFact {
    /// Queued or running.
    InProgress,
    /// Succeeded.
    Succeeded,
    /// Failed, with its error.
    Failed(String),
    /// Cancelled.
    Cancelled,
    /// Its process died, or shut down, before it ended: what it was for is asked for again.
    Died,
}

/// An asset's latest failed attempt after its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureFact {
    /// When.
    pub at: DateTime<Utc>,
    /// The run.
    pub run_id: RunId,
    /// The error, in one line.
    pub error: String,
}

/// What an evaluation judges from, loaded by the caller at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The project's graph.
    pub graph: &'a AssetGraph,
    /// The recorded lineage.
    pub lineage: &'a Lineage,
    /// Every status, judged against `lineage`.
    pub statuses: &'a Statuses,
    /// Now.
    pub now: DateTime<Utc>,
    /// Assets a queued or running run (of any process) is to materialize.
    pub in_progress: &'a HashSet<AssetKey>,
    /// Each asset's latest failed attempt after its current version.
    pub failures: &'a HashMap<AssetKey, FailureFact>,
    /// How the runs that cursors name are doing (absent: not found).
    pub runs: &'a HashMap<RunId, RunFact>,
    /// How long each asset's materialization usually takes.
    pub durations: &'a HashMap<AssetKey, Duration>,
}

/// How a requested asset is to be materialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Only if, when its turn comes, it is missing or stale (early cut-off applies).
    IfStale,
    /// Whatever its status (a cron tick, a freshness deadline).
    Always,
}

/// One asset's decision in one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The asset.
    pub key: AssetKey,
    /// Its condition, as text.
    pub condition: String,
    /// `Some` when requested.
    pub request: Option<RequestKind>,
    /// Why, in words: "requested: missing", "not requested: input raw_orders failed at ...".
    pub reason: String,
    /// What to remember of the asset if this decision is acted on (a request's run id is set
    /// by the caller).
    pub cursor: Cursor,
}

impl Decision {
    /// Whether it was requested.
    pub fn requested(&self) -> bool {
        self.request.is_some()
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// One per asset with a condition, upstream first.
    pub decisions: Vec<Decision>,
    /// Assets to take along, upstream of `freshness` requests, that are missing or stale.
    pub upstream: Vec<AssetKey>,
    /// The next moment time alone may change a decision (a cron tick, a freshness deadline).
    pub next_at: Option<DateTime<Utc>>,
}

impl Evaluation {
    /// The decisions that requested their asset.
    pub fn requested(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.requested())
    }
}

/// Evaluates every asset's condition against `facts`, upstream first, so that an asset whose
/// input is requested in the same evaluation may be requested with it.
pub fn evaluate(facts: &Facts<'_>, cursors: &HashMap<AssetKey, Cursor>) -> Evaluation {
    let graph = facts.graph;
    let mut requested = vec![false; graph.len()];
    let mut freshness = FreshnessEvaluator::new();
    let mut compiled: HashMap<&AutomationCondition, Option<Compiled>> = HashMap::new();
    let mut out = Evaluation::default();
    let mut upstream = HashSet::new();
    let none = Cursor::default();
    for &i in graph.order() {
        let def = graph.def(i);
        let Some(condition) = &def.automation else {
            continue;
        };
        if def.kind == AssetKind::Source {
            continue;
        }
        // Most projects use few conditions: parse each once. Conditions are checked when a
        // project loads, so one that does not compile cannot come from a project.
        let Some(compiled) = compiled
            .entry(condition)
            .or_insert_with(|| condition.compile().ok())
        else {
            continue;
        };
        let cursor = cursors.get(&def.key).unwrap_or(&none);
        let judge = Judge {
            facts,
            requested: &requested,
            i,
            cursor,
        };
        let (request, reason, next_cursor, next_at) = match compiled {
            Compiled::Eager => judge.eager(),
            Compiled::OnCron(cron) => judge.on_cron(&cron.0, &cron.1),
            Compiled::Freshness => judge.freshness(&mut freshness),
        };
        if let Some(at) = next_at {
            out.next_at = Some(out.next_at.map_or(at, |t: DateTime<Utc>| t.min(at)));
        }
        if request.is_some() {
            requested[i] = true;
            if matches!(condition, AutomationCondition::Freshness) {
                collect_behind(facts, i, &mut upstream);
            }
        }
        out.decisions.push(Decision {
            key: def.key.clone(),
            condition: condition.as_text(),
            request,
            reason,
            cursor: next_cursor,
        });
    }
    let mut upstream: Vec<usize> = upstream.into_iter().filter(|&d| !requested[d]).collect();
    upstream.sort_by_key(|&d| &graph.def(d).key);
    out.upstream = upstream
        .into_iter()
        .map(|d| graph.def(d).key.clone())
        .collect();
    out
}

/// The missing or stale non-source ancestors of `i`.
fn collect_behind(facts: &Facts<'_>, i: usize, into: &mut HashSet<usize>) {
    let graph = facts.graph;
    let mut stack: Vec<usize> = graph.upstream_of_index(i).collect();
    let mut seen = HashSet::new();
    while let Some(d) = stack.pop() {
        if !seen.insert(d) {
            continue;
        }
        if graph.def(d).kind != AssetKind::Source && facts.statuses.at(d).status != Status::Fresh {
            into.insert(d);
        }
        stack.extend(graph.upstream_of_index(d));
    }
}

/// One asset's judgement: request kind, reason, the cursor to keep, and when to look again.
type Judgement = (Option<RequestKind>, String, Cursor, Option<DateTime<Utc>>);

struct Judge<'a, 'f> {
    facts: &'a Facts<'f>,
    requested: &'a [bool],
    i: usize,
    cursor: &'a Cursor,
}

impl Judge<'_, '_> {
    fn key(&self) -> &AssetKey {
        &self.facts.graph.def(self.i).key
    }

    /// The run of the last request, if it is still going.
    fn in_progress(&self) -> Option<String> {
        if let Some(run) = &self.cursor.run_id
            && self.facts.runs.get(run) == Some(&RunFact::InProgress)
        {
            return Some(format!("not requested: run {run} is materializing it"));
        }
        self.facts
            .in_progress
            .contains(self.key())
            .then(|| "not requested: a run in progress is materializing it".to_owned())
    }

    /// Why the inputs are not ready, if they are not; and whether one is requested with it.
    fn inputs_blocked(&self) -> (Option<String>, Option<AssetKey>) {
        let graph = self.facts.graph;
        let mut with = None;
        for d in graph.upstream_of_index(self.i) {
            let dep = &graph.def(d).key;
            if self.requested[d] {
                with.get_or_insert_with(|| dep.clone());
                continue;
            }
            if self.facts.in_progress.contains(dep) {
                return (
                    Some(format!("not requested: input {dep} is being materialized")),
                    None,
                );
            }
            if self.facts.statuses.at(d).status == Status::Missing {
                let never = if graph.def(d).kind == AssetKind::Source {
                    "has never been observed"
                } else {
                    "has never been materialized"
                };
                return (Some(format!("not requested: input {dep} {never}")), None);
            }
            if let Some(f) = self.facts.failures.get(dep) {
                return (
                    Some(format!(
                        "not requested: input {dep} failed at {} in run {}: {}",
                        at_words(f.at),
                        f.run_id,
                        f.error
                    )),
                    None,
                );
            }
        }
        (None, with)
    }

    /// The asset's code version and its inputs' data versions, as one string.
    fn situation(&self) -> String {
        let graph = self.facts.graph;
        let def = graph.def(self.i);
        let mut s = format!(
            "code={}",
            def.code_version.as_ref().map_or("", |v| v.as_str())
        );
        for d in graph.upstream_of_index(self.i) {
            let dep = &graph.def(d).key;
            let version = self.facts.lineage.data_version(dep);
            s.push_str(&format!(";{dep}={}", version.map_or("", |v| v.as_str())));
        }
        s
    }

    /// `Some(reason)` when the last request was for `situation` and is not to be repeated.
    fn handled(&self, situation: &str) -> Option<String> {
        if self.cursor.requested_for.as_deref() != Some(situation) {
            return None;
        }
        let run = self.cursor.run_id.as_ref()?;
        let waits = "requested again when an input or its code changes";
        match self.facts.runs.get(run)? {
            RunFact::InProgress => Some(format!("not requested: run {run} is materializing it")),
            RunFact::Failed(error) => Some(format!(
                "not requested: run {run} failed for these inputs ({error}); {waits}"
            )),
            RunFact::Cancelled => Some(format!(
                "not requested: run {run} for these inputs was cancelled; {waits}"
            )),
            RunFact::Succeeded => Some(format!(
                "not requested: run {run} for these inputs ended without changing it; {waits}"
            )),
            RunFact::Died => None,
        }
    }

    /// Whether the last request's run ended with its process (died, or stopped by a shutdown).
    fn last_run_died(&self) -> bool {
        self.cursor
            .run_id
            .as_ref()
            .is_some_and(|r| self.facts.runs.get(r) == Some(&RunFact::Died))
    }

    fn requested(&self, situation: String, tick: Option<DateTime<Utc>>) -> Cursor {
        Cursor {
            requested_for: Some(situation),
            requested_at: Some(self.facts.now),
            run_id: None,
            tick,
        }
    }

    fn eager(&self) -> Judgement {
        let keep = self.cursor.clone();
        if let Some(reason) = self.in_progress() {
            return (None, reason, keep, None);
        }
        let (blocked, with) = self.inputs_blocked();
        if let Some(reason) = blocked {
            return (None, reason, keep, None);
        }
        let status = self.facts.statuses.at(self.i);
        let situation = self.situation();
        let why = match (status.status, with) {
            (Status::Missing, _) => "requested: missing".to_owned(),
            (Status::Stale, _) => {
                let causes: Vec<String> = status.causes.iter().map(|c| c.describe()).collect();
                format!("requested: {}", causes.join("; "))
            }
            (Status::Fresh, Some(dep)) => {
                format!("requested: input {dep} is requested too")
            }
            (Status::Fresh, None) => return (None, "not requested: fresh".to_owned(), keep, None),
        };
        if status.status != Status::Fresh
            && let Some(reason) = self.handled(&situation)
        {
            return (None, reason, keep, None);
        }
        let was_died = self.cursor.requested_for.as_deref() == Some(situation.as_str())
            && self
                .cursor
                .run_id
                .as_ref()
                .is_some_and(|r| self.facts.runs.get(r) == Some(&RunFact::Died));
        let why = if was_died {
            format!("{why} (again: the last run's process died)")
        } else {
            why
        };
        (
            Some(RequestKind::IfStale),
            why,
            self.requested(situation, None),
            None,
        )
    }

    fn on_cron(&self, cron: &Cron, tz: &Tz) -> Judgement {
        let now = self.facts.now;
        let next = next_tick(cron, tz, now);
        let next_words = next.map_or_else(|| "none".to_owned(), at_words);
        let Some(tick) = latest_tick(cron, tz, now) else {
            return (
                None,
                format!("not requested: no tick yet (next at {next_words})"),
                self.cursor.clone(),
                next,
            );
        };
        let Some(handled) = self.cursor.tick else {
            // First seen: the ticks before now were before the condition.
            let cursor = Cursor {
                tick: Some(tick),
                ..self.cursor.clone()
            };
            return (
                None,
                format!("not requested: waiting for the next tick at {next_words}"),
                cursor,
                next,
            );
        };
        if handled >= tick && !self.last_run_died() {
            return (
                None,
                format!(
                    "not requested: handled the {} tick; next at {next_words}",
                    at_words(handled)
                ),
                self.cursor.clone(),
                next,
            );
        }
        if let Some(reason) = self.in_progress() {
            return (None, reason, self.cursor.clone(), next);
        }
        let graph = self.facts.graph;
        for d in graph.upstream_of_index(self.i) {
            if self.requested[d] {
                continue;
            }
            let dep = &graph.def(d).key;
            let updated = self
                .facts
                .lineage
                .materialization(dep)
                .map(|m| m.created_at)
                .or_else(|| self.facts.lineage.observation(dep).map(|o| o.observed_at));
            if updated.is_none_or(|u| u < tick) {
                return (
                    None,
                    format!(
                        "not requested: waiting for input {dep} to update since the {} tick",
                        at_words(tick)
                    ),
                    self.cursor.clone(),
                    next,
                );
            }
        }
        let inputs = if graph.upstream_of_index(self.i).next().is_none() {
            "it has no inputs"
        } else {
            "its inputs updated since"
        };
        (
            Some(RequestKind::Always),
            format!("requested: the {} tick passed and {inputs}", at_words(tick)),
            self.requested(format!("tick={}", tick.to_rfc3339()), Some(tick)),
            next,
        )
    }

    fn freshness(&self, evaluator: &mut FreshnessEvaluator) -> Judgement {
        let keep = self.cursor.clone();
        let facts = self.facts;
        let f = evaluator.evaluate(facts.graph, facts.lineage, self.i, facts.now);
        let last = f.last_updated.map_or_else(
            || "never".to_owned(),
            |t| format!("last materialized {}", at_words(t)),
        );
        let lead = facts
            .durations
            .get(self.key())
            .map_or(MIN_LEAD, |d| d.saturating_mul(2).max(MIN_LEAD));
        let lead = chrono::Duration::from_std(lead).unwrap_or(chrono::Duration::MAX);
        // When to ask, `lead` before `at` (the earliest time there is, for a lead that long).
        let ask_at = |at: DateTime<Utc>| {
            at.checked_sub_signed(lead)
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        let why = match f.state {
            FreshnessState::None => {
                return (
                    None,
                    "not requested: it has no freshness policy".to_owned(),
                    keep,
                    None,
                );
            }
            FreshnessState::Unknown => "requested: never materialized".to_owned(),
            FreshnessState::Fail => format!("requested: freshness fails ({last})"),
            FreshnessState::Warn => format!("requested: freshness warns ({last})"),
            FreshnessState::Pass => match f.next_change {
                Some(change) if ask_at(change.at) <= facts.now => format!(
                    "requested: freshness would {} at {} ({last})",
                    change.state.as_str(),
                    at_words(change.at)
                ),
                Some(change) => {
                    return (
                        None,
                        format!(
                            "not requested: freshness passes until {} ({last})",
                            at_words(change.at)
                        ),
                        keep,
                        Some(ask_at(change.at)),
                    );
                }
                None => return (None, format!("not requested: fresh ({last})"), keep, None),
            },
        };
        if let Some(reason) = self.in_progress() {
            return (None, reason, keep, None);
        }
        // The same version and inputs it was requested for: do not repeat a request that
        // failed until something changed.
        let version = facts
            .lineage
            .materialization(self.key())
            .map_or_else(String::new, |m| m.id.to_string());
        let situation = format!("freshness={version};{}", self.situation());
        if let Some(reason) = self.handled(&situation) {
            return (None, reason, keep, None);
        }
        (
            Some(RequestKind::Always),
            why,
            self.requested(situation, None),
            None,
        )
    }
}

/// A time as decisions word it: `2026-12-02 10:00 UTC`.
fn at_words(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests;
