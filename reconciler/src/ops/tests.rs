//! The operations on real SQLite files in temp dirs: typed outcomes and typed refusals, and a
//! scripted [`Confirm`] standing in for the terminal.

use std::collections::VecDeque;
use std::path::PathBuf;

use super::*;
use crate::paths::Paths;
use crate::plan::Plan;

const ANDY: &str = "kind: agent\nname: andy\nprovider: mock\n";
const BOB: &str = "kind: agent\nname: bob\nprovider: mock\n";

/// A temp install: manifests in `<root>/manifests`, data in `<root>/data`.
struct Install {
    root: tempfile::TempDir,
    paths: Paths,
}

impl Install {
    fn new(files: &[(&str, &str)]) -> Install {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path().join("data"));
        let install = Install { root, paths };
        install.write(files);
        install
    }

    fn dir(&self) -> PathBuf {
        self.root.path().join("manifests")
    }

    /// Replaces the manifests with `files`.
    fn write(&self, files: &[(&str, &str)]) {
        let _ = std::fs::remove_dir_all(self.dir());
        std::fs::create_dir_all(self.dir()).unwrap();
        for (name, text) in files {
            std::fs::write(self.dir().join(name), text).unwrap();
        }
    }

    fn load(&self) -> Loaded {
        load(&self.dir(), &self.paths.data).unwrap()
    }

    fn apply(&self, mode: Mode, yes: bool, confirm: &mut Script) -> Result<Applied, OpsError> {
        let dir = self.dir();
        let request = ApplyRequest {
            dir: &dir,
            yes,
            prune: false,
            allow_empty: false,
            saved_plan: None,
            mode,
            no_restart: false,
        };
        apply(&self.paths, self.load(), &request, confirm)
    }

    fn generation(&self) -> i64 {
        let conn = crate::db::open_readonly(&self.paths.db()).unwrap();
        crate::db::generation(&conn).unwrap()
    }
}

/// Answers the questions from a list and keeps what it was shown and asked.
#[derive(Default)]
struct Script {
    answers: VecDeque<Answer>,
    shown: Vec<Plan>,
    asked: Vec<Question>,
}

impl Script {
    fn answering(answers: &[Answer]) -> Script {
        Script {
            answers: answers.iter().copied().collect(),
            ..Script::default()
        }
    }
}

impl Confirm for Script {
    fn show(&mut self, plan: &Plan) -> std::io::Result<()> {
        self.shown.push(plan.clone());
        Ok(())
    }

    fn ask(&mut self, question: Question) -> std::io::Result<Answer> {
        self.asked.push(question);
        Ok(self
            .answers
            .pop_front()
            .expect("a question nobody scripted"))
    }
}

#[test]
fn apply_shows_the_plan_then_asks_and_a_no_writes_nothing() {
    let install = Install::new(&[("agents.yaml", ANDY)]);
    let mut script = Script::answering(&[Answer::No]);
    let applied = install.apply(Mode::Apply, false, &mut script).unwrap();
    assert!(matches!(applied, Applied::Cancelled), "{applied:?}");
    assert_eq!(script.shown.len(), 1);
    assert_eq!(script.shown[0].summary().add, 1);
    assert_eq!(script.asked, [Question::Apply]);
    assert_eq!(install.generation(), 0);

    let mut script = Script::answering(&[Answer::Yes]);
    let applied = install.apply(Mode::Apply, false, &mut script).unwrap();
    let Applied::Written {
        generation,
        changed,
        held,
        summary,
        ..
    } = applied
    else {
        panic!("written: {applied:?}");
    };
    assert_eq!(
        (generation, changed, held.len(), summary.add),
        (1, true, 0, 1)
    );
    assert_eq!(install.generation(), 1);
}

#[test]
fn apply_with_nobody_to_ask_is_refused_as_unconfirmed() {
    let install = Install::new(&[("agents.yaml", ANDY)]);
    let mut script = Script::answering(&[Answer::CannotAsk]);
    let err = install.apply(Mode::Apply, false, &mut script).unwrap_err();
    assert!(matches!(err, OpsError::Unconfirmed), "{err:?}");
    assert!(!install.paths.db().exists() || install.generation() == 0);
}

#[test]
fn run_applies_additions_unasked_and_holds_deletions_nobody_confirmed() {
    let install = Install::new(&[("agents.yaml", &format!("{ANDY}---\n{BOB}"))]);
    let mut script = Script::default();
    install.apply(Mode::Run, false, &mut script).unwrap();
    assert!(script.asked.is_empty(), "additions are not asked about");

    install.write(&[("agents.yaml", ANDY)]);
    let mut script = Script::answering(&[Answer::CannotAsk]);
    let applied = install.apply(Mode::Run, false, &mut script).unwrap();
    assert_eq!(script.asked, [Question::Deletions { n_deletes: 1 }]);
    let Applied::Written { changed, held, .. } = applied else {
        panic!("written: {applied:?}");
    };
    assert!(!changed, "the only change was held back");
    let held: Vec<String> = held
        .iter()
        .map(|change| change.address.to_string())
        .collect();
    assert_eq!(held, ["agent.bob"]);

    let mut script = Script::default();
    let applied = install.apply(Mode::Run, true, &mut script).unwrap();
    assert!(
        matches!(applied, Applied::Written { changed: true, ref held, .. } if held.is_empty()),
        "`yes` confirms the deletion: {applied:?}"
    );
}

#[test]
fn a_held_apply_lock_is_refused_naming_its_holder() {
    let install = Install::new(&[("agents.yaml", ANDY)]);
    install.paths.ensure().unwrap();
    let _held = crate::apply::lock(&install.paths.apply_lock()).unwrap();
    let err = install
        .apply(Mode::Apply, true, &mut Script::default())
        .unwrap_err();
    let OpsError::Locked { pid, .. } = err else {
        panic!("locked: {err:?}");
    };
    assert_eq!(pid, std::process::id().to_string());
}

#[test]
fn an_empty_manifest_set_is_refused_by_the_guard() {
    let install = Install::new(&[("agents.yaml", ANDY)]);
    install
        .apply(Mode::Apply, true, &mut Script::default())
        .unwrap();
    install.write(&[]);
    let request = PlanRequest::default();
    let err = plan(&install.paths, &install.load().state, request).unwrap_err();
    assert!(
        matches!(err, OpsError::EmptyManifests { n_deletes: 1 }),
        "{err:?}"
    );
    let allowed = PlanRequest {
        allow_empty: true,
        ..request
    };
    let planned = plan(&install.paths, &install.load().state, allowed).unwrap();
    assert_eq!(planned.plan.summary().destroy, 1);
}

#[test]
fn invalid_manifests_come_back_with_their_diagnostics() {
    let install = Install::new(&[("agents.yaml", "kind: agent\nnmae: andy\n")]);
    let err = load(&install.dir(), &install.paths.data).unwrap_err();
    let OpsError::Invalid { diagnostics } = err else {
        panic!("invalid: {err:?}");
    };
    assert!(
        diagnostics
            .iter()
            .any(|diagnostic| diagnostic.message.contains("nmae")),
        "{diagnostics:?}"
    );
}

#[test]
fn a_saved_plan_made_before_another_apply_is_refused_as_stale() {
    let install = Install::new(&[("agents.yaml", ANDY)]);
    let loaded = install.load();
    let planned = plan(&install.paths, &loaded.state, PlanRequest::default()).unwrap();
    let saved = install.root.path().join("plan.json");
    plan::save(&planned, &loaded, &saved).unwrap();
    install
        .apply(Mode::Apply, true, &mut Script::default())
        .unwrap();
    let dir = install.dir();
    let request = ApplyRequest {
        dir: &dir,
        yes: false,
        prune: false,
        allow_empty: false,
        saved_plan: Some(&saved),
        mode: Mode::Apply,
        no_restart: false,
    };
    let err = apply(
        &install.paths,
        install.load(),
        &request,
        &mut Script::default(),
    )
    .unwrap_err();
    let OpsError::StalePlan { path, why } = err else {
        panic!("stale: {err:?}");
    };
    assert_eq!(path, saved);
    assert_eq!(
        why,
        "the DB is at generation 1, the plan was made at generation 0"
    );
}

#[test]
fn a_chat_target_without_any_configuration_says_what_to_run() {
    let install = Install::new(&[]);
    let err = chat::target(&install.paths, Some("andy"), chat::Mode::OneShot).unwrap_err();
    assert!(matches!(err, OpsError::NoConfiguration { .. }), "{err:?}");
    let target = chat::target(&install.paths, None, chat::Mode::Interactive).unwrap();
    assert_eq!(target.platform_id, "local");
}

/// `andy`, and `cli:x` as a declared user with a comment, for adopt's edits.
const ANDY_AND_X: &str = "kind: agent\nname: andy\nprovider: mock\n---\n# x, our tester\nkind: user\nid: \"cli:x\" # keep\nroles: [owner]\n\n# end\n";

/// Applies `files`, then adds a role and a membership of `cli:x` at runtime (as approvals do).
fn install_with_runtime_rows_of_x(files: &[(&str, &str)]) -> Install {
    let install = Install::new(files);
    install
        .apply(Mode::Apply, true, &mut Script::default())
        .unwrap();
    let conn = crate::db::open(&install.paths.db()).unwrap();
    conn.execute_batch(
        "INSERT INTO user_roles (user_id, role, agent_group_id, granted_at) VALUES ('cli:x', 'admin', 'andy', 't');
         INSERT INTO agent_group_members (user_id, agent_group_id, added_at) VALUES ('cli:x', 'andy', 't');",
    )
    .unwrap();
    install
}

#[test]
fn adopt_adds_a_runtime_role_and_membership_to_the_declared_users_document_in_place() {
    let install = install_with_runtime_rows_of_x(&[("team.yaml", ANDY_AND_X)]);
    let adopted = adopt::adopt(
        &install.paths,
        &install.dir(),
        &["role.cli:x/admin/andy".into(), "member.cli:x/andy".into()],
        true,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(install.dir().join("team.yaml")).unwrap(),
        "kind: agent\nname: andy\nprovider: mock\n---\n# x, our tester\nkind: user\nid: \"cli:x\" # keep\nroles: [owner, { role: admin, agent: andy }]\nmember_of: [andy]\n\n# end\n"
    );
    let written: Vec<(bool, Vec<String>)> = adopted
        .files
        .iter()
        .map(|file| {
            let added = file.added.iter().map(ToString::to_string).collect();
            (file.created, added)
        })
        .collect();
    assert_eq!(
        written,
        [(
            false,
            vec![
                "role.cli:x/admin/andy".to_string(),
                "member.cli:x/andy".to_string()
            ]
        )]
    );
    assert!(!install.dir().join("adopted.yaml").exists());
    let planned = plan(
        &install.paths,
        &install.load().state,
        PlanRequest {
            prune: true,
            allow_empty: false,
        },
    )
    .unwrap();
    assert!(
        planned.plan.changes.is_empty(),
        "{:?}",
        planned.plan.changes
    );
}

#[test]
fn adopt_refuses_an_edit_it_cannot_make_and_writes_nothing() {
    // A comment inside a flow list: the entry would land in the comment.
    let odd = ANDY_AND_X.replace("roles: [owner]\n", "roles: [\n  owner # for now\n]\n");
    let install = install_with_runtime_rows_of_x(&[("team.yaml", &odd)]);
    let generation = install.generation();
    let err = adopt::adopt(
        &install.paths,
        &install.dir(),
        &["role.cli:x/admin/andy".into(), "member.cli:x/andy".into()],
        true,
    )
    .unwrap_err();
    expect_test::expect![[r#"
        `role.cli:x/admin/andy` belongs to `user.cli:x`, declared in <dir>/team.yaml:7, and that document cannot be edited automatically (the edited document does not hold the entry (an unusual layout, such as a comment inside a flow list)): nothing was adopted

        hint: under `user.cli:x`'s `roles:` add `- { role: admin, agent: andy }`, then `nanoclaw apply` adopts it"#]]
    .assert_eq(
        &err.to_string()
            .replace(&install.dir().display().to_string(), "<dir>"),
    );
    assert_eq!(
        std::fs::read_to_string(install.dir().join("team.yaml")).unwrap(),
        odd
    );
    assert_eq!(install.generation(), generation, "nothing applied");
}
