//! Delivery without Docker: the real session watcher and delivery thread on real session DBs in
//! a temp data dir (what `nanoclaw run` starts, minus channels and containers).

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use agent_runner::session_db;
use reconciler::channels::Adapters;
use reconciler::paths::Paths;
use reconciler::runtime::delivery::{Delivery, Work};
use reconciler::runtime::outbox::Outboxes;
use reconciler::runtime::watch;
use reconciler::runtime::work::Inbox;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::support::{self, Env};

/// An install with `count` sessions of agent `andy`, each last written a minute ago.
fn idle_sessions(env: &Env, count: usize) -> (Paths, Vec<String>) {
    let paths = Paths::new(env.data());
    paths.ensure().expect("data dir");
    let conn = reconciler::db::open(&paths.db()).expect("central db");
    conn.execute(
        "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('andy', 'andy', 'andy', 't')",
        [],
    )
    .expect("agent");
    let mut ids = Vec::new();
    for _ in 0..count {
        let session = reconciler::db::sessions::create(&conn, "andy", None, None).expect("session");
        let dir = paths.session("andy", &session.id);
        session_db::create(&dir).expect("session DBs");
        for file in [
            session_db::inbound_path(&dir),
            session_db::outbound_path(&dir),
        ] {
            age(&file);
        }
        ids.push(session.id);
    }
    (paths, ids)
}

/// Makes a file look last written a minute ago.
fn age(path: &std::path::Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("file")
        .set_modified(SystemTime::now() - Duration::from_secs(60))
        .expect("set mtime");
}

#[test]
fn idle_daemon_does_not_drain_without_writes() {
    // Issue 8 point 1: the watcher turned the drain's own read-only opens of `outbound.db` into
    // the next drain (~100 drains a second per session), and the 1 s poll drained every
    // session whether or not anything changed.
    let env = Env::new("idle-drains");
    let (paths, ids) = idle_sessions(&env, 4);
    let work = Inbox::new();
    // No channels: no outbox task is started.
    let outboxes = Outboxes::start(
        Adapters::default(),
        work.clone(),
        &TaskTracker::new(),
        CancellationToken::new(),
    );
    let delivery = Delivery::new(paths.clone(), outboxes).expect("delivery");
    let stats = delivery.stats();
    let worker = delivery.spawn(work.clone()).expect("delivery thread");
    let _watcher = watch::sessions(&paths, work.clone()).expect("watcher");
    let drains = || stats.drains.load(Ordering::Relaxed);
    // Sends one piece of work and waits until the worker has handled a batch after it.
    let handle = |item: Work| {
        let before = stats.passes.load(Ordering::Relaxed);
        work.send(item);
        support::wait_until("a delivery pass", Duration::from_secs(30), || {
            stats.passes.load(Ordering::Relaxed) > before
        });
    };

    handle(Work::All);
    assert_eq!(drains(), 4, "the startup pass drains every session once");
    // A quiet interval: backstop ticks, each handled before the next is sent.
    for _ in 0..20 {
        handle(Work::Backstop);
    }
    assert_eq!(
        drains(),
        4,
        "an idle daemon drains nothing between its full passes"
    );

    // A container's write is still delivered, through its file event.
    let dir = paths.session("andy", &ids[2]);
    let outbound_path = session_db::outbound_path(&dir);
    let outbound = session_db::open_outbound_container(&outbound_path).expect("outbound");
    outbound
        .as_connection()
        .execute(
            "INSERT INTO messages_out (id, seq, timestamp, kind, content)
             VALUES ('out-1', 1, datetime('now'), 'chat', '{\"text\":\"to nobody\"}')",
            [],
        )
        .expect("reply");
    drop(outbound);
    support::wait_until("the reply to be recorded", Duration::from_secs(30), || {
        let inbound = session_db::open_inbound_container(&dir.join(session_db::INBOUND_FILE))
            .expect("inbound");
        inbound
            .as_connection()
            .query_row(
                "SELECT COUNT(*) FROM delivered WHERE message_out_id = 'out-1'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .expect("count")
            == 1
    });

    // Once delivered (and its write a while ago), the session is quiet again: no drain loop.
    age(&outbound_path);
    handle(Work::Backstop);
    handle(Work::Backstop);
    let settled = drains();
    for _ in 0..10 {
        handle(Work::Backstop);
    }
    assert_eq!(drains(), settled, "no drain loop after a write");
    assert!(
        settled - 4 <= 20,
        "one write costs a handful of drains, not {}",
        settled - 4
    );
    work.send(Work::Stop);
    worker.join().expect("delivery thread");
}
