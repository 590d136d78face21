//! Inbound: the long-polling loop. `getUpdates` (30 s long poll, `offset` = the first update
//! not yet stored) → each update mapped (`inbound`), its files downloaded, handed to the router,
//! and the offset advanced only once the router answers that it is stored (`offset` says why
//! that loses and repeats nothing).
//!
//! The updates of one page are handed to the router together (it batches them into one
//! transaction) and their receipts awaited in order; the offset moves past each one as its
//! receipt comes. A receipt saying the message could not be stored stops the page there: the
//! loop asks again from that update after a pause, and gives up on it (logged) after
//! [`MAX_STORE_ATTEMPTS`], so one bad update cannot stop the bot. Button presses are answered
//! and their card edited here (`cards`); the approvals that act on them come later.

use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::api::{Api, ApiError, Disposition, MAX_DOWNLOAD};
use super::inbound::{self, Click, Incoming, Mapped};
use super::offset::{Offset, OffsetStore};
use super::types::{File, Message, Update, User};
use super::{cards, format};
use crate::channels::card;
use crate::channels::{Envelope, Receipt};

/// How long `getUpdates` holds the connection open when nothing happens.
pub const LONG_POLL: Duration = Duration::from_secs(30);
/// Tries to store one update before it is skipped.
pub const MAX_STORE_ATTEMPTS: u32 = 5;
/// Longest pause between failed polls.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The poller's state. Owned by its task.
pub struct Poller {
    pub api: Api,
    /// The bot itself (`getMe`): mentions and its own messages are recognised by it.
    pub me: User,
    pub offsets: OffsetStore,
    /// To the router.
    pub inbound: mpsc::Sender<Envelope>,
    /// The first update id not yet stored (`None`: Telegram's own position).
    pub next: Option<i64>,
    /// The update that failed to store, and how often.
    failing: Option<(i64, u32)>,
    /// Consecutive failed polls (for the backoff).
    failed_polls: u32,
    /// Where presses on cards go to be decided (approvals); `None`: only edited in place.
    answers: Option<card::Answers>,
    /// Which cards' outcomes a press shows (shared with the adapter's sending side).
    outcomes: std::sync::Arc<super::outcomes::Outcomes>,
}

/// A message no agent answers, named so an operator can wire its chat (docs/channels.md,
/// "Setting up a bot"): at info for DMs and mentions, at debug for other group chatter.
struct Unanswered {
    chat: String,
    chat_name: Option<String>,
    sender: Option<String>,
    addressed: bool,
}

impl Unanswered {
    fn of(event: &crate::channels::InboundEvent) -> Unanswered {
        let content = &event.message.content;
        Unanswered {
            chat: event.platform_id.clone(),
            chat_name: content.rest_str(&["chatName"]).map(str::to_string),
            sender: content.sender.clone(),
            addressed: event.message.is_mention,
        }
    }

    fn log(&self) {
        if self.addressed {
            info!(chat = %self.chat, chat_name = ?self.chat_name, sender = ?self.sender,
                "telegram message that no agent answers; to answer this chat, wire its id in a channel manifest (channel_type: telegram, platform_id: the chat id)");
        } else {
            debug!(chat = %self.chat, "telegram group message that engages no agent");
        }
    }
}

/// A message handed to the router, waiting for its receipt.
type Pending = (Unanswered, oneshot::Receiver<Receipt>);

/// What handling one page of updates came to.
enum Page {
    /// Everything stored; poll again at once.
    Done,
    /// An update could not be stored: pause, then poll again from it.
    Retry,
    /// The router is gone (shutdown).
    Closed,
}

impl Poller {
    pub fn new(
        api: Api,
        me: User,
        offsets: OffsetStore,
        inbound: mpsc::Sender<Envelope>,
    ) -> Poller {
        let next = match offsets.load(me.id) {
            Ok(next) => next,
            Err(err) => {
                warn!(path = %offsets.path().display(), error = %err, "telegram update offset unreadable; using Telegram's position");
                None
            }
        };
        Poller {
            api,
            me,
            offsets,
            inbound,
            next,
            failing: None,
            failed_polls: 0,
            answers: None,
            outcomes: std::sync::Arc::default(),
        }
    }

    /// Card presses go to the runtime's approvals (`channels::card`), which decide them.
    /// Shares the adapter's record of shown outcomes, so a decided press's edit is the only one.
    pub fn outcomes(mut self, outcomes: std::sync::Arc<super::outcomes::Outcomes>) -> Poller {
        self.outcomes = outcomes;
        self
    }

    pub fn answers(mut self, answers: Option<card::Answers>) -> Poller {
        self.answers = answers;
        self
    }

    /// Polls until `stop` is cancelled or the router goes away.
    pub async fn run(mut self, stop: CancellationToken) {
        info!(bot = ?self.me.username, next = ?self.next, "telegram polling started");
        loop {
            let mut params = json!({
                "timeout": LONG_POLL.as_secs(),
                "allowed_updates": ["message", "callback_query"],
            });
            if let Some(next) = self.next {
                params["offset"] = json!(next);
            }
            let polled = tokio::select! {
                () = stop.cancelled() => break,
                polled = self.api.call::<_, Vec<Update>>("getUpdates", &params, LONG_POLL) => polled,
            };
            let pause = match polled {
                Ok(updates) => {
                    self.failed_polls = 0;
                    match self.page(updates).await {
                        Page::Done => None,
                        Page::Retry => Some(Duration::from_secs(1)),
                        Page::Closed => break,
                    }
                }
                Err(err) => Some(self.poll_failed(&err)),
            };
            if let Some(pause) = pause {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
        info!("telegram polling stopped");
    }

    fn poll_failed(&mut self, err: &ApiError) -> Duration {
        self.failed_polls += 1;
        let backoff = Duration::from_secs(1 << self.failed_polls.min(5)).min(MAX_BACKOFF);
        match (err, err.disposition()) {
            (_, Disposition::RetryAfter(after)) => {
                warn!(error = %err, "telegram asks to wait before polling again");
                after.max(Duration::from_secs(1))
            }
            (ApiError::Unauthorized { .. }, _) => {
                error!(error = %err, "telegram refused the bot token; no messages arrive until it is fixed");
                MAX_BACKOFF
            }
            _ => {
                warn!(error = %err, retry_in_s = backoff.as_secs(), "telegram poll failed");
                backoff
            }
        }
    }

    /// Hands a page of updates to the router and advances the offset past each stored one.
    async fn page(&mut self, updates: Vec<Update>) -> Page {
        let mut waiting: Vec<(i64, Option<Pending>)> = Vec::new();
        for update in &updates {
            let receipt = match inbound::map(update, &self.me) {
                Mapped::Skip => None,
                Mapped::Click(click) => {
                    self.click(&click, update).await;
                    None
                }
                Mapped::Message(incoming) => {
                    let (stored, receipt) = oneshot::channel();
                    let event = self.with_files(*incoming).await;
                    debug!(update = update.update_id, msg = %event.message.id, chat = %event.platform_id, "telegram message received");
                    let envelope = Envelope {
                        event,
                        stored: Some(stored),
                    };
                    let unanswered = Unanswered::of(&envelope.event);
                    if self.inbound.send(envelope).await.is_err() {
                        return Page::Closed;
                    }
                    Some((unanswered, receipt))
                }
            };
            waiting.push((update.update_id, receipt));
        }
        let mut outcome = Page::Done;
        for (update_id, receipt) in waiting {
            let stored = match receipt {
                None => true,
                Some((unanswered, receipt)) => match receipt.await {
                    Ok(Receipt::Stored { answering }) => {
                        if answering.is_empty() {
                            unanswered.log();
                        }
                        true
                    }
                    Ok(Receipt::UnknownChat) => {
                        unanswered.log();
                        true
                    }
                    Ok(Receipt::Failed) => false,
                    Err(_) => return Page::Closed,
                },
            };
            if !stored && !self.give_up(update_id) {
                outcome = Page::Retry;
                break;
            }
            self.advance(update_id + 1);
        }
        outcome
    }

    /// Counts a failed store of `update_id`; true when it is time to skip it.
    fn give_up(&mut self, update_id: i64) -> bool {
        let attempts = match self.failing {
            Some((failing, attempts)) if failing == update_id => attempts + 1,
            _ => 1,
        };
        if attempts >= MAX_STORE_ATTEMPTS {
            error!(
                update = update_id,
                attempts,
                "telegram update could not be stored; skipped (the runtime log above says why)"
            );
            self.failing = None;
            return true;
        }
        warn!(
            update = update_id,
            attempts, "telegram update not stored; asking for it again"
        );
        self.failing = Some((update_id, attempts));
        false
    }

    fn advance(&mut self, next: i64) {
        if self.next.is_some_and(|current| current >= next) {
            return;
        }
        self.next = Some(next);
        if let Err(err) = self.offsets.save(Offset {
            bot_id: self.me.id,
            next,
        }) {
            warn!(path = %self.offsets.path().display(), error = %err, "telegram update offset not saved; a restart may fetch updates again (the router skips repeats)");
        }
    }

    /// Downloads a message's files into its content's attachments. A file that cannot be
    /// fetched is left out and named in the text, so the agent knows something was sent.
    async fn with_files(&self, incoming: Incoming) -> crate::channels::InboundEvent {
        let Incoming { mut event, files } = incoming;
        for file in files {
            match self.download(&file.file_id, file.size).await {
                Ok(bytes) => event
                    .message
                    .content
                    .attachments
                    .push(inbound::attachment(&file, &bytes)),
                Err(why) => {
                    warn!(msg = %event.message.id, file = %file.file_id, error = %why, "telegram file not downloaded");
                    let note = format!("[a {} could not be downloaded: {why}]", file.kind);
                    let text = event.message.content.text.get_or_insert_with(String::new);
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&note);
                }
            }
        }
        event
    }

    async fn download(&self, file_id: &str, size: Option<u64>) -> Result<Vec<u8>, String> {
        if size.is_some_and(|size| size > MAX_DOWNLOAD as u64) {
            return Err(format!("larger than {} MB", MAX_DOWNLOAD / (1024 * 1024)));
        }
        let file: File = self
            .api
            .call("getFile", &json!({"file_id": file_id}), Duration::ZERO)
            .await
            .map_err(|err| err.to_string())?;
        let path = file
            .file_path
            .ok_or_else(|| "Telegram gave no file path".to_string())?;
        self.api
            .download(&path)
            .await
            .map_err(|err| err.to_string())
    }

    /// Asks the runtime to decide a press on a card: `None` when it is no approval card (or
    /// nobody decides), else the verdict.
    async fn decide(&self, click: &Click, answer: &cards::Answer) -> Option<card::Verdict> {
        let answers = self.answers.as_ref()?;
        let chat = click.chat_id?;
        let (verdict, told) = tokio::sync::oneshot::channel();
        let answered = card::Answered {
            answer: card::Answer {
                card: answer.question_id.clone(),
                option: (answer.option_index + 1).to_string(),
                responder: format!("{}:{}", inbound::CHANNEL_TYPE, click.user_id),
                channel_type: inbound::CHANNEL_TYPE.to_string(),
                platform_id: chat.to_string(),
            },
            verdict: Some(verdict),
        };
        answers.send(answered).await.ok()?;
        match tokio::time::timeout(Duration::from_secs(10), told).await {
            Ok(Ok(verdict)) => Some(verdict),
            _ => None,
        }
    }

    /// [`Poller::decide`], claiming the showing of the card's outcome for this press while it
    /// is decided (so the runtime's outcome message does not show it a second time) and giving
    /// the claim up unless the press decided it.
    async fn decide_once(&self, click: &Click, pressed: &cards::Answer) -> Option<card::Verdict> {
        self.outcomes.pressing(&pressed.question_id);
        let verdict = self.decide(click, pressed).await;
        if !matches!(verdict, Some(card::Verdict::Decided(_))) {
            self.outcomes.not_pressed(&pressed.question_id);
        }
        verdict
    }

    /// Answers a button press and, for a question, edits the card to show the choice: for an
    /// approval card, the runtime's outcome, or only a note to the presser when they may not
    /// decide.
    async fn click(&self, click: &Click, update: &Update) {
        let card: Option<&Message> = update
            .callback_query
            .as_ref()
            .and_then(|query| query.message.as_ref());
        let mut answer = cards::answer(&click.data, card);
        let verdict = match &answer {
            Some(pressed) => self.decide_once(click, pressed).await,
            None => None,
        };
        let mut reply = json!({"callback_query_id": click.query_id});
        match (&verdict, &mut answer) {
            (Some(card::Verdict::Refused(why)), _) => {
                reply["text"] = json!(why.chars().take(200).collect::<String>());
                reply["show_alert"] = json!(true);
                answer = None;
            }
            (Some(card::Verdict::Decided(outcome)), Some(pressed)) => {
                let title = pressed.edited.text.split("\n\n").next().unwrap_or_default();
                pressed.edited = format::Formatted {
                    text: super::outcomes::text(title, outcome),
                    entities: Vec::new(),
                };
            }
            _ => {}
        }
        if let Err(err) = self
            .api
            .call::<_, bool>("answerCallbackQuery", &reply, Duration::ZERO)
            .await
        {
            debug!(error = %err, "telegram button press not answered");
        }
        let (Some(answer), Some(chat), Some(message)) = (answer, click.chat_id, click.message_id)
        else {
            return;
        };
        info!(question = %answer.question_id, option = answer.option_index, user = click.user_id, "telegram card answered");
        let edited: format::Formatted = answer.edited;
        let params = json!({
            "chat_id": chat,
            "message_id": message,
            "text": edited.text,
            "entities": edited.entities,
            "reply_markup": {"inline_keyboard": []},
        });
        if let Err(err) = self
            .api
            .call::<_, serde_json::Value>("editMessageText", &params, Duration::ZERO)
            .await
            && !err.is_not_modified()
        {
            warn!(error = %err, "telegram card not edited");
        }
    }
}
