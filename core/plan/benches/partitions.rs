//! Partition benchmark: per-partition statuses at a million partitions, in memory (the store's
//! reading is the store benchmark's). Prints figures; asserts nothing.
//!
//! ```sh
//! cargo bench -p freshet-plan --bench partitions --profile perf
//! ```
//!
//! - statuses of one asset with 1,000,000 hourly partitions reading one hourly input
//!   (identity), each state built from 1,000 range commits and 20,000 single ones;
//! - the same through other mappings: 41,000 days (Paris) over the million hours, and each hour
//!   reading the hour before;
//! - a chain of 10 assets with 1,000,000 partitions each, every partition committed on its own
//!   (the worst case: a run per partition in every column), statuses of all ten, and the
//!   process's peak memory;
//! - the health bar of a 1,000,000-partition asset, 1,000 wide, and its size as compact JSON.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use freshet_plan::partitions::{
    Input, Mapping, Ordinal, PartitionSet, PartitionState, PartitionStatus, PartitionStatuses,
    Partitioning, PartitionsDef, PartitionsSpec, Segment, partition_statuses,
};

const PARTITIONS: u32 = 1_000_000;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % u64::from(n)) as u32
    }
}

/// Hourly windows from 1910: a million of them end in 2024.
fn hourly() -> PartitionsDef {
    PartitionsDef::compile(
        "hourly",
        &PartitionsSpec {
            every: Some("hour".into()),
            start: Some("1910-01-01".into()),
            ..PartitionsSpec::default()
        },
    )
    .unwrap()
}

/// The instant at which exactly [`PARTITIONS`] windows exist.
fn now(def: &PartitionsDef) -> DateTime<Utc> {
    let windows = def.time().unwrap();
    windows.window(windows.start() + PARTITIONS).unwrap().0 + chrono::Duration::minutes(1)
}

/// The median of `n` timings of `f`, and its last result.
fn median<T>(n: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(n);
    let mut out = None;
    for _ in 0..n {
        let t = Instant::now();
        out = Some(f());
        times.push(t.elapsed());
    }
    times.sort();
    (times[n / 2], out.unwrap())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn counts(s: &PartitionStatuses) -> String {
    PartitionStatus::ALL
        .iter()
        .map(|st| format!("{} {}", st.as_str(), s.count(*st)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A state of `first..first + PARTITIONS` from 1,000 range commits and `singles` single ones,
/// sequence numbers from `seq`, inputs read at `cursor(seq)`.
fn mixed(first: Ordinal, singles: u32, seq: &mut u64, rng: &mut Rng, lag: u64) -> PartitionState {
    let mut state = PartitionState::default();
    let step = PARTITIONS / 1000;
    for i in 0..1000 {
        *seq += 1;
        let range = first + i * step..first + (i + 1) * step;
        state.commit(
            range.clone(),
            *seq,
            seq.saturating_sub(lag),
            1,
            &PartitionSet::from_range(range),
        );
    }
    for _ in 0..singles {
        *seq += 1;
        let o = first + rng.below(PARTITIONS);
        state.commit(
            o..o + 1,
            *seq,
            seq.saturating_sub(lag),
            1,
            &PartitionSet::from_range(o..o + 1),
        );
    }
    state
}

fn compact_json(bar: &[Segment]) -> String {
    let parts: Vec<String> = bar
        .iter()
        .map(|s| {
            format!(
                "[{},{},\"{}\"]",
                s.range.start,
                s.range.end,
                s.status.as_str()
            )
        })
        .collect();
    format!("{{\"segments\":[{}]}}", parts.join(","))
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let def = hourly();
    let now = now(&def);
    let first = def.time().unwrap().start();
    let partitioning = Partitioning::By {
        def: &def,
        keys: None,
    };
    let identity = Mapping::Identity;

    // 1. One asset, a million partitions, state from 1,000 range commits and 20,000 single.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seq = 0;
    let parent = mixed(first, 20_000, &mut seq, &mut rng, 0);
    let child = mixed(first, 20_000, &mut seq, &mut rng, 10_000);
    let input = Input {
        partitioning,
        state: &parent,
        mapping: &identity,
    };
    let (t, s) = median(21, || {
        partition_statuses(&partitioning, &child, 1, &[input], now)
    });
    println!(
        "statuses of 1,000,000 hourly partitions (1,000 range + 20,000 single commits, columns of {} and {} runs): {} ({}; {} stale causes)",
        parent.changed.runs(),
        child.cursor.runs(),
        ms(t),
        counts(&s),
        s.causes.len()
    );
    // Through other mappings: days over hours (each day reads its 24 hours), and each hour
    // reading the hour before (a self-dependency).
    let daily = PartitionsDef::compile(
        "daily",
        &PartitionsSpec {
            every: Some("day".into()),
            start: Some("1910-01-01".into()),
            timezone: Some("Europe/Paris".into()),
            ..PartitionsSpec::default()
        },
    )
    .unwrap();
    let days = Partitioning::By {
        def: &daily,
        keys: None,
    };
    let day_range = {
        let valid = days.valid(now);
        valid.first().unwrap()..valid.last().unwrap() + 1
    };
    let mut day_seq = seq;
    let mut day_state = PartitionState::default();
    for d in day_range.clone().step_by(100) {
        day_seq += 1;
        let range = d..(d + 100).min(day_range.end);
        day_state.commit(
            range.clone(),
            day_seq,
            day_seq,
            1,
            &PartitionSet::from_range(range),
        );
    }
    let window = Mapping::parse("window(0..0)").unwrap();
    let input = Input {
        partitioning,
        state: &parent,
        mapping: &window,
    };
    let (t, s_days) = median(5, || {
        partition_statuses(&days, &day_state, 1, &[input], now)
    });
    println!(
        "statuses of {} daily partitions (Paris) reading 1,000,000 hourly ones through window(0..0): {} ({})",
        day_range.len(),
        ms(t),
        counts(&s_days)
    );
    let previous = Mapping::Previous(1);
    let own = Input {
        partitioning,
        state: &child,
        mapping: &previous,
    };
    let (t, s_prev) = median(5, || {
        partition_statuses(&partitioning, &child, 1, &[own], now)
    });
    println!(
        "statuses of 1,000,000 hourly partitions reading the hour before (previous(1)): {} ({})",
        ms(t),
        counts(&s_prev)
    );
    let (t, bar) = median(21, || s.health(first..first + PARTITIONS, 1000));
    println!(
        "health bar, 1,000 wide: {} ({} segments, {} bytes of JSON)",
        ms(t),
        bar.len(),
        compact_json(&bar).len()
    );
    let mut alternating = PartitionState::default();
    for o in (first..first + PARTITIONS).step_by(2) {
        alternating.commit(o..o + 1, 1, 0, 1, &PartitionSet::new());
    }
    let s_alt = partition_statuses(&partitioning, &alternating, 1, &[], now);
    let (t, bar) = median(21, || s_alt.health(first..first + PARTITIONS, 1000));
    println!(
        "health bar, every other partition missing: {} ({} segments, {} bytes of JSON); the missing set serialized: {} bytes",
        ms(t),
        bar.len(),
        compact_json(&bar).len(),
        s_alt.get(PartitionStatus::Missing).serialized_size()
    );
    drop((s, s_alt, alternating, parent, child));

    // 2. A chain of 10 assets, a million partitions each, every partition its own commit.
    let started = Instant::now();
    let mut seq = 0u64;
    let mut chain: Vec<PartitionState> = Vec::with_capacity(10);
    for level in 0..10u64 {
        let mut state = PartitionState::default();
        for o in first..first + PARTITIONS {
            seq += 1;
            // Every 1,000th partition of each asset read its input before the input's last
            // commit there: stale.
            let cursor = if level > 0 && o % 1000 == 0 { 0 } else { seq };
            state.commit(
                o..o + 1,
                seq,
                cursor,
                1,
                &PartitionSet::from_range(o..o + 1),
            );
        }
        chain.push(state);
    }
    println!(
        "built 10 x 1,000,000 single commits in {:.1} s (columns of {} runs)",
        started.elapsed().as_secs_f64(),
        chain[1].cursor.runs()
    );
    let (t, stale) = median(5, || {
        let mut stale = 0;
        for level in 0..10 {
            let inputs: Vec<Input<'_>> = if level == 0 {
                Vec::new()
            } else {
                vec![Input {
                    partitioning,
                    state: &chain[level - 1],
                    mapping: &identity,
                }]
            };
            let s = partition_statuses(&partitioning, &chain[level], 1, &inputs, now);
            stale += s.count(PartitionStatus::Stale);
        }
        stale
    });
    println!(
        "statuses of a chain of 10 assets x 1,000,000 partitions, each committed alone: {} ({stale} stale)",
        ms(t)
    );
    let bytes = chain[1].encode();
    let (t, decoded) = median(5, || PartitionState::decode(&bytes).unwrap());
    assert_eq!(decoded.cursor.runs(), chain[1].cursor.runs());
    println!(
        "a state of 1,000,000 partitions each committed alone: {:.1} MB encoded, decoded in {}",
        bytes.len() as f64 / 1e6,
        ms(t)
    );
    if let Some(mb) = peak_rss_mb() {
        println!("peak memory (process so far): {mb:.0} MB");
    }
}
