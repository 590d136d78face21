//! Questions: parsing the agent's card and choosing options (pure), and the answer path against
//! real temp DBs.

use super::*;
use crate::channels::card::Answer;

fn option(id: &str, label: &str, chosen: &str) -> CardOption {
    CardOption {
        id: id.into(),
        label: label.into(),
        chosen: chosen.into(),
    }
}

#[test]
fn a_question_is_read_from_the_tools_content_and_bad_ones_are_refused() {
    let content = json!({"type": "ask_question", "questionId": "msg-1", "title": "Deploy?",
        "question": "Now?", "options": ["Yes", {"label": "No", "value": "no", "selectedLabel": "❌ No"}],
        "timeout": 5});
    assert_eq!(
        parse("msg-1", &content),
        Ok(Some(Asked {
            id: "msg-1".into(),
            title: "Deploy?".into(),
            options: vec![option("Yes", "Yes", "Yes"), option("no", "No", "❌ No")],
            timeout: Duration::from_secs(5),
        }))
    );
    assert_eq!(parse("msg-1", &json!({"text": "hi"})), Ok(None));
    let refused = |content: Value| parse("msg-1", &content).unwrap_err();
    expect_test::expect![[r#"question id `apv-1` must be the id of the row that carries it (`msg-1`), letters, digits and `-`"#]]
        .assert_eq(&refused(json!({"type": "ask_question", "questionId": "apv-1", "title": "T", "options": ["a"]})));
    assert_eq!(
        refused(json!({"type": "ask_question", "questionId": "msg-1", "options": ["a"]})),
        "a question needs a title"
    );
    assert_eq!(
        refused(
            json!({"type": "ask_question", "questionId": "msg-1", "title": "T", "options": []})
        ),
        "a question needs 1 to 25 options"
    );
    let untimed = parse(
        "msg-1",
        &json!({"type": "ask_question", "questionId": "msg-1", "title": "T", "options": ["a"], "timeout": 0}),
    );
    assert_eq!(untimed.unwrap().unwrap().timeout, Duration::from_secs(300));
}

#[test]
fn an_answer_names_its_option_by_number_first_then_value_then_label() {
    let options = [
        option("2", "two", "2"),
        option("1", "one", "1"),
        option("x", "Ex", "x"),
    ];
    assert_eq!(pick(&options, "2"), Some(1), "the number shown wins");
    assert_eq!(pick(&options, "x"), Some(2));
    assert_eq!(pick(&options, "Ex"), Some(2));
    assert_eq!(pick(&options, "4"), None);
    assert_eq!(pick(&options, "nope"), None);
}

#[test]
fn who_may_answer() {
    use SenderScope::{All, Known};
    use UnknownSenderPolicy::{Public, RequestApproval};
    assert!(may_answer(Some(Public), Some(All), false));
    assert!(!may_answer(Some(Public), Some(Known), false));
    assert!(!may_answer(Some(RequestApproval), Some(All), false));
    assert!(may_answer(Some(RequestApproval), Some(All), true));
    assert!(!may_answer(None, None, false));
}

#[test]
fn the_asker_is_alive_only_while_the_container_that_asked_runs() {
    let at = |ms: u64| Some(UNIX_EPOCH + Duration::from_millis(ms));
    assert!(asker_alive(at(1_000), 2_000));
    assert!(!asker_alive(at(3_000), 2_000), "a later container");
    assert!(!asker_alive(None, 2_000), "no container");
}

struct World {
    _dir: tempfile::TempDir,
    paths: Paths,
    conn: Connection,
    session: String,
}

/// Agent `boss` with a session on the CLI chat `local` (policy `policy`); `cli:local` is the
/// owner, `cli:guest` a stranger.
fn world(policy: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path().join("data"));
    paths.ensure().unwrap();
    let conn = db::open(&paths.db()).unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO agent_groups (id, name, folder, agent_provider, created_at) VALUES ('boss', 'boss', 'boss', 'mock', 't');
         INSERT INTO messaging_groups (id, channel_type, platform_id, name, is_group, unknown_sender_policy, created_at)
           VALUES ('mg-1', 'cli', 'local', 'cli', 0, '{policy}', 't');
         INSERT INTO messaging_group_agents (id, messaging_group_id, agent_group_id, created_at)
           VALUES ('w1', 'mg-1', 'boss', 't');
         INSERT INTO users (id, kind, created_at) VALUES ('cli:local', 'cli', 't');
         INSERT INTO user_roles (user_id, role, granted_at) VALUES ('cli:local', 'owner', 't');"
    ))
    .unwrap();
    let session = sessions::create(&conn, "boss", Some("mg-1"), None)
        .unwrap()
        .id;
    session_db::create(&paths.session("boss", &session)).unwrap();
    World {
        _dir: dir,
        paths,
        conn,
        session,
    }
}

impl World {
    /// The agent's card arrives at delivery.
    fn ask(&self, id: &str, timeout: u64) {
        let row = OutboundRow {
            id: id.into(),
            seq: Some(1),
            in_reply_to: None,
            timestamp: ids::now_iso(),
            deliver_after: None,
            kind: Kind::ChatSdk,
            platform_id: Some("local".into()),
            channel_type: Some("cli".into()),
            thread_id: None,
            content: json!({"type": "ask_question", "questionId": id, "title": "Deploy?",
                "question": "Now?", "options": ["Yes", {"label": "No", "value": "no", "selectedLabel": "❌ No"}],
                "timeout": timeout})
            .to_string(),
        };
        record(&self.conn, &self.session, &row).unwrap();
    }

    fn answer(
        &mut self,
        card: &str,
        option: &str,
        by: &str,
        started: Option<SystemTime>,
    ) -> Option<Verdict> {
        let answer = Answer {
            card: card.into(),
            option: option.into(),
            responder: by.into(),
            channel_type: "cli".into(),
            platform_id: by.strip_prefix("cli:").unwrap().into(),
        };
        decide(&mut self.conn, &self.paths, &answer, now_ms(), &|_| started)
            .unwrap()
            .map(|(verdict, _)| verdict)
    }

    /// `(kind, content)` of every inbound row.
    fn inbound(&self) -> Vec<(String, Value)> {
        let dir = self.paths.session("boss", &self.session);
        let inbound = session_db::open_inbound_reader(&session_db::inbound_path(&dir)).unwrap();
        let mut statement = inbound
            .as_connection()
            .prepare("SELECT kind, content FROM messages_in ORDER BY seq")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get::<_, String>(1)?)))
            .unwrap()
            .map(|row| {
                let (kind, content) = row.unwrap();
                (kind, serde_json::from_str(&content).unwrap())
            })
            .collect()
    }
}

#[test]
fn an_answer_reaches_the_session_once_and_a_second_tap_is_told_it_was_answered() {
    let mut world = world("public");
    world.ask("msg-q1", 300);
    let alive = Some(SystemTime::now() - Duration::from_secs(60));
    assert_eq!(
        world.answer("msg-q1", "2", "cli:local", alive),
        Some(Verdict::Decided("❌ No".into()))
    );
    let rows = world.inbound();
    assert_eq!(rows.len(), 1, "no note: the asking tool is alive");
    assert_eq!(rows[0].0, "system");
    assert_eq!(
        rows[0].1,
        json!({"type": "question_response", "questionId": "msg-q1", "selectedOption": "no", "userId": "cli:local"})
    );
    let dir = world.paths.session("boss", &world.session);
    let inbound = session_db::open_inbound_reader(&session_db::inbound_path(&dir)).unwrap();
    let routing: Option<String> = inbound
        .as_connection()
        .query_row("SELECT channel_type FROM messages_in", [], |row| row.get(0))
        .unwrap();
    assert_eq!(
        routing, None,
        "no routing: the turn's final text must not thread to this row"
    );
    assert_eq!(
        world.answer("msg-q1", "1", "cli:local", alive),
        Some(Verdict::Refused(
            "this question was already answered: ❌ No".into()
        ))
    );
    assert_eq!(world.inbound().len(), 1, "never delivered twice");
    assert_eq!(world.answer("msg-other", "1", "cli:local", alive), None);
}

#[test]
fn answers_are_checked_against_the_chat_the_options_and_the_person() {
    let mut world = world("strict");
    world.ask("msg-q1", 300);
    assert_eq!(
        world.answer("msg-q1", "3", "cli:local", None),
        Some(Verdict::Refused(
            "question `msg-q1` has no option `3`\n\nhint: answer with a number from 1 to 2".into()
        ))
    );
    let Some(Verdict::Refused(other_chat)) = world.answer("msg-q1", "1", "cli:guest", None) else {
        panic!("refused")
    };
    assert_eq!(
        other_chat,
        "question `msg-q1` was asked in another chat: answer it there"
    );
    // A stranger in the same chat (the CLI lets a client answer as any chat's person).
    let answer = Answer {
        card: "msg-q1".into(),
        option: "1".into(),
        responder: "cli:guest".into(),
        channel_type: "cli".into(),
        platform_id: "local".into(),
    };
    let verdict = decide(&mut world.conn, &world.paths, &answer, now_ms(), &|_| None).unwrap();
    assert_eq!(
        verdict.map(|(verdict, _)| verdict),
        Some(Verdict::Refused(
            "`cli:guest` may not answer this question: only people who may talk to `boss` in this chat may".into()
        ))
    );
    assert!(world.inbound().is_empty());
}

#[test]
fn an_answer_after_the_timeout_is_told_the_question_expired() {
    let mut world = world("public");
    world.ask("msg-q1", 1);
    world
        .conn
        .execute(
            "UPDATE pending_questions SET expires_at = asked_at WHERE question_id = 'msg-q1'",
            [],
        )
        .unwrap();
    let expired = Some(Verdict::Refused(
        "this question expired: the agent stopped waiting for an answer after 0s".into(),
    ));
    assert_eq!(world.answer("msg-q1", "1", "cli:local", None), expired);
    assert_eq!(world.answer("msg-q1", "1", "cli:local", None), expired);
    assert!(world.inbound().is_empty());
}

#[test]
fn an_answer_whose_asker_died_also_wakes_the_agent_with_a_note() {
    let mut world = world("public");
    world.ask("msg-q1", 300);
    let restarted = Some(SystemTime::now() + Duration::from_secs(1));
    assert_eq!(
        world.answer("msg-q1", "Yes", "cli:local", restarted),
        Some(Verdict::Decided("Yes".into()))
    );
    let rows = world.inbound();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].1["selectedOption"], "Yes");
    assert_eq!(rows[1].0, "chat");
    expect_test::expect![[r#"The person answered your question "Deploy?": Yes (Yes). Your ask_user_question call ended before the answer came (your container was restarted), so the answer arrives as this message; continue from it."#]]
        .assert_eq(rows[1].1["text"].as_str().unwrap());
}

#[test]
fn a_card_reusing_another_sessions_question_id_is_refused() {
    let world = world("public");
    world.ask("msg-q1", 300);
    let other = sessions::create(&world.conn, "boss", None, None)
        .unwrap()
        .id;
    let row = OutboundRow {
        id: "msg-q1".into(),
        seq: Some(1),
        in_reply_to: None,
        timestamp: ids::now_iso(),
        deliver_after: None,
        kind: Kind::ChatSdk,
        platform_id: Some("local".into()),
        channel_type: Some("cli".into()),
        thread_id: None,
        content:
            json!({"type": "ask_question", "questionId": "msg-q1", "title": "T", "options": ["a"]})
                .to_string(),
    };
    match record(&world.conn, &other, &row) {
        Err(Refusal::Invalid(why)) => {
            assert_eq!(why, "question id `msg-q1` belongs to another session");
        }
        other => panic!("refused, got {other:?}"),
    }
}
