//! Asset selections: the small language every command that takes assets understands
//! (`freshet plan SEL`, `freshet materialize SEL`, `freshet status SEL`, the web API).
//!
//! A selection is parsed once into a [`Selection`] and evaluated against an [`AssetGraph`] (and,
//! for `status:` and `freshness:`, against [`AssetFacts`] the planner supplies).
//!
//! # Syntax
//!
//! ```text
//! selection := or
//! or        := and ( "or" and )*
//! and       := not ( "and" not )*
//! not       := "not" not | walk
//! walk      := [DEPTH] "+" primary             ancestors too:   +x (all), 2+x (up to 2 levels)
//!            | primary "+" [DEPTH]             descendants too: x+ (all), x+1 (one level)
//!            | [DEPTH] "+" primary "+" [DEPTH] both:            +x+, 1+x+2
//!            | primary
//! primary   := "(" or ")" | NAME ":" VALUE | KEY | GLOB | "*"
//! ```
//!
//! - `not` binds tighter than `and`, which binds tighter than `or`: `a or b and c` is
//!   `a or (b and c)`, and `not a and b` is `(not a) and b`. Parentheses group as usual.
//! - The keywords `and`, `or` and `not` are case-insensitive (`AND` works too). An asset whose key
//!   is one of them can still be selected with `key:and`.
//! - Whitespace separates tokens. `+` binds tightly and must touch what it extends: `+x`, `x+`,
//!   `+(a or b)`, but not `+ x`. A walk covers the starting assets themselves, so `+x` is `x` and
//!   all its ancestors (as in Dagster and dbt); `+x+` is `x`, its ancestors and its descendants
//!   (not the descendants of its ancestors). `not +x` is `not (+x)`.
//! - A number written directly before a `+` that directly precedes what it extends is a depth
//!   (`2+x`: up to two levels of ancestors); a number directly after a postfix `+` is a depth too
//!   (`x+1`: direct dependents only). Depth `0` is allowed and adds nothing (`0+x` is `x`). An
//!   asset named `2` is still `2`, `2+` or `+2`.
//! - A bare word is an asset key (`marts/daily_revenue`: segments of ASCII letters, digits and
//!   underscores joined by `/`) or, if it contains `*` or `?`, a glob over keys (`marts/*`,
//!   `stg_*`). `*` alone selects every asset. In globs `*` matches any run of characters
//!   (including `/`) and `?` exactly one character; matching is case-sensitive. A key that is not
//!   in the graph is an error when the selection is evaluated (wherever it appears, even under
//!   `not`), with a suggestion of the closest key; a glob that matches nothing is not an error.
//! - `NAME:VALUE` selects by attribute:
//!
//!   | attribute    | selects the assets whose        | value                                       |
//!   |--------------|---------------------------------|---------------------------------------------|
//!   | `key:`       | key matches                     | a key or a glob                             |
//!   | `tag:`       | tags include one that matches   | a tag or a glob                             |
//!   | `group:`     | group matches                   | a group or a glob                           |
//!   | `kind:`      | kind is                         | `source`, `sql` or `rust`                   |
//!   | `owner:`     | owners include one that matches | an owner or a glob                          |
//!   | `status:`    | planner status is               | `missing`, `stale` or `fresh`               |
//!   | `freshness:` | freshness policy evaluates to   | `pass`, `warn`, `fail`, `unknown` or `none` |
//!   | `partitions:`| partitions include one that is  | `failed`, `stale`, `missing`, `blocked` or `fresh` |
//!
//!   Attribute names and the fixed values of `kind:`, `status:`, `freshness:` and `partitions:` are
//!   case-insensitive. A value is a bare word (anything but whitespace, `(`, `)`, `+` and `"`,
//!   e.g. `owner:ana@example.com`) or a double-quoted string without `"` inside
//!   (`owner:"Data Team"`). An empty value is an error. `key:x` is the same as `x`, and
//!   `key:*` the same as `*`.
//! - `(` and `not` nest at most 64 deep.
//!
//! # Examples
//!
//! ```text
//! marts/daily_revenue            one asset
//! +marts/daily_revenue           it and everything it is computed from
//! raw/orders+1                   raw/orders and the assets that read it directly
//! marts/* and not tag:deprecated every mart without the tag `deprecated`
//! group:finance or owner:"Data Team"
//! +(status:stale or status:missing)+
//! kind:sql and freshness:fail
//! ```
//!
//! Errors point at a 1-based character column, e.g.
//! `invalid selection "a and (b": column 9: expected ')' to close the '(' at column 7`.
//! An empty (or all-blank) selection is an error; a caller that means "everything" uses
//! [`Selection::all`] or [`Selection::union_of`] with no parts.

use std::collections::BTreeSet;
use std::fmt;

use crate::graph::AssetGraph;
use crate::model::AssetKey;

/// A parsed selection.
///
/// # Example
/// ```
/// use freshet_plan::selection::Selection;
/// let sel = Selection::parse("+marts/daily_revenue and not kind:source").unwrap();
/// assert_eq!(sel.as_str(), "+marts/daily_revenue and not kind:source");
/// assert!(!sel.needs_facts());
/// let err = Selection::parse("a and (b").unwrap_err();
/// assert_eq!(err.column, 9);
/// assert_eq!(err.message, "expected ')' to close the '(' at column 7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    expr: Expr,
    /// The text as typed; the columns in `Expr::Key` refer to it.
    text: String,
}

impl Selection {
    /// Parses a selection (see the [module documentation](self) for the syntax).
    pub fn parse(text: &str) -> Result<Selection, SelectionError> {
        let tokens = lex(text)?;
        let mut parser = Parser {
            input: text,
            tokens,
            pos: 0,
            end_column: text.chars().count() + 1,
            nesting: 0,
        };
        let expr = parser.parse_selection()?;
        Ok(Selection {
            expr,
            text: text.to_owned(),
        })
    }

    /// The union of several selections (the command line takes several arguments). No parts
    /// means every asset, one part is that part as typed, and several are joined with ` or `,
    /// parenthesising each part built with `and`, `or` or `not` so the text reads unambiguously.
    ///
    /// Each part is parsed on its own first, so a parse error names the part it is in.
    pub fn union_of(parts: &[&str]) -> Result<Selection, SelectionError> {
        match parts {
            [] => return Ok(Self::all()),
            [one] => return Self::parse(one),
            _ => {}
        }
        let mut text = String::new();
        for (i, part) in parts.iter().enumerate() {
            let parsed = Self::parse(part)?;
            if i > 0 {
                text.push_str(" or ");
            }
            let part = part.trim();
            if matches!(parsed.expr, Expr::And(_) | Expr::Or(_) | Expr::Not(_)) {
                text.push('(');
                text.push_str(part);
                text.push(')');
            } else {
                text.push_str(part);
            }
        }
        Self::parse(&text)
    }

    /// Every asset.
    pub fn all() -> Selection {
        Selection {
            expr: Expr::All,
            text: "*".to_owned(),
        }
    }

    /// Whether this selects every asset (`*` or built by [`Selection::all`]).
    pub fn is_all(&self) -> bool {
        matches!(self.expr, Expr::All)
    }

    /// The text as typed (for [`Selection::union_of`]: the parts joined with ` or `).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `status:` or `freshness:` appear (then the caller must supply real facts).
    pub fn needs_facts(&self) -> bool {
        self.expr.needs_facts()
    }

    /// The selected keys judged by definitions alone, as if nothing had been materialized yet
    /// (`status:` sees every asset missing, `freshness:` every asset without a policy). Final for
    /// a selection that does not [need facts](Selection::needs_facts); for one that does, it
    /// checks the keys (the same errors as [`Selection::select`]) before any facts are read.
    pub fn select_by_definition(
        &self,
        graph: &AssetGraph,
    ) -> Result<BTreeSet<AssetKey>, SelectionError> {
        self.select(graph, &ByDefinition)
    }

    /// The selected keys. Errors only for an exact key not in the graph (the first one in the
    /// text), suggesting the closest known key.
    pub fn select(
        &self,
        graph: &AssetGraph,
        facts: &dyn AssetFacts,
    ) -> Result<BTreeSet<AssetKey>, SelectionError> {
        if let Some((key, column)) = self.expr.first_unknown_key(graph) {
            let hint = closest_key(key, graph)
                .map(|k| format!(" (did you mean {k}?)"))
                .unwrap_or_default();
            return Err(SelectionError {
                input: self.text.clone(),
                column,
                message: format!("unknown asset {:?}{hint}", key.as_str()),
            });
        }
        let bits = Eval { graph, facts }.eval(&self.expr);
        // In the graph's order, which breaks ties by key: the keys arrive in long sorted runs,
        // so building the set sorts less than from the dense indices' order.
        Ok(graph
            .order()
            .iter()
            .filter(|&&i| bits[i])
            .map(|&i| graph.def(i).key.clone())
            .collect())
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

mod error;
mod eval;
mod expr;
mod parse;
#[cfg(test)]
mod tests;

pub use error::SelectionError;
pub use eval::AssetFacts;
use eval::{ByDefinition, Eval, closest_key};
use expr::Expr;
use parse::{Parser, lex};
