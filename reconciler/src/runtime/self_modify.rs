//! What follows a decided self-modification (docs/runtime.md#self-modification), run by the
//! approvals actor after the decision commits: an approved change is landed in the manifests
//! by the [`Lander`] (`ops::self_modify`: edit, validate, write, commit, apply), then the agent's
//! session gets v2's on-wake note through a restart request (the executor writes it as an
//! on-wake row and replaces the container, so the note reaches the fresh one); a change that
//! could not land, a rejection and an expiry are told to the agent in a system note and the
//! session is woken. The approver is told the outcome where the card was.

use rusqlite::Connection;
use serde_json::json;
use tracing::{info, warn};

use super::approvals::{Followup, Lander, SelfModification, kinds};
use crate::channels::Outbound;
use crate::db::approvals::Approval;
use crate::db::executor::{self as restarts, NewRestart};
use crate::manifest::patch::Change;
use crate::paths::Paths;

/// What a follow-up leaves to send: messages to approvers and the session to wake.
#[derive(Debug, Default)]
pub struct Done {
    pub notes: Vec<(String, Outbound)>,
    pub wake: Option<String>,
}

/// Runs one follow-up (see the module comment). Failures are logged and told, never raised.
pub fn follow_up(
    conn: &Connection,
    paths: &Paths,
    lander: Option<&Lander>,
    followup: Followup,
) -> Done {
    match followup {
        Followup::TellAgent {
            agent,
            session,
            text,
        } => tell(paths, &agent, &session, &text),
        Followup::SelfModify(modification) => land(conn, paths, lander, &modification),
    }
}

/// The follow-up of an expired approval: the agent of a self-modification is told.
pub fn expired(approval: &Approval) -> Option<Followup> {
    if approval.kind != kinds::INSTALL_PACKAGES && approval.kind != kinds::ADD_MCP_SERVER {
        return None;
    }
    let request: super::system::ChangeRequest = serde_json::from_str(&approval.payload).ok()?;
    Some(Followup::TellAgent {
        text: format!(
            "Your {} request expired: no admin answered in time.",
            request.action
        ),
        agent: request.agent,
        session: request.session,
    })
}

/// The on-wake note of a landed change (v2's texts).
pub fn landed_note(change: &Change) -> String {
    match change {
        Change::Packages { apt, npm } => format!(
            "Packages installed ({}) and container rebuilt. Verify the new packages are available (e.g. run them or check versions) and report the result to the user.",
            listing(apt, npm)
        ),
        Change::McpServer { name, .. } => format!(
            "MCP server \"{name}\" added. Verify it's available (e.g. list your tools) and report the result to the user."
        ),
    }
}

/// `apt: jq, npm: left-pad`.
pub fn listing(apt: &[String], npm: &[String]) -> String {
    let mut list: Vec<String> = apt.iter().map(|p| format!("apt: {p}")).collect();
    list.extend(npm.iter().map(|p| format!("npm: {p}")));
    list.join(", ")
}

fn tell(paths: &Paths, agent: &str, session: &str, text: &str) -> Done {
    let dir = paths.session(agent, session);
    match super::system::write_note(&dir, agent, text) {
        Ok(()) => Done {
            notes: Vec::new(),
            wake: Some(session.to_string()),
        },
        Err(err) => {
            warn!(agent, session, error = %format!("{err:#}"), "the agent could not be told the outcome of its request");
            Done::default()
        }
    }
}

fn land(
    conn: &Connection,
    paths: &Paths,
    lander: Option<&Lander>,
    modification: &SelfModification,
) -> Done {
    let request = &modification.request;
    let landed = match lander {
        Some(lander) => (lander.0)(modification),
        None => Err("this daemon has no manifest folder to write the change into".to_string()),
    };
    match landed {
        Ok(summary) => {
            info!(agent = %request.agent, approval = %modification.approval, "self-modification landed");
            let note = landed_note(&request.change);
            let restart = NewRestart {
                agent: &request.agent,
                session_id: Some(&request.session),
                rebuild: matches!(request.change, Change::Packages { .. }),
                message: Some(&note),
            };
            let mut done = Done {
                notes: vec![approver_note(modification, format!("✅ {summary}"))],
                wake: None,
            };
            if let Err(err) = restarts::request_restart(conn, &restart) {
                warn!(agent = %request.agent, error = %err, "the restart after a self-modification was not requested");
                done = tell(paths, &request.agent, &request.session, &note);
                done.notes
                    .push(approver_note(modification, format!("✅ {summary}")));
            }
            done
        }
        Err(why) => {
            warn!(agent = %request.agent, approval = %modification.approval, error = %why, "self-modification not landed");
            let mut done = tell(
                paths,
                &request.agent,
                &request.session,
                &format!(
                    "Your {} was approved, but applying it failed: {why}",
                    request.action
                ),
            );
            done.notes.push(approver_note(
                modification,
                format!(
                    "⚠️ agent `{}`: the approved {} was not applied: {why}",
                    request.agent, request.action
                ),
            ));
            done
        }
    }
}

fn approver_note(modification: &SelfModification, text: String) -> (String, Outbound) {
    let (channel_type, platform_id) = &modification.card;
    (
        channel_type.clone(),
        Outbound {
            id: format!("{}-landed", modification.approval),
            agent: None,
            platform_id: platform_id.clone(),
            thread_id: None,
            kind: "chat".to_string(),
            content: json!({ "text": text }),
            in_reply_to: None,
            files: Vec::new(),
        },
    )
}
