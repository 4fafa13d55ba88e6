//! Schedules (`[schedules.NAME]`): after each tick, a run of the schedule's selection (what is
//! stale in it, or all of it), triggered by `schedule NAME`. A new schedule waits for its next
//! tick; ticks missed while no daemon ran are run once (`catch_up = "once"`) or passed over
//! (`"skip"`). Each handled tick is recorded, so a restart neither repeats nor forgets one.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use freshet_core::automation::{TickAction, compile_cron, schedule_action};
use freshet_core::selection::Selection;
use freshet_core::store::ScheduleTick;
use freshet_core::triggers::{CatchUp, Schedule};
use freshet_core::{AssetKey, AssetKind, PlanRequest, Project, Snapshot};

use super::Host;

struct Item {
    schedule: Schedule,
    cron: Cron,
    tz: Tz,
}

pub(super) struct Schedules {
    items: Vec<Item>,
    /// Each schedule's latest handled tick (read from the store on the first tick).
    handled: Option<HashMap<String, DateTime<Utc>>>,
    /// When this process started: ticks before it passed while no daemon ran.
    since: DateTime<Utc>,
}

impl Schedules {
    /// The schedules of `project`; ticks before `since` (when this process started) passed
    /// while no daemon ran.
    pub(super) fn new(project: &Project, since: DateTime<Utc>) -> Self {
        let items = project
            .triggers()
            .schedules
            .iter()
            .filter_map(|s| {
                // Checked when the project loaded.
                let (cron, tz) = compile_cron(&s.cron, s.timezone.as_deref()).ok()?;
                Some(Item {
                    schedule: s.clone(),
                    cron,
                    tz,
                })
            })
            .collect();
        Self {
            items,
            handled: None,
            since,
        }
    }

    pub(super) async fn tick(&mut self, shared: &Arc<dyn Host>, project: &Project) {
        if self.items.is_empty() {
            return;
        }
        let now = shared.now();
        let since = self.since;
        if self.handled.is_none() {
            match shared.store().schedule_ticks().await {
                Ok(ticks) => {
                    self.handled = Some(
                        ticks
                            .into_iter()
                            .map(|(name, t)| (name, t.tick_at))
                            .collect(),
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the schedules' ticks");
                    return;
                }
            }
        }
        for i in 0..self.items.len() {
            let item = &self.items[i];
            let name = item.schedule.name.clone();
            let handled = self.handled.as_ref().and_then(|h| h.get(&name)).copied();
            let catch_up = item.schedule.catch_up == CatchUp::Once;
            let (tick, run) =
                match schedule_action(&item.cron, &item.tz, handled, now, since, catch_up) {
                    TickAction::Wait => continue,
                    TickAction::Pass(tick) => (tick, false),
                    TickAction::Run(tick) => (tick, true),
                };
            let run_id = if run {
                match request(shared, project, &item.schedule, now).await {
                    Ok(id) => id,
                    Err(e) => {
                        // Not recorded: tried again on the next tick of the loop.
                        tracing::warn!(schedule = %name, error = %e, "schedule cannot request its run");
                        continue;
                    }
                }
            } else {
                None
            };
            let record = ScheduleTick {
                name: name.clone(),
                tick_at: tick,
                run_id,
                handled_at: now,
            };
            if let Err(e) = shared.store().record_schedule_tick(&record).await {
                tracing::warn!(schedule = %name, error = %e, "cannot record a schedule's tick");
            }
            if let Some(handled) = &mut self.handled {
                handled.insert(name, tick);
            }
        }
    }
}

/// Requests the schedule's run; `None` when its selection has nothing to materialize.
async fn request(
    shared: &Arc<dyn Host>,
    project: &Project,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<freshet_core::RunId>> {
    let graph = project.graph();
    let keys: Option<BTreeSet<AssetKey>> = match &schedule.selection {
        None => None,
        Some(text) => {
            let selection = Selection::parse(text)?;
            let keys = if selection.needs_facts() {
                Snapshot::load(project, shared.store(), now)
                    .await?
                    .select(&selection)?
            } else {
                selection.select_by_definition(graph)?
            };
            Some(keys)
        }
    };
    // Materializing all of a selection leaves its sources out (they are observed).
    let keys = match (keys, schedule.stale_only) {
        (Some(keys), false) => Some(
            keys.into_iter()
                .filter(|k| graph.get(k).is_some_and(|d| d.kind != AssetKind::Source))
                .collect::<BTreeSet<_>>(),
        ),
        (None, false) => Some(
            graph
                .iter()
                .filter(|d| d.kind != AssetKind::Source)
                .map(|d| d.key.clone())
                .collect(),
        ),
        (keys, true) => keys,
    };
    if keys.as_ref().is_some_and(BTreeSet::is_empty) {
        tracing::info!(schedule = %schedule.name, "schedule's selection has no assets to materialize");
        return Ok(None);
    }
    let request = PlanRequest {
        selection: keys,
        stale_only: schedule.stale_only,
        ..PlanRequest::default()
    };
    let text = schedule.selection.clone().unwrap_or_default();
    let id = shared
        .materialize(request, &text, &format!("schedule {}", schedule.name))
        .await?;
    tracing::info!(schedule = %schedule.name, run_id = %id, "schedule requested a run");
    Ok(Some(id))
}
