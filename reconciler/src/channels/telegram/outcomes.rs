//! Showing a card's outcome once (issue 12): the outcome of a question card is shown by editing
//! the card in place, never as a second message beside it.
//!
//! Two paths can show it: the button press (`poll`), which edits the pressed card as soon as
//! the runtime's verdict comes back, and the runtime's outcome message (`card_outcome` content,
//! sent for every decision and expiry), which reaches [`super::Telegram::send`]. [`Outcomes`]
//! remembers where each card was sent and which cards a press is showing, so the outcome
//! message edits the card only when no press did, and sends a new message only when the card's
//! message is unknown (sent before a restart). In memory only: after a restart a press still
//! edits its card (the press names the message), and an expiry arrives as a new message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use super::api::{Api, ApiError};
use super::types::MessageOrTrue;
use crate::channels::card::Outcome;

/// How long a press's claim on showing its card's outcome is kept when the outcome message
/// never comes (the card was not an approval).
const PRESS_KEPT: Duration = Duration::from_secs(600);
/// Most cards whose message is remembered; the oldest are forgotten beyond it.
const MAX_CARDS: usize = 4096;

/// Where cards were sent and which outcomes a press shows. Written by the outbox task
/// (`sent`, `take`) and the poller (`pressing`, `not_pressed`), always under its lock.
#[derive(Default)]
pub struct Outcomes {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Card id → `(chat, message id, when sent)`.
    sent: HashMap<String, (i64, i64, Instant)>,
    /// Card id → when a press began showing its outcome.
    pressed: HashMap<String, Instant>,
}

/// How a card's outcome message is to be shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    /// A press edits the card to show it: nothing more to send.
    ByPress,
    /// Edit the card, message `message` of `chat`.
    Edit { chat: i64, message: i64 },
    /// The card's message is not known (sent before a restart): a new message.
    New,
}

impl Outcomes {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Each update is one map operation: a panicking holder leaves consistent maps.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Card `card` was sent as message `message` of `chat`.
    pub fn sent(&self, card: &str, chat: i64, message: i64) {
        let mut state = self.state();
        if state.sent.len() >= MAX_CARDS
            && let Some(oldest) = state
                .sent
                .iter()
                .min_by_key(|(_, (_, _, at))| *at)
                .map(|(card, _)| card.clone())
        {
            state.sent.remove(&oldest);
        }
        state
            .sent
            .insert(card.to_string(), (chat, message, Instant::now()));
    }

    /// A press on `card` is being decided; if decided, the press edits the card itself.
    pub fn pressing(&self, card: &str) {
        let mut state = self.state();
        let now = Instant::now();
        state
            .pressed
            .retain(|_, at| now.duration_since(*at) < PRESS_KEPT);
        state.pressed.insert(card.to_string(), now);
    }

    /// The press on `card` did not decide it (refused, or no verdict): it shows no outcome.
    pub fn not_pressed(&self, card: &str) {
        self.state().pressed.remove(card);
    }

    /// How to show the outcome of `card`; forgets the card.
    pub fn take(&self, card: &str) -> Show {
        let mut state = self.state();
        let sent = state.sent.remove(card);
        if state.pressed.remove(card).is_some() {
            return Show::ByPress;
        }
        match sent {
            Some((chat, message, _)) => Show::Edit { chat, message },
            None => Show::New,
        }
    }
}

/// The text a shown outcome reads, the same from a press and from the outcome message:
/// `<title>\n\n<outcome>`.
pub fn text(title: &str, outcome: &str) -> String {
    if title.is_empty() {
        outcome.to_string()
    } else {
        format!("{title}\n\n{outcome}")
    }
}

/// Edits card `message` of `chat` to show `outcome`, without buttons; an unchanged text counts
/// as done.
pub async fn edit(api: &Api, chat: i64, message: i64, outcome: &Outcome) -> Result<(), ApiError> {
    let params = json!({
        "chat_id": chat,
        "message_id": message,
        "text": text(&outcome.title, &outcome.text),
        "reply_markup": {"inline_keyboard": []},
    });
    match api
        .call::<_, MessageOrTrue>("editMessageText", &params, Duration::ZERO)
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if err.is_not_modified() => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_12_an_outcome_is_shown_once_by_the_press_or_by_an_edit() {
        let outcomes = Outcomes::default();
        outcomes.sent("apv-1", 9, 100);
        outcomes.sent("apv-2", 9, 101);
        // Pressed and decided: the press shows it, the outcome message sends nothing.
        outcomes.pressing("apv-1");
        assert_eq!(outcomes.take("apv-1"), Show::ByPress);
        // Expired (no press): the card is edited.
        assert_eq!(
            outcomes.take("apv-2"),
            Show::Edit {
                chat: 9,
                message: 101
            }
        );
        // A refused press leaves it to the outcome message.
        outcomes.sent("apv-3", 9, 102);
        outcomes.pressing("apv-3");
        outcomes.not_pressed("apv-3");
        assert_eq!(
            outcomes.take("apv-3"),
            Show::Edit {
                chat: 9,
                message: 102
            }
        );
        // Unknown after a restart: a new message.
        assert_eq!(outcomes.take("apv-4"), Show::New);
        assert_eq!(
            text("👤 New sender", "⌛ Expired"),
            "👤 New sender\n\n⌛ Expired"
        );
    }
}
