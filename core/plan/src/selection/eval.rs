//! Evaluating an [`Expr`] over a graph and its facts.

use super::expr::{Attr, Depth, Expr};
use crate::graph::AssetGraph;
use crate::model::{AssetDef, AssetKey, FreshnessState, Status};
use crate::partitions::PartitionStatus;

/// What evaluating `status:` and `freshness:` needs to know; `freshet_core::Snapshot` implements it.
///
/// Only consulted when [`Selection::needs_facts`] is true, so callers without facts at hand may
/// pass any implementation for selections that do not use those attributes.
pub trait AssetFacts {
    /// The planner status of `key`.
    fn status(&self, key: &AssetKey) -> Status;
    /// The freshness state of `key`.
    fn freshness(&self, key: &AssetKey) -> FreshnessState;
    /// Whether `key` is partitioned and has a partition with `status`.
    fn has_partitions(&self, key: &AssetKey, status: PartitionStatus) -> bool {
        let _ = (key, status);
        false
    }
}

/// The facts of a graph judged by definitions alone, as if nothing had been materialized yet:
/// every asset missing, none with a freshness policy.
pub(super) struct ByDefinition;

impl AssetFacts for ByDefinition {
    fn status(&self, _: &AssetKey) -> Status {
        Status::Missing
    }
    fn freshness(&self, _: &AssetKey) -> FreshnessState {
        FreshnessState::None
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation: every subexpression becomes a bitmap over the graph's dense indices (see
// `AssetGraph::index_of`), so `and`, `or` and `not` are linear, and a walk is one breadth-first
// search over the index adjacency that touches only what it reaches.

#[derive(Debug, Clone, Copy)]
pub(super) enum Direction {
    Up,
    Down,
}

pub(super) struct Eval<'g> {
    pub(super) graph: &'g AssetGraph,
    pub(super) facts: &'g dyn AssetFacts,
}

impl Eval<'_> {
    /// The assets `keep` accepts, by dense index.
    pub(super) fn filter(&self, keep: impl Fn(&AssetDef) -> bool) -> Vec<bool> {
        (0..self.graph.len())
            .map(|i| keep(self.graph.def(i)))
            .collect()
    }

    pub(super) fn eval(&self, expr: &Expr) -> Vec<bool> {
        match expr {
            Expr::All => vec![true; self.graph.len()],
            Expr::Key { key, .. } => {
                let mut bits = vec![false; self.graph.len()];
                if let Some(i) = self.graph.index_of(key) {
                    bits[i] = true;
                }
                bits
            }
            Expr::Attr(attr) => self.attribute(attr),
            Expr::Not(inner) => self.eval(inner).into_iter().map(|b| !b).collect(),
            Expr::And(items) | Expr::Or(items) => {
                let is_and = matches!(expr, Expr::And(_));
                let mut items = items.iter();
                let mut bits = items.next().map(|e| self.eval(e)).unwrap_or_default();
                for item in items {
                    for (b, o) in bits.iter_mut().zip(self.eval(item)) {
                        if is_and {
                            *b &= o;
                        } else {
                            *b |= o;
                        }
                    }
                }
                bits
            }
            Expr::Walk { inner, up, down } => {
                let seeds = self.eval(inner);
                let mut bits = seeds.clone();
                if let Some(depth) = up {
                    self.walk(&seeds, *depth, Direction::Up, &mut bits);
                }
                if let Some(depth) = down {
                    self.walk(&seeds, *depth, Direction::Down, &mut bits);
                }
                bits
            }
        }
    }

    pub(super) fn attribute(&self, attr: &Attr) -> Vec<bool> {
        match attr {
            Attr::Key(glob) => self.filter(|d| glob.matches(d.key.as_str())),
            Attr::Tag(glob) => self.filter(|d| d.tags.iter().any(|t| glob.matches(t))),
            Attr::Group(glob) => self.filter(|d| glob.matches(&d.group)),
            Attr::Owner(glob) => self.filter(|d| d.owners.iter().any(|o| glob.matches(o))),
            Attr::Kind(kind) => self.filter(|d| d.kind == *kind),
            Attr::Status(status) => self.filter(|d| self.facts.status(&d.key) == *status),
            Attr::Freshness(state) => self.filter(|d| self.facts.freshness(&d.key) == *state),
            Attr::Partitions(status) => self.filter(|d| self.facts.has_partitions(&d.key, *status)),
        }
    }

    /// Breadth-first from all `seeds` at once, level by level, marking what it reaches in `out`.
    /// It keeps its own `seen` rather than reusing `out`, so that what the walk the other way
    /// marked does not block this one.
    pub(super) fn walk(
        &self,
        seeds: &[bool],
        depth: Depth,
        direction: Direction,
        out: &mut [bool],
    ) {
        let mut seen = seeds.to_vec();
        let mut frontier: Vec<usize> = (0..seeds.len()).filter(|&i| seeds[i]).collect();
        let mut next = Vec::new();
        let mut level = 0u32;
        while !frontier.is_empty() {
            if let Depth::Levels(max) = depth
                && level >= max
            {
                break;
            }
            let mut visit = |j: usize| {
                if !seen[j] {
                    seen[j] = true;
                    out[j] = true;
                    next.push(j);
                }
            };
            for &i in &frontier {
                match direction {
                    Direction::Up => self.graph.upstream_of_index(i).for_each(&mut visit),
                    Direction::Down => self.graph.downstream_of_index(i).for_each(&mut visit),
                }
            }
            std::mem::swap(&mut frontier, &mut next);
            next.clear();
            level += 1;
        }
    }
}

/// The known key closest to `missing`: one whose last segment is `missing` (`daily_revenue` for
/// `marts/daily_revenue`), else the nearest by edit distance ignoring case, if near enough.
pub(super) fn closest_key<'g>(missing: &AssetKey, graph: &'g AssetGraph) -> Option<&'g AssetKey> {
    let wanted = missing.as_str().to_ascii_lowercase();
    if let Some(key) = graph
        .iter()
        .map(|d| &d.key)
        .filter(|k| {
            k.segments()
                .last()
                .is_some_and(|s| s.eq_ignore_ascii_case(&wanted))
        })
        .min()
    {
        return Some(key);
    }
    let wanted: Vec<char> = wanted.chars().collect();
    let limit = (wanted.len() / 3).clamp(1, 3);
    graph
        .iter()
        .map(|d| &d.key)
        .filter(|k| k.as_str().len().abs_diff(wanted.len()) <= limit)
        .filter_map(|k| {
            let candidate: Vec<char> = k.as_str().to_ascii_lowercase().chars().collect();
            let distance = edit_distance(&wanted, &candidate);
            (distance <= limit).then_some((distance, k))
        })
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance (insertions, deletions and substitutions each cost one).
pub(super) fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}
