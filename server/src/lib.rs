//! The `freshet` command line ([`Cli`], [`run`]), (in [`serve`]) the HTTP API and web view, and
//! the automation loop both `freshet daemon` and `freshet serve` run.
//!
//! **Boundary:** the only crate that knows about terminals, JSON output and HTTP. Core types
//! never become the wire format: [`json`] owns the JSON shapes and converts from core types;
//! [`output`] prints text and JSON for the command line; [`words`] holds the words for people
//! both use.

/// `println!` for results on stdout, which stops quietly when stdout is closed (`| head`)
/// instead of panicking: the command goes on and ends as it would have.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod automation;
mod cli;
mod init;
pub mod json;
pub mod output;
pub mod serve;
pub mod words;

pub use cli::{Cli, LogFormat, run};

/// The log format chosen at start-up (text until [`init_tracing`] says otherwise).
static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Says something about the process itself on stderr (where it serves, that it stops): a line
/// `freshet: MESSAGE`, or under `--log-format json` a log object like the others, so a log
/// collector reads nothing but JSON.
pub(crate) fn notice(message: &str) {
    say("INFO", "freshet: ", message);
}

/// Prints a warning: `warning: ...` on one line, or a log object of level `WARN`.
pub(crate) fn warning(message: &str) {
    say("WARN", "warning: ", message);
}

/// Prints the error a command ended with: `error: ...` on one line, or under `--log-format
/// json` a log object of level `ERROR`.
pub fn print_error(error: &anyhow::Error) {
    say("ERROR", "error: ", &format!("{error:#}"));
}

/// `PREFIX MESSAGE` on stderr, or a JSON log object of `level` under `--log-format json`.
fn say(level: &str, prefix: &str, message: &str) {
    if logs_are_json() {
        let line = serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": level,
            "target": "freshet",
            "message": message,
        });
        eprintln!("{line}");
    } else {
        eprintln!("{prefix}{message}");
    }
}

/// Whether logs are JSON objects (`--log-format json`).
pub(crate) fn logs_are_json() -> bool {
    LOG_FORMAT.get() == Some(&LogFormat::Json)
}

/// Installs the log subscriber on stderr: warnings by default, `RUST_LOG` to change; lines for
/// people, or one JSON object per line for a log collector.
pub fn init_tracing(format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only on a terminal, and never with NO_COLOR set (https://no-color.org).
    use std::io::IsTerminal as _;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
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
