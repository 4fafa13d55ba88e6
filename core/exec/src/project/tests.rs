//! Loading projects: what loads, what each invalid file says, and that loading writes nothing.

use super::config::redact_urls;
use super::*;
use crate::partitions::Mapping;

fn load(files: &[(&str, &str)]) -> Result<Project, String> {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let result = Project::load(dir.path(), &Catalogues::new(), &Overrides::default());
    assert!(
        !dir.path().join(".freshet").exists(),
        "loading must not write"
    );
    result.map_err(|e| {
        e.to_string()
            .replace(&dir.path().display().to_string(), "DIR")
    })
}

const TOML: &str = "[project]\nname = \"t\"\n[sources.raw]\npath = \"raw.csv\"\n";

#[test]
fn loads_sources_and_sql_with_groups_from_folders() {
    let p = load(&[
        ("freshet.toml", TOML),
        ("sql/clean.sql", "select * from raw"),
        (
            "sql/marts/total.sql",
            "-- @tags: x\nselect count(*) as n from clean",
        ),
    ])
    .unwrap();
    let keys: Vec<_> = p
        .graph()
        .iter()
        .map(|d| format!("{}:{}:{}", d.key, d.kind, d.group))
        .collect();
    assert_eq!(
        keys,
        ["raw:source:default", "clean:sql:default", "total:sql:marts"]
    );
    assert!(p.storage_url().as_str().ends_with("/.freshet/data/"));
}

#[test]
fn automation_is_the_asset_s_own_else_its_group_s_else_the_project_s() {
    let toml = "[project]\nname = \"t\"\n[automation]\ndefault = \"eager\"\n\
                [groups.marts]\nautomation = \"freshness\"\nfreshness = { max_age = \"1h\" }\n";
    let p = load(&[
        ("freshet.toml", toml),
        ("sql/a.sql", "select 1 as x"),
        ("sql/b.sql", "-- @automation: none\nselect 1 as x"),
        ("sql/marts/c.sql", "select 1 as x"),
        (
            "sql/marts/d.sql",
            "-- @automation: on_cron \"0 6 * * *\"\nselect 1 as x",
        ),
    ])
    .unwrap();
    let condition = |k: &str| {
        let def = p.graph().get(&k.parse().unwrap()).unwrap();
        def.automation
            .as_ref()
            .map_or_else(|| "none".to_owned(), |c| c.as_text())
    };
    assert_eq!(
        [
            condition("a"),
            condition("b"),
            condition("c"),
            condition("d")
        ],
        ["eager", "none", "freshness", "on_cron \"0 6 * * *\""]
    );
    let no_policy = "[project]\nname = \"t\"\n";
    assert_eq!(
        load(&[
            ("freshet.toml", no_policy),
            ("sql/a.sql", "-- @automation: freshness\nselect 1 as x"),
        ])
        .unwrap_err(),
        "DIR/freshet.toml: asset a (sql/a.sql): automation freshness needs a freshness policy to keep"
    );
    let bad = "[project]\nname = \"t\"\n[automation]\ndefault = \"often\"\n";
    assert_eq!(
        load(&[("freshet.toml", bad)]).unwrap_err(),
        "DIR/freshet.toml: [automation] default: invalid automation: unknown condition \"often\" (expected eager, on_cron \"CRON\" [TIME_ZONE], freshness or none)"
    );
}

#[test]
fn config_errors_never_show_a_webhook_url_s_path() {
    let toml = "[project]\nname = \"t\"\n[alerts]\nwebhooks = \"https://hooks.example/T000/B000/secret\"\n";
    let error = load(&[("freshet.toml", toml)]).unwrap_err();
    assert!(
        !error.contains("secret") && !error.contains("T000"),
        "{error}"
    );
    assert_eq!(
        redact_urls("a \"https://h.example/x/y\" and http://h2:80/p q"),
        "a \"https://h.example/***\" and http://h2:80/*** q"
    );
}

#[test]
fn max_runs_defaults_to_one_and_must_be_positive() {
    let p = load(&[("freshet.toml", "[project]\nname = \"t\"\n")]).unwrap();
    assert_eq!(p.execution().max_runs, 1);
    let two = "[project]\nname = \"t\"\n[execution]\nmax_runs = 2\n";
    assert_eq!(
        load(&[("freshet.toml", two)]).unwrap().execution().max_runs,
        2
    );
    let zero = "[project]\nname = \"t\"\n[execution]\nmax_runs = 0\n";
    assert_eq!(
        load(&[("freshet.toml", zero)]).unwrap_err(),
        "DIR/freshet.toml: execution.max_runs must be at least 1"
    );
}

#[test]
fn group_freshness_is_the_default_for_its_assets() {
    let toml = "[project]\nname = \"t\"\n[groups.marts]\nfreshness = { max_age = \"2h\" }\n";
    let p = load(&[
        ("freshet.toml", toml),
        ("sql/marts/a.sql", "select 1 as x"),
        (
            "sql/marts/b.sql",
            "-- @freshness: max_age=1d\nselect 1 as x",
        ),
        ("sql/c.sql", "select 1 as x"),
    ])
    .unwrap();
    let policy = |k: &str| {
        let def = p.graph().get(&k.parse().unwrap()).unwrap();
        def.freshness
            .as_ref()
            .and_then(|f| f.max_age)
            .map(|d| d.as_secs())
    };
    assert_eq!(
        (policy("a"), policy("b"), policy("c")),
        (Some(7200), Some(86_400), None)
    );
    let bad = "[project]\nname = \"t\"\n[groups.marts]\nfreshness = { cron = \"0 6 * * *\", timezone = \"Mars/Base\" }\n";
    assert_eq!(
        load(&[("freshet.toml", bad)]).unwrap_err(),
        "DIR/freshet.toml: group marts: invalid freshness: unknown time zone \"Mars/Base\" (expected an IANA name such as Europe/Paris)"
    );
}

#[test]
fn invalid_projects_fail_with_one_line_naming_the_file() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[],
            "DIR/freshet.toml: not found: a project is a folder with a freshet.toml (create one with `freshet init DIR`)",
        ),
        (
            &[("freshet.toml", "[project\nname = 1")],
            "DIR/freshet.toml: line 1, column 9: unclosed table, expected `]`",
        ),
        (
            &[("freshet.toml", "[project]\nname = \"t\"\ncolour = 1\n")],
            "DIR/freshet.toml: line 3, column 1: unknown field `colour`, expected one of `name`, `sql_dir`, `catalogues`, `storage`, `database`",
        ),
        (
            &[(
                "freshet.toml",
                "[project]\nname = \"t\"\ncatalogues = [\"demo\"]\n",
            )],
            "DIR/freshet.toml: unknown catalogue \"demo\" (this binary has: none)",
        ),
        (
            &[(
                "freshet.toml",
                "[project]\nname = \"t\"\n[sources.raw]\npath = \"raw.txt\"\n",
            )],
            "DIR/freshet.toml: source raw: cannot tell the format of \"raw.txt\"; set format = \"csv\", \"parquet\" or \"json\"",
        ),
        (
            &[(
                "freshet.toml",
                "[project]\nname = \"t\"\n[sources.\"raw-x\"]\npath = \"raw.csv\"\n",
            )],
            "DIR/freshet.toml: source invalid asset key \"raw-x\": segments may contain only ASCII letters, digits and underscores",
        ),
        (
            &[("freshet.toml", TOML), ("sql/bad-name.sql", "select 1")],
            "sql/bad-name.sql: invalid asset key \"bad-name\": segments may contain only ASCII letters, digits and underscores (the file name is the asset key)",
        ),
        (
            &[("freshet.toml", TOML), ("sql/raw.sql", "select 1")],
            "duplicate asset key raw: defined in freshet.toml and in sql/raw.sql",
        ),
        (
            &[
                ("freshet.toml", TOML),
                ("sql/a.sql", "select * from b"),
                ("sql/b.sql", "select * from a"),
            ],
            "dependency cycle: a -> b -> a (each asset depends on the next)",
        ),
        (
            &[(
                "freshet.toml",
                "[project]\nname = \"t\"\nstorage = \"ftp://host/x\"\n",
            )],
            "DIR/freshet.toml: storage ftp://: not an object store Freshet can write to (use a folder, file://, s3://, gs://, az:// or abfss://)",
        ),
    ];
    for (files, expect) in cases {
        let got = load(files).unwrap_err();
        assert_eq!(&got, expect);
    }
}

/// A SQL file whose text is wrong breaks only its asset: the project loads, the asset keeps
/// its key (so its readers load) without dependencies, and says why.
#[test]
fn a_broken_sql_file_breaks_only_its_asset() {
    let cases = [
        ("select * frm raw", "sql/a.sql: invalid SQL: "),
        (
            "select * from nowhere",
            "asset a (sql/a.sql) depends on unknown asset nowhere",
        ),
        ("-- @pool: nope\nselect 1 as x", "sql/a.sql: "),
        (
            "-- @colour: blue\nselect 1 as x",
            "sql/a.sql: line 1: unknown setting @colour",
        ),
    ];
    for (text, expect) in cases {
        let project = load(&[
            ("freshet.toml", TOML),
            ("sql/a.sql", text),
            ("sql/b.sql", "select * from a"),
            ("sql/c.sql", "select * from raw"),
        ])
        .unwrap();
        let key = |k: &str| AssetKey::parse(k).unwrap();
        let error = project.load_error(&key("a")).unwrap();
        assert!(error.starts_with(expect), "{text}: {error}");
        assert!(project.graph().get(&key("a")).unwrap().deps.is_empty());
        assert_eq!(project.graph().get(&key("b")).unwrap().deps, [key("a")]);
        assert_eq!(project.load_error(&key("c")), None);
        assert_eq!(
            project.first_broken([&key("c"), &key("b"), &key("a")]),
            Some((&key("a"), error))
        );
    }
}

const PARTITIONED: &str = "[project]\nname = \"t\"\n\
    [sources.raw]\npath = \"raw.csv\"\n\
    [partitions.hourly]\nevery = \"hour\"\nstart = \"2024-01-01\"\n\
    [partitions.daily]\nevery = \"day\"\nstart = \"2024-01-01\"\ntimezone = \"Europe/Paris\"\n\
    [partitions.region]\nstatic = [\"eu\", \"us\"]\n";

#[test]
fn partitioned_assets_name_their_definition_and_map_their_inputs() {
    let project = load(&[
        ("freshet.toml", PARTITIONED),
        (
            "sql/events.sql",
            "-- @partitions: hourly\nselect * from raw",
        ),
        (
            "sql/daily.sql",
            "-- @partitions: daily\n-- @inputs: events=window(-1..0, upstream), raw=all\n\
             select * from events, raw",
        ),
        (
            "sql/totals.sql",
            "-- @partitions: daily\nselect * from daily",
        ),
        ("sql/whole.sql", "select * from daily"),
    ])
    .unwrap();
    let key = |k: &str| AssetKey::parse(k).unwrap();
    assert_eq!(
        project.partitions().keys().collect::<Vec<_>>(),
        ["daily", "hourly", "region"]
    );
    assert_eq!(project.partitions_of(&key("daily")).unwrap().0, "daily");
    assert!(project.partitions_of(&key("whole")).is_none());
    assert_eq!(
        project.mapping(&key("daily"), &key("events")),
        Mapping::Window {
            from: -1,
            to: 0,
            upstream: true
        }
    );
    // Defaults: identity within a definition, windows between two time definitions, every
    // partition to or from a table that is not partitioned.
    assert_eq!(
        project.mapping(&key("totals"), &key("daily")),
        Mapping::Identity
    );
    assert_eq!(project.mapping(&key("events"), &key("raw")), Mapping::All);
    assert_eq!(project.mapping(&key("whole"), &key("daily")), Mapping::All);
    let graph_events = project.graph().get(&key("events")).unwrap();
    assert_eq!(graph_events.partitions.as_deref(), Some("hourly"));
}

#[test]
fn a_wrong_partitioning_breaks_only_its_asset_or_refuses_the_project() {
    let cases = [
        (
            "-- @partitions: weekly\nselect * from raw",
            "sql/a.sql: unknown partitions \"weekly\" (freshet.toml defines daily, hourly, region)",
        ),
        (
            "-- @partitions: daily\n-- @inputs: events=all\nselect * from raw",
            "sql/a.sql: @inputs maps events, which the query does not read",
        ),
        (
            "-- @inputs: raw=all\nselect * from raw",
            "sql/a.sql: @inputs maps raw, but the asset is not partitioned (add @partitions)",
        ),
        (
            "-- @partitions: daily\n-- @inputs: raw=latest\nselect * from raw",
            "sql/a.sql: raw is not partitioned: only `all` maps to it",
        ),
        (
            "-- @partitions: daily\n-- @inputs: b=identity\nselect * from b",
            "sql/a.sql: b is partitioned by region, not daily: identity and previous map partitions of one definition",
        ),
        (
            "-- @partitions: daily\n-- @inputs: b=window(0..0)\nselect * from b",
            "sql/a.sql: window() maps time windows to time windows; b is partitioned by region and a by daily",
        ),
        (
            "-- @partitions: daily\n-- @inputs: raw=sideways\nselect * from raw",
            "sql/a.sql: line 2: invalid @inputs: unknown mapping \"sideways\"",
        ),
        (
            "-- @partitions: daily\n-- @inputs: raw=all, raw=latest\nselect * from raw",
            "sql/a.sql: line 2: @inputs maps raw twice",
        ),
    ];
    for (text, expect) in cases {
        let project = load(&[
            ("freshet.toml", PARTITIONED),
            ("sql/a.sql", text),
            ("sql/b.sql", "-- @partitions: region\nselect * from raw"),
            ("sql/c.sql", "select * from a"),
        ])
        .unwrap();
        let key = |k: &str| AssetKey::parse(k).unwrap();
        let error = project
            .load_error(&key("a"))
            .unwrap_or_else(|| panic!("{text}: loads"));
        assert!(error.starts_with(expect), "{text}: {error}");
        assert!(project.partitions_of(&key("a")).is_none());
        assert_eq!(project.load_error(&key("b")), None);
    }
    // A definition that does not compile refuses the project, in one line naming it.
    let error = load(&[(
        "freshet.toml",
        "[project]\nname = \"t\"\n[partitions.daily]\nevery = \"fortnight\"\nstart = \"2024-01-01\"\n",
    )])
    .unwrap_err();
    assert!(
        error.ends_with(
            "partitions.daily: every = \"fortnight\": expected \"hour\", \"day\", \"week\" or \"month\""
        ),
        "{error}"
    );
    assert!(!error.contains('\n'), "{error}");
    let error = load(&[(
        "freshet.toml",
        "[project]\nname = \"t\"\n[partitions.daily]\nevery = \"day\"\nstart = \"2024-01-01\"\nlag = \"soon\"\n",
    )])
    .unwrap_err();
    assert!(error.contains("partitions.daily: "), "{error}");
}

fn toml_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let value = prop_oneof![
        Just("\"t\"".to_owned()),
        Just("\"raw.csv\"".to_owned()),
        Just("\"1h\"".to_owned()),
        Just("\"soon\"".to_owned()),
        Just("\"0 6 * * *\"".to_owned()),
        Just("[\"a\", \"b\"]".to_owned()),
        Just("{ x = 1 }".to_owned()),
        Just("true".to_owned()),
        "-?[0-9]{1,12}",
        "\"\\PC{0,6}\"",
    ];
    let key = prop_oneof![
        "(name|sql_dir|catalogues|storage|database|path|format|observe_interval|cron|selection|stale_only|keep|run_logs|concurrency|max_runs|memory_limit|heartbeat_timeout|compression|default|webhooks|nope)",
        "[a-z_]{1,6}",
    ];
    let line = prop_oneof![
        "\\[(project|sources\\.raw|sources\\.x y|execution|pools|gc|automation|schedules\\.nightly|alerts|groups\\.marts|nope)\\]",
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        "\\PC{0,8}",
    ];
    proptest::collection::vec(line, 0..12)
        .prop_map(|lines| format!("[project]\nname = \"t\"\n{}", lines.join("\n")))
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: crate::sql::tests::fuzz_cases() / 4,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    /// Any freshet.toml loads or fails in one line naming the file, and loading writes
    /// nothing (the helper checks it).
    #[test]
    fn fuzz_project_files_load_or_fail_in_one_line(toml in toml_text()) {
        match load(&[("freshet.toml", &toml), ("raw.csv", "n\n1\n")]) {
            Ok(_) => {}
            Err(message) => {
                proptest::prop_assert!(!message.contains('\n'), "{}", message);
                proptest::prop_assert!(message.starts_with("DIR/freshet.toml: "), "{}", message);
            }
        }
    }
}
