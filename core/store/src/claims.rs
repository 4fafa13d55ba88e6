//! Who runs what, across processes: each run's owner and heartbeat, cancel requests from any
//! process, each step's attempts, the lease a run holds on an asset while it computes it, and the
//! runs whose owner died.
//!
//! **Liveness.** A run's owner is a process: its host, pid and (on Linux) its start time, so a
//! pid the system gave to another process since is not mistaken for it. An owner on this host
//! is alive while that process exists, however long since it beat (a loaded machine may delay a
//! beat by many seconds), and dead at once when it does not; an owner on another host is judged
//! by its heartbeat alone, silent for longer than the project's `heartbeat_timeout`.
//!
//! **Invariant:** a lease is held while its run is `running`; taking one is a single conditional
//! upsert, so two processes never both hold it. A run stops being `running` only when it ends
//! or is judged dead ([`Store::fail_dead_runs`]), which releases its leases.

use std::time::Duration;

use chrono::{DateTime, Utc};
use freshet_plan::model::{AssetKey, RunId};

use crate::lifecycle::{RunStatus, StepState};
use crate::runs::Failure;
use crate::{Result, Store, from_i64, from_micros, get, micros, store_error};

/// How long a run's owner on another host may stay silent before the run is taken for dead,
/// unless the project sets `[execution] heartbeat_timeout`. Owners beat every
/// [`HEARTBEAT_INTERVAL`]; an owner on this host is judged by whether its process exists.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(60);

/// The error of a run whose process died, as [`Store::fail_dead_runs`] records it.
pub const PROCESS_DIED: &str = "process died";

/// The error of a run cancelled because its process was shutting down (not by anyone's
/// request): what asked for it may ask again.
pub const STOPPED_WITH_PROCESS: &str = "cancelled: its process shut down";

/// How often the owner of a run records that it is alive (and reads cancel requests).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// The process a store handle belongs to, recorded as the owner of the runs it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The host name.
    pub host: String,
    /// The process id on that host.
    pub pid: u32,
    /// When the process started, in the kernel's clock ticks since boot (Linux's
    /// `/proc/PID/stat`); `None` where unknown (another system, or a record from before it was
    /// kept).
    pub started: Option<u64>,
}

impl Owner {
    /// This process.
    pub fn this_process() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let pid = std::process::id();
        Self {
            host,
            pid,
            started: process_start(pid),
        }
    }

    /// Whether this is the same process as `other`, by host and pid (start times are compared
    /// only where both are known).
    pub fn is(&self, other: &Owner) -> bool {
        self.host == other.host
            && self.pid == other.pid
            && (self.started.is_none() || other.started.is_none() || self.started == other.started)
    }

    /// Whether the process is known to be gone: on this host (Linux), no process has its pid,
    /// the one that has it started at another time, or it is a zombie. Any other owner (another
    /// host, or a `/proc` this user may not read) is judged by its heartbeat alone.
    pub(crate) fn is_gone(&self, here: &Owner) -> bool {
        self.host == here.host
            && !self.is(here)
            && cfg!(target_os = "linux")
            && match look(self.pid) {
                Seen::Gone => true,
                Seen::Running(started) => self.started.is_some_and(|s| s != started),
                Seen::Unknown => false,
            }
    }

    /// How run `run`, owned by this process, is to be judged from `here`.
    fn liveness(&self, here: &Owner, run: &RunId) -> Liveness {
        if self.is(here) {
            // This process: alive while it drives the run; one it dropped without ending it
            // (a store that failed as it ended) is judged by its heartbeat, which stopped.
            return if lock(&DRIVING).contains(run.as_str()) {
                Liveness::Alive
            } else {
                Liveness::ByHeartbeat
            };
        }
        if self.host != here.host || !cfg!(target_os = "linux") {
            return Liveness::ByHeartbeat;
        }
        match (look(self.pid), self.started) {
            (Seen::Gone, _) => Liveness::Dead,
            (Seen::Running(now), Some(started)) if now != started => Liveness::Dead,
            (Seen::Running(_), Some(_)) => Liveness::Alive,
            // A record from before start times were kept, or a `/proc` this user may not read.
            (Seen::Running(_), None) | (Seen::Unknown, _) => Liveness::ByHeartbeat,
        }
    }
}

/// The time before which an owner that has not beaten is silent for longer than `timeout`
/// (the beginning of time for a timeout beyond what a date can hold: never silent).
pub(crate) fn silent_since(now: DateTime<Utc>, timeout: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(timeout)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// How a run's owner is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    /// Its process is gone: dead at once.
    Dead,
    /// Its process is alive: never failed, however old its heartbeat.
    Alive,
    /// Nothing is known of its process here: dead once its heartbeat is older than the timeout.
    ByHeartbeat,
}

/// The runs this process drives now (see [`Driving`]).
static DRIVING: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Says, while held, that this process drives run `id` (its heartbeat task runs): such a run is
/// never failed as dead by this process, whatever its heartbeat's age. Dropped with the
/// heartbeat, after which a run this process never ended is judged like any other.
#[derive(Debug)]
pub struct Driving(String);

impl Driving {
    /// Marks `id` as driven by this process until the value is dropped.
    pub fn start(id: &RunId) -> Self {
        lock(&DRIVING).insert(id.as_str().to_owned());
        Self(id.as_str().to_owned())
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        lock(&DRIVING).remove(&self.0);
    }
}

/// When process `pid` of this host started, in clock ticks since boot. `None` when there is no
/// such process or no `/proc`.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    match look(pid) {
        Seen::Running(started) => Some(started),
        Seen::Gone | Seen::Unknown => None,
    }
}

/// What `/proc` says of a pid.
enum Seen {
    /// No such process, or a zombie (ended, not yet reaped: it runs nothing more).
    Gone,
    /// A process that started at this many clock ticks since boot.
    Running(u64),
    /// `/proc/PID/stat` could not be read (no `/proc`, or mounted `hidepid`) or parsed.
    Unknown,
}

/// Process `pid` of this host: fields 3 (its state) and 22 (its start time) of
/// `/proc/PID/stat`, counted after the command name's closing bracket (a name may hold spaces
/// and brackets). Only "no such file" means gone.
fn look(pid: u32) -> Seen {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Seen::Gone,
        Err(_) => return Seen::Unknown,
    };
    let parsed = stat.rsplit_once(')').and_then(|(_, rest)| {
        let mut fields = rest.split_whitespace();
        let state = fields.next()?;
        // Field 22 is the 19th after the state.
        let started: u64 = fields.nth(18)?.parse().ok()?;
        Some((matches!(state, "Z" | "X"), started))
    });
    match parsed {
        Some((true, _)) => Seen::Gone,
        Some((false, started)) => Seen::Running(started),
        None => Seen::Unknown,
    }
}

/// One attempt at a step, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    /// 0-based position of the step in its run.
    pub position: usize,
    /// 1-based.
    pub attempt: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its error; `None` when it succeeded (or has not ended).
    pub error: Option<String>,
}

/// A run that died with its owner, as [`Store::fail_dead_runs`] found it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadRun {
    /// The run.
    pub id: RunId,
    /// Who ran it.
    pub owner: Option<Owner>,
    /// Its owner's last heartbeat.
    pub last_heartbeat: DateTime<Utc>,
}

impl Store {
    /// Records that this process is alive for `runs` at `at`; returns those of them that must
    /// stop: some process asked to cancel them, or one ended them already (found them dead
    /// while this process could not beat in time).
    pub async fn heartbeat(&self, runs: &[RunId], at: DateTime<Utc>) -> Result<Vec<RunId>> {
        let mut cancel = Vec::new();
        for id in runs {
            let beat = sqlx::query(
                "UPDATE runs SET heartbeat_at = $1 WHERE id = $2 AND status IN ($3, $4)",
            )
            .bind(micros(at))
            .bind(id.as_str())
            .bind(RunStatus::Queued.as_str())
            .bind(RunStatus::Running.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
            if beat.rows_affected() == 0 || self.cancel_requested(id).await? {
                cancel.push(id.clone());
            }
        }
        Ok(cancel)
    }

    /// Whether some process asked to cancel the run.
    pub async fn cancel_requested(&self, id: &RunId) -> Result<bool> {
        let row = sqlx::query("SELECT cancel_requested_at FROM runs WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(match row {
            Some(row) => get::<Option<i64>>(&row, 0)?.is_some(),
            None => false,
        })
    }

    /// Asks the owner of a run, in whatever process, to cancel it; it does within about a
    /// [`HEARTBEAT_INTERVAL`]. `false` when the run is not queued or running.
    pub async fn request_cancel(&self, id: &RunId, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, $1) \
             WHERE id = $2 AND status IN ($3, $4)",
        )
        .bind(micros(at))
        .bind(id.as_str())
        .bind(RunStatus::Queued.as_str())
        .bind(RunStatus::Running.as_str())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks as failed ("process died") every queued or running run whose owner is gone: a
    /// process of this host that no longer exists (or whose pid another process now has), or an
    /// owner on another host silent for longer than `timeout`. An owner of this host whose
    /// process exists is never failed, however late its heartbeat. Their running
    /// steps fail, their pending steps are skipped and their leases are released; no output of
    /// theirs was ever made current, so every current version stays what it was.
    pub async fn fail_dead_runs(
        &self,
        now: DateTime<Utc>,
        timeout: Duration,
    ) -> Result<Vec<DeadRun>> {
        let silent_since = crate::claims::silent_since(now, timeout);
        let mut ended = Vec::new();
        for (run, gone) in self.judge_dead_runs(now, timeout).await? {
            // A run that beat since it was read is alive after all, unless its process is gone.
            let since = if gone { None } else { Some(silent_since) };
            if self.end_dead_run(&run.id, now, since).await? {
                ended.push(run);
            }
        }
        Ok(ended)
    }

    /// What [`Store::fail_dead_runs`] would fail now, read only: for a command that may not
    /// write (`status`) to say what it sees. Each step such a run was computing (running, or
    /// holding its asset's lease) as its latest failure, at its owner's last heartbeat.
    pub async fn dead_steps(&self, now: DateTime<Utc>, timeout: Duration) -> Result<Vec<Failure>> {
        let mut steps = Vec::new();
        for (run, _) in self.judge_dead_runs(now, timeout).await? {
            let rows = sqlx::query(
                "SELECT asset FROM run_steps WHERE run_id = $1 AND state = $2 \
                 UNION SELECT asset FROM asset_leases WHERE run_id = $1 \
                 EXCEPT SELECT asset FROM materializations WHERE run_id = $1",
            )
            .bind(run.id.as_str())
            .bind(StepState::Running.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            for row in &rows {
                steps.push(Failure {
                    asset: get(row, 0)?,
                    run_id: run.id.clone(),
                    at: run.last_heartbeat,
                    error: format!(
                        "{PROCESS_DIED} (its run is still recorded as running: the next command \
                         that writes records it failed)"
                    ),
                });
            }
        }
        Ok(steps)
    }

    /// The queued or running runs whose owner is gone (see [`Store::fail_dead_runs`]), each with
    /// whether its process is known gone (rather than silent); nothing is written.
    async fn judge_dead_runs(
        &self,
        now: DateTime<Utc>,
        timeout: Duration,
    ) -> Result<Vec<(DeadRun, bool)>> {
        let rows = sqlx::query(
            "SELECT id, owner_host, owner_pid, COALESCE(heartbeat_at, started_at), owner_started \
             FROM runs WHERE status IN ($1, $2)",
        )
        .bind(RunStatus::Queued.as_str())
        .bind(RunStatus::Running.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let silent_since = crate::claims::silent_since(now, timeout);
        let mut dead = Vec::new();
        for row in &rows {
            let host: Option<String> = get(row, 1)?;
            let pid: Option<i64> = get(row, 2)?;
            let started: Option<i64> = get(row, 4)?;
            let owner = host.zip(pid).map(|(host, pid)| Owner {
                host,
                pid: u32::try_from(pid).unwrap_or(0),
                started: started.and_then(|s| u64::try_from(s).ok()),
            });
            let last_heartbeat = from_micros(get(row, 3)?);
            let id = RunId::new(get::<String>(row, 0)?);
            let liveness = owner
                .as_ref()
                .map_or(Liveness::ByHeartbeat, |o| o.liveness(&self.owner, &id));
            let gone = liveness == Liveness::Dead;
            if gone || (liveness == Liveness::ByHeartbeat && last_heartbeat < silent_since) {
                let run = DeadRun {
                    id,
                    owner,
                    last_heartbeat,
                };
                dead.push((run, gone));
            }
        }
        Ok(dead)
    }

    /// Fails run `id` as dead, if it is still queued or running and (with `silent_since`) has not
    /// beaten since then; whether it did.
    async fn end_dead_run(
        &self,
        id: &RunId,
        now: DateTime<Utc>,
        silent_since: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        const DIED: &str = PROCESS_DIED;
        let mut tx = self.begin_write().await?;
        let moved = sqlx::query(
            "UPDATE runs SET status = $1, finished_at = $2, error = $3 \
             WHERE id = $4 AND status IN ($5, $6) \
             AND ($7 IS NULL OR COALESCE(heartbeat_at, started_at) < $7)",
        )
        .bind(RunStatus::Failed.as_str())
        .bind(micros(now))
        .bind(DIED)
        .bind(id.as_str())
        .bind(RunStatus::Queued.as_str())
        .bind(RunStatus::Running.as_str())
        .bind(silent_since.map(micros))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        if moved.rows_affected() == 1 {
            // A run's progress reaches the store a little after it happens, so the steps' own
            // records may lag; what it made and what it held are recorded as they happen. A
            // step whose output was recorded was materialized; one whose lease the run still
            // held was computing, and fails with the rest of the running steps below.
            sqlx::query(
                "UPDATE run_steps SET state = $1, \
                 finished_at = (SELECT MAX(m.created_at) FROM materializations m \
                     WHERE m.asset = run_steps.asset AND m.run_id = $2), \
                 row_count = (SELECT m.row_count FROM materializations m \
                     WHERE m.asset = run_steps.asset AND m.run_id = $2 \
                     ORDER BY m.created_at DESC LIMIT 1), \
                 byte_size = (SELECT m.byte_size FROM materializations m \
                     WHERE m.asset = run_steps.asset AND m.run_id = $2 \
                     ORDER BY m.created_at DESC LIMIT 1) \
                 WHERE run_id = $2 AND state IN ($3, $4) AND EXISTS \
                     (SELECT 1 FROM materializations m \
                      WHERE m.asset = run_steps.asset AND m.run_id = $2)",
            )
            .bind(StepState::Materialized.as_str())
            .bind(id.as_str())
            .bind(StepState::Pending.as_str())
            .bind(StepState::Running.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            sqlx::query(
                "UPDATE run_steps SET state = $1 WHERE run_id = $2 AND state = $3 AND EXISTS \
                     (SELECT 1 FROM asset_leases l \
                      WHERE l.asset = run_steps.asset AND l.run_id = $2)",
            )
            .bind(StepState::Running.as_str())
            .bind(id.as_str())
            .bind(StepState::Pending.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            for (from, to, message) in [
                (StepState::Running, StepState::Failed, DIED),
                (
                    StepState::Pending,
                    StepState::Skipped,
                    "the run's process died",
                ),
            ] {
                sqlx::query(
                    "UPDATE run_steps SET state = $1, finished_at = $2, message = $3 \
                     WHERE run_id = $4 AND state = $5",
                )
                .bind(to.as_str())
                .bind(micros(now))
                .bind(message)
                .bind(id.as_str())
                .bind(from.as_str())
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            }
            sqlx::query(
                "UPDATE step_attempts SET finished_at = $1, error = $2 \
                 WHERE run_id = $3 AND finished_at IS NULL",
            )
            .bind(micros(now))
            .bind(DIED)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            sqlx::query("DELETE FROM asset_leases WHERE run_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(moved.rows_affected() == 1)
    }

    /// Takes the lease on `asset` for the run `run` unless a running run holds it: `None` when
    /// taken (or already held by `run`), else the run that holds it. A holder whose process died
    /// lets go when [`Store::fail_dead_runs`] finds it dead, never by its heartbeat's age here.
    pub async fn claim_asset(
        &self,
        asset: &AssetKey,
        run: &RunId,
        now: DateTime<Utc>,
    ) -> Result<Option<RunId>> {
        let _turn = self.write_turn().await;
        loop {
            let done = sqlx::query(
                "INSERT INTO asset_leases (asset, run_id, acquired_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (asset) DO UPDATE SET run_id = excluded.run_id, \
                 acquired_at = excluded.acquired_at \
                 WHERE asset_leases.run_id = excluded.run_id OR NOT EXISTS \
                     (SELECT 1 FROM runs r WHERE r.id = asset_leases.run_id AND r.status = $4)",
            )
            .bind(asset.as_str())
            .bind(run.as_str())
            .bind(micros(now))
            .bind(RunStatus::Running.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
            if done.rows_affected() == 1 {
                return Ok(None);
            }
            let row = sqlx::query("SELECT run_id FROM asset_leases WHERE asset = $1")
                .bind(asset.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
            // No row: released between the two statements, so try again.
            if let Some(row) = row {
                return Ok(Some(RunId::new(get::<String>(&row, 0)?)));
            }
        }
    }

    /// Gives up the lease on `asset` if `run` holds it.
    pub async fn release_asset(&self, asset: &AssetKey, run: &RunId) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM asset_leases WHERE asset = $1 AND run_id = $2")
            .bind(asset.as_str())
            .bind(run.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Every attempt of a run's steps, by position then attempt.
    pub async fn attempts(&self, run: &RunId) -> Result<Vec<AttemptRecord>> {
        let rows = sqlx::query(
            "SELECT position, attempt, started_at, finished_at, error FROM step_attempts \
             WHERE run_id = $1 ORDER BY position, attempt",
        )
        .bind(run.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(AttemptRecord {
                    position: usize::try_from(from_i64(get(row, 0)?)).unwrap_or(usize::MAX),
                    attempt: u32::try_from(from_i64(get(row, 1)?)).unwrap_or(u32::MAX),
                    started_at: from_micros(get(row, 2)?),
                    finished_at: get::<Option<i64>>(row, 3)?.map(from_micros),
                    error: get(row, 4)?,
                })
            })
            .collect()
    }
}
