//! Reconciler benchmarks; prints medians (`cargo bench -p reconciler --bench reconcile`).
//!
//! A fleet of 1,000 agents × 3 wirings (1,000 chats) and 200 users (roles, memberships) is
//! written as manifest files (through `export`, i.e. `manifest::to_yaml`) into a temp dir,
//! then each step runs the same library code as the CLI:
//! validate (`manifest::load`), plan on an empty DB (read + diff + render), the first apply
//! (fresh DB: lock, read, diff, one transaction), plan after apply, and a no-op apply.
//! Targets (docs/benchmarks.md): plan < 300 ms and no-op apply < 300 ms on a 2-core machine.
//!
//! Then memory: the same fleet at 50,000 agents (10,000 users) is written once, and a fresh
//! child process (this program, re-run with `--peak-rss STEP DIR`) runs one step and reports
//! its peak RSS (`VmHWM`): validate (`manifest::load`) and the first apply (load + fresh DB +
//! diff + render + transaction). A child per step, because the peak of a process only grows.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::Path;
use std::time::Instant;

use reconciler::apply::{self, Meta};
use reconciler::db::config as current;
use reconciler::plan;
use reconciler::state::{
    Agent, Channel, CliScope, EngageMode, IgnoredMessagePolicy, Member, Packages, Resource, Role,
    RoleKind, SenderScope, SessionMode, Skills, State, UnknownSenderPolicy, User, Wiring,
};

const AGENTS: usize = 1_000;
const WIRINGS_PER_AGENT: usize = 3;
const USERS: usize = 200;
/// The fleet whose peak memory is measured.
const BIG_AGENTS: usize = 50_000;
const BIG_USERS: usize = 10_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(index) = args.iter().position(|arg| arg == "--peak-rss") {
        peak_rss_child(&args[index + 1], Path::new(&args[index + 2]));
        return;
    }
    // `cargo bench --bench reconcile -- memory` (or `timings`) runs one part.
    let only = |part: &str| {
        !args.iter().any(|arg| arg == "memory" || arg == "timings")
            || args.iter().any(|arg| arg == part)
    };
    if only("timings") {
        timings();
    }
    if only("memory") {
        memory();
    }
}

fn timings() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    reconciler::export::write(&manifests, &fleet(AGENTS, USERS), false).unwrap();
    let loaded = reconciler::manifest::load(&manifests).unwrap();
    println!(
        "# nanoclaw reconcile benchmarks: {AGENTS} agents × {WIRINGS_PER_AGENT} wirings, \
         {USERS} users = {} resources",
        loaded.state.len()
    );
    let desired = loaded.state;

    report("validate (manifest::load)", 10, |_| {
        reconciler::manifest::load(&manifests).unwrap();
    });

    let empty = dir.path().join("empty.db");
    drop(reconciler::db::open(&empty).unwrap());
    report("plan, empty DB", 10, |_| {
        plan_text(&empty, &desired);
    });

    report("apply, first (fresh DB)", 5, |run| {
        let path = dir.path().join(format!("first-{run}.db"));
        apply_once(dir.path(), &path, &desired);
    });

    let applied = dir.path().join("applied.db");
    apply_once(dir.path(), &applied, &desired);
    report("plan, after apply", 10, |_| {
        let text = plan_text(&applied, &desired);
        assert!(text.starts_with("No changes."));
    });
    report("apply, no-op", 10, |_| {
        let changed = apply_once(dir.path(), &applied, &desired);
        assert!(!changed);
    });
    report("plan after apply, with load", 10, |_| {
        let loaded = reconciler::manifest::load(&manifests).unwrap();
        plan_text(&applied, &loaded.state);
    });
    report("apply no-op, with load", 10, |_| {
        let loaded = reconciler::manifest::load(&manifests).unwrap();
        assert!(!apply_once(dir.path(), &applied, &loaded.state));
    });
}

/// Peak RSS of validate and the first apply on the 50,000-agent fleet, each in a fresh child.
fn memory() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    reconciler::export::write(&manifests, &fleet(BIG_AGENTS, BIG_USERS), false).unwrap();
    let files: Vec<_> = std::fs::read_dir(&manifests).unwrap().collect();
    let bytes: u64 = files
        .iter()
        .map(|entry| entry.as_ref().unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "# peak RSS, {BIG_AGENTS} agents × {WIRINGS_PER_AGENT} wirings, {BIG_USERS} users: \
         {} manifest files, {:.1} MiB",
        files.len(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    for step in ["baseline", "validate", "apply"] {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--peak-rss")
            .arg(step)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{step}: {output:?}");
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
}

/// In the child: runs one step on `dir` (holding `manifests/`) and prints its peak RSS.
fn peak_rss_child(step: &str, dir: &Path) {
    let manifests = dir.join("manifests");
    let start = Instant::now();
    let resources = match step {
        "baseline" => 0,
        "validate" => reconciler::manifest::load(&manifests).unwrap().state.len(),
        "apply" => {
            // As `nanoclaw apply` does: only the state outlives loading.
            let state = reconciler::manifest::load(&manifests).unwrap().state;
            let db = dir.join("apply-rss.db");
            apply_once(dir, &db, &state);
            state.len()
        }
        other => panic!("unknown step {other}"),
    };
    let elapsed = start.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    println!(
        "{:<28} peak RSS {:>7.1} MiB   ({resources} resources, {elapsed:.1} s)",
        format!("{step} (50k agents)"),
        kib / 1024.0
    );
}

/// What `nanoclaw plan` does after loading: read the DB, diff, render.
fn plan_text(db: &Path, desired: &State) -> String {
    let conn = reconciler::db::open_readonly(db).unwrap();
    let current = current::read(&conn).unwrap();
    let plan = plan::diff(desired, &current);
    plan::render::render(&plan, false)
}

/// What `nanoclaw apply --yes` does after loading; returns whether anything was written.
fn apply_once(data: &Path, db: &Path, desired: &State) -> bool {
    let _lock = apply::lock(&data.join("apply.lock")).unwrap();
    let mut conn = reconciler::db::open(db).unwrap();
    let current = current::read(&conn).unwrap();
    let plan = plan::diff(desired, &current);
    let _text = plan::render::render(&plan, false);
    let meta = Meta {
        manifest_digest: "bench".into(),
        git_commit: None,
        defer_restarts: Vec::new(),
    };
    apply::apply(&mut conn, desired, &plan, &current, &meta)
        .unwrap()
        .changed
}

/// Runs `step` `runs` times and prints the median and the range in milliseconds.
fn report(name: &str, runs: usize, mut step: impl FnMut(usize)) {
    let mut times: Vec<f64> = (0..runs)
        .map(|run| {
            let start = Instant::now();
            step(run);
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "{name:<28} median {:>8.1} ms   (min {:.1}, max {:.1}, n={runs})",
        times[runs / 2],
        times[0],
        times[runs - 1]
    );
}

/// The fleet as a state: agent `a-i` wired to chats `c-i`, `c-(i+1)`, `c-(i+2)`; users own or
/// administer and are members of a few agents each.
fn fleet(agents: usize, users: usize) -> State {
    let mut state = State::default();
    for idx in 0..agents {
        state.insert(Resource::Agent(Agent {
            name: format!("a-{idx}"),
            assistant_name: Some(format!("Agent {idx}")),
            provider: Some("mock".into()),
            model: Some("sonnet".into()),
            effort: None,
            image: None,
            max_messages_per_prompt: Some(10),
            cli_scope: CliScope::Group,
            instructions: Some(format!("You are agent {idx}.\nBe brief.\n")),
            skills: Skills::All,
            mcp_servers: Default::default(),
            packages: Packages {
                apt: vec!["git".into(), "jq".into()],
                npm: vec![],
            },
            mounts: vec![],
            resources: Default::default(),
            network: Default::default(),
        }));
        state.insert(Resource::Channel(Channel {
            name: format!("c-{idx}"),
            channel_type: "telegram".into(),
            platform_id: format!("telegram:{}", 100_000 + idx),
            display_name: Some(format!("Chat {idx}")),
            is_group: true,
            unknown_sender_policy: UnknownSenderPolicy::Strict,
        }));
        for offset in 0..WIRINGS_PER_AGENT {
            state.insert(Resource::Wiring(Wiring {
                channel: format!("c-{}", (idx + offset) % agents),
                agent: format!("a-{idx}"),
                engage_mode: EngageMode::Mention,
                engage_pattern: None,
                sender_scope: SenderScope::All,
                ignored_message_policy: IgnoredMessagePolicy::Drop,
                session_mode: SessionMode::Shared,
                priority: offset as i64,
            }));
        }
    }
    for idx in 0..users {
        let id = format!("telegram:{}", 500_000 + idx);
        state.insert(Resource::User(User {
            id: id.clone(),
            display_name: Some(format!("User {idx}")),
        }));
        let role = if idx == 0 {
            RoleKind::Owner
        } else {
            RoleKind::Admin
        };
        state.insert(Resource::Role(Role {
            user: id.clone(),
            role,
            agent: (idx != 0).then(|| format!("a-{}", idx * 5)),
        }));
        for offset in 0..5 {
            state.insert(Resource::Member(Member {
                user: id.clone(),
                agent: format!("a-{}", idx * 5 + offset),
            }));
        }
    }
    state
}
