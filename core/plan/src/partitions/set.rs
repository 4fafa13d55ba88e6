//! Sets of partitions and per-partition values, in ranges: never one key at a time.

use std::fmt;
use std::ops::{BitAndAssign, BitOrAssign, Range, SubAssign};

use roaring::RoaringBitmap;

use super::def::Ordinal;

/// A set of ordinals: a compressed bitmap whose run containers hold a million partitions in a
/// few ranges as a few containers.
#[derive(Clone, Default, PartialEq)]
pub struct PartitionSet(RoaringBitmap);

impl PartitionSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every ordinal in `range`.
    pub fn from_range(range: Range<Ordinal>) -> Self {
        let mut set = Self::new();
        set.insert_range(range);
        set
    }

    /// Adds `range`.
    pub fn insert_range(&mut self, range: Range<Ordinal>) {
        self.0.insert_range(range);
    }

    /// Adds `ordinal`.
    pub fn insert(&mut self, ordinal: Ordinal) {
        self.0.insert(ordinal);
    }

    /// Removes `range`.
    pub fn remove_range(&mut self, range: Range<Ordinal>) {
        self.0.remove_range(range);
    }

    /// Whether `ordinal` is in the set.
    pub fn contains(&self, ordinal: Ordinal) -> bool {
        self.0.contains(ordinal)
    }

    /// Whether every ordinal of `range` is in the set (an empty range is).
    pub fn contains_range(&self, range: Range<Ordinal>) -> bool {
        range.is_empty() || self.0.contains_range(range)
    }

    /// How many ordinals the set holds.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// How many ordinals of `range` the set holds.
    pub fn len_in(&self, range: Range<Ordinal>) -> u64 {
        if range.is_empty() {
            0
        } else {
            self.0.range_cardinality(range)
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The smallest ordinal.
    pub fn first(&self) -> Option<Ordinal> {
        self.0.min()
    }

    /// The largest ordinal.
    pub fn last(&self) -> Option<Ordinal> {
        self.0.max()
    }

    /// The set's maximal ranges, in order (half-open).
    pub fn ranges(&self) -> impl Iterator<Item = Range<Ordinal>> + '_ {
        let mut iter = self.0.iter();
        std::iter::from_fn(move || {
            let range = iter.next_range()?;
            Some(*range.start()..range.end().saturating_add(1))
        })
    }

    /// The set's ranges within `within`, clipped to it.
    pub fn ranges_in(&self, within: Range<Ordinal>) -> impl Iterator<Item = Range<Ordinal>> + '_ {
        let mut iter = self.0.range(within.clone());
        std::iter::from_fn(move || {
            let range = iter.next_range()?;
            Some((*range.start()).max(within.start)..range.end().saturating_add(1).min(within.end))
        })
    }

    /// Shrinks run-heavy containers into runs (after many single inserts).
    pub fn optimize(&mut self) {
        self.0.optimize();
    }

    /// The bitmap (for encoding).
    pub(super) fn bitmap(&self) -> &RoaringBitmap {
        &self.0
    }

    /// The set of `bitmap`'s ordinals.
    pub(super) fn from_bitmap(bitmap: RoaringBitmap) -> Self {
        Self(bitmap)
    }

    /// The set's size in bytes, serialized in the portable Roaring format.
    pub fn serialized_size(&self) -> usize {
        self.0.serialized_size()
    }
}

impl FromIterator<Ordinal> for PartitionSet {
    fn from_iter<I: IntoIterator<Item = Ordinal>>(ordinals: I) -> Self {
        Self(ordinals.into_iter().collect())
    }
}

impl BitOrAssign<&PartitionSet> for PartitionSet {
    fn bitor_assign(&mut self, other: &PartitionSet) {
        self.0 |= &other.0;
    }
}

impl BitAndAssign<&PartitionSet> for PartitionSet {
    fn bitand_assign(&mut self, other: &PartitionSet) {
        self.0 &= &other.0;
    }
}

impl SubAssign<&PartitionSet> for PartitionSet {
    fn sub_assign(&mut self, other: &PartitionSet) {
        self.0 -= &other.0;
    }
}

impl fmt::Debug for PartitionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.ranges().take(20)).finish()
    }
}

/// A value per partition, in runs: one commit gives its whole range one value, so a column
/// has about as many runs as commits. `T::default()` is "no value".
#[derive(Debug, Clone, PartialEq)]
pub struct Column<T> {
    /// Where each run starts, ascending; run `i` ends where run `i + 1` starts.
    starts: Vec<Ordinal>,
    values: Vec<T>,
    /// Where the last run ends.
    end: Ordinal,
}

impl<T> Default for Column<T> {
    fn default() -> Self {
        Self {
            starts: Vec::new(),
            values: Vec::new(),
            end: 0,
        }
    }
}

impl<T: Copy + Eq + Default> Column<T> {
    /// A column with no values.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many runs the column holds (its size).
    pub fn runs(&self) -> usize {
        self.starts.len()
    }

    /// The value of `ordinal` (the default where none was set).
    pub fn get(&self, ordinal: Ordinal) -> T {
        if ordinal >= self.end {
            return T::default();
        }
        match self.starts.partition_point(|s| *s <= ordinal) {
            0 => T::default(),
            i => self.values[i - 1],
        }
    }

    /// Gives every ordinal of `range` the value `value`.
    pub fn set(&mut self, range: Range<Ordinal>, value: T) {
        if range.is_empty() {
            return;
        }
        // Appending past the end, the common case (commits of new windows), is O(1).
        if range.start >= self.end {
            if range.start > self.end && !self.starts.is_empty() {
                self.push(self.end, T::default());
            }
            self.push(range.start, value);
            self.end = range.end;
            return;
        }
        let old_end = self.end;
        // The value that resumes at `range.end`, read before the runs in the range go.
        let after = self.get(range.end);
        // Runs before `first` start before the range (the new run cuts them); runs from `last`
        // start after it; those between start inside it and are replaced.
        let first = self.starts.partition_point(|s| *s < range.start);
        let last = self.starts.partition_point(|s| *s <= range.end);
        let tail_starts = self.starts.split_off(last);
        let tail_values = self.values.split_off(last);
        self.starts.truncate(first);
        self.values.truncate(first);
        self.push(range.start, value);
        if range.end < old_end {
            self.push(range.end, after);
        }
        for (start, value) in tail_starts.into_iter().zip(tail_values) {
            self.push(start, value);
        }
        self.end = old_end.max(range.end);
    }

    /// Adds a run at the end, unless the last run has the same value (it then goes on).
    fn push(&mut self, start: Ordinal, value: T) {
        if self.values.last() != Some(&value) {
            self.starts.push(start);
            self.values.push(value);
        }
    }

    /// The runs `(range, value)` that overlap `within`, clipped to it, with default values
    /// where nothing was set.
    pub fn runs_in(
        &self,
        within: Range<Ordinal>,
    ) -> impl Iterator<Item = (Range<Ordinal>, T)> + '_ {
        let mut at = within.start;
        // Runs starting at or before `at`: the run holding `at` is the one before this index.
        let mut next = self.starts.partition_point(|s| *s <= at);
        std::iter::from_fn(move || {
            if at >= within.end {
                return None;
            }
            let (end, value) = if next == 0 {
                let first = self.starts.first().copied().unwrap_or(Ordinal::MAX);
                (first, T::default())
            } else if at >= self.end {
                (Ordinal::MAX, T::default())
            } else {
                let end = self.starts.get(next).copied().unwrap_or(self.end);
                (end, self.values[next - 1])
            };
            let end = end.min(within.end);
            let run = at..end;
            at = end;
            next += 1;
            Some((run, value))
        })
    }

    /// The largest value over `range` (the default if none is larger).
    pub fn max_in(&self, range: Range<Ordinal>) -> T
    where
        T: Ord,
    {
        self.runs_in(range)
            .map(|(_, v)| v)
            .max()
            .unwrap_or_default()
    }

    /// The largest value anywhere.
    pub fn max(&self) -> T
    where
        T: Ord,
    {
        self.values.iter().copied().max().unwrap_or_default()
    }

    /// The runs' starts, their values and where the last ends (for encoding).
    pub(super) fn parts(&self) -> (&[Ordinal], &[T], Ordinal) {
        (&self.starts, &self.values, self.end)
    }

    /// A column of these runs, checked: starts ascending, the last before `end`.
    pub(super) fn from_parts(
        starts: Vec<Ordinal>,
        values: Vec<T>,
        end: Ordinal,
    ) -> Result<Self, String> {
        let ascending = starts.windows(2).all(|w| w[0] < w[1]);
        let bounded = starts.last().is_none_or(|last| *last < end);
        if starts.len() != values.len() || !ascending || !bounded {
            return Err("partition state: a column's runs are out of order".into());
        }
        Ok(Self {
            starts,
            values,
            end,
        })
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.starts.capacity() * size_of::<Ordinal>() + self.values.capacity() * size_of::<T>()
    }
}
