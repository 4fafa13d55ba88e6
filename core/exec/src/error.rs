//! The crate's one error type.
//!
//! Variants are grouped by whose fault they are: the project's definitions (fix a file), the
//! outside world (a database or object store that fails; often worth retrying), and a step's own
//! computation. Every message is one line and names what is wrong.

use std::fmt;

use datafusion::error::DataFusionError;

use crate::graph::GraphError;
use crate::model::AssetKey;
use crate::planner::PlanError;
use crate::sql::SqlError;

/// Errors from loading, planning and running a project.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `freshet.toml` is missing, malformed or inconsistent.
    #[error("{}: {message}", escaped(.path))]
    Config {
        /// The file, as the user would write it.
        path: String,
        /// What is wrong, with line and column where known.
        message: String,
    },
    /// A `.sql` asset file is malformed.
    #[error("{}: {error}", escaped(.path))]
    Sql {
        /// The file, relative to the project folder.
        path: String,
        /// What is wrong with it.
        error: SqlError,
    },
    /// A definition is invalid on its own (a bad key or setting).
    #[error("{}: {message}", escaped(.origin))]
    Definition {
        /// Where it was defined.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The definitions do not form a valid graph.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A requested materialization cannot be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// An asset named on the command line does not exist.
    #[error("unknown asset {0:?}")]
    UnknownAsset(String),
    /// Another process ended this process's run first (it took the run for dead): what the
    /// store holds, in one line. The run's steps were stopped and nothing more was recorded.
    #[error("{0}")]
    EndedElsewhere(String),
    /// The process is stopping and starts no new run.
    #[error("stopping: no new runs are started")]
    Stopping,
    /// The metadata store failed (its message never includes a password).
    #[error(transparent)]
    Store(#[from] freshet_store::Error),
    /// Object storage or a source's files failed.
    #[error("{message}")]
    Storage {
        /// What failed.
        message: String,
        /// Whether trying again may succeed (network and IO errors), or not (nothing matches).
        retryable: bool,
    },
    /// An asset's computation failed.
    #[error("{asset}: {message}")]
    Execution {
        /// The asset being materialized.
        asset: String,
        /// What failed.
        message: String,
        /// Whether trying again may succeed (IO), or not (the query or function is wrong).
        retryable: bool,
    },
    /// A file of the project could not be read or written.
    #[error("{}: {error}", escaped(.path))]
    Io {
        /// The file.
        path: String,
        /// The cause (shown in the message, so not also a `source()`).
        error: std::io::Error,
    },
}

impl Error {
    /// Whether the failure is in the project's definitions (as opposed to the outside world).
    pub fn is_definition_error(&self) -> bool {
        matches!(
            self,
            Error::Config { .. } | Error::Sql { .. } | Error::Definition { .. } | Error::Graph(_)
        )
    }

    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Storage { retryable, .. } | Error::Execution { retryable, .. } => *retryable,
            Error::Store(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn execution_error(key: &AssetKey, e: DataFusionError) -> Error {
    let retryable = matches!(
        e,
        DataFusionError::ObjectStore(_) | DataFusionError::IoError(_)
    );
    Error::Execution {
        asset: key.to_string(),
        message: cause_first(&local_paths(&one_line(&e))),
        retryable,
    }
}

/// `message` with local paths as the user gave them: DataFusion names a local file by its
/// object-store path, without the leading `/` ("Error when processing CSV file
/// tmp/data/raw.csv"). A word that is such a path of a file or folder that exists gets its `/`
/// back.
pub(crate) fn local_paths(message: &str) -> String {
    let edge = |c: char| matches!(c, ':' | ',' | '.' | ';' | ')' | '(' | '"' | '\'' | '`');
    message
        .split(' ')
        .map(|word| {
            let path = word.trim_matches(edge);
            let relative = !path.starts_with('/') && path.contains('/') && !path.contains("://");
            if relative && std::path::Path::new(&format!("/{path}")).exists() {
                word.replacen(path, &format!("/{path}"), 1)
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn storage_error(key: &AssetKey, e: &datafusion::object_store::Error) -> Error {
    Error::Storage {
        message: format!("{key}: {}", one_line(e)),
        retryable: true,
    }
}

/// A message that ends in an operating system's error (`... Unable to copy data to file: No
/// space left on device (os error 28)`) with that cause first, so that a line cut short (the
/// WHY column of `status`) still names it.
pub(crate) fn cause_first(message: &str) -> String {
    let Some(at) = message.find(" (os error ") else {
        return message.to_owned();
    };
    let Some(start) = message[..at].rfind(": ").map(|i| i + 2) else {
        return message.to_owned();
    };
    let end = message[at..]
        .find(')')
        .map_or(message.len(), |i| at + i + 1);
    let rest = format!("{}{}", &message[..start - 2], &message[end..]);
    format!("{}: {rest}", &message[start..end])
}

pub(crate) fn one_line(e: &dyn fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A path for a one-line message: as given, but with control characters (a newline in a file
/// name) escaped, so the message stays one line.
pub(crate) fn escaped(path: &str) -> std::borrow::Cow<'_, str> {
    if path.chars().any(char::is_control) {
        std::borrow::Cow::Owned(path.chars().flat_map(char::escape_debug).collect())
    } else {
        std::borrow::Cow::Borrowed(path)
    }
}

#[cfg(test)]
mod tests {
    use super::cause_first;

    #[test]
    fn an_os_error_comes_first() {
        assert_eq!(
            cause_first(
                "Parquet error: External: Generic LocalFileSystem error: Unable to copy data to \
                 file: No space left on device (os error 28)"
            ),
            "No space left on device (os error 28): Parquet error: External: Generic \
             LocalFileSystem error: Unable to copy data to file"
        );
        assert_eq!(cause_first("no os error here"), "no os error here");
        assert_eq!(
            cause_first("Permission denied (os error 13) at x"),
            "Permission denied (os error 13) at x"
        );
    }
}
