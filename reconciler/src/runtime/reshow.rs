//! Pending cards shown again to a late reader (issue 12, docs/runtime.md#approvals): a card sent
//! to a CLI chat nobody was reading is not lost. When a reader says hello in a chat (the CLI
//! adapter reports it as a new reader), the approvals actor hands it every approval still
//! pending there, oldest first, each with its options and its expiry, as it was first sent.
//!
//! Each showing gets an outbound id of its own (`<approval>-card-<nonce>`): the CLI channel
//! remembers the acknowledgements of earlier readers by id, and a repeat id would count as shown
//! already. The reader's client shows a card it has on screen once. Approvals without a card (a
//! question answered by a plain reply, like a new agent's name) are not shown again.

use rusqlite::Connection;
use serde_json::Value;

use crate::channels::Outbound;
use crate::channels::card::Card;
use crate::db::approvals as rows;

/// The outbound messages that show chat `(channel_type, platform_id)`'s pending cards again,
/// oldest first.
pub fn pending_cards(
    conn: &Connection,
    (channel_type, platform_id): (&str, &str),
    now_ms: i64,
    arrived_ms: i64,
) -> rusqlite::Result<Vec<Outbound>> {
    let pending = rows::pending_in_chat(conn, channel_type, platform_id, now_ms, arrived_ms)?;
    Ok(pending.iter().filter_map(card_again).collect())
}

/// The card of a pending approval as a message, marked with its expiry; `None` when the
/// approval has no card.
fn card_again(approval: &rows::Approval) -> Option<Outbound> {
    let content: Value = serde_json::from_str(&approval.card_json).ok()?;
    Card::from_content(&content)?;
    Some(Outbound {
        id: format!(
            "{}-card-{}",
            approval.id,
            agent_runner::session_db::ids::rand6()
        ),
        agent: None,
        platform_id: approval.card_platform_id.clone(),
        thread_id: None,
        kind: "chat-sdk".to_string(),
        content: with_expiry(content, approval.expires_at_ms),
        in_reply_to: None,
        files: Vec::new(),
    })
}

/// Card content with `expiresAt` (ISO-8601 UTC, to the second) set from `expires_at_ms`, for
/// channels that show when a card stops taking answers.
pub fn with_expiry(mut content: Value, expires_at_ms: i64) -> Value {
    if let (Some(fields), Ok(at)) = (
        content.as_object_mut(),
        jiff::Timestamp::from_millisecond(expires_at_ms),
    ) {
        fields.insert(
            "expiresAt".to_string(),
            Value::String(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::card::CardOption;

    fn approval(id: &str, card_json: String) -> rows::Approval {
        rows::Approval {
            id: id.into(),
            kind: "unknown_sender".into(),
            subject: id.into(),
            agent: None,
            payload: "{}".into(),
            approver: "cli:local".into(),
            card_channel_type: "cli".into(),
            card_platform_id: "local".into(),
            card_json,
            expires_at_ms: 1_800_000_000_000,
        }
    }

    #[test]
    fn issue_12_a_pending_card_goes_again_with_its_options_and_expiry_under_a_fresh_id() {
        let card = Card {
            id: "apv-1".into(),
            title: "👤 New sender".into(),
            body: "Ann wants to talk. Allow?".into(),
            options: vec![CardOption {
                id: "allow".into(),
                label: "Allow".into(),
                chosen: "✅ Allowed".into(),
            }],
        };
        let pending = approval("apv-1", card.to_content().to_string());
        let first = card_again(&pending).expect("a card");
        let second = card_again(&pending).expect("a card");
        assert!(first.id.starts_with("apv-1-card-"), "{}", first.id);
        assert_ne!(first.id, second.id, "each showing is a message of its own");
        assert_eq!(Card::from_content(&first.content), Some(card));
        assert_eq!(first.content["expiresAt"], "2027-01-15T08:00:00Z");
        assert_eq!(first.platform_id, "local");
        assert!(
            card_again(&approval("apv-2", "{}".into())).is_none(),
            "no card, nothing to show again"
        );
    }
}
