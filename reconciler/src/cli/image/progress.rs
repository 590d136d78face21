//! How an image build looks while it runs: on a terminal an indicatif display (a bar of the
//! Dockerfile's steps with the elapsed time, and the build's latest output line under it);
//! otherwise plain lines, one per step and one per output line. Every line is also kept in
//! memory, and written to a file when the build fails (`keep_log`).
//!
//! It only shows and records; deciding and building is `cli::image` and `containers`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::containers::BuildProgress;

/// Longest step line kept on screen once the step is done when the terminal's width is
/// unknown (the log has every line whole).
const DONE_LINE_CHARS: usize = 100;

/// The display of one `nanoclaw image build` or of the builds `nanoclaw run` starts.
pub(crate) struct BuildDisplay {
    /// The bars, on a terminal only.
    bars: Option<Bars>,
    /// Every line shown (or that would have been shown), for the log file.
    log: Vec<String>,
    /// The step in progress and when it started.
    step: Option<(String, Instant)>,
}

struct Bars {
    multi: MultiProgress,
    /// Steps: position, length, the step's text.
    main: ProgressBar,
    /// The build's latest output line.
    detail: ProgressBar,
}

/// A Dockerfile step line, `Step 4/17 : RUN …`, as (4, 17, `RUN …`).
pub(crate) fn parse_step(line: &str) -> Option<(u64, u64, &str)> {
    let rest = line.strip_prefix("Step ")?;
    let (counts, text) = rest.split_once(" : ")?;
    let (number, total) = counts.split_once('/')?;
    Some((number.parse().ok()?, total.parse().ok()?, text))
}

/// `12.3 s`, `3m 22s`.
pub(crate) fn duration_text(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs < 60 {
        format!("{:.1} s", duration.as_secs_f64())
    } else {
        format!("{}m {:02}s", secs / 60, secs % 60)
    }
}

/// Bytes as Docker shows image sizes (decimal): `883 MB`, `5.6 MB`.
pub(crate) fn size_text(bytes: i64) -> String {
    let megabytes = bytes as f64 / 1e6;
    if megabytes >= 100.0 {
        format!("{megabytes:.0} MB")
    } else {
        format!("{megabytes:.1} MB")
    }
}

/// Columns of the terminal on stderr.
fn terminal_columns() -> usize {
    rustix::termios::tcgetwinsize(std::io::stderr())
        .map(|size| usize::from(size.ws_col))
        .ok()
        .filter(|columns| *columns > 0)
        .unwrap_or(DONE_LINE_CHARS)
}

/// `text` with runs of whitespace squeezed (a Dockerfile's continued lines) and cut to
/// `chars` characters.
fn shorten(text: &str, chars: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= chars {
        text.to_string()
    } else {
        let kept: String = text.chars().take(chars.saturating_sub(1)).collect();
        let kept = kept.trim_end();
        format!("{kept}…")
    }
}

impl BuildDisplay {
    /// `terminal`: stderr is a terminal (bars); `color`: colour is allowed.
    pub(crate) fn new(terminal: bool, color: bool) -> BuildDisplay {
        BuildDisplay {
            bars: terminal.then(|| Bars::new(color)),
            log: Vec::new(),
            step: None,
        }
    }

    /// A line for the person waiting (what is built and why, the result).
    pub(crate) fn note(&mut self, line: &str) {
        self.log.push(line.to_string());
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(line);
            }
            None => say!("{line}"),
        }
    }

    /// A line for the log only (the error, which the caller prints).
    pub(crate) fn record(&mut self, line: &str) {
        self.log.push(line.to_string());
    }

    /// One event of the build.
    pub(crate) fn event(&mut self, progress: BuildProgress) {
        match progress {
            BuildProgress::Step(line) => {
                self.log.push(line.clone());
                self.end_step();
                match &self.bars {
                    Some(bars) => bars.start_step(&line),
                    None => say!("{line}"),
                }
                self.step = Some((line, Instant::now()));
            }
            BuildProgress::Output(line) => {
                self.log.push(format!("  {line}"));
                match &self.bars {
                    Some(bars) => bars.detail.set_message(line.trim().to_string()),
                    None => say!("  {line}"),
                }
            }
        }
    }

    /// Ends the display (the last step is shown as done; the bars disappear).
    pub(crate) fn finish(&mut self) {
        self.end_step();
        if let Some(bars) = self.bars.take() {
            bars.detail.finish_and_clear();
            bars.main.finish_and_clear();
            let _ = bars.multi.clear();
        }
    }

    /// On a terminal, the finished step stays on screen with its duration.
    fn end_step(&mut self) {
        let Some((line, started)) = self.step.take() else {
            return;
        };
        if let Some(bars) = &self.bars {
            let took = format!(" ({})", duration_text(started.elapsed()));
            let room = terminal_columns().saturating_sub(took.chars().count() + 3);
            let done = format!("✓ {}{took}", shorten(&line, room.max(20)));
            let _ = bars.multi.println(done);
        }
    }

    /// Writes every line so far to a new file in `dir` (created 0700 if missing), named after
    /// the recipe and the time; returns its path.
    pub(crate) fn keep_log(&self, dir: &Path, recipe: &str) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let path = dir.join(format!("image-build-{recipe}-{stamp}.log"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        for line in &self.log {
            writeln!(file, "{line}")?;
        }
        file.sync_all()?;
        Ok(path)
    }
}

impl Drop for BuildDisplay {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Bars {
    fn new(color: bool) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let (main_template, detail_template) = if color {
            (
                "{spinner:.cyan} [{elapsed_precise}] [{bar:20.cyan/blue}] {prefix:.bold} {wide_msg}",
                "  {wide_msg:.dim}",
            )
        } else {
            (
                "{spinner} [{elapsed_precise}] [{bar:20}] {prefix} {wide_msg}",
                "  {wide_msg}",
            )
        };
        let main = multi.add(ProgressBar::new(0));
        main.set_style(
            ProgressStyle::with_template(main_template)
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        main.enable_steady_tick(Duration::from_millis(120));
        let detail = multi.add(ProgressBar::new(0));
        detail.set_style(
            ProgressStyle::with_template(detail_template).expect("the template is valid"),
        );
        Bars {
            multi,
            main,
            detail,
        }
    }

    fn start_step(&self, line: &str) {
        match parse_step(line) {
            Some((number, total, text)) => {
                self.main.set_length(total);
                self.main.set_position(number.saturating_sub(1));
                self.main.set_prefix(format!("{number}/{total}"));
                self.main.set_message(shorten(text, 500));
            }
            None => {
                self.main.set_prefix("base");
                self.main.set_message(shorten(line, 500));
            }
        }
        self.detail.set_message(String::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lines_give_number_total_and_text() {
        assert_eq!(
            parse_step("Step 4/17 : RUN apt-get update"),
            Some((4, 17, "RUN apt-get update"))
        );
        assert_eq!(parse_step(" ---> Running in 1234"), None);
        assert_eq!(parse_step("Step x/17 : RUN"), None);
        assert_eq!(parse_step("making the Debian base"), None);
    }

    #[test]
    fn durations_and_sizes_read_like_docker() {
        assert_eq!(duration_text(Duration::from_millis(12_340)), "12.3 s");
        assert_eq!(duration_text(Duration::from_secs(202)), "3m 22s");
        assert_eq!(size_text(883_205_230), "883 MB");
        assert_eq!(size_text(5_620_816), "5.6 MB");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("RUN a \\\n    && b", 40), "RUN a \\ && b");
        assert_eq!(shorten("abc", 4), "abc");
    }

    #[test]
    fn without_a_terminal_every_line_is_kept_for_the_log() {
        let mut display = BuildDisplay::new(false, false);
        display.note("building `x`");
        display.event(BuildProgress::Step("Step 1/2 : FROM scratch".into()));
        display.event(BuildProgress::Output("---> abc".into()));
        display.finish();
        let dir = tempfile::tempdir().unwrap();
        let path = display
            .keep_log(&dir.path().join("logs"), "minimal")
            .unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("image-build-minimal-") && name.ends_with("Z.log"),
            "{name}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "building `x`\nStep 1/2 : FROM scratch\n  ---> abc\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
