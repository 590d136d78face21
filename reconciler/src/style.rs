//! The palette of everything nanoclaw prints in colour (plans, diagnostics, image builds), as
//! `anstyle` styles, so one word has one colour everywhere.
//!
//! Renderers return `String`s and decide nothing about terminals: they are told whether to
//! colour (`--color`, `NO_COLOR` and the terminal check are resolved once, in `cli::Ctx`), and
//! the CLI writes through an `anstream` stream that strips any style when colour is off. Output
//! reads the same without colour: a style only decorates.

use anstyle::{AnsiColor, Style};

/// An addition, a success.
pub const ADDED: Style = AnsiColor::Green.on_default();
/// A change in place, a warning.
pub const CHANGED: Style = AnsiColor::Yellow.on_default();
/// A removal.
pub const REMOVED: Style = AnsiColor::Red.on_default();
/// A difference the DB has from the last apply.
pub const DRIFT: Style = AnsiColor::Magenta.on_default();
/// A headline.
pub const STRONG: Style = Style::new().bold();
/// `error:`.
pub const ERROR: Style = AnsiColor::Red.on_default().bold();
/// `warning:`.
pub const WARNING: Style = AnsiColor::Yellow.on_default().bold();
/// `hint:`.
pub const HINT: Style = AnsiColor::Cyan.on_default().bold();

/// `text` in `style` when `color`, else `text` as it is.
pub fn paint(style: Style, text: &str, color: bool) -> String {
    if color {
        format!("{style}{text}{style:#}")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paint_only_decorates() {
        assert_eq!(paint(ADDED, "ok", false), "ok");
        let painted = paint(ADDED, "ok", true);
        assert!(
            painted.starts_with('\u{1b}') && painted.contains("ok"),
            "{painted:?}"
        );
        let mut plain = Vec::new();
        let mut stream = anstream::StripStream::new(&mut plain);
        std::io::Write::write_all(&mut stream, painted.as_bytes()).unwrap();
        assert_eq!(plain, b"ok");
    }
}
