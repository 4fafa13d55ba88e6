//! Partition definitions: which partitions an asset has, their ordinals, keys and windows.
//!
//! A partition is known by its **ordinal**, a `u32` fixed for ever: time windows count from a
//! fixed origin (1900-01-01 in the definition's time zone, or 2000-01-01 for cron windows), not
//! from `start`, so moving `start` or adding windows renumbers nothing; static and dynamic keys
//! take the next ordinal when they are added. Keys (`2024-03-31`, `eu`) exist only at the
//! edges: display, paths and parameters.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::Deserialize;

use crate::model::parse_duration;

/// A partition's position in its definition.
pub type Ordinal = u32;

/// A definition as written in `freshet.toml` (`[partitions.NAME]`): exactly one of `every`,
/// `cron`, `static` and `dynamic`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionsSpec {
    /// Calendar windows: `hour`, `day`, `week` (ISO, from Monday) or `month`.
    pub every: Option<String>,
    /// Windows between the ticks of a five-field cron pattern.
    pub cron: Option<String>,
    /// The first window: a date (`2024-01-01`) or a local time (`2024-01-01T06:00`).
    pub start: Option<String>,
    /// The IANA time zone windows follow (default UTC).
    pub timezone: Option<String>,
    /// Windows past the last complete one that exist already (1: the one in progress).
    #[serde(default)]
    pub end_offset: i32,
    /// How long after its end a window becomes due (late data), e.g. `2h`.
    pub lag: Option<String>,
    /// Static keys, in the order they were added.
    #[serde(rename = "static")]
    pub keys: Option<Vec<String>>,
    /// Keys added at run time (`freshet partitions add`, the API, a sensor).
    #[serde(default)]
    pub dynamic: bool,
    /// Two or more definitions combined.
    pub dims: Option<Vec<String>>,
}

/// A definition, compiled: what its partitions are.
#[derive(Debug, Clone)]
pub enum PartitionsDef {
    /// Time windows.
    Time(TimeWindows),
    /// A fixed list of keys.
    Static(KeyList),
    /// Keys added at run time: the list comes from the store.
    Dynamic,
}

impl PartitionsDef {
    /// Compiles `spec`, the definition named `name`; the error is one line naming what is wrong.
    pub fn compile(name: &str, spec: &PartitionsSpec) -> Result<Self, String> {
        let error = |what: String| format!("partitions.{name}: {what}");
        let kinds = [
            spec.every.is_some(),
            spec.cron.is_some(),
            spec.keys.is_some(),
            spec.dynamic,
            spec.dims.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            1 => {}
            0 => {
                return Err(error(
                    "say which partitions: every = \"day\", cron = \"...\", static = [...], \
                     dynamic = true or dims = [...]"
                        .into(),
                ));
            }
            _ => {
                return Err(error(
                    "give only one of every, cron, static, dynamic and dims".into(),
                ));
            }
        }
        let time_only = spec.start.is_some()
            || spec.timezone.is_some()
            || spec.end_offset != 0
            || spec.lag.is_some();
        if let Some(keys) = &spec.keys {
            if time_only {
                return Err(error(
                    "start, timezone, end_offset and lag are for time windows".into(),
                ));
            }
            let mut list = KeyList::default();
            for key in keys {
                if list.ordinal(key).is_some() {
                    return Err(error(format!("the key {key:?} is listed twice")));
                }
                list.add(key).map_err(error)?;
            }
            return Ok(Self::Static(list));
        }
        if spec.dynamic {
            if time_only {
                return Err(error(
                    "start, timezone, end_offset and lag are for time windows".into(),
                ));
            }
            return Ok(Self::Dynamic);
        }
        if spec.dims.is_some() {
            return Err(error(
                "dims (partitions in two or more dimensions) are not supported yet".into(),
            ));
        }
        TimeWindows::compile(spec).map(Self::Time).map_err(error)
    }

    /// The time windows, if the partitions are windows.
    pub fn time(&self) -> Option<&TimeWindows> {
        match self {
            Self::Time(windows) => Some(windows),
            _ => None,
        }
    }

    /// What this definition's ordinals count, for the definition named `name`: a partition
    /// state is stored with it, and one numbered otherwise is not read as this one's. Moving
    /// `start`, `end_offset` or `lag` keeps it; another cadence, time zone or static list does
    /// not.
    pub fn numbering(&self, name: &str) -> String {
        match self {
            Self::Time(w) => format!("{name}:{}@{}", w.written, w.timezone.name()),
            Self::Static(list) => {
                // FNV-1a over the keys in order: stable across builds and platforms.
                let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                for key in list.ordinals().filter_map(|o| list.key(o)) {
                    for byte in key.bytes().chain([0]) {
                        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                    }
                }
                format!("{name}:static:{hash:016x}")
            }
            Self::Dynamic => format!("{name}:dynamic"),
        }
    }

    /// The key of partition `ordinal`; a dynamic definition's come from `dynamic`.
    pub fn key(&self, ordinal: Ordinal, dynamic: Option<&KeyList>) -> Option<String> {
        match self {
            Self::Time(w) => w.key(ordinal),
            Self::Static(list) => list.key(ordinal).map(str::to_owned),
            Self::Dynamic => dynamic?.key(ordinal).map(str::to_owned),
        }
    }

    /// The ordinal of the partition with `key`; a dynamic definition's come from `dynamic`.
    pub fn ordinal(&self, key: &str, dynamic: Option<&KeyList>) -> Option<Ordinal> {
        match self {
            Self::Time(w) => w.ordinal(key),
            Self::Static(list) => list.ordinal(key),
            Self::Dynamic => dynamic?.ordinal(key),
        }
    }
}

/// Keys in the order they were added, each with its ordinal; a removed key keeps its ordinal.
#[derive(Debug, Clone, Default)]
pub struct KeyList {
    keys: Vec<Option<Arc<str>>>,
    ordinals: HashMap<Arc<str>, Ordinal>,
}

impl KeyList {
    /// Adds `key` (if new) and returns its ordinal.
    pub fn add(&mut self, key: &str) -> Result<Ordinal, String> {
        if let Some((known, ordinal)) = self.ordinals.get_key_value(key) {
            // A removed key added again gets its ordinal back.
            self.keys[*ordinal as usize] = Some(known.clone());
            return Ok(*ordinal);
        }
        check_key(key)?;
        let ordinal = Ordinal::try_from(self.keys.len())
            .map_err(|_| "more than 4,294,967,295 keys".to_string())?;
        let key: Arc<str> = key.into();
        self.keys.push(Some(key.clone()));
        self.ordinals.insert(key, ordinal);
        Ok(ordinal)
    }

    /// Removes `key`: its ordinal is never given to another key. Whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.ordinals.get(key) {
            Some(ordinal) => self.keys[*ordinal as usize].take().is_some(),
            None => false,
        }
    }

    /// The ordinal of `key`, if it is a current key.
    pub fn ordinal(&self, key: &str) -> Option<Ordinal> {
        let ordinal = *self.ordinals.get(key)?;
        self.keys[ordinal as usize].as_ref().map(|_| ordinal)
    }

    /// The key of `ordinal`, if it is a current key.
    pub fn key(&self, ordinal: Ordinal) -> Option<&str> {
        self.keys.get(ordinal as usize)?.as_deref()
    }

    /// The current keys' ordinals, in order.
    pub fn ordinals(&self) -> impl Iterator<Item = Ordinal> + '_ {
        (0..)
            .zip(&self.keys)
            .filter_map(|(o, k)| k.as_ref().map(|_| o))
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.iter().filter(|k| k.is_some()).count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `key` can name a partition: a folder name in every store, a parameter, a CLI word.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 255 {
        return Err(format!("partition key {key:?} must hold 1 to 255 bytes"));
    }
    if key == "." || key == ".." {
        return Err(format!("partition key {key:?} cannot be a folder name"));
    }
    if let Some(c) = key
        .chars()
        .find(|c| c.is_control() || matches!(c, '/' | '\\' | '=' | '|' | ','))
    {
        return Err(format!(
            "partition key {key:?} cannot hold {c:?} (keys name folders and ranges)"
        ));
    }
    if key.contains("..") {
        return Err(format!(
            "partition key {key:?} cannot hold \"..\" (it separates the ends of a range)"
        ));
    }
    Ok(())
}

/// Calendar windows, or the windows between a cron pattern's ticks.
#[derive(Debug, Clone)]
pub struct TimeWindows {
    cadence: Cadence,
    /// What the cadence was written as (`day`, a cron pattern).
    written: String,
    timezone: Tz,
    /// The first window.
    start: Ordinal,
    end_offset: i32,
    lag: Duration,
}

#[derive(Debug, Clone)]
enum Cadence {
    /// Hours, shifted by the zone's offset past whole hours (30 minutes in India).
    Hour {
        phase: i64,
    },
    Day,
    Week,
    Month,
    Cron(Arc<CronTicks>),
}

/// The origin of calendar ordinals: 1900-01-01 (a Monday), 00:00 in the zone (or UTC for hours).
const ORIGIN: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(d) => d,
    None => unreachable!(),
};
/// 1900-01-01T00:00:00Z in seconds since the Unix epoch.
const ORIGIN_SECONDS: i64 = -2_208_988_800;
/// Cron windows are counted from the first tick on or after this day (local).
const CRON_ORIGIN: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(d) => d,
    None => unreachable!(),
};
/// Cron ticks a definition may have from [`CRON_ORIGIN`]: beyond, use `every`.
pub const MOST_CRON_TICKS: usize = 2_000_000;

impl TimeWindows {
    fn compile(spec: &PartitionsSpec) -> Result<Self, String> {
        let timezone = match &spec.timezone {
            None => Tz::UTC,
            Some(name) => name.parse::<Tz>().map_err(|_| {
                format!("unknown time zone {name:?} (expected an IANA name such as Europe/Paris)")
            })?,
        };
        let lag = match &spec.lag {
            None => Duration::zero(),
            Some(text) => Duration::from_std(parse_duration(text)?)
                .map_err(|_| format!("lag {text:?} is too long"))?,
        };
        if !(-1000..=1000).contains(&spec.end_offset) {
            return Err(format!(
                "end_offset {} is out of range (-1000 to 1000 windows)",
                spec.end_offset
            ));
        }
        let start_text = spec
            .start
            .as_deref()
            .ok_or("time windows need a start, e.g. start = \"2024-01-01\"")?;
        let start_local = parse_local(start_text)?;
        let start_at = local_instant(&timezone, start_local);
        let cadence = match (&spec.every, &spec.cron) {
            (Some(every), None) => match every.trim() {
                "hour" => {
                    // Hours are one fixed grid: a zone whose offset moves by part of an hour
                    // (Lord Howe's half-hour daylight saving) would cut some days' hours apart.
                    if phase_moves_after(&timezone, start_at) {
                        return Err(format!(
                            "hourly windows need a time zone whose offset moves by whole hours; \
                             {} does not",
                            timezone.name()
                        ));
                    }
                    let offset = timezone
                        .offset_from_utc_datetime(&start_at.naive_utc())
                        .fix()
                        .local_minus_utc();
                    Cadence::Hour {
                        phase: i64::from(offset).rem_euclid(3600),
                    }
                }
                "day" => Cadence::Day,
                "week" => Cadence::Week,
                "month" => Cadence::Month,
                other => {
                    return Err(format!(
                        "every = {other:?}: expected \"hour\", \"day\", \"week\" or \"month\""
                    ));
                }
            },
            (None, Some(pattern)) => {
                let cron = CronParser::builder()
                    .seconds(Seconds::Disallowed)
                    .build()
                    .parse(pattern)
                    .map_err(|e| format!("invalid cron {pattern:?}: {e}"))?;
                if start_local.date() < CRON_ORIGIN {
                    return Err(format!(
                        "cron windows start on or after {CRON_ORIGIN}, not {start_text}"
                    ));
                }
                Cadence::Cron(Arc::new(CronTicks::new(cron, timezone)?))
            }
            _ => unreachable!("compile checks that exactly one is given"),
        };
        if start_local.date() < ORIGIN {
            return Err(format!("start {start_text} is before {ORIGIN}"));
        }
        let written = spec
            .every
            .as_deref()
            .or(spec.cron.as_deref())
            .unwrap_or_default()
            .trim()
            .to_owned();
        let mut windows = Self {
            cadence,
            written,
            timezone,
            start: 0,
            end_offset: spec.end_offset,
            lag,
        };
        // The first window that starts at or after `start`.
        let first = windows
            .containing(start_at)
            .ok_or_else(|| format!("start {start_text} is out of range"))?;
        windows.start = match windows.window(first) {
            Some((from, _)) if from < start_at => first + 1,
            _ => first,
        };
        Ok(windows)
    }

    /// The first window's ordinal.
    pub fn start(&self) -> Ordinal {
        self.start
    }

    /// The time zone windows follow.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// How long after its end a window becomes due.
    pub fn lag(&self) -> Duration {
        self.lag
    }

    /// The last window that exists at `now`: the last whose end plus the lag has passed, moved
    /// by `end_offset`. `None` before the first.
    pub fn last(&self, now: DateTime<Utc>) -> Option<Ordinal> {
        let current = self.containing(now - self.lag)?;
        let last = i64::from(current) - 1 + i64::from(self.end_offset);
        Ordinal::try_from(last).ok().filter(|l| *l >= self.start)
    }

    /// The window holding the instant `at`.
    pub fn containing(&self, at: DateTime<Utc>) -> Option<Ordinal> {
        let ordinal = match &self.cadence {
            Cadence::Hour { phase } => (at.timestamp() - ORIGIN_SECONDS - phase).div_euclid(3600),
            Cadence::Day => self.local_day(at),
            Cadence::Week => self.local_day(at).div_euclid(7),
            Cadence::Month => {
                let local = at.with_timezone(&self.timezone);
                i64::from(local.year() - 1900) * 12 + i64::from(local.month0())
            }
            Cadence::Cron(ticks) => return ticks.containing(at),
        };
        Ordinal::try_from(ordinal).ok()
    }

    /// Window `ordinal`: its start and end (half-open), as instants.
    pub fn window(&self, ordinal: Ordinal) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let o = i64::from(ordinal);
        let day = |days: i64| ORIGIN.checked_add_signed(Duration::days(days));
        let month = |months: i64| {
            let year = i32::try_from(1900 + months.div_euclid(12)).ok()?;
            NaiveDate::from_ymd_opt(year, u32::try_from(months.rem_euclid(12)).ok()? + 1, 1)
        };
        let local = |date: NaiveDate| local_instant(&self.timezone, date.and_time(NaiveTime::MIN));
        match &self.cadence {
            Cadence::Hour { phase } => {
                let from = DateTime::from_timestamp(ORIGIN_SECONDS + phase + o * 3600, 0)?;
                Some((from, from + Duration::hours(1)))
            }
            Cadence::Day => Some((local(day(o)?), local(day(o + 1)?))),
            Cadence::Week => Some((local(day(o * 7)?), local(day(o * 7 + 7)?))),
            Cadence::Month => Some((local(month(o)?), local(month(o + 1)?))),
            Cadence::Cron(ticks) => ticks.window(ordinal),
        }
    }

    /// The key of window `ordinal`: `2024-03-31T13` (hour, UTC; other zones add the offset,
    /// `2024-03-31T13+0200`), `2024-03-31` (day), `2024-W13` (week), `2024-03` (month),
    /// `2024-03-31T0930` (cron, with the offset outside UTC).
    pub fn key(&self, ordinal: Ordinal) -> Option<String> {
        let (from, _) = self.window(ordinal)?;
        let local = from.with_timezone(&self.timezone);
        let offset = || {
            if self.timezone == Tz::UTC {
                String::new()
            } else {
                local.format("%z").to_string()
            }
        };
        Some(match &self.cadence {
            Cadence::Hour { .. } => format!("{}{}", local.format("%Y-%m-%dT%H"), offset()),
            Cadence::Day => local.format("%Y-%m-%d").to_string(),
            Cadence::Week => {
                let week = local.date_naive().iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
            Cadence::Month => local.format("%Y-%m").to_string(),
            Cadence::Cron(_) => format!("{}{}", local.format("%Y-%m-%dT%H%M"), offset()),
        })
    }

    /// The ordinal of the window `key` names (as [`Self::key`] writes it; outside UTC an hour
    /// or cron key without its offset is accepted where the local time is not ambiguous).
    pub fn ordinal(&self, key: &str) -> Option<Ordinal> {
        let key = key.trim();
        let from = match &self.cadence {
            Cadence::Hour { .. } => self.parse_local_key(key, true)?,
            Cadence::Cron(_) => self.parse_local_key(key, false)?,
            Cadence::Day => {
                let date = NaiveDate::parse_from_str(key, "%Y-%m-%d").ok()?;
                local_instant(&self.timezone, date.and_time(NaiveTime::MIN))
            }
            Cadence::Week => {
                let (year, week) = key.split_once("-W")?;
                let date = NaiveDate::from_isoywd_opt(
                    year.parse().ok()?,
                    week.parse().ok()?,
                    chrono::Weekday::Mon,
                )?;
                local_instant(&self.timezone, date.and_time(NaiveTime::MIN))
            }
            Cadence::Month => {
                let date = NaiveDate::parse_from_str(&format!("{key}-01"), "%Y-%m-%d").ok()?;
                local_instant(&self.timezone, date.and_time(NaiveTime::MIN))
            }
        };
        let ordinal = self.containing(from)?;
        (self.window(ordinal)?.0 == from && self.key(ordinal).is_some()).then_some(ordinal)
    }

    /// A local time key (`2024-03-31T13` if `hour`, else `2024-03-31T0930`) with an optional
    /// `+HHMM` offset, as an instant.
    fn parse_local_key(&self, key: &str, hour: bool) -> Option<DateTime<Utc>> {
        // The offset is the last five characters when they are a sign and four digits.
        let split = key.len().checked_sub(5).filter(|i| {
            key.is_char_boundary(*i)
                && matches!(&key[*i..*i + 1], "+" | "-")
                && key[*i + 1..].bytes().all(|b| b.is_ascii_digit())
                && key[..*i].contains('T')
        });
        let (local, offset) = match split {
            Some(i) => (&key[..i], Some(&key[i..])),
            None => (key, None),
        };
        let local = if hour {
            format!("{local}00")
        } else {
            local.to_string()
        };
        let naive = NaiveDateTime::parse_from_str(&local, "%Y-%m-%dT%H%M").ok()?;
        match offset {
            Some(offset) => {
                let at = DateTime::parse_from_str(
                    &format!("{}{offset}", naive.format("%Y-%m-%dT%H:%M")),
                    "%Y-%m-%dT%H:%M%z",
                )
                .ok()?
                .with_timezone(&Utc);
                // The offset must be the zone's at that time.
                (at.with_timezone(&self.timezone).naive_local() == naive).then_some(at)
            }
            None => self
                .timezone
                .from_local_datetime(&naive)
                .single()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// Days from [`ORIGIN`] to the local date at `at`.
    fn local_day(&self, at: DateTime<Utc>) -> i64 {
        (at.with_timezone(&self.timezone).date_naive() - ORIGIN).num_days()
    }
}

/// Whether `tz`'s offset past whole hours differs, at some January or July from `from` to 2100,
/// from what it is at `from`.
fn phase_moves_after(tz: &Tz, from: DateTime<Utc>) -> bool {
    let phase = |at: NaiveDateTime| {
        i64::from(tz.offset_from_utc_datetime(&at).fix().local_minus_utc()).rem_euclid(3600)
    };
    let first = phase(from.naive_utc());
    (from.year()..=2100).any(|year| {
        [1, 7].into_iter().any(|month| {
            NaiveDate::from_ymd_opt(year, month, 1)
                .is_some_and(|d| phase(d.and_time(NaiveTime::MIN)) != first)
        })
    })
}

/// A local time written `2024-01-01` or `2024-01-01T06:00`.
fn parse_local(text: &str) -> Result<NaiveDateTime, String> {
    let text = text.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_time(NaiveTime::MIN))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| {
            format!("start {text:?} is not a date (2024-01-01) or a local time (2024-01-01T06:00)")
        })
}

/// The instant of the local time `local` in `tz`: the earlier of two (a repeated hour), or
/// the first valid time after a skipped one (spring forward).
fn local_instant(tz: &Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut at = local;
    // DST gaps are at most a few hours; 15 minutes at a time finds the end of any of them.
    for _ in 0..16 {
        if let Some(t) = tz.from_local_datetime(&at).earliest() {
            return t.with_timezone(&Utc);
        }
        at += Duration::minutes(15);
    }
    Utc.from_utc_datetime(&local)
}

/// A cron pattern's ticks from [`CRON_ORIGIN`], computed as far as they are asked for.
#[derive(Debug)]
struct CronTicks {
    cron: Cron,
    tz: Tz,
    /// Seconds since the Unix epoch of each tick, in order.
    ticks: RwLock<Vec<i64>>,
}

impl CronTicks {
    fn new(cron: Cron, tz: Tz) -> Result<Self, String> {
        let origin = local_instant(&tz, CRON_ORIGIN.and_time(NaiveTime::MIN));
        let first = cron
            .find_next_occurrence(&origin.with_timezone(&tz), true)
            .map_err(|e| format!("cron pattern has no tick after {CRON_ORIGIN}: {e}"))?;
        let ticks = Self {
            cron,
            tz,
            ticks: RwLock::new(vec![first.timestamp()]),
        };
        // A century of ticks must fit in the table: a pattern ticking more often than that
        // (every 15 minutes, say) should be calendar windows.
        let week = (origin + Duration::days(7)).timestamp();
        ticks.extend(week, 0);
        let per_week = ticks.ticks.read().map_or(0, |t| t.len());
        if per_week * 5218 > MOST_CRON_TICKS {
            return Err(format!(
                "cron windows tick {per_week} times a week, more than a century of them fits \
                 ({MOST_CRON_TICKS} windows): use every = \"hour\" or \"day\""
            ));
        }
        Ok(ticks)
    }

    /// Computes ticks until one is past `until` or `count` exist, whichever is later.
    fn extend(&self, until: i64, count: usize) {
        let done = |ticks: &[i64]| {
            ticks.len() >= count.min(MOST_CRON_TICKS + 1) && ticks.last().is_none_or(|t| *t > until)
                || ticks.len() > MOST_CRON_TICKS
        };
        if self.ticks.read().map(|t| done(&t)).unwrap_or(true) {
            return;
        }
        let Ok(mut ticks) = self.ticks.write() else {
            return;
        };
        while !done(&ticks) {
            let Some(last) = ticks.last().and_then(|t| DateTime::from_timestamp(*t, 0)) else {
                return;
            };
            match self
                .cron
                .find_next_occurrence(&last.with_timezone(&self.tz), false)
            {
                Ok(next) => ticks.push(next.timestamp()),
                Err(_) => return,
            }
        }
    }

    fn containing(&self, at: DateTime<Utc>) -> Option<Ordinal> {
        let at = at.timestamp();
        self.extend(at, 0);
        let ticks = self.ticks.read().ok()?;
        // The last tick at or before `at`, if a later one exists (the window is closed on the
        // right by the next tick).
        let after = ticks.partition_point(|t| *t <= at);
        if after == 0 || after >= ticks.len() {
            return None;
        }
        Ordinal::try_from(after - 1).ok()
    }

    fn window(&self, ordinal: Ordinal) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let i = ordinal as usize;
        self.extend(i64::MIN, i + 2);
        let ticks = self.ticks.read().ok()?;
        let from = DateTime::from_timestamp(*ticks.get(i)?, 0)?;
        let to = DateTime::from_timestamp(*ticks.get(i + 1)?, 0)?;
        Some((from, to))
    }
}
