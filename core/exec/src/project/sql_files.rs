//! Discovering and loading a project's `.sql` files: which files are assets, and each file's
//! definition, or why it is broken.

use std::path::{Path, PathBuf};

use crate::model::{AssetDef, AssetKey, AssetKind, AutomationCondition, DEFAULT_GROUP, Origin};
use crate::partitions::Mapping;
use crate::policy::StepSettings;
use crate::sql::{is_identifier, parse_sql_asset};
use crate::{Error, Result};

/// Every `.sql` file below `root`, sorted, skipping hidden folders.
pub(super) fn sql_files(
    dir: &Path,
    root: &Path,
    skipped: &mut Vec<String>,
) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let io = |e| Error::Io {
            path: folder.display().to_string(),
            error: e,
        };
        for entry in std::fs::read_dir(&folder).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let is_sql = path.extension().is_some_and(|e| e == "sql");
            let name = path.file_name().map(|n| n.to_string_lossy());
            if name.as_deref().is_some_and(|n| n.starts_with('.')) {
                // Hidden: version control, editors' files. A hidden `.sql` file is said, as
                // a user may well have meant it as an asset (`..sql`, `.orders.sql`).
                if is_sql {
                    skipped.push(format!(
                        "{}: not read: its name starts with '.' (hidden); rename it to make it an asset",
                        crate::error::escaped(&shown(dir, &path))
                    ));
                }
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if is_sql {
                // Only regular files (or links to one): a FIFO would block every command until
                // something writes to it, and a device such as /dev/zero never ends.
                match std::fs::metadata(&path) {
                    Ok(meta) if meta.is_file() => out.push(path),
                    Ok(_) => skipped.push(format!(
                        "{}: not read: not a regular file (a FIFO, a device or a socket)",
                        crate::error::escaped(&shown(dir, &path))
                    )),
                    // A dangling link, say: the file's own read reports it as its error.
                    Err(_) => out.push(path),
                }
            }
        }
    }
    out.sort();
    skipped.sort();
    Ok(out)
}

/// `path` as shown in messages: relative to the project folder.
fn shown(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

/// The most a SQL file may hold: 1 MiB. A model larger than this is generated, and parsing and
/// planning it would cost every command seconds and gigabytes (a 1.9 MB `UNION ALL` took 18 s
/// and 2.5 GB); past it the file breaks only its own asset, read no further.
pub const MAX_SQL_BYTES: u64 = 1 << 20;

/// Reads at most [`MAX_SQL_BYTES`] of the file at `path`; a larger one is refused by its size.
fn read_bounded(path: &Path) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_SQL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_SQL_BYTES {
        let size = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(format!(
            "too large: {} bytes, and a SQL file may hold at most {} (1 MiB)",
            size, MAX_SQL_BYTES
        ));
    }
    Ok(bytes)
}

/// A SQL file's query, execution settings, own automation condition and input mappings.
pub(super) type SqlParts = (
    String,
    StepSettings,
    Option<Option<AutomationCondition>>,
    Vec<(AssetKey, Mapping)>,
);

/// A SQL file's definition and, unless its text is broken, its parts. Only a file name that is
/// not a key fails the whole project: without a key there is no asset to mark broken.
pub(super) fn sql_def(
    dir: &Path,
    sql_root: &Path,
    path: &Path,
) -> Result<(AssetDef, Result<SqlParts>)> {
    let relative = path.strip_prefix(dir).unwrap_or(path).display().to_string();
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let key = AssetKey::parse(stem).map_err(|e| Error::Definition {
        origin: relative.clone(),
        message: format!("{e} (the file name is the asset key)"),
    })?;
    // A file in a sub-folder of the SQL folder belongs to the group named after that folder.
    let folder_group = path
        .strip_prefix(sql_root)
        .ok()
        .and_then(|p| p.parent())
        .and_then(|p| p.components().next())
        .and_then(|c| c.as_os_str().to_str())
        .filter(|g| is_identifier(g));
    let mut def = AssetDef::new(
        key,
        AssetKind::Sql,
        Origin::File {
            path: relative.clone(),
        },
    );
    def.group = folder_group.unwrap_or(DEFAULT_GROUP).to_owned();
    let bytes = match read_bounded(path) {
        Ok(bytes) => bytes,
        Err(message) => {
            let error = Error::Definition {
                origin: relative,
                message,
            };
            return Ok((def, Err(error)));
        }
    };
    // A broken file's version is its bytes', so fixing it or breaking it otherwise changes it.
    def.code_version = Some(crate::model::CodeVersion::new(format!(
        "file:{}",
        crate::fingerprint::hash_hex(&bytes)
    )));
    let parsed = String::from_utf8(bytes)
        .map_err(|_| Error::Definition {
            origin: relative.clone(),
            message: "not UTF-8 text".to_owned(),
        })
        .and_then(|text| {
            // A byte-order mark, as some Windows editors write, is not part of the query.
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            parse_sql_asset(text).map_err(|error| Error::Sql {
                path: relative.clone(),
                error,
            })
        });
    let asset = match parsed {
        Ok(asset) => asset,
        Err(error) => return Ok((def, Err(error))),
    };
    def.deps = asset.deps;
    def.code_version = Some(asset.code_version);
    def.description = asset.header.description;
    if let Some(group) = asset.header.group {
        def.group = group;
    }
    def.tags = asset.header.tags;
    def.owners = asset.header.owners;
    def.freshness = asset.header.freshness;
    def.partitions = asset.header.partitions;
    Ok((
        def,
        Ok((
            asset.query,
            asset.header.execution,
            asset.header.automation,
            asset.header.inputs,
        )),
    ))
}
