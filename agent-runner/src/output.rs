//! Output parsing (docs/agent-runner.md#output-parsing): `<message to="…">` blocks, scratchpad,
//! nudge.
//!
//! Pure: the poll loop resolves destinations and writes rows. Deliberate change (runner quirk 15,
//! docs/agent-runner.md#decisions-on-the-quirks-of-reference-13): `<internal>…</internal>` inside a
//! block is stripped before delivery, as outside blocks.

use std::sync::LazyLock;

use regex::Regex;

static BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"<message\s+to="([^"]+)"\s*>((?s:.*?))</message>"#).expect("valid regex")
});
static INTERNAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)<internal>.*?</internal>").expect("valid regex"));

/// One `<message to>` block: destination name and trimmed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub to: String,
    pub body: String,
}

/// A parsed result text: blocks in order plus the text outside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub blocks: Vec<Block>,
    /// Text between and around blocks (internal tags not yet stripped).
    pub outside: String,
}

/// Splits a result into blocks and outside text.
pub fn parse(text: &str) -> Parsed {
    let mut blocks = Vec::new();
    let mut outside = String::new();
    let mut last = 0;
    for cap in BLOCK.captures_iter(text) {
        let (Some(all), Some(to), Some(body)) = (cap.get(0), cap.get(1), cap.get(2)) else {
            continue;
        };
        outside.push_str(&text[last..all.start()]);
        last = all.end();
        blocks.push(Block {
            to: to.as_str().to_string(),
            body: strip_internal_tags(body.as_str()),
        });
    }
    outside.push_str(&text[last..]);
    Parsed { blocks, outside }
}

/// Removes every `<internal>…</internal>` (multi-line, non-greedy), then trims.
pub fn strip_internal_tags(text: &str) -> String {
    INTERNAL.replace_all(text, "").trim().to_string()
}

/// The one-per-turn reminder pushed when a result delivered nothing
/// (docs/agent-runner.md#output-parsing).
pub fn nudge(destination_names: &[String]) -> String {
    format!(
        "<system>Your last response was not delivered: it was not wrapped in \
         <message to=\"name\">...</message> blocks. All output must be wrapped: use \
         <message to=\"name\"> to send and <internal> for scratchpad. Your destinations: {}. \
         Please re-send your response.</system>",
        destination_names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_single_line_internal_tags_and_trims() {
        assert_eq!(
            strip_internal_tags(" hello <internal>x</internal> world "),
            "hello  world"
        );
    }

    #[test]
    fn strips_multi_line_and_multiple_blocks() {
        assert_eq!(
            strip_internal_tags("a<internal>\nx\ny\n</internal>b<internal>z</internal>c"),
            "abc"
        );
    }

    #[test]
    fn only_internal_tags_become_empty() {
        assert_eq!(strip_internal_tags("<internal>x</internal>"), "");
    }

    #[test]
    fn no_internal_tags_unchanged() {
        assert_eq!(strip_internal_tags("plain text"), "plain text");
    }

    #[test]
    fn preserves_surrounding_content() {
        assert_eq!(
            strip_internal_tags("before <internal>x</internal> after"),
            "before  after"
        );
    }

    #[test]
    fn parses_blocks_and_outside_text() {
        let p = parse(
            "think <message to=\"a\">\n one \n</message><internal>mid</internal>\
             <message to=\"b\">two <internal>secret</internal></message> tail",
        );
        assert_eq!(
            p.blocks,
            vec![
                Block {
                    to: "a".into(),
                    body: "one".into()
                },
                Block {
                    to: "b".into(),
                    body: "two".into()
                }
            ]
        );
        assert_eq!(strip_internal_tags(&p.outside), "think  tail");
    }

    #[test]
    fn only_double_quoted_to_is_a_block() {
        assert!(parse("<message to='a'>x</message>").blocks.is_empty());
        assert!(
            parse("<message to=\"a\" x=\"1\">x</message>")
                .blocks
                .is_empty()
        );
    }

    #[test]
    fn nudge_lists_destinations() {
        let n = nudge(&["casa".into(), "work".into()]);
        assert!(n.contains("Your destinations: casa, work."));
        assert!(n.contains("<message to=\"name\">...</message>"));
    }
}
