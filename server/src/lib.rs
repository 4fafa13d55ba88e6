//! The `freshet` command line ([`Cli`], [`run`]), (in [`serve`]) the HTTP API and web view, and
//! the automation loop both `freshet daemon` and `freshet serve` run.
//!
//! **Boundary:** the only crate that knows about terminals, JSON output and HTTP. Core types
//! never become the wire format: [`json`] owns the JSON shapes and converts from core types;
//! [`output`] prints text and JSON for the command line; [`words`] holds the words for people
//! both use.

pub mod automation;
mod cli;
mod init;
pub mod json;
pub mod output;
pub mod serve;
pub mod words;

pub use cli::{Cli, LogFormat, run};

/// Installs the log subscriber on stderr: warnings by default, `RUST_LOG` to change; lines for
/// people, or one JSON object per line for a log collector.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| cli::live::LogWriter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}
