//! What Freshet loads and trusts: a damaged or deleted store is refused with how to recover, a
//! SQL file too large, a FIFO or a device breaks only its own asset (or is skipped with a
//! warning), a byte-order mark is accepted, a full disk names its cause, and wrong sign-ins are
//! slowed.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{TempProject, files_under, stderr_and_exit, wait_exit};

const PROJECT: &[(&str, &str)] = &[
    ("freshet.toml", "[project]\nname = \"t\"\n"),
    (
        "sql/a.sql",
        "SELECT value AS n FROM generate_series(1, 100)",
    ),
    ("sql/b.sql", "SELECT sum(n) AS s FROM a"),
];

/// The one error line of a failed command, which must start with `start`.
fn error_line(out: &crate::support::Output) -> String {
    assert!(!out.success, "{}\n{}", out.stdout, out.stderr);
    out.stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {}", out.stderr))
        .to_owned()
}

#[test]
fn a_damaged_store_is_refused_and_left_as_it_is() {
    if crate::support::on_postgres() {
        return; // SQLite's file only.
    }
    let project = TempProject::with_files(PROJECT);
    project.ok(&["--database", "store.db", "materialize"]);
    for _ in 0..3 {
        project.ok(&["--database", "store.db", "materialize", "--stale", "a"]);
    }
    let path = project.path().join("store.db");
    for suffix in ["-wal", "-shm"] {
        assert!(
            !project.path().join(format!("store.db{suffix}")).exists(),
            "the last process checkpointed and removed its WAL"
        );
    }
    // 4 KB of (deterministic) noise over the middle of the file, past its header.
    let mut bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() > 16_384, "{} bytes", bytes.len());
    let at = (bytes.len() / 2) & !4095;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in &mut bytes[at..at + 4096] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&path, &bytes).expect("write");

    for command in [
        &["status"][..],
        &["runs"],
        &["gc"],
        &["materialize"],
        &["history", "a"],
    ] {
        let mut args = vec!["--database", "store.db"];
        args.extend_from_slice(command);
        let line = error_line(&project.run(&args));
        assert!(
            line.contains("the database is damaged"),
            "{command:?}: {line}"
        );
        assert!(line.contains(".recover"), "{command:?}: {line}");
    }
    assert_eq!(std::fs::read(&path).expect("read"), bytes, "never written");
}

#[test]
fn a_deleted_store_beside_its_outputs_is_refused() {
    if crate::support::on_postgres() {
        return; // SQLite's file only.
    }
    let project = TempProject::with_files(PROJECT);
    project.ok(&["--database", "store.db", "materialize"]);
    let outputs = files_under(&project.path().join(".freshet/data"));
    assert!(!outputs.is_empty());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(project.path().join(format!("store.db{suffix}")));
    }
    for command in [&["status"][..], &["materialize"]] {
        let mut args = vec!["--database", "store.db"];
        args.extend_from_slice(command);
        let line = error_line(&project.run(&args));
        assert!(
            line.contains("the file does not exist, but")
                && line.ends_with("holds outputs an earlier store recorded; restore the database file, or to start over remove both"),
            "{line}"
        );
    }
    assert!(!project.path().join("store.db").exists(), "no new store");
    assert_eq!(files_under(&project.path().join(".freshet/data")), outputs);
}

#[test]
fn a_sql_file_too_large_breaks_only_its_own_asset() {
    let project = TempProject::with_files(PROJECT);
    // 2 MB of `UNION ALL`: what a generator run wild writes.
    let mut huge = String::from("SELECT 0 AS n");
    let mut i = 1;
    while huge.len() < 2_000_000 {
        huge.push_str(&format!("\nUNION ALL SELECT {i} AS n"));
        i += 1;
    }
    project.write("sql/huge.sql", &huge);
    let asked = Instant::now();
    let status = project.status();
    eprintln!("status with a 2 MB SQL file took {:?}", asked.elapsed());
    let load_error = status["huge"]["load_error"]
        .as_str()
        .expect("huge does not load");
    assert!(
        load_error.starts_with("sql/huge.sql: too large: ")
            && load_error.contains("a SQL file may hold at most 1048576"),
        "{load_error}"
    );
    assert_eq!(status["a"]["status"], "missing");
    project.ok(&["materialize", "a", "b"]);
    assert_eq!(project.status()["b"]["status"], "fresh");
}

#[test]
fn a_fifo_and_a_device_under_sql_are_skipped_with_a_warning() {
    let project = TempProject::with_files(PROJECT);
    let fifo = project.path().join("sql/pipe.sql");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/zero", project.path().join("sql/zero.sql")).expect("symlink");
    // Bounded: a command that opened the FIFO would wait for a writer for ever.
    let mut child = project
        .command()
        .args(["status", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start freshet status");
    assert!(
        wait_exit(&mut child, Duration::from_secs(60)).is_some(),
        "`freshet status` blocked on a FIFO or a device"
    );
    let (status, stderr) = stderr_and_exit(&mut child);
    assert!(status.success(), "{stderr}");
    for name in ["pipe", "zero"] {
        assert!(
            stderr.contains(&format!(
                "sql/{name}.sql: not read: not a regular file (a FIFO, a device or a socket)"
            )),
            "{stderr}"
        );
    }
    let status = project.status();
    assert!(!status.contains_key("pipe") && !status.contains_key("zero"));
    assert!(status.contains_key("b"));
}

#[test]
fn a_sql_file_with_a_byte_order_mark_loads() {
    let project = TempProject::with_files(PROJECT);
    project.write(
        "sql/c.sql",
        "\u{feff}-- @description: written by a Windows editor\nSELECT s * 2 AS d FROM b",
    );
    project.ok(&["materialize"]);
    let status = project.status();
    assert_eq!(status["c"]["status"], "fresh", "{status:?}");
    assert!(project.ok(&["preview", "c"]).stdout.contains("| 10100 |"));
}

/// A tmpfs of 1 MiB, mounted for the test and unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_names_its_cause() {
    let project = TempProject::with_files(&[
        (
            "freshet.toml",
            "[project]\nname = \"t\"\nstorage = \"disk\"\n",
        ),
        // About 3 MB of hexadecimal digits, which no codec packs into 1 MiB.
        (
            "sql/wide.sql",
            "SELECT value AS n, md5(CAST(value AS VARCHAR)) AS h, \
             md5(CAST(value + 1 AS VARCHAR)) AS g FROM generate_series(1, 50000)",
        ),
    ]);
    let disk = project.path().join("disk");
    std::fs::create_dir_all(&disk).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&disk)
        .status()
        .expect("mount");
    assert!(
        mounted.success(),
        "this test mounts a 1 MiB tmpfs: run the suite as root (tests/run.sh under CI is)"
    );
    let _disk = SmallDisk(disk.clone());
    let out = project.run(&["materialize"]);
    assert!(!out.success, "{}", out.stderr);
    assert!(
        out.stderr.contains("No space left on device"),
        "the cause is named: {}",
        out.stderr
    );
    // Nothing half-written stays behind as a version, and `status`, which cuts the line short,
    // still names the cause.
    assert_eq!(project.status()["wide"]["status"], "missing");
    let table = project.ok(&["status"]).stdout;
    assert!(
        table.contains("wide: No space left on device (os error 28)"),
        "{table}"
    );
}

#[test]
fn repeated_wrong_sign_ins_are_refused() {
    let project = TempProject::with_files(PROJECT);
    let mut child = project
        .command()
        .args(["serve", "--addr", "0.0.0.0:0", "--no-automation"])
        .env("FRESHET_TOKEN", "a-long-enough-token-for-the-test")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start freshet serve");
    let rx = crate::support::stderr_lines(&mut child);
    let mut port = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        if let Some(rest) = line.strip_prefix("freshet: serving http://") {
            port = rest
                .split('/')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .map(str::to_owned);
            break;
        }
    }
    std::thread::spawn(move || while rx.recv().is_ok() {});
    let addr = format!("127.0.0.1:{}", port.expect("serve said where it listens"));
    let sign_in = |token: &str| -> u16 {
        let body = format!("token={token}");
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            stream,
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let answers: Vec<u16> = (0..20)
        .map(|i| sign_in(&format!("wrong-guess-number-{i:04}")))
        .collect();
    // The right token is refused too while the address is held back.
    let right = sign_in("a-long-enough-token-for-the-test");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(&answers[..5], &[403; 5], "{answers:?}");
    assert!(answers[5..].iter().all(|&s| s == 429), "{answers:?}");
    assert_eq!(right, 429);
}
