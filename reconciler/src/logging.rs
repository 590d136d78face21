//! tracing setup: human-readable text or JSON lines, always to stderr.
//!
//! The filter comes from `NANOCLAW_LOG`, then `RUST_LOG`, then `info`. Colour only when stderr
//! is a terminal and `NO_COLOR` is unset. Plans, tables and JSON go to stdout from `cli/` only.
//!
//! Logging never panics and never fails its caller: a log line that cannot be written (stderr
//! is a pipe whose reader died, as in `nanoclaw run 2>&1 | tee log` after Ctrl-C, or a full
//! disk) is dropped and counted. tracing-subscriber would otherwise report the failed write
//! with `eprintln!`, which panics on the same broken stderr and takes the logging task with it.

use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::env;

/// Log line format on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. Safe to call once per process; later calls are ignored.
/// Returns the count of log lines dropped because stderr could not take them.
pub fn init(format: LogFormat) -> Dropped {
    let filter = env::get(env::NANOCLAW_LOG)
        .or_else(|| env::get(env::RUST_LOG))
        .unwrap_or_else(|| "info".to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = io::stderr().is_terminal() && env::get(env::NO_COLOR).is_none();
    let dropped = Dropped::default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LossyStderr {
            dropped: dropped.clone(),
        })
        .log_internal_errors(false)
        .with_target(false);
    let _already_set = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    dropped
}

/// How many writes to stderr were dropped because they failed.
#[derive(Clone, Debug, Default)]
pub struct Dropped(Arc<AtomicU64>);

impl Dropped {
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A writer that never fails: each write goes to `inner` in full or is dropped and counted.
/// Used for log lines and for everything `run` prints to stderr.
#[derive(Debug)]
pub struct Lossy<W> {
    inner: W,
    dropped: Dropped,
}

impl<W: Write> Lossy<W> {
    pub fn new(inner: W, dropped: Dropped) -> Lossy<W> {
        Lossy { inner, dropped }
    }
}

impl<W: Write> Write for Lossy<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.inner.write_all(buf).is_err() {
            self.dropped.0.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.inner.flush().is_err() {
            self.dropped.0.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// stderr through [`Lossy`]; one `write_all` per log line, so lines from threads never mix.
#[derive(Clone, Debug)]
struct LossyStderr {
    dropped: Dropped,
}

impl<'a> MakeWriter<'a> for LossyStderr {
    type Writer = Lossy<io::StderrLock<'static>>;

    fn make_writer(&'a self) -> Self::Writer {
        Lossy::new(io::stderr().lock(), self.dropped.clone())
    }
}

/// stderr for text `cli/` prints while a command runs (the plan `run` applies, build
/// progress): a failed write is dropped, never a panic like `eprint!`'s.
pub fn stderr() -> Lossy<io::Stderr> {
    Lossy::new(io::stderr(), Dropped::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader is gone: every write fails with EPIPE.
    struct BrokenPipe;

    impl Write for BrokenPipe {
        fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }

        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn issue_8_a_broken_writer_drops_and_counts_instead_of_failing() {
        let dropped = Dropped::default();
        let mut writer = Lossy::new(BrokenPipe, dropped.clone());
        writer.write_all(b"shutting down\n").unwrap();
        writer.flush().unwrap();
        assert_eq!(dropped.count(), 2);
    }

    #[test]
    fn a_working_writer_gets_every_byte() {
        let dropped = Dropped::default();
        let mut writer = Lossy::new(Vec::new(), dropped.clone());
        writeln!(writer, "line").unwrap();
        assert_eq!(writer.inner, b"line\n");
        assert_eq!(dropped.count(), 0);
    }
}
