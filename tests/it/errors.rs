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
        &["materialize"],
        "error: asset a (sql/a.sql) depends on unknown asset missing_table",
    );
}

/// A file whose text is broken (too deep, not SQL, reading a table nothing defines) fails only
/// its own asset: `status` works and says why, other assets materialize, and materializing it
/// is refused with its one line, leaving the store as it was.
#[test]
fn a_broken_file_fails_only_its_asset() {
    let deep = format!("SELECT {} AS x", vec!["1"; 200_000].join(" + "));
    let project = TempProject::with_files(&[
        ("freshet.toml", TOML),
        ("raw.csv", CSV),
        ("sql/a.sql", "select id, amount * 2 as doubled from raw"),
        ("sql/deep.sql", &deep),
        ("sql/reads_deep.sql", "select * from deep"),
        ("sql/typo.sql", "select * from raw_typo"),
        ("sql/garbled.sql", "select amount frm raw where"),
    ]);
    let deep_error = "sql/deep.sql: line 1: this expression nests too deep: more than 1000 \
                      operators and brackets inside one another; split it (a CTE, or a column per \
                      part)";

    let out = project.ok(&["status"]);
    assert_eq!(out.stderr, "", "nothing else to say");
    let row = |key: &str| {
        out.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("{key} listed:\n{}", out.stdout))
            .to_owned()
    };
    assert!(
        row("deep").contains("its file does not load: sql/deep.sql: line 1: this expression nests too deep: more than 1000 operators …; never materialized"),
        "{}", row("deep")
    );
    assert!(
        row("typo").contains(
            "its file does not load: asset typo (sql/typo.sql) depends on unknown asset raw_typo"
        ),
        "{}",
        row("typo")
    );
    assert!(row("garbled").contains("its file does not load: sql/garbled.sql: invalid SQL"));
    assert!(!row("a").contains("does not load"), "{}", row("a"));
    assert!(row("reads_deep").contains("upstream deep has never been materialized"));

    let explained = project.ok(&["status", "deep"]).stdout;
    assert!(
        explained.contains(&format!("  its file does not load: {deep_error}\n")),
        "{explained}"
    );
    let status = project.status();
    assert_eq!(status["deep"]["load_error"], deep_error);
    assert_eq!(status["a"]["load_error"], serde_json::Value::Null);

    // Asked for, with everything or by a selection, it is refused before anything runs.
    let before = project.output_files();
    for args in [
        &["materialize"][..],
        &["materialize", "+reads_deep"],
        &["plan"],
    ] {
        let out = project.run(args);
        assert_eq!(out.code, Some(1), "{args:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("error: sql/"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(
        project
            .run(&["materialize", "+reads_deep"])
            .stderr
            .trim_end(),
        format!("error: {deep_error}")
    );
    assert_eq!(project.output_files(), before, "nothing written");
    assert_eq!(project.store_scalar("SELECT COUNT(*) FROM runs"), 0);

    // The rest works.
    project.ok(&["materialize", "a"]);
    assert_eq!(project.status()["a"]["status"], "fresh");
    assert!(project.ok(&["preview", "a"]).stdout.contains("| 5.0 "));
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
        "error: sql/a.sql: line 1: unknown setting @colour (expected @description, @group, @tags, @owners, @freshness, @automation, @pool, @retries, @retry_delay, @timeout, @compression, @partitions or @inputs)",
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

/// A hidden `.sql` file is not an asset, and every command says so instead of skipping it.
#[test]
fn a_hidden_sql_file_is_reported() {
    let project = TempProject::with_files(&[
        ("freshet.toml", TOML),
        ("raw.csv", CSV),
        ("sql/a.sql", "select * from raw"),
        ("sql/..sql", "select 1 as x"),
        ("sql/marts/.draft.sql", "select 2 as x"),
        (
            "sql/.git/config.sql",
            "not read, not said: in a hidden folder",
        ),
    ]);
    let out = project.ok(&["status"]);
    assert_eq!(
        out.stderr,
        "warning: sql/..sql: not read: its name starts with '.' (hidden); rename it to make it an asset\n\
         warning: sql/marts/.draft.sql: not read: its name starts with '.' (hidden); rename it to make it an asset\n"
    );
    let keys: Vec<String> = project.status().into_keys().collect();
    assert_eq!(keys, ["a", "raw"]);
}

/// `freshet.toml` nested past the TOML parser's bound is one line, not a stack overflow.
#[test]
fn a_deeply_nested_toml_value() {
    let deep = format!(
        "[project]\nname = \"t\"\nx = {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    check(
        &[("freshet.toml", &deep)],
        &["status"],
        "error: DIR/freshet.toml: line 3, column 85: cannot recurse further; max recursion depth met",
    );
}

/// A folder source reads only its format's files (not a script beside them), and a file that
/// does not parse is named by its path as given, leading `/` included.
#[test]
fn a_folder_source_reads_only_its_format_and_names_a_bad_file_as_given() {
    for folder in ["data", "data/"] {
        let project = TempProject::with_files(&[
            (
                "freshet.toml",
                &format!(
                    "[project]\nname = \"t\"\n\n[sources.raw]\npath = \"{folder}\"\nformat = \"csv\"\n"
                ),
            ),
            ("data/a.csv", "id,amount\n1,2.5\n"),
            ("data/b.csv", "id,amount\n2,3.5\n"),
            ("data/load.sh", "#!/bin/sh\necho not data\n"),
            ("data/README", "not data either\n"),
            ("sql/total.sql", "SELECT SUM(amount) AS total FROM raw"),
        ]);
        project.ok(&["materialize"]);
        let preview = project.ok(&["preview", "total"]).stdout;
        assert!(preview.contains("| 6.0 "), "{folder}: {preview}");

        project.write("data/c.csv", "id,amount\n3,4.5,extra\n");
        let out = project.run(&["materialize"]);
        assert_eq!(out.code, Some(1), "{folder}: {}", out.stderr);
        let file = project.path().join("data/c.csv").display().to_string();
        assert!(file.starts_with('/'));
        assert!(
            out.stderr.contains(&format!(" {file}")),
            "{folder}: the path as given: {}",
            out.stderr
        );
    }
}
