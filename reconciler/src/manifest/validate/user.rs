//! User documents: the id's shape, roles (owner is global) and memberships. Part of
//! `validate`; pure.

use std::collections::BTreeMap;

use super::{At, Checker, text};
use crate::manifest::Source;
use crate::manifest::diagnostic::{Diagnostic, did_you_mean};
use crate::manifest::model::{RoleDoc, Sp, UserDoc};
use crate::state::{Kind, Member, Resource, Role, RoleKind, TextEnum, User};

impl Checker<'_> {
    pub(super) fn user(&mut self, at: At, doc: &UserDoc) {
        let id = &doc.id.value;
        let address = format!("user.{id}");
        match id.split_once(':') {
            _ if id.trim() != id && !id.trim().is_empty() => {
                let message = format!("user id `{id}` starts or ends with a space");
                self.push(
                    at.diag(&doc.id, &address, "id", message)
                        .hint(format!("ids are matched exactly: write `{}`", id.trim())),
                );
            }
            Some((channel, handle)) if !channel.is_empty() && !handle.is_empty() => {}
            _ => {
                let message = format!("user id `{id}` must be `<channel>:<handle>`");
                self.push(
                    at.diag(&doc.id, &address, "id", message)
                        .hint("for example `telegram:6037840640`"),
                );
            }
        }
        self.visible(at, &doc.id, &address, "id");
        if let Some(display_name) = &doc.display_name {
            self.visible(at, display_name, &address, "display_name");
        }
        let user = User {
            id: id.clone(),
            display_name: doc.display_name.as_ref().map(|sp| sp.value.clone()),
        };
        self.add(at, &doc.id, Resource::User(user), &format!("user `{id}`"));
        for (index, sp) in doc.roles.iter().enumerate() {
            let field = format!("roles[{index}]");
            let (role_text, agent) = match &sp.value {
                RoleDoc::Global(role) => (role.as_str(), None),
                RoleDoc::Scoped(scoped) => (scoped.role.as_str(), scoped.agent.as_ref()),
            };
            let Some(role) = RoleKind::parse(role_text) else {
                let message = format!(
                    "invalid role `{role_text}`: expected one of {}",
                    RoleKind::listed()
                );
                self.push(
                    at.diag(sp, &address, &field, message)
                        .hint_opt(did_you_mean(role_text, RoleKind::NAMES.iter().copied())),
                );
                continue;
            };
            if let Some(agent) = agent {
                if role == RoleKind::Owner {
                    let message =
                        "`owner` is always global: it cannot be scoped to an agent".to_string();
                    self.push(at.diag(sp, &address, &field, message).hint(format!(
                        "use `{{role: admin, agent: {agent}}}` for one agent"
                    )));
                    continue;
                }
                let agent_sp = Sp {
                    value: agent.clone(),
                    line: sp.line,
                    col: sp.col,
                };
                self.reference(
                    at,
                    &agent_sp,
                    &address,
                    &format!("{field}.agent"),
                    Kind::Agent,
                );
            }
            let resource = Resource::Role(Role {
                user: id.clone(),
                role,
                agent: agent.cloned(),
            });
            self.add(
                at,
                sp,
                resource,
                &format!("role `{role_text}` of user `{id}`"),
            );
        }
        for (index, sp) in doc.member_of.iter().enumerate() {
            self.reference(
                at,
                sp,
                &address,
                &format!("member_of[{index}]"),
                Kind::Agent,
            );
            let resource = Resource::Member(Member {
                user: id.clone(),
                agent: sp.value.clone(),
            });
            self.add(
                at,
                sp,
                resource,
                &format!("membership of user `{id}` in agent `{}`", sp.value),
            );
        }
    }

    /// Two users whose ids look alike (the same UTS #39 skeleton: `telegram:alice` and
    /// `telegram:аlice` with a Cyrillic `а`) are an error: a reviewer reading roles cannot
    /// tell them apart, and a look-alike owner is a privilege escalation in plain sight.
    pub(super) fn look_alike_users(&mut self) {
        let mut by_skeleton: BTreeMap<String, (String, Source)> = BTreeMap::new();
        let users: Vec<(String, Source)> = self
            .state
            .resources
            .iter()
            .filter_map(|(address, resource)| match resource {
                Resource::User(user) => Some((user.id.clone(), self.sources.get(address)?.clone())),
                _ => None,
            })
            .collect();
        let mut users = users;
        users.sort_by(|a, b| (&a.1.file, a.1.line, a.1.col).cmp(&(&b.1.file, b.1.line, b.1.col)));
        for (id, source) in users {
            let skeleton = text::skeleton(&id);
            let Some((first, first_source)) = by_skeleton.get(&skeleton) else {
                by_skeleton.insert(skeleton, (id, source));
                continue;
            };
            let message = format!(
                "user ids `{first}` and `{id}` look alike (first at {}:{}:{})",
                first_source.file.display(),
                first_source.line,
                first_source.col
            );
            let mut odd: Vec<String> = text::non_ascii(first);
            odd.extend(text::non_ascii(&id));
            let hint = if odd.is_empty() {
                "check which one is the real handle and remove the other".to_string()
            } else {
                format!(
                    "check which one is the real handle and remove the other; they hold {}",
                    odd.join(", ")
                )
            };
            self.push(
                Diagnostic::new(&source.file, source.line, source.col, message)
                    .address(format!("user.{id}"))
                    .field("id")
                    .hint(hint),
            );
        }
    }
}
