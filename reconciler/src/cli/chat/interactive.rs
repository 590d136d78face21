//! Interactive `nanoclaw chat`: typed lines go to the chat, replies are shown as they arrive.
//!
//! Three threads: the input (rustyline on a terminal, plain lines otherwise), the socket
//! reader (which reconnects when the runtime goes away), and this one, which owns the state
//! and handles their [`Event`]s in order. Because the input thread may sit in `readline`, a
//! client that has to stop (a newer client took over the chat) puts the terminal back as it
//! found it and returns without waiting for that thread.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::Context;

use super::link::{Link, Next, Shown, Writer};
use super::{RECONNECT_EVERY, Status};
use crate::channels::cli_protocol::{ClientLine, HostLine, Message, Reply};
use crate::ops::chat::Target;

/// What the main loop reacts to.
enum Event {
    /// A line typed (trimmed lines that are empty are not sent).
    Line(String),
    /// Ctrl-D or end of input.
    Eof,
    /// The input cannot be read any more.
    InputFailed(String),
    /// A line from the runtime.
    Host(HostLine),
    /// The runtime closed the connection; the socket thread is reconnecting.
    Closed,
    /// Connected again: send through this from now on.
    Connected(Writer),
}

pub fn run(link: Link, socket: &Path, target: &Target, history: &Path) -> anyhow::Result<Status> {
    let (events_tx, events) = mpsc::channel::<Event>();
    let mut screen = Screen::start(history.to_path_buf(), events_tx.clone())?;
    let mut session = Session {
        writer: Some(link.writer().context("cloning the socket")?),
        target: target.clone(),
        shown: Shown::default(),
        greeted: false,
        last_card: None,
        cards: ShownCards::default(),
    };
    let socket = socket.to_path_buf();
    let platform_id = target.platform_id.clone();
    std::thread::spawn(move || read_socket(link, &socket, &platform_id, &events_tx));
    let status = loop {
        let Ok(event) = events.recv() else {
            break Status::Ok;
        };
        match event {
            Event::Line(text) => session.say(text, &mut screen),
            Event::Eof => break Status::Ok,
            Event::InputFailed(error) => {
                screen.show(format!("error: reading input failed: {error}"));
                break Status::Error;
            }
            Event::Host(line) => {
                if let Some(leave) = session.host(line, &mut screen) {
                    if let Some(writer) = &session.writer {
                        writer.close();
                    }
                    screen.leave(&leave.farewell);
                    return Ok(leave.status);
                }
            }
            Event::Closed => {
                session.writer = None;
                screen.show("(the runtime closed the connection; reconnecting…)".to_string());
            }
            Event::Connected(writer) => session.writer = Some(writer),
        }
    };
    if let Some(writer) = &session.writer {
        writer.close();
    }
    Ok(status)
}

/// The client has to stop, saying why.
#[derive(Debug, PartialEq, Eq)]
struct Leave {
    status: Status,
    farewell: String,
}

/// Where replies and notes go.
trait Show {
    fn show(&mut self, text: String);
}

/// The main loop's state.
struct Session {
    /// The connection to send on; `None` while reconnecting.
    writer: Option<Writer>,
    target: Target,
    /// Reply ids shown, across reconnects.
    shown: Shown,
    /// The first welcome was answered with the greeting.
    greeted: bool,
    /// The last card shown that is not decided yet: what `/answer N` answers.
    last_card: Option<String>,
    /// Cards and outcomes on screen, so each shows once.
    cards: ShownCards,
}

/// Which cards a client has shown, by card id: a pending card shown again (to a reader
/// arriving, after a reconnect) is not repeated, and a decision shows one line, whether the
/// verdict to this client's answer or the card's outcome comes first.
#[derive(Default)]
struct ShownCards {
    pending: std::collections::HashSet<String>,
    decided: std::collections::HashSet<String>,
}

impl ShownCards {
    /// Whether a reply carrying `card` is to be shown (the first time for this state).
    fn first_time(&mut self, card: &crate::channels::cli_protocol::CardView) -> bool {
        if card.decided {
            self.decided.insert(card.id.clone())
        } else {
            !self.decided.contains(&card.id) && self.pending.insert(card.id.clone())
        }
    }

    /// Whether the verdict on `card` is to be shown (no outcome of it was shown).
    fn first_outcome(&mut self, card: &str) -> bool {
        self.decided.insert(card.to_string())
    }
}

impl Session {
    fn say(&mut self, text: String, screen: &mut dyn Show) {
        let Some(writer) = &mut self.writer else {
            screen.show("error: not connected to the runtime; that message was not sent".into());
            return;
        };
        let message = match answer_command(&text, self.last_card.as_deref()) {
            Some(Ok(answer)) => ClientLine::Answer { answer },
            Some(Err(usage)) => {
                screen.show(format!("error: {usage}"));
                return;
            }
            None => ClientLine::Message(Message {
                text,
                id: None,
                platform_id: None,
                mention: None,
            }),
        };
        if writer.send(&message).is_err() {
            screen.show("error: the runtime is gone; that message was not sent".into());
        }
    }

    /// Handles one line from the runtime; `Some` when the client must stop.
    fn host(&mut self, line: HostLine, screen: &mut dyn Show) -> Option<Leave> {
        match line {
            HostLine::Welcome { .. } if self.greeted => screen.show("(reconnected)".into()),
            HostLine::Welcome { .. } => {
                self.greeted = true;
                let chat = self
                    .target
                    .chat
                    .as_deref()
                    .unwrap_or(&self.target.platform_id);
                screen.show(format!(
                    "Connected to the CLI chat `{chat}`. Type a message; Ctrl-D leaves."
                ));
                if let Some(note) = &self.target.note {
                    screen.show(format!("note: {note}"));
                }
            }
            HostLine::Accepted { agents, .. } if agents.is_empty() => {
                screen.show("(stored, but no agent on this chat answers that message)".into());
            }
            HostLine::Accepted { .. } => {}
            HostLine::Answered { answered, outcome } => {
                if self.last_card.as_deref() == Some(answered.as_str()) {
                    self.last_card = None;
                }
                if self.cards.first_outcome(&answered) {
                    screen.show(format!("(card {answered}: {outcome})"));
                }
            }
            HostLine::Error { error } => screen.show(format!("error: {error}")),
            HostLine::Superseded { .. } => {
                let chat = self
                    .target
                    .chat
                    .as_deref()
                    .unwrap_or(&self.target.platform_id);
                return Some(Leave {
                    status: Status::Error,
                    farewell: format!(
                        "another client took over the CLI chat `{chat}` and now receives its replies; leaving"
                    ),
                });
            }
            HostLine::Reply(reply) => {
                if let Some(card) = &reply.card {
                    if card.decided {
                        if self.last_card.as_deref() == Some(card.id.as_str()) {
                            self.last_card = None;
                        }
                    } else {
                        self.last_card = Some(card.id.clone());
                    }
                }
                let new_card = reply
                    .card
                    .as_ref()
                    .is_none_or(|card| self.cards.first_time(card));
                if self.shown.first_time(&reply.id) && new_card {
                    screen.show(label(&reply, self.target.is_shared()));
                }
                // Acknowledge duplicates too: the runtime sent it again because it did not
                // record the first acknowledgement.
                if let Some(writer) = &mut self.writer {
                    let _ = writer.ack(&reply.id);
                }
            }
        }
        None
    }
}

/// A reply as shown: on a shared chat, `[agent] text`; then a `file saved: <path>` line per
/// file sent with it; a card with how to answer it.
fn label(reply: &Reply, shared: bool) -> String {
    let mut lines: Vec<String> = reply
        .files
        .iter()
        .map(|file| format!("file saved: {file}"))
        .collect();
    if !reply.text.is_empty() || lines.is_empty() {
        lines.insert(0, reply.text.clone());
    }
    if let Some(card) = reply.card.as_ref().filter(|card| !card.decided) {
        let expiry = card
            .expires_at
            .as_deref()
            .map(|at| format!("; it expires {}", readable_time(at)))
            .unwrap_or_default();
        lines.push(format!(
            "(answer with its number, `/answer N`, or `/answer {} OPTION`{expiry})",
            card.id
        ));
    }
    let text = lines.join("\n");
    match &reply.agent {
        Some(agent) if shared => format!("[{agent}] {text}"),
        _ => text,
    }
}

/// `2026-12-01T06:00:00Z` → `2026-12-01 06:00 UTC`; other text as it is.
fn readable_time(iso: &str) -> String {
    match (iso.get(..10), iso.get(11..16)) {
        (Some(date), Some(time)) if iso.ends_with('Z') => format!("{date} {time} UTC"),
        _ => iso.to_string(),
    }
}

/// `/answer N` (the last card shown) or `/answer CARD OPTION`, or a bare number while a card
/// waits for its answer: the answer to send, or the usage when it is malformed; `None` for any
/// other line (a message).
fn answer_command(
    text: &str,
    last_card: Option<&str>,
) -> Option<Result<crate::channels::cli_protocol::AnswerLine, String>> {
    if let Some(card) = last_card
        && !text.trim().is_empty()
        && text.trim().bytes().all(|byte| byte.is_ascii_digit())
    {
        return Some(Ok(crate::channels::cli_protocol::AnswerLine {
            card: card.to_string(),
            option: text.trim().to_string(),
            platform_id: None,
        }));
    }
    let rest = text.trim().strip_prefix("/answer")?;
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let (card, option) = match (words.as_slice(), last_card) {
        ([option], Some(card)) => (card.to_string(), option.to_string()),
        ([card, option], _) => (card.to_string(), option.to_string()),
        ([_], None) => return Some(Err("no card to answer: none was shown".to_string())),
        _ => {
            return Some(Err(
                "usage: `/answer N` or `/answer CARD OPTION`".to_string()
            ));
        }
    };
    Some(Ok(crate::channels::cli_protocol::AnswerLine {
        card,
        option,
        platform_id: None,
    }))
}

/// Reads the runtime's lines; when the connection closes, reconnects (and says hello again)
/// until the main loop is gone.
fn read_socket(mut link: Link, socket: &Path, platform_id: &str, events: &mpsc::Sender<Event>) {
    loop {
        loop {
            match link.next(None) {
                Ok(Next::Line(line)) => {
                    if events.send(Event::Host(line)).is_err() {
                        return;
                    }
                }
                Ok(Next::TimedOut) => continue,
                Ok(Next::Closed) | Err(_) => break,
            }
        }
        if events.send(Event::Closed).is_err() {
            return;
        }
        link = loop {
            std::thread::sleep(RECONNECT_EVERY);
            if let Ok(link) = Link::connect(socket, platform_id)
                && let Ok(writer) = link.writer()
            {
                if events.send(Event::Connected(writer)).is_err() {
                    return;
                }
                break link;
            }
        };
    }
}

/// The terminal (rustyline, replies printed above the prompt) or plain stdin/stdout.
enum Screen {
    Editor {
        printer: Printer,
        /// The terminal settings before rustyline changed them.
        saved: Option<rustix::termios::Termios>,
    },
    Plain,
}

impl Screen {
    /// Starts the input thread, which sends lines as [`Event`]s.
    fn start(history: PathBuf, events: mpsc::Sender<Event>) -> anyhow::Result<Screen> {
        if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
            std::thread::spawn(move || read_plain(&events));
            return Ok(Screen::Plain);
        }
        let saved = rustix::termios::tcgetattr(std::io::stdin()).ok();
        let (printer_tx, printer_rx) = mpsc::sync_channel(1);
        std::thread::spawn(move || read_edited(&history, &events, &printer_tx));
        let printer = printer_rx
            .recv()
            .context("starting the line editor")?
            .context("starting the line editor")?;
        Ok(Screen::Editor { printer, saved })
    }

    /// Shows `farewell` last, with the terminal put back as it was: the input thread may still
    /// be in `readline`, and the process ends without waiting for it.
    fn leave(&self, farewell: &str) {
        let mut stdout = std::io::stdout();
        if let Screen::Editor {
            saved: Some(saved), ..
        } = self
        {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
            // rustyline turns bracketed paste on while it reads a line; start a fresh line.
            let _ = stdout.write_all(b"\x1b[?2004l\r\n");
        }
        let _ = writeln!(stdout, "{farewell}");
        let _ = stdout.flush();
    }
}

impl Show for Screen {
    fn show(&mut self, text: String) {
        match self {
            Screen::Editor { printer, .. } => {
                let _ = printer.print(format!("{text}\n"));
            }
            Screen::Plain => {
                let mut stdout = std::io::stdout();
                let _ = writeln!(stdout, "{text}");
                let _ = stdout.flush();
            }
        }
    }
}

type Printer = Box<dyn rustyline::ExternalPrinter + Send>;

/// The rustyline input thread: sends the printer back first, then each line.
fn read_edited(
    history: &Path,
    events: &mpsc::Sender<Event>,
    printer_tx: &mpsc::SyncSender<rustyline::Result<Printer>>,
) {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(editor) => editor,
        Err(err) => {
            let _ = printer_tx.send(Err(err));
            return;
        }
    };
    // History persists across chat sessions (best effort: a missing file is a first run).
    let _ = editor.load_history(history);
    match editor.create_external_printer() {
        Ok(printer) => {
            let _ = printer_tx.send(Ok(Box::new(printer)));
        }
        Err(err) => {
            let _ = printer_tx.send(Err(err));
            return;
        }
    }
    loop {
        let event = match editor.readline("> ") {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => {
                let _ = editor.add_history_entry(line.as_str());
                // Appended at once: a client that has to stop does not wait for this thread.
                let _ = editor.append_history(history);
                Event::Line(line)
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => Event::Eof,
            Err(err) => Event::InputFailed(err.to_string()),
        };
        let last = !matches!(event, Event::Line(_));
        if events.send(event).is_err() || last {
            return;
        }
    }
}

/// The plain input thread (stdin is not a terminal): one message per line.
fn read_plain(events: &mpsc::Sender<Event>) {
    for line in std::io::stdin().lock().lines() {
        let event = match line {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => Event::Line(line),
            Err(err) => Event::InputFailed(err.to_string()),
        };
        let last = !matches!(event, Event::Line(_));
        if events.send(event).is_err() || last {
            return;
        }
    }
    let _ = events.send(Event::Eof);
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Show for Vec<String> {
        fn show(&mut self, text: String) {
            self.push(text);
        }
    }

    fn reply(id: &str, agent: &str, text: &str) -> HostLine {
        HostLine::Reply(Reply {
            id: id.into(),
            text: text.into(),
            agent: Some(agent.into()),
            in_reply_to: Some(format!("m:{agent}")),
            card: None,
            files: Vec::new(),
        })
    }

    fn session(agents: &[&str]) -> Session {
        Session {
            writer: None,
            target: Target {
                chat: Some("chat".into()),
                platform_id: "local".into(),
                agent: None,
                agents: agents.iter().map(|agent| agent.to_string()).collect(),
                note: None,
            },
            shown: Shown::default(),
            greeted: false,
            last_card: None,
            cards: ShownCards::default(),
        }
    }

    fn card(id: &str, card: &str, decided: bool, text: &str) -> HostLine {
        HostLine::Reply(Reply {
            id: id.into(),
            text: text.into(),
            agent: None,
            in_reply_to: None,
            card: Some(crate::channels::cli_protocol::CardView {
                id: card.into(),
                options: Vec::new(),
                decided,
                expires_at: (!decided).then(|| "2026-12-01T06:00:00Z".to_string()),
            }),
            files: Vec::new(),
        })
    }

    #[test]
    fn issue_12_a_card_shown_again_appears_once_with_its_expiry_and_its_decision_is_one_line() {
        let mut session = session(&["andy"]);
        let mut screen = Vec::new();
        session.host(card("apv-1-card", "apv-1", false, "Allow?"), &mut screen);
        session.host(card("apv-1-card-x1", "apv-1", false, "Allow?"), &mut screen);
        session.host(
            HostLine::Answered {
                answered: "apv-1".into(),
                outcome: "✅ Allowed by cli:local".into(),
            },
            &mut screen,
        );
        session.host(
            card("apv-1-outcome", "apv-1", true, "t\n\n✅ Allowed"),
            &mut screen,
        );
        // The other order: the outcome first, then the verdict.
        session.host(
            card("apv-2-outcome", "apv-2", true, "⌛ Expired"),
            &mut screen,
        );
        session.host(
            HostLine::Answered {
                answered: "apv-2".into(),
                outcome: "⌛ Expired".into(),
            },
            &mut screen,
        );
        assert_eq!(
            screen,
            [
                "Allow?\n(answer with its number, `/answer N`, or `/answer apv-1 OPTION`; it expires 2026-12-01 06:00 UTC)",
                "(card apv-1: ✅ Allowed by cli:local)",
                "⌛ Expired",
            ]
        );
    }

    #[test]
    fn issue_8_on_a_shared_chat_each_reply_names_its_agent() {
        let mut session = session(&["andy", "helper"]);
        let mut screen = Vec::new();
        session.host(reply("r1", "andy", "hi"), &mut screen);
        session.host(reply("r2", "helper", "hello\nthere"), &mut screen);
        assert_eq!(screen, ["[andy] hi", "[helper] hello\nthere"]);
        let mut own = self::session(&["andy"]);
        let mut screen = Vec::new();
        own.host(reply("r1", "andy", "hi"), &mut screen);
        assert_eq!(screen, ["hi"]);
    }

    #[test]
    fn issue_8_a_reply_that_comes_again_is_shown_once() {
        let mut session = session(&["andy"]);
        let mut screen = Vec::new();
        session.host(reply("r1", "andy", "hi"), &mut screen);
        session.host(
            HostLine::Welcome {
                hello: crate::channels::cli_protocol::Welcome {
                    platform_id: "local".into(),
                    protocol: 1,
                },
            },
            &mut screen,
        );
        session.host(reply("r1", "andy", "hi"), &mut screen);
        session.host(reply("r2", "andy", "again"), &mut screen);
        assert_eq!(
            screen,
            [
                "hi",
                "Connected to the CLI chat `chat`. Type a message; Ctrl-D leaves.",
                "again"
            ]
        );
    }

    #[test]
    fn a_number_answers_the_card_waiting_and_is_a_message_otherwise() {
        let answer = |text: &str, card: Option<&str>| {
            answer_command(text, card).map(|answer| answer.map(|line| (line.card, line.option)))
        };
        assert_eq!(
            answer(" 2 ", Some("msg-q")),
            Some(Ok(("msg-q".into(), "2".into())))
        );
        assert_eq!(answer("2", None), None, "no card waits: a message");
        assert_eq!(answer("2 apples", Some("msg-q")), None);
        assert_eq!(
            answer("/answer apv-1 allow", Some("msg-q")),
            Some(Ok(("apv-1".into(), "allow".into())))
        );
    }

    #[test]
    fn issue_8_a_superseded_client_stops_saying_why() {
        let mut session = session(&["andy"]);
        let mut screen = Vec::new();
        let stop = session.host(
            HostLine::Superseded {
                superseded: true,
                text: "[superseded by a newer client]".into(),
            },
            &mut screen,
        );
        assert_eq!(
            stop,
            Some(Leave {
                status: Status::Error,
                farewell:
                    "another client took over the CLI chat `chat` and now receives its replies; leaving"
                        .into()
            })
        );
        assert!(screen.is_empty(), "said last, by the caller");
    }
}
