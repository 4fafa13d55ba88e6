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
        freshet_with_env(&full, env)
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
        .envs(env.iter().copied())
        .env_remove("FRESHET_PROJECT")
        .env_remove("FRESHET_STORAGE")
        .env_remove("FRESHET_DATABASE")
        .env("RUST_LOG", "warn")
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

/// A project whose `big` asset streams rows for far longer than any test waits.
pub(crate) fn long_project() -> TempProject {
    TempProject::with_files(&[
        ("freshet.toml", "[project]\nname = \"t\"\n"),
        ("sql/seed.sql", "SELECT 1 AS n"),
        (
            "sql/big.sql",
            "SELECT value AS n FROM seed CROSS JOIN generate_series(1, 2000000000)",
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

/// Starts `freshet materialize` on `project`, its stderr piped, warnings only.
pub(crate) fn spawn_materialize(project: &TempProject) -> Child {
    Command::new(env!("CARGO_BIN_EXE_freshet"))
        .args([
            "--project",
            project.path().to_str().expect("utf-8"),
            "materialize",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start freshet")
}
