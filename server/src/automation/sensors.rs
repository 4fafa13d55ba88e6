//! Custom sensors ([`freshet_core::sensor`]): each is called at its interval, in a task of its
//! own under a time limit (a sensor that fails, hangs or panics is logged and called again at its
//! next turn; the loop goes on), with the cursor it returned last. Its run requests become runs
//! triggered by `sensor NAME`; its cursor is recorded only once they are queued, so a request is
//! not lost to a crash in between (at worst made twice; the lease keeps the work single).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use freshet_core::selection::Selection;
use freshet_core::sensor::{Sensor, SensorContext, SensorOutput};
use freshet_core::{AssetKey, AssetKind, PlanRequest, Project, Snapshot};

use super::Host;

/// The longest a sensor's function may take.
const TIME_LIMIT: Duration = Duration::from_secs(60);

pub(super) struct Sensors {
    sensors: Vec<(Sensor, Instant)>,
    /// Each sensor's cursor (read from the store on the first turn).
    cursors: Option<HashMap<String, Option<String>>>,
}

impl Sensors {
    pub(super) fn new(project: &Project) -> Self {
        let now = Instant::now();
        Self {
            sensors: project.sensors().iter().map(|s| (s.clone(), now)).collect(),
            cursors: None,
        }
    }

    pub(super) async fn tick(&mut self, shared: &Arc<dyn Host>, project: &Project) {
        if self.sensors.is_empty() {
            return;
        }
        if self.cursors.is_none() {
            match shared.store().sensor_cursors().await {
                Ok(known) => {
                    self.cursors = Some(known.into_iter().map(|(k, (c, _))| (k, c)).collect());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the sensors' cursors");
                    return;
                }
            }
        }
        let now = Instant::now();
        for (sensor, next) in &mut self.sensors {
            if *next > now {
                continue;
            }
            *next = now + sensor.interval;
            let cursors = self.cursors.get_or_insert_with(HashMap::new);
            let cursor = cursors.get(&sensor.name).cloned().flatten();
            let ctx = SensorContext {
                name: sensor.name.clone(),
                cursor: cursor.clone(),
                now: shared.now(),
            };
            let mut call = tokio::spawn(sensor.evaluate(ctx));
            let output = match tokio::time::timeout(TIME_LIMIT, &mut call).await {
                Ok(Ok(Ok(output))) => output,
                Ok(Ok(Err(e))) => {
                    tracing::warn!(sensor = %sensor.name, error = %e, "sensor failed");
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(sensor = %sensor.name, error = %e, "sensor panicked");
                    continue;
                }
                Err(_) => {
                    call.abort();
                    tracing::warn!(sensor = %sensor.name, "sensor took longer than 60 s");
                    continue;
                }
            };
            if let Err(e) = act(shared, project, sensor, &output).await {
                tracing::warn!(sensor = %sensor.name, error = %e, "sensor's request not queued");
                continue;
            }
            let next_cursor = output.cursor.or(cursor);
            if let Err(e) = shared
                .store()
                .record_sensor(&sensor.name, next_cursor.as_deref(), shared.now())
                .await
            {
                tracing::warn!(sensor = %sensor.name, error = %e, "cannot record a sensor's cursor");
            }
            cursors.insert(sensor.name.clone(), next_cursor);
        }
    }
}

/// Queues the runs a sensor asked for. Every request is resolved first: one whose selection is
/// wrong is skipped with a warning (asking again would not mend it), and if the store cannot be
/// read nothing is queued, so a retry with the same cursor does not queue a request twice.
async fn act(
    shared: &Arc<dyn Host>,
    project: &Project,
    sensor: &Sensor,
    output: &SensorOutput,
) -> anyhow::Result<()> {
    let graph = project.graph();
    let mut snapshot = None;
    let mut plans = Vec::new();
    for request in &output.requests {
        let selection = match Selection::parse(&request.selection) {
            Ok(selection) => selection,
            Err(e) => {
                tracing::warn!(sensor = %sensor.name, selection = %request.selection, error = %e, "sensor asked for a selection that does not parse; skipped");
                continue;
            }
        };
        let keys = if selection.needs_facts() {
            if snapshot.is_none() {
                snapshot = Some(Snapshot::load(project, shared.store(), shared.now()).await?);
            }
            snapshot.as_ref().map(|s| s.select(&selection))
        } else {
            Some(selection.select_by_definition(graph))
        };
        let keys: BTreeSet<AssetKey> = match keys {
            Some(Ok(keys)) => keys
                .into_iter()
                .filter(|k| graph.get(k).is_some_and(|d| d.kind != AssetKind::Source))
                .collect(),
            Some(Err(e)) => {
                tracing::warn!(sensor = %sensor.name, selection = %request.selection, error = %e, "sensor asked for a selection that selects nothing known; skipped");
                continue;
            }
            None => continue,
        };
        if keys.is_empty() {
            tracing::info!(sensor = %sensor.name, selection = %request.selection, "sensor's selection has no assets to materialize");
            continue;
        }
        let plan = PlanRequest {
            selection: Some(keys),
            stale_only: request.stale_only,
            ..PlanRequest::default()
        };
        plans.push((plan, request.selection.as_str()));
    }
    for (plan, text) in plans {
        let id = shared
            .materialize(plan, text, &format!("sensor {}", sensor.name))
            .await?;
        tracing::info!(sensor = %sensor.name, run_id = %id, "sensor requested a run");
    }
    Ok(())
}
