//! Sources: listing a source's objects into a data version (an observation), and registering its
//! files as a table for a step or a preview.

use datafusion::common::TableReference;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::error::DataFusionError;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::object_store::{ObjectStore, ObjectStoreExt};
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use futures::TryStreamExt;

use super::engine::Executor;
use super::events::{RunEvent, RunObserver};
use crate::error::one_line;
use crate::fingerprint::Hasher;
use crate::model::{AssetKey, DataVersion, Lineage, Observation};
use crate::planner;
use crate::project::{Computation, SourceFormat, SourcePartition, SourceSpec};
use crate::store::SourceFile;
use crate::{Error, Result};

/// Whether observing records what it saw in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Record {
    Yes,
    No,
}

impl Executor {
    /// Observes sources (all when `keys` is empty) and records the ones whose version moved.
    pub async fn observe(
        &self,
        keys: &[AssetKey],
        observer: &dyn RunObserver,
    ) -> Result<Vec<(Observation, bool)>> {
        for key in keys {
            if !matches!(self.project.computation(key), Some(Computation::Source(_))) {
                return Err(planner::PlanError::NotSource(key.clone()).into());
            }
        }
        let mut lineage = self.store.load_lineage().await?;
        self.observe_into(keys, &mut lineage, observer, Record::Yes)
            .await
    }

    /// A sensor's look at sources (all when `keys` is empty): records a new observation for each
    /// source whose data changed since its current one and returns those; an unchanged source
    /// writes nothing (not even a check time), so looking often costs a listing and, for a file
    /// whose size or time moved, one read of its content.
    pub async fn observe_changes(&self, keys: &[AssetKey]) -> Result<Vec<Observation>> {
        let sources: Vec<(&AssetKey, &SourceSpec)> = self
            .project
            .graph()
            .iter()
            .filter(|d| keys.is_empty() || keys.contains(&d.key))
            .filter_map(|d| match self.project.computation(&d.key) {
                Some(Computation::Source(spec)) => Some((&d.key, spec)),
                _ => None,
            })
            .collect();
        let current = self
            .store
            .load_heads(
                &sources
                    .iter()
                    .map(|(k, _)| (*k).clone())
                    .collect::<Vec<_>>(),
            )
            .await?;
        let mut changed = Vec::new();
        for (key, spec) in sources {
            let seen = self.observe_source(key, spec, Record::Yes).await?;
            if current.observation(key).map(|o| &o.data_version) != Some(&seen.data_version) {
                self.store.record_observation(&seen).await?;
                changed.push(seen);
            }
        }
        Ok(changed)
    }

    /// Observes every source without recording anything, and puts what it saw into `lineage`:
    /// what a run would see, for plans.
    pub async fn peek_sources(&self, lineage: &mut Lineage) -> Result<()> {
        self.observe_into(&[], lineage, &(), Record::No).await?;
        Ok(())
    }

    /// Observes sources (all when `keys` is empty) and updates `lineage` with what it saw: a new
    /// observation for a source whose version moved, a later check time for one that did not.
    pub(super) async fn observe_into(
        &self,
        keys: &[AssetKey],
        lineage: &mut Lineage,
        observer: &dyn RunObserver,
        record: Record,
    ) -> Result<Vec<(Observation, bool)>> {
        let mut out = Vec::new();
        for def in self.project.graph().iter() {
            let Some(Computation::Source(spec)) = self.project.computation(&def.key) else {
                continue;
            };
            if !keys.is_empty() && !keys.contains(&def.key) {
                continue;
            }
            let observation = self.observe_source(&def.key, spec, record).await?;
            let current = lineage.observation(&def.key);
            let changed = current.map(|o| &o.data_version) != Some(&observation.data_version);
            let seen = match current {
                Some(current) if !changed => Observation {
                    checked_at: observation.checked_at,
                    ..current.clone()
                },
                _ => observation.clone(),
            };
            if record == Record::Yes {
                if changed {
                    self.store.record_observation(&seen).await?;
                } else {
                    self.store.record_check(&seen).await?;
                }
            }
            lineage.set_observation(seen);
            observer.event(&RunEvent::Observed {
                observation: &observation,
                changed,
            });
            out.push((observation, changed));
        }
        Ok(out)
    }

    /// The sources whose files are gone (none matches their location now), each with the words
    /// that say so (`no files match /data/raw.csv`). Only listed, never read; a source that
    /// cannot be listed (the network, a 10 s timeout) is not judged gone.
    pub async fn gone_sources(&self) -> std::collections::BTreeMap<AssetKey, String> {
        let sources: Vec<(&AssetKey, &SourceSpec)> = self
            .project
            .graph()
            .iter()
            .filter_map(|d| match self.project.computation(&d.key) {
                Some(Computation::Source(spec)) => Some((&d.key, spec)),
                _ => None,
            })
            .collect();
        let mut gone = std::collections::BTreeMap::new();
        // Eight at once, each stopped at its first file.
        for chunk in sources.chunks(8) {
            let looks: Vec<_> = chunk.iter().map(|(k, s)| self.gone_one(k, s)).collect();
            gone.extend(futures::future::join_all(looks).await.into_iter().flatten());
        }
        gone
    }

    /// `key`, with what its listing found, if no file matches its location (within 10 s).
    async fn gone_one(&self, key: &AssetKey, spec: &SourceSpec) -> Option<(AssetKey, String)> {
        let look = tokio::time::timeout(std::time::Duration::from_secs(10), self.has_files(spec));
        match look.await {
            Ok(false) => Some((
                key.clone(),
                format!("{NONE_MATCH} {}", shown_location(spec)),
            )),
            _ => None,
        }
    }

    /// Whether any file matches `spec`'s location: the first of a listing. A listing that
    /// fails otherwise (the network) counts as having files.
    async fn has_files(&self, spec: &SourceSpec) -> bool {
        use futures::StreamExt as _;
        let ctx = self.session();
        let Ok(url) = ListingTableUrl::parse(&spec.location) else {
            return true;
        };
        let Ok(store) = ctx.runtime_env().object_store(url.object_store()) else {
            return true;
        };
        let state = ctx.state();
        let first = match url
            .list_all_files(&state, store.as_ref(), extension(spec))
            .await
        {
            Ok(mut files) => files.next().await,
            Err(e) => Some(Err(e)),
        };
        match first {
            Some(Ok(_)) => true,
            None => false,
            Some(Err(DataFusionError::ObjectStore(ref inner)))
                if matches!(**inner, datafusion::object_store::Error::NotFound { .. }) =>
            {
                false
            }
            Some(Err(_)) => true,
        }
    }

    /// A source's objects, sorted, with its URL and object store; or why not, and whether
    /// trying again may help (none match: no).
    async fn list_source(
        &self,
        spec: &SourceSpec,
    ) -> std::result::Result<
        (
            ListingTableUrl,
            std::sync::Arc<dyn ObjectStore>,
            Vec<datafusion::object_store::ObjectMeta>,
        ),
        (String, bool),
    > {
        let ctx = self.session();
        let url = ListingTableUrl::parse(&spec.location).map_err(|e| {
            (
                format!("invalid location {}: {}", spec.location, one_line(&e)),
                false,
            )
        })?;
        let store = ctx
            .runtime_env()
            .object_store(url.object_store())
            .map_err(|e| (one_line(&e), false))?;
        let state = ctx.state();
        let listed: datafusion::error::Result<Vec<_>> = async {
            url.list_all_files(&state, store.as_ref(), extension(spec))
                .await?
                .try_collect()
                .await
        }
        .await;
        let mut files = listed.map_err(|e| match e {
            DataFusionError::ObjectStore(ref inner)
                if matches!(**inner, datafusion::object_store::Error::NotFound { .. }) =>
            {
                (format!("{NONE_MATCH} {}", shown_location(spec)), false)
            }
            e => (
                format!("cannot list {}: {}", spec.location, one_line(&e)),
                true,
            ),
        })?;
        if files.is_empty() {
            return Err((format!("{NONE_MATCH} {}", shown_location(spec)), false));
        }
        files.sort_by(|a, b| a.location.cmp(&b.location));
        Ok((url, store, files))
    }

    /// Lists a source's objects and fingerprints their paths and contents. A file is read again
    /// only when its metadata (size, e-tag or modification time) differs from when its content
    /// was last fingerprinted, so touching a file, or rewriting it with the same bytes, is not new
    /// data. With `Record::Yes` the new content fingerprints are remembered in the store.
    pub(super) async fn observe_source(
        &self,
        key: &AssetKey,
        spec: &SourceSpec,
        record: Record,
    ) -> Result<Observation> {
        let now = self.clock.now();
        let fail = |message: String, retryable| Error::Storage {
            message: format!("source {key}: {message}"),
            retryable,
        };
        let (url, store, files) = self
            .list_source(spec)
            .await
            .map_err(|(message, retryable)| fail(message, retryable))?;
        let base = url.object_store();
        let locations: Vec<String> = files
            .iter()
            .map(|f| format!("{}{}", base.as_str(), f.location))
            .collect();
        let known = self.store.source_files(&locations).await?;
        let mut read = Vec::new();
        let mut contents = Vec::with_capacity(files.len());
        let mut h = Hasher::default();
        for (f, location) in files.iter().zip(locations) {
            let mut meta = Hasher::default();
            meta.field(&f.size.to_le_bytes());
            match &f.e_tag {
                Some(tag) => meta.field(tag.as_bytes()),
                None => meta.field(&f.last_modified.timestamp_micros().to_le_bytes()),
            };
            let meta = meta.finish_hex();
            let content = match known.get(&location) {
                Some(k) if k.meta == meta => k.content_hash.clone(),
                _ => {
                    let hash = if base.as_str().starts_with("file://") {
                        local_content_hash(&f.location).await
                    } else {
                        content_hash(store.as_ref(), &f.location, f.size).await
                    }
                    .map_err(|e| fail(format!("cannot read {location}: {}", one_line(&e)), true))?;
                    read.push(SourceFile {
                        location: location.clone(),
                        meta,
                        content_hash: hash.clone(),
                    });
                    hash
                }
            };
            h.field(f.location.as_ref().as_bytes())
                .field(content.as_bytes());
            contents.push(content);
        }
        if record == Record::Yes {
            self.store.remember_source_files(&read).await?;
            if let Some(partition) = &spec.partition {
                self.observe_partitions(key, partition, &files, &contents, now)
                    .await?;
            }
        }
        Ok(Observation {
            asset: key.clone(),
            data_version: DataVersion::new(h.finish_hex()),
            file_count: files.len() as u64,
            byte_size: files.iter().map(|f| f.size).sum(),
            observed_at: now,
            checked_at: now,
        })
    }
}

impl Executor {
    /// Records what the files of the partitioned source `key` (listed as `files`, with their
    /// `contents` fingerprints) hold per partition: each partition's data version fingerprints
    /// its files' paths and contents, so a file landing in a three-day-old folder changes that
    /// day only. Files whose folder names no partition of the definition are left out.
    async fn observe_partitions(
        &self,
        key: &AssetKey,
        partition: &SourcePartition,
        files: &[datafusion::object_store::ObjectMeta],
        contents: &[String],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let Some(partitions) = self.asset_partitions(key).await? else {
            return Ok(());
        };
        let Some((depth, before, after)) = key_segment(partition) else {
            return Ok(());
        };
        let mut by_key: std::collections::BTreeMap<String, (Hasher, u64, u64)> = Default::default();
        for (f, content) in files.iter().zip(contents) {
            let path = f.location.as_ref();
            let Some(segment) = path.split('/').nth(depth) else {
                continue;
            };
            let Some(k) = segment
                .strip_prefix(before.as_str())
                .and_then(|s| s.strip_suffix(after.as_str()))
            else {
                continue;
            };
            let (h, count, bytes) = by_key.entry(k.to_owned()).or_default();
            h.field(path.as_bytes()).field(content.as_bytes());
            *count += 1;
            *bytes += f.size;
        }
        let current = self.store.partition_observations(key).await?;
        let mut present = crate::partitions::PartitionSet::new();
        let mut changed = Vec::new();
        for (k, (h, file_count, byte_size)) in by_key {
            let Some(ordinal) = partitions.ordinal(&k) else {
                continue;
            };
            present.insert(ordinal);
            let data_version = DataVersion::new(h.finish_hex());
            if current.get(&k).map(|o| &o.data_version) == Some(&data_version) {
                continue;
            }
            changed.push((
                k,
                ordinal,
                Observation {
                    asset: key.clone(),
                    data_version,
                    file_count,
                    byte_size,
                    observed_at: now,
                    checked_at: now,
                },
            ));
        }
        self.store
            .record_source_partitions(key, &partitions.numbering(), &present, &changed, now)
            .await?;
        Ok(())
    }
}

/// Where a partitioned source's key is in its files' object paths: the segment's position and
/// the text around `{NAME}` in it (`date={daily}`: `date=` and nothing).
fn key_segment(partition: &SourcePartition) -> Option<(usize, String, String)> {
    let template = &partition.template;
    // The object path: after a URL's scheme and bucket, or a local path without its first `/`.
    let path = match template.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, p)| p),
        None => template.trim_start_matches('/'),
    };
    // Listings name objects by normalized paths: `a/../b` is `b`.
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let placeholder = format!("{{{}}}", partition.name);
    let (depth, segment) = segments
        .into_iter()
        .enumerate()
        .find(|(_, s)| s.contains(&placeholder))?;
    let (before, after) = segment.split_once(&placeholder)?;
    Some((depth, before.to_owned(), after.to_owned()))
}

/// A source's location for a message: a URL without its password or query's secrets.
fn shown_location(spec: &SourceSpec) -> String {
    if spec.location.contains("://") {
        crate::store::redact_url(&spec.location)
    } else {
        spec.location.clone()
    }
}

/// How a listing that found nothing begins.
const NONE_MATCH: &str = "no files match";

/// Bytes requested at once to fingerprint an object in an object store: few requests.
const HASH_READ: u64 = 8 << 20;

/// The fingerprint of a local file's bytes, read into one reused 1 MiB buffer (an object store
/// stream of it comes in 8 KiB chunks, and each range read allocates its size afresh): the same
/// value as [`content_hash`] gives.
async fn local_content_hash(path: &ObjectPath) -> datafusion::object_store::Result<String> {
    let file = datafusion::object_store::local::LocalFileSystem::new().path_to_filesystem(path)?;
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use std::io::Read as _;
        let mut file = std::fs::File::open(file)?;
        let mut buffer = vec![0u8; 1 << 20];
        let mut h = Hasher::default();
        loop {
            match file.read(&mut buffer)? {
                0 => return Ok(h.finish_hex()),
                n => {
                    h.chunk(&buffer[..n]);
                }
            }
        }
    });
    let generic =
        |e: Box<dyn std::error::Error + Send + Sync>| datafusion::object_store::Error::Generic {
            store: "LocalFileSystem",
            source: e,
        };
    read.await
        .map_err(|e| generic(Box::new(e)))?
        .map_err(|e| generic(Box::new(e)))
}

/// The fingerprint of an object's `size` bytes, read in ranges of [`HASH_READ`].
async fn content_hash(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    size: u64,
) -> datafusion::object_store::Result<String> {
    let mut h = Hasher::default();
    let mut start = 0;
    while start < size {
        let end = (start + HASH_READ).min(size);
        h.chunk(&store.get_range(path, start..end).await?);
        start = end;
    }
    Ok(h.finish_hex())
}

/// The ending of the files a source reads: any, where its location (a file or a glob) says
/// which; in a folder, only its format's (`.csv`, `.parquet`, `.json`), so a script or a README
/// beside the data is not read as data.
pub(super) fn extension(spec: &SourceSpec) -> &'static str {
    let glob = spec.location.contains(['*', '?', '[']);
    let folder =
        !glob && ListingTableUrl::parse(&spec.location).is_ok_and(|url| url.is_collection());
    match (folder, spec.format) {
        (false, _) => "",
        (true, SourceFormat::Csv) => ".csv",
        (true, SourceFormat::Parquet) => ".parquet",
        (true, SourceFormat::Json) => ".json",
    }
}

pub(super) async fn register_source(
    ctx: &SessionContext,
    table: TableReference,
    spec: &SourceSpec,
) -> datafusion::error::Result<()> {
    let extension = extension(spec);
    match spec.format {
        SourceFormat::Csv => {
            ctx.register_csv(
                table,
                &spec.location,
                CsvReadOptions::new().file_extension(extension),
            )
            .await
        }
        SourceFormat::Parquet => {
            ctx.register_parquet(
                table,
                &spec.location,
                ParquetReadOptions::default().file_extension(extension),
            )
            .await
        }
        SourceFormat::Json => {
            ctx.register_json(
                table,
                &spec.location,
                JsonReadOptions::default().file_extension(extension),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(template: &str) -> Option<(usize, String, String)> {
        key_segment(&SourcePartition {
            name: "daily".into(),
            template: template.into(),
        })
    }

    #[test]
    fn a_partitioned_source_finds_its_key_where_listings_name_it() {
        let at = |depth, before: &str, after: &str| Some((depth, before.into(), after.into()));
        assert_eq!(
            segment("/data/events/date={daily}/*.csv"),
            at(2, "date=", "")
        );
        // Listings normalize the path: `assets/../target` is `target`.
        assert_eq!(
            segment("/w/assets/../target/./o/date={daily}/*.csv"),
            at(3, "date=", "")
        );
        assert_eq!(
            segment("s3://bucket/raw/{daily}.parquet"),
            at(1, "", ".parquet")
        );
        assert_eq!(segment("/data/events/*.csv"), None);
    }
}
