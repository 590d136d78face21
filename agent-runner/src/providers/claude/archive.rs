//! The `PreCompact` hook's archive (agent-runner.md §7.5): before Claude Code compacts a
//! conversation, its transcript is written as Markdown to the agent's
//! `conversations/<UTC date>-<slug>.md`, so what compaction summarises away stays readable.
//!
//! [`render`] and [`file_name`] are pure; [`archive`] reads the transcript and writes the file.
//! It never alters compaction: the hook reports success whatever happens here.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value;

/// Each text is cut to this many characters (and `...`).
pub const MAX_TEXT_CHARS: usize = 2000;
/// The folder under the agent's folder.
pub const CONVERSATIONS_DIR: &str = "conversations";

/// Who said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    User,
    Assistant,
}

/// Reads `transcript` (Claude Code's JSONL) and writes the archive under `agent_dir`.
/// `Ok(None)`: nothing to archive (no transcript, or no text in it).
pub fn archive(
    transcript: &Path,
    session_id: &str,
    agent_dir: &Path,
    assistant_name: Option<&str>,
    tz: &str,
    now: Timestamp,
) -> std::io::Result<Option<PathBuf>> {
    let text = match std::fs::read_to_string(transcript) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let entries = parse_transcript(&text);
    if entries.is_empty() {
        return Ok(None);
    }
    let summary = index_summary(transcript, session_id).or_else(|| transcript_summary(&text));
    let zone = TimeZone::get(&crate::timezone::resolve(tz)).unwrap_or(TimeZone::UTC);
    let local = now.to_zoned_datetime(zone);
    let name = file_name(
        &now.to_zoned_datetime(TimeZone::UTC)
            .strftime("%Y-%m-%d")
            .to_string(),
        summary.as_deref(),
        &local.strftime("%H%M").to_string(),
    );
    let body = render(
        summary.as_deref(),
        &local.strftime("%b %-d, %-I:%M %p").to_string(),
        &entries,
        assistant_name,
    );
    let dir = agent_dir.join(CONVERSATIONS_DIR);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(&name);
    // Whole or not at all: the agent may read the folder at any time.
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, body)?;
    std::fs::rename(&partial, &path)?;
    Ok(Some(path))
}

/// The user and assistant texts of a transcript, in order; lines that are not messages, meta
/// lines, tool calls and results, system reminders and empty texts are left out.
pub fn parse_transcript(jsonl: &str) -> Vec<(Speaker, String)> {
    jsonl
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("isMeta").and_then(Value::as_bool) != Some(true))
        .filter_map(|line| {
            let speaker = match line.get("type").and_then(Value::as_str)? {
                "user" => Speaker::User,
                "assistant" => Speaker::Assistant,
                _ => return None,
            };
            let text = message_text(line.pointer("/message/content")?);
            (!text.is_empty()).then_some((speaker, text))
        })
        .collect()
}

/// A content's text: the string, or its `text` parts joined (system reminders left out).
fn message_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.trim().to_string(),
        Value::Array(parts) => parts
            .iter()
            .filter(|part| part.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .map(str::trim)
            .filter(|text| !text.is_empty() && !text.starts_with("<system-reminder>"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The session's `summary` in `sessions-index.json` beside the transcript (a list of
/// `{sessionId, summary}`, bare or under `entries`), if any.
fn index_summary(transcript: &Path, session_id: &str) -> Option<String> {
    let text = std::fs::read_to_string(transcript.parent()?.join("sessions-index.json")).ok()?;
    let index: Value = serde_json::from_str(&text).ok()?;
    let entries = index.get("entries").unwrap_or(&index).as_array()?;
    entries
        .iter()
        .find(|entry| entry.get("sessionId").and_then(Value::as_str) == Some(session_id))?
        .get("summary")?
        .as_str()
        .filter(|summary| !summary.trim().is_empty())
        .map(str::to_string)
}

/// The last `{"type":"summary"}` line of the transcript, if any.
fn transcript_summary(jsonl: &str) -> Option<String> {
    jsonl
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("type").and_then(Value::as_str) == Some("summary"))
        .filter_map(|line| line.get("summary")?.as_str().map(str::to_string))
        .rfind(|summary| !summary.trim().is_empty())
}

/// `<date>-<slug>.md`: the summary lowercased, runs of other characters than `[a-z0-9]` made
/// one `-`, edge dashes trimmed, at most 50 characters; else `conversation-<HHMM>`.
pub fn file_name(utc_date: &str, summary: Option<&str>, local_hhmm: &str) -> String {
    let slug = summary.map(slug).filter(|slug| !slug.is_empty());
    let slug = slug.unwrap_or_else(|| format!("conversation-{local_hhmm}"));
    format!("{utc_date}-{slug}.md")
}

fn slug(text: &str) -> String {
    let mut slug = String::new();
    for c in text.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_matches('-').chars().take(50).collect();
    slug.trim_end_matches('-').to_string()
}

/// The archive's Markdown.
pub fn render(
    title: Option<&str>,
    archived: &str,
    entries: &[(Speaker, String)],
    assistant_name: Option<&str>,
) -> String {
    let assistant = assistant_name
        .filter(|name| !name.is_empty())
        .unwrap_or("Assistant");
    let mut out = format!(
        "# {}\n\nArchived: {archived}\n\n---\n",
        title.unwrap_or("Conversation")
    );
    for (speaker, text) in entries {
        let who = match speaker {
            Speaker::User => "User",
            Speaker::Assistant => assistant,
        };
        out.push_str(&format!("\n**{who}**: {}\n", cut(text)));
    }
    out
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_TEXT_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(MAX_TEXT_CHARS).collect();
    format!("{head}...")
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    const TRANSCRIPT: &str = r#"{"type":"user","message":{"role":"user","content":"remember the word pineapple"},"sessionId":"s1"}
{"type":"assistant","message":{"role":"assistant","content":[{"type":"text","text":"I will remember pineapple."}]}}
{"type":"assistant","message":{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"Bash","input":{}}]}}
{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"42"}]}}
{"type":"user","isMeta":true,"message":{"role":"user","content":"<local-command-caveat>x</local-command-caveat>"}}
{"type":"user","message":{"role":"user","content":[{"type":"text","text":"<system-reminder>ctx</system-reminder>"},{"type":"text","text":"what was it?"}]}}
{"type":"system","subtype":"x"}
not json
"#;

    #[test]
    fn a_transcript_keeps_only_user_and_assistant_texts() {
        let entries = parse_transcript(TRANSCRIPT);
        expect![[r#"
            [
                (
                    User,
                    "remember the word pineapple",
                ),
                (
                    Assistant,
                    "I will remember pineapple.",
                ),
                (
                    User,
                    "what was it?",
                ),
            ]"#]]
        .assert_eq(&format!("{entries:#?}"));
    }

    #[test]
    fn the_archive_names_the_assistant_and_cuts_long_texts() {
        let mut entries = parse_transcript(TRANSCRIPT);
        entries.push((Speaker::Assistant, "x".repeat(2001)));
        let text = render(Some("Fruit"), "Jun 15, 3:30 PM", &entries, Some("Andy"));
        let head: String = text.lines().take(9).collect::<Vec<_>>().join("\n");
        expect![[r#"
            # Fruit

            Archived: Jun 15, 3:30 PM

            ---

            **User**: remember the word pineapple

            **Andy**: I will remember pineapple."#]]
        .assert_eq(&head);
        assert!(text.ends_with(&format!("**Andy**: {}...\n", "x".repeat(2000))));
        assert!(render(None, "now", &entries, None).starts_with("# Conversation\n"));
        assert!(render(None, "now", &entries, None).contains("**Assistant**: I will"));
    }

    #[test]
    fn file_names_slug_the_summary_or_fall_back_to_the_time() {
        assert_eq!(
            file_name("2026-06-15", Some("  Fixing the Büild: part #2!  "), "1530"),
            "2026-06-15-fixing-the-b-ild-part-2.md"
        );
        assert_eq!(
            file_name("2026-06-15", Some("!!!"), "1530"),
            "2026-06-15-conversation-1530.md"
        );
        assert_eq!(
            file_name("2026-06-15", None, "0905"),
            "2026-06-15-conversation-0905.md"
        );
        let long = file_name("2026-06-15", Some(&"word ".repeat(30)), "0000");
        assert_eq!(long.len(), "2026-06-15-".len() + 49 + ".md".len(), "{long}");
    }

    #[test]
    fn archive_writes_the_file_with_the_index_title() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("projects/-workspace-agent");
        std::fs::create_dir_all(&project).unwrap();
        let transcript = project.join("s1.jsonl");
        std::fs::write(&transcript, TRANSCRIPT).unwrap();
        std::fs::write(
            project.join("sessions-index.json"),
            r#"{"entries":[{"sessionId":"s0","summary":"Other"},{"sessionId":"s1","summary":"Pineapple memory"}]}"#,
        )
        .unwrap();
        let agent = dir.path().join("agent");
        let now: Timestamp = "2026-06-15T23:30:00Z".parse().unwrap();
        let path = archive(&transcript, "s1", &agent, Some("Andy"), "Asia/Tokyo", now)
            .unwrap()
            .unwrap();
        assert_eq!(
            path,
            agent.join("conversations/2026-06-15-pineapple-memory.md")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# Pineapple memory\n\nArchived: Jun 16, 8:30 AM\n"),
            "{text}"
        );
        let missing = archive(&project.join("none.jsonl"), "s1", &agent, None, "UTC", now);
        assert!(missing.unwrap().is_none());
    }
}
