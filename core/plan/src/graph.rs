//! The asset graph: definitions joined by their dependencies, validated once on construction.
//!
//! **Invariant:** an [`AssetGraph`] has unique keys, only known dependencies and no cycles, and
//! iterates in a topological order that is stable for the same definitions (ties broken by key).

use std::collections::{BTreeSet, HashMap, VecDeque};

use petgraph::graph::{DiGraph, NodeIndex};

use crate::model::{AssetDef, AssetKey, Origin};

/// Why a set of definitions does not form a valid graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// Two definitions share a key.
    #[error("duplicate asset key {key}: defined in {first} and in {second}")]
    DuplicateKey {
        /// The repeated key.
        key: AssetKey,
        /// Where it was defined first.
        first: Origin,
        /// Where it was defined again.
        second: Origin,
    },
    /// A definition depends on a key no definition has.
    #[error("asset {asset} ({origin}) depends on unknown asset {dependency}{hint}")]
    UnknownDependency {
        /// The asset with the bad dependency.
        asset: AssetKey,
        /// The key it names.
        dependency: AssetKey,
        /// Where `asset` is defined.
        origin: Origin,
        /// A suggestion such as " (did you mean Orders?)", or empty.
        hint: String,
    },
    /// Dependencies form a cycle; `path` starts and ends with the same key, each depending on the next.
    #[error("dependency cycle: {} (each asset depends on the next)", join_path(.path))]
    Cycle {
        /// The cycle, first key repeated at the end.
        path: Vec<AssetKey>,
    },
}

fn join_path(path: &[AssetKey]) -> String {
    path.iter()
        .map(AssetKey::as_str)
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// A validated graph of asset definitions.
///
/// Edges run from an upstream asset to the assets that read it.
#[derive(Debug, Clone)]
pub struct AssetGraph {
    defs: Vec<AssetDef>,
    index: HashMap<AssetKey, usize>,
    graph: DiGraph<usize, ()>,
    /// Indices into `defs`, upstream before downstream.
    topo: Vec<usize>,
}

impl AssetGraph {
    /// Validates the definitions and builds the graph.
    ///
    /// Errors are reported in this order: duplicate keys, unknown dependencies, cycles.
    pub fn new(defs: Vec<AssetDef>) -> Result<Self, GraphError> {
        let mut index = HashMap::with_capacity(defs.len());
        for (i, def) in defs.iter().enumerate() {
            if let Some(&first) = index.get(&def.key) {
                let first: &AssetDef = &defs[first];
                return Err(GraphError::DuplicateKey {
                    key: def.key.clone(),
                    first: first.origin.clone(),
                    second: def.origin.clone(),
                });
            }
            index.insert(def.key.clone(), i);
        }

        let mut graph = DiGraph::with_capacity(defs.len(), defs.len() * 2);
        for i in 0..defs.len() {
            graph.add_node(i);
        }
        for (i, def) in defs.iter().enumerate() {
            for dep in &def.deps {
                let Some(&d) = index.get(dep) else {
                    return Err(GraphError::UnknownDependency {
                        asset: def.key.clone(),
                        dependency: dep.clone(),
                        origin: def.origin.clone(),
                        hint: suggest(dep, index.keys()),
                    });
                };
                graph.add_edge(NodeIndex::new(d), NodeIndex::new(i), ());
            }
        }

        let topo = topological_order(&defs, &graph)?;
        Ok(Self {
            defs,
            index,
            graph,
            topo,
        })
    }

    /// Number of assets.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// Whether the graph has no assets.
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// The definition of `key`, if it exists.
    pub fn get(&self, key: &AssetKey) -> Option<&AssetDef> {
        self.index.get(key).map(|&i| &self.defs[i])
    }

    /// Whether `key` is in the graph.
    pub fn contains(&self, key: &AssetKey) -> bool {
        self.index.contains_key(key)
    }

    /// All definitions, upstream before downstream.
    pub fn iter(&self) -> impl Iterator<Item = &AssetDef> {
        self.topo.iter().map(|&i| &self.defs[i])
    }

    /// The position of `key` among the definitions: a dense index for per-asset tables, stable for
    /// the life of the graph (and across [`AssetGraph::replace`]).
    pub fn index_of(&self, key: &AssetKey) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// The definition at dense index `i` (see [`AssetGraph::index_of`]).
    ///
    /// # Panics
    /// If `i` is not below [`AssetGraph::len`].
    pub fn def(&self, i: usize) -> &AssetDef {
        &self.defs[i]
    }

    /// Dense indices, upstream before downstream.
    pub fn order(&self) -> &[usize] {
        &self.topo
    }

    /// Dense indices of the assets `i` reads.
    pub fn upstream_of_index(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
            .map(|n| self.graph[n])
    }

    /// Dense indices of the assets that read `i`.
    pub fn downstream_of_index(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors(NodeIndex::new(i))
            .map(|n| self.graph[n])
    }

    /// Replaces the definition with the same key (a code edit), keeping every asset's dense
    /// index. Cheap when the dependencies are unchanged; otherwise the graph is validated again
    /// and, on error, left as it was.
    pub fn replace(&mut self, def: AssetDef) -> Result<(), GraphError> {
        let Some(i) = self.index_of(&def.key) else {
            let mut defs = self.defs.clone();
            defs.push(def);
            *self = Self::new(defs)?;
            return Ok(());
        };
        if self.defs[i].deps == def.deps {
            self.defs[i] = def;
            return Ok(());
        }
        let mut defs = self.defs.clone();
        defs[i] = def;
        *self = Self::new(defs)?;
        Ok(())
    }
}

/// Kahn's algorithm with a sorted ready set, so the order is deterministic; on a cycle, finds one
/// and reports it as a path.
fn topological_order(
    defs: &[AssetDef],
    graph: &DiGraph<usize, ()>,
) -> Result<Vec<usize>, GraphError> {
    let mut indegree: Vec<usize> = defs.iter().map(|d| d.deps.len()).collect();
    let mut ready: BTreeSet<(&AssetKey, usize)> = defs
        .iter()
        .enumerate()
        .filter(|(i, _)| indegree[*i] == 0)
        .map(|(i, d)| (&d.key, i))
        .collect();
    let mut order = Vec::with_capacity(defs.len());
    while let Some((_, i)) = ready.pop_first() {
        order.push(i);
        for n in graph.neighbors(NodeIndex::new(i)) {
            let j = graph[n];
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.insert((&defs[j].key, j));
            }
        }
    }
    if order.len() == defs.len() {
        return Ok(order);
    }
    Err(GraphError::Cycle {
        path: find_cycle(defs, &indegree),
    })
}

/// Finds a cycle to report: walks upstream from the smallest key left with unresolved
/// dependencies until a key repeats (that key is on a cycle), then reports the shortest cycle
/// through it, starting at its smallest key.
///
/// Every node with a non-zero remaining in-degree lies on or downstream of a cycle, so the walk
/// upstream through such nodes must reach one.
fn find_cycle(defs: &[AssetDef], indegree: &[usize]) -> Vec<AssetKey> {
    let index: HashMap<&AssetKey, usize> =
        defs.iter().enumerate().map(|(i, d)| (&d.key, i)).collect();
    let blocked = |i: usize| indegree[i] > 0;
    // Walk upstream through blocked nodes until one repeats: that node is on a cycle.
    let start = (0..defs.len())
        .filter(|&i| blocked(i))
        .min_by_key(|&i| &defs[i].key)
        .expect("a failed topological sort leaves a blocked node");
    let mut seen = vec![false; defs.len()];
    let mut at = start;
    while !seen[at] {
        seen[at] = true;
        at = defs[at]
            .deps
            .iter()
            .map(|d| index[d])
            .find(|&d| blocked(d))
            .expect("a blocked node has a blocked dependency");
    }
    // `at` is on a cycle; find the shortest path from it back to itself along dependencies.
    let on_cycle = at;
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([on_cycle]);
    'search: while let Some(i) = queue.pop_front() {
        for dep in &defs[i].deps {
            let d = index[dep];
            if !blocked(d) {
                continue;
            }
            if d == on_cycle {
                parent.insert(usize::MAX, i);
                break 'search;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(d) {
                e.insert(i);
                queue.push_back(d);
            }
        }
    }
    // Walk the parents back from the last node found, then reverse: each depends on the next.
    let mut cycle = vec![parent[&usize::MAX]];
    while *cycle.last().unwrap_or(&on_cycle) != on_cycle {
        let last = cycle[cycle.len() - 1];
        cycle.push(parent[&last]);
    }
    cycle.reverse();
    // Start at the smallest key, for stable messages.
    let min = (0..cycle.len())
        .min_by_key(|&p| &defs[cycle[p]].key)
        .unwrap_or(0);
    cycle.rotate_left(min);
    cycle.push(cycle[0]);
    cycle.into_iter().map(|i| defs[i].key.clone()).collect()
}

/// " (did you mean X?)" when a key differs from `missing` only in letter case.
pub fn suggest<'a>(missing: &AssetKey, known: impl Iterator<Item = &'a AssetKey>) -> String {
    let lower = missing.as_str().to_ascii_lowercase();
    known
        .filter(|k| k.as_str().to_ascii_lowercase() == lower)
        .min()
        .map(|k| format!(" (did you mean {k}? unquoted SQL names are lower-cased; quote it)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AssetKind;

    /// Builds definitions from `"a: b c"` lines (asset `a` depends on `b` and `c`).
    fn defs(spec: &str) -> Vec<AssetDef> {
        spec.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|line| {
                let (key, deps) = line.split_once(':').unwrap_or((line, ""));
                let origin = Origin::File {
                    path: format!("sql/{}.sql", key.trim()),
                };
                AssetDef::new(key.trim().parse().unwrap(), AssetKind::Sql, origin)
                    .with_deps(deps.split_whitespace().map(|d| d.parse().unwrap()))
            })
            .collect()
    }

    fn check(spec: &str, expect: &str) {
        let got = match AssetGraph::new(defs(spec)) {
            Ok(g) => g
                .iter()
                .map(|d| d.key.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expect, "for graph:\n{spec}");
    }

    #[test]
    fn orders_upstream_first_and_breaks_ties_by_key() {
        check("c: b\nb: a\na:", "a b c");
        check("d: b c\nc: a\nb: a\na:", "a b c d");
        check("z:\ny:\nx: z y", "y z x");
        check("", "");
    }

    #[test]
    fn duplicate_key() {
        check(
            "a:\nb: a\na:",
            "duplicate asset key a: defined in sql/a.sql and in sql/a.sql",
        );
    }

    #[test]
    fn unknown_dependency() {
        check(
            "a: nope",
            "asset a (sql/a.sql) depends on unknown asset nope",
        );
        check(
            "Orders:\nb: orders",
            "asset b (sql/b.sql) depends on unknown asset orders (did you mean Orders? unquoted SQL names are lower-cased; quote it)",
        );
    }

    #[test]
    fn cycles_print_their_path() {
        check(
            "a: b\nb: c\nc: a",
            "dependency cycle: a -> b -> c -> a (each asset depends on the next)",
        );
        check(
            "a: a",
            "dependency cycle: a -> a (each asset depends on the next)",
        );
        // Only the cycle is printed, not the assets hanging off it.
        check(
            "x:\na: x c\nc: b\nb: a\nd: a",
            "dependency cycle: a -> c -> b -> a (each asset depends on the next)",
        );
        // Of two cycles, the one through the smallest blocked key's upstream is reported.
        check(
            "p: q\nq: p\nm: n\nn: m",
            "dependency cycle: m -> n -> m (each asset depends on the next)",
        );
    }

    #[test]
    fn dense_indices_walk_both_ways() {
        let g = AssetGraph::new(defs("a:\nb: a\nc: b a\nd:\ne: d")).unwrap();
        let at = |k: &str| g.index_of(&k.parse().unwrap()).unwrap();
        let names = |it: &mut dyn Iterator<Item = usize>| {
            let mut v: Vec<String> = it.map(|i| g.def(i).key.to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(names(&mut g.downstream_of_index(at("a"))), ["b", "c"]);
        assert_eq!(names(&mut g.upstream_of_index(at("c"))), ["a", "b"]);
        assert_eq!(names(&mut g.order().iter().copied()).len(), 5);
    }
}
