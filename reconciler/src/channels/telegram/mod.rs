//! The Telegram channel (`channel_type: telegram`; platform id = chat id; forum topics are
//! threads): long polling with `getUpdates`, the durable update offset, and delivery through
//! the Bot API (docs/channels.md#telegram).
//!
//! `api` is the Bot API client and its errors, `types` the wire types, `inbound` maps updates
//! (pure), `poll` is the polling loop and its offset handling, `offset` the offset file, `send`
//! delivers one message, `format` renders Markdown to entities and splits long text (pure),
//! `cards` renders questions and cards as inline keyboards (pure), `outcomes` shows a card's
//! outcome once (in place of the card). [`Telegram`] holds them
//! together; knows nothing about agents, sessions or the DB.

pub mod adapter;
pub mod api;
pub mod cards;
pub mod format;
pub mod inbound;
pub mod offset;
pub mod outcomes;
pub mod poll;
pub mod send;
pub mod types;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::channels::Envelope;
use crate::credentials::{CredentialError, Secret, Source, TokenStore};
use crate::env;
use crate::paths::Paths;
pub use inbound::CHANNEL_TYPE;

/// Typing requests queued for the API; more are dropped (the indicator is best effort).
const TYPING_QUEUE: usize = 256;

/// A chat (and forum topic) to show "typing…" in.
type TypingRequest = (String, Option<String>);

/// How the adapter reaches its bot, resolved at startup.
#[derive(Clone, Debug)]
pub struct Settings {
    pub token: Secret,
    /// Where the token came from (for the start log line; never the token).
    pub source: Source,
    /// `NANOCLAW_TELEGRAM_API_URL`, default [`api::DEFAULT_API_URL`].
    pub api_url: String,
    /// `<data>/channels/telegram/`: the update offset.
    pub state_dir: std::path::PathBuf,
}

/// Why the Telegram channel cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    #[error(
        "the manifests have Telegram chats but no Telegram bot token is set\n\nhint: run `nanoclaw auth set telegram` and paste the token BotFather gave you (or give the daemon `TELEGRAM_BOT_TOKEN`)"
    )]
    MissingToken,
    #[error(transparent)]
    Token(#[from] CredentialError),
    #[error("`NANOCLAW_TELEGRAM_API_URL`: {0}")]
    BadUrl(String),
    #[error(
        "telegram refused the bot token\n\nhint: check it with BotFather (`/token`) and store it again with `nanoclaw auth set telegram`"
    )]
    Refused,
}

impl Settings {
    /// The stored token (`nanoclaw auth set telegram`), else `TELEGRAM_BOT_TOKEN`; the API URL.
    pub fn resolve(paths: &Paths) -> Result<Settings, TelegramError> {
        let env_token = env::get(env::TELEGRAM_BOT_TOKEN).map(Secret::new);
        let (token, source) = TokenStore::telegram(&paths.data)
            .resolve(env_token)?
            .ok_or(TelegramError::MissingToken)?;
        let api_url = env::get(env::NANOCLAW_TELEGRAM_API_URL)
            .unwrap_or_else(|| api::DEFAULT_API_URL.to_string());
        Ok(Settings {
            token,
            source,
            api_url,
            state_dir: paths.channel_state(CHANNEL_TYPE),
        })
    }
}

/// One bot: its API client, its tasks (poller, typing), and the delivery progress of split
/// messages.
pub struct Telegram {
    pub settings: Settings,
    api: api::Api,
    /// The poller, the typing sender and the connections of every request; waited for at stop.
    tasks: TaskTracker,
    stop: CancellationToken,
    progress: send::Progress,
    /// Where cards went and which outcomes a press shows (shared with the poller).
    outcomes: Arc<outcomes::Outcomes>,
    /// Typing requests for the typing task (`None` before start).
    typing: Mutex<Option<mpsc::Sender<TypingRequest>>>,
}

impl Telegram {
    pub fn new(settings: Settings) -> Result<Telegram, TelegramError> {
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let api = api::Api::new(
            &settings.api_url,
            settings.token.clone(),
            tasks.clone(),
            stop.clone(),
        )
        .map_err(|err| TelegramError::BadUrl(err.to_string()))?;
        Ok(Telegram {
            settings,
            api,
            tasks,
            stop,
            progress: send::Progress::default(),
            outcomes: Arc::default(),
            typing: Mutex::new(None),
        })
    }

    /// Checks the token (`getMe`) and starts polling into `inbound` and the typing task; both
    /// end when `stop` (or [`Telegram::shutdown`]) cancels. A refused token stops the start;
    /// an unreachable API does not: the poller keeps trying, so the rest of the daemon runs.
    pub async fn start(
        &self,
        inbound: mpsc::Sender<Envelope>,
        stop: CancellationToken,
    ) -> Result<(), TelegramError> {
        self.start_with_answers(inbound, None, stop).await
    }

    /// [`Telegram::start`], with presses on cards sent to the runtime's approvals as
    /// `card::Answered` (docs/runtime.md#approvals).
    pub async fn start_with_answers(
        &self,
        inbound: mpsc::Sender<Envelope>,
        answers: impl Into<Option<crate::channels::card::Answers>>,
        stop: CancellationToken,
    ) -> Result<(), TelegramError> {
        let answers = answers.into();
        let me = match self.me().await {
            Ok(me) => Some(me),
            Err(api::ApiError::Unauthorized { .. }) => return Err(TelegramError::Refused),
            Err(err) => {
                warn!(error = %err, "telegram is not reachable yet; polling starts when it is");
                None
            }
        };
        let own_stop = self.stop.clone();
        let stopped = async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = own_stop.cancelled() => {}
            }
        };
        let stop = CancellationToken::new();
        let stopping = stop.clone();
        self.tasks.spawn(async move {
            stopped.await;
            stopping.cancel();
        });
        let (typing, requests) = mpsc::channel(TYPING_QUEUE);
        *self.typing.lock().expect("typing lock") = Some(typing);
        self.tasks
            .spawn(typing_task(self.api.clone(), requests, stop.clone()));
        let api = self.api.clone();
        let offsets = offset::OffsetStore::new(&self.settings.state_dir);
        let outcomes = Arc::clone(&self.outcomes);
        self.tasks.spawn(async move {
            let me = match me {
                Some(me) => me,
                None => match wait_for_me(&api, &stop).await {
                    Some(me) => me,
                    None => return,
                },
            };
            poll::Poller::new(api, me, offsets, inbound)
                .answers(answers)
                .outcomes(outcomes)
                .run(stop)
                .await;
        });
        Ok(())
    }

    async fn me(&self) -> Result<types::User, api::ApiError> {
        self.api
            .call("getMe", &serde_json::json!({}), Duration::ZERO)
            .await
    }

    /// Stops polling and typing, and waits for every task and connection.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.typing.lock().expect("typing lock").take();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Sends one message (`send::deliver`); the platform id of its first part.
    /// A card's outcome edits the card in place (`outcomes`); a card sent is remembered.
    pub async fn send(&self, out: &send::Outgoing<'_>) -> Result<Option<String>, api::ApiError> {
        if let Some(outcome) = crate::channels::card::Outcome::from_content(out.content) {
            return self.show_outcome(out, &outcome).await;
        }
        let sent = send::deliver(&self.api, &self.progress, out).await?;
        if let Some(card) = crate::channels::card::Card::from_content(out.content)
            && let (Ok(chat), Some(Ok(message))) = (
                out.chat.trim_start_matches("telegram:").parse::<i64>(),
                sent.as_deref().map(str::parse::<i64>),
            )
        {
            self.outcomes.sent(&card.id, chat, message);
        }
        Ok(sent)
    }

    /// Shows a card's outcome once: nothing when a press shows it, else an edit of the card,
    /// else (its message unknown) a new message.
    async fn show_outcome(
        &self,
        out: &send::Outgoing<'_>,
        outcome: &crate::channels::card::Outcome,
    ) -> Result<Option<String>, api::ApiError> {
        match self.outcomes.take(&outcome.card) {
            outcomes::Show::ByPress => Ok(None),
            outcomes::Show::Edit { chat, message } => {
                outcomes::edit(&self.api, chat, message, outcome)
                    .await
                    .inspect_err(|_| self.outcomes.sent(&outcome.card, chat, message))?;
                Ok(Some(message.to_string()))
            }
            outcomes::Show::New => {
                let content = serde_json::json!({
                    "text": outcomes::text(&outcome.title, &outcome.text),
                });
                let new = send::Outgoing {
                    content: &content,
                    ..out.clone()
                };
                send::deliver(&self.api, &self.progress, &new).await
            }
        }
    }

    /// Queues "typing…" for a chat; never waits.
    pub fn typing(&self, chat: &str, thread: Option<&str>) {
        let guard = self.typing.lock().expect("typing lock");
        if let Some(typing) = guard.as_ref()
            && typing
                .try_send((chat.to_string(), thread.map(str::to_string)))
                .is_err()
        {
            debug!(chat, "typing request dropped");
        }
    }
}

/// `getMe` until it answers (with backoff) or `stop`.
async fn wait_for_me(api: &api::Api, stop: &CancellationToken) -> Option<types::User> {
    let mut delay = Duration::from_secs(2);
    loop {
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        match api
            .call("getMe", &serde_json::json!({}), Duration::ZERO)
            .await
        {
            Ok(me) => return Some(me),
            Err(err) => {
                warn!(error = %err, retry_in_s = delay.as_secs(), "telegram still not reachable")
            }
        }
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

/// Sends queued typing requests one at a time; errors are logged at debug and dropped.
async fn typing_task(
    api: api::Api,
    mut requests: mpsc::Receiver<TypingRequest>,
    stop: CancellationToken,
) {
    loop {
        let (chat, thread) = tokio::select! {
            () = stop.cancelled() => return,
            request = requests.recv() => match request {
                Some(request) => request,
                None => return,
            },
        };
        if let Err(err) = send::typing(&api, &chat, thread.as_deref()).await {
            debug!(chat = %chat, error = %err, "telegram typing not shown");
        }
    }
}
