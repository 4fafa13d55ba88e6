//! Custom sensors in Rust: a function the daemon calls on an interval with the cursor it
//! returned last time, returning run requests (a selection each) and its next cursor. For what
//! no file or object store shows: an API's "last updated", a queue's depth, a partner's
//! drop-box. A project uses the sensors of the catalogues it names.
//!
//! ```no_run
//! use std::time::Duration;
//! use freshet_core::sensor::{RustSensor, SensorOutput, SensorRequest};
//!
//! let sensor = RustSensor::new("partner_upload")
//!     .interval(Duration::from_secs(60))
//!     .evaluate(|ctx| async move {
//!         let seen = ctx.cursor.unwrap_or_default();
//!         let latest = "2026-12-03".to_owned(); // ask the partner's API here
//!         let mut out = SensorOutput::default();
//!         if latest != seen {
//!             out.requests.push(SensorRequest::stale("+partner_orders"));
//!         }
//!         out.cursor = Some(latest);
//!         Ok(out)
//!     });
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::rust_asset::BoxError;

/// What a sensor's function is given.
#[derive(Debug, Clone)]
pub struct SensorContext {
    /// The sensor's name.
    pub name: String,
    /// What it returned as its cursor last time (`None` the first time).
    pub cursor: Option<String>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// A run a sensor asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorRequest {
    /// A selection, as `freshet materialize` reads it (`+daily_revenue`, `tag:finance`).
    pub selection: String,
    /// Only what is missing or stale in it (`true`), or all of it.
    pub stale_only: bool,
}

impl SensorRequest {
    /// What is missing or stale in `selection`.
    pub fn stale(selection: &str) -> Self {
        Self {
            selection: selection.to_owned(),
            stale_only: true,
        }
    }

    /// All of `selection`.
    pub fn all(selection: &str) -> Self {
        Self {
            selection: selection.to_owned(),
            stale_only: false,
        }
    }
}

/// What a sensor's function returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SensorOutput {
    /// Runs to ask for (each becomes a run triggered by `sensor NAME`).
    pub requests: Vec<SensorRequest>,
    /// What to give it next time; `None` keeps the previous one.
    pub cursor: Option<String>,
}

/// A sensor's function.
pub(crate) type SensorFn =
    Arc<dyn Fn(SensorContext) -> BoxFuture<'static, Result<SensorOutput, BoxError>> + Send + Sync>;

/// A sensor under construction; checked when a project that uses its catalogue loads.
#[derive(Clone)]
pub struct RustSensor {
    name: String,
    interval: Duration,
    evaluate: Option<SensorFn>,
    location: String,
}

impl fmt::Debug for RustSensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustSensor")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl RustSensor {
    /// A sensor called `name` (letters, digits and underscores), called every 30 s unless
    /// [`RustSensor::interval`] says otherwise.
    #[track_caller]
    pub fn new(name: &str) -> Self {
        let caller = std::panic::Location::caller();
        Self {
            name: name.to_owned(),
            interval: Duration::from_secs(30),
            evaluate: None,
            location: format!("{}:{}", caller.file(), caller.line()),
        }
    }

    /// How often it is called.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Its function.
    pub fn evaluate<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(SensorContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<SensorOutput, BoxError>> + Send + 'static,
    {
        self.evaluate = Some(Arc::new(move |ctx| Box::pin(f(ctx))));
        self
    }

    /// Checks it: a valid name, a function, an interval of at least a second.
    pub(crate) fn build(&self) -> Result<Sensor, String> {
        let at = &self.location;
        if !crate::sql::is_identifier(&self.name) {
            return Err(format!(
                "{at}: sensor {:?}: use letters, digits and underscores in its name",
                self.name
            ));
        }
        if self.interval < Duration::from_secs(1) {
            return Err(format!(
                "{at}: sensor {}: its interval must be at least 1s",
                self.name
            ));
        }
        let evaluate = self
            .evaluate
            .clone()
            .ok_or_else(|| format!("{at}: sensor {} has no evaluate function", self.name))?;
        Ok(Sensor {
            name: self.name.clone(),
            interval: self.interval,
            evaluate,
        })
    }
}

/// A checked sensor of a loaded project.
#[derive(Clone)]
pub struct Sensor {
    /// Its name.
    pub name: String,
    /// How often it is called.
    pub interval: Duration,
    evaluate: SensorFn,
}

impl fmt::Debug for Sensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sensor")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Sensor {
    /// Calls its function.
    pub fn evaluate(
        &self,
        ctx: SensorContext,
    ) -> BoxFuture<'static, Result<SensorOutput, BoxError>> {
        (self.evaluate)(ctx)
    }
}
