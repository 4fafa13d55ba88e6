//! A partition state as bytes, for the store: compact (ranges and runs, delta-encoded), with a
//! version byte, and checked when read back.
//!
//! Layout (version 1): `FPS` and the version; the materialized and failed sets, each a `u32`
//! length (little-endian) and the portable Roaring format; then the code, cursor and changed
//! columns, each as: the number of runs, where the last run ends, a layout byte, the runs'
//! starts (layout 1: runs of one partition each side by side, only the first start; layout 0:
//! each start's distance from the one before), then their values (code ids as they are,
//! sequences as the zig-zag difference from the previous run's). Numbers are LEB128 varints.

use roaring::RoaringBitmap;

use super::set::{Column, PartitionSet};
use super::status::PartitionState;

const MAGIC: &[u8; 3] = b"FPS";
const VERSION: u8 = 1;

impl PartitionState {
    /// The state as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        for set in [&self.materialized, &self.failed] {
            // Ranges built a partition at a time become run containers.
            let mut bitmap = set.bitmap().clone();
            bitmap.optimize();
            let len = u32::try_from(bitmap.serialized_size()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            // Writing to a vector cannot fail.
            let _ = bitmap.serialize_into(&mut out);
        }
        encode_column(&mut out, &self.code, |v, _| u64::from(v));
        encode_column(&mut out, &self.cursor, zigzag_delta);
        encode_column(&mut out, &self.changed, zigzag_delta);
        out
    }

    /// Reads back what [`Self::encode`] wrote; the error says what is wrong with the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut input = Reader { bytes, at: 0 };
        if input.take(3)? != MAGIC {
            return Err("not a partition state".into());
        }
        match input.take(1)?[0] {
            VERSION => {}
            v => return Err(format!("partition state of unknown version {v}")),
        }
        let mut sets = [PartitionSet::new(), PartitionSet::new()];
        for set in &mut sets {
            let len = u32::from_le_bytes(
                input
                    .take(4)?
                    .try_into()
                    .map_err(|_| "truncated partition state".to_string())?,
            );
            let bytes = input.take(len as usize)?;
            let bitmap = RoaringBitmap::deserialize_from(bytes)
                .map_err(|e| format!("partition state: a set is damaged: {e}"))?;
            *set = PartitionSet::from_bitmap(bitmap);
        }
        let code = decode_column(&mut input, |raw, _| {
            u32::try_from(raw).map_err(|_| "partition state: a code id is too large".to_string())
        })?;
        let cursor = decode_column(&mut input, undo_zigzag_delta)?;
        let changed = decode_column(&mut input, undo_zigzag_delta)?;
        if input.at != bytes.len() {
            return Err("partition state: bytes after its end".into());
        }
        let [materialized, failed] = sets;
        Ok(Self {
            materialized,
            code,
            cursor,
            changed,
            failed,
        })
    }
}

fn encode_column<T: Copy + Eq + Default>(
    out: &mut Vec<u8>,
    column: &Column<T>,
    value: impl Fn(T, T) -> u64,
) {
    let (starts, values, end) = column.parts();
    put(out, starts.len() as u64);
    put(out, u64::from(end));
    // Runs of one partition each, side by side (every partition committed on its own): the
    // first start says where they all are.
    let first = starts.first().copied().unwrap_or(0);
    let unit = (first..).zip(starts).all(|(o, s)| o == *s) && end == first + starts.len() as u32;
    out.push(u8::from(unit));
    if unit {
        put(out, u64::from(first));
    } else {
        let mut start = 0u32;
        for s in starts {
            put(out, u64::from(s - start));
            start = *s;
        }
    }
    let mut previous = T::default();
    for v in values {
        put(out, value(*v, previous));
        previous = *v;
    }
}

fn decode_column<T: Copy + Eq + Default>(
    input: &mut Reader<'_>,
    value: impl Fn(u64, T) -> Result<T, String>,
) -> Result<Column<T>, String> {
    let runs = input.varint()?;
    let end = u32::try_from(input.varint()?).map_err(|_| "partition state: an end is too large")?;
    // Each run takes a byte at least: a larger count is damage, not a reason to allocate.
    if runs > (input.bytes.len() - input.at) as u64 {
        return Err("truncated partition state".into());
    }
    let runs = runs as usize;
    let starts: Vec<u32> = match input.take(1)?[0] {
        1 => {
            let first = u32::try_from(input.varint()?)
                .map_err(|_| "partition state: a run starts past the last ordinal")?;
            let last = first
                .checked_add(u32::try_from(runs).unwrap_or(u32::MAX))
                .ok_or("partition state: a run starts past the last ordinal")?;
            (first..last).collect()
        }
        0 => {
            let mut starts = Vec::with_capacity(runs);
            let mut start = 0u32;
            for i in 0..runs {
                let step = u32::try_from(input.varint()?)
                    .map_err(|_| "partition state: a run is too long")?;
                if i > 0 && step == 0 {
                    return Err("partition state: two runs start together".into());
                }
                start = start
                    .checked_add(step)
                    .ok_or("partition state: a run starts past the last ordinal")?;
                starts.push(start);
            }
            starts
        }
        other => return Err(format!("partition state: unknown column layout {other}")),
    };
    let mut values = Vec::with_capacity(runs);
    let mut previous = T::default();
    for _ in 0..runs {
        previous = value(input.varint()?, previous)?;
        values.push(previous);
    }
    Column::from_parts(starts, values, end)
}

fn zigzag_delta(value: u64, previous: u64) -> u64 {
    let delta = value.wrapping_sub(previous) as i64;
    ((delta << 1) ^ (delta >> 63)) as u64
}

fn undo_zigzag_delta(raw: u64, previous: u64) -> Result<u64, String> {
    let delta = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
    Ok(previous.wrapping_add(delta as u64))
}

/// Appends `value` as an LEB128 varint.
fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or("truncated partition state")?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, String> {
        // Most numbers (a run's step, a sequence's difference) fit in one byte.
        if let Some(&byte) = self.bytes.get(self.at)
            && byte < 0x80
        {
            self.at += 1;
            return Ok(u64::from(byte));
        }
        self.long_varint()
    }

    fn long_varint(&mut self) -> Result<u64, String> {
        let rest = &self.bytes[self.at..];
        let mut value = 0u64;
        for (i, byte) in rest.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if *byte < 0x80 {
                self.at += i + 1;
                return Ok(value);
            }
        }
        Err(if rest.len() < 10 {
            "truncated partition state".into()
        } else {
            "partition state: a number is too long".into()
        })
    }
}
