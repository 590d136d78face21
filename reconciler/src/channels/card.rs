//! Cards: a question with options that a person answers by choosing one, the same on every
//! channel (docs/runtime.md#approvals). The runtime sends a [`Card`] as outbound content;
//! each adapter renders it its own way (the CLI as numbered options, Telegram as an inline
//! keyboard) and hands the choice back as an [`Answer`], with the person who chose. After the
//! decision the runtime sends an [`Outcome`], which the adapter shows in place of the card
//! where it can edit messages, or as a new line where it cannot.
//!
//! On the wire a card is v2's `ask_question` content (`questionId`, `title`, `question`,
//! `options` with `label`, `value`, `selectedLabel`), so adapters that already render
//! questions render cards with no change. This module does no IO.

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// Longest card id: ids travel in Telegram's 64-byte callback data with a prefix and an index.
pub const MAX_ID: usize = 32;

/// A question with options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    /// Unique, letters, digits and `-` only (no `:`: adapters use it as a separator).
    pub id: String,
    pub title: String,
    pub body: String,
    pub options: Vec<CardOption>,
}

/// One choice of a card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardOption {
    /// What the answer carries back (`allow`, `deny`, `connect:andy`).
    pub id: String,
    /// What the button or line shows (`Allow`).
    pub label: String,
    /// What the card shows once this option was chosen (`✅ Allowed`).
    pub chosen: String,
}

/// What became of a card: shown in place of it (or after it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub card: String,
    pub title: String,
    /// `✅ Allowed by cli:local`, `⌛ Expired`.
    pub text: String,
}

/// A person chose an option of a card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub card: String,
    pub option: String,
    /// The person who chose, namespaced (`telegram:123`, `cli:local`).
    pub responder: String,
    /// Where they chose it (for a note back to them).
    pub channel_type: String,
    pub platform_id: String,
}

/// What the runtime did with an [`Answer`], told back to the adapter that took it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The answer decided the card; the text is its outcome.
    Decided(String),
    /// The responder may not answer this card; the text says who may.
    Refused(String),
    /// No pending card has that id (decided already, expired, never sent).
    Unknown,
}

/// An answer on its way to the runtime, with where the verdict goes.
#[derive(Debug)]
pub struct Answered {
    pub answer: Answer,
    pub verdict: Option<oneshot::Sender<Verdict>>,
}

/// Where adapters send answers (given at `Adapter::start`).
pub type Answers = mpsc::Sender<Answered>;

impl Card {
    /// The card as outbound content.
    pub fn to_content(&self) -> Value {
        let options: Vec<Value> = self
            .options
            .iter()
            .map(|option| {
                json!({"label": option.label, "value": option.id, "selectedLabel": option.chosen})
            })
            .collect();
        json!({
            "type": "ask_question",
            "questionId": self.id,
            "title": self.title,
            "question": self.body,
            "options": options,
        })
    }

    /// The card in outbound content, if the content is one.
    pub fn from_content(content: &Value) -> Option<Card> {
        if content.get("type").and_then(Value::as_str) != Some("ask_question") {
            return None;
        }
        let text =
            |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
        let options = content
            .get("options")?
            .as_array()?
            .iter()
            .filter_map(CardOption::from_value)
            .collect();
        Some(Card {
            id: text(content, "questionId")?,
            title: text(content, "title").unwrap_or_default(),
            body: text(content, "question").unwrap_or_default(),
            options,
        })
    }

    /// The card as plain text with numbered options, for channels without buttons.
    pub fn to_text(&self) -> String {
        let mut text = format!("{}\n\n{}\n", self.title, self.body);
        for (n, option) in self.options.iter().enumerate() {
            text += &format!("\n  {}. {}", n + 1, option.label);
        }
        text
    }
}

impl CardOption {
    /// An option as content carries it: a string (label, value and chosen label at once), or
    /// `{label, value?, selectedLabel?}` (v2's normalisation: the value and the chosen label
    /// default to the label, a label missing falls back to the value).
    pub fn from_value(option: &Value) -> Option<CardOption> {
        let text = |key: &str| option.get(key).and_then(Value::as_str).map(str::to_string);
        match option {
            Value::String(label) => Some(CardOption {
                id: label.clone(),
                label: label.clone(),
                chosen: label.clone(),
            }),
            Value::Object(_) => {
                let label = text("label").or_else(|| text("value"))?;
                let id = text("value").unwrap_or_else(|| label.clone());
                let chosen = text("selectedLabel").unwrap_or_else(|| label.clone());
                Some(CardOption { id, label, chosen })
            }
            _ => None,
        }
    }
}

impl Outcome {
    pub fn to_content(&self) -> Value {
        json!({"type": "card_outcome", "questionId": self.card, "title": self.title, "text": self.text})
    }

    pub fn from_content(content: &Value) -> Option<Outcome> {
        if content.get("type").and_then(Value::as_str) != Some("card_outcome") {
            return None;
        }
        let text = |key: &str| content.get(key).and_then(Value::as_str).map(str::to_string);
        Some(Outcome {
            card: text("questionId")?,
            title: text("title").unwrap_or_default(),
            text: text("text").unwrap_or_default(),
        })
    }

    pub fn to_text(&self) -> String {
        format!("{}\n\n{}", self.title, self.text)
    }
}

/// Whether `id` may be a card id.
pub fn is_card_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> Card {
        Card {
            id: "apv-1".into(),
            title: "👤 New sender".into(),
            body: "Ann wants to talk to `echo`. Allow?".into(),
            options: vec![
                CardOption {
                    id: "allow".into(),
                    label: "Allow".into(),
                    chosen: "✅ Allowed".into(),
                },
                CardOption {
                    id: "deny".into(),
                    label: "Deny".into(),
                    chosen: "❌ Denied".into(),
                },
            ],
        }
    }

    #[test]
    fn a_card_travels_as_ask_question_content_and_back() {
        let content = card().to_content();
        assert_eq!(content["type"], "ask_question");
        assert_eq!(content["options"][1]["value"], "deny");
        assert_eq!(Card::from_content(&content), Some(card()));
        assert_eq!(Card::from_content(&json!({"text": "hi"})), None);
    }

    #[test]
    fn options_are_normalised_as_v2_does() {
        let content = json!({"type": "ask_question", "questionId": "q", "title": "T", "question": "Q",
            "options": ["Yes", {"label": "No", "value": "no"}, {"value": "later"}, 3]});
        let card = Card::from_content(&content).unwrap();
        let options: Vec<(&str, &str, &str)> = card
            .options
            .iter()
            .map(|o| (o.id.as_str(), o.label.as_str(), o.chosen.as_str()))
            .collect();
        assert_eq!(
            options,
            [
                ("Yes", "Yes", "Yes"),
                ("no", "No", "No"),
                ("later", "later", "later")
            ]
        );
    }

    #[test]
    fn a_card_as_text_numbers_its_options() {
        expect_test::expect![[r#"
            👤 New sender

            Ann wants to talk to `echo`. Allow?

              1. Allow
              2. Deny"#]]
        .assert_eq(&card().to_text());
    }

    #[test]
    fn an_outcome_round_trips() {
        let outcome = Outcome {
            card: "apv-1".into(),
            title: "t".into(),
            text: "✅ Allowed".into(),
        };
        assert_eq!(Outcome::from_content(&outcome.to_content()), Some(outcome));
        assert!(is_card_id("apv-1a2b"));
        assert!(!is_card_id("a:b"));
    }
}
