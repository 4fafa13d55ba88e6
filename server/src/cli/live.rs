//! The live display of a run on a terminal: finished steps scroll up as lines, and a footer below
//! them, redrawn a few times a second, shows what is running (with elapsed time), retrying and
//! still queued.

use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use freshet_core::executor::{RunEvent, RunObserver, StepOutcome};

use super::progress::line;

/// How often the footer is redrawn when nothing happens (for the elapsed times).
const TICK: Duration = Duration::from_millis(250);

/// Footer lines are cut to this many characters, so that none wraps on a common terminal.
const WIDTH: usize = 79;

/// Running steps listed one per line; more are counted.
const SHOWN: usize = 8;

/// The display shown now, if any: log lines go above it rather than through it.
static SHOWN_NOW: Mutex<Option<Arc<Shared>>> = Mutex::new(None);

/// Whether stderr is a terminal that understands cursor movement.
pub(super) fn wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
}

/// Shows a run live on stderr until dropped.
pub(super) struct Live {
    shared: Arc<Shared>,
    ticker: Option<JoinHandle<()>>,
}

struct Shared {
    board: Mutex<Board>,
    stop: Condvar,
}

#[derive(Default)]
struct Board {
    total: usize,
    done: usize,
    failed: usize,
    /// Steps started and not ended, in start order: key, since, attempt note.
    running: Vec<(String, Instant, Option<String>)>,
    /// Lines of footer on screen now.
    drawn: usize,
    stopped: bool,
}

impl Live {
    /// Starts the display (and its redraw thread).
    pub(super) fn start() -> Live {
        let shared = Arc::new(Shared {
            board: Mutex::new(Board::default()),
            stop: Condvar::new(),
        });
        *SHOWN_NOW.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&shared));
        let ticking = Arc::clone(&shared);
        let ticker = std::thread::Builder::new()
            .name("freshet-live".into())
            .spawn(move || ticking.tick())
            .ok();
        Live { shared, ticker }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        {
            let mut board = self.shared.lock();
            board.stopped = true;
            let mut err = std::io::stderr().lock();
            board.erase(&mut err);
            // Only now: a log line written meanwhile waited for the board, and goes below.
            SHOWN_NOW
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
        self.shared.stop.notify_all();
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

/// Writes log lines to stderr, above the live display while one is shown (the tracing
/// subscriber's writer: each call is one whole formatted line).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shown = SHOWN_NOW
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // The board before stderr, in this order everywhere, so two writers never wait on
        // each other.
        match shown {
            Some(shared) => {
                let mut board = shared.lock();
                let mut err = std::io::stderr().lock();
                board.erase(&mut err);
                err.write_all(buf)?;
                if board.total > 0 && !board.stopped {
                    board.draw(&mut err);
                }
            }
            None => std::io::stderr().lock().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn tick(&self) {
        let mut board = self.lock();
        while !board.stopped {
            if board.total > 0 {
                let mut err = std::io::stderr().lock();
                board.erase(&mut err);
                board.draw(&mut err);
            }
            board = self
                .stop
                .wait_timeout(board, TICK)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl RunObserver for Live {
    fn event(&self, event: &RunEvent<'_>) {
        let mut board = self.shared.lock();
        match event {
            RunEvent::Planned { steps, .. } => board.total = steps.len(),
            RunEvent::StepStarted { key, .. } => {
                board.running.push((key.to_string(), Instant::now(), None));
            }
            RunEvent::StepRetrying {
                key,
                attempt,
                delay,
                ..
            } => {
                let key = key.to_string();
                if let Some(entry) = board.running.iter_mut().find(|(k, ..)| *k == key) {
                    entry.2 = Some(format!(
                        "attempt {attempt} failed, attempt {} after {}",
                        attempt + 1,
                        freshet_core::policy::duration_words(*delay)
                    ));
                }
            }
            RunEvent::StepFinished { key, outcome, .. } => {
                let key = key.to_string();
                board.running.retain(|(k, ..)| *k != key);
                board.done += 1;
                if matches!(outcome, StepOutcome::Failed { .. }) {
                    board.failed += 1;
                }
            }
            _ => {}
        }
        let mut err = std::io::stderr().lock();
        board.erase(&mut err);
        if let Some(text) = line(event, false) {
            let _ = writeln!(err, "{text}");
        }
        if board.total > 0 {
            board.draw(&mut err);
        }
    }
}

impl Board {
    /// Removes the footer from the screen.
    fn erase(&mut self, out: &mut impl std::io::Write) {
        if self.drawn > 0 {
            // Up to the footer's first line, then clear to the end of the screen.
            let _ = write!(out, "\x1b[{}F\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    /// Writes the footer below the last line.
    fn draw(&mut self, out: &mut impl std::io::Write) {
        let queued = self.total - self.done - self.running.len();
        let mut lines = Vec::new();
        for (key, since, note) in self.running.iter().take(SHOWN) {
            let elapsed = format!("{:.1}s", since.elapsed().as_secs_f64());
            lines.push(match note {
                Some(note) => format!("  running  {key} {elapsed} ({note})"),
                None => format!("  running  {key} {elapsed}"),
            });
        }
        if self.running.len() > SHOWN {
            lines.push(format!(
                "  ... and {} more running",
                self.running.len() - SHOWN
            ));
        }
        let failed = if self.failed > 0 {
            format!(", {} failed", self.failed)
        } else {
            String::new()
        };
        lines.push(format!(
            "  {}/{} done{failed}, {} running, {queued} queued",
            self.done,
            self.total,
            self.running.len()
        ));
        for text in &lines {
            // A line that wraps would throw the count of lines to erase off.
            let text: String = text.chars().take(WIDTH).collect();
            let _ = writeln!(out, "{text}");
        }
        let _ = out.flush();
        self.drawn = lines.len();
    }
}
