//! Automation's records: each evaluation, each asset's latest decision with the cursor the next
//! evaluation starts from, the history of decisions as they changed, the assets runs in progress
//! are to materialize, and each schedule's latest tick.
//!
//! **Invariant:** an evaluation, its changed decisions and their cursors are recorded in one
//! transaction, so a process killed mid-way leaves the previous evaluation's state whole.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use freshet_plan::automation::Cursor;
use freshet_plan::model::{AssetKey, EvaluationId, RunId};

use crate::claims::Owner;
use crate::lifecycle::{RunStatus, StepState};
use crate::lineage::parse_key;
use crate::{Error, Result, Store, from_i64, from_micros, get, micros, store_error, to_i64};

/// One asset's decision in one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    /// The asset.
    pub asset: AssetKey,
    /// Its condition, as text (`eager`, `on_cron "0 6 * * *" Europe/Paris`, `freshness`).
    pub condition: String,
    /// The evaluation.
    pub evaluation_id: EvaluationId,
    /// When.
    pub decided_at: DateTime<Utc>,
    /// Whether the asset was requested.
    pub requested: bool,
    /// Why, in words.
    pub reason: String,
    /// The run the request became.
    pub run_id: Option<RunId>,
    /// What automation remembers of the asset from then on (the default in histories).
    pub cursor: Cursor,
}

/// One evaluation of every condition.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationRecord {
    /// Its id.
    pub id: EvaluationId,
    /// When it ran.
    pub evaluated_at: DateTime<Utc>,
    /// How long it took, facts loaded included.
    pub duration: Duration,
    /// Assets with a condition.
    pub assets: u64,
    /// Of which requested.
    pub requested: u64,
    /// The run the requests became.
    pub run_id: Option<RunId>,
    /// When time alone may change a decision next.
    pub next_at: Option<DateTime<Utc>>,
}

/// A schedule's latest handled tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleTick {
    /// The schedule's name.
    pub name: String,
    /// The tick.
    pub tick_at: DateTime<Utc>,
    /// The run it requested, if it requested one.
    pub run_id: Option<RunId>,
    /// When it was handled.
    pub handled_at: DateTime<Utc>,
}

/// `SELECT <an asset's latest decision> FROM automation_assets`.
macro_rules! select_latest {
    () => {
        "SELECT asset, condition, evaluation_id, decided_at, requested, reason, run_id, cursor \
         FROM automation_assets"
    };
}

/// A row of `select_latest!`.
fn latest_decision(row: &sqlx::any::AnyRow) -> Result<DecisionRecord> {
    let asset = parse_key(&get::<String>(row, 0)?, "automation_assets")?;
    let cursor: String = get(row, 7)?;
    let cursor = serde_json::from_str(&cursor)
        .map_err(|e| Error::corrupt(format!("automation_assets row for {asset}"), e))?;
    Ok(DecisionRecord {
        asset,
        condition: get(row, 1)?,
        evaluation_id: EvaluationId::new(get::<String>(row, 2)?),
        decided_at: from_micros(get(row, 3)?),
        requested: get::<i64>(row, 4)? != 0,
        reason: get(row, 5)?,
        run_id: get::<Option<String>>(row, 6)?.map(RunId::new),
        cursor,
    })
}

impl Store {
    /// Each asset's latest decision, with its cursor.
    pub async fn automation_state(&self) -> Result<HashMap<AssetKey, DecisionRecord>> {
        let rows = sqlx::query(select_latest!())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in &rows {
            let d = latest_decision(row)?;
            out.insert(d.asset.clone(), d);
        }
        Ok(out)
    }

    /// One asset's latest decision, with its cursor.
    pub async fn latest_decision(&self, asset: &AssetKey) -> Result<Option<DecisionRecord>> {
        let row = sqlx::query(concat!(select_latest!(), " WHERE asset = $1"))
            .bind(asset.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(latest_decision).transpose()
    }

    /// Records an evaluation and the decisions that changed since each asset's previous one
    /// (they become the assets' latest and join their histories), in one transaction.
    pub async fn record_evaluation(
        &self,
        evaluation: &EvaluationRecord,
        changed: &[DecisionRecord],
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO automation_evaluations (id, evaluated_at, duration_us, assets, requested, \
             run_id, next_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(evaluation.id.as_str())
        .bind(micros(evaluation.evaluated_at))
        .bind(to_i64(
            u64::try_from(evaluation.duration.as_micros()).unwrap_or(u64::MAX),
        ))
        .bind(to_i64(evaluation.assets))
        .bind(to_i64(evaluation.requested))
        .bind(evaluation.run_id.as_ref().map(RunId::as_str))
        .bind(evaluation.next_at.map(micros))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        for d in changed {
            let cursor = serde_json::to_string(&d.cursor).map_err(|e| Error::Database {
                message: format!("cannot encode an automation cursor: {e}"),
            })?;
            sqlx::query(
                "INSERT INTO automation_assets (asset, condition, evaluation_id, decided_at, \
                 requested, reason, run_id, cursor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (asset) DO UPDATE SET condition = excluded.condition, \
                 evaluation_id = excluded.evaluation_id, decided_at = excluded.decided_at, \
                 requested = excluded.requested, reason = excluded.reason, \
                 run_id = excluded.run_id, cursor = excluded.cursor",
            )
            .bind(d.asset.as_str())
            .bind(d.condition.as_str())
            .bind(d.evaluation_id.as_str())
            .bind(micros(d.decided_at))
            .bind(i64::from(d.requested))
            .bind(d.reason.as_str())
            .bind(d.run_id.as_ref().map(RunId::as_str))
            .bind(cursor)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            sqlx::query(
                "INSERT INTO automation_decisions (evaluation_id, asset, decided_at, requested, \
                 reason, run_id) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(d.evaluation_id.as_str())
            .bind(d.asset.as_str())
            .bind(micros(d.decided_at))
            .bind(i64::from(d.requested))
            .bind(d.reason.as_str())
            .bind(d.run_id.as_ref().map(RunId::as_str))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    /// The latest evaluation, if any.
    pub async fn latest_evaluation(&self) -> Result<Option<EvaluationRecord>> {
        let row = sqlx::query(
            "SELECT id, evaluated_at, duration_us, assets, requested, run_id, next_at \
             FROM automation_evaluations ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(|row| {
            Ok(EvaluationRecord {
                id: EvaluationId::new(get::<String>(&row, 0)?),
                evaluated_at: from_micros(get(&row, 1)?),
                duration: Duration::from_micros(from_i64(get(&row, 2)?)),
                assets: from_i64(get(&row, 3)?),
                requested: from_i64(get(&row, 4)?),
                run_id: get::<Option<String>>(&row, 5)?.map(RunId::new),
                next_at: get::<Option<i64>>(&row, 6)?.map(from_micros),
            })
        })
        .transpose()
    }

    /// An asset's decisions as they changed, newest first, at most `limit`.
    pub async fn decision_history(
        &self,
        asset: &AssetKey,
        limit: u32,
    ) -> Result<Vec<DecisionRecord>> {
        let rows = sqlx::query(
            "SELECT d.evaluation_id, d.decided_at, d.requested, d.reason, d.run_id, \
             COALESCE(a.condition, '') FROM automation_decisions d \
             LEFT JOIN automation_assets a ON a.asset = d.asset \
             WHERE d.asset = $1 ORDER BY d.decided_at DESC, d.evaluation_id DESC LIMIT $2",
        )
        .bind(asset.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(DecisionRecord {
                    asset: asset.clone(),
                    condition: get(row, 5)?,
                    evaluation_id: EvaluationId::new(get::<String>(row, 0)?),
                    decided_at: from_micros(get(row, 1)?),
                    requested: get::<i64>(row, 2)? != 0,
                    reason: get(row, 3)?,
                    run_id: get::<Option<String>>(row, 4)?.map(RunId::new),
                    cursor: Cursor::default(),
                })
            })
            .collect()
    }

    /// The assets that a queued or running run, of any process, has still to materialize.
    pub async fn assets_in_progress(&self) -> Result<HashSet<AssetKey>> {
        let rows = sqlx::query(
            "SELECT DISTINCT s.asset FROM run_steps s JOIN runs r ON r.id = s.run_id \
             WHERE r.status IN ($1, $2) AND s.state IN ($3, $4)",
        )
        .bind(RunStatus::Queued.as_str())
        .bind(RunStatus::Running.as_str())
        .bind(StepState::Pending.as_str())
        .bind(StepState::Running.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| parse_key(&get::<String>(row, 0)?, "run_steps"))
            .collect()
    }

    /// Each custom sensor's cursor and when it was last called, by name.
    pub async fn sensor_cursors(&self) -> Result<HashMap<String, (Option<String>, DateTime<Utc>)>> {
        let rows = sqlx::query("SELECT name, cursor, evaluated_at FROM sensor_cursors")
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok((
                    get::<String>(row, 0)?,
                    (get(row, 1)?, from_micros(get(row, 2)?)),
                ))
            })
            .collect()
    }

    /// Records what a custom sensor returned as its cursor, and when it was called.
    pub async fn record_sensor(
        &self,
        name: &str,
        cursor: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO sensor_cursors (name, cursor, evaluated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, \
             evaluated_at = excluded.evaluated_at",
        )
        .bind(name)
        .bind(cursor)
        .bind(micros(at))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    /// Takes, or keeps, the right to run automation on this store for this process: `None`
    /// when it is this process's, else the process that has it (alive: it beat after
    /// `now - timeout` and, on this host, still exists).
    pub async fn claim_automation(
        &self,
        now: DateTime<Utc>,
        timeout: Duration,
    ) -> Result<Option<Owner>> {
        let silent_since = crate::claims::silent_since(now, timeout);
        let _turn = self.write_turn().await;
        let holder = sqlx::query(
            "SELECT owner_host, owner_pid, heartbeat_at FROM automation_owner WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        if let Some(row) = &holder {
            let owner = Owner {
                host: get(row, 0)?,
                pid: u32::try_from(get::<i64>(row, 1)?).unwrap_or(0),
                started: None,
            };
            let alive = from_micros(get(row, 2)?) >= silent_since && !owner.is_gone(&self.owner);
            if !owner.is(&self.owner) && alive {
                return Ok(Some(owner));
            }
        }
        // Conditional, so that of two processes taking it at once only one does.
        let taken = sqlx::query(
            "INSERT INTO automation_owner (id, owner_host, owner_pid, heartbeat_at) \
             VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET \
             owner_host = excluded.owner_host, owner_pid = excluded.owner_pid, \
             heartbeat_at = excluded.heartbeat_at \
             WHERE (automation_owner.owner_host = $1 AND automation_owner.owner_pid = $2) \
             OR automation_owner.owner_host = $4 AND automation_owner.owner_pid = $5",
        )
        .bind(self.owner.host.as_str())
        .bind(i64::from(self.owner.pid))
        .bind(micros(now))
        .bind(
            holder
                .as_ref()
                .map(|r| get::<String>(r, 0))
                .transpose()?
                .unwrap_or_default(),
        )
        .bind(
            holder
                .as_ref()
                .map(|r| get::<i64>(r, 1))
                .transpose()?
                .unwrap_or(-1),
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        if taken.rows_affected() == 1 {
            return Ok(None);
        }
        // Another process took it in between.
        let row = sqlx::query("SELECT owner_host, owner_pid FROM automation_owner WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(Some(Owner {
            host: get(&row, 0)?,
            pid: u32::try_from(get::<i64>(&row, 1)?).unwrap_or(0),
            started: None,
        }))
    }

    /// Every schedule's latest handled tick, by name.
    pub async fn schedule_ticks(&self) -> Result<HashMap<String, ScheduleTick>> {
        let rows = sqlx::query("SELECT name, tick_at, run_id, handled_at FROM schedule_ticks")
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let tick = ScheduleTick {
                    name: get(row, 0)?,
                    tick_at: from_micros(get(row, 1)?),
                    run_id: get::<Option<String>>(row, 2)?.map(RunId::new),
                    handled_at: from_micros(get(row, 3)?),
                };
                Ok((tick.name.clone(), tick))
            })
            .collect()
    }

    /// Records that a schedule handled a tick.
    pub async fn record_schedule_tick(&self, tick: &ScheduleTick) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO schedule_ticks (name, tick_at, run_id, handled_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET \
             tick_at = excluded.tick_at, run_id = excluded.run_id, \
             handled_at = excluded.handled_at",
        )
        .bind(tick.name.as_str())
        .bind(micros(tick.tick_at))
        .bind(tick.run_id.as_ref().map(RunId::as_str))
        .bind(micros(tick.handled_at))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::conformance;
    use crate::{NewRun, RunKind};

    conformance! {
    async fn evaluations_keep_each_asset_s_latest_decision_and_its_history(db) {
        let store = db.open().await;
        let asset: AssetKey = "clean".parse().unwrap();
        let t0 = from_micros(1_800_000_000_000_000);
        let decision =
            |at: DateTime<Utc>, requested: bool, reason: &str, run: Option<RunId>| DecisionRecord {
                asset: asset.clone(),
                condition: "eager".to_owned(),
                evaluation_id: EvaluationId::generate(),
                decided_at: at,
                requested,
                reason: reason.to_owned(),
                run_id: run.clone(),
                cursor: Cursor {
                    requested_for: requested.then(|| "code=1;raw=v2".to_owned()),
                    requested_at: requested.then_some(at),
                    run_id: run,
                    tick: None,
                },
            };
        let evaluation = |d: &DecisionRecord| EvaluationRecord {
            id: d.evaluation_id.clone(),
            evaluated_at: d.decided_at,
            duration: Duration::from_micros(1500),
            assets: 1,
            requested: u64::from(d.requested),
            run_id: d.run_id.clone(),
            next_at: None,
        };
        let first = decision(t0, false, "not requested: fresh", None);
        store
            .record_evaluation(&evaluation(&first), std::slice::from_ref(&first))
            .await
            .unwrap();
        let run = RunId::generate();
        let later = t0 + chrono::Duration::seconds(5);
        let second = decision(
            later,
            true,
            "requested: input raw has a new data version",
            Some(run.clone()),
        );
        store
            .record_evaluation(&evaluation(&second), std::slice::from_ref(&second))
            .await
            .unwrap();

        let state = store.automation_state().await.unwrap();
        assert_eq!(
            state[&asset], second,
            "the latest decision, cursor included"
        );
        let history = store.decision_history(&asset, 10).await.unwrap();
        let reasons: Vec<&str> = history.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "requested: input raw has a new data version",
                "not requested: fresh"
            ]
        );
        let latest = store.latest_evaluation().await.unwrap().unwrap();
        assert_eq!(latest, evaluation(&second));

        // A queued run's pending steps are in progress; once it ends, they are not.
        store
            .queue_run(
                &run,
                &NewRun {
                    kind: RunKind::Materialize,
                    selection: "clean",
                    stale_only: true,
                    triggered_by: "automation",
                },
                later,
            )
            .await
            .unwrap();
        store
            .plan_steps(&run, std::slice::from_ref(&asset))
            .await
            .unwrap();
        assert!(store.assets_in_progress().await.unwrap().contains(&asset));
        assert_eq!(
            store.run(&run).await.unwrap().unwrap().triggered_by,
            "automation"
        );
        store
            .finish_run(&run, RunStatus::Cancelled, later, Some("cancelled"))
            .await
            .unwrap();
        assert!(store.assets_in_progress().await.unwrap().is_empty());

        let tick = ScheduleTick {
            name: "nightly".to_owned(),
            tick_at: t0,
            run_id: Some(run),
            handled_at: later,
        };
        store.record_schedule_tick(&tick).await.unwrap();
        let moved = ScheduleTick {
            tick_at: later,
            run_id: None,
            ..tick
        };
        store.record_schedule_tick(&moved).await.unwrap();
        assert_eq!(store.schedule_ticks().await.unwrap()["nightly"], moved);
    }
    }
}
