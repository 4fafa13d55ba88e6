//! The compiled Rust catalogues a project opts into (`[project] catalogues`): their sensors and
//! their assets, built and checked against the project's execution settings.

use crate::model::{AssetDef, AutomationCondition};
use crate::policy::{Execution, StepSettings};
use crate::rust_asset::{Catalogues, Compute};
use crate::sensor::Sensor;
use crate::{Error, Result};

/// A catalogue's Rust asset, built and checked.
pub(super) struct Built {
    pub(super) def: AssetDef,
    pub(super) compute: Compute,
    /// Its own execution settings.
    pub(super) settings: StepSettings,
    /// The condition it sets itself, if any (`Some(None)`: explicitly none).
    pub(super) automation: Option<Option<AutomationCondition>>,
}

/// The sensors and the assets of the catalogues `names`, in order. A name this binary has no
/// catalogue for is an error of `freshet.toml` (`config_error`), which names it.
pub(super) fn load(
    names: &[String],
    catalogues: &Catalogues,
    execution: &Execution,
    config_error: impl Fn(String) -> Error,
) -> Result<(Vec<Sensor>, Vec<Built>)> {
    let mut sensors = Vec::new();
    let mut assets = Vec::new();
    for name in names {
        let catalogue = catalogues.get(name).ok_or_else(|| {
            let known: Vec<_> = catalogues.names().collect();
            config_error(format!(
                "unknown catalogue {name:?} (this binary has: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        for sensor in catalogue.sensors() {
            let sensor = sensor.build().map_err(|message| Error::Definition {
                origin: format!("catalogue {name}"),
                message,
            })?;
            if sensors.iter().any(|s: &Sensor| s.name == sensor.name) {
                return Err(Error::Definition {
                    origin: format!("catalogue {name}"),
                    message: format!("two sensors are called {}", sensor.name),
                });
            }
            sensors.push(sensor);
        }
        for asset in catalogue.iter() {
            let (def, compute, own) = asset.build()?;
            let automation = asset.own_automation();
            execution.check(&own).map_err(|message| Error::Definition {
                origin: def.origin.to_string(),
                message: format!("asset {}: {message}", def.key),
            })?;
            assets.push(Built {
                def,
                compute,
                settings: own,
                automation,
            });
        }
    }
    Ok((sensors, assets))
}
