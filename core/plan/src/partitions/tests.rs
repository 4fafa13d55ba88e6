use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::*;

fn spec(every: &str, start: &str, timezone: Option<&str>) -> PartitionsSpec {
    PartitionsSpec {
        every: Some(every.into()),
        start: Some(start.into()),
        timezone: timezone.map(Into::into),
        ..PartitionsSpec::default()
    }
}

fn windows(every: &str, start: &str, timezone: Option<&str>) -> TimeWindows {
    match PartitionsDef::compile("t", &spec(every, start, timezone)).unwrap() {
        PartitionsDef::Time(w) => w,
        other => panic!("{other:?}"),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn hours(w: &TimeWindows, key: &str) -> i64 {
    let (from, to) = w.window(w.ordinal(key).unwrap()).unwrap();
    (to - from).num_hours()
}

#[test]
fn paris_days_last_23_and_25_hours_on_the_dst_changes() {
    let daily = windows("day", "2024-01-01", Some("Europe/Paris"));
    assert_eq!(hours(&daily, "2024-03-31"), 23);
    assert_eq!(hours(&daily, "2024-10-27"), 25);
    assert_eq!(hours(&daily, "2024-06-01"), 24);
    let o = daily.ordinal("2024-03-31").unwrap();
    assert_eq!(daily.window(o).unwrap().0, at("2024-03-30T23:00:00Z"));
    assert_eq!(daily.key(o).unwrap(), "2024-03-31");
    // An instant late on a local day belongs to that day, not the UTC one.
    assert_eq!(
        daily.containing(at("2024-06-01T22:30:00Z")),
        daily.ordinal("2024-06-02")
    );
}

#[test]
fn paris_hours_are_named_with_their_offset_and_the_repeated_hour_is_two_partitions() {
    let hourly = windows("hour", "2024-01-01", Some("Europe/Paris"));
    let first = hourly.ordinal("2024-10-27T02+0200").unwrap();
    let second = hourly.ordinal("2024-10-27T02+0100").unwrap();
    assert_eq!(second, first + 1);
    assert_eq!(hourly.key(first).unwrap(), "2024-10-27T02+0200");
    assert_eq!(hourly.key(second).unwrap(), "2024-10-27T02+0100");
    // Without its offset the repeated hour is ambiguous; an ordinary hour is not.
    assert_eq!(hourly.ordinal("2024-10-27T02"), None);
    assert_eq!(
        hourly.ordinal("2024-06-01T13"),
        hourly.ordinal("2024-06-01T13+0200")
    );
    // A wrong offset for the zone names no partition.
    assert_eq!(hourly.ordinal("2024-06-01T13+0100"), None);
    // Spring forward: 02:00 does not exist, 01:00 is followed by 03:00.
    let one = hourly.ordinal("2024-03-31T01+0100").unwrap();
    assert_eq!(hourly.key(one + 1).unwrap(), "2024-03-31T03+0200");
    let utc = windows("hour", "2024-01-01", None);
    assert_eq!(
        utc.key(utc.ordinal("2024-03-31T13").unwrap()).unwrap(),
        "2024-03-31T13"
    );
}

#[test]
fn hours_in_a_half_hour_zone_start_on_its_half_hours() {
    let hourly = windows("hour", "2024-01-01", Some("Asia/Kolkata"));
    let o = hourly.ordinal("2024-03-31T13+0530").unwrap();
    assert_eq!(hourly.window(o).unwrap().0, at("2024-03-31T07:30:00Z"));
}

#[test]
fn hours_refuse_a_zone_whose_offset_moves_by_half_an_hour() {
    let error = PartitionsDef::compile(
        "h",
        &spec("hour", "2024-01-01", Some("Australia/Lord_Howe")),
    )
    .unwrap_err();
    assert_eq!(
        error,
        "partitions.h: hourly windows need a time zone whose offset moves by whole hours; \
         Australia/Lord_Howe does not"
    );
    // Its days are fine.
    assert!(
        PartitionsDef::compile("d", &spec("day", "2024-01-01", Some("Australia/Lord_Howe")))
            .is_ok()
    );
}

#[test]
fn months_and_iso_weeks_follow_the_calendar() {
    let monthly = windows("month", "2020-01-01", None);
    let feb = monthly.ordinal("2024-02").unwrap();
    let (from, to) = monthly.window(feb).unwrap();
    assert_eq!((to - from).num_days(), 29);
    assert_eq!(monthly.key(feb + 1).unwrap(), "2024-03");
    assert_eq!(
        monthly
            .key(monthly.ordinal("2024-12").unwrap() + 1)
            .unwrap(),
        "2025-01"
    );
    assert_eq!(
        monthly.containing(at("2024-01-31T23:59:59Z")),
        monthly.ordinal("2024-01")
    );
    let weekly = windows("week", "2024-01-01", None);
    // 2024-12-30 is a Monday in ISO week 1 of 2025.
    let o = weekly.containing(at("2024-12-31T12:00:00Z")).unwrap();
    assert_eq!(weekly.key(o).unwrap(), "2025-W01");
    assert_eq!(weekly.window(o).unwrap().0, at("2024-12-30T00:00:00Z"));
    assert_eq!(weekly.ordinal("2025-W01"), Some(o));
}

#[test]
fn moving_start_renumbers_nothing() {
    let early = windows("day", "2020-01-01", Some("Europe/Paris"));
    let late = windows("day", "2024-01-01", Some("Europe/Paris"));
    assert_eq!(early.ordinal("2024-05-05"), late.ordinal("2024-05-05"));
    assert!(early.start() < late.start());
    assert_eq!(late.key(late.start()).unwrap(), "2024-01-01");
    // A start inside a window begins with the next whole window.
    let hourly = windows("hour", "2024-01-01T06:30", None);
    assert_eq!(hourly.key(hourly.start()).unwrap(), "2024-01-01T07");
}

#[test]
fn the_last_window_waits_for_its_end_and_lag() {
    let mut s = spec("day", "2024-01-01", None);
    s.lag = Some("2h".into());
    let PartitionsDef::Time(daily) = PartitionsDef::compile("d", &s).unwrap() else {
        unreachable!()
    };
    // 2024-03-02 01:00: yesterday ended an hour ago, less than the lag.
    assert_eq!(
        daily.last(at("2024-03-02T01:00:00Z")),
        daily.ordinal("2024-02-29")
    );
    assert_eq!(
        daily.last(at("2024-03-02T02:00:00Z")),
        daily.ordinal("2024-03-01")
    );
    s.lag = None;
    s.end_offset = 1;
    let PartitionsDef::Time(daily) = PartitionsDef::compile("d", &s).unwrap() else {
        unreachable!()
    };
    assert_eq!(
        daily.last(at("2024-03-02T01:00:00Z")),
        daily.ordinal("2024-03-02")
    );
    assert_eq!(daily.last(at("2023-12-31T12:00:00Z")), None);
}

#[test]
fn cron_windows_run_from_tick_to_tick() {
    let s = PartitionsSpec {
        cron: Some("0 9 * * 1-5".into()),
        start: Some("2024-01-01".into()),
        timezone: Some("America/New_York".into()),
        ..PartitionsSpec::default()
    };
    let PartitionsDef::Time(trading) = PartitionsDef::compile("trading", &s).unwrap() else {
        unreachable!()
    };
    let friday = trading.ordinal("2024-03-08T0900-0500").unwrap();
    let (from, to) = trading.window(friday).unwrap();
    assert_eq!(from, at("2024-03-08T14:00:00Z"));
    // To Monday 09:00, after the DST change (EDT).
    assert_eq!(to, at("2024-03-11T13:00:00Z"));
    assert_eq!(trading.key(friday + 1).unwrap(), "2024-03-11T0900-0400");
    assert_eq!(
        trading.key(trading.start()).unwrap(),
        "2024-01-01T0900-0500"
    );
    let every_minute = PartitionsSpec {
        cron: Some("*/5 * * * *".into()),
        ..s
    };
    let error = PartitionsDef::compile("fast", &every_minute).unwrap_err();
    assert!(error.contains("every = \"hour\""), "{error}");
}

#[test]
fn bad_definitions_say_what_is_wrong() {
    let error = |s: PartitionsSpec| PartitionsDef::compile("daily", &s).unwrap_err();
    assert_eq!(
        error(spec("fortnight", "2024-01-01", None)),
        "partitions.daily: every = \"fortnight\": expected \"hour\", \"day\", \"week\" or \"month\""
    );
    assert!(error(spec("day", "2024-01-01", Some("Mars/Olympus"))).contains("unknown time zone"));
    assert!(error(spec("day", "01/01/2024", None)).contains("is not a date"));
    assert!(error(spec("day", "1800-01-01", None)).contains("before 1900-01-01"));
    let mut both = spec("day", "2024-01-01", None);
    both.dynamic = true;
    assert!(error(both).contains("only one of"));
    assert!(error(PartitionsSpec::default()).contains("say which partitions"));
    let twice = PartitionsSpec {
        keys: Some(vec!["eu".into(), "us".into(), "eu".into()]),
        ..PartitionsSpec::default()
    };
    assert_eq!(
        error(twice),
        "partitions.daily: the key \"eu\" is listed twice"
    );
    let slash = PartitionsSpec {
        keys: Some(vec!["eu/west".into()]),
        ..PartitionsSpec::default()
    };
    assert!(error(slash).contains("cannot hold '/'"));
}

#[test]
fn keys_keep_their_ordinals_when_others_come_and_go() {
    let mut keys = KeyList::default();
    let eu = keys.add("eu").unwrap();
    let us = keys.add("us").unwrap();
    assert!(keys.remove("eu"));
    let apac = keys.add("apac").unwrap();
    assert_eq!((eu, us, apac), (0, 1, 2));
    assert_eq!(keys.ordinal("eu"), None);
    assert_eq!(keys.key(us), Some("us"));
    assert_eq!(keys.add("eu").unwrap(), 0);
    assert_eq!(keys.ordinals().collect::<Vec<_>>(), vec![0, 1, 2]);
}

#[test]
fn mappings_parse_and_refuse_in_one_line() {
    assert_eq!(
        Mapping::parse("window(-1..0)").unwrap(),
        Mapping::Window {
            from: -1,
            to: 0,
            upstream: false
        }
    );
    assert_eq!(
        Mapping::parse(" window( -2..1, upstream ) ").unwrap(),
        Mapping::Window {
            from: -2,
            to: 1,
            upstream: true
        }
    );
    assert_eq!(Mapping::parse("previous(7)").unwrap(), Mapping::Previous(7));
    assert_eq!(Mapping::parse("previous").unwrap(), Mapping::Previous(1));
    assert!(
        Mapping::parse("window(1..-1)")
            .unwrap_err()
            .contains("A <= B")
    );
    assert!(
        Mapping::parse("sideways")
            .unwrap_err()
            .contains("unknown mapping")
    );
}

/// Daily `child` reading hourly `parent` through `mapping`, both from 2024-01-01 (UTC), judged
/// at `now`.
struct Daily {
    hourly: PartitionsDef,
    daily: PartitionsDef,
}

impl Daily {
    fn new() -> Self {
        Self {
            hourly: PartitionsDef::compile("h", &spec("hour", "2024-01-01", None)).unwrap(),
            daily: PartitionsDef::compile("d", &spec("day", "2024-01-01", None)).unwrap(),
        }
    }

    fn hour(&self, key: &str) -> Ordinal {
        self.hourly.time().unwrap().ordinal(key).unwrap()
    }

    fn day(&self, key: &str) -> Ordinal {
        self.daily.time().unwrap().ordinal(key).unwrap()
    }

    fn statuses(
        &self,
        child: &PartitionState,
        parent: &PartitionState,
        mapping: &Mapping,
        now: DateTime<Utc>,
    ) -> PartitionStatuses {
        let input = Input {
            partitioning: Partitioning::By {
                def: &self.hourly,
                keys: None,
            },
            state: parent,
            mapping,
        };
        let down = Partitioning::By {
            def: &self.daily,
            keys: None,
        };
        partition_statuses(&down, child, 1, &[input], now)
    }
}

fn everything(range: std::ops::Range<Ordinal>) -> PartitionSet {
    PartitionSet::from_range(range)
}

#[test]
fn a_late_hour_stales_exactly_its_day_and_a_missing_hour_blocks_it() {
    let t = Daily::new();
    let now = at("2024-01-11T00:30:00Z");
    let window = Mapping::Window {
        from: 0,
        to: 0,
        upstream: false,
    };
    let (h0, h_end) = (t.hour("2024-01-01T00"), t.hour("2024-01-11T00"));
    let (d0, d_end) = (t.day("2024-01-01"), t.day("2024-01-11"));
    let mut parent = PartitionState::default();
    parent.commit(h0..h_end, 1, 0, 1, &everything(h0..h_end));
    let mut child = PartitionState::default();
    child.commit(d0..d_end, 2, 1, 1, &everything(d0..d_end));
    let s = t.statuses(&child, &parent, &window, now);
    assert_eq!(s.count(PartitionStatus::Fresh), 10);
    assert_eq!(s.summary(), "fresh: 10 of 10");

    // A late file in an hour of 2024-01-03: exactly that day is stale, and says why.
    let late = t.hour("2024-01-03T17");
    parent.commit(late..late + 1, 3, 0, 1, &everything(late..late + 1));
    let s = t.statuses(&child, &parent, &window, now);
    let jan3 = t.day("2024-01-03");
    assert_eq!(s.get(PartitionStatus::Stale), &everything(jan3..jan3 + 1));
    assert_eq!(
        s.causes,
        vec![StaleRange {
            range: jan3..jan3 + 1,
            cause: PartitionCause::Input {
                input: 0,
                range: t.hour("2024-01-03T00")..t.hour("2024-01-04T00"),
                seq: 3
            }
        }]
    );
    assert_eq!(s.summary(), "stale: 1 of 10");

    // The same hour again with the same rows (early cut-off): nothing more is stale.
    parent.commit(late..late + 1, 4, 0, 1, &PartitionSet::new());
    child.commit(jan3..jan3 + 1, 5, 4, 1, &PartitionSet::new());
    let s = t.statuses(&child, &parent, &window, now);
    assert_eq!(s.count(PartitionStatus::Fresh), 10);

    // An hour of 2024-01-05 fails to load: its day cannot be rebuilt, and waits.
    let gap = t.hour("2024-01-05T03");
    parent.materialized.remove_range(gap..gap + 1);
    child
        .materialized
        .remove_range(t.day("2024-01-05")..t.day("2024-01-06"));
    let s = t.statuses(&child, &parent, &window, now);
    assert_eq!(s.count(PartitionStatus::Blocked), 1);
    assert_eq!(
        s.status_of(t.day("2024-01-05")),
        Some(PartitionStatus::Blocked)
    );
    // A code change stales the rest, a day at a time only where it is not blocked.
    let s = partition_statuses(
        &Partitioning::By {
            def: &t.daily,
            keys: None,
        },
        &child,
        2,
        &[],
        now,
    );
    assert_eq!(s.count(PartitionStatus::Stale), 9);
    assert_eq!(s.causes.len(), 2, "{:?}", s.causes);
    assert!(matches!(
        s.causes[0].cause,
        PartitionCause::Code { recorded: 1 }
    ));
}

#[test]
fn a_day_whose_hours_are_not_all_due_is_blocked_not_run() {
    let t = Daily::new();
    let mut s = spec("day", "2024-01-01", None);
    s.end_offset = 1;
    let daily_now = PartitionsDef::compile("d", &s).unwrap();
    let parent_hours = t.hour("2024-01-01T00")..t.hour("2024-01-02T13");
    let mut parent = PartitionState::default();
    parent.commit(parent_hours.clone(), 1, 0, 1, &everything(parent_hours));
    let mapping = Mapping::Window {
        from: 0,
        to: 0,
        upstream: false,
    };
    let input = Input {
        partitioning: Partitioning::By {
            def: &t.hourly,
            keys: None,
        },
        state: &parent,
        mapping: &mapping,
    };
    let down = Partitioning::By {
        def: &daily_now,
        keys: None,
    };
    // At 13:30 on the 2nd, today's day exists (end_offset 1) but its hours do not yet.
    let statuses = partition_statuses(
        &down,
        &PartitionState::default(),
        1,
        &[input],
        at("2024-01-02T13:30:00Z"),
    );
    assert_eq!(statuses.count(PartitionStatus::Missing), 1);
    assert_eq!(
        statuses.status_of(t.day("2024-01-02")),
        Some(PartitionStatus::Blocked)
    );
}

#[test]
fn mappings_work_both_ways_across_units_and_dst() {
    let paris_hours =
        PartitionsDef::compile("h", &spec("hour", "2024-01-01", Some("Europe/Paris"))).unwrap();
    let paris_days =
        PartitionsDef::compile("d", &spec("day", "2024-01-01", Some("Europe/Paris"))).unwrap();
    // 00:30 on 1 December in Paris: the last hour and the last day that exist end at midnight.
    let now = at("2024-11-30T23:30:00Z");
    let hours = paris_hours.time().unwrap();
    let days = paris_days.time().unwrap();
    let h = |k: &str| hours.ordinal(k).unwrap();
    let d = |k: &str| days.ordinal(k).unwrap();
    let mut parent = PartitionState::default();
    let all_hours = h("2024-01-01T00+0100")..h("2024-11-30T23+0100") + 1;
    parent.commit(all_hours.clone(), 1, 0, 1, &everything(all_hours));
    let mut child = PartitionState::default();
    let all_days = d("2024-01-01")..d("2024-11-30") + 1;
    child.commit(all_days.clone(), 2, 1, 1, &everything(all_days));
    let judge = |mapping: Mapping, parent: &PartitionState| {
        let input = Input {
            partitioning: Partitioning::By {
                def: &paris_hours,
                keys: None,
            },
            state: parent,
            mapping: &mapping,
        };
        partition_statuses(
            &Partitioning::By {
                def: &paris_days,
                keys: None,
            },
            &child,
            1,
            &[input],
            now,
        )
    };
    // The 25-hour day needs 25 hours: a change in its last one stales it.
    let last_hour = h("2024-10-27T23+0100");
    let mut changed = parent.clone();
    changed.commit(
        last_hour..last_hour + 1,
        3,
        0,
        1,
        &everything(last_hour..last_hour + 1),
    );
    let s = judge(Mapping::parse("window(0..0)").unwrap(), &changed);
    let PartitionCause::Input { range, .. } = &s.causes[0].cause else {
        panic!("{:?}", s.causes)
    };
    assert_eq!(range.len(), 25);
    assert_eq!(s.causes[0].range, d("2024-10-27")..d("2024-10-28"));
    // window(0..1): the next day reads it too.
    let s = judge(Mapping::parse("window(0..1)").unwrap(), &changed);
    assert_eq!(
        s.get(PartitionStatus::Stale),
        &everything(d("2024-10-26")..d("2024-10-28"))
    );
    // Offsets in the input's units: the day and the first hour after it.
    let s = judge(Mapping::parse("window(0..1, upstream)").unwrap(), &changed);
    assert_eq!(
        s.get(PartitionStatus::Stale),
        &everything(d("2024-10-27")..d("2024-10-28"))
    );
    let next_midnight = h("2024-10-28T00+0100");
    let mut early = parent.clone();
    early.commit(
        next_midnight..next_midnight + 1,
        3,
        0,
        1,
        &everything(next_midnight..next_midnight + 1),
    );
    let s = judge(Mapping::parse("window(0..1, upstream)").unwrap(), &early);
    assert_eq!(
        s.get(PartitionStatus::Stale),
        &everything(d("2024-10-27")..d("2024-10-29"))
    );
    // Latest: only the input's last hour counts.
    let s = judge(Mapping::Latest, &changed);
    assert_eq!(s.count(PartitionStatus::Stale), 0);
    let last = h("2024-11-30T23+0100");
    let mut newest = parent.clone();
    newest.commit(last..last + 1, 3, 0, 1, &everything(last..last + 1));
    assert_eq!(
        judge(Mapping::Latest, &newest).count(PartitionStatus::Stale),
        335
    );
    // All: any change anywhere.
    assert_eq!(
        judge(Mapping::All, &changed).count(PartitionStatus::Stale),
        335
    );
    // An hour later the input's latest hour exists but has no version: every day waits.
    let mut missing_latest = parent.clone();
    missing_latest.materialized.remove_range(last..last + 1);
    let s = judge(Mapping::Latest, &missing_latest);
    assert_eq!(s.count(PartitionStatus::Fresh), 335);
    let mut stale_child = child.clone();
    stale_child
        .code
        .set(d("2024-11-30")..d("2024-11-30") + 1, 7);
    let input = Input {
        partitioning: Partitioning::By {
            def: &paris_hours,
            keys: None,
        },
        state: &missing_latest,
        mapping: &Mapping::Latest,
    };
    let s = partition_statuses(
        &Partitioning::By {
            def: &paris_days,
            keys: None,
        },
        &stale_child,
        1,
        &[input],
        now,
    );
    assert_eq!(s.summary(), "blocked: 1 of 335");
}

#[test]
fn a_running_total_reads_its_own_previous_day() {
    let t = Daily::new();
    let now = at("2024-01-11T00:30:00Z");
    let (d0, d_end) = (t.day("2024-01-01"), t.day("2024-01-11"));
    let mut own = PartitionState::default();
    for (seq, d) in (d0..d_end).enumerate() {
        let seq = seq as u64 + 1;
        own.commit(d..d + 1, seq, seq - 1, 1, &everything(d..d + 1));
    }
    let down = Partitioning::By {
        def: &t.daily,
        keys: None,
    };
    let previous = Mapping::Previous(1);
    let judge = |state: &PartitionState| {
        let input = Input {
            partitioning: down,
            state,
            mapping: &previous,
        };
        partition_statuses(&down, state, 1, &[input], now)
    };
    assert_eq!(judge(&own).count(PartitionStatus::Fresh), 10);
    // Rebuilding day 3 with new data stales day 4 only (its next read fixes the rest).
    let jan3 = t.day("2024-01-03");
    own.commit(jan3..jan3 + 1, 20, 19, 1, &everything(jan3..jan3 + 1));
    assert_eq!(
        judge(&own).get(PartitionStatus::Stale),
        &everything(jan3 + 1..jan3 + 2)
    );
}

#[test]
fn failed_partitions_are_failed_until_a_version_lands() {
    let t = Daily::new();
    let now = at("2024-01-11T00:30:00Z");
    let day = t.day("2024-01-04");
    let mut state = PartitionState::default();
    state.fail(day..day + 2);
    let down = Partitioning::By {
        def: &t.daily,
        keys: None,
    };
    let s = partition_statuses(&down, &state, 1, &[], now);
    assert_eq!(s.summary(), "failed: 2 of 10");
    assert_eq!(s.count(PartitionStatus::Missing), 8);
    state.commit(day..day + 1, 1, 0, 1, &everything(day..day + 1));
    let s = partition_statuses(&down, &state, 1, &[], now);
    assert_eq!(s.count(PartitionStatus::Failed), 1);
    assert_eq!(s.status_of(day), Some(PartitionStatus::Fresh));
}

#[test]
fn an_unpartitioned_asset_is_one_partition() {
    let mut parent = PartitionState::default();
    parent.commit(0..1, 1, 0, 1, &everything(0..1));
    let mut child = PartitionState::default();
    child.commit(0..1, 2, 1, 1, &everything(0..1));
    let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let judge = |parent: &PartitionState, child: &PartitionState| {
        let input = Input {
            partitioning: Partitioning::Whole,
            state: parent,
            mapping: &Mapping::All,
        };
        partition_statuses(&Partitioning::Whole, child, 1, &[input], now).worst()
    };
    assert_eq!(judge(&parent, &child), Some(PartitionStatus::Fresh));
    parent.commit(0..1, 3, 0, 1, &everything(0..1));
    assert_eq!(judge(&parent, &child), Some(PartitionStatus::Stale));
    assert_eq!(
        judge(&PartitionState::default(), &PartitionState::default()),
        Some(PartitionStatus::Blocked)
    );
    let _ = Duration::zero();
}

#[test]
fn static_and_dynamic_partitions_are_their_keys() {
    let regions = PartitionsDef::compile(
        "region",
        &PartitionsSpec {
            keys: Some(vec!["eu".into(), "us".into(), "apac".into()]),
            ..PartitionsSpec::default()
        },
    )
    .unwrap();
    let now = Utc::now();
    let valid = Partitioning::By {
        def: &regions,
        keys: None,
    }
    .valid(now);
    assert_eq!(valid, everything(0..3));
    let customers = PartitionsDef::compile(
        "customer",
        &PartitionsSpec {
            dynamic: true,
            ..PartitionsSpec::default()
        },
    )
    .unwrap();
    let mut keys = KeyList::default();
    for k in ["acme", "globex", "initech"] {
        keys.add(k).unwrap();
    }
    keys.remove("globex");
    let valid = Partitioning::By {
        def: &customers,
        keys: Some(&keys),
    }
    .valid(now);
    assert_eq!(valid.ranges().collect::<Vec<_>>(), vec![0..1, 2..3]);
}

/// One operation on a column, and the same on a plain vector.
#[derive(Debug, Clone)]
struct SetOp {
    start: Ordinal,
    len: Ordinal,
    value: u8,
}

proptest! {
    #[test]
    fn a_column_holds_what_a_vector_would(ops in prop::collection::vec(
        (0u32..60, 1u32..20, 0u8..4).prop_map(|(start, len, value)| SetOp { start, len, value }),
        0..40,
    )) {
        let mut column = Column::<u8>::new();
        let mut model = [0u8; 100];
        for op in &ops {
            column.set(op.start..op.start + op.len, op.value);
            for v in &mut model[op.start as usize..(op.start + op.len) as usize] {
                *v = op.value;
            }
        }
        for (i, expected) in model.iter().enumerate() {
            prop_assert_eq!(column.get(i as u32), *expected, "at {}", i);
        }
        // The runs cover the range exactly, and no two neighbours are equal.
        let runs: Vec<_> = column.runs_in(0..100).collect();
        let mut at = 0;
        for (range, value) in &runs {
            prop_assert_eq!(range.start, at);
            at = range.end;
            for o in range.clone() {
                prop_assert_eq!(model[o as usize], *value);
            }
        }
        prop_assert_eq!(at, 100);
        // Runs stay merged: no more than the model's changes of value (and one leading run).
        let changes = model.windows(2).filter(|w| w[0] != w[1]).count();
        prop_assert!(column.runs() <= changes + 2, "{} runs for {} changes", column.runs(), changes);
        for w in [0u32..10, 5..50, 37..38, 90..100] {
            let max = model[w.start as usize..w.end as usize].iter().copied().max().unwrap();
            prop_assert_eq!(column.max_in(w), max);
        }
    }
}

#[test]
fn the_health_bar_shows_runs_or_each_buckets_worst_status() {
    let hourly = PartitionsDef::compile("h", &spec("hour", "2000-01-01", None)).unwrap();
    let down = Partitioning::By {
        def: &hourly,
        keys: None,
    };
    let windows = hourly.time().unwrap();
    let now = at("2020-01-01T00:00:00Z");
    let (first, end) = (windows.start(), windows.last(now).unwrap() + 1);
    let mut state = PartitionState::default();
    state.commit(first..end, 1, 0, 1, &everything(first..end));
    // Few runs: shown as they are.
    state.fail(first + 10..first + 20);
    let s = partition_statuses(&down, &state, 1, &[], now);
    let bar = s.health(first..end, 100);
    assert_eq!(
        bar,
        vec![
            Segment {
                range: first..first + 10,
                status: PartitionStatus::Fresh
            },
            Segment {
                range: first + 10..first + 20,
                status: PartitionStatus::Failed
            },
            Segment {
                range: first + 20..end,
                status: PartitionStatus::Fresh
            },
        ]
    );
    // Every other hour missing: far more runs than the bar is wide, so buckets show the worst.
    for o in (first..end).step_by(2) {
        state.materialized.remove_range(o..o + 1);
    }
    let s = partition_statuses(&down, &state, 1, &[], now);
    let bar = s.health(first..end, 100);
    assert_eq!(bar.len(), 2, "{bar:?}");
    assert_eq!(bar[0].status, PartitionStatus::Failed);
    assert_eq!(bar[1].status, PartitionStatus::Missing);
    assert_eq!(bar[1].range.end, end);
}

#[test]
fn a_state_reads_back_as_it_was_written_and_damage_is_refused() {
    let mut state = PartitionState::default();
    state.commit(100..5000, 7, 3, 2, &everything(100..4000));
    state.commit(4000..4001, 9, 8, 3, &PartitionSet::new());
    state.commit(6000..6100, 12, 1, 1, &everything(6000..6100));
    state.fail(7000..7003);
    let bytes = state.encode();
    let back = PartitionState::decode(&bytes).unwrap();
    assert_eq!(back.materialized, state.materialized);
    assert_eq!(back.failed, state.failed);
    assert_eq!(back.code, state.code);
    assert_eq!(back.cursor, state.cursor);
    assert_eq!(back.changed, state.changed);
    assert_eq!(
        PartitionState::decode(&PartitionState::default().encode())
            .unwrap()
            .materialized,
        PartitionSet::new()
    );
    // Every truncation, and a flipped byte in the columns, is an error, never a panic.
    for n in 0..bytes.len() {
        assert!(PartitionState::decode(&bytes[..n]).is_err(), "{n} bytes");
    }
    // A partition per commit: runs of one, side by side, kept as their first start.
    let mut dense = PartitionState::default();
    for o in 500..1500u32 {
        let seq = u64::from(o);
        dense.commit(o..o + 1, seq, seq - 1, 1, &everything(o..o + 1));
    }
    let dense_bytes = dense.encode();
    // About a byte per partition per column (the runs' starts would take as many again).
    assert!(dense_bytes.len() < 2600, "{} bytes", dense_bytes.len());
    let back = PartitionState::decode(&dense_bytes).unwrap();
    assert_eq!((back.cursor, back.changed), (dense.cursor, dense.changed));
    for n in 0..dense_bytes.len() {
        assert!(
            PartitionState::decode(&dense_bytes[..n]).is_err(),
            "{n} bytes"
        );
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert_eq!(
        PartitionState::decode(&extra).unwrap_err(),
        "partition state: bytes after its end"
    );
    assert_eq!(
        PartitionState::decode(b"XYZ\x01").unwrap_err(),
        "not a partition state"
    );
    for i in 4..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[i] ^= 0xff;
        let _ = PartitionState::decode(&damaged);
    }
}

proptest! {
    #[test]
    fn any_state_round_trips(commits in prop::collection::vec(
        (0u32..10_000, 1u32..500, any::<bool>(), 0u32..4),
        0..30,
    )) {
        let mut state = PartitionState::default();
        for (seq, (start, len, changed, code)) in commits.into_iter().enumerate() {
            let range = start..start + len;
            let changed = if changed { everything(range.clone()) } else { PartitionSet::new() };
            let seq = seq as u64 + 1;
            state.commit(range, seq, seq / 2, code, &changed);
        }
        let back = PartitionState::decode(&state.encode()).unwrap();
        prop_assert_eq!(back.cursor, state.cursor);
        prop_assert_eq!(back.changed, state.changed);
        prop_assert_eq!(back.code, state.code);
        prop_assert_eq!(back.materialized, state.materialized);
    }
}
