//! Bad projects fail with one clear line naming the culprit, a non-zero exit, no panic, and
//! nothing written.

use crate::support::TempProject;

const TOML: &str = "[project]\nname = \"t\"\n\n[sources.raw]\npath = \"raw.csv\"\n";
const CSV: &str = "id,amount\n1,2.5\n";

fn check(files: &[(&str, &str)], args: &[&str], expect: &str) {
    let project = TempProject::with_files(files);
    let out = project.run(args);
    assert!(!out.success, "{args:?} should fail");
    assert_eq!(out.code, Some(1));
    let stderr = out
        .stderr
        .replace(&project.path().display().to_string(), "DIR");
    assert_eq!(stderr.lines().count(), 1, "one line:\n{stderr}");
    assert_eq!(stderr.trim_end(), expect);
    assert!(
        !project.path().join(".freshet").exists(),
        "nothing may be written"
    );
}

#[test]
fn cycle() {
    check(
        &[
            ("freshet.toml", TOML),
            ("raw.csv", CSV),
            ("sql/a.sql", "select * from c"),
            ("sql/b.sql", "select * from a"),
            ("sql/c.sql", "select * from b"),
        ],
        &["materialize"],
        "error: dependency cycle: a -> c -> b -> a (each asset depends on the next)",
    );
}

#[test]
fn unknown_dependency() {
    check(
        &[
            ("freshet.toml", TOML),
            ("raw.csv", CSV),
            (
                "sql/a.sql",
                "select * from raw join missing_table using (id)",
            ),
        ],
        &["status"],
        "error: asset a (sql/a.sql) depends on unknown asset missing_table",
    );
}

#[test]
fn duplicate_key() {
    check(
        &[
            ("freshet.toml", TOML),
            ("raw.csv", CSV),
            ("sql/raw.sql", "select 1 as x"),
        ],
        &["materialize"],
        "error: duplicate asset key raw: defined in freshet.toml and in sql/raw.sql",
    );
    check(
        &[
            ("freshet.toml", TOML),
            ("raw.csv", CSV),
            ("sql/a/x.sql", "select 1 as x"),
            ("sql/b/x.sql", "select 2 as x"),
        ],
        &["materialize"],
        "error: duplicate asset key x: defined in sql/a/x.sql and in sql/b/x.sql",
    );
}

#[test]
fn invalid_key() {
    check(
        &[
            ("freshet.toml", TOML),
            ("raw.csv", CSV),
            ("sql/daily-revenue.sql", "select 1 as x"),
        ],
        &["materialize"],
        "error: sql/daily-revenue.sql: invalid asset key \"daily-revenue\": segments may contain only ASCII letters, digits and underscores (the file name is the asset key)",
    );
    check(
        &[
            (
                "freshet.toml",
                "[project]\nname = \"t\"\n[sources.\"raw orders\"]\npath = \"raw.csv\"\n",
            ),
            ("raw.csv", CSV),
        ],
        &["status"],
        "error: DIR/freshet.toml: source invalid asset key \"raw orders\": segments may contain only ASCII letters, digits and underscores",
    );
}

#[test]
fn malformed_sql() {
    let project = TempProject::with_files(&[
        ("freshet.toml", TOML),
        ("raw.csv", CSV),
        ("sql/a.sql", "select amount frm raw where"),
    ]);
    let out = project.run(&["materialize"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("error: sql/a.sql: invalid SQL: "),
        "{}",
        out.stderr
    );
    assert!(!project.path().join(".freshet").exists());
    check(
        &[
            ("freshet.toml", TOML),
            ("raw.csv", CSV),
            ("sql/a.sql", "delete from raw"),
        ],
        &["materialize"],
        "error: sql/a.sql: an asset is a query (SELECT, WITH or VALUES); this is another kind of statement",
    );
    check(
        &[
            ("freshet.toml", TOML),
            ("raw.csv", CSV),
            ("sql/a.sql", "-- @colour: blue\nselect 1 as x"),
        ],
        &["materialize"],
        "error: sql/a.sql: line 1: unknown setting @colour (expected @description, @group, @tags, @owners, @freshness, @automation, @pool, @retries, @retry_delay, @timeout or @compression)",
    );
}

#[test]
fn malformed_toml() {
    check(
        &[(
            "freshet.toml",
            "[project]\nname = \"t\"\n[sources.raw]\npath = \"raw.csv\nformat = \"csv\"\n",
        )],
        &["materialize"],
        "error: DIR/freshet.toml: line 4, column 16: invalid basic string, expected `\"`",
    );
    check(
        &[("freshet.toml", "[project]\nname = \"t\"\nstorgae = \"x\"\n")],
        &["status"],
        "error: DIR/freshet.toml: line 3, column 1: unknown field `storgae`, expected one of `name`, `sql_dir`, `catalogues`, `storage`, `database`",
    );
    check(
        &[],
        &["status"],
        "error: DIR/freshet.toml: not found: a project is a folder with a freshet.toml (create one with `freshet init DIR`)",
    );
}

#[test]
fn unknown_asset_and_missing_source_files() {
    check(
        &[("freshet.toml", TOML), ("raw.csv", CSV)],
        &["materialize", "nope"],
        "error: invalid selection \"nope\": column 1: unknown asset \"nope\"",
    );
    check(
        &[("freshet.toml", TOML), ("raw.csv", CSV)],
        &["materialize", "raw"],
        "error: raw is a source: sources are observed (freshet observe), not materialized",
    );
    check(
        &[
            ("freshet.toml", TOML),
            ("raw.csv", CSV),
            ("sql/a.sql", "select * from raw"),
        ],
        &["observe", "a"],
        "error: a is not a source: only sources are observed",
    );
    check(
        &[("freshet.toml", TOML), ("raw.csv", CSV)],
        &["preview", "bad key"],
        "error: unknown asset \"bad key\"",
    );
    let project =
        TempProject::with_files(&[("freshet.toml", TOML), ("sql/a.sql", "select * from raw")]);
    let out = project.run(&["materialize"]);
    assert_eq!(out.code, Some(1));
    let stderr = out
        .stderr
        .replace(&project.path().display().to_string(), "DIR");
    assert_eq!(
        stderr.trim_end(),
        "error: source raw: no files match DIR/raw.csv"
    );
}

#[test]
fn unreachable_database() {
    let project = TempProject::with_files(&[("freshet.toml", TOML), ("raw.csv", CSV)]);
    let out = project.run(&["--database", "/proc/no/such/dir/freshet.db", "status"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(
            "error: cannot open metadata database sqlite:///proc/no/such/dir/freshet.db: "
        ),
        "{}",
        out.stderr
    );
}

/// An operator chain of 200,000 terms (a 1 MB file) is one line naming the file and its line,
/// not a stack overflow; one of 999 terms, within the bound, materializes (DataFusion plans it on
/// the runtime's 32 MiB thread stacks).
#[test]
fn an_operator_chain_too_deep_for_any_stack() {
    let chain = |terms: usize| vec!["1"; terms].join(" + ");
    let deep = format!("SELECT {} AS x", chain(200_000));
    check(
        &[
            ("freshet.toml", "[project]\nname = \"t\"\n"),
            ("sql/deep.sql", &deep),
        ],
        &["materialize"],
        "error: sql/deep.sql: line 1: this expression nests too deep: more than 1000 \
         operators and brackets inside one another; split it (a CTE, or a column per part)",
    );
    let project = TempProject::with_files(&[
        ("freshet.toml", "[project]\nname = \"t\"\n"),
        ("sql/long.sql", &format!("SELECT {} AS x", chain(999))),
    ]);
    project.ok(&["materialize"]);
    assert!(project.ok(&["preview", "long"]).stdout.contains("| 999 |"));
}

/// A newline in a file name is shown escaped, so the error stays one line.
#[test]
fn a_file_name_with_a_newline() {
    check(
        &[
            ("freshet.toml", "[project]\nname = \"t\"\n"),
            ("sql/we\nird.sql", "SELECT 1 AS n"),
        ],
        &["status"],
        "error: sql/we\\nird.sql: invalid asset key \"we\\nird\": segments may contain only ASCII \
         letters, digits and underscores (the file name is the asset key)",
    );
}

/// A long selection is shown cut around the column that is wrong, not echoed whole.
#[test]
fn a_long_bad_selection() {
    let selection = format!("{} and (", "x".repeat(20_000));
    check(
        &[("freshet.toml", TOML), ("raw.csv", CSV)],
        &["status", &selection],
        &format!(
            "error: invalid selection …\"{} and (\" (20006 characters): column 20007: unexpected \
             end of selection after '('",
            "x".repeat(54)
        ),
    );
}
