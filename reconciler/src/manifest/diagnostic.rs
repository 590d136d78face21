//! `Diagnostic`: one problem in the manifests, with its location, and the human renderer.
//!
//! Bad input is data: loading and validation return every diagnostic at once. This module
//! only formats them (STYLE.md §5); it must not print (the CLI does).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::style;

/// One problem in the manifests: where (file, 1-based line and column; 0 = the whole file),
/// which resource and field, what is wrong and, when we can tell, how to fix it. An error
/// stops validate, plan, apply and run; a warning is shown and stops nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: u32,
    pub col: u32,
    /// Address of the resource (`agent.andy`, `wiring.family/andy`), when known.
    pub address: Option<String>,
    /// Field path inside the resource (`engage_pattern`, `mounts[0].host_path`), when known.
    pub field: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

/// How bad a diagnostic is (`"error"` or `"warning"` in JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Error,
    Warning,
}

impl Diagnostic {
    pub fn new(file: &Path, line: u32, col: u32, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line,
            col,
            address: None,
            field: None,
            message: message.into(),
            hint: None,
        }
    }

    /// Makes this a warning: shown, but it does not fail validate, plan, apply or run.
    pub fn warning(mut self) -> Diagnostic {
        self.severity = Severity::Warning;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn address(mut self, address: impl Into<String>) -> Diagnostic {
        self.address = Some(address.into());
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Diagnostic {
        self.field = Some(field.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    pub fn hint_opt(mut self, hint: Option<String>) -> Diagnostic {
        self.hint = hint;
        self
    }

    /// `file:line:col` (or just `file` when the whole file is meant).
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.display().to_string()
        } else {
            format!("{}:{}:{}", self.file.display(), self.line, self.col)
        }
    }
}

/// Manifest values inside messages are shown with their control and invisible characters
/// escaped: what is printed is what is there, and a manifest cannot send a terminal escape.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text(false))
    }
}

impl Diagnostic {
    /// The diagnostic as text (its `Display`); with `color`, the `error:`, `warning:` and
    /// `hint:` labels are styled (`crate::style`), the rest is the same.
    pub fn to_text(&self, color: bool) -> String {
        let (label, palette) = match self.severity {
            Severity::Error => ("error:", style::ERROR),
            Severity::Warning => ("warning:", style::WARNING),
        };
        let mut out = format!(
            "{} {}: ",
            style::paint(palette, label, color),
            shown(&self.location())
        );
        if let Some(address) = &self.address {
            out.push_str(&format!("{}: ", shown(address)));
        }
        out.push_str(&shown(&self.message));
        if let Some(hint) = &self.hint {
            // A hint may span lines (an example file to create); each line is escaped.
            let lines: Vec<String> = hint.split('\n').map(shown).collect();
            let label = style::paint(style::HINT, "hint:", color);
            out.push_str(&format!("\n\n{label} {}", lines.join("\n")));
        }
        out
    }
}

/// Is `c` a control character or one that renders as nothing (Unicode's
/// Default_Ignorable_Code_Point: zero-width, bidi controls, variation selectors, …)?
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c as u32,
            0x00AD
                | 0x034F
                | 0x061C
                | 0x115F..=0x1160
                | 0x17B4..=0x17B5
                | 0x180B..=0x180F
                | 0x200B..=0x200F
                | 0x202A..=0x202E
                | 0x2060..=0x206F
                | 0x3164
                | 0xFE00..=0xFE0F
                | 0xFEFF
                | 0xFFA0
                | 0xFFF0..=0xFFF8
                | 0x1BCA0..=0x1BCA3
                | 0x1D173..=0x1D17A
                | 0xE0000..=0xE0FFF
        )
}

/// `text` with control and invisible characters written as `\u{…}`.
pub fn shown(text: &str) -> String {
    if !text.chars().any(is_invisible) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if is_invisible(c) {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// "3 errors, 1 warning" (or "1 error", "2 warnings").
pub fn summary(diagnostics: &[Diagnostic]) -> String {
    let n_errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let n_warnings = diagnostics.len() - n_errors;
    let count = |n: usize, noun: &str| format!("{n} {noun}{}", if n == 1 { "" } else { "s" });
    match (n_errors, n_warnings) {
        (_, 0) => count(n_errors, "error"),
        (0, _) => count(n_warnings, "warning"),
        _ => format!(
            "{}, {}",
            count(n_errors, "error"),
            count(n_warnings, "warning")
        ),
    }
}

/// All diagnostics as human text, one blank line between them (STYLE.md §5 format).
pub fn render(diagnostics: &[Diagnostic]) -> String {
    render_styled(diagnostics, false)
}

/// [`render`], with the labels styled when `color`.
pub fn render_styled(diagnostics: &[Diagnostic], color: bool) -> String {
    let mut out = String::new();
    for (index, diagnostic) in diagnostics.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        out.push_str(&diagnostic.to_text(color));
        out.push('\n');
    }
    out
}

/// "did you mean `x`?" for the closest candidate within a small edit distance, if any.
/// The distance is strsim's optimal string alignment: a swap of two neighbours (`knid` →
/// `kind`) costs 1, as a typo should.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let limit = (word.chars().count() / 3).max(1) + 1;
    candidates
        .into_iter()
        .map(|candidate| (strsim::osa_distance(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| format!("did you mean `{candidate}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn renders_location_address_message_and_hint() {
        let diagnostic = Diagnostic::new(
            Path::new("manifests/agents.yaml"),
            4,
            3,
            "unknown key `nmae`",
        )
        .address("agent.andy")
        .hint_opt(did_you_mean("nmae", ["name", "model", "image"]));
        expect![[r#"
            error: manifests/agents.yaml:4:3: agent.andy: unknown key `nmae`

            hint: did you mean `name`?
        "#]]
        .assert_eq(&render(&[diagnostic]));
    }

    #[test]
    fn control_and_invisible_characters_are_escaped_when_rendered() {
        let diagnostic = Diagnostic::new(Path::new("m.yaml"), 1, 1, "id `a\u{1b}[2Jb`")
            .address("user.a\u{200b}b")
            .hint("x\u{7}");
        expect![[r#"
            error: m.yaml:1:1: user.a\u{200b}b: id `a\u{1b}[2Jb`

            hint: x\u{7}
        "#]]
        .assert_eq(&render(&[diagnostic]));
    }

    #[test]
    fn a_hint_keeps_its_lines_and_escapes_within_them() {
        let diagnostic = Diagnostic::new(Path::new("m.yaml"), 1, 1, "no allowlist")
            .hint("create it:\nallowed_roots:\n  - path: ~/x\u{1b}");
        expect![[r#"
            error: m.yaml:1:1: no allowlist

            hint: create it:
            allowed_roots:
              - path: ~/x\u{1b}
        "#]]
        .assert_eq(&render(&[diagnostic]));
    }

    #[test]
    fn far_words_get_no_hint() {
        assert_eq!(did_you_mean("zzzzzz", ["name", "model"]), None);
        assert_eq!(
            did_you_mean("knid", ["name", "kind"]).as_deref(),
            Some("did you mean `kind`?")
        );
    }
}
