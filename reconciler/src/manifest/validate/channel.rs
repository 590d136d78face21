//! Channel documents and their wirings (engage modes, patterns, scopes, session modes).
//! Part of `validate`; pure.

use super::{At, CHANNEL_TYPE, Checker};
use crate::manifest::limits::{MAX_PATTERN_BYTES, REGEX_SIZE_LIMIT, Unit, show};
use crate::manifest::model::{ChannelDoc, Sp, WiringDoc};
use crate::state::{
    Channel, EngageMode, IgnoredMessagePolicy, Kind, Resource, SenderScope, SessionMode,
    UnknownSenderPolicy, Wiring,
};

impl Checker<'_> {
    pub(super) fn channel(&mut self, at: At, doc: &ChannelDoc) {
        let name = &doc.name.value;
        let address = format!("channel.{name}");
        self.name_rule(at, &doc.name, &address, "name");
        if !CHANNEL_TYPE.is_match(&doc.channel_type.value) {
            let message = format!(
                "`channel_type` `{}` must be lowercase letters, digits and `-`, starting with a letter",
                doc.channel_type.value
            );
            self.push(at.diag(&doc.channel_type, &address, "channel_type", message));
        }
        if doc.platform_id.value.trim().is_empty() {
            let message = "`platform_id` must not be empty".to_string();
            self.push(
                at.diag(&doc.platform_id, &address, "platform_id", message)
                    .hint("use the chat id exactly as the adapter emits it"),
            );
        } else if doc.platform_id.value.trim() != doc.platform_id.value {
            let message = format!(
                "`platform_id` `{}` starts or ends with a space",
                doc.platform_id.value
            );
            let hint = format!(
                "ids are matched exactly: write `{}`",
                doc.platform_id.value.trim()
            );
            self.push(
                at.diag(&doc.platform_id, &address, "platform_id", message)
                    .hint(hint),
            );
        }
        self.visible(at, &doc.platform_id, &address, "platform_id");
        if let Some(display_name) = &doc.display_name {
            self.visible(at, display_name, &address, "display_name");
        }
        let unknown_sender_policy: UnknownSenderPolicy = self
            .choice(
                at,
                doc.unknown_sender_policy.as_ref(),
                &address,
                "unknown_sender_policy",
            )
            .unwrap_or_default();
        let channel = Channel {
            name: name.clone(),
            channel_type: doc.channel_type.value.clone(),
            platform_id: doc.platform_id.value.clone(),
            display_name: doc.display_name.as_ref().map(|sp| sp.value.clone()),
            is_group: doc.is_group.unwrap_or(false),
            unknown_sender_policy,
        };
        self.add(
            at,
            &doc.name,
            Resource::Channel(channel),
            &format!("channel `{name}`"),
        );
        for (index, sp) in doc.wirings.iter().enumerate() {
            self.wiring(at, doc, index, sp);
        }
    }

    fn wiring(&mut self, at: At, channel: &ChannelDoc, index: usize, sp: &Sp<WiringDoc>) {
        let wiring = &sp.value;
        let channel_name = &channel.name.value;
        let agent = &wiring.agent.value;
        let address = format!("wiring.{channel_name}/{agent}");
        let field = |name: &str| format!("wirings[{index}].{name}");
        self.reference(at, &wiring.agent, &address, &field("agent"), Kind::Agent);
        let engage_mode: EngageMode = self
            .choice(at, wiring.engage_mode.as_ref(), &address, "engage_mode")
            .unwrap_or_default();
        // An unknown mode was already reported; judging the pattern against it would only
        // add a second, misleading error.
        let mode_is_valid = wiring
            .engage_mode
            .as_ref()
            .is_none_or(|mode| mode.value == engage_mode.as_str());
        match (&wiring.engage_pattern, engage_mode) {
            (None, EngageMode::Pattern) => {
                let mode = wiring.engage_mode.as_ref().unwrap_or(&wiring.agent);
                let message = "`engage_pattern` is required for `engage_mode: pattern`".to_string();
                self.push(
                    at.diag(mode, &address, &field("engage_pattern"), message)
                        .hint("use `engage_pattern: \".\"` to engage on every message"),
                );
            }
            (Some(pattern), EngageMode::Pattern) => {
                let field = field("engage_pattern");
                if let Some(diagnostic) = pattern_problem(pattern) {
                    self.push(
                        at.diag(pattern, &address, &field, diagnostic.0)
                            .hint(diagnostic.1),
                    );
                }
            }
            (Some(pattern), _) if mode_is_valid => {
                let message = format!(
                    "`engage_pattern` is only allowed with `engage_mode: pattern` (this wiring uses `{}`)",
                    engage_mode.as_str()
                );
                self.push(
                    at.diag(pattern, &address, &field("engage_pattern"), message)
                        .hint("add `engage_mode: pattern` or remove `engage_pattern`"),
                );
            }
            _ => {}
        }
        if channel.channel_type.value == "cli" && engage_mode != EngageMode::Pattern {
            // The CLI adapter never marks a message as a mention (a terminal cannot @-mention).
            let place = wiring.engage_mode.as_ref().unwrap_or(&wiring.agent);
            let message = match &wiring.engage_mode {
                Some(_) => format!(
                    "the CLI channel cannot mention, so `engage_mode: {}` never engages",
                    engage_mode.as_str()
                ),
                None => "the CLI channel cannot mention, so the default `engage_mode: mention` never engages".to_string(),
            };
            let hint =
                "use `engage_mode: pattern` with `engage_pattern: \".\"` to answer every line";
            self.push(
                at.diag(place, &address, &field("engage_mode"), message)
                    .hint(hint)
                    .warning(),
            );
        }
        let sender_scope: SenderScope = self
            .choice(at, wiring.sender_scope.as_ref(), &address, "sender_scope")
            .unwrap_or_default();
        let ignored_message_policy: IgnoredMessagePolicy = self
            .choice(
                at,
                wiring.ignored_message_policy.as_ref(),
                &address,
                "ignored_message_policy",
            )
            .unwrap_or_default();
        let session_mode: SessionMode = self
            .choice(at, wiring.session_mode.as_ref(), &address, "session_mode")
            .unwrap_or_default();
        let resource = Resource::Wiring(Wiring {
            channel: channel_name.clone(),
            agent: agent.clone(),
            engage_mode,
            engage_pattern: wiring.engage_pattern.as_ref().map(|sp| sp.value.clone()),
            sender_scope,
            ignored_message_policy,
            session_mode,
            priority: wiring.priority.unwrap_or(0),
        });
        self.add(
            at,
            sp,
            resource,
            &format!("wiring of agent `{agent}` on channel `{channel_name}`"),
        );
    }
}

/// Why an `engage_pattern` cannot be used (message, hint): too long to read, or it does not
/// compile within the size limit the router compiles it with (`state::engage_regex`).
fn pattern_problem(pattern: &Sp<String>) -> Option<(String, String)> {
    let source = &pattern.value;
    if source.len() > MAX_PATTERN_BYTES {
        let message = format!(
            "`engage_pattern` is {} long; at most {} is allowed",
            show(source.len(), Unit::Bytes),
            show(MAX_PATTERN_BYTES, Unit::Bytes)
        );
        let hint = "engage patterns are short: match a name or a command, not a list of words";
        return Some((message, hint.to_string()));
    }
    match crate::state::engage_regex(source) {
        Ok(_) => None,
        Err(regex::Error::CompiledTooBig(_)) => {
            let message = format!(
                "`engage_pattern` `{source}` compiles to more than {}",
                show(REGEX_SIZE_LIMIT, Unit::Bytes)
            );
            let hint = "use fewer or smaller repetitions, and ASCII classes (`[a-zA-Z0-9_]`, `(?-u:\\w)`) instead of Unicode ones";
            Some((message, hint.to_string()))
        }
        Err(err) => {
            let text = err.to_string();
            let last = text.lines().last().unwrap_or_default().trim();
            let reason = last.strip_prefix("error: ").unwrap_or(last);
            let message = format!("`engage_pattern` `{source}` is not a valid regex: {reason}");
            let hint = "the syntax is Rust's `regex` crate (no look-around or backreferences)";
            Some((message, hint.to_string()))
        }
    }
}
