//! Delivery without Docker: the real session watcher and delivery thread on real session DBs in
//! a temp data dir (what `nanoclaw run` starts, minus channels and containers).

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use agent_runner::session_db;
use reconciler::channels::Adapters;
use reconciler::paths::Paths;
use reconciler::runtime::delivery::{Delivery, Work};
use reconciler::runtime::watch;

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
        for file in [session_db::INBOUND_FILE, session_db::OUTBOUND_FILE] {
            std::fs::File::options()
                .write(true)
                .open(dir.join(file))
                .expect("session DB file")
                .set_modified(SystemTime::now() - Duration::from_secs(60))
                .expect("set mtime");
        }
        ids.push(session.id);
    }
    (paths, ids)
}

#[test]
fn idle_daemon_does_not_drain_without_writes() {
    // Issue 8 point 1: the watcher turned the drain's own read-only opens of `outbound.db` into
    // the next drain (~100 drains a second per session), and the 1 s poll drained every
    // session whether or not anything changed.
    let env = Env::new("idle-drains");
    let (paths, ids) = idle_sessions(&env, 4);
    let delivery = Delivery::new(paths.clone(), Adapters::default()).expect("delivery");
    let stats = delivery.stats();
    let (work, work_rx) = mpsc::channel();
    let worker = std::thread::spawn(move || delivery.run(work_rx));
    let _watcher = watch::sessions(&paths, work.clone()).expect("watcher");
    let passes = |n: u64| stats.passes.load(Ordering::Relaxed) >= n;

    work.send(Work::All).expect("send");
    support::wait_until("the startup pass", Duration::from_secs(30), || passes(1));
    let drains = || stats.drains.load(Ordering::Relaxed);
    assert_eq!(drains(), 4, "the startup pass drains every session once");

    // A quiet interval: backstop ticks, each handled before the next is sent.
    let mut handled = stats.passes.load(Ordering::Relaxed);
    for _ in 0..20 {
        work.send(Work::Backstop).expect("send");
        handled += 1;
        support::wait_until("a backstop pass", Duration::from_secs(30), || {
            passes(handled)
        });
        handled = stats.passes.load(Ordering::Relaxed);
    }
    assert_eq!(
        drains(),
        4,
        "an idle daemon drains nothing between its full passes"
    );

    // A container's write is still delivered: drained once, through its file event.
    let dir = paths.session("andy", &ids[2]);
    let outbound = session_db::open_outbound_container(&dir.join(session_db::OUTBOUND_FILE))
        .expect("outbound");
    outbound
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
            .query_row(
                "SELECT COUNT(*) FROM delivered WHERE message_out_id = 'out-1'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .expect("count")
            == 1
    });
    let after_write = drains();
    assert!(
        (5..=10).contains(&after_write),
        "a write causes a handful of drains, not a loop: {after_write}"
    );
    work.send(Work::Stop).expect("send");
    worker.join().expect("delivery thread");
}
