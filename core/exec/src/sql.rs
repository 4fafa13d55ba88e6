//! SQL assets: one `.sql` file, one asset. Parses the settings header and the query, infers
//! dependencies from the tables the query reads, and fingerprints the parsed query.
//!
//! # File format
//!
//! ```sql
//! -- @description: Revenue per day from completed orders.
//! -- @group: marts
//! -- @tags: finance, daily
//! -- @owners: analytics@shop.example
//! -- @freshness: max_age=1d warn_after=12h
//! -- @automation: eager
//! -- @pool: warehouse
//! -- @retries: 3
//! -- @retry_delay: 2s
//! -- @timeout: 30s
//! -- @compression: zstd(6)
//! -- Any other comment is just a comment.
//! SELECT order_date, sum(amount) AS revenue FROM stg_orders GROUP BY order_date
//! ```
//!
//! The header is the run of `--` comment lines (and blank lines) before the query; settings are the
//! lines starting with `@`. `@description` may repeat; its lines are joined with spaces. The file
//! holds exactly one query (`SELECT`, `WITH` or `VALUES`), in DataFusion's SQL dialect.
//!
//! **Invariant:** the code version depends only on the parsed query, never on whitespace, comments,
//! letter case of keywords or the header, so reformatting a file never makes it stale.
//!
//! **Invariant:** no file overflows a stack. The parser caps nested parentheses, but an operator
//! chain (`1 + 1 + ...`) becomes a syntax tree as deep as it is long, and every walk over the tree
//! (reading its tables, printing it, cloning and planning it in DataFusion) recurses. So before
//! parsing, a flat pass over the tokens bounds the tree's depth: it counts the operators (and
//! opening brackets) on the way from the top of the query to each token, a comma ending a run,
//! and refuses a file where that passes [`MAX_DEPTH`], naming its line. A file of more than
//! [`SMALL_FILE`] tokens is parsed on a thread of its own with a [`PARSE_STACK`] stack.

use std::collections::{BTreeSet, HashSet};

use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::fingerprint::hash_hex;
use crate::model::{AssetKey, AutomationCondition, CodeVersion, FreshnessPolicy, parse_duration};
use crate::partitions::Mapping;
use crate::policy::StepSettings;

/// A SQL asset file, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlAsset {
    /// The query text as written (without the header), which DataFusion runs.
    pub query: String,
    /// Tables the query reads, as asset keys, sorted.
    pub deps: Vec<AssetKey>,
    /// Fingerprint of the parsed query.
    pub code_version: CodeVersion,
    /// Settings from the header.
    pub header: SqlHeader,
}

/// Settings from a SQL file's header; all optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SqlHeader {
    /// `@description`.
    pub description: Option<String>,
    /// `@group`.
    pub group: Option<String>,
    /// `@tags`, comma-separated.
    pub tags: BTreeSet<String>,
    /// `@owners`, comma-separated.
    pub owners: Vec<String>,
    /// `@freshness`, e.g. `max_age=1h warn_after=30m`.
    pub freshness: Option<FreshnessPolicy>,
    /// `@automation`: `eager`, `on_cron "0 6 * * *" Europe/Paris`, `freshness`, or `none`
    /// (`Some(None)`, which overrides a group or project default).
    pub automation: Option<Option<AutomationCondition>>,
    /// `@pool`, `@retries`, `@retry_delay`, `@timeout`, `@compression`.
    pub execution: StepSettings,
    /// `@partitions`: the partitions definition the asset is split by.
    pub partitions: Option<String>,
    /// `@inputs`: how its partitions map to its inputs', where not the default
    /// (`raw_events=window(-1..0), customers=all`).
    pub inputs: Vec<(AssetKey, Mapping)>,
}

/// What is wrong with a SQL file; the caller adds the file's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// A header setting is malformed or unknown.
    #[error("line {line}: {message}")]
    Header {
        /// 1-based line number in the file.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The query does not parse, or is not a single query.
    #[error("{0}")]
    Query(String),
}

/// How deep a query's expressions may go, in operators and brackets (see the module's
/// invariant). DataFusion clones and plans a tree of this depth on a 2 MiB stack with room to
/// spare; a chain of 2,400 additions overflowed one.
pub const MAX_DEPTH: usize = 1000;

/// Files of at most this many tokens are parsed on the caller's thread.
const SMALL_FILE: usize = 1000;

/// The stack of the thread that parses larger files.
const PARSE_STACK: usize = 64 << 20;

/// Parses a SQL asset file.
pub fn parse_sql_asset(text: &str) -> Result<SqlAsset, SqlError> {
    let header = parse_header(text)?;
    // One tokenization, for the depth bound and then the code version.
    let tokens = Tokenizer::new(&GenericDialect {}, text)
        .tokenize_with_location()
        .map_err(|e| SqlError::Query(format!("invalid SQL: {e}")))?;
    if check_depth(&tokens)? <= SMALL_FILE {
        return parse_query(text, tokens, header);
    }
    let text = text.to_owned();
    std::thread::Builder::new()
        .name("freshet-sql".to_owned())
        .stack_size(PARSE_STACK)
        .spawn(move || parse_query(&text, tokens, header))
        .map_err(|e| SqlError::Query(format!("cannot start the SQL parser: {e}")))?
        .join()
        .unwrap_or_else(|_| {
            Err(SqlError::Query(
                "the SQL parser failed on this file".to_owned(),
            ))
        })
}

/// Refuses a file whose expressions may nest deeper than [`MAX_DEPTH`], judged from its tokens
/// alone: the operators of each run (between commas) at each open bracket, summed from the top.
/// Returns how many tokens it has (whitespace aside).
fn check_depth(tokens: &[TokenWithSpan]) -> Result<usize, SqlError> {
    // The operators of the current run at each open bracket (or CASE), innermost last, whether
    // it is a CASE, and their sum. A CASE is a bracket whose WHEN, THEN and ELSE end runs as
    // commas do: its branches sit side by side in the tree, not inside one another.
    let mut runs: Vec<(usize, bool)> = vec![(0, false)];
    let mut depth = 0;
    let mut count = 0;
    let keyword = |token: &Token| match token {
        Token::Word(word) => Some(word.keyword),
        _ => None,
    };
    for token in tokens {
        if matches!(token.token, Token::Whitespace(_)) {
            continue;
        }
        count += 1;
        let in_case = runs.last().is_some_and(|(_, case)| *case);
        let adds = match (&token.token, keyword(&token.token)) {
            (Token::LParen | Token::LBracket | Token::LBrace, _) | (_, Some(Keyword::CASE)) => true,
            (Token::RParen | Token::RBracket | Token::RBrace, _) | (_, Some(Keyword::END))
                if runs.len() > 1 =>
            {
                depth -= runs.pop().map_or(0, |(run, _)| run);
                false
            }
            (Token::Comma | Token::SemiColon, _)
            | (_, Some(Keyword::WHEN | Keyword::THEN | Keyword::ELSE))
                if matches!(token.token, Token::Comma | Token::SemiColon) || in_case =>
            {
                if let Some((run, _)) = runs.last_mut() {
                    depth -= *run;
                    *run = 0;
                }
                false
            }
            (Token::Word(word), _) => matches!(
                word.keyword,
                Keyword::AND
                    | Keyword::OR
                    | Keyword::XOR
                    | Keyword::NOT
                    | Keyword::IS
                    | Keyword::IN
                    | Keyword::LIKE
                    | Keyword::ILIKE
                    | Keyword::SIMILAR
                    | Keyword::BETWEEN
                    | Keyword::COLLATE
                    | Keyword::AT
                    | Keyword::REGEXP
                    | Keyword::RLIKE
                    | Keyword::OVERLAPS
                    | Keyword::DIV
            ),
            (
                Token::Number(..)
                | Token::Char(_)
                | Token::SingleQuotedString(_)
                | Token::DoubleQuotedString(_)
                | Token::NationalStringLiteral(_)
                | Token::EscapedStringLiteral(_)
                | Token::HexStringLiteral(_)
                | Token::Placeholder(_)
                | Token::Period
                | Token::RParen
                | Token::RBracket
                | Token::RBrace
                | Token::Comma
                | Token::SemiColon,
                _,
            ) => false,
            // Every other symbol is an operator (or may chain like one).
            _ => true,
        };
        if adds {
            if let Some((run, _)) = runs.last_mut() {
                *run += 1;
            }
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(SqlError::Header {
                    line: usize::try_from(token.span.start.line).unwrap_or(usize::MAX),
                    message: format!(
                        "this expression nests too deep: more than {MAX_DEPTH} operators and \
                         brackets inside one another; split it (a CTE, or a column per part)"
                    ),
                });
            }
        }
        let opens_case = keyword(&token.token) == Some(Keyword::CASE);
        if opens_case || matches!(token.token, Token::LParen | Token::LBracket | Token::LBrace) {
            runs.push((0, opens_case));
        }
    }
    Ok(count)
}

/// Parses the query of a file whose header was read.
fn parse_query(
    text: &str,
    tokens: Vec<TokenWithSpan>,
    header: SqlHeader,
) -> Result<SqlAsset, SqlError> {
    let statement = parse_single_query(text)?;
    let deps = dependencies(&statement)?;
    let canonical = canonical_query(tokens)?;
    let code_version = CodeVersion::new(format!("sql:{}", hash_hex(canonical.as_bytes())));
    Ok(SqlAsset {
        query: text.to_owned(),
        deps,
        code_version,
        header,
    })
}

fn parse_header(text: &str) -> Result<SqlHeader, SqlError> {
    let mut header = SqlHeader::default();
    let mut description: Vec<&str> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let Some(comment) = trimmed.strip_prefix("--") else {
            break;
        };
        let Some(setting) = comment.trim().strip_prefix('@') else {
            continue;
        };
        let err = |message: String| SqlError::Header {
            line: line_no,
            message,
        };
        let (name, value) = setting
            .split_once(':')
            .ok_or_else(|| err(format!("expected `@name: value`, found `@{setting}`")))?;
        let (name, value) = (name.trim(), value.trim());
        let list = || {
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        match name {
            "description" => description.push(value),
            "group" => {
                if !is_identifier(value) {
                    return Err(err(format!(
                        "invalid group {value:?}: use letters, digits and underscores"
                    )));
                }
                header.group = Some(value.to_owned());
            }
            "tags" => header.tags.extend(list()),
            "owners" => header.owners.extend(list()),
            "freshness" => {
                let policy = FreshnessPolicy::parse_compact(value)
                    .map_err(|e| err(format!("invalid @freshness: {e}")))?;
                header.freshness = Some(policy);
            }
            "automation" => {
                let condition = AutomationCondition::parse(value)
                    .map_err(|e| err(format!("invalid @automation: {e}")))?;
                header.automation = Some(condition);
            }
            "pool" => {
                if !is_identifier(value) {
                    return Err(err(format!(
                        "invalid pool {value:?}: use letters, digits and underscores"
                    )));
                }
                header.execution.pool = Some(value.to_owned());
            }
            "retries" => {
                let n = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n <= 100)
                    .ok_or_else(|| {
                        err(format!(
                            "invalid @retries {value:?}: expected a whole number from 0 to 100"
                        ))
                    })?;
                header.execution.retries = Some(n);
            }
            "retry_delay" => {
                let d =
                    parse_duration(value).map_err(|e| err(format!("invalid @retry_delay: {e}")))?;
                header.execution.retry_delay = Some(d);
            }
            "timeout" => {
                let d = parse_duration(value).map_err(|e| err(format!("invalid @timeout: {e}")))?;
                header.execution.timeout = Some(d);
            }
            "compression" => {
                let c = crate::policy::parse_compression(value).map_err(err)?;
                header.execution.compression = Some(c);
            }
            "partitions" => {
                if !is_identifier(value) {
                    return Err(err(format!(
                        "invalid @partitions {value:?}: name a [partitions.NAME] of freshet.toml"
                    )));
                }
                header.partitions = Some(value.to_owned());
            }
            "inputs" => {
                for item in split_top_level(value) {
                    let (input, mapping) = item.split_once('=').ok_or_else(|| {
                        err(format!(
                            "invalid @inputs {item:?}: expected INPUT=MAPPING, e.g. raw_events=window(-1..0)"
                        ))
                    })?;
                    let input = AssetKey::parse(input.trim())
                        .map_err(|e| err(format!("invalid @inputs: {e}")))?;
                    let mapping = Mapping::parse(mapping)
                        .map_err(|e| err(format!("invalid @inputs: {e}")))?;
                    if header.inputs.iter().any(|(known, _)| *known == input) {
                        return Err(err(format!("@inputs maps {input} twice")));
                    }
                    header.inputs.push((input, mapping));
                }
            }
            other => {
                return Err(err(format!(
                    "unknown setting @{other} (expected @description, @group, @tags, @owners, \
                     @freshness, @automation, @pool, @retries, @retry_delay, @timeout, \
                     @compression, @partitions or @inputs)"
                )));
            }
        }
    }
    if !description.is_empty() {
        header.description = Some(description.join(" "));
    }
    Ok(header)
}

/// `text` split at the commas outside brackets (`a=window(0..1, upstream), b=all`), trimmed,
/// without empty parts.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

pub(crate) fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_single_query(text: &str) -> Result<DfStatement, SqlError> {
    let mut statements = DFParser::parse_sql(text).map_err(|e| SqlError::Query(one_line(&e)))?;
    let statement = match (statements.pop_front(), statements.is_empty()) {
        (None, _) => return Err(SqlError::Query("the file has no query".to_owned())),
        (Some(s), true) => s,
        (Some(_), false) => {
            return Err(SqlError::Query(
                "the file holds more than one statement; an asset is exactly one query".to_owned(),
            ));
        }
    };
    match &statement {
        DfStatement::Statement(s) if matches!(**s, Statement::Query(_)) => Ok(statement),
        _ => Err(SqlError::Query(
            "an asset is a query (SELECT, WITH or VALUES); this is another kind of statement"
                .to_owned(),
        )),
    }
}

/// The query as DataFusion reads it, printed back from its syntax tree: comments and layout
/// are gone, and unquoted words (keywords, names) are ASCII-lower-cased, as DataFusion does before
/// comparing them. Quoted names and string literals are kept as written.
fn canonical_query(mut tokens: Vec<TokenWithSpan>) -> Result<String, SqlError> {
    for token in &mut tokens {
        if let Token::Word(word) = &mut token.token
            && word.quote_style.is_none()
        {
            word.value = word.value.to_ascii_lowercase();
        }
    }
    let statements = Parser::new(&GenericDialect {})
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| SqlError::Query(format!("invalid SQL: {e}")))?;
    Ok(statements
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(";\n"))
}

/// The asset keys of the tables a query reads, excluding CTEs and table functions.
fn dependencies(statement: &DfStatement) -> Result<Vec<AssetKey>, SqlError> {
    let (tables, _ctes) =
        resolve_table_references(statement, true).map_err(|e| SqlError::Query(one_line(&e)))?;
    let table_functions: HashSet<String> =
        datafusion::functions_table::all_default_table_functions()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
    let mut deps = BTreeSet::new();
    for table in tables {
        if let TableReference::Bare { table: name } = &table
            && table_functions.contains(name.as_ref())
        {
            continue;
        }
        let segments: Vec<&str> = match &table {
            TableReference::Bare { table } => vec![table],
            TableReference::Partial { schema, table } => vec![schema, table],
            TableReference::Full {
                catalog,
                schema,
                table,
            } => vec![catalog, schema, table],
        };
        let key = AssetKey::from_segments(&segments).map_err(|_| {
            SqlError::Query(format!(
                "the query reads table {:?}, which is not a valid asset key \
                 (segments of letters, digits and underscores)",
                table.to_string()
            ))
        })?;
        deps.insert(key);
    }
    Ok(deps.into_iter().collect())
}

/// DataFusion's parser errors, cut to one line without the enum wrapping.
fn one_line(e: &DataFusionError) -> String {
    let message = match e {
        DataFusionError::SQL(inner, _) => match inner.as_ref() {
            datafusion::sql::sqlparser::parser::ParserError::ParserError(m)
            | datafusion::sql::sqlparser::parser::ParserError::TokenizerError(m) => m.clone(),
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    format!(
        "invalid SQL: {}",
        message.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn deps(sql: &str) -> String {
        match parse_sql_asset(sql) {
            Ok(a) => a
                .deps
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn infers_dependencies_from_the_parsed_query() {
        assert_eq!(deps("select * from orders"), "orders");
        assert_eq!(deps("select * from b join a using (id)"), "a b");
        assert_eq!(
            deps("select * from Orders"),
            "orders",
            "unquoted names are lower-cased"
        );
        assert_eq!(deps(r#"select * from "Orders""#), "Orders");
        assert_eq!(deps("select * from marts.daily"), "marts/daily");
        assert_eq!(
            deps("with recent as (select * from orders where id > 5) select * from recent"),
            "orders",
            "CTEs are not dependencies"
        );
        assert_eq!(
            deps("select * from a where id in (select id from b)"),
            "a b"
        );
        assert_eq!(
            deps("select * from generate_series(1, 3)"),
            "",
            "table functions are not dependencies"
        );
        assert_eq!(deps("select 1 as x"), "");
        assert_eq!(
            deps("-- from comments_are_not_tables\nselect 'from x' as s"),
            ""
        );
    }

    #[test]
    fn rejects_what_is_not_one_query() {
        assert_eq!(deps(""), "the file has no query");
        assert_eq!(
            deps("select 1; select 2"),
            "the file holds more than one statement; an asset is exactly one query"
        );
        assert_eq!(
            deps("create table t (x int)"),
            "an asset is a query (SELECT, WITH or VALUES); this is another kind of statement"
        );
        let err = deps("select * fromm orders where");
        assert!(err.starts_with("invalid SQL: "), "{err}");
        assert!(!err.contains('\n'));
        assert_eq!(
            deps(r#"select * from "bad-name""#),
            "the query reads table \"bad-name\", which is not a valid asset key (segments of letters, digits and underscores)"
        );
    }

    #[test]
    fn code_version_ignores_whitespace_comments_and_keyword_case() {
        let version = |sql: &str| parse_sql_asset(sql).unwrap().code_version;
        let base = version("select a, sum(b) as total from t group by a");
        assert_eq!(
            base,
            version("SELECT a,\n   SUM(b) AS total -- the sum\nFROM t\n/* grouped */ GROUP BY a\n")
        );
        assert_eq!(
            base,
            version(
                "-- @description: changes nothing\nselect a, sum(b) as total from t group by a"
            )
        );
        assert_eq!(
            base,
            version("SELECT A, Sum(B) AS Total FROM T GROUP BY A"),
            "unquoted names are case-insensitive"
        );
        assert_ne!(
            base,
            version(r#"select "A", sum(b) as total from t group by a"#),
            "quoted names are not"
        );
        assert_ne!(
            version("select 'a' as x"),
            version("select 'A' as x"),
            "string literals keep their case"
        );
        assert_ne!(
            base,
            version("select a, sum(b) as total from t group by a having sum(b) > 0")
        );
        assert_ne!(base, version("select a, max(b) as total from t group by a"));
        assert_ne!(
            base,
            version("select a, sum(b) as total from t2 group by a")
        );
    }

    #[test]
    fn header_settings() {
        let a = parse_sql_asset(
            "-- @description: Revenue per day\n-- @description: from orders.\n-- plain comment\n\
             -- @group: marts\n-- @tags: finance, daily\n-- @owners: a@x.io, team_b\n\
             -- @freshness: max_age=1d\nselect 1 as x\n-- @group: ignored_after_the_query",
        )
        .unwrap();
        assert_eq!(
            a.header.description.as_deref(),
            Some("Revenue per day from orders.")
        );
        assert_eq!(a.header.group.as_deref(), Some("marts"));
        assert_eq!(
            a.header.tags.iter().collect::<Vec<_>>(),
            ["daily", "finance"]
        );
        assert_eq!(a.header.owners, ["a@x.io", "team_b"]);
        assert!(a.header.freshness.is_some());
        assert_eq!(a.header.automation, None);
        let cron = parse_sql_asset("-- @automation: on_cron \"0 6 * * *\" Europe/Paris\nselect 1")
            .unwrap();
        assert_eq!(
            cron.header.automation,
            Some(Some(AutomationCondition::OnCron {
                cron: "0 6 * * *".to_owned(),
                timezone: Some("Europe/Paris".to_owned()),
            }))
        );
        let none = parse_sql_asset("-- @automation: none\nselect 1").unwrap();
        assert_eq!(none.header.automation, Some(None));
        let partitioned = parse_sql_asset(
            "-- @partitions: daily\n-- @inputs: a=window(-1..0, upstream), b = all\nselect 1",
        )
        .unwrap();
        assert_eq!(partitioned.header.partitions.as_deref(), Some("daily"));
        assert_eq!(
            partitioned.header.inputs,
            [
                (
                    AssetKey::parse("a").unwrap(),
                    Mapping::Window {
                        from: -1,
                        to: 0,
                        upstream: true
                    }
                ),
                (AssetKey::parse("b").unwrap(), Mapping::All),
            ]
        );

        let err = |sql: &str| parse_sql_asset(sql).unwrap_err().to_string();
        assert_eq!(
            err("-- @automation: sometimes\nselect 1"),
            "line 1: invalid @automation: unknown condition \"sometimes\" (expected eager, on_cron \"CRON\" [TIME_ZONE], freshness or none)"
        );
        assert_eq!(
            err("\n-- @colour: red\nselect 1"),
            "line 2: unknown setting @colour (expected @description, @group, @tags, @owners, @freshness, @automation, @pool, @retries, @retry_delay, @timeout, @compression, @partitions or @inputs)"
        );
        assert_eq!(
            err("-- @inputs: a\nselect 1"),
            "line 1: invalid @inputs \"a\": expected INPUT=MAPPING, e.g. raw_events=window(-1..0)"
        );
        assert_eq!(
            err("-- @partitions: daily hours\nselect 1"),
            "line 1: invalid @partitions \"daily hours\": name a [partitions.NAME] of freshet.toml"
        );
        assert_eq!(
            err("-- @group\nselect 1"),
            "line 1: expected `@name: value`, found `@group`"
        );
        assert_eq!(
            err("-- @group: a b\nselect 1"),
            r#"line 1: invalid group "a b": use letters, digits and underscores"#
        );
        assert_eq!(
            err("-- @freshness: max_age=soon\nselect 1"),
            r#"line 1: invalid @freshness: invalid duration "soon" (expected e.g. 30m, 1h30m, 2d)"#
        );
    }

    fn chain(terms: usize, op: &str) -> String {
        vec!["1"; terms].join(op)
    }

    #[test]
    fn an_operator_chain_too_deep_is_refused_with_its_line_and_one_just_under_parses() {
        let deep = format!(
            "-- @group: g\nSELECT 0 AS a,\n  {} AS x FROM t",
            chain(200_000, " + ")
        );
        assert_eq!(
            parse_sql_asset(&deep).unwrap_err().to_string(),
            "line 3: this expression nests too deep: more than 1000 operators and brackets \
             inside one another; split it (a CTE, or a column per part)"
        );
        // Just under the bound: parsed (on the large-stack thread, having over 1,000 tokens).
        let asset = parse_sql_asset(&format!("SELECT {} AS x FROM t", chain(1000, "+"))).unwrap();
        assert_eq!(asset.deps, ["t".parse::<AssetKey>().unwrap()]);
        assert!(parse_sql_asset(&format!("SELECT {} AS x", chain(1002, "+"))).is_err());
        // ANDs count as operators; nested brackets add up with the chains inside them.
        assert!(parse_sql_asset(&format!("SELECT 1 WHERE {}", chain(1002, " AND "))).is_err());
        let nested = format!("SELECT {}1{}", "(1 + ".repeat(501), ")".repeat(501));
        assert!(parse_sql_asset(&nested).is_err(), "501 levels of two each");
        // A CASE's branches sit side by side: 3,000 of them are not deep...
        let branches: String = (0..3000)
            .map(|i| format!(" WHEN n = {i} THEN {i}"))
            .collect();
        assert!(parse_sql_asset(&format!("SELECT CASE{branches} ELSE 0 END AS m FROM t")).is_ok());
        // ...but CASEs chained by operators are, as any operand would be.
        let cases = vec!["CASE WHEN n = 1 THEN 1 END"; 600].join(" + ");
        assert!(parse_sql_asset(&format!("SELECT {cases} AS m FROM t")).is_err());
    }

    #[test]
    fn a_long_query_of_many_short_expressions_is_not_deep() {
        // 3,000 columns, 9,000 operators in all: each column's run ends at its comma.
        let columns: Vec<String> = (0..3000)
            .map(|i| format!("a + {i} * 2 - 1 AS c{i}"))
            .collect();
        let asset = parse_sql_asset(&format!("SELECT {} FROM t", columns.join(", "))).unwrap();
        assert_eq!(asset.deps, ["t".parse::<AssetKey>().unwrap()]);
        let list: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
        assert!(
            parse_sql_asset(&format!("SELECT * FROM t WHERE a IN ({})", list.join(", "))).is_ok()
        );
    }

    /// Inputs each fuzz target tries: `FRESHET_FUZZ_CASES`, else 2,000 (tests/run.sh's bounded
    /// run; before a release, `FRESHET_FUZZ_CASES=200000 cargo test fuzz_`).
    pub(crate) fn fuzz_cases() -> u32 {
        std::env::var("FRESHET_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000)
    }

    /// Text made of SQL's pieces (and a little of anything), header lines included.
    fn sql_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("SELECT ".to_owned()),
            Just("FROM ".to_owned()),
            Just("WHERE ".to_owned()),
            Just("WITH x AS ".to_owned()),
            Just("JOIN ".to_owned()),
            Just("GROUP BY ".to_owned()),
            Just("UNION ALL ".to_owned()),
            Just("VALUES ".to_owned()),
            Just("CASE WHEN ".to_owned()),
            Just(" THEN ".to_owned()),
            Just(" END".to_owned()),
            Just(" AND ".to_owned()),
            Just(" + ".to_owned()),
            Just("(".to_owned()),
            Just(")".to_owned()),
            Just(", ".to_owned()),
            Just(";".to_owned()),
            Just("'".to_owned()),
            Just("\"".to_owned()),
            Just("*".to_owned()),
            Just(".".to_owned()),
            Just("\n".to_owned()),
            Just("-- ".to_owned()),
            Just("/* ".to_owned()),
            Just(" */".to_owned()),
            Just("-- @".to_owned()),
            "(description|group|tags|owners|freshness|automation|pool|retries|retry_delay|timeout|compression|nope): ".prop_map(|k| format!("-- @{k}")),
            "[a-z_][a-z0-9_]{0,6}",
            "[0-9]{1,4}",
            "\\PC{0,4}",
        ];
        proptest::collection::vec(piece, 0..48).prop_map(|pieces| pieces.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: fuzz_cases(),
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// Any file parses or fails in one line; a parsed one's dependencies are valid keys and
        /// its code version does not depend on the header.
        #[test]
        fn fuzz_sql_files_parse_or_fail_in_one_line(text in sql_text()) {
            match parse_sql_asset(&text) {
                Ok(asset) => {
                    proptest::prop_assert!(asset.code_version.as_str().starts_with("sql:"));
                    let again = parse_sql_asset(&format!("-- @group: fuzz\n{text}"));
                    if let Ok(again) = again {
                        proptest::prop_assert_eq!(again.code_version, asset.code_version);
                        proptest::prop_assert_eq!(again.deps, asset.deps);
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    proptest::prop_assert!(!message.contains('\n'), "{}", message);
                    proptest::prop_assert!(!message.is_empty());
                }
            }
        }
    }
}
