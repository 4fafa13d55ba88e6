//! The store's behaviour across processes and on databases it must refuse, on both backends
//! (see [`crate::testing`]). Each `Store::open` is a pool of its own, as another process's would be.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use freshet_plan::model::{
    AssetKey, CodeVersion, DataVersion, Materialization, MaterializationId, RunId,
};
use sqlx::Connection;

use crate::testing::{TestDb, conformance};
use crate::{Backend, HEARTBEAT_TIMEOUT, NewRun, Owner, RunKind, RunStatus, Store};

fn new_run() -> NewRun<'static> {
    NewRun {
        kind: RunKind::Materialize,
        selection: "",
        stale_only: false,
        triggered_by: "cli",
    }
}

fn output(asset: &AssetKey, run: &RunId, n: usize) -> Materialization {
    Materialization {
        id: MaterializationId::generate(),
        asset: asset.clone(),
        run_id: run.clone(),
        code_version: CodeVersion::new("c1"),
        data_version: DataVersion::new(format!("d{n}")),
        inputs: Vec::new(),
        location: format!("file:///out/{asset}/{n}/"),
        row_count: 1,
        byte_size: 1,
        duration_us: 1,
        created_at: Utc::now(),
        data_time: None,
        details: Default::default(),
        collected_at: None,
    }
}

/// A connection of the test's own, beside Freshet's.
async fn raw(db: &TestDb) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    let url = match db.backend() {
        Backend::Sqlite => format!("{}?mode=rwc", db.url()),
        Backend::Postgres => db.url().to_owned(),
    };
    sqlx::AnyConnection::connect(&url).await.expect("connect")
}

async fn count(conn: &mut sqlx::AnyConnection, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.expect(sql)
}

/// The store handle of a process on another host, so that processes are told apart.
async fn open_as(db: &TestDb, host: &str) -> Store {
    let mut store = db.open().await;
    store.owner = Owner {
        host: host.to_owned(),
        pid: 1,
        started: None,
    };
    store
}

conformance! {
    /// 16 processes record 3,200 outputs at once, each under its asset's lease, some assets
    /// contended: every output is recorded once, every head is one of its asset's outputs, and
    /// no writer sees an error (SQLite's "database is locked" among them).
    async fn sixteen_writers_lose_and_duplicate_nothing(db) {
        const WRITERS: usize = 16;
        const EACH: usize = 200;
        const ASSETS: usize = 40;
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = open_as(&db, &format!("writer-{w}")).await;
            tasks.push(tokio::spawn(async move {
                let run = RunId::generate();
                store.begin_run(&run, &new_run(), Utc::now()).await?;
                let mut made = Vec::new();
                let mut contended = 0;
                let mut n = 0;
                while made.len() < EACH {
                    n += 1;
                    let asset: AssetKey = format!("a{}", (w * 7 + n) % ASSETS).parse().expect("key");
                    if store.claim_asset(&asset, &run, Utc::now()).await?.is_some() {
                        contended += 1;
                        continue;
                    }
                    let m = output(&asset, &run, n);
                    store.record_run_output(&m).await?;
                    made.push(m);
                }
                store.heartbeat(std::slice::from_ref(&run), Utc::now()).await?;
                Ok::<_, crate::Error>((made, contended))
            }));
        }
        let mut made = Vec::new();
        for task in tasks {
            let (mine, _contended) = task.await.expect("writer task").expect("no writer fails");
            made.extend(mine);
        }
        assert_eq!(made.len(), WRITERS * EACH);

        let store = db.open().await;
        let mut conn = raw(&db).await;
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM materializations").await, 3200);
        assert_eq!(count(&mut conn, "SELECT COUNT(DISTINCT id) FROM materializations").await, 3200);
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM asset_leases").await, 0, "every lease let go");
        assert_eq!(
            count(&mut conn, "SELECT COUNT(*) FROM asset_heads WHERE partition_key = '' AND asset LIKE 'a%'").await,
            ASSETS as i64,
            "one head per asset"
        );
        let mut per_asset: BTreeMap<AssetKey, HashSet<MaterializationId>> = BTreeMap::new();
        for m in &made {
            per_asset.entry(m.asset.clone()).or_default().insert(m.id.clone());
        }
        let lineage = store.load_lineage().await.expect("lineage");
        for (asset, ids) in &per_asset {
            let head = lineage.materialization(asset).expect("a head per asset");
            assert!(ids.contains(&head.id), "{asset}'s head is one of its outputs");
            let history = store.materializations_of(asset, 1000, None).await.expect("history");
            assert_eq!(history.items.len(), ids.len(), "{asset}: every output in its history once");
        }
    }

    /// Two processes ask for an asset's lease at the same moment, 50 times: exactly one gets it
    /// each time; a dead run's lease is taken over.
    async fn an_asset_lease_goes_to_exactly_one_process(db) {
        let a = open_as(&db, "host-a").await;
        let b = open_as(&db, "host-b").await;
        let (run_a, run_b) = (RunId::generate(), RunId::generate());
        a.begin_run(&run_a, &new_run(), Utc::now()).await.expect("run a");
        b.begin_run(&run_b, &new_run(), Utc::now()).await.expect("run b");
        for i in 0..50 {
            let asset: AssetKey = format!("asset{i}").parse().expect("key");
            let now = Utc::now();
            let (x, y) = tokio::join!(
                a.claim_asset(&asset, &run_a, now),
                b.claim_asset(&asset, &run_b, now),
            );
            let (x, y) = (x.expect("claim a"), y.expect("claim b"));
            match (&x, &y) {
                (None, Some(holder)) => assert_eq!(holder, &run_a),
                (Some(holder), None) => assert_eq!(holder, &run_b),
                _ => panic!("asset{i}: both or neither got the lease: {x:?} {y:?}"),
            }
        }
        // b's run goes silent: its lease stays b's until a finds b's run dead (its heartbeat
        // older than the timeout), then a takes it.
        let asset: AssetKey = "held".parse().expect("key");
        assert_eq!(b.claim_asset(&asset, &run_b, Utc::now()).await.expect("b"), None);
        let later = Utc::now() + chrono::Duration::from_std(HEARTBEAT_TIMEOUT).expect("timeout") * 2;
        assert_eq!(a.claim_asset(&asset, &run_a, later).await.expect("a"), Some(run_b.clone()));
        a.heartbeat(std::slice::from_ref(&run_a), later).await.expect("a beats");
        let dead = a.fail_dead_runs(later, HEARTBEAT_TIMEOUT).await.expect("dead");
        assert_eq!(dead.iter().map(|d| &d.id).collect::<Vec<_>>(), vec![&run_b]);
        assert_eq!(a.claim_asset(&asset, &run_a, later).await.expect("a"), None);
    }

    /// A run whose owner is a live process of this host is never failed, however old its
    /// heartbeat; once that process is gone it is failed at once, and a run recorded for the
    /// same pid with another start time (a pid reused) is not taken for the live process.
    async fn an_owner_on_this_host_is_judged_by_its_process(db) {
        let here = db.open().await;
        let mut child = std::process::Command::new("sleep").arg("60").spawn().expect("sleep");
        let pid = child.id();
        let started = crate::claims::process_start(pid);
        assert!(started.is_some() || !cfg!(target_os = "linux"), "no start time for {pid}");
        let mut owner = db.open().await;
        owner.owner = Owner { host: here.owner.host.clone(), pid, started };
        let mut reused = db.open().await;
        reused.owner = Owner { host: here.owner.host.clone(), pid, started: started.map(|s| s + 1) };
        let (live, stale) = (RunId::generate(), RunId::generate());
        let long_ago = Utc::now() - chrono::Duration::hours(1);
        owner.begin_run(&live, &new_run(), long_ago).await.expect("live run");
        reused.begin_run(&stale, &new_run(), long_ago).await.expect("reused run");
        // A run of this very process that it drives is alive; one it no longer drives (dropped
        // without its end recorded) is judged by its heartbeat, silent for an hour.
        let (driven, dropped) = (RunId::generate(), RunId::generate());
        here.begin_run(&driven, &new_run(), long_ago).await.expect("driven run");
        here.begin_run(&dropped, &new_run(), long_ago).await.expect("dropped run");
        let _driving = crate::Driving::start(&driven);

        let dead = here.fail_dead_runs(Utc::now(), HEARTBEAT_TIMEOUT).await.expect("judge");
        let dead: HashSet<&RunId> = dead.iter().map(|d| &d.id).collect();
        assert_eq!(dead, HashSet::from([&stale, &dropped]));
        let record = here.run(&live).await.expect("read").expect("run");
        assert_eq!(record.status, RunStatus::Running);

        // Killed and not yet reaped (a zombie), it runs nothing more: dead.
        child.kill().expect("kill");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let dead = here.fail_dead_runs(Utc::now(), HEARTBEAT_TIMEOUT).await.expect("judge");
        assert_eq!(dead.iter().map(|d| &d.id).collect::<Vec<_>>(), vec![&live]);
        child.wait().expect("wait");
    }

    /// Of two processes starting automation at once, one runs it; the other takes over only
    /// once the first has been silent for the timeout.
    async fn automation_has_one_owner_and_moves_when_it_goes_silent(db) {
        let a = open_as(&db, "host-a").await;
        let b = open_as(&db, "host-b").await;
        let timeout = std::time::Duration::from_secs(10);
        let t0 = Utc::now();
        let mut first = None;
        for i in 0..20 {
            let now = t0 + chrono::Duration::seconds(i);
            let (x, y) = tokio::join!(a.claim_automation(now, timeout), b.claim_automation(now, timeout));
            let (x, y) = (x.expect("claim a"), y.expect("claim b"));
            assert!(x.is_none() != y.is_none(), "tick {i}: exactly one owner: {x:?} {y:?}");
            // Whoever took it first keeps it while it beats.
            assert_eq!(*first.get_or_insert(x.is_none()), x.is_none(), "tick {i}: the owner changed");
            assert_eq!(holder_host(&db).await, if x.is_none() { "host-a" } else { "host-b" });
        }
        let (silent, other) = if first == Some(true) { (&a, &b) } else { (&b, &a) };
        let last = t0 + chrono::Duration::seconds(19);
        let soon = last + chrono::Duration::seconds(5);
        assert!(other.claim_automation(soon, timeout).await.expect("claim").is_some(), "too soon to take over");
        let later = last + chrono::Duration::seconds(11);
        assert_eq!(other.claim_automation(later, timeout).await.expect("take over"), None);
        let told = silent.claim_automation(later, timeout).await.expect("claim").expect("the other owns it");
        assert_eq!(told, other.owner);
    }

    /// A process ending a run as dead, while the run's owner records an output: whichever order
    /// the two commit in, a run ended as dead never makes its output current.
    async fn an_output_recorded_while_its_run_is_being_ended_is_refused(db) {
        let owner = open_as(&db, "owner").await;
        let run = RunId::generate();
        owner.begin_run(&run, &new_run(), Utc::now()).await.expect("run");
        let asset: AssetKey = "clean".parse().expect("key");
        assert_eq!(owner.claim_asset(&asset, &run, Utc::now()).await.expect("lease"), None);
        // Another process has begun ending the run (not yet committed)...
        let mut other = raw(&db).await;
        let begin = match db.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        sqlx::query(begin).execute(&mut other).await.expect("begin");
        sqlx::query("UPDATE runs SET status = 'failed', error = 'process died' WHERE id = $1")
            .bind(run.as_str())
            .execute(&mut other)
            .await
            .expect("end the run");
        // ...when the owner records its output, which has to wait for it.
        let m = output(&asset, &run, 1);
        let recording = tokio::spawn(async move { owner.record_run_output(&m).await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!recording.is_finished(), "the output waited for the other transaction");
        sqlx::query("COMMIT").execute(&mut other).await.expect("commit");
        let refused = recording.await.expect("task").expect_err("refused");
        assert!(refused.to_string().contains("no longer holds clean"), "{refused}");
        assert_eq!(count(&mut other, "SELECT COUNT(*) FROM asset_heads").await, 0, "nothing became current");
        assert_eq!(count(&mut other, "SELECT COUNT(*) FROM materializations").await, 0);
    }

    /// A database whose schema is newer than this binary's is refused, and left as it was.
    async fn a_newer_schema_is_refused_untouched(db) {
        db.open().await.close().await;
        let mut conn = raw(&db).await;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(29991231000001_i64)
        .bind("from the future")
        .bind(true)
        .bind(vec![0_u8; 48])
        .bind(0_i64)
        .execute(&mut conn)
        .await
        .expect("a future migration");
        let before = count(&mut conn, "SELECT COUNT(*) FROM _sqlx_migrations").await;
        let err = Store::open(db.url()).await.expect_err("refused").to_string();
        assert!(err.contains("its schema (version 29991231000001) is newer than this freshet's"), "{err}");
        assert!(err.contains("upgrade freshet"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM _sqlx_migrations").await, before);
    }

    /// A database holding someone else's tables is refused, and nothing is added to it.
    async fn a_foreign_database_is_refused_untouched(db) {
        let mut conn = raw(&db).await;
        sqlx::query("CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT)")
            .execute(&mut conn)
            .await
            .expect("a foreign table");
        let err = Store::open(db.url()).await.expect_err("refused").to_string();
        assert!(err.contains("it is not a Freshet metadata database (it holds other tables, such as `customers`)"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let tables: i64 = match db.backend() {
            Backend::Sqlite => count(&mut conn, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").await,
            Backend::Postgres => count(&mut conn, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()").await,
        };
        assert_eq!(tables, 1, "no table was created");
    }
}

/// The host of the process that holds automation, as recorded.
async fn holder_host(db: &TestDb) -> String {
    let mut conn = raw(db).await;
    sqlx::query_scalar("SELECT owner_host FROM automation_owner WHERE id = 1")
        .fetch_one(&mut conn)
        .await
        .expect("an owner")
}

#[tokio::test]
async fn a_corrupt_sqlite_file_is_one_line_and_left_as_it_was() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("freshet.db");
    let junk: Vec<u8> = b"these bytes are not a SQLite database. ".repeat(200);
    std::fs::write(&path, &junk).expect("write");
    let err = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        err.starts_with("cannot open metadata database sqlite://"),
        "{err}"
    );
    assert!(err.contains("file is not a database"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    assert_eq!(std::fs::read(&path).expect("read"), junk);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["freshet.db"], "no journal or WAL file was made");
}
