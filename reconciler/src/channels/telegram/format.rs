//! Outbound text (pure): Markdown → plain text plus message entities, and splitting at
//! Telegram's 4096-character limit.
//!
//! Formatting travels as entities, never as MarkdownV2 markup: the text is sent as written and
//! the bold/italic/code spans ride beside it as offsets, so no character needs escaping and a
//! reply full of `_*[]()~>#+-=|{}.!` arrives exactly as the agent wrote it. The Markdown read
//! is the small subset agents write: `**bold**`/`__bold__`, `*italic*`/`_italic_`, `~~strike~~`,
//! `` `code` ``, fenced ```` ``` ```` blocks (with a language), `[text](https://…)` links and
//! backslash escapes. A delimiter without its partner, or in the middle of a word for `_`, is
//! text. Offsets and the limit count UTF-16 code units, as the Bot API does.

use super::types::MessageEntity;

/// Telegram's limit for one message's text, in UTF-16 code units.
pub const MAX_MESSAGE: usize = 4096;
/// Telegram's limit for a photo or document caption.
pub const MAX_CAPTION: usize = 1024;

/// Text with its entities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Formatted {
    pub text: String,
    pub entities: Vec<MessageEntity>,
}

/// Renders Markdown to text and entities.
pub fn markdown(source: &str) -> Formatted {
    let chars: Vec<char> = source.chars().collect();
    let mut writer = Writer::default();
    writer.block(&chars);
    Formatted {
        text: writer.text,
        entities: writer.entities,
    }
}

/// Plain text, no entities.
pub fn plain(text: &str) -> Formatted {
    Formatted {
        text: text.to_string(),
        entities: Vec::new(),
    }
}

/// Splits into chunks of at most `limit` UTF-16 units: at the last blank line before the
/// limit, else the last line break, else the last space, else a hard cut. Chunks are trimmed
/// (empty ones dropped) and each keeps the parts of the entities that fall inside it.
pub fn split(formatted: &Formatted, limit: usize) -> Vec<Formatted> {
    let chars: Vec<char> = formatted.text.chars().collect();
    // UTF-16 offset of each char boundary.
    let mut offsets = Vec::with_capacity(chars.len() + 1);
    let mut units = 0;
    for c in &chars {
        offsets.push(units);
        units += c.len_utf16();
    }
    offsets.push(units);
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = start;
        while end < chars.len() && offsets[end + 1] - offsets[start] <= limit {
            end += 1;
        }
        if end < chars.len() {
            end = cut_point(&chars[start..end]).map_or(end, |cut| start + cut);
        }
        push_chunk(formatted, &chars, &offsets, start, end, &mut chunks);
        start = end;
    }
    chunks
}

/// Where to cut a window that is too long (an index into `window`, > 0), if a separator is in it.
fn cut_point(window: &[char]) -> Option<usize> {
    let blank_line = window
        .windows(2)
        .rposition(|pair| pair == ['\n', '\n'])
        .map(|at| at + 2);
    let newline = || window.iter().rposition(|c| *c == '\n').map(|at| at + 1);
    let space = || window.iter().rposition(|c| *c == ' ').map(|at| at + 1);
    blank_line
        .or_else(newline)
        .or_else(space)
        .filter(|cut| *cut > 0)
}

fn push_chunk(
    formatted: &Formatted,
    chars: &[char],
    offsets: &[usize],
    mut start: usize,
    mut end: usize,
    chunks: &mut Vec<Formatted>,
) {
    while start < end && chars[start].is_whitespace() {
        start += 1;
    }
    while end > start && chars[end - 1].is_whitespace() {
        end -= 1;
    }
    if start == end {
        return;
    }
    let (from, to) = (offsets[start], offsets[end]);
    let entities = formatted
        .entities
        .iter()
        .filter_map(|entity| {
            let begin = entity.offset.max(from);
            let finish = (entity.offset + entity.length).min(to);
            (begin < finish).then(|| MessageEntity {
                offset: begin - from,
                length: finish - begin,
                ..entity.clone()
            })
        })
        .collect();
    chunks.push(Formatted {
        text: chars[start..end].iter().collect(),
        entities,
    });
}

/// Builds the text and entities; `units` is the text's length in UTF-16 code units.
#[derive(Default)]
struct Writer {
    text: String,
    units: usize,
    entities: Vec<MessageEntity>,
}

impl Writer {
    fn push(&mut self, c: char) {
        self.text.push(c);
        self.units += c.len_utf16();
    }

    fn push_all(&mut self, chars: &[char]) {
        for c in chars {
            self.push(*c);
        }
    }

    /// Fenced code blocks at line starts, inline Markdown elsewhere.
    fn block(&mut self, chars: &[char]) {
        let mut line_start = 0;
        let mut at = 0;
        while at < chars.len() {
            let at_line_start = at == 0 || chars[at - 1] == '\n';
            if at_line_start && let Some((language, body, next)) = fence(chars, at) {
                self.inline(&chars[line_start..at]);
                let offset = self.units;
                self.push_all(body);
                let mut entity = MessageEntity::new("pre", offset, self.units - offset);
                entity.language = language;
                if entity.length > 0 {
                    self.entities.push(entity);
                }
                at = next;
                line_start = next;
                continue;
            }
            at += 1;
        }
        self.inline(&chars[line_start..]);
    }

    fn inline(&mut self, chars: &[char]) {
        let mut at = 0;
        while at < chars.len() {
            let c = chars[at];
            let next = chars.get(at + 1).copied();
            if c == '\\' && next.is_some_and(|next| next.is_ascii_punctuation()) {
                self.push(chars[at + 1]);
                at += 2;
                continue;
            }
            if c == '`'
                && let Some(close) = find(chars, at + 1, |i| chars[i] == '`')
                && close > at + 1
            {
                self.wrap("code", |writer| writer.push_all(&chars[at + 1..close]));
                at = close + 1;
                continue;
            }
            if let Some((kind, width)) = double_delimiter(chars, at)
                && let Some(close) = closing(chars, at + width, &chars[at..at + width])
            {
                let inner = &chars[at + width..close];
                self.wrap(kind, |writer| writer.inline(inner));
                at = close + width;
                continue;
            }
            if (c == '*' || c == '_')
                && opens(chars, at)
                && let Some(close) = closing(chars, at + 1, &chars[at..=at])
            {
                let inner = &chars[at + 1..close];
                self.wrap("italic", |writer| writer.inline(inner));
                at = close + 1;
                continue;
            }
            if c == '['
                && let Some((text_end, url, next)) = link(chars, at)
            {
                let inner = &chars[at + 1..text_end];
                let offset = self.units;
                self.inline(inner);
                let mut entity = MessageEntity::new("text_link", offset, self.units - offset);
                entity.url = Some(url);
                self.entities.push(entity);
                at = next;
                continue;
            }
            self.push(c);
            at += 1;
        }
    }

    fn wrap(&mut self, kind: &str, write: impl FnOnce(&mut Writer)) {
        let offset = self.units;
        let index = self.entities.len();
        write(self);
        if self.units > offset {
            // Outer entities first, as Telegram lists them.
            self.entities
                .insert(index, MessageEntity::new(kind, offset, self.units - offset));
        }
    }
}

/// `**`, `__` (bold) or `~~` (strikethrough) opening at `at`.
fn double_delimiter(chars: &[char], at: usize) -> Option<(&'static str, usize)> {
    let pair = chars.get(at..at + 2)?;
    let kind = match pair {
        ['*', '*'] => "bold",
        ['_', '_'] => "bold",
        ['~', '~'] => "strikethrough",
        _ => return None,
    };
    let followed = chars.get(at + 2).is_some_and(|next| !next.is_whitespace());
    (followed && !word_before(chars, at)).then_some((kind, 2))
}

/// A delimiter at `at` can open: a non-space follows it and it does not sit inside a word
/// (`snake_case`, `2*3*4` stay text).
fn opens(chars: &[char], at: usize) -> bool {
    let followed = chars.get(at + 1).is_some_and(|next| !next.is_whitespace());
    followed && !word_before(chars, at)
}

fn word_before(chars: &[char], at: usize) -> bool {
    at > 0 && chars[at - 1].is_alphanumeric()
}

/// The start of the closing `delimiter` after `from`: preceded by a non-space and not followed
/// by a letter or digit; a single `*` or `_` is not half of a double one.
fn closing(chars: &[char], from: usize, delimiter: &[char]) -> Option<usize> {
    let width = delimiter.len();
    (from + 1..=chars.len().saturating_sub(width)).find(|&i| {
        chars[i..i + width] == *delimiter
            && !chars[i - 1].is_whitespace()
            && !chars.get(i + width).is_some_and(|c| c.is_alphanumeric())
            && (width == 2
                || (chars.get(i + 1) != Some(&delimiter[0]) && chars[i - 1] != delimiter[0]))
    })
}

fn find(chars: &[char], from: usize, found: impl Fn(usize) -> bool) -> Option<usize> {
    (from..chars.len()).find(|&i| found(i))
}

/// A fenced block starting at the line start `at`: ```` ```lang ````, lines, ```` ``` ````.
/// Returns its language, body and where the text after it starts.
fn fence(chars: &[char], at: usize) -> Option<(Option<String>, &[char], usize)> {
    if chars.get(at..at + 3)? != ['`', '`', '`'] {
        return None;
    }
    let header_end = find(chars, at + 3, |i| chars[i] == '\n')?;
    let language: String = chars[at + 3..header_end].iter().collect();
    let language = language.trim();
    if language.contains(char::is_whitespace) || language.contains('`') {
        return None;
    }
    let body_start = header_end + 1;
    let close = (body_start..chars.len()).find(|&i| {
        (i == body_start || chars[i - 1] == '\n') && chars.get(i..i + 3) == Some(&['`', '`', '`'])
    })?;
    let body_end = if close > body_start { close - 1 } else { close };
    let next = close + 3;
    let language = (!language.is_empty()).then(|| language.to_string());
    Some((language, &chars[body_start..body_end], next))
}

/// `[text](url)` at `at` with a non-empty text and a web, `tg:` or `mailto:` URL: the end of
/// the text, the URL and where the text after it starts.
fn link(chars: &[char], at: usize) -> Option<(usize, String, usize)> {
    let text_end = find(chars, at + 1, |i| chars[i] == ']' || chars[i] == '\n')?;
    if chars[text_end] != ']' || text_end == at + 1 || chars.get(text_end + 1) != Some(&'(') {
        return None;
    }
    let url_end = find(chars, text_end + 2, |i| {
        chars[i] == ')' || chars[i].is_whitespace()
    })?;
    if chars[url_end] != ')' {
        return None;
    }
    let url: String = chars[text_end + 2..url_end].iter().collect();
    let allowed = ["https://", "http://", "tg://", "mailto:"]
        .iter()
        .any(|scheme| url.starts_with(scheme) && url.len() > scheme.len());
    allowed.then_some((text_end, url, url_end + 1))
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    #[track_caller]
    fn check(source: &str, expect: Expect) {
        let formatted = markdown(source);
        let mut shown = formatted.text.clone();
        let units: Vec<u16> = formatted.text.encode_utf16().collect();
        for entity in &formatted.entities {
            let covered =
                String::from_utf16_lossy(&units[entity.offset..entity.offset + entity.length]);
            shown += &format!("\n{} {:?}", entity.kind, covered);
            if let Some(url) = &entity.url {
                shown += &format!(" -> {url}");
            }
            if let Some(language) = &entity.language {
                shown += &format!(" ({language})");
            }
        }
        expect.assert_eq(&shown);
    }

    #[test]
    fn issue_12_markdown_special_characters_arrive_intact() {
        let special = "_*[]()~>#+-=|{}.!";
        for text in [
            special.to_string(),
            format!("echo: {special}"),
            "a_b_c file_name.txt 2*3*4 = 24, C:\\path and ~ or [x] (y)".to_string(),
            "price: 5 * 3 = 15 ** not bold ** _ spaced _".to_string(),
        ] {
            let formatted = markdown(&text);
            assert_eq!(formatted.text, text);
            assert_eq!(formatted.entities, vec![], "{text}");
        }
    }

    #[test]
    fn common_markdown_becomes_entities() {
        check(
            "**bold** and *it* and _it too_ and ~~gone~~, `a*b_c` [site](https://example.com) \\*lit\\*",
            expect![[r#"
                bold and it and it too and gone, a*b_c site *lit*
                bold "bold"
                italic "it"
                italic "it too"
                strikethrough "gone"
                code "a*b_c"
                text_link "site" -> https://example.com"#]],
        );
        check(
            "**bold *nested* 🎉** after",
            expect![[r#"
                bold nested 🎉 after
                bold "bold nested 🎉"
                italic "nested""#]],
        );
    }

    #[test]
    fn fenced_blocks_keep_their_text_and_language() {
        check(
            "look:\n```rust\nlet x = a_b * c;\n```\ndone",
            expect![[r#"
                look:
                let x = a_b * c;
                done
                pre "let x = a_b * c;" (rust)"#]],
        );
        check("``` not a fence", expect!["``` not a fence"]);
    }

    #[test]
    fn unsafe_links_stay_text() {
        check(
            "[x](javascript:alert(1)) [](https://e.com) [y](https://e.com/a b)",
            expect!["[x](javascript:alert(1)) [](https://e.com) [y](https://e.com/a b)"],
        );
    }

    #[track_caller]
    fn chunk_lengths(formatted: &Formatted, limit: usize) -> Vec<usize> {
        let chunks = split(formatted, limit);
        for chunk in &chunks {
            assert!(chunk.text.encode_utf16().count() <= limit);
        }
        chunks
            .iter()
            .map(|chunk| chunk.text.chars().count())
            .collect()
    }

    #[test]
    fn issue_12_long_text_splits_at_blank_line_then_newline_then_space() {
        let paragraph = "word ".repeat(700); // 3500 characters
        let text = format!("{paragraph}\n\n{paragraph}\nline two\n{paragraph}");
        let chunks = split(&plain(&text), MAX_MESSAGE);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].text, paragraph.trim());
        assert_eq!(chunks[1].text, format!("{paragraph}\nline two").trim());
        let rejoined: String = chunks
            .iter()
            .map(|chunk| chunk.text.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            rejoined,
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        assert_eq!(
            chunk_lengths(&plain(&"x".repeat(9000)), MAX_MESSAGE),
            [4096, 4096, 808]
        );
        assert_eq!(chunk_lengths(&plain("aaaa bbbb cccc"), 9), [4, 9]);
    }

    #[test]
    fn splitting_counts_utf16_units_and_keeps_entities_in_their_chunk() {
        let emoji = "🎉".repeat(3000); // 6000 UTF-16 units
        let lengths = chunk_lengths(&plain(&emoji), MAX_MESSAGE);
        assert_eq!(lengths, [2048, 952]);
        let formatted = markdown("**aaaa bbbb** cccc");
        let chunks = split(&formatted, 6);
        let shown: Vec<String> = chunks
            .iter()
            .map(|chunk| {
                format!(
                    "{:?} {:?}",
                    chunk.text,
                    chunk
                        .entities
                        .iter()
                        .map(|e| (e.kind.as_str(), e.offset, e.length))
                        .collect::<Vec<_>>()
                )
            })
            .collect();
        expect![[
            r#"["\"aaaa\" [(\"bold\", 0, 4)]", "\"bbbb\" [(\"bold\", 0, 4)]", "\"cccc\" []"]"#
        ]]
        .assert_eq(&format!("{shown:?}"));
    }
}
