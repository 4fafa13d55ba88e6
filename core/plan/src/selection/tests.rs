use std::collections::HashMap;

use proptest::prelude::*;

use super::eval::edit_distance;
use super::expr::{Attr, Depth, Expr, Glob};
use super::parse::MAX_NESTING;
use super::*;
use crate::model::{AssetDef, AssetKind, FreshnessState, Origin, Status};
use crate::partitions::PartitionStatus;

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
        Expr::Attr(Attr::Partitions(s)) => format!("partitions:{}", s.as_str()),
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
        "unknown attribute colour: (expected key, tag, group, kind, owner, status, freshness or \
         partitions)",
    );
    check_error(":red", 1, "missing attribute name before ':'");
    check_error(
        "status:old",
        8,
        "unknown status \"old\" (expected missing, stale or fresh)",
    );
    check_error(
        "partitions:old",
        12,
        "unknown partition status \"old\" (expected failed, stale, missing, blocked or fresh)",
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
    /// `stg_orders` is partitioned, with fresh and stale partitions.
    fn has_partitions(&self, key: &AssetKey, status: PartitionStatus) -> bool {
        key.as_str() == "stg_orders"
            && matches!(status, PartitionStatus::Fresh | PartitionStatus::Stale)
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
    check_select("partitions:stale", "stg_orders");
    check_select("partitions:FRESH", "stg_orders");
    check_select("partitions:failed", "");
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
            let deps: Vec<String> = (i > 0).then(|| format!("a{}", i - 1)).into_iter().collect();
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
    let names = |s: &str| -> BTreeSet<String> { s.split_whitespace().map(str::to_owned).collect() };
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

/// Inputs each fuzz target tries: `FRESHET_FUZZ_CASES`, else 2,000.
fn fuzz_cases() -> u32 {
    std::env::var("FRESHET_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn selection_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("+".to_owned()),
        Just("2+".to_owned()),
        Just("+1".to_owned()),
        Just("*".to_owned()),
        Just(" and ".to_owned()),
        Just(" or ".to_owned()),
        Just("not ".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just(",".to_owned()),
        Just("\"".to_owned()),
        Just("/".to_owned()),
        Just(" ".to_owned()),
        "(tag|group|kind|owner|status|freshness|key|nope):",
        "(raw|clean|daily|fresh|stale|missing|fail|sql|source)",
        "[a-z_]{1,6}",
        "[0-9]{1,3}",
        "\\PC{0,3}",
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: fuzz_cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any selection parses and selects, or fails in one line naming a column inside it.
    #[test]
    fn fuzz_selections_select_or_fail_in_one_line(text in selection_text()) {
        let graph = graph();
        let checked = Selection::parse(&text).and_then(|s| s.select_by_definition(&graph));
        match checked {
            Ok(keys) => prop_assert!(keys.iter().all(|k| graph.get(k).is_some())),
            Err(e) => {
                let message = e.to_string();
                prop_assert!(!message.contains('\n'), "{}", message);
                prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{:?}", e);
            }
        }
    }
}
