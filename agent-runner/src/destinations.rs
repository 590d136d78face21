//! Destinations (docs/agent-runner.md#destinations-and-the-system-prompt): lookups over the live
//! `destinations` table and the system-prompt addendum. Names are used exactly as stored (the host
//! normalises them).

use crate::session_db::DestinationRow;

/// Exact (case-sensitive) lookup by name.
pub fn by_name<'a>(all: &'a [DestinationRow], name: &str) -> Option<&'a DestinationRow> {
    all.iter().find(|d| d.name == name)
}

/// Reverse lookup of an inbound row's address: `agent` rows by agent group id, channels by
/// (channel_type, platform_id). Both parts are required.
pub fn by_routing<'a>(
    all: &'a [DestinationRow],
    channel_type: Option<&str>,
    platform_id: Option<&str>,
) -> Option<&'a DestinationRow> {
    let (ct, pid) = (channel_type?, platform_id?);
    if ct == "agent" {
        return all
            .iter()
            .find(|d| d.kind == "agent" && d.agent_group_id.as_deref() == Some(pid));
    }
    all.iter().find(|d| {
        d.kind == "channel"
            && d.channel_type.as_deref() == Some(ct)
            && d.platform_id.as_deref() == Some(pid)
    })
}

/// Where a final-text block to `d` goes: `(channel_type, platform_id)`.
pub fn address(d: &DestinationRow) -> (Option<String>, Option<String>) {
    if d.kind == "agent" {
        (Some("agent".into()), d.agent_group_id.clone())
    } else {
        (d.channel_type.clone(), d.platform_id.clone())
    }
}

/// `` `name` `` plus ` (display)` when the display name differs.
fn label(d: &DestinationRow) -> String {
    match d.display_name.as_deref() {
        Some(display) if display != d.name => format!("`{}` ({display})", d.name),
        _ => format!("`{}`", d.name),
    }
}

/// The system-prompt addendum (docs/agent-runner.md#destinations-and-the-system-prompt): identity,
/// then how to send, built once at startup.
pub fn system_prompt_addendum(assistant_name: Option<&str>, all: &[DestinationRow]) -> String {
    let mut sections = Vec::new();
    if let Some(name) = assistant_name.filter(|n| !n.is_empty()) {
        sections.push(format!(
            "# You are {name}\n\nYour name is **{name}**. Use it when asked who you are, when \
             introducing yourself, and when a signature is explicitly requested."
        ));
    }
    let mut sending = String::from("## Sending messages\n\n");
    match all {
        [] => {
            sending.push_str(
                "You have no configured destinations, so nothing you write can be sent until an \
                 admin wires one up.",
            );
            sections.push(sending);
            return sections.join("\n\n");
        }
        [one] => sending.push_str(&format!("Your destination is {}.", label(one))),
        many => {
            sending.push_str("You can send messages to these destinations:\n\n");
            let lines: Vec<_> = many.iter().map(|d| format!("- {}", label(d))).collect();
            sending.push_str(&lines.join("\n"));
        }
    }
    sending.push_str(
        "\n\nWrap each delivered message in a `<message to=\"name\">…</message>` block: one block \
         per message, several blocks to reach several destinations. Anything outside a block is \
         not sent; put thinking you do not want delivered in `<internal>…</internal>`.",
    );
    sending.push_str(
        "\n\nEvery inbound `<message>` carries `from=\"name\"`: when replying, default to \
         addressing the destination it came `from` unless you are asked to send elsewhere.",
    );
    sending.push_str(
        "\n\nThe `send_message` tool delivers the same way in the middle of a turn (for quick \
         acknowledgements); each call or block lands as a separate message.",
    );
    sections.push(sending);
    sections.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str, display: Option<&str>) -> DestinationRow {
        DestinationRow {
            name: name.into(),
            display_name: display.map(str::to_string),
            kind: "channel".into(),
            channel_type: Some("discord".into()),
            platform_id: Some(format!("p-{name}")),
            agent_group_id: None,
        }
    }

    #[test]
    fn includes_default_routing_nudge_for_several_destinations() {
        let s = system_prompt_addendum(None, &[channel("casa", None), channel("work", None)]);
        assert!(s.contains("default to addressing the destination it came `from`"));
        assert!(s.contains("from=\"name\""));
        assert!(s.contains("`casa`") && s.contains("`work`"));
    }

    #[test]
    fn describes_wrapping_for_a_single_destination() {
        let s = system_prompt_addendum(None, &[channel("casa", Some("Family"))]);
        assert!(s.contains("Wrap each delivered message"));
        assert!(s.contains("<message to=\"name\">"));
        assert!(s.contains("Your destination is `casa` (Family)."));
        assert!(s.contains("default to addressing the destination it came `from`"));
    }

    #[test]
    fn handles_no_destinations() {
        let s = system_prompt_addendum(None, &[]);
        assert!(s.contains("no configured destinations"));
        assert!(!s.contains("default to addressing"));
    }

    #[test]
    fn identity_and_full_text_snapshot() {
        let s = system_prompt_addendum(Some("Andy"), &[channel("casa", Some("casa"))]);
        expect_test::expect![[r#"
            # You are Andy

            Your name is **Andy**. Use it when asked who you are, when introducing yourself, and when a signature is explicitly requested.

            ## Sending messages

            Your destination is `casa`.

            Wrap each delivered message in a `<message to="name">…</message>` block: one block per message, several blocks to reach several destinations. Anything outside a block is not sent; put thinking you do not want delivered in `<internal>…</internal>`.

            Every inbound `<message>` carries `from="name"`: when replying, default to addressing the destination it came `from` unless you are asked to send elsewhere.

            The `send_message` tool delivers the same way in the middle of a turn (for quick acknowledgements); each call or block lands as a separate message."#]]
        .assert_eq(&s);
    }

    #[test]
    fn reverse_lookup_by_routing() {
        let mut agent = channel("peer", None);
        agent.kind = "agent".into();
        agent.agent_group_id = Some("ag-1".into());
        let all = vec![channel("casa", None), agent];
        assert_eq!(
            by_routing(&all, Some("discord"), Some("p-casa"))
                .unwrap()
                .name,
            "casa"
        );
        assert_eq!(
            by_routing(&all, Some("agent"), Some("ag-1")).unwrap().name,
            "peer"
        );
        assert!(by_routing(&all, Some("discord"), None).is_none());
        assert!(by_name(&all, "Casa").is_none());
    }
}
