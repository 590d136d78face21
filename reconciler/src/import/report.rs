//! The import report: every v2 value that did not come across unchanged, grouped by what
//! happened to it, so nothing is dropped silently.
//!
//! Pure data and its text rendering; `cli/import.rs` prints it and writes it next to the
//! manifests. Nothing here reads v2 or writes anything.

use std::fmt::Write as _;

/// What happened to a value, in the order the report lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    /// A v2 id or name that nanoclaw spells differently (agent groups by folder, chats by name).
    Renamed,
    /// A value kept in a form nanoclaw accepts (a default for a NULL, a read-only mount).
    Changed,
    /// A value left out: nanoclaw refuses it; the note says why and what to do.
    Dropped,
    /// Something nanoclaw adds that v2 did not have (the destination every wiring implies).
    Added,
    /// Data v2 keeps that nanoclaw does not model at all (timestamps, pending approvals, …).
    NotModelled,
    /// Files and sessions: what moved, what did not.
    Files,
}

impl Section {
    fn title(self) -> &'static str {
        match self {
            Section::Renamed => "Renamed (v2 id → nanoclaw name)",
            Section::Changed => "Changed to fit nanoclaw",
            Section::Dropped => "Left out (nanoclaw refuses these values)",
            Section::Added => "Added by nanoclaw",
            Section::NotModelled => "Not modelled by nanoclaw (not imported)",
            Section::Files => "Files and sessions",
        }
    }
}

/// One line of the report: what it is about (`agent andy`, `wiring family/andy`) and what
/// happened.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    pub section: Section,
    pub subject: String,
    pub text: String,
}

/// Everything the import has to say, in the order it was found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub notes: Vec<Note>,
}

impl Report {
    pub fn note(&mut self, section: Section, subject: impl Into<String>, text: impl Into<String>) {
        self.notes.push(Note {
            section,
            subject: subject.into(),
            text: text.into(),
        });
    }

    /// The notes of one section.
    pub fn section(&self, section: Section) -> impl Iterator<Item = &Note> {
        self.notes
            .iter()
            .filter(move |note| note.section == section)
    }

    pub fn is_empty(&self) -> bool {
        self.notes.is_empty()
    }

    /// The report as text: a heading, the summary line, then each non-empty section with one
    /// `- subject: text` line per note.
    pub fn render(&self, source: &str, summary: &str) -> String {
        let mut out = format!("Import of the NanoClaw v2 install at {source}\n\n{summary}\n");
        let mut sections: Vec<Section> = self.notes.iter().map(|note| note.section).collect();
        sections.sort();
        sections.dedup();
        if sections.is_empty() {
            out.push_str("\nEvery value came across unchanged.\n");
        }
        for section in sections {
            let _ = write!(out, "\n{}:\n", section.title());
            for note in self.section(section) {
                let _ = writeln!(out, "- {}: {}", note.subject, note.text);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_listed_in_a_fixed_order_with_one_line_per_note() {
        let mut report = Report::default();
        report.note(
            Section::Dropped,
            "agent `a`",
            "effort `huge` is not an effort",
        );
        report.note(
            Section::Renamed,
            "agent group `ag-1`",
            "folder `Main` → agent `main`",
        );
        expect_test::expect![[r#"
            Import of the NanoClaw v2 install at /v2

            Imported 1 agent.

            Renamed (v2 id → nanoclaw name):
            - agent group `ag-1`: folder `Main` → agent `main`

            Left out (nanoclaw refuses these values):
            - agent `a`: effort `huge` is not an effort
        "#]]
        .assert_eq(&report.render("/v2", "Imported 1 agent."));
        expect_test::expect![[r#"
            Import of the NanoClaw v2 install at /v2

            Imported nothing.

            Every value came across unchanged.
        "#]]
        .assert_eq(&Report::default().render("/v2", "Imported nothing."));
    }
}
