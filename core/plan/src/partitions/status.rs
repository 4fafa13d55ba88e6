//! Staleness per partition: today's rules per asset (code version, input data versions, early
//! cut-off), applied to ranges of partitions at once.
//!
//! Partition `d` of an asset is stale when its code version is not the asset's current one, or
//! when, for some input mapped to it, a partition of that input changed data after `d` read its
//! inputs: `max(input.changed over mapping(d)) > cursor[d]`. `changed` moves only when a
//! partition's new data version differs from its previous one, so rebuilding an input with the
//! same rows stales nothing downstream (early cut-off, per partition). Every step works on runs
//! of the columns and ranges of the sets, never on keys one by one.

use std::ops::Range;

use chrono::{DateTime, Utc};

use super::def::{KeyList, Ordinal, PartitionsDef, TimeWindows};
use super::set::{Column, PartitionSet};

/// What a store knows of an asset's partitions.
#[derive(Debug, Clone, Default)]
pub struct PartitionState {
    /// Partitions with a current version.
    pub materialized: PartitionSet,
    /// Per partition: the id of the code version its current version was made with (0: none).
    pub code: Column<u32>,
    /// Per partition: the store's commit sequence when its current version read its inputs.
    pub cursor: Column<u64>,
    /// Per partition: the commit sequence at which its data version last changed.
    pub changed: Column<u64>,
    /// Partitions whose latest attempt failed.
    pub failed: PartitionSet,
}

impl PartitionState {
    /// Records a version of `range` committed at `seq`, made with code `code` from inputs read
    /// at `cursor`; `changed` holds the partitions whose data version differs from their
    /// previous one (the others keep theirs: early cut-off).
    pub fn commit(
        &mut self,
        range: Range<Ordinal>,
        seq: u64,
        cursor: u64,
        code: u32,
        changed: &PartitionSet,
    ) {
        self.materialized.insert_range(range.clone());
        self.failed.remove_range(range.clone());
        self.code.set(range.clone(), code);
        self.cursor.set(range.clone(), cursor);
        for changed in changed.ranges_in(range) {
            self.changed.set(changed, seq);
        }
    }

    /// Records that the latest attempt at `range` failed.
    pub fn fail(&mut self, range: Range<Ordinal>) {
        self.failed.insert_range(range);
    }

    /// The asset's data version as a whole, for readers that are not partitioned: it moves
    /// whenever some partition's data changes (a rebuild with the same rows moves nothing).
    pub fn whole_version(&self) -> String {
        // The newest change's commit number, mixed (SplitMix64's finalizer, a bijection) so
        // that neighbouring numbers look as different as versions do.
        let mut z = self.changed.max();
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        format!("{:016x}", z ^ (z >> 31))
    }
}

/// An asset's partitioning, as the status needs it.
#[derive(Debug, Clone, Copy)]
pub enum Partitioning<'a> {
    /// Not partitioned: one partition, ordinal 0.
    Whole,
    /// Partitioned by `def`; a dynamic definition's keys come with it.
    By {
        def: &'a PartitionsDef,
        keys: Option<&'a KeyList>,
    },
}

impl Partitioning<'_> {
    /// The partitions that exist at `now`.
    pub fn valid(&self, now: DateTime<Utc>) -> PartitionSet {
        match self {
            Self::Whole => PartitionSet::from_range(0..1),
            Self::By { def, keys } => match def {
                PartitionsDef::Time(windows) => match windows.last(now) {
                    Some(last) => PartitionSet::from_range(windows.start()..last + 1),
                    None => PartitionSet::new(),
                },
                PartitionsDef::Static(list) => list.ordinals().collect(),
                PartitionsDef::Dynamic => keys.map(|k| k.ordinals().collect()).unwrap_or_default(),
            },
        }
    }

    fn time(&self) -> Option<&TimeWindows> {
        match self {
            Self::By { def, .. } => def.time(),
            Self::Whole => None,
        }
    }
}

/// How the partitions of an asset map to those of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// The same partition (both sides share a definition).
    Identity,
    /// The input's time windows that overlap the partition's window widened by `from` windows
    /// before and `to` after (`window(-1..0)`: this window and the one before), counted in the
    /// asset's windows, or the input's with `upstream`.
    Window { from: i32, to: i32, upstream: bool },
    /// Every partition of the input.
    All,
    /// The input's last partition that exists.
    Latest,
    /// The `n` partitions before this one (a self-dependency, or an input with the same
    /// definition): a running total, a sessionization.
    Previous(u32),
}

impl Mapping {
    /// The mapping used when none is given: identity between equal definitions, windows
    /// between two time definitions, every partition otherwise.
    pub fn default_between(down: &Partitioning<'_>, up: &Partitioning<'_>, same_def: bool) -> Self {
        if same_def {
            Self::Identity
        } else if down.time().is_some() && up.time().is_some() {
            Self::Window {
                from: 0,
                to: 0,
                upstream: false,
            }
        } else {
            Self::All
        }
    }

    /// Parses `identity`, `all`, `latest`, `previous`, `previous(N)`, `window(A..B)` and
    /// `window(A..B, upstream)`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let args = |name: &str| {
            text.strip_prefix(name)
                .map(str::trim_start)
                .and_then(|rest| rest.strip_prefix('('))
                .and_then(|rest| rest.strip_suffix(')'))
                .map(str::trim)
        };
        match text {
            "identity" => return Ok(Self::Identity),
            "all" => return Ok(Self::All),
            "latest" => return Ok(Self::Latest),
            "previous" => return Ok(Self::Previous(1)),
            _ => {}
        }
        if let Some(n) = args("previous") {
            return match n.parse::<u32>() {
                Ok(n) if n > 0 => Ok(Self::Previous(n)),
                _ => Err(format!("previous({n}): expected a count of 1 or more")),
            };
        }
        if let Some(inner) = args("window") {
            let (range, upstream) = match inner.split_once(',') {
                Some((range, "upstream")) | Some((range, " upstream")) => (range, true),
                Some((_, unit)) => {
                    return Err(format!(
                        "window({inner}): {:?} should be \"upstream\" (offsets in the input's windows)",
                        unit.trim()
                    ));
                }
                None => (inner, false),
            };
            let parsed = range
                .split_once("..")
                .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
            return match parsed {
                Some((from, to)) if from <= to => Ok(Self::Window { from, to, upstream }),
                _ => Err(format!(
                    "window({inner}): expected two offsets A..B with A <= B, e.g. window(-1..0)"
                )),
            };
        }
        Err(format!(
            "unknown mapping {text:?}: expected identity, all, latest, previous(N) or window(A..B)"
        ))
    }
}

impl std::fmt::Display for Mapping {
    /// As `@inputs` writes it: `identity`, `window(-1..0)`, `window(0..0, upstream)`, `all`,
    /// `latest`, `previous(1)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Identity => f.write_str("identity"),
            Self::Window { from, to, upstream } => {
                write!(f, "window({from}..{to}")?;
                if *upstream {
                    f.write_str(", upstream")?;
                }
                f.write_str(")")
            }
            Self::All => f.write_str("all"),
            Self::Latest => f.write_str("latest"),
            Self::Previous(n) => write!(f, "previous({n})"),
        }
    }
}

impl Mapping {
    /// What a partition reads of its input through this mapping, in words.
    pub fn describe(&self) -> String {
        match self {
            Self::Identity => "the same partition".to_owned(),
            Self::Window { from, to, upstream } => {
                let unit = if *upstream { "the input's" } else { "its own" };
                let around = match (from, to) {
                    (0, 0) => "its window".to_owned(),
                    (a, 0) if *a < 0 => format!("its window and the {} before", -a),
                    (0, b) if *b > 0 => format!("its window and the {b} after"),
                    (a, b) => format!("windows {a} to {b} around its own"),
                };
                format!("the input's windows that overlap {around} ({unit} windows)")
            }
            Self::All => "every partition".to_owned(),
            Self::Latest => "the input's last partition".to_owned(),
            Self::Previous(1) => "the partition before".to_owned(),
            Self::Previous(n) => format!("the {n} partitions before"),
        }
    }
}

/// One input of an asset, with what is known of it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub partitioning: Partitioning<'a>,
    pub state: &'a PartitionState,
    pub mapping: &'a Mapping,
}

/// What the partitions of an input that a partition needs are.
enum Needed {
    /// These (half-open); empty when it needs none.
    Range(Range<Ordinal>),
    /// Some do not exist yet (after the input's last).
    NotYet,
}

/// The partitions of an input partitioned by `up` that partition `d` of an asset partitioned by
/// `down` reads through `mapping`, at `now`: `None` when some of them do not exist yet (the
/// partition is blocked), an empty range when it reads none.
pub fn mapped_partitions(
    down: &Partitioning<'_>,
    d: Ordinal,
    up: &Partitioning<'_>,
    mapping: &Mapping,
    now: DateTime<Utc>,
) -> Option<Range<Ordinal>> {
    let up_valid = up.valid(now);
    let span = up_valid.first().unwrap_or(0)..up_valid.last().map_or(0, |l| l + 1);
    match needed(down, d, up, mapping, span) {
        Needed::Range(range) => Some(range),
        Needed::NotYet => None,
    }
}

/// The partitions of an input partitioned by `up` (those that exist span `up_valid`) that
/// partition `d` (of `down`) needs through `mapping`.
fn needed(
    down: &Partitioning<'_>,
    d: Ordinal,
    up: &Partitioning<'_>,
    mapping: &Mapping,
    up_valid: Range<Ordinal>,
) -> Needed {
    let clip = |lo: i64, hi: i64| {
        // Partitions before the input's first never exist and are not waited for.
        let lo = lo.max(i64::from(up_valid.start));
        if hi < lo {
            return Needed::Range(0..0);
        }
        if hi >= i64::from(up_valid.end) {
            return Needed::NotYet;
        }
        match (Ordinal::try_from(lo), Ordinal::try_from(hi + 1)) {
            (Ok(lo), Ok(hi)) => Needed::Range(lo..hi),
            _ => Needed::NotYet,
        }
    };
    match mapping {
        Mapping::Identity => clip(i64::from(d), i64::from(d)),
        Mapping::All => Needed::Range(up_valid),
        Mapping::Latest => match up_valid.end.checked_sub(1) {
            Some(last) => Needed::Range(last..last + 1),
            None => Needed::NotYet,
        },
        Mapping::Previous(n) => clip(i64::from(d) - i64::from(*n), i64::from(d) - 1),
        Mapping::Window { from, to, upstream } => {
            let (Some(down), Some(up)) = (down.time(), up.time()) else {
                return Needed::Range(up_valid);
            };
            let window = |o: i64| Ordinal::try_from(o).ok().and_then(|o| down.window(o));
            let d = i64::from(d);
            let bounds = if *upstream {
                window(d).and_then(|(start, end)| {
                    let lo = i64::from(up.containing(start)?) + i64::from(*from);
                    let hi = i64::from(up.containing(end - chrono::Duration::seconds(1))?)
                        + i64::from(*to);
                    Some((lo, hi))
                })
            } else {
                window(d + i64::from(*from))
                    .zip(window(d + i64::from(*to)))
                    .and_then(|((start, _), (_, end))| {
                        let lo = up.containing(start)?;
                        let hi = up.containing(end - chrono::Duration::seconds(1))?;
                        Some((i64::from(lo), i64::from(hi)))
                    })
            };
            match bounds {
                Some((lo, hi)) => clip(lo, hi),
                None => Needed::NotYet,
            }
        }
    }
}

/// A partition's status; an asset's is its worst partition's (the order of this enum, worst
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PartitionStatus {
    /// Its latest attempt failed.
    Failed,
    /// Its version is out of date (see [`StaleRange`] for why).
    Stale,
    /// It has no version.
    Missing,
    /// It needs a run, but input partitions it maps to do not exist yet: it waits.
    Blocked,
    /// Up to date.
    Fresh,
}

impl PartitionStatus {
    /// The word the CLI, the API and the web view use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Stale => "stale",
            Self::Missing => "missing",
            Self::Blocked => "blocked",
            Self::Fresh => "fresh",
        }
    }

    /// The status named `word` (`stale`), as [`PartitionStatus::as_str`] writes it.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == word)
    }

    /// Every status, worst first.
    pub const ALL: [Self; 5] = [
        Self::Failed,
        Self::Stale,
        Self::Missing,
        Self::Blocked,
        Self::Fresh,
    ];
}

/// Why a range of partitions is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionCause {
    /// Made with another code version (its id).
    Code { recorded: u32 },
    /// Input `input` (its index) changed data in `range` at commit `seq`, after these read it.
    Input {
        input: usize,
        range: Range<Ordinal>,
        seq: u64,
    },
}

/// A range of partitions stale for one cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRange {
    pub range: Range<Ordinal>,
    pub cause: PartitionCause,
}

/// Every existing partition of an asset by status, and why the stale ones are.
#[derive(Debug, Clone, Default)]
pub struct PartitionStatuses {
    /// The partitions that exist now.
    pub valid: PartitionSet,
    /// One set per status, in [`PartitionStatus::ALL`]'s order; each partition is in one.
    sets: [PartitionSet; 5],
    /// Why: coalesced ranges, in order of the asset's partitions (one per cause).
    pub causes: Vec<StaleRange>,
}

impl PartitionStatuses {
    /// The partitions with `status`.
    pub fn get(&self, status: PartitionStatus) -> &PartitionSet {
        &self.sets[status as usize]
    }

    /// How many partitions have `status`.
    pub fn count(&self, status: PartitionStatus) -> u64 {
        self.get(status).len()
    }

    /// The worst status of any partition (`None` when none exists yet).
    pub fn worst(&self) -> Option<PartitionStatus> {
        PartitionStatus::ALL
            .into_iter()
            .find(|s| !self.get(*s).is_empty())
    }

    /// The status of partition `ordinal`, if it exists.
    pub fn status_of(&self, ordinal: Ordinal) -> Option<PartitionStatus> {
        PartitionStatus::ALL
            .into_iter()
            .find(|s| self.get(*s).contains(ordinal))
    }

    /// `stale: 24 of 8,760`: the worst status and how many of the partitions have it.
    pub fn summary(&self) -> String {
        match self.worst() {
            None => "no partitions yet".into(),
            Some(status) => format!(
                "{}: {} of {}",
                status.as_str(),
                thousands(self.count(status)),
                thousands(self.valid.len())
            ),
        }
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The status of every existing partition of an asset partitioned by `partitioning`, whose
/// current code version has id `code`, from its `state` and its `inputs`, at `now`.
pub fn partition_statuses(
    partitioning: &Partitioning<'_>,
    state: &PartitionState,
    code: u32,
    inputs: &[Input<'_>],
    now: DateTime<Utc>,
) -> PartitionStatuses {
    let valid = partitioning.valid(now);
    let mut materialized = state.materialized.clone();
    materialized &= &valid;

    // Stale: by code, then by each input.
    let mut causes: Vec<StaleRange> = Vec::new();
    for range in materialized.ranges() {
        for (run, recorded) in state.code.runs_in(range) {
            if recorded != code {
                push_cause(&mut causes, run, PartitionCause::Code { recorded });
            }
        }
    }
    let mut blocked_by = PartitionSet::new();
    let mut input_causes = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let up_valid = input.partitioning.valid(now);
        let up_span = up_valid.first().unwrap_or(0)..up_valid.last().map_or(0, |l| l + 1);
        match input.mapping {
            Mapping::Identity => {
                for range in materialized.ranges() {
                    for (run, cursor, changed) in
                        zip_runs(&state.cursor, &input.state.changed, range)
                    {
                        if changed > cursor {
                            push_cause(
                                &mut input_causes,
                                run.clone(),
                                PartitionCause::Input {
                                    input: i,
                                    range: run,
                                    seq: changed,
                                },
                            );
                        }
                    }
                }
            }
            Mapping::All => {
                let changed = input.state.changed.max();
                for range in materialized.ranges() {
                    for (run, cursor) in state.cursor.runs_in(range) {
                        if changed > cursor {
                            push_cause(
                                &mut input_causes,
                                run,
                                PartitionCause::Input {
                                    input: i,
                                    range: up_span.clone(),
                                    seq: changed,
                                },
                            );
                        }
                    }
                }
            }
            _ => {
                // One pass over every partition: what it needs decides both whether it is
                // stale (if it has a version) and whether it could run now.
                for range in valid.ranges() {
                    for d in range {
                        let up = match needed(
                            partitioning,
                            d,
                            &input.partitioning,
                            input.mapping,
                            up_span.clone(),
                        ) {
                            Needed::Range(up) => up,
                            Needed::NotYet => {
                                blocked_by.insert(d);
                                continue;
                            }
                        };
                        if !input.state.materialized.contains_range(up.clone()) {
                            blocked_by.insert(d);
                        }
                        if !materialized.contains(d) {
                            continue;
                        }
                        let changed = input.state.changed.max_in(up.clone());
                        if changed > state.cursor.get(d) {
                            push_cause(
                                &mut input_causes,
                                d..d + 1,
                                PartitionCause::Input {
                                    input: i,
                                    range: up,
                                    seq: changed,
                                },
                            );
                        }
                    }
                }
                continue;
            }
        }
        // Blocked: partitions that need a run but whose inputs are not all there.
        blocked_by |= &incomplete(&valid, input, &up_valid);
    }
    causes.extend(input_causes);
    causes.sort_by_key(|c| (c.range.start, c.range.end));

    let mut stale = PartitionSet::new();
    for cause in &causes {
        stale.insert_range(cause.range.clone());
    }
    let mut failed = state.failed.clone();
    failed &= &valid;
    let mut missing = valid.clone();
    missing -= &materialized;
    // Blocked among those that need a run.
    let mut needs_run = missing.clone();
    needs_run |= &stale;
    needs_run -= &failed;
    let mut blocked = blocked_by;
    blocked &= &needs_run;
    stale -= &failed;
    stale -= &blocked;
    missing -= &failed;
    missing -= &blocked;
    let mut fresh = materialized;
    fresh -= &stale;
    fresh -= &failed;
    fresh -= &blocked;
    // Failed and blocked partitions are not called stale.
    causes.retain(|c| stale.len_in(c.range.clone()) > 0);
    PartitionStatuses {
        valid,
        sets: [failed, stale, missing, blocked, fresh],
        causes,
    }
}

/// The partitions of the asset (among `valid`) whose mapped partitions of `input` (through
/// `identity` or `all`) are not all materialized.
fn incomplete(valid: &PartitionSet, input: &Input<'_>, up_valid: &PartitionSet) -> PartitionSet {
    let up_materialized = &input.state.materialized;
    if *input.mapping == Mapping::Identity {
        let mut blocked = valid.clone();
        blocked -= up_materialized;
        return blocked;
    }
    let mut absent = up_valid.clone();
    absent -= up_materialized;
    if up_valid.is_empty() || !absent.is_empty() {
        valid.clone()
    } else {
        PartitionSet::new()
    }
}

/// Adds `range` with `cause`, merged into the last cause when they continue each other.
fn push_cause(causes: &mut Vec<StaleRange>, range: Range<Ordinal>, cause: PartitionCause) {
    if let Some(last) = causes.last_mut()
        && last.range.end == range.start
    {
        match (&mut last.cause, &cause) {
            (PartitionCause::Code { recorded: a }, PartitionCause::Code { recorded: b })
                if a == b =>
            {
                last.range.end = range.end;
                return;
            }
            (
                PartitionCause::Input {
                    input: a,
                    range: up_a,
                    seq: seq_a,
                },
                PartitionCause::Input {
                    input: b,
                    range: up_b,
                    seq: seq_b,
                },
            ) if a == b => {
                last.range.end = range.end;
                up_a.start = up_a.start.min(up_b.start);
                up_a.end = up_a.end.max(up_b.end);
                *seq_a = (*seq_a).max(*seq_b);
                return;
            }
            _ => {}
        }
    }
    causes.push(StaleRange { range, cause });
}

/// The runs of `a` and `b` together over `within`: each piece with both values.
fn zip_runs<'c, A, B>(
    a: &'c Column<A>,
    b: &'c Column<B>,
    within: Range<Ordinal>,
) -> impl Iterator<Item = (Range<Ordinal>, A, B)> + 'c
where
    A: Copy + Eq + Default,
    B: Copy + Eq + Default,
{
    let mut a_runs = a.runs_in(within.clone()).peekable();
    let mut b_runs = b.runs_in(within).peekable();
    std::iter::from_fn(move || {
        let (ra, va) = a_runs.peek()?.clone();
        let (rb, vb) = b_runs.peek()?.clone();
        let start = ra.start.max(rb.start);
        let end = ra.end.min(rb.end);
        if ra.end == end {
            a_runs.next();
        }
        if rb.end == end {
            b_runs.next();
        }
        Some((start..end, va, vb))
    })
}

/// A piece of a partition health bar: partitions `range` shown as `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub range: Range<Ordinal>,
    /// The worst status among the partitions of `range`.
    pub status: PartitionStatus,
}

impl PartitionStatuses {
    /// The health bar of `within` in at most `width` segments: each partition's status in
    /// runs, or, when there are more runs than `width`, `width` equal buckets (in partitions),
    /// each showing its worst status, neighbours with the same status merged.
    pub fn health(&self, within: Range<Ordinal>, width: usize) -> Vec<Segment> {
        let width = width.max(1);
        let mut runs: Vec<Segment> = Vec::new();
        for status in PartitionStatus::ALL {
            for range in self.get(status).ranges_in(within.clone()) {
                runs.push(Segment { range, status });
                if runs.len() > width {
                    break;
                }
            }
            if runs.len() > width {
                break;
            }
        }
        let mut segments: Vec<Segment> = Vec::new();
        let mut push = |range: Range<Ordinal>, status| match segments.last_mut() {
            Some(last) if last.status == status && last.range.end == range.start => {
                last.range.end = range.end;
            }
            _ => segments.push(Segment { range, status }),
        };
        if runs.len() <= width {
            runs.sort_by_key(|s| s.range.start);
            for run in runs {
                push(run.range, run.status);
            }
            return segments;
        }
        let span = u64::from(within.end.saturating_sub(within.start));
        for bucket in 0..width as u64 {
            let lo = within.start + Ordinal::try_from(span * bucket / width as u64).unwrap_or(0);
            let hi =
                within.start + Ordinal::try_from(span * (bucket + 1) / width as u64).unwrap_or(0);
            if lo >= hi {
                continue;
            }
            let worst = PartitionStatus::ALL
                .into_iter()
                .find(|s| self.get(*s).len_in(lo..hi) > 0);
            if let Some(status) = worst {
                push(lo..hi, status);
            }
        }
        segments
    }
}
