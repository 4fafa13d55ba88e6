//! `freshet gc`: removes the files of versions beyond the retention and the files nothing
//! references (what a killed or failed write left behind), and records what it removed.
//!
//! Never removed: an asset's current version, the `keep` versions before it, any version of an
//! input of an asset a live run is computing (the step reads the version that was current when
//! it started), and any file under the folder of an asset a live run is computing (it may be
//! being written). What exists is listed before the store is read, so a version recorded while gc
//! runs is seen as referenced. A collected version stays in the history, marked with when its
//! files were removed; it is marked before its files go, so an interrupted gc leaves at worst
//! unreferenced files, which the next gc removes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use datafusion::object_store::path::Path as ObjectPath;
use datafusion::object_store::{ObjectMeta, ObjectStoreExt};
use futures::TryStreamExt;
use url::Url;

use super::engine::Executor;
use crate::error::one_line;
use crate::model::{AssetKey, MaterializationId};
use crate::{Error, Result};

/// What a garbage collection removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Versions whose files were removed, oldest first.
    pub versions: Vec<CollectedVersion>,
    /// Files no version references, with their sizes: left by killed or failed writes.
    pub orphans: Vec<(String, u64)>,
    /// Versions beyond the retention kept because a live run reads their asset.
    pub in_use: usize,
    /// Whether nothing was removed (`--dry-run`).
    pub dry_run: bool,
}

impl GcReport {
    /// Bytes removed in all.
    pub fn bytes(&self) -> u64 {
        self.versions.iter().map(|v| v.bytes).sum::<u64>()
            + self.orphans.iter().map(|(_, b)| b).sum::<u64>()
    }
}

/// One version gc removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedVersion {
    /// Its asset.
    pub asset: AssetKey,
    /// Its id.
    pub id: MaterializationId,
    /// The size of its files.
    pub bytes: u64,
}

impl Executor {
    /// Removes the versions beyond the newest `keep` before each asset's current one, and
    /// unreferenced files; with `dry_run`, only says what it would remove.
    pub async fn gc(&self, keep: u32, dry_run: bool) -> Result<GcReport> {
        let storage_error = |e: &dyn std::fmt::Display| Error::Storage {
            message: format!(
                "cannot list {}: {}",
                self.project.storage_url(),
                one_line(e)
            ),
            retryable: true,
        };
        // What exists, first.
        let objects: Vec<ObjectMeta> = match self
            .output
            .list(Some(&self.output_base))
            .try_collect()
            .await
        {
            Ok(objects) => objects,
            Err(datafusion::object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(storage_error(&e)),
        };
        let staged = match local_root(self.project.storage_url()) {
            Some(root) => tokio::task::spawn_blocking(move || staged_files(&root))
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };

        let now = self.clock.now();
        let leased = self.store.leased_assets().await?;
        let graph = self.project.graph();
        let read_now: BTreeSet<&AssetKey> = leased
            .iter()
            .filter_map(|k| graph.get(k))
            .flat_map(|d| d.deps.iter())
            .collect();
        // Prefixes ending in `/`, so that `a/` does not cover `ab/`.
        let busy: Vec<String> = leased
            .iter()
            .map(|k| format!("{}/", self.asset_folder(k)))
            .collect();

        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        let mut victims = Vec::new();
        for version in self.store.versions_beyond(keep).await? {
            if read_now.contains(&version.asset) {
                report.in_use += 1;
            } else {
                victims.push(version);
            }
        }
        let referenced: BTreeSet<String> = self
            .store
            .referenced_locations()
            .await?
            .iter()
            .filter_map(|l| object_path(l))
            .collect();

        let under = |path: &str, set: &BTreeSet<String>| {
            let mut prefix = path;
            loop {
                if set.contains(prefix) {
                    return true;
                }
                match prefix.rfind('/') {
                    Some(i) => prefix = &prefix[..i],
                    None => return false,
                }
            }
        };
        let in_busy_folder = |path: &str| busy.iter().any(|f| path.starts_with(f.as_str()));
        for o in &objects {
            let path = o.location.as_ref();
            if !path.ends_with(".parquet") || under(path, &referenced) || in_busy_folder(path) {
                continue;
            }
            report.orphans.push((path.to_owned(), o.size));
        }
        let mut staged_orphans = Vec::new();
        for (file, object, size) in staged {
            if !in_busy_folder(&object) {
                report.orphans.push((object, size));
                staged_orphans.push(file);
            }
        }

        for v in &victims {
            report.versions.push(CollectedVersion {
                asset: v.asset.clone(),
                id: v.id.clone(),
                bytes: v.byte_size,
            });
        }
        if dry_run {
            return Ok(report);
        }
        let ids: Vec<MaterializationId> = victims.iter().map(|v| v.id.clone()).collect();
        self.store.mark_collected(&ids, now).await?;
        let delete_error = |path: &str, e: &dyn std::fmt::Display| Error::Storage {
            message: format!("cannot remove {path}: {}", one_line(e)),
            retryable: true,
        };
        for v in &victims {
            let Some(path) = object_path(&v.location) else {
                continue;
            };
            let path = ObjectPath::from(path);
            if v.location.ends_with('/') {
                self.remove_folder(&path).await;
            } else {
                match self.output.delete(&path).await {
                    Ok(()) | Err(datafusion::object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(delete_error(path.as_ref(), &e)),
                }
            }
        }
        for (path, _) in report
            .orphans
            .iter()
            .filter(|(p, _)| p.ends_with(".parquet"))
        {
            match self.output.delete(&ObjectPath::from(path.as_str())).await {
                Ok(()) | Err(datafusion::object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(delete_error(path, &e)),
            }
        }
        // On local disk, the folders of what was removed go too once empty (a folder that still
        // holds anything stays).
        if let Some(root) = local_root(self.project.storage_url()) {
            let mut folders: BTreeSet<PathBuf> = BTreeSet::new();
            for v in &victims {
                if let Some(path) = object_path(&v.location).filter(|_| v.location.ends_with('/')) {
                    folders.insert(Path::new("/").join(path));
                }
            }
            for (path, _) in &report.orphans {
                if let Some(parent) = Path::new("/").join(path).parent() {
                    folders.insert(parent.to_path_buf());
                }
            }
            for file in staged_orphans {
                let _ = std::fs::remove_file(file);
            }
            for folder in folders.into_iter().rev() {
                if folder.starts_with(&root) && folder != root {
                    let _ = std::fs::remove_dir(folder);
                }
            }
        }
        Ok(report)
    }
}

/// The object path of a location URL (for local files, the path from the root).
fn object_path(location: &str) -> Option<String> {
    let url = Url::parse(location).ok()?;
    let path = ObjectPath::from_url_path(url.path().trim_end_matches('/')).ok()?;
    Some(path.to_string())
}

/// The local folder of a `file://` storage URL.
fn local_root(url: &Url) -> Option<PathBuf> {
    (url.scheme() == "file")
        .then(|| url.to_file_path().ok())
        .flatten()
}

/// Staging files a killed write left on local disk (`<name>.parquet#<n>`, which listings do not
/// show): their file, object path and size.
fn staged_files(root: &Path) -> Vec<(PathBuf, String, u64)> {
    let mut out = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                folders.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let staged = name
                .split_once(".parquet#")
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if staged
                && let Some(object) = path.to_str().map(|p| p.trim_start_matches('/').to_owned())
            {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((path, object, size));
            }
        }
    }
    out
}
