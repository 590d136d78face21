//! The `pending_questions` table: the questions agents ask with `ask_user_question`
//! (docs/runtime.md#questions). Delivery writes a row when it hands the question's card to its
//! chat; the answer path marks it answered (or expired) and keeps it for a while, so a second
//! tap on the same card is told it was answered already instead of reaching the agent twice.

use rusqlite::{Connection, OptionalExtension, params};

/// A question as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// The card's id, also the id of the outbound row that carried it (`msg-…`).
    pub id: String,
    pub session: String,
    /// Where the card went.
    pub channel_type: Option<String>,
    pub platform_id: Option<String>,
    pub thread_id: Option<String>,
    pub title: String,
    /// Normalised options `[{label, selectedLabel, value}]`, JSON.
    pub options_json: String,
    pub status: Status,
    /// When delivery recorded it and when the asking tool stops waiting (unix ms).
    pub asked_at_ms: i64,
    pub expires_at_ms: i64,
    /// The chosen option's value, once answered.
    pub answer: Option<String>,
}

/// Where a question stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    Answered,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Answered => "answered",
            Status::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Status {
        match text {
            "answered" => Status::Answered,
            "expired" => Status::Expired,
            _ => Status::Pending,
        }
    }
}

const INSERT: &str = "INSERT OR IGNORE INTO pending_questions
  (question_id, session_id, message_out_id, platform_id, channel_type, thread_id, title,
   options_json, created_at, status, asked_at, expires_at)
  VALUES (?1, ?2, ?1, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?10)";

/// Stores a pending question; a second delivery of the same row writes nothing. Returns the
/// session the stored row belongs to (another one when that id was taken by another session).
pub fn insert(conn: &Connection, question: &Question, now_iso: &str) -> rusqlite::Result<String> {
    conn.prepare_cached(INSERT)?.execute(params![
        question.id,
        question.session,
        question.platform_id,
        question.channel_type,
        question.thread_id,
        question.title,
        question.options_json,
        now_iso,
        question.asked_at_ms,
        question.expires_at_ms,
    ])?;
    conn.query_row(
        "SELECT session_id FROM pending_questions WHERE question_id = ?1",
        [&question.id],
        |row| row.get(0),
    )
}

const COLUMNS: &str = "question_id, session_id, channel_type, platform_id, thread_id, title,
  options_json, status, COALESCE(asked_at, 0), COALESCE(expires_at, 0), answer";

fn question(row: &rusqlite::Row<'_>) -> rusqlite::Result<Question> {
    Ok(Question {
        id: row.get(0)?,
        session: row.get(1)?,
        channel_type: row.get(2)?,
        platform_id: row.get(3)?,
        thread_id: row.get(4)?,
        title: row.get(5)?,
        options_json: row.get(6)?,
        status: Status::parse(&row.get::<_, String>(7)?),
        asked_at_ms: row.get(8)?,
        expires_at_ms: row.get(9)?,
        answer: row.get(10)?,
    })
}

/// The question `id`, whatever its status.
pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Question>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM pending_questions WHERE question_id = ?1"
    ))?
    .query_row([id], question)
    .optional()
}

/// Records the answer; false when the question was no longer pending.
pub fn answer(
    conn: &Connection,
    id: &str,
    value: &str,
    by: &str,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    Ok(conn.execute(
        "UPDATE pending_questions SET status = 'answered', answer = ?2, answered_by = ?3,
           answered_at = ?4 WHERE question_id = ?1 AND status = 'pending'",
        params![id, value, by, now_ms],
    )? == 1)
}

/// Marks the question expired (its tool stopped waiting, or its session is gone).
pub fn expire(conn: &Connection, id: &str, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE pending_questions SET status = 'expired', answered_at = ?2
         WHERE question_id = ?1 AND status = 'pending'",
        params![id, now_ms],
    )?;
    Ok(())
}

/// Deletes questions answered, expired or past their time before `before_ms`.
pub fn purge(conn: &Connection, before_ms: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM pending_questions WHERE COALESCE(answered_at, expires_at, 0) < ?1
           AND (status != 'pending' OR COALESCE(expires_at, 0) < ?1)",
        [before_ms],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("n.db")).unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('a', 'a', 'a', 'now');
             INSERT INTO sessions (id, agent_group_id, created_at) VALUES ('s1', 'a', 'now'),
               ('s2', 'a', 'now');",
        )
        .unwrap();
        (dir, conn)
    }

    fn asked(id: &str, session: &str) -> Question {
        Question {
            id: id.into(),
            session: session.into(),
            channel_type: Some("cli".into()),
            platform_id: Some("local".into()),
            thread_id: None,
            title: "T".into(),
            options_json: "[]".into(),
            status: Status::Pending,
            asked_at_ms: 1_000,
            expires_at_ms: 301_000,
            answer: None,
        }
    }

    #[test]
    fn a_question_is_stored_once_answered_once_and_kept_until_purged() {
        let (_dir, conn) = conn();
        assert_eq!(insert(&conn, &asked("q1", "s1"), "now").unwrap(), "s1");
        // The same id from another session keeps the first owner.
        assert_eq!(insert(&conn, &asked("q1", "s2"), "now").unwrap(), "s1");
        assert_eq!(get(&conn, "q1").unwrap().unwrap(), asked("q1", "s1"));
        assert!(answer(&conn, "q1", "yes", "cli:local", 2_000).unwrap());
        assert!(!answer(&conn, "q1", "no", "cli:local", 3_000).unwrap());
        let stored = get(&conn, "q1").unwrap().unwrap();
        assert_eq!(
            (stored.status, stored.answer.as_deref()),
            (Status::Answered, Some("yes"))
        );
        insert(&conn, &asked("q2", "s1"), "now").unwrap();
        expire(&conn, "q2", 5_000).unwrap();
        assert_eq!(get(&conn, "q2").unwrap().unwrap().status, Status::Expired);
        insert(&conn, &asked("q3", "s1"), "now").unwrap();
        assert_eq!(purge(&conn, 4_000).unwrap(), 1, "q1 only");
        assert_eq!(
            purge(&conn, 400_000).unwrap(),
            2,
            "q2, and q3 past its time"
        );
    }
}
