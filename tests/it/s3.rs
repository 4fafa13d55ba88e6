//! Object storage: the demo written to, and read back from, a real S3-compatible server (moto,
//! installed by tests/run.sh) on a loopback port.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::demo::python;
use crate::support::TempProject;

/// A moto S3 server on 127.0.0.1, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Self {
        let python = PathBuf::from(python());
        let server = python.with_file_name("moto_server");
        assert!(
            server.exists(),
            "{} is missing: run the tests with tests/run.sh, which installs it",
            server.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        // Bounded wait for the port to accept connections.
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto_server did not start on port {port}");
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
    }

    /// Runs a boto3 snippet against the server (`s3` is the client) and returns what it prints.
    fn boto(&self, code: &str) -> String {
        let script = format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', \
             aws_secret_access_key='test-secret', region_name='us-east-1')\n{code}",
            self.endpoint
        );
        let out = Command::new(python())
            .args(["-c", &script])
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn materializes_to_s3_and_reads_sources_from_it() {
    let moto = Moto::start();
    moto.boto("s3.create_bucket(Bucket='lake')");
    let env = moto.env();
    let project = TempProject::demo();
    let storage = ["--storage", "s3://lake/shop"];
    let run = |args: &[&str]| {
        let out = project.run_with_env(&[&storage[..], args].concat(), &env);
        assert!(out.success, "freshet {args:?} failed:\n{}", out.stderr);
        assert!(
            !out.stderr.contains("test-secret"),
            "secrets never reach output"
        );
        out
    };
    let out = run(&["materialize"]);
    assert!(out.stderr.contains(": materialized 7\n"), "{}", out.stderr);
    let keys = moto
        .boto("print('\\n'.join(o['Key'] for o in s3.list_objects_v2(Bucket='lake')['Contents']))");
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 7, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.starts_with("shop/") && k.ends_with(".parquet")),
        "{keys:?}"
    );
    assert!(
        !project.path().join(".freshet/data").exists(),
        "nothing written locally"
    );

    let status: Vec<serde_json::Value> =
        serde_json::from_str(&run(&["status", "--json"]).stdout).expect("JSON");
    let location = |key: &str| {
        status
            .iter()
            .find(|s| s["key"] == key)
            .and_then(|s| s["location"].as_str())
            .expect("location")
            .to_owned()
    };
    assert!(location("daily_revenue").starts_with("s3://lake/shop/daily_revenue/"));
    assert!(
        run(&["preview", "daily_revenue", "--limit", "2"])
            .stdout
            .contains("revenue")
    );
    assert!(
        run(&["materialize"])
            .stderr
            .contains("nothing to materialize")
    );

    // Another project reads that output (a folder of Parquet files) as a source by its s3:// URL.
    let reader = TempProject::with_files(&[
        (
            "freshet.toml",
            &format!(
                "[project]\nname = \"r\"\n\n[sources.revenue]\npath = \"{}\"\nformat = \"parquet\"\n",
                location("daily_revenue")
            ),
        ),
        ("sql/total.sql", "SELECT count(*) AS days FROM revenue"),
    ]);
    let out = reader.run_with_env(&["materialize"], &env);
    assert!(out.success, "{}", out.stderr);
    let preview = reader.run_with_env(&["preview", "total"], &env).stdout;
    assert!(preview.contains("| 61   |"), "{preview}");

    // A new version of daily_revenue; gc on the bucket removes the old one and only that.
    crate::support::edit(
        &project,
        "sql/marts/daily_revenue.sql",
        "count(*) AS orders",
        "count(order_id) AS orders",
    );
    run(&["materialize", "daily_revenue"]);
    let objects = || -> Vec<String> {
        moto.boto(
            "print('\\n'.join(o['Key'] for o in s3.list_objects_v2(Bucket='lake')['Contents']))",
        )
        .lines()
        .filter(|k| k.starts_with("shop/daily_revenue/"))
        .map(str::to_owned)
        .collect()
    };
    assert_eq!(objects().len(), 2, "{:?}", objects());
    let gc = run(&["gc", "--keep", "0"]);
    assert!(gc.stderr.contains("removed 1 versions"), "{}", gc.stderr);
    assert!(
        gc.stderr.contains("and 0 unreferenced files"),
        "{}",
        gc.stderr
    );
    let left = objects();
    assert_eq!(left.len(), 1, "{left:?}");
    let current = run(&["status", "--json"]).stdout;
    let current: Vec<serde_json::Value> = serde_json::from_str(&current).expect("JSON");
    let location = current
        .iter()
        .find(|s| s["key"] == "daily_revenue")
        .and_then(|s| s["location"].as_str())
        .expect("location")
        .to_owned();
    let current_id = location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .expect("id");
    assert!(left[0].contains(current_id), "{location} {left:?}");
    assert!(
        run(&["preview", "daily_revenue", "--limit", "1"])
            .stdout
            .contains("revenue")
    );

    // An empty database file beside the bucket's outputs is refused, and left empty.
    project.write("empty.db", "");
    let out = project.run_with_env(
        &[&storage[..], &["--database", "empty.db", "status"]].concat(),
        &env,
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.trim_end().ends_with(
            "the file is empty, but s3://lake/shop/ holds outputs an earlier store recorded; \
             restore the database file, or to start over remove both"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(project.read("empty.db"), "");
}
