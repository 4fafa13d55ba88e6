//! The expression tree a selection parses into, and key globs.

use crate::graph::AssetGraph;
use crate::model::{AssetKey, AssetKind, FreshnessState, Status};
use crate::partitions::PartitionStatus;

// ---------------------------------------------------------------------------------------------
// The expression tree.

/// A parsed selection expression. `And` and `Or` hold two or more operands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr {
    /// `*`.
    All,
    /// An exact key, with the column where it starts (for "unknown asset" errors).
    Key {
        key: AssetKey,
        column: usize,
    },
    /// `NAME:VALUE`, or a bare glob (a `key:` glob).
    Attr(Attr),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    /// The assets of `inner` plus their ancestors (`up`) and/or descendants (`down`).
    Walk {
        inner: Box<Expr>,
        up: Option<Depth>,
        down: Option<Depth>,
    },
}

/// How far a walk goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Depth {
    Levels(u32),
    Unlimited,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Attr {
    Key(Glob),
    Tag(Glob),
    Group(Glob),
    Owner(Glob),
    Kind(AssetKind),
    Status(Status),
    Freshness(FreshnessState),
    /// Partitioned assets with at least one partition of this status.
    Partitions(PartitionStatus),
}

impl Expr {
    pub(super) fn needs_facts(&self) -> bool {
        match self {
            Expr::All | Expr::Key { .. } => false,
            Expr::Attr(attr) => matches!(
                attr,
                Attr::Status(_) | Attr::Freshness(_) | Attr::Partitions(_)
            ),
            Expr::Not(inner) | Expr::Walk { inner, .. } => inner.needs_facts(),
            Expr::And(items) | Expr::Or(items) => items.iter().any(Expr::needs_facts),
        }
    }

    /// The first exact key (in text order) that the graph does not have.
    pub(super) fn first_unknown_key(&self, graph: &AssetGraph) -> Option<(&AssetKey, usize)> {
        match self {
            Expr::All | Expr::Attr(_) => None,
            Expr::Key { key, column } => (!graph.contains(key)).then_some((key, *column)),
            Expr::Not(inner) | Expr::Walk { inner, .. } => inner.first_unknown_key(graph),
            Expr::And(items) | Expr::Or(items) => {
                items.iter().find_map(|e| e.first_unknown_key(graph))
            }
        }
    }
}

/// A glob: `*` matches any run of characters, `?` exactly one; anything else matches itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Glob {
    pub(super) pattern: Vec<char>,
}

impl Glob {
    pub(super) fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.chars().collect(),
        }
    }

    /// Two-pointer wildcard matching: on a mismatch, backtrack only to the latest `*` and let it
    /// swallow one more character. Earlier stars never need revisiting, so this is
    /// O(pattern × text) at worst, never exponential.
    pub(super) fn matches(&self, text: &str) -> bool {
        let p = &self.pattern;
        let (mut pi, mut ti) = (0, 0);
        // After the latest `*`: the pattern index following it and the text byte index it has
        // swallowed up to.
        let mut star: Option<(usize, usize)> = None;
        while let Some(c) = text[ti..].chars().next() {
            if pi < p.len() && p[pi] == '*' {
                pi += 1;
                star = Some((pi, ti));
            } else if pi < p.len() && (p[pi] == '?' || p[pi] == c) {
                pi += 1;
                ti += c.len_utf8();
            } else if let Some((after_star, swallowed)) = star {
                let next = swallowed + text[swallowed..].chars().next().map_or(1, char::len_utf8);
                pi = after_star;
                ti = next;
                star = Some((after_star, next));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

pub(super) fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}
