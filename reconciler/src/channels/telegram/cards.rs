//! Cards as inline keyboards (pure): questions with options, display cards with links, and
//! reading a button press back.
//!
//! A question (`{type: ask_question, questionId, title, question, options}`) becomes a message
//! `<title>\n\n<question>` with one button per option whose callback data is
//! `ncq:<questionId>:<option index>`: Telegram allows at most 64 bytes of callback data, so
//! the option's value travels as its index (v2 did the same). A question whose id makes the
//! data too long is sent as text with the options listed, and no buttons. A press is answered
//! (`answerCallbackQuery`) and the card edited to `<title>\n\n<chosen label>` without buttons;
//! the label and title are read back from the pressed message itself, so this works across
//! restarts with no state. A display card (`{type: card, card: {title, description, children,
//! actions}, fallbackText}`) becomes text with its URL actions as link buttons.

use serde_json::Value;

use super::format::{self, Formatted};
use super::types::{InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity};

/// Telegram's limit on a button's callback data, in bytes.
pub const MAX_CALLBACK_DATA: usize = 64;
/// The prefix of question buttons' callback data.
pub const QUESTION_PREFIX: &str = "ncq";
/// The title shown when a question has none.
const UNTITLED: &str = "❓ Question";

/// A card to send: its text and keyboard (none when it has no buttons).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    pub text: Formatted,
    pub keyboard: Option<InlineKeyboardMarkup>,
}

/// A question button pressed, read from its callback data and the card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub question_id: String,
    pub option_index: usize,
    /// The button's label, as shown.
    pub label: String,
    /// What the card now says: `<title>\n\n<label>`.
    pub edited: Formatted,
}

/// The card for outbound content, if it is one: `None` for other content, `Some(None)` for a
/// card with nothing to show (a question without a title is not sent, as in v2).
pub fn render(content: &Value) -> Option<Option<Card>> {
    match content.get("type").and_then(Value::as_str) {
        Some("ask_question") => Some(question(content)),
        Some("card") => Some(display(content)),
        _ => None,
    }
}

fn question(content: &Value) -> Option<Card> {
    let title = content.get("title").and_then(Value::as_str)?;
    let question_id = content.get("questionId").and_then(Value::as_str)?;
    let body = content
        .get("question")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let labels: Vec<String> = content
        .get("options")
        .and_then(Value::as_array)
        .map(|options| options.iter().map(option_label).collect())
        .unwrap_or_default();
    let mut text = titled(title, body);
    let data = |index: usize| format!("{QUESTION_PREFIX}:{question_id}:{index}");
    let fits = !question_id.contains(':')
        && labels
            .len()
            .checked_sub(1)
            .is_none_or(|last| data(last).len() <= MAX_CALLBACK_DATA);
    if !fits || labels.is_empty() {
        if !labels.is_empty() {
            text.text += &format!("\nOptions: {}", labels.join(", "));
        }
        return Some(Card {
            text,
            keyboard: None,
        });
    }
    let buttons = labels
        .iter()
        .enumerate()
        .map(|(index, label)| InlineKeyboardButton {
            text: label.clone(),
            callback_data: Some(data(index)),
            url: None,
        })
        .collect::<Vec<_>>();
    Some(Card {
        text,
        keyboard: Some(InlineKeyboardMarkup {
            inline_keyboard: buttons.chunks(3).map(<[_]>::to_vec).collect(),
        }),
    })
}

/// An option is a string, or `{label, value}` (the label shown, falling back to the value).
fn option_label(option: &Value) -> String {
    match option {
        Value::String(text) => text.clone(),
        Value::Object(fields) => fields
            .get("label")
            .or_else(|| fields.get("value"))
            .map(|value| match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default(),
        other => other.to_string(),
    }
}

fn display(content: &Value) -> Option<Card> {
    let card = content.get("card")?;
    let title = card
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut blocks: Vec<String> = Vec::new();
    if let Some(description) = card.get("description").and_then(Value::as_str) {
        blocks.push(description.to_string());
    }
    for child in card
        .get("children")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match child {
            Value::String(text) => blocks.push(text.clone()),
            Value::Object(fields) => {
                if let Some(text) = fields.get("text").and_then(Value::as_str) {
                    blocks.push(text.to_string());
                }
            }
            _ => {}
        }
    }
    let links: Vec<InlineKeyboardButton> = card
        .get("actions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|action| {
            let url = action.get("url").and_then(Value::as_str)?;
            let label = action
                .get("label")
                .or_else(|| action.get("text"))
                .and_then(Value::as_str)
                .unwrap_or(url);
            (url.starts_with("https://") || url.starts_with("http://")).then(|| {
                InlineKeyboardButton {
                    text: label.to_string(),
                    callback_data: None,
                    url: Some(url.to_string()),
                }
            })
        })
        .collect();
    let body = blocks.join("\n\n");
    if title.is_empty() && body.is_empty() {
        let fallback = content.get("fallbackText").and_then(Value::as_str)?;
        return Some(Card {
            text: format::markdown(fallback),
            keyboard: None,
        });
    }
    let text = if title.is_empty() {
        format::markdown(&body)
    } else {
        titled(title, &body)
    };
    Some(Card {
        text,
        keyboard: (!links.is_empty()).then(|| InlineKeyboardMarkup {
            inline_keyboard: links.into_iter().map(|link| vec![link]).collect(),
        }),
    })
}

/// `<title>` in bold, a blank line, then the body as Markdown.
fn titled(title: &str, body: &str) -> Formatted {
    let title_units = title.encode_utf16().count();
    let mut text = Formatted {
        text: title.to_string(),
        entities: vec![MessageEntity::new("bold", 0, title_units)],
    };
    if !body.is_empty() {
        let rendered = format::markdown(body);
        let shift = title_units + 2;
        text.text += "\n\n";
        text.text += &rendered.text;
        text.entities
            .extend(rendered.entities.into_iter().map(|entity| MessageEntity {
                offset: entity.offset + shift,
                ..entity
            }));
    }
    text
}

/// Reads a question button press: its data and the pressed card (for the label and title).
pub fn answer(data: &str, card: Option<&Message>) -> Option<Answer> {
    let mut parts = data.splitn(3, ':');
    if parts.next()? != QUESTION_PREFIX {
        return None;
    }
    let question_id = parts.next()?.to_string();
    let option_index: usize = parts.next()?.parse().ok()?;
    let label = card
        .and_then(|card| card.reply_markup.as_ref())
        .into_iter()
        .flat_map(|markup| markup.inline_keyboard.iter().flatten())
        .find(|button| button.callback_data.as_deref() == Some(data))
        .map_or_else(
            || format!("option {}", option_index + 1),
            |button| button.text.clone(),
        );
    let title = card
        .and_then(|card| card.text.as_deref())
        .and_then(|text| text.split("\n\n").next())
        .filter(|title| !title.is_empty())
        .unwrap_or(UNTITLED);
    Some(Answer {
        question_id,
        option_index,
        edited: titled(title, &format!("✅ {label}")),
        label,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::channels::telegram::types::Update;

    #[test]
    fn a_question_becomes_buttons_carrying_the_option_index() {
        let card = render(&json!({
            "type": "ask_question", "questionId": "q-1", "title": "Deploy?",
            "question": "Ship the **release** now?", "options": ["Yes", {"label": "No", "value": "no"}]
        }))
        .unwrap()
        .unwrap();
        assert_eq!(card.text.text, "Deploy?\n\nShip the release now?");
        assert_eq!(
            card.text.entities,
            [
                MessageEntity::new("bold", 0, 7),
                MessageEntity::new("bold", 18, 7)
            ]
        );
        let keyboard = serde_json::to_string(&card.keyboard.unwrap()).unwrap();
        expect_test::expect![[r#"{"inline_keyboard":[[{"text":"Yes","callback_data":"ncq:q-1:0"},{"text":"No","callback_data":"ncq:q-1:1"}]]}"#]]
            .assert_eq(&keyboard);
    }

    #[test]
    fn issue_12_callback_data_never_exceeds_64_bytes() {
        let long_id = "q".repeat(60);
        let card = render(&json!({
            "type": "ask_question", "questionId": long_id, "title": "T", "question": "Q",
            "options": ["a", "b"]
        }))
        .unwrap()
        .unwrap();
        assert_eq!(card.keyboard, None);
        assert_eq!(card.text.text, "T\n\nQ\nOptions: a, b");
        let fitting = render(&json!({
            "type": "ask_question", "questionId": "q".repeat(58), "title": "T",
            "options": (0..10).map(|n| n.to_string()).collect::<Vec<_>>()
        }))
        .unwrap()
        .unwrap();
        for button in fitting.keyboard.unwrap().inline_keyboard.iter().flatten() {
            assert!(button.callback_data.as_ref().unwrap().len() <= MAX_CALLBACK_DATA);
        }
    }

    #[test]
    fn a_question_without_a_title_is_not_sent() {
        assert_eq!(
            render(&json!({"type": "ask_question", "questionId": "q", "options": ["a"]})),
            Some(None)
        );
        assert_eq!(render(&json!({"text": "hi"})), None);
    }

    #[test]
    fn a_press_names_the_question_the_option_and_edits_the_card() {
        let update: Update = serde_json::from_str(include_str!(
            "../../../../tests/fixtures/telegram/updates/callback-query.json"
        ))
        .unwrap();
        let query = update.callback_query.unwrap();
        let answer = answer(query.data.as_deref().unwrap(), query.message.as_ref()).unwrap();
        assert_eq!(
            (answer.question_id.as_str(), answer.option_index),
            ("q-1", 1)
        );
        assert_eq!(answer.label, "No");
        assert_eq!(answer.edited.text, "Deploy?\n\n✅ No");
        assert_eq!(super::answer("other:q:1", None), None);
        assert_eq!(super::answer("ncq:q:x", None), None);
        assert_eq!(
            super::answer("ncq:q:0", None).unwrap().edited.text,
            "❓ Question\n\n✅ option 1"
        );
    }

    #[test]
    fn a_display_card_shows_its_text_and_link_buttons() {
        let card = render(&json!({"type": "card", "card": {
            "title": "Weather", "description": "Sunny", "children": ["22 °C", {"text": "no rain"}],
            "actions": [{"label": "Forecast", "url": "https://example.com/f"}, {"label": "x", "url": "javascript:1"}]
        }, "fallbackText": "Weather: sunny"}))
        .unwrap()
        .unwrap();
        assert_eq!(card.text.text, "Weather\n\nSunny\n\n22 °C\n\nno rain");
        let keyboard = card.keyboard.unwrap();
        assert_eq!(keyboard.inline_keyboard.len(), 1);
        assert_eq!(
            keyboard.inline_keyboard[0][0].url.as_deref(),
            Some("https://example.com/f")
        );
        let empty = render(&json!({"type": "card", "card": {}, "fallbackText": "plain"}));
        assert_eq!(empty.unwrap().unwrap().text.text, "plain");
    }
}
