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
//!
//!   Attribute names and the fixed values of `kind:`, `status:` and `freshness:` are
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
use crate::model::{AssetDef, AssetKey, AssetKind, FreshnessState, Status};

/// What evaluating `status:` and `freshness:` needs to know; the planner implements it.
///
/// Only consulted when [`Selection::needs_facts`] is true, so callers without facts at hand may
/// pass any implementation for selections that do not use those attributes.
pub trait AssetFacts {
    /// The planner status of `key`.
    fn status(&self, key: &AssetKey) -> Status;
    /// The freshness state of `key`.
    fn freshness(&self, key: &AssetKey) -> FreshnessState;
}

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

/// Why a selection cannot be parsed or evaluated. One line when displayed, e.g.
/// `invalid selection "a and (b": column 9: expected ')' to close the '(' at column 7`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selection {input:?}: column {column}: {message}")]
pub struct SelectionError {
    /// The selection as typed.
    pub input: String,
    /// 1-based character column of the offending token (input length + 1 for "unexpected end").
    pub column: usize,
    /// What is wrong, without the input or the column.
    pub message: String,
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
        struct Unknown;
        impl AssetFacts for Unknown {
            fn status(&self, _: &AssetKey) -> Status {
                Status::Missing
            }
            fn freshness(&self, _: &AssetKey) -> FreshnessState {
                FreshnessState::None
            }
        }
        self.select(graph, &Unknown)
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

// ---------------------------------------------------------------------------------------------
// The expression tree.

/// A parsed selection expression. `And` and `Or` hold two or more operands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
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
enum Depth {
    Levels(u32),
    Unlimited,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Attr {
    Key(Glob),
    Tag(Glob),
    Group(Glob),
    Owner(Glob),
    Kind(AssetKind),
    Status(Status),
    Freshness(FreshnessState),
}

impl Expr {
    fn needs_facts(&self) -> bool {
        match self {
            Expr::All | Expr::Key { .. } => false,
            Expr::Attr(attr) => matches!(attr, Attr::Status(_) | Attr::Freshness(_)),
            Expr::Not(inner) | Expr::Walk { inner, .. } => inner.needs_facts(),
            Expr::And(items) | Expr::Or(items) => items.iter().any(Expr::needs_facts),
        }
    }

    /// The first exact key (in text order) that the graph does not have.
    fn first_unknown_key(&self, graph: &AssetGraph) -> Option<(&AssetKey, usize)> {
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
struct Glob {
    pattern: Vec<char>,
}

impl Glob {
    fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.chars().collect(),
        }
    }

    /// Two-pointer wildcard matching: on a mismatch, backtrack only to the latest `*` and let it
    /// swallow one more character. Earlier stars never need revisiting, so this is
    /// O(pattern × text) at worst, never exponential.
    fn matches(&self, text: &str) -> bool {
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

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

// ---------------------------------------------------------------------------------------------
// Lexing.

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    Open,
    Close,
    Plus,
    /// A bare word: a keyword, a key, a glob or a number.
    Word(String),
    /// `NAME:VALUE`; `value_column` is where the value (or its opening quote) starts.
    Attr {
        name: String,
        value: String,
        value_column: usize,
    },
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    /// The token as typed.
    text: String,
    /// 1-based character column of its first character.
    column: usize,
    /// Whether it directly follows the previous character with no whitespace between.
    glued: bool,
}

impl Token {
    fn keyword(&self) -> Option<Keyword> {
        let TokenKind::Word(w) = &self.kind else {
            return None;
        };
        [Keyword::And, Keyword::Or, Keyword::Not]
            .into_iter()
            .find(|k| w.eq_ignore_ascii_case(k.as_str()))
    }

    fn is_keyword(&self, keyword: Keyword) -> bool {
        self.keyword() == Some(keyword)
    }

    /// A number: possibly a depth, depending on what it touches.
    fn number(&self) -> Option<&str> {
        match &self.kind {
            TokenKind::Word(w) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => Some(w),
            _ => None,
        }
    }

    /// Whether a primary can start with this token.
    fn starts_primary(&self) -> bool {
        match self.kind {
            TokenKind::Open | TokenKind::Attr { .. } => true,
            TokenKind::Word(_) => self.keyword().is_none(),
            TokenKind::Close | TokenKind::Plus => false,
        }
    }

    /// How messages quote it: punctuation and keywords in single quotes, words as strings.
    fn describe(&self) -> String {
        match &self.kind {
            TokenKind::Open | TokenKind::Close | TokenKind::Plus => format!("'{}'", self.text),
            TokenKind::Word(_) if self.keyword().is_some() => format!("'{}'", self.text),
            TokenKind::Word(_) | TokenKind::Attr { .. } => format!("{:?}", self.text),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    And,
    Or,
    Not,
}

impl Keyword {
    fn as_str(self) -> &'static str {
        match self {
            Keyword::And => "and",
            Keyword::Or => "or",
            Keyword::Not => "not",
        }
    }
}

/// Characters that may appear in a bare word or an unquoted value.
fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | '+' | '"')
}

fn lex(input: &str) -> Result<Vec<Token>, SelectionError> {
    let error = |column: usize, message: &str| SelectionError {
        input: input.to_owned(),
        column,
        message: message.to_owned(),
    };
    let chars: Vec<char> = input.chars().collect();
    let collect = |range: std::ops::Range<usize>| chars[range].iter().collect::<String>();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let kind = match c {
            '(' => {
                i += 1;
                TokenKind::Open
            }
            ')' => {
                i += 1;
                TokenKind::Close
            }
            '+' => {
                i += 1;
                TokenKind::Plus
            }
            '"' => {
                return Err(error(
                    start + 1,
                    "a quoted value must follow an attribute name, as in owner:\"Data Team\"",
                ));
            }
            _ => {
                while i < chars.len() && is_word_char(chars[i]) && chars[i] != ':' {
                    i += 1;
                }
                if chars.get(i) == Some(&':') {
                    let name = collect(start..i);
                    i += 1;
                    let value_column = i + 1;
                    let value = if chars.get(i) == Some(&'"') {
                        let quote = i;
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            i += 1;
                        }
                        if i == chars.len() {
                            return Err(error(quote + 1, "unterminated quoted value"));
                        }
                        i += 1;
                        collect(quote + 1..i - 1)
                    } else {
                        let value_start = i;
                        while i < chars.len() && is_word_char(chars[i]) {
                            i += 1;
                        }
                        collect(value_start..i)
                    };
                    TokenKind::Attr {
                        name,
                        value,
                        value_column,
                    }
                } else {
                    TokenKind::Word(collect(start..i))
                }
            }
        };
        tokens.push(Token {
            kind,
            text: collect(start..i),
            column: start + 1,
            glued: start > 0 && !chars[start - 1].is_whitespace(),
        });
    }
    Ok(tokens)
}

// ---------------------------------------------------------------------------------------------
// Parsing: recursive descent, one function per grammar rule.

/// How deeply `(` and `not` may nest. Bounds the recursion of the parser and the evaluator, so
/// a hostile selection sent to the web API cannot overflow the stack.
const MAX_NESTING: usize = 64;

const EXPECTED_PRIMARY: &str = "expected an asset key, an attribute (key:, tag:, group:, kind:, \
                                owner:, status:, freshness:) or '('";

#[derive(Debug)]
struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    /// Column reported for "unexpected end": one past the last character.
    end_column: usize,
    /// Current depth of `(` and `not`.
    nesting: usize,
}

impl Parser<'_> {
    fn error(&self, column: usize, message: impl Into<String>) -> SelectionError {
        SelectionError {
            input: self.input.to_owned(),
            column,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_at(&self, offset: usize) -> Option<&Token> {
        self.tokens.get(self.pos + offset)
    }

    /// Consumes the next token if it is `keyword`.
    fn eat_keyword(&mut self, keyword: Keyword) -> bool {
        let found = self.peek().is_some_and(|t| t.is_keyword(keyword));
        if found {
            self.pos += 1;
        }
        found
    }

    /// "unexpected end of selection after 'and'", naming the last token.
    fn unexpected_end(&self) -> SelectionError {
        let after = self
            .pos
            .checked_sub(1)
            .and_then(|p| self.tokens.get(p))
            .map(|t| format!(" after {}", t.describe()))
            .unwrap_or_default();
        self.error(
            self.end_column,
            format!("unexpected end of selection{after}"),
        )
    }

    fn enter(&mut self, column: usize) -> Result<(), SelectionError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.error(
                column,
                format!(
                    "selection nests too deeply (more than {MAX_NESTING} levels of '(' and 'not')"
                ),
            ));
        }
        Ok(())
    }

    fn parse_selection(&mut self) -> Result<Expr, SelectionError> {
        if self.tokens.is_empty() {
            return Err(self.error(self.end_column, "empty selection"));
        }
        let expr = self.parse_or()?;
        match self.peek() {
            None => Ok(expr),
            Some(t) if t.kind == TokenKind::Close => Err(self.error(
                t.column,
                "unmatched ')' (there is no '(' before it to close)",
            )),
            Some(t) => Err(self.error(
                t.column,
                format!(
                    "expected 'and', 'or' or the end of the selection but found {}{}",
                    t.describe(),
                    juxtaposition_hint(t)
                ),
            )),
        }
    }

    fn parse_or(&mut self) -> Result<Expr, SelectionError> {
        let mut items = vec![self.parse_and()?];
        while self.eat_keyword(Keyword::Or) {
            items.push(self.parse_and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn parse_and(&mut self) -> Result<Expr, SelectionError> {
        let mut items = vec![self.parse_not()?];
        while self.eat_keyword(Keyword::And) {
            items.push(self.parse_not()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn parse_not(&mut self) -> Result<Expr, SelectionError> {
        let Some(token) = self.peek() else {
            return Err(self.unexpected_end());
        };
        if !token.is_keyword(Keyword::Not) {
            return self.parse_walk();
        }
        let column = token.column;
        self.pos += 1;
        self.enter(column)?;
        let inner = self.parse_not()?;
        self.nesting -= 1;
        Ok(Expr::Not(Box::new(inner)))
    }

    fn parse_walk(&mut self) -> Result<Expr, SelectionError> {
        let mut up = None;
        // `2+x`: a number touching a `+` that touches the start of a primary.
        if let (Some(number), Some(plus), Some(next)) =
            (self.peek(), self.peek_at(1), self.peek_at(2))
            && let Some(digits) = number.number()
            && plus.kind == TokenKind::Plus
            && plus.glued
            && next.glued
            && next.starts_primary()
        {
            up = Some(Depth::Levels(self.depth(digits, number.column)?));
            self.pos += 2;
        } else if let Some(plus) = self.peek()
            && plus.kind == TokenKind::Plus
        {
            let column = plus.column;
            self.pos += 1;
            match self.peek() {
                None => return Err(self.unexpected_end()),
                Some(next) if !next.glued => {
                    return Err(self.error(column, PLUS_MUST_TOUCH));
                }
                Some(_) => {}
            }
            up = Some(Depth::Unlimited);
        }

        let inner = self.parse_primary()?;

        let mut down = None;
        if let Some(plus) = self.peek()
            && plus.kind == TokenKind::Plus
            && plus.glued
        {
            self.pos += 1;
            down = Some(Depth::Unlimited);
            if let Some(number) = self.peek()
                && number.glued
                && let Some(digits) = number.number()
            {
                down = Some(Depth::Levels(self.depth(digits, number.column)?));
                self.pos += 1;
            }
        }

        Ok(if up.is_none() && down.is_none() {
            inner
        } else {
            Expr::Walk {
                inner: Box::new(inner),
                up,
                down,
            }
        })
    }

    fn depth(&self, digits: &str, column: usize) -> Result<u32, SelectionError> {
        digits.parse().map_err(|_| {
            self.error(
                column,
                format!("invalid depth {digits} (at most {} levels)", u32::MAX),
            )
        })
    }

    fn parse_primary(&mut self) -> Result<Expr, SelectionError> {
        let Some(token) = self.peek().cloned() else {
            return Err(self.unexpected_end());
        };
        self.pos += 1;
        if token.keyword().is_some() {
            return Err(self.error(
                token.column,
                format!("{EXPECTED_PRIMARY} but found {}", token.describe()),
            ));
        }
        match token.kind {
            TokenKind::Open => {
                self.enter(token.column)?;
                let inner = self.parse_or()?;
                match self.peek() {
                    Some(t) if t.kind == TokenKind::Close => self.pos += 1,
                    None => {
                        return Err(self.error(
                            self.end_column,
                            format!("expected ')' to close the '(' at column {}", token.column),
                        ));
                    }
                    Some(t) => {
                        return Err(self.error(
                            t.column,
                            format!(
                                "expected 'and', 'or' or ')' to close the '(' at column {} but found {}{}",
                                token.column,
                                t.describe(),
                                juxtaposition_hint(t)
                            ),
                        ));
                    }
                }
                self.nesting -= 1;
                Ok(inner)
            }
            TokenKind::Close | TokenKind::Plus => Err(self.error(
                token.column,
                format!("{EXPECTED_PRIMARY} but found {}", token.describe()),
            )),
            TokenKind::Word(word) => self.key_or_glob(&word, token.column),
            TokenKind::Attr {
                name,
                value,
                value_column,
            } => self.attribute(&name, token.column, &value, value_column),
        }
    }

    fn key_or_glob(&self, word: &str, column: usize) -> Result<Expr, SelectionError> {
        if word == "*" {
            return Ok(Expr::All);
        }
        if has_wildcard(word) {
            return Ok(Expr::Attr(Attr::Key(Glob::new(word))));
        }
        match AssetKey::parse(word) {
            Ok(key) => Ok(Expr::Key { key, column }),
            Err(e) => Err(self.error(column, e.to_string())),
        }
    }

    fn attribute(
        &self,
        name: &str,
        column: usize,
        value: &str,
        value_column: usize,
    ) -> Result<Expr, SelectionError> {
        if name.is_empty() {
            return Err(self.error(column, "missing attribute name before ':'"));
        }
        let name_lower = name.to_ascii_lowercase();
        if !ATTRIBUTES.contains(&name_lower.as_str()) {
            return Err(self.error(
                column,
                format!(
                    "unknown attribute {name}: (expected key, tag, group, kind, owner, status or freshness)"
                ),
            ));
        }
        if value.is_empty() {
            return Err(self.error(
                value_column,
                format!(
                    "empty value after {name}: (write {name_lower}:VALUE, quoted if it has spaces)"
                ),
            ));
        }
        let unknown = |what: &str, expected: &str| {
            self.error(
                value_column,
                format!("unknown {what} {value:?} (expected {expected})"),
            )
        };
        let attr = match name_lower.as_str() {
            "key" => return self.key_or_glob(value, value_column),
            "tag" => Attr::Tag(Glob::new(value)),
            "group" => Attr::Group(Glob::new(value)),
            "owner" => Attr::Owner(Glob::new(value)),
            "kind" => Attr::Kind(
                [AssetKind::Source, AssetKind::Sql, AssetKind::Rust]
                    .into_iter()
                    .find(|k| value.eq_ignore_ascii_case(k.as_str()))
                    .ok_or_else(|| unknown("kind", "source, sql or rust"))?,
            ),
            "status" => Attr::Status(
                [Status::Missing, Status::Stale, Status::Fresh]
                    .into_iter()
                    .find(|s| value.eq_ignore_ascii_case(s.as_str()))
                    .ok_or_else(|| unknown("status", "missing, stale or fresh"))?,
            ),
            _ => Attr::Freshness(
                [
                    FreshnessState::Pass,
                    FreshnessState::Warn,
                    FreshnessState::Fail,
                    FreshnessState::Unknown,
                    FreshnessState::None,
                ]
                .into_iter()
                .find(|s| value.eq_ignore_ascii_case(s.as_str()))
                .ok_or_else(|| unknown("freshness", "pass, warn, fail, unknown or none"))?,
            ),
        };
        Ok(Expr::Attr(attr))
    }
}

const ATTRIBUTES: [&str; 7] = [
    "key",
    "tag",
    "group",
    "kind",
    "owner",
    "status",
    "freshness",
];

const PLUS_MUST_TOUCH: &str =
    "'+' must touch what it extends, with no space between (as in +x, x+ or +(a or b))";

/// Extra advice when something follows a complete expression where an operator should be.
fn juxtaposition_hint(token: &Token) -> &'static str {
    if token.is_keyword(Keyword::Not) {
        " (did you mean 'and not'?)"
    } else if token.kind == TokenKind::Plus && !token.glued {
        " ('+' must touch what it extends, as in x+ or +x)"
    } else {
        ""
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation: every subexpression becomes a bitmap over the graph's dense indices (see
// `AssetGraph::index_of`), so `and`, `or` and `not` are linear, and a walk is one breadth-first
// search over the index adjacency that touches only what it reaches.

#[derive(Debug, Clone, Copy)]
enum Direction {
    Up,
    Down,
}

struct Eval<'g> {
    graph: &'g AssetGraph,
    facts: &'g dyn AssetFacts,
}

impl Eval<'_> {
    /// The assets `keep` accepts, by dense index.
    fn filter(&self, keep: impl Fn(&AssetDef) -> bool) -> Vec<bool> {
        (0..self.graph.len())
            .map(|i| keep(self.graph.def(i)))
            .collect()
    }

    fn eval(&self, expr: &Expr) -> Vec<bool> {
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

    fn attribute(&self, attr: &Attr) -> Vec<bool> {
        match attr {
            Attr::Key(glob) => self.filter(|d| glob.matches(d.key.as_str())),
            Attr::Tag(glob) => self.filter(|d| d.tags.iter().any(|t| glob.matches(t))),
            Attr::Group(glob) => self.filter(|d| glob.matches(&d.group)),
            Attr::Owner(glob) => self.filter(|d| d.owners.iter().any(|o| glob.matches(o))),
            Attr::Kind(kind) => self.filter(|d| d.kind == *kind),
            Attr::Status(status) => self.filter(|d| self.facts.status(&d.key) == *status),
            Attr::Freshness(state) => self.filter(|d| self.facts.freshness(&d.key) == *state),
        }
    }

    /// Breadth-first from all `seeds` at once, level by level, marking what it reaches in `out`.
    /// It keeps its own `seen` rather than reusing `out`, so that what the walk the other way
    /// marked does not block this one.
    fn walk(&self, seeds: &[bool], depth: Depth, direction: Direction, out: &mut [bool]) {
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
fn closest_key<'g>(missing: &AssetKey, graph: &'g AssetGraph) -> Option<&'g AssetKey> {
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
fn edit_distance(a: &[char], b: &[char]) -> usize {
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::model::Origin;

    // --- Parsing ------------------------------------------------------------------------------

    /// A compact rendering of the tree: `(or a (and b c))`, walks as `[2+ x +]`.
    fn sexp(expr: &Expr) -> String {
        let depth = |d: &Depth| match d {
            Depth::Levels(n) => n.to_string(),
            Depth::Unlimited => String::new(),
        };
        let glob = |g: &Glob| g.pattern.iter().collect::<String>();
        let list = |op: &str, items: &[Expr]| {
            let items: Vec<_> = items.iter().map(sexp).collect();
            format!("({op} {})", items.join(" "))
        };
        match expr {
            Expr::All => "*".to_owned(),
            Expr::Key { key, .. } => key.to_string(),
            Expr::Attr(Attr::Key(g)) => format!("key:{}", glob(g)),
            Expr::Attr(Attr::Tag(g)) => format!("tag:{}", glob(g)),
            Expr::Attr(Attr::Group(g)) => format!("group:{}", glob(g)),
            Expr::Attr(Attr::Owner(g)) => format!("owner:{:?}", glob(g)),
            Expr::Attr(Attr::Kind(k)) => format!("kind:{k}"),
            Expr::Attr(Attr::Status(s)) => format!("status:{}", s.as_str()),
            Expr::Attr(Attr::Freshness(s)) => format!("freshness:{}", s.as_str()),
            Expr::Not(inner) => format!("(not {})", sexp(inner)),
            Expr::And(items) => list("and", items),
            Expr::Or(items) => list("or", items),
            Expr::Walk { inner, up, down } => {
                let up = up.as_ref().map(|d| format!("{}+ ", depth(d)));
                let down = down.as_ref().map(|d| format!(" +{}", depth(d)));
                format!(
                    "[{}{}{}]",
                    up.unwrap_or_default(),
                    sexp(inner),
                    down.unwrap_or_default()
                )
            }
        }
    }

    #[track_caller]
    fn check_parse(input: &str, expect: &str) {
        match Selection::parse(input) {
            Ok(sel) => {
                assert_eq!(sexp(&sel.expr), expect, "for {input:?}");
                assert_eq!(sel.as_str(), input);
                assert_eq!(sel.to_string(), input);
            }
            Err(e) => panic!("{input:?} did not parse: {e}"),
        }
    }

    #[track_caller]
    fn check_error(input: &str, column: usize, message: &str) {
        match Selection::parse(input) {
            Ok(sel) => panic!("{input:?} parsed as {}", sexp(&sel.expr)),
            Err(e) => {
                assert_eq!(
                    (e.column, e.message.as_str()),
                    (column, message),
                    "for {input:?}"
                );
                assert_eq!(e.input, input);
            }
        }
    }

    #[test]
    fn parses_each_form() {
        check_parse("marts/daily_revenue", "marts/daily_revenue");
        check_parse("  a  ", "a");
        check_parse("*", "*");
        check_parse("marts/*", "key:marts/*");
        check_parse("stg_?rders", "key:stg_?rders");
        check_parse("(a)", "a");
        check_parse("((a or b))", "(or a b)");
        check_parse("a and b", "(and a b)");
        check_parse("a or b or c", "(or a b c)");
        check_parse("not a", "(not a)");
        check_parse("not not a", "(not (not a))");
        check_parse("not(a)", "(not a)");
        check_parse("a and(b)", "(and a b)");
        // A keyword-like word inside a longer word is just a key.
        check_parse("android or order", "(or android order)");
    }

    #[test]
    fn precedence() {
        check_parse("a or b and c", "(or a (and b c))");
        check_parse("a and b or c", "(or (and a b) c)");
        check_parse("not a and b", "(and (not a) b)");
        check_parse("not a or not b and c", "(or (not a) (and (not b) c))");
        check_parse("(a or b) and c", "(and (or a b) c)");
        check_parse("not (a or b)", "(not (or a b))");
        check_parse("not +a", "(not [+ a])");
        check_parse("+a and b+", "(and [+ a] [b +])");
    }

    #[test]
    fn keywords_are_case_insensitive() {
        check_parse("a AND b", "(and a b)");
        check_parse("a Or b", "(or a b)");
        check_parse("NOT a", "(not a)");
        check_parse("a aNd NoT b", "(and a (not b))");
    }

    #[test]
    fn walks_and_depths() {
        check_parse("+x", "[+ x]");
        check_parse("x+", "[x +]");
        check_parse("+x+", "[+ x +]");
        check_parse("2+x", "[2+ x]");
        check_parse("x+1", "[x +1]");
        check_parse("2+x+3", "[2+ x +3]");
        check_parse("0+x+0", "[0+ x +0]");
        check_parse("007+x", "[7+ x]");
        check_parse("+marts/*", "[+ key:marts/*]");
        check_parse("+(a or b)+", "[+ (or a b) +]");
        check_parse("1+(a)", "[1+ a]");
        check_parse("+tag:daily", "[+ tag:daily]");
        check_parse("tag:daily+2", "[tag:daily +2]");
        check_parse("owner:\"Data Team\"+", "[owner:\"Data Team\" +]");
        // A number not touching `+x` is an asset key.
        check_parse("2", "2");
        check_parse("2+", "[2 +]");
        check_parse("+2", "[+ 2]");
        check_parse("1+2+", "[1+ 2 +]");
        check_parse("4294967295+x", "[4294967295+ x]");
    }

    #[test]
    fn attributes_and_quoted_values() {
        check_parse("key:marts/daily_revenue", "marts/daily_revenue");
        check_parse("key:marts/*", "key:marts/*");
        check_parse("key:\"marts/x\"", "marts/x");
        check_parse("key:and", "and");
        check_parse("tag:pii", "tag:pii");
        check_parse("tag:fin*", "tag:fin*");
        check_parse("group:marts", "group:marts");
        check_parse("kind:sql", "kind:sql");
        check_parse("kind:SOURCE", "kind:source");
        check_parse("KIND:rust", "kind:rust");
        check_parse("owner:ana@example.com", "owner:\"ana@example.com\"");
        check_parse("owner:\"Data Team\"", "owner:\"Data Team\"");
        check_parse("owner:\"a (b) + c\"", "owner:\"a (b) + c\"");
        check_parse("owner:a=b:c.d-e", "owner:\"a=b:c.d-e\"");
        check_parse("status:missing", "status:missing");
        check_parse("status:Stale", "status:stale");
        check_parse("freshness:unknown", "freshness:unknown");
        check_parse("freshness:none", "freshness:none");
        check_parse(
            "tag:a and not group:\"b c\" or kind:sql",
            "(or (and tag:a (not group:b c)) kind:sql)",
        );
    }

    #[test]
    fn parse_errors() {
        check_error("", 1, "empty selection");
        check_error("   ", 4, "empty selection");
        check_error("a and (b", 9, "expected ')' to close the '(' at column 7");
        check_error(
            "(a b)",
            4,
            "expected 'and', 'or' or ')' to close the '(' at column 1 but found \"b\"",
        );
        check_error(
            "a)",
            2,
            "unmatched ')' (there is no '(' before it to close)",
        );
        check_error(
            "a and )",
            7,
            "expected an asset key, an attribute (key:, tag:, group:, kind:, owner:, status:, freshness:) or '(' but found ')'",
        );
        check_error(
            "()",
            2,
            "expected an asset key, an attribute (key:, tag:, group:, kind:, owner:, status:, freshness:) or '(' but found ')'",
        );
        check_error(
            "or a",
            1,
            "expected an asset key, an attribute (key:, tag:, group:, kind:, owner:, status:, freshness:) or '(' but found 'or'",
        );
        check_error("a and", 6, "unexpected end of selection after 'and'");
        check_error("a OR", 5, "unexpected end of selection after 'OR'");
        check_error("not", 4, "unexpected end of selection after 'not'");
        check_error("(", 2, "unexpected end of selection after '('");
        check_error("+", 2, "unexpected end of selection after '+'");
        check_error(
            "colour:red",
            1,
            "unknown attribute colour: (expected key, tag, group, kind, owner, status or freshness)",
        );
        check_error(":red", 1, "missing attribute name before ':'");
        check_error(
            "status:old",
            8,
            "unknown status \"old\" (expected missing, stale or fresh)",
        );
        check_error(
            "a or kind:python",
            11,
            "unknown kind \"python\" (expected source, sql or rust)",
        );
        check_error(
            "freshness:late",
            11,
            "unknown freshness \"late\" (expected pass, warn, fail, unknown or none)",
        );
        check_error(
            "tag:",
            5,
            "empty value after tag: (write tag:VALUE, quoted if it has spaces)",
        );
        check_error(
            "tag:\"\"",
            5,
            "empty value after tag: (write tag:VALUE, quoted if it has spaces)",
        );
        check_error("owner:\"Data Team", 7, "unterminated quoted value");
        check_error(
            "\"a\"",
            1,
            "a quoted value must follow an attribute name, as in owner:\"Data Team\"",
        );
        check_error(
            "a b",
            3,
            "expected 'and', 'or' or the end of the selection but found \"b\"",
        );
        check_error(
            "a not b",
            3,
            "expected 'and', 'or' or the end of the selection but found 'not' (did you mean 'and not'?)",
        );
        check_error(
            "a tag:x",
            3,
            "expected 'and', 'or' or the end of the selection but found \"tag:x\"",
        );
        check_error(
            "x +",
            3,
            "expected 'and', 'or' or the end of the selection but found '+' ('+' must touch what it extends, as in x+ or +x)",
        );
        check_error(
            "+ x",
            1,
            "'+' must touch what it extends, with no space between (as in +x, x+ or +(a or b))",
        );
        check_error(
            "++x",
            2,
            "expected an asset key, an attribute (key:, tag:, group:, kind:, owner:, status:, freshness:) or '(' but found '+'",
        );
        check_error(
            "x+1a",
            3,
            "expected 'and', 'or' or the end of the selection but found \"1a\"",
        );
        check_error(
            "99999999999+x",
            1,
            "invalid depth 99999999999 (at most 4294967295 levels)",
        );
        check_error(
            "x+4294967296",
            3,
            "invalid depth 4294967296 (at most 4294967295 levels)",
        );
        check_error(
            "a or daily-revenue",
            6,
            "invalid asset key \"daily-revenue\": segments may contain only ASCII letters, digits and underscores",
        );
        check_error(
            "key:a//b",
            5,
            "invalid asset key \"a//b\": it has an empty segment",
        );
        // Columns count characters, not bytes.
        check_error(
            "tag:é b",
            7,
            "expected 'and', 'or' or the end of the selection but found \"b\"",
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}a{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(Selection::parse(&ok).is_ok());
        let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
        let err = Selection::parse(&deep).unwrap_err();
        assert_eq!(err.column, MAX_NESTING + 1);
        assert_eq!(
            err.message,
            "selection nests too deeply (more than 64 levels of '(' and 'not')"
        );
        let nots = format!("{}a", "not ".repeat(10_000));
        assert_eq!(
            Selection::parse(&nots).unwrap_err().column,
            4 * MAX_NESTING + 1
        );
    }

    #[test]
    fn display_of_the_error_is_one_line() {
        let err = Selection::parse("a and (b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid selection \"a and (b\": column 9: expected ')' to close the '(' at column 7"
        );
    }

    #[test]
    fn all_and_needs_facts() {
        assert!(Selection::all().is_all());
        assert_eq!(Selection::all().as_str(), "*");
        assert!(Selection::parse("*").unwrap().is_all());
        assert!(Selection::parse(" (*) ").unwrap().is_all());
        assert!(!Selection::parse("* and a").unwrap().is_all());
        assert!(Selection::parse("key:*").unwrap().is_all());
        assert!(!Selection::parse("+a and tag:x").unwrap().needs_facts());
        assert!(
            Selection::parse("a or not status:stale")
                .unwrap()
                .needs_facts()
        );
        assert!(Selection::parse("+(freshness:fail)").unwrap().needs_facts());
    }

    #[test]
    fn globs() {
        let check = |pattern: &str, text: &str, expect: bool| {
            assert_eq!(
                Glob::new(pattern).matches(text),
                expect,
                "{pattern:?} on {text:?}"
            );
        };
        check("*", "", true);
        check("*", "marts/a", true);
        check("", "", true);
        check("", "a", false);
        check("a", "a", true);
        check("a", "ab", false);
        check("marts/*", "marts/daily/revenue", true);
        check("marts/*", "mart", false);
        check("*/daily_*", "marts/daily_revenue", true);
        check("stg_?rders", "stg_orders", true);
        check("stg_?rders", "stg_rders", false);
        check("?", "é", true);
        check("a*b*c", "aXbYc", true);
        check("a*b*c", "aXbY", false);
        check("*a*", "bab", true);
        check("**", "x", true);
        check("a*", "a", true);
        check("*x", "a*x", true);
        // No exponential blow-up on a pathological pattern.
        let text = "a".repeat(2000);
        check(&format!("{}b", "*a".repeat(50)), &text, false);
    }

    #[test]
    fn edit_distances() {
        let d = |a: &str, b: &str| {
            edit_distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("", ""), 0);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("daily_revnue", "daily_revenue"), 1);
    }

    // --- Evaluation ---------------------------------------------------------------------------

    fn def(key: &str, kind: AssetKind, deps: &[&str]) -> AssetDef {
        AssetDef::new(
            key.parse().unwrap(),
            kind,
            Origin::File {
                path: format!("{key}.sql"),
            },
        )
        .with_deps(deps.iter().map(|d| d.parse().unwrap()))
    }

    /// ```text
    /// raw/orders ──► stg_orders ──► marts/daily_revenue ──► reports/exec
    ///                          └──► marts/customer_ltv ───┘
    /// raw/customers ──► stg_customers ──┘
    /// lonely
    /// ```
    fn graph() -> AssetGraph {
        let with = |mut d: AssetDef, group: &str, tags: &[&str], owners: &[&str]| {
            d.group = group.to_owned();
            d.tags = tags.iter().map(|t| (*t).to_owned()).collect();
            d.owners = owners.iter().map(|o| (*o).to_owned()).collect();
            d
        };
        use AssetKind::{Rust, Source, Sql};
        AssetGraph::new(vec![
            with(
                def("raw/orders", Source, &[]),
                "raw",
                &["pii"],
                &["ingest@example.com"],
            ),
            with(
                def("raw/customers", Source, &[]),
                "raw",
                &["pii", "crm"],
                &[],
            ),
            with(
                def("stg_orders", Sql, &["raw/orders"]),
                "staging",
                &["daily"],
                &[],
            ),
            with(
                def("stg_customers", Sql, &["raw/customers"]),
                "staging",
                &[],
                &[],
            ),
            with(
                def("marts/daily_revenue", Sql, &["stg_orders"]),
                "marts",
                &["daily", "finance"],
                &["Data Team"],
            ),
            with(
                def("marts/customer_ltv", Rust, &["stg_orders", "stg_customers"]),
                "marts",
                &["finance"],
                &["Data Team", "ana@example.com"],
            ),
            with(
                def(
                    "reports/exec",
                    Sql,
                    &["marts/daily_revenue", "marts/customer_ltv"],
                ),
                "reports",
                &["finance"],
                &[],
            ),
            def("lonely", Rust, &[]),
        ])
        .unwrap()
    }

    /// Facts from a table; assets not in it are missing and have no freshness policy.
    #[derive(Debug, Default)]
    struct Facts(HashMap<&'static str, (Status, FreshnessState)>);

    impl AssetFacts for Facts {
        fn status(&self, key: &AssetKey) -> Status {
            self.0.get(key.as_str()).map_or(Status::Missing, |f| f.0)
        }
        fn freshness(&self, key: &AssetKey) -> FreshnessState {
            self.0
                .get(key.as_str())
                .map_or(FreshnessState::None, |f| f.1)
        }
    }

    fn facts() -> Facts {
        Facts(HashMap::from([
            ("raw/orders", (Status::Fresh, FreshnessState::Pass)),
            ("raw/customers", (Status::Fresh, FreshnessState::Warn)),
            ("stg_orders", (Status::Stale, FreshnessState::None)),
            ("stg_customers", (Status::Fresh, FreshnessState::None)),
            ("marts/daily_revenue", (Status::Stale, FreshnessState::Fail)),
            (
                "marts/customer_ltv",
                (Status::Fresh, FreshnessState::Unknown),
            ),
        ]))
    }

    fn keys(set: &BTreeSet<AssetKey>) -> String {
        set.iter()
            .map(AssetKey::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[track_caller]
    fn check_select(input: &str, expect: &str) {
        let sel = Selection::parse(input).unwrap_or_else(|e| panic!("{e}"));
        let got = sel
            .select(&graph(), &facts())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys(&got), expect, "for {input:?}");
    }

    const EVERYTHING: &str = "lonely marts/customer_ltv marts/daily_revenue raw/customers \
                              raw/orders reports/exec stg_customers stg_orders";

    #[test]
    fn selects_keys_and_globs() {
        check_select("stg_orders", "stg_orders");
        check_select("marts/daily_revenue", "marts/daily_revenue");
        check_select("*", EVERYTHING);
        check_select("key:*", EVERYTHING);
        check_select("marts/*", "marts/customer_ltv marts/daily_revenue");
        check_select("stg_*", "stg_customers stg_orders");
        check_select("*/*_revenue", "marts/daily_revenue");
        check_select("raw/??????", "raw/orders");
        check_select("nothing_*", "");
    }

    #[test]
    fn selects_walks() {
        check_select(
            "+marts/daily_revenue",
            "marts/daily_revenue raw/orders stg_orders",
        );
        check_select(
            "stg_orders+",
            "marts/customer_ltv marts/daily_revenue reports/exec stg_orders",
        );
        check_select(
            "1+reports/exec",
            "marts/customer_ltv marts/daily_revenue reports/exec",
        );
        check_select(
            "2+reports/exec",
            "marts/customer_ltv marts/daily_revenue reports/exec stg_customers stg_orders",
        );
        check_select("raw/orders+1", "raw/orders stg_orders");
        check_select(
            "raw/orders+2",
            "marts/customer_ltv marts/daily_revenue raw/orders stg_orders",
        );
        check_select(
            "+marts/customer_ltv+",
            "marts/customer_ltv raw/customers raw/orders reports/exec stg_customers stg_orders",
        );
        check_select(
            "1+stg_orders+1",
            "marts/customer_ltv marts/daily_revenue raw/orders stg_orders",
        );
        check_select("0+stg_orders+0", "stg_orders");
        check_select("+lonely+", "lonely");
        // Several seeds walk together; a seed reached from another seed is still included.
        check_select(
            "+(stg_orders or stg_customers)",
            "raw/customers raw/orders stg_customers stg_orders",
        );
        check_select(
            "+marts/*",
            "marts/customer_ltv marts/daily_revenue raw/customers raw/orders stg_customers stg_orders",
        );
        check_select("+tag:daily", "marts/daily_revenue raw/orders stg_orders");
        check_select("not +reports/exec", "lonely");
    }

    #[test]
    fn selects_attributes() {
        check_select("tag:pii", "raw/customers raw/orders");
        check_select(
            "tag:fin*",
            "marts/customer_ltv marts/daily_revenue reports/exec",
        );
        check_select("tag:c?m", "raw/customers");
        check_select("group:marts", "marts/customer_ltv marts/daily_revenue");
        check_select("group:r*", "raw/customers raw/orders reports/exec");
        check_select("group:default", "lonely");
        check_select("kind:source", "raw/customers raw/orders");
        check_select("kind:rust", "lonely marts/customer_ltv");
        check_select(
            "kind:sql",
            "marts/daily_revenue reports/exec stg_customers stg_orders",
        );
        check_select(
            "owner:\"Data Team\"",
            "marts/customer_ltv marts/daily_revenue",
        );
        check_select("owner:*@example.com", "marts/customer_ltv raw/orders");
        check_select("owner:Data", "");
        check_select("status:stale", "marts/daily_revenue stg_orders");
        check_select("status:missing", "lonely reports/exec");
        check_select(
            "status:fresh",
            "marts/customer_ltv raw/customers raw/orders stg_customers",
        );
        check_select("freshness:pass", "raw/orders");
        check_select("freshness:warn", "raw/customers");
        check_select("freshness:fail", "marts/daily_revenue");
        check_select("freshness:unknown", "marts/customer_ltv");
        check_select(
            "freshness:none",
            "lonely reports/exec stg_customers stg_orders",
        );
        check_select("key:stg_orders", "stg_orders");
        check_select("key:stg_*", "stg_customers stg_orders");
    }

    #[test]
    fn selects_with_operators() {
        check_select(
            "not kind:sql",
            "lonely marts/customer_ltv raw/customers raw/orders",
        );
        check_select("not *", "");
        check_select(
            "tag:finance and not kind:rust",
            "marts/daily_revenue reports/exec",
        );
        check_select("stg_orders or lonely", "lonely stg_orders");
        check_select(
            "kind:source or tag:daily and group:marts",
            "marts/daily_revenue raw/customers raw/orders",
        );
        check_select(
            "(kind:source or tag:daily) and group:marts",
            "marts/daily_revenue",
        );
        check_select(
            "+reports/exec and not (status:fresh or kind:source)",
            "marts/daily_revenue reports/exec stg_orders",
        );
        check_select(
            "+(status:stale)+ and not stg_orders",
            "marts/customer_ltv marts/daily_revenue raw/orders reports/exec",
        );
    }

    #[test]
    fn union_of_joins_parts() {
        let union = |parts: &[&str]| Selection::union_of(parts).unwrap();
        assert!(union(&[]).is_all());
        assert_eq!(union(&[]).as_str(), "*");
        assert_eq!(union(&[" +a "]).as_str(), " +a ");
        assert_eq!(union(&["a", "b+"]).as_str(), "a or b+");
        assert_eq!(
            union(&[" tag:x and b ", "not c", "d or e", "(f)"]).as_str(),
            "(tag:x and b) or (not c) or (d or e) or (f)"
        );
        assert_eq!(sexp(&union(&["a and b", "c"]).expr), "(or (and a b) c)");

        let sel = union(&["lonely", "stg_orders+1", "kind:source and tag:crm"]);
        let got = sel.select(&graph(), &facts()).unwrap();
        assert_eq!(
            keys(&got),
            "lonely marts/customer_ltv marts/daily_revenue raw/customers stg_orders"
        );

        // A parse error names the part it is in.
        let err = Selection::union_of(&["a", "b and"]).unwrap_err();
        assert_eq!(
            (err.input.as_str(), err.column, err.message.as_str()),
            ("b and", 6, "unexpected end of selection after 'and'")
        );
        // An unknown key is reported in the joined text.
        let err = union(&["lonely", "daily_revenue"])
            .select(&graph(), &facts())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid selection \"lonely or daily_revenue\": column 11: unknown asset \"daily_revenue\" (did you mean marts/daily_revenue?)"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_suggestions() {
        let check = |input: &str, column: usize, message: &str| {
            let err = Selection::parse(input)
                .unwrap()
                .select(&graph(), &facts())
                .unwrap_err();
            assert_eq!(
                (err.column, err.message.as_str()),
                (column, message),
                "for {input:?}"
            );
            assert_eq!(err.input, input);
        };
        check(
            "marts/daily_revnue",
            1,
            "unknown asset \"marts/daily_revnue\" (did you mean marts/daily_revenue?)",
        );
        check(
            "lonely or +stg_order",
            12,
            "unknown asset \"stg_order\" (did you mean stg_orders?)",
        );
        check(
            "STG_ORDERS",
            1,
            "unknown asset \"STG_ORDERS\" (did you mean stg_orders?)",
        );
        check(
            "customer_ltv",
            1,
            "unknown asset \"customer_ltv\" (did you mean marts/customer_ltv?)",
        );
        check("zzz", 1, "unknown asset \"zzz\"");
        check("key:nope and kind:sql", 5, "unknown asset \"nope\"");
        // Reported even where it cannot change the result, and the first one in the text wins.
        check("not (x or y)", 6, "unknown asset \"x\"");
    }

    #[test]
    fn long_chains_walk_without_recursion() {
        let n = 20_000;
        let defs = (0..n)
            .map(|i| {
                let deps: Vec<String> =
                    (i > 0).then(|| format!("a{}", i - 1)).into_iter().collect();
                let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
                def(&format!("a{i}"), AssetKind::Sql, &deps)
            })
            .collect();
        let graph = AssetGraph::new(defs).unwrap();
        let count = |s: &str| {
            Selection::parse(s)
                .unwrap()
                .select(&graph, &Facts::default())
                .unwrap()
                .len()
        };
        assert_eq!(count(&format!("+a{}", n - 1)), n);
        assert_eq!(count("a0+"), n);
        assert_eq!(count("a100+10"), 11);
        assert_eq!(count("not a0+"), 0);
        assert_eq!(count("a1*"), 11_111);
    }

    // --- Fuzzing ------------------------------------------------------------------------------

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 2000,
            // Failures are reported in the test output; no regression files next to the source.
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Parses and, when that succeeds, selects: must not panic, and every error points inside
    /// the input (or just past its end).
    fn never_panics(input: &str, graph: &AssetGraph, facts: &Facts) -> Result<(), TestCaseError> {
        let limit = input.chars().count() + 1;
        match Selection::parse(input) {
            Err(e) => {
                prop_assert!(
                    (1..=limit).contains(&e.column),
                    "column {} for {input:?}: {e}",
                    e.column
                );
                prop_assert_eq!(&e.input, input);
            }
            Ok(sel) => {
                prop_assert_eq!(sel.as_str(), input);
                match sel.select(graph, facts) {
                    Err(e) => {
                        prop_assert!(
                            (1..=limit).contains(&e.column),
                            "column {} for {input:?}: {e}",
                            e.column
                        );
                    }
                    Ok(selected) => {
                        // The text as printed means the same selection.
                        let again = Selection::parse(&sel.to_string()).unwrap();
                        prop_assert_eq!(again.select(graph, facts).unwrap(), selected);
                    }
                }
            }
        }
        Ok(())
    }

    /// Strings made of the language's own pieces, glued together or spaced apart, so that many
    /// parse and reach evaluation.
    fn token_soup() -> impl Strategy<Value = String> {
        let tokens = vec![
            "a",
            "b",
            "+",
            "+",
            "(",
            ")",
            "and",
            "or",
            "not",
            "key:",
            "tag:x",
            "\"",
            "2",
            "1",
            "*",
            " ",
            "stg_orders",
            "lonely",
            "marts/*",
            "status:stale",
            "OR",
            ":",
            "é",
            "owner:\"Data Team\"",
            "kind:sql",
        ];
        let separators = vec!["", " ", " "];
        let piece = (
            prop::sample::select(tokens),
            prop::sample::select(separators),
        );
        prop::collection::vec(piece, 0..16)
            .prop_map(|v| v.into_iter().map(|(t, s)| format!("{t}{s}")).collect())
    }

    /// A selection built from pieces whose results are known, with the result expected from it
    /// worked out independently: set operations for `and`, `or` and `not`, and a plain
    /// breadth-first search over the graph for walks. Compound operands are parenthesised, so
    /// this checks meaning, not precedence (the parser tests do that).
    fn selection_with_expected() -> impl Strategy<Value = (String, BTreeSet<String>)> {
        let names =
            |s: &str| -> BTreeSet<String> { s.split_whitespace().map(str::to_owned).collect() };
        let leaves = vec![
            ("stg_orders", "stg_orders"),
            ("lonely", "lonely"),
            ("raw/orders", "raw/orders"),
            ("marts/*", "marts/customer_ltv marts/daily_revenue"),
            ("*", EVERYTHING),
            (
                "tag:fin*",
                "marts/customer_ltv marts/daily_revenue reports/exec",
            ),
            ("kind:source", "raw/customers raw/orders"),
            ("status:stale", "marts/daily_revenue stg_orders"),
            (
                "owner:\"Data Team\"",
                "marts/customer_ltv marts/daily_revenue",
            ),
        ];
        let leaf = prop::sample::select(leaves).prop_map(move |(s, e)| (s.to_owned(), names(e)));
        leaf.prop_recursive(4, 24, 2, move |inner| {
            let ops = vec!["and", "AND", "or", "Or"];
            let ups: Vec<(&str, Option<Depth>)> = vec![
                ("", None),
                ("+", Some(Depth::Unlimited)),
                ("1+", Some(Depth::Levels(1))),
                ("0+", Some(Depth::Levels(0))),
            ];
            let downs: Vec<(&str, Option<Depth>)> = vec![
                ("", None),
                ("+", Some(Depth::Unlimited)),
                ("+1", Some(Depth::Levels(1))),
                ("+2", Some(Depth::Levels(2))),
            ];
            prop_oneof![
                (inner.clone(), prop::sample::select(ops), inner.clone()).prop_map(
                    |((a, x), op, (b, y))| {
                        let set = if op.eq_ignore_ascii_case("and") {
                            x.intersection(&y).cloned().collect()
                        } else {
                            x.union(&y).cloned().collect()
                        };
                        (format!("({a}) {op} ({b})"), set)
                    }
                ),
                inner.clone().prop_map(move |(a, x)| {
                    (
                        format!("not ({a})"),
                        names(EVERYTHING).difference(&x).cloned().collect(),
                    )
                }),
                (
                    prop::sample::select(ups),
                    inner,
                    prop::sample::select(downs)
                )
                    .prop_map(|((u, up), (a, x), (d, down))| {
                        let mut set = x.clone();
                        if let Some(depth) = up {
                            set.extend(reference_walk(&x, depth, true));
                        }
                        if let Some(depth) = down {
                            set.extend(reference_walk(&x, depth, false));
                        }
                        (format!("{u}({a}){d}"), set)
                    }),
            ]
        })
    }

    /// The seeds and everything within `depth` levels up or down of any of them.
    fn reference_walk(seeds: &BTreeSet<String>, depth: Depth, up: bool) -> BTreeSet<String> {
        let graph = graph();
        let mut out = seeds.clone();
        let mut frontier: Vec<String> = seeds.iter().cloned().collect();
        let mut level = 0;
        while !frontier.is_empty() && (depth == Depth::Unlimited || Depth::Levels(level) != depth) {
            let mut next = Vec::new();
            for name in &frontier {
                let key: AssetKey = name.parse().unwrap();
                let neighbours: Vec<&AssetKey> = if up {
                    graph.get(&key).unwrap().deps.iter().collect()
                } else {
                    graph
                        .iter()
                        .filter(|d| d.deps.contains(&key))
                        .map(|d| &d.key)
                        .collect()
                };
                for n in neighbours {
                    if out.insert(n.to_string()) {
                        next.push(n.to_string());
                    }
                }
            }
            frontier = next;
            level += 1;
        }
        out
    }

    /// Selections that usually parse and name real assets, for the union property.
    fn valid_selection() -> impl Strategy<Value = String> {
        let atoms = vec![
            "stg_orders",
            "lonely",
            "marts/*",
            "tag:finance",
            "kind:source",
            "status:stale",
            "+stg_orders",
            "raw/orders+1",
            "*",
            "group:r*",
        ];
        let ops = vec![" and ", " or ", " and not "];
        (
            prop::sample::select(atoms.clone()),
            prop::option::of((prop::sample::select(ops), prop::sample::select(atoms))),
        )
            .prop_map(|(a, rest)| match rest {
                None => a.to_owned(),
                Some((op, b)) => format!("{a}{op}{b}"),
            })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_strings_never_panic(input in any::<String>()) {
            never_panics(&input, &graph(), &facts())?;
        }

        #[test]
        fn token_soup_never_panics(input in token_soup()) {
            never_panics(&input, &graph(), &facts())?;
        }

        #[test]
        fn selects_what_the_reference_expects((input, expect) in selection_with_expected()) {
            let sel = Selection::parse(&input).unwrap();
            let got = sel.select(&graph(), &facts()).unwrap();
            let got: BTreeSet<String> = got.iter().map(AssetKey::to_string).collect();
            prop_assert_eq!(got, expect, "for {}", input);
        }

        #[test]
        fn union_selects_the_union_of_its_parts(a in valid_selection(), b in valid_selection()) {
            let (graph, facts) = (graph(), facts());
            let select = |s: &str| Selection::parse(s).unwrap().select(&graph, &facts).unwrap();
            let union = Selection::union_of(&[&a, &b]).unwrap();
            let mut expect = select(&a);
            expect.extend(select(&b));
            prop_assert_eq!(union.select(&graph, &facts).unwrap(), expect);
            prop_assert_eq!(select(union.as_str()), union.select(&graph, &facts).unwrap());
        }
    }
}
