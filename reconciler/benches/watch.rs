//! Watch benchmark; prints the median (`cargo bench -p reconciler --bench watch`).
//!
//! "File save → applied generation": the real watcher (`ops::watch::run`) on a temp manifest
//! folder and a real central DB; ten saves, each changing an agent's model, each timed from
//! the write until the DB's generation moves. The figure includes the 400 ms quiet period the
//! watcher waits on purpose. A fresh container answering with the new configuration needs the
//! executor (issue 11) and is not measured here.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use reconciler::ops::watch::{self, WatchOptions};
use reconciler::paths::Paths;
use tokio_util::sync::CancellationToken;

const SAVES: usize = 10;

fn main() {
    println!("# nanoclaw watch benchmark");
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let agent = |model: &str| format!("kind: agent\nname: andy\nprovider: mock\nmodel: {model}\n");
    std::fs::write(dir.join("andy.yaml"), agent("m0")).unwrap();
    let paths = Paths::new(root.path().join("data"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = CancellationToken::new();
    let watcher = runtime.spawn(watch::run(
        paths.clone(),
        dir.clone(),
        WatchOptions::default(),
        stop.clone(),
    ));
    let generation = || {
        reconciler::db::open_readonly(&paths.db())
            .and_then(|conn| reconciler::db::generation(&conn))
            .unwrap_or(0)
    };
    wait(|| generation() >= 1);
    let mut times = Vec::new();
    for n_save in 1..=SAVES {
        let before = generation();
        let started = Instant::now();
        std::fs::write(dir.join("andy.yaml"), agent(&format!("m{n_save}"))).unwrap();
        wait(|| generation() > before);
        times.push(started.elapsed());
        // Let the next save start a new burst.
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.cancel();
    runtime.block_on(watcher).unwrap().unwrap();
    times.sort();
    println!(
        "file save → applied generation: median {:.0} ms, min {:.0} ms, max {:.0} ms ({SAVES} saves; includes the {} ms quiet period)",
        ms(times[SAVES / 2]),
        ms(times[0]),
        ms(times[SAVES - 1]),
        watch::QUIET.as_millis()
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn wait(mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < Duration::from_secs(30), "timed out");
        std::thread::sleep(Duration::from_millis(2));
    }
}
