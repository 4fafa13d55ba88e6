//! The executor itself: the project, the store, the object stores it reaches, and its clock.

use std::fmt;
use std::sync::Arc;

use datafusion::object_store::ObjectStore;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::prelude::{SessionConfig, SessionContext};
use url::Url;

use crate::error::one_line;
use crate::freshness::{Clock, SystemClock};
use crate::policy::default_concurrency;
use crate::project::{Computation, Project};
use crate::store::Store;
use crate::{Error, Result};

/// Runs a project's assets against a store and an output location. Cheap to clone: each step
/// runs in a task of its own with a clone.
#[derive(Clone)]
pub struct Executor {
    pub(super) project: Project,
    pub(super) store: Store,
    pub(super) output: Arc<dyn ObjectStore>,
    pub(super) output_base: ObjectPath,
    /// Object stores other than local disk (the output's, sources'), built once, registered in
    /// every session.
    pub(super) remote_stores: Arc<[(Url, Arc<dyn ObjectStore>)]>,
    /// DataFusion partitions per step: the cores shared among the steps that run at once, so
    /// that together they do not oversubscribe the machine.
    pub(super) partitions: usize,
    /// Where every time the executor records comes from.
    pub(super) clock: Arc<dyn Clock>,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("project", &self.project)
            .field("output", &self.output_base)
            .finish()
    }
}

impl Executor {
    /// An executor writing under the project's storage URL.
    pub fn new(project: Project, store: Store) -> Result<Self> {
        let url = project.storage_url();
        let (output, output_base) = object_store_for(url, project.object_store_options())?;
        let mut remote_stores = Vec::new();
        if url.scheme() != "file" {
            remote_stores.push((url.clone(), output.clone()));
        }
        for def in project.graph().iter() {
            if let Some(Computation::Source(spec)) = project.computation(&def.key)
                && let Ok(source_url) = Url::parse(&spec.location)
                && source_url.scheme() != "file"
            {
                let (store, _) = object_store_for(&source_url, project.object_store_options())?;
                remote_stores.push((source_url, store));
            }
        }
        let partitions = (default_concurrency() / project.execution().concurrency).max(1);
        Ok(Self {
            project,
            store,
            output,
            output_base,
            remote_stores: remote_stores.into(),
            partitions,
            clock: Arc::new(SystemClock),
        })
    }

    /// The same executor reading the time from `clock` (a test's manual clock) for every time
    /// it records: run and step starts and ends, log lines, materializations, observations.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The project.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A new DataFusion session that can reach the output storage and every source's store.
    pub(super) fn session(&self) -> SessionContext {
        let config = SessionConfig::new()
            .with_information_schema(false)
            .with_target_partitions(self.partitions);
        let ctx = SessionContext::new_with_config(config);
        for (url, store) in self.remote_stores.iter() {
            ctx.register_object_store(url, store.clone());
        }
        ctx
    }
}

/// The object store for `url`, configured with `options` (credentials, endpoint, region).
fn object_store_for(
    url: &Url,
    options: &[(String, String)],
) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    let (store, path) = datafusion::object_store::parse_url_opts(url, options.iter().cloned())
        .map_err(|e| Error::Storage {
            message: format!("object store {url}: {}", one_line(&e)),
            retryable: false,
        })?;
    Ok((Arc::from(store), path))
}
