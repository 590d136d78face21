//! The router's decision for one inbound message, as a pure function
//! (docs/runtime.md#routing-algorithm).
//!
//! [`route`] takes the message and the facts the router loaded for it (the chat, its wirings
//! in priority order, who the sender is and what they may access, which sticky sessions exist)
//! and returns what to do per wiring. It does no IO; `router.rs` loads the facts and executes
//! the decisions. Every v2 routing rule lives here so it can be tested in isolation.

pub use crate::db::routing::DropReason;
use std::collections::{HashMap, HashSet};

use agent_runner::commands::{self, Command};
use agent_runner::session_db::Content;
use regex::Regex;

use crate::state::{
    EngageMode, IgnoredMessagePolicy, SenderScope, SessionMode, UnknownSenderPolicy, Wiring,
};

/// Everything [`route`] needs to know about the message's context.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub is_group: bool,
    pub unknown_sender_policy: UnknownSenderPolicy,
    /// Wirings ordered by priority, highest first.
    pub wirings: Vec<Wiring>,
    /// The sender's user id (`<channel>:<handle>`), when the content names one.
    pub sender: Option<String>,
    /// Agents the sender may access: owner, global admin, scoped admin or member.
    pub accessible: HashSet<String>,
    /// Agents the sender administers (owner, global admin, or admin of that agent).
    pub administered: HashSet<String>,
    /// Agents with an active session for exactly this chat and thread (mention-sticky).
    pub sticky: HashSet<String>,
    /// The adapter supports threads (then group chats force per-thread sessions).
    pub threaded: bool,
}

/// The message fields the decision reads.
#[derive(Clone, Debug, Default)]
pub struct MessageFacts {
    /// `content.text`, or the raw content when it is not JSON; empty when absent.
    pub text: String,
    pub is_mention: bool,
}

/// What happens to the message for one wiring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Store in the agent's session; `wake` = trigger the agent (else context only).
    Deliver {
        agent: String,
        wake: bool,
        session_mode: SessionMode,
    },
    /// Answer the sender directly: an admin-only command from a non-admin
    /// (docs/runtime.md#command-gate).
    Deny { agent: String, command: String },
    /// Not stored for this agent; `audit` names a drop the chat's audit records.
    Skip {
        agent: String,
        audit: Option<DropReason>,
    },
}

/// The decision for one message: one action per wiring, plus a chat-level audit entry when
/// no agent took it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub actions: Vec<Action>,
    pub audit: Option<DropReason>,
}

/// Compiled engage patterns, cached by source. Invalid patterns are remembered as such.
#[derive(Default)]
pub struct Patterns {
    compiled: HashMap<String, Option<Regex>>,
}

impl Patterns {
    /// Does `pattern` match `text`? `None` and `.` always match; an invalid regex fails open
    /// (engages), as in v2 (docs/runtime.md#engage-modes) — validate rejects such manifests before
    /// they get here.
    pub fn matches(&mut self, pattern: Option<&str>, text: &str) -> bool {
        let pattern = match pattern {
            None | Some(".") => return true,
            Some(pattern) => pattern,
        };
        let compiled = self
            .compiled
            .entry(pattern.to_string())
            .or_insert_with(|| crate::state::engage_regex(pattern).ok());
        compiled.as_ref().is_none_or(|regex| regex.is_match(text))
    }
}

/// Decides what happens to a message on a wired chat (docs/runtime.md#routing-algorithm).
pub fn route(message: &MessageFacts, facts: &Facts, patterns: &mut Patterns) -> Decision {
    let mut actions = Vec::with_capacity(facts.wirings.len());
    let mut taken = false;
    let mut gate_audit = None;
    for wiring in &facts.wirings {
        let agent = wiring.agent.clone();
        let engages = engages(wiring, message, facts, patterns);
        let access = engages.then(|| access_gate(&agent, facts));
        let scope_ok = engages && scope_gate(wiring, &agent, facts);
        let action = match access {
            Some(Ok(())) if scope_ok => match command_gate(&message.text, &agent, facts) {
                CommandGate::Pass => Action::Deliver {
                    agent,
                    wake: true,
                    session_mode: effective_mode(wiring, facts),
                },
                // The agent engaged; the host drops the command (v2 counts it as engaged, so
                // it is not audited as `no_agent_engaged`).
                CommandGate::Filter => {
                    taken = true;
                    Action::Skip { agent, audit: None }
                }
                CommandGate::Deny(command) => Action::Deny { agent, command },
            },
            // Gate-refused messages are never accumulated (docs/runtime.md#routing-algorithm).
            Some(Err(reason)) => {
                gate_audit = gate_audit.or(Some(reason));
                Action::Skip {
                    agent,
                    audit: Some(reason),
                }
            }
            Some(Ok(())) => Action::Skip { agent, audit: None },
            // Host quirk 2 decided (docs/runtime.md#decisions-on-v2s-quirks): the command gate does
            // not run on the accumulate path; a command not addressed to the agent is context, not
            // a request.
            None if wiring.ignored_message_policy == IgnoredMessagePolicy::Accumulate => {
                Action::Deliver {
                    agent,
                    wake: false,
                    session_mode: effective_mode(wiring, facts),
                }
            }
            None => Action::Skip { agent, audit: None },
        };
        taken |= matches!(action, Action::Deliver { .. } | Action::Deny { .. });
        actions.push(action);
    }
    let audit = if taken {
        None
    } else {
        gate_audit.or(Some(DropReason::NoAgentEngaged))
    };
    Decision { actions, audit }
}

fn engages(
    wiring: &Wiring,
    message: &MessageFacts,
    facts: &Facts,
    patterns: &mut Patterns,
) -> bool {
    match wiring.engage_mode {
        EngageMode::Pattern => patterns.matches(wiring.engage_pattern.as_deref(), &message.text),
        EngageMode::Mention => message.is_mention,
        EngageMode::MentionSticky => {
            message.is_mention || (facts.is_group && facts.sticky.contains(&wiring.agent))
        }
    }
}

/// The access gate (docs/runtime.md#access-gate-and-sender-scope): public chats let everyone in;
/// otherwise the sender must be known and have access to the agent, else the chat's unknown-sender
/// policy decides the audit.
fn access_gate(agent: &str, facts: &Facts) -> Result<(), DropReason> {
    if facts.unknown_sender_policy == UnknownSenderPolicy::Public {
        return Ok(());
    }
    if facts.sender.is_some() && facts.accessible.contains(agent) {
        return Ok(());
    }
    Err(match facts.unknown_sender_policy {
        UnknownSenderPolicy::RequestApproval => DropReason::UnknownSenderRequestApproval,
        UnknownSenderPolicy::Strict | UnknownSenderPolicy::Public => {
            DropReason::UnknownSenderStrict
        }
    })
}

/// The sender-scope gate: `known` requires access to the agent even on public chats.
fn scope_gate(wiring: &Wiring, agent: &str, facts: &Facts) -> bool {
    match wiring.sender_scope {
        SenderScope::All => true,
        SenderScope::Known => facts.sender.is_some() && facts.accessible.contains(agent),
    }
}

/// Threaded adapters force per-thread sessions in group chats unless the wiring shares one
/// session across the agent (docs/runtime.md#session-resolution).
fn effective_mode(wiring: &Wiring, facts: &Facts) -> SessionMode {
    if facts.threaded && facts.is_group && wiring.session_mode != SessionMode::AgentShared {
        SessionMode::PerThread
    } else {
        wiring.session_mode
    }
}

enum CommandGate {
    Pass,
    Filter,
    Deny(String),
}

/// The host's side of the shared slash-command table (`agent_runner::commands`): filtered
/// commands are dropped, admin ones pass only for the agent's admins, the rest pass.
fn command_gate(text: &str, agent: &str, facts: &Facts) -> CommandGate {
    match commands::category(text) {
        Command::Filtered => CommandGate::Filter,
        Command::Admin => {
            let allowed = facts.sender.is_some() && facts.administered.contains(agent);
            if allowed {
                CommandGate::Pass
            } else {
                CommandGate::Deny(commands::command(text).unwrap_or_default())
            }
        }
        Command::None | Command::Plain | Command::Passthrough => CommandGate::Pass,
    }
}

/// Text the router answers an unauthorised admin command with (docs/runtime.md#command-gate).
pub fn denial_text(command: &str) -> String {
    format!("Permission denied: {command} requires admin access.")
}

/// The message text: `content.text`, empty when absent (content that is not JSON was read as
/// text at the boundary, `Content::parse`; docs/runtime.md#engage-modes).
pub fn message_text(content: &Content) -> String {
    content.text_or_empty().to_string()
}

/// The sender's user id from message content (docs/runtime.md#senders-and-users): `senderId`,
/// `sender`, then `author.userId`; namespaced with the channel type unless it already contains `:`.
pub fn sender_id(content: &Content, channel_type: &str) -> Option<String> {
    let handle = content
        .sender_id
        .as_deref()
        .or(content.sender.as_deref())
        .or_else(|| content.rest_str(&["author", "userId"]))?;
    if handle.is_empty() {
        return None;
    }
    Some(if handle.contains(':') {
        handle.to_string()
    } else {
        format!("{channel_type}:{handle}")
    })
}

/// The sender's display name from content: `senderName`, `author.fullName`, `author.userName`.
pub fn sender_name(content: &Content) -> Option<String> {
    content
        .sender_name
        .as_deref()
        .or_else(|| content.rest_str(&["author", "fullName"]))
        .or_else(|| content.rest_str(&["author", "userName"]))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiring(agent: &str, mode: EngageMode) -> Wiring {
        Wiring {
            channel: "chat".into(),
            agent: agent.into(),
            engage_mode: mode,
            engage_pattern: None,
            sender_scope: SenderScope::All,
            ignored_message_policy: IgnoredMessagePolicy::Drop,
            session_mode: SessionMode::Shared,
            priority: 0,
        }
    }

    fn public(wirings: Vec<Wiring>) -> Facts {
        Facts {
            unknown_sender_policy: UnknownSenderPolicy::Public,
            wirings,
            sender: Some("cli:local".into()),
            ..Facts::default()
        }
    }

    fn text(text: &str) -> MessageFacts {
        MessageFacts {
            text: text.into(),
            is_mention: false,
        }
    }

    fn deliver(agent: &str, wake: bool) -> Action {
        Action::Deliver {
            agent: agent.into(),
            wake,
            session_mode: SessionMode::Shared,
        }
    }

    #[test]
    fn pattern_dot_always_engages_and_fans_out_in_order() {
        let mut a = wiring("a", EngageMode::Pattern);
        a.engage_pattern = Some(".".into());
        let mut b = wiring("b", EngageMode::Pattern);
        b.engage_pattern = Some("^@b\\b".into());
        let facts = public(vec![a, b]);
        let decision = route(&text("@b hello"), &facts, &mut Patterns::default());
        assert_eq!(
            decision.actions,
            vec![deliver("a", true), deliver("b", true)]
        );
        let decision = route(&text("hello"), &facts, &mut Patterns::default());
        assert_eq!(
            decision.actions[1],
            Action::Skip {
                agent: "b".into(),
                audit: None
            }
        );
        assert_eq!(decision.audit, None);
    }

    #[test]
    fn invalid_regex_fails_open() {
        let mut a = wiring("a", EngageMode::Pattern);
        a.engage_pattern = Some("(unclosed".into());
        let decision = route(
            &text("anything"),
            &public(vec![a]),
            &mut Patterns::default(),
        );
        assert_eq!(decision.actions, vec![deliver("a", true)]);
    }

    /// The router compiles with the manifest's size limit (`state::engage_regex`): a pattern
    /// over it is never compiled with the default, larger limit (validate refuses it first).
    #[test]
    fn issue_7_the_router_compiles_engage_patterns_within_the_size_limit() {
        let big = r"\w{100}";
        assert!(Regex::new(big).is_ok_and(|regex| !regex.is_match("short")));
        let mut patterns = Patterns::default();
        assert!(
            patterns.matches(Some(big), "short"),
            "not compiled: fails open"
        );
        assert_eq!(patterns.compiled.get(big).map(Option::is_some), Some(false));
        assert!(!patterns.matches(Some("^x$"), "short"));
    }

    #[test]
    fn mention_mode_needs_a_mention() {
        let facts = public(vec![wiring("a", EngageMode::Mention)]);
        let decision = route(&text("hi"), &facts, &mut Patterns::default());
        assert_eq!(decision.audit, Some(DropReason::NoAgentEngaged));
        let mention = MessageFacts {
            text: "hi".into(),
            is_mention: true,
        };
        assert_eq!(
            route(&mention, &facts, &mut Patterns::default()).actions,
            vec![deliver("a", true)]
        );
    }

    #[test]
    fn mention_sticky_keeps_engaging_in_groups_with_a_session() {
        let mut facts = public(vec![wiring("a", EngageMode::MentionSticky)]);
        facts.is_group = true;
        assert_eq!(
            route(&text("hi"), &facts, &mut Patterns::default()).audit,
            Some(DropReason::NoAgentEngaged)
        );
        facts.sticky.insert("a".into());
        assert_eq!(
            route(&text("hi"), &facts, &mut Patterns::default()).actions,
            vec![deliver("a", true)]
        );
        facts.is_group = false; // DMs never stick
        assert_eq!(
            route(&text("hi"), &facts, &mut Patterns::default()).audit,
            Some(DropReason::NoAgentEngaged)
        );
    }

    #[test]
    fn accumulate_stores_context_without_waking() {
        let mut a = wiring("a", EngageMode::Mention);
        a.ignored_message_policy = IgnoredMessagePolicy::Accumulate;
        let decision = route(&text("context"), &public(vec![a]), &mut Patterns::default());
        assert_eq!(decision.actions, vec![deliver("a", false)]);
        assert_eq!(decision.audit, None);
    }

    #[test]
    fn strict_chat_refuses_unknown_senders_and_never_accumulates_them() {
        let mut a = wiring("a", EngageMode::Pattern);
        a.ignored_message_policy = IgnoredMessagePolicy::Accumulate;
        let mut facts = public(vec![a]);
        facts.unknown_sender_policy = UnknownSenderPolicy::Strict;
        let decision = route(&text("hi"), &facts, &mut Patterns::default());
        assert_eq!(
            decision.actions,
            vec![Action::Skip {
                agent: "a".into(),
                audit: Some(DropReason::UnknownSenderStrict)
            }]
        );
        assert_eq!(decision.audit, Some(DropReason::UnknownSenderStrict));
        facts.accessible.insert("a".into());
        assert_eq!(
            route(&text("hi"), &facts, &mut Patterns::default()).actions,
            vec![deliver("a", true)]
        );
    }

    #[test]
    fn request_approval_policy_is_audited_as_such() {
        let mut facts = public(vec![wiring("a", EngageMode::Pattern)]);
        facts.unknown_sender_policy = UnknownSenderPolicy::RequestApproval;
        facts.sender = None;
        let decision = route(&text("hi"), &facts, &mut Patterns::default());
        assert_eq!(
            decision.audit,
            Some(DropReason::UnknownSenderRequestApproval)
        );
    }

    #[test]
    fn sender_scope_known_applies_even_on_public_chats() {
        let mut a = wiring("a", EngageMode::Pattern);
        a.sender_scope = SenderScope::Known;
        let mut facts = public(vec![a]);
        let decision = route(&text("hi"), &facts, &mut Patterns::default());
        assert_eq!(
            decision.actions,
            vec![Action::Skip {
                agent: "a".into(),
                audit: None
            }]
        );
        facts.accessible.insert("a".into());
        assert_eq!(
            route(&text("hi"), &facts, &mut Patterns::default()).actions,
            vec![deliver("a", true)]
        );
    }

    #[test]
    fn threaded_group_chats_force_per_thread_sessions_except_agent_shared() {
        let mut shared = wiring("a", EngageMode::Pattern);
        shared.session_mode = SessionMode::Shared;
        let mut agent_shared = wiring("b", EngageMode::Pattern);
        agent_shared.session_mode = SessionMode::AgentShared;
        let mut facts = public(vec![shared, agent_shared]);
        facts.threaded = true;
        facts.is_group = true;
        let decision = route(&text("hi"), &facts, &mut Patterns::default());
        assert_eq!(
            decision.actions,
            vec![
                Action::Deliver {
                    agent: "a".into(),
                    wake: true,
                    session_mode: SessionMode::PerThread
                },
                Action::Deliver {
                    agent: "b".into(),
                    wake: true,
                    session_mode: SessionMode::AgentShared
                },
            ]
        );
    }

    #[test]
    fn slash_commands_are_filtered_or_gated() {
        let facts = public(vec![wiring("a", EngageMode::Pattern)]);
        let decision = route(&text("/login now"), &facts, &mut Patterns::default());
        assert_eq!(
            decision.actions,
            vec![Action::Skip {
                agent: "a".into(),
                audit: None
            }]
        );
        let decision = route(&text("/CLEAR"), &facts, &mut Patterns::default());
        assert_eq!(
            decision.actions,
            vec![Action::Deny {
                agent: "a".into(),
                command: "/clear".into()
            }]
        );
        let mut admin = facts.clone();
        admin.administered.insert("a".into());
        assert_eq!(
            route(&text("/clear"), &admin, &mut Patterns::default()).actions,
            vec![deliver("a", true)]
        );
        assert_eq!(
            route(&text("/shrug"), &facts, &mut Patterns::default()).actions,
            vec![deliver("a", true)]
        );
        assert_eq!(
            denial_text("/clear"),
            "Permission denied: /clear requires admin access."
        );
    }

    /// Issue 9 point 10: the host's command gate and the runner's categories disagreed
    /// (`/remote-control`, `/start`). Every command either side names must get the same
    /// treatment: dropped by the host and plain text to the runner, admin-gated by the host and
    /// a native command in the runner, or passed by the host and handled alike by the runner.
    #[test]
    fn issue_9_host_and_runner_agree_on_every_slash_command() {
        use agent_runner::commands::{Command, category};
        let facts = public(vec![wiring("a", EngageMode::Pattern)]);
        let mut disagreements = Vec::new();
        for command in [
            "/help",
            "/login",
            "/logout",
            "/doctor",
            "/config",
            "/remote-control",
            "/start",
            "/clear",
            "/compact",
            "/context",
            "/cost",
            "/files",
            "/shrug",
        ] {
            let host = route(&text(command), &facts, &mut Patterns::default()).actions;
            let runner = category(command);
            let agree = matches!(
                (&host[0], runner),
                (Action::Skip { .. }, Command::Filtered)
                    | (Action::Deny { .. }, Command::Admin)
                    | (
                        Action::Deliver { .. },
                        Command::Passthrough | Command::Plain
                    )
            );
            if !agree {
                disagreements.push(format!("{command}: host {:?}, runner {runner:?}", host[0]));
            }
        }
        assert!(disagreements.is_empty(), "{disagreements:#?}");
    }

    /// Content as an adapter reads it at the boundary (`Content::parse`: non-JSON is text).
    fn content(raw: &str) -> Content {
        Content::parse(raw)
    }

    #[test]
    fn sender_and_text_extraction() {
        assert_eq!(
            sender_id(&content(r#"{"senderId":"42"}"#), "telegram").as_deref(),
            Some("telegram:42")
        );
        assert_eq!(
            sender_id(&content(r#"{"sender":"29:x"}"#), "teams").as_deref(),
            Some("29:x")
        );
        assert_eq!(
            sender_id(&content(r#"{"author":{"userId":"u"}}"#), "discord").as_deref(),
            Some("discord:u")
        );
        assert_eq!(sender_id(&content("not json"), "cli"), None);
        assert_eq!(message_text(&content(r#"{"text":"hi"}"#)), "hi");
        assert_eq!(message_text(&content("raw words")), "raw words");
        assert_eq!(message_text(&content(r#"{"other":1}"#)), "");
        assert_eq!(
            sender_name(&content(r#"{"author":{"fullName":"Ann"}}"#)).as_deref(),
            Some("Ann")
        );
    }

    #[test]
    fn a_filtered_command_counts_as_engaged_and_is_not_audited() {
        let facts = public(vec![wiring("a", EngageMode::Pattern)]);
        let decision = route(&text("/help"), &facts, &mut Patterns::default());
        assert_eq!(
            decision.actions,
            vec![Action::Skip {
                agent: "a".into(),
                audit: None
            }]
        );
        assert_eq!(decision.audit, None, "the agent engaged; the host filtered");
    }

    #[test]
    fn messages_that_do_not_engage_are_accumulated_even_from_unknown_senders() {
        // The gates only run when the wiring engages (docs/runtime.md#routing-algorithm), so
        // context from strangers on a strict chat is still stored without waking.
        let mut a = wiring("a", EngageMode::Mention);
        a.ignored_message_policy = IgnoredMessagePolicy::Accumulate;
        let mut facts = public(vec![a]);
        facts.unknown_sender_policy = UnknownSenderPolicy::Strict;
        facts.sender = None;
        let decision = route(&text("chatter"), &facts, &mut Patterns::default());
        assert_eq!(decision.actions, vec![deliver("a", false)]);
        assert_eq!(decision.audit, None);
    }

    #[test]
    fn one_refusing_wiring_does_not_stop_another_from_taking_the_message() {
        let a = wiring("a", EngageMode::Pattern);
        let b = wiring("b", EngageMode::Pattern);
        let mut facts = public(vec![a, b]);
        facts.unknown_sender_policy = UnknownSenderPolicy::Strict;
        facts.accessible.insert("b".into());
        let decision = route(&text("hi"), &facts, &mut Patterns::default());
        assert_eq!(
            decision.actions,
            vec![
                Action::Skip {
                    agent: "a".into(),
                    audit: Some(DropReason::UnknownSenderStrict)
                },
                deliver("b", true)
            ]
        );
        // v2 would also audit `a`'s refusal; we audit a chat only when no agent took the
        // message (the audit is of dropped messages, and this one was not dropped).
        assert_eq!(decision.audit, None);
    }

    #[test]
    fn commands_not_addressed_to_the_agent_are_accumulated_not_gated() {
        // Host quirk 2 decided (docs/runtime.md#decisions-on-v2s-quirks): v2 ran the command gate
        // on the accumulate path too (denying or filtering context); we store the command as plain
        // context.
        let mut a = wiring("a", EngageMode::Mention);
        a.ignored_message_policy = IgnoredMessagePolicy::Accumulate;
        let facts = public(vec![a]);
        for command in ["/clear", "/help"] {
            assert_eq!(
                route(&text(command), &facts, &mut Patterns::default()).actions,
                vec![deliver("a", false)],
                "{command}"
            );
        }
    }
}
