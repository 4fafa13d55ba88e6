//! Lexing and parsing: the text of a selection into an [`Expr`], with column positions in
//! every error.

use super::error::SelectionError;
use super::expr::{Attr, Depth, Expr, Glob, has_wildcard};
use crate::model::{AssetKey, AssetKind, FreshnessState, Status};
use crate::partitions::PartitionStatus;

// ---------------------------------------------------------------------------------------------
// Lexing.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokenKind {
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
pub(super) struct Token {
    pub(super) kind: TokenKind,
    /// The token as typed.
    pub(super) text: String,
    /// 1-based character column of its first character.
    pub(super) column: usize,
    /// Whether it directly follows the previous character with no whitespace between.
    pub(super) glued: bool,
}

impl Token {
    pub(super) fn keyword(&self) -> Option<Keyword> {
        let TokenKind::Word(w) = &self.kind else {
            return None;
        };
        [Keyword::And, Keyword::Or, Keyword::Not]
            .into_iter()
            .find(|k| w.eq_ignore_ascii_case(k.as_str()))
    }

    pub(super) fn is_keyword(&self, keyword: Keyword) -> bool {
        self.keyword() == Some(keyword)
    }

    /// A number: possibly a depth, depending on what it touches.
    pub(super) fn number(&self) -> Option<&str> {
        match &self.kind {
            TokenKind::Word(w) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => Some(w),
            _ => None,
        }
    }

    /// Whether a primary can start with this token.
    pub(super) fn starts_primary(&self) -> bool {
        match self.kind {
            TokenKind::Open | TokenKind::Attr { .. } => true,
            TokenKind::Word(_) => self.keyword().is_none(),
            TokenKind::Close | TokenKind::Plus => false,
        }
    }

    /// How messages quote it: punctuation and keywords in single quotes, words as strings.
    pub(super) fn describe(&self) -> String {
        match &self.kind {
            TokenKind::Open | TokenKind::Close | TokenKind::Plus => format!("'{}'", self.text),
            TokenKind::Word(_) if self.keyword().is_some() => format!("'{}'", self.text),
            TokenKind::Word(_) | TokenKind::Attr { .. } => format!("{:?}", self.text),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
    And,
    Or,
    Not,
}

impl Keyword {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Keyword::And => "and",
            Keyword::Or => "or",
            Keyword::Not => "not",
        }
    }
}

/// Characters that may appear in a bare word or an unquoted value.
pub(super) fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | '+' | '"')
}

pub(super) fn lex(input: &str) -> Result<Vec<Token>, SelectionError> {
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
pub(super) const MAX_NESTING: usize = 64;

const EXPECTED_PRIMARY: &str = "expected an asset key, an attribute (key:, tag:, group:, kind:, \
                                owner:, status:, freshness:) or '('";

#[derive(Debug)]
pub(super) struct Parser<'a> {
    pub(super) input: &'a str,
    pub(super) tokens: Vec<Token>,
    pub(super) pos: usize,
    /// Column reported for "unexpected end": one past the last character.
    pub(super) end_column: usize,
    /// Current depth of `(` and `not`.
    pub(super) nesting: usize,
}

impl Parser<'_> {
    pub(super) fn error(&self, column: usize, message: impl Into<String>) -> SelectionError {
        SelectionError {
            input: self.input.to_owned(),
            column,
            message: message.into(),
        }
    }

    pub(super) fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    pub(super) fn peek_at(&self, offset: usize) -> Option<&Token> {
        self.tokens.get(self.pos + offset)
    }

    /// Consumes the next token if it is `keyword`.
    pub(super) fn eat_keyword(&mut self, keyword: Keyword) -> bool {
        let found = self.peek().is_some_and(|t| t.is_keyword(keyword));
        if found {
            self.pos += 1;
        }
        found
    }

    /// "unexpected end of selection after 'and'", naming the last token.
    pub(super) fn unexpected_end(&self) -> SelectionError {
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

    pub(super) fn enter(&mut self, column: usize) -> Result<(), SelectionError> {
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

    pub(super) fn parse_selection(&mut self) -> Result<Expr, SelectionError> {
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

    pub(super) fn parse_or(&mut self) -> Result<Expr, SelectionError> {
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

    pub(super) fn parse_and(&mut self) -> Result<Expr, SelectionError> {
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

    pub(super) fn parse_not(&mut self) -> Result<Expr, SelectionError> {
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

    pub(super) fn parse_walk(&mut self) -> Result<Expr, SelectionError> {
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

    pub(super) fn depth(&self, digits: &str, column: usize) -> Result<u32, SelectionError> {
        digits.parse().map_err(|_| {
            self.error(
                column,
                format!("invalid depth {digits} (at most {} levels)", u32::MAX),
            )
        })
    }

    pub(super) fn parse_primary(&mut self) -> Result<Expr, SelectionError> {
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

    pub(super) fn key_or_glob(&self, word: &str, column: usize) -> Result<Expr, SelectionError> {
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

    pub(super) fn attribute(
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
                    "unknown attribute {name}: (expected key, tag, group, kind, owner, status, freshness or partitions)"
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
            "partitions" => Attr::Partitions(
                PartitionStatus::parse(&value.to_ascii_lowercase()).ok_or_else(|| {
                    unknown(
                        "partition status",
                        "failed, stale, missing, blocked or fresh",
                    )
                })?,
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

const ATTRIBUTES: [&str; 8] = [
    "key",
    "tag",
    "group",
    "kind",
    "owner",
    "status",
    "freshness",
    "partitions",
];

const PLUS_MUST_TOUCH: &str =
    "'+' must touch what it extends, with no space between (as in +x, x+ or +(a or b))";

/// Extra advice when something follows a complete expression where an operator should be.
pub(super) fn juxtaposition_hint(token: &Token) -> &'static str {
    if token.is_keyword(Keyword::Not) {
        " (did you mean 'and not'?)"
    } else if token.kind == TokenKind::Plus && !token.glued {
        " ('+' must touch what it extends, as in x+ or +x)"
    } else {
        ""
    }
}
