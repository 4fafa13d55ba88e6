//! Running the `freshet` binary on temporary projects.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::Value;

/// A project in a temporary folder, removed when dropped.
pub(crate) struct TempProject {
    dir: tempfile::TempDir,
    /// Its metadata database when not the default SQLite file in the project (see [`database`]).
    database: Option<String>,
}

/// What a command printed and how it exited.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) success: bool,
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl TempProject {
    /// An empty folder.
    pub(crate) fn empty() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            database: database(),
        }
    }

    /// A copy of the demo project (without any state of earlier runs).
    pub(crate) fn demo() -> Self {
        let project = Self::empty();
        let src = Path::new(env!("CARGO_MANIFEST_DIR"));
        for entry in ["freshet.toml", "sql", "data"] {
            copy_tree(&src.join(entry), &project.path().join(entry));
        }
        project
    }

    /// The demo, materialized, then with `daily_revenue`'s logic edited so it is stale by code:
    /// what the web view and API tests start from.
    pub(crate) fn demo_with_stale_revenue() -> Self {
        let project = Self::demo();
        project.ok(&["materialize"]);
        edit(
            &project,
            "sql/marts/daily_revenue.sql",
            "count(*) AS orders",
            "count(order_id) AS orders",
        );
        project
    }

    /// A project made of `files` (path, text).
    pub(crate) fn with_files(files: &[(&str, &str)]) -> Self {
        let project = Self::empty();
        for (path, text) in files {
            project.write(path, text);
        }
        project
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn write(&self, path: &str, text: &str) {
        let path = self.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    pub(crate) fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path().join(path)).expect("read")
    }

    /// Runs `freshet --project <this> ARGS`.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.run_with_env(args, &[])
    }

    /// Runs `freshet --project <this> ARGS` with extra environment variables.
    pub(crate) fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut full = vec!["--project", self.path().to_str().expect("utf-8 path")];
        full.extend_from_slice(args);
        let mut env = env.to_vec();
        if let Some(url) = &self.database {
            env.insert(0, ("FRESHET_DATABASE", url));
        }
        freshet_with_env(&full, &env)
    }

    /// `freshet --project <this>`, with the project's database, for a test to add to and start.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_freshet"));
        command
            .args(["--project", self.path().to_str().expect("utf-8 path")])
            .env_remove("FRESHET_PROJECT")
            .env_remove("FRESHET_STORAGE")
            .env_remove("FRESHET_DATABASE");
        if let Some(url) = &self.database {
            command.env("FRESHET_DATABASE", url);
        }
        command
    }

    /// What a test that loads the project in process passes to `Project::load`.
    pub(crate) fn overrides(&self) -> freshet_core::project::Overrides {
        freshet_core::project::Overrides {
            database: self.database.clone(),
            ..Default::default()
        }
    }

    /// The first column of the first row `sql` returns, read from the project's store directly.
    pub(crate) fn store_scalar(&self, sql: &'static str) -> i64 {
        self.on_store(sql, true)
    }

    /// Runs `sql` on the project's store directly (a test's own connection, beside Freshet's).
    pub(crate) fn store_execute(&self, sql: &'static str) {
        self.on_store(sql, false);
    }

    fn on_store(&self, sql: &'static str, scalar: bool) -> i64 {
        let url = freshet_core::Project::load(
            self.path(),
            &freshet_core::Catalogues::new(),
            &self.overrides(),
        )
        .expect("the project loads")
        .database_url()
        .to_owned();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async move {
                    use sqlx::Connection;
                    sqlx::any::install_default_drivers();
                    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
                    if scalar {
                        sqlx::query_scalar(sql)
                            .fetch_one(&mut conn)
                            .await
                            .expect(sql)
                    } else {
                        sqlx::query(sql).execute(&mut conn).await.expect(sql);
                        0
                    }
                })
        })
        .join()
        .expect("read the store")
    }

    /// The database every command of this project uses, when it is not the project's own
    /// SQLite file.
    pub(crate) fn database_env(&self) -> Option<(&'static str, &str)> {
        self.database
            .as_deref()
            .map(|url| ("FRESHET_DATABASE", url))
    }

    /// Runs a command that must succeed.
    pub(crate) fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.success,
            "freshet {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out
    }

    /// `status --json`, as a map from key to its object.
    pub(crate) fn status(&self) -> std::collections::BTreeMap<String, Value> {
        let out = self.ok(&["status", "--json"]);
        let list: Vec<Value> = serde_json::from_str(&out.stdout).expect("status --json is JSON");
        list.into_iter()
            .map(|v| (v["key"].as_str().expect("key").to_owned(), v))
            .collect()
    }

    /// `key: status [category dependency]...` lines for every asset, in the order `status` prints.
    pub(crate) fn status_lines(&self) -> String {
        let out = self.ok(&["status", "--json"]);
        let list: Vec<Value> = serde_json::from_str(&out.stdout).expect("status --json is JSON");
        list.iter()
            .map(|v| {
                let mut line = format!(
                    "{}: {}",
                    v["key"].as_str().unwrap_or("?"),
                    v["status"].as_str().unwrap_or("?")
                );
                for c in v["causes"].as_array().into_iter().flatten() {
                    line.push_str(&format!(" [{}", c["category"].as_str().unwrap_or("?")));
                    if let Some(d) = c["dependency"].as_str() {
                        line.push_str(&format!(" {d}"));
                    }
                    line.push(']');
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every file under the project's output folder.
    pub(crate) fn output_files(&self) -> Vec<PathBuf> {
        files_under(&self.path().join(".freshet/data"))
    }
}

/// Every file under `dir` (none if it does not exist), sorted.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs the `freshet` binary with a clean environment for its own settings.
pub(crate) fn freshet(args: &[&str]) -> Output {
    freshet_with_env(args, &[])
}

/// Runs the `freshet` binary with a clean environment for its own settings, plus `env`.
pub(crate) fn freshet_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_freshet"))
        .args(args)
        .env_remove("FRESHET_PROJECT")
        .env_remove("FRESHET_STORAGE")
        .env_remove("FRESHET_DATABASE")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("run freshet");
    let out = Output {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !out.stderr.contains("panicked"),
        "freshet {args:?} panicked:\n{}",
        out.stderr
    );
    out
}

/// Replaces `from` with `to` in a file, which must contain it.
pub(crate) fn edit(project: &TempProject, path: &str, from: &str, to: &str) {
    let text = project.read(path);
    assert!(text.contains(from), "{path} does not contain {from:?}");
    project.write(path, &text.replacen(from, to, 1));
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read dir").flatten() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).expect("copy");
    }
}

/// Trims each line and drops blank ones, so expectations can be indented.
pub(crate) fn lines(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A project whose `big` asset streams rows for far longer than any test waits, and writes
/// files as it goes: random numbers do not compress (counting numbers delta-encode to almost
/// nothing), so its first file reaches the disk within seconds.
pub(crate) fn long_project() -> TempProject {
    TempProject::with_files(&[
        ("freshet.toml", "[project]\nname = \"t\"\n"),
        ("sql/seed.sql", "SELECT 1 AS n"),
        (
            "sql/big.sql",
            "SELECT value AS n, random() AS noise \
             FROM seed CROSS JOIN generate_series(1, 2000000000)",
        ),
    ])
}

/// A child's stderr, line by line, read by a thread of its own (so the child never blocks on it).
pub(crate) fn stderr_lines(child: &mut Child) -> Receiver<String> {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts `freshet materialize` on `project` and returns, once `big` is being computed, the
/// child, its run's id and the rest of its stderr.
pub(crate) fn start_materialize(project: &TempProject) -> (Child, String, Receiver<String>) {
    let mut child = spawn_materialize(project);
    let rx = stderr_lines(&mut child);
    let mut run_id = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        if let Some(rest) = line.strip_prefix("run ")
            && let Some((id, _)) = rest.split_once(':')
        {
            run_id = Some(id.to_owned());
        }
        if line.contains("big ...") {
            break;
        }
    }
    let run_id = run_id.expect("the run never said its id");
    (child, run_id, rx)
}

/// Waits (bounded) for `child` to exit; kills it and says `None` when it does not in time.
pub(crate) fn wait_exit(child: &mut Child, patience: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + patience;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

/// The rest of a child's piped stderr, read to its end, and how the child exited.
pub(crate) fn stderr_and_exit(child: &mut Child) -> (std::process::ExitStatus, String) {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("read stderr");
    }
    (child.wait().expect("wait"), stderr)
}

/// Starts `freshet materialize` on `project`, its stderr piped, warnings only.
pub(crate) fn spawn_materialize(project: &TempProject) -> Child {
    project
        .command()
        .arg("materialize")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start freshet")
}

/// Which store the suite runs on: `FRESHET_TEST_STORE=postgres` gives each project a new database
/// on the PostgreSQL server `FRESHET_TEST_POSTGRES` names (tests/run.sh starts one and runs the
/// suite both ways); otherwise each project keeps its default SQLite file.
pub(crate) fn on_postgres() -> bool {
    std::env::var("FRESHET_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// The suite's PostgreSQL server (its maintenance database's URL), if it has one: always under
/// CI, where tests/run.sh starts it.
pub(crate) fn postgres_server() -> Option<String> {
    let url = std::env::var("FRESHET_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty());
    assert!(
        url.is_some() || std::env::var_os("CI").is_none(),
        "FRESHET_TEST_POSTGRES must be set under CI: run tests/run.sh"
    );
    url
}

fn database() -> Option<String> {
    if !on_postgres() {
        return None;
    }
    let server = std::env::var("FRESHET_TEST_POSTGRES")
        .expect("FRESHET_TEST_STORE=postgres needs FRESHET_TEST_POSTGRES: run tests/run.sh");
    // On a thread of its own: some tests call this inside a runtime, which cannot start another.
    let url = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(new_postgres_database(&server))
    })
    .join()
    .expect("create a test database");
    Some(url)
}

/// Creates a database named after a fresh UUID on `server` and returns its URL.
pub(crate) async fn new_postgres_database(server: &str) -> String {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::AnyConnection::connect(server)
        .await
        .expect("connect to the test PostgreSQL server");
    // A name cannot be a parameter; this one is made of hex digits and `_` only.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let _ = conn.close().await;
    let mut url = url::Url::parse(server).expect("FRESHET_TEST_POSTGRES is a URL");
    url.set_path(&name);
    url.to_string()
}
