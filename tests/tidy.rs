//! Tidy tests (STYLE.md §12): the tree itself is checked by `cargo test`. Each test reads the
//! sources as text (with comments and string literals blanked where that matters), collects
//! every offence, and fails once naming each file and line with how to fix it. They never
//! change a file; fixing is the reader's job (`cargo fmt --all` for formatting).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::repo_root;

/// The source trees the tidy rules cover, relative to the repository root.
const TREES: [&str; 5] = [
    "reconciler/src",
    "agent-runner/src",
    "reconciler/benches",
    "agent-runner/tests",
    "tests",
];

/// Crates whose module files must each be named in the code map of `docs/ARCHITECTURE.md`.
const CRATE_SOURCES: [(&str, &str); 2] = [
    ("reconciler", "reconciler/src"),
    ("agent-runner", "agent-runner/src"),
];

/// Packages of which `Cargo.lock` may hold only one version (one dependency stack).
const SINGLE_VERSION: [&str; 6] = [
    "tokio",
    "hyper",
    "rusqlite",
    "serde",
    "serde_json",
    "bollard",
];

#[test]
fn tidy_every_file_starts_with_a_module_doc() {
    let mut failures = Vec::new();
    for file in rust_files(&TREES) {
        let text = read(&file);
        let first = text
            .lines()
            .enumerate()
            .find(|(_, line)| !line.trim().is_empty());
        match first {
            Some((_, line)) if line.starts_with("//!") => {}
            Some((idx, line)) => failures.push(format!(
                "{}:{}: first line is `{}`, not a `//!` paragraph; start the file with `//! ` \
                 sentences saying what this module owns and what it must not do (STYLE §11)",
                file.display(),
                idx + 1,
                line.trim()
            )),
            None => failures.push(format!(
                "{}: the file is empty; delete it or start it with a `//!` paragraph (STYLE §11)",
                file.display()
            )),
        }
    }
    report("files without a `//!` module doc", &failures);
}

#[test]
fn tidy_no_ignored_or_panicking_tests_and_no_debug_macros() {
    let banned = [
        (
            "#[ignore",
            "gate the test at run time instead (see `support::docker()`), STYLE §10",
        ),
        (
            "#[should_panic",
            "assert on a returned `Result` or error value instead, STYLE §10",
        ),
        (
            "dbg!(",
            "remove it, or log with `tracing::debug!` in library code",
        ),
    ];
    let mut failures = Vec::new();
    for file in rust_files(&TREES) {
        let lexed = Lexed::new(&read(&file));
        for (idx, line) in lexed.without_strings.lines().enumerate() {
            for (needle, fix) in banned {
                if line.contains(needle) {
                    failures.push(format!("{}:{}: `{needle}`: {fix}", file.display(), idx + 1));
                }
            }
        }
    }
    report("banned test attributes or macros", &failures);
}

/// A module file `src/a/b.rs` is named when the code map entry (bullet) that starts with
/// `` `a/` `` holds a backticked span equal to `b.rs` or ending in `/b.rs`; a folder module
/// `src/a/b/mod.rs` likewise needs `b/`. A top-level folder module `src/a/mod.rs` needs a
/// bullet starting with `` `a/` ``; a top-level file `src/a.rs` needs a span exactly `a.rs` in
/// a bullet of its crate's code map section that does not start with a folder. Crate roots
/// (`lib.rs`, `main.rs`) and out-of-line unit tests (`tests.rs`, `*_tests.rs`) are not
/// modules of the map.
#[test]
fn tidy_every_module_is_named_in_the_architecture_code_map() {
    let architecture = read(Path::new("docs/ARCHITECTURE.md"));
    let mut failures = Vec::new();
    for (krate, src) in CRATE_SOURCES {
        let section = code_map_section(&architecture, krate);
        if section.is_empty() {
            failures.push(format!(
                "docs/ARCHITECTURE.md: no `### \\`{krate}/\\`` section under `## Code map`; add one \
                 with a bullet per folder"
            ));
            continue;
        }
        for file in rust_files(&[src]) {
            let Some(module) = module_path(&file, src) else {
                continue;
            };
            if !names_module(&section, &module) {
                let (name, form) = module.last().expect("module paths are never empty");
                let place = if module.len() == 1 {
                    format!("a bullet under ### `{krate}/`")
                } else {
                    format!("the `{}/` bullet under ### `{krate}/`", module[0].0)
                };
                failures.push(format!(
                    "{}: module `{}` is not named in docs/ARCHITECTURE.md; add `{name}{form}` with \
                     a few words on what it owns to {place}",
                    file.display(),
                    module
                        .iter()
                        .map(|(name, _)| name.as_str())
                        .collect::<Vec<_>>()
                        .join("/"),
                ));
            }
        }
    }
    report("modules missing from the code map", &failures);
}

#[test]
fn tidy_cargo_lock_has_one_version_of_the_core_stack() {
    let lock = read(Path::new("Cargo.lock"));
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut name = None;
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            name = None;
        } else if let Some(value) = toml_string(line, "name") {
            name = Some(value);
        } else if let Some(version) = toml_string(line, "version")
            && let Some(name) = name.take()
        {
            versions.entry(name).or_default().push(version);
        }
    }
    let mut failures = Vec::new();
    for package in SINGLE_VERSION {
        match versions.get(package).map(Vec::as_slice) {
            Some([_]) => {}
            None | Some([]) => failures.push(format!(
                "Cargo.lock: no `{package}` package; the parser or this list is out of date \
                 (update SINGLE_VERSION in tests/tidy.rs)"
            )),
            Some(several) => failures.push(format!(
                "Cargo.lock: {} versions of `{package}` ({}); see who pulls the odd one with \
                 `cargo tree -i {package}@<version>` and align the requirement",
                several.len(),
                several.join(", ")
            )),
        }
    }
    report("duplicated core dependencies", &failures);
}

#[test]
fn tidy_cargo_fmt_check_passes() {
    let output = Command::new(env!("CARGO"))
        .args(["fmt", "--all", "--", "--check"])
        .current_dir(repo_root())
        .output()
        .expect("run `cargo fmt`");
    assert!(
        output.status.success(),
        "`cargo fmt --all -- --check` failed ({}); run `cargo fmt --all` and commit:\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A test "uses Docker" when its body mentions `support::docker()`, `DockerGuard` or
/// `agent_image`, or a function or struct of the same file that (transitively) does, such as a
/// `Daemon` helper holding a `DockerGuard`. Such a test must open with the gate, so that
/// `NANOCLAW_REQUIRE_DOCKER=1` turns a missing daemon into a failure rather than a skip.
#[test]
fn tidy_docker_tests_open_with_the_docker_gate() {
    let mut failures = Vec::new();
    let mut n_docker_tests = 0;
    for file in rust_files(&["tests"]) {
        for test in docker_tests(&read(&file)) {
            n_docker_tests += 1;
            if !test.is_gated {
                failures.push(format!(
                    "{}:{}: test `{}` uses Docker but does not open with the gate; make its \
                     first statement `{DOCKER_GATE} {{ return }};` (STYLE §10)",
                    file.display(),
                    test.line,
                    test.name
                ));
            }
        }
    }
    assert!(
        n_docker_tests >= 5,
        "found only {n_docker_tests} Docker tests under tests/; the detector in tests/tidy.rs \
         no longer recognises them (see `docker_tests`)"
    );
    report("Docker tests without the gate", &failures);
}

/// The detectors of this file on small inputs, so a tidy test cannot pass by seeing nothing.
#[test]
fn tidy_detectors_find_what_they_look_for() {
    let source = r##"//! Sample.
struct Daemon { guard: support::DockerGuard }
fn start() -> Daemon { todo() }
#[test]
fn gated() {
    let Some(()) = support::docker() else {
        return;
    };
    let _daemon = start();
}
#[tokio::test(flavor = "multi_thread")]
async fn ungated() {
    let text = "{ not a brace }"; // nor } this
    let _daemon = Daemon::new();
}
#[test]
fn no_docker() {
    let text = r#"agent_image"#;
}
"##;
    let found: Vec<String> = docker_tests(source)
        .iter()
        .map(|test| format!("{}:{} gated={}", test.line, test.name, test.is_gated))
        .collect();
    assert_eq!(found, ["5:gated gated=true", "12:ungated gated=false"]);

    let lexed =
        Lexed::new("let a = \"dbg!(\"; // dbg!(\nlet c = '\"'; let r = br#\"x\"#; dbg!(c);");
    assert_eq!(
        lexed.code.lines().map(str::trim_end).collect::<Vec<_>>(),
        ["let a =        ;", "let c =    ; let r =        ; dbg!(c);"]
    );
    assert!(lexed.without_strings.contains("// dbg!("));

    let sql = Lexed::new(
        "// UPDATE messages_in SET x\nlet q = \"SELECT 1\n FROM messages_out\";\nwarn!(\"not delivered from x\");\nlet d = \"SELECT * FROM delivered_outbound WHERE status IN ('delivered')\";\n#[cfg(test)]\nlet t = \"DELETE FROM delivered\";",
    );
    let statements: Vec<usize> = session_db_statements(&sql)
        .into_iter()
        .map(|(idx, _)| idx + 1)
        .collect();
    assert_eq!(
        statements,
        [3],
        "only the production statement, not comments, logs or tests"
    );

    let section = code_map_section(
        "# A\n## Code map\n### `reconciler/`\n- `db/`: `mod.rs`, `routing.rs`.\n- `env.rs`: x.\n### `agent-runner/`\n- `sessions.rs`\n## Invariants\n",
        "reconciler",
    );
    let named = |path: &str| {
        let module = module_path(Path::new(path), "src").expect("a module");
        names_module(&section, &module)
    };
    assert!(named("src/db/routing.rs") && named("src/db/mod.rs") && named("src/env.rs"));
    assert!(!named("src/db/sessions.rs") && !named("src/routing.rs") && !named("src/paths.rs"));
    assert_eq!(module_path(Path::new("src/db/tests.rs"), "src"), None);

    let lexed = Lexed::new("let sql = \"DELETE FROM x\"; // SELECT\nuse crate::db::config;");
    assert!(Mention::Word("DELETE").is_in(&lexed.without_comments));
    assert!(!Mention::Word("SELECT").is_in(&lexed.without_comments));
    assert!(!Mention::Word("DELETE").is_in(&lexed.code));
    assert!(Mention::Path("db").is_in("use crate::db::config;"));
    assert!(!Mention::Path("db").is_in("use agent_runner::session_db::open;"));
    assert!(Mention::Word("rusqlite").is_in("use rusqlite::Connection;"));
    assert!(!Mention::Word("UPDATE").is_in("let UPDATE_EXPECT = 1;"));
}

/// The first statement of every test that uses Docker.
const DOCKER_GATE: &str = "let Some(()) = support::docker() else";

/// A test function that uses Docker.
struct DockerTest {
    name: String,
    line: usize,
    is_gated: bool,
}

/// The tests of one file that use Docker: their bodies mention `support::docker()`,
/// `DockerGuard`, `agent_image`, `production_image`, or a function or struct of the same file that does (to a
/// fixed point).
fn docker_tests(source: &str) -> Vec<DockerTest> {
    let lexed = Lexed::new(source);
    let items = items(&lexed.code);
    let mut markers: BTreeSet<String> = ["DockerGuard", "agent_image", "production_image"]
        .map(String::from)
        .into();
    let uses_docker = |body: &str, markers: &BTreeSet<String>| {
        body.contains("support::docker(") || idents(body).any(|id| markers.contains(id))
    };
    loop {
        let before = markers.len();
        for item in items.iter().filter(|item| !item.is_test) {
            if uses_docker(&lexed.code[item.span.clone()], &markers) {
                markers.insert(item.name.clone());
            }
        }
        if markers.len() == before {
            break;
        }
    }
    items
        .iter()
        .filter(|item| item.is_test && uses_docker(&lexed.code[item.body.clone()], &markers))
        .map(|item| {
            let opening = lexed.code[item.body.clone()]
                .trim_start_matches('{')
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            DockerTest {
                name: item.name.clone(),
                line: line_of(&lexed.code, item.span.start),
                is_gated: opening.starts_with(DOCKER_GATE),
            }
        })
        .collect()
}

/// STYLE §9 and §7, as text: clippy's `disallowed-methods` catches calls, this also catches
/// imports and paths clippy does not see. Comments and string literals do not count.
#[test]
fn tidy_environment_and_sqlite_are_opened_in_one_place() {
    let rules: [Rule; 2] = [
        Rule {
            needle: "env::var",
            allowed: &[
                "reconciler/src/env.rs",
                "agent-runner/src/env.rs",
                "tests/support/",
            ],
            exceptions: &[(
                "tests/manifests.rs",
                "UPDATE_EXPECT",
                "expect-test's own snapshot switch, read the way expect-test reads it",
            )],
            unit_tests_may: None,
            fix: "read the variable through `reconciler::env::get` (or `agent_runner::env`) and \
                  document it there",
        },
        Rule {
            needle: "Connection::open",
            allowed: &[
                "reconciler/src/db/mod.rs",
                "agent-runner/src/session_db/mod.rs",
            ],
            exceptions: &[(
                "tests/support/v2.rs",
                "Connection::open(",
                "builds NanoClaw v2's own DBs (WAL left behind), which no nanoclaw opener creates",
            )],
            unit_tests_may: Some("Connection::open_in_memory"),
            fix: "open through `db::open`/`db::open_readonly` or `session_db::open_*` so the \
                  pragmas are set",
        },
    ];
    let mut failures = Vec::new();
    for file in rust_files(&TREES) {
        let path = file.to_string_lossy().into_owned();
        let source = read(&file);
        let raw_lines: Vec<&str> = source.lines().collect();
        let lexed = Lexed::new(&source);
        let unit_tests_from = if path.ends_with("/tests.rs") || path.ends_with("_tests.rs") {
            0
        } else {
            lexed
                .code
                .lines()
                .position(|line| line.contains("#[cfg(test)]"))
                .unwrap_or(usize::MAX)
        };
        for rule in &rules {
            if rule.allowed.iter().any(|allowed| path.starts_with(allowed)) {
                continue;
            }
            for (idx, line) in lexed.code.lines().enumerate() {
                if !line.contains(rule.needle) {
                    continue;
                }
                let excepted = rule
                    .exceptions
                    .iter()
                    .any(|(file, needle, _why)| path == *file && raw_lines[idx].contains(needle));
                let in_unit_test = idx >= unit_tests_from
                    && rule.unit_tests_may.is_some_and(|may| line.contains(may));
                if !excepted && !in_unit_test {
                    failures.push(format!(
                        "{path}:{}: `{}` outside {}; {}",
                        idx + 1,
                        rule.needle,
                        rule.allowed.join(", "),
                        rule.fix
                    ));
                }
            }
        }
    }
    report("environment or SQLite access outside its owner", &failures);
}

/// Issue 9 point 7: every statement on the session DBs' protocol tables is a function of
/// `agent_runner::session_db`; other production code calls those (tests may read the tables).
/// A string literal naming one of the tables next to an SQL keyword is a statement.
#[test]
fn tidy_session_db_statements_live_in_session_db() {
    let mut failures = Vec::new();
    for file in rust_files(&["reconciler/src", "agent-runner/src", "reconciler/benches"]) {
        let path = file.to_string_lossy().into_owned();
        if path.starts_with("agent-runner/src/session_db/")
            || path.ends_with("/tests.rs")
            || path.ends_with("_tests.rs")
        {
            continue;
        }
        let lexed = Lexed::new(&read(&file));
        for (idx, line) in session_db_statements(&lexed) {
            failures.push(format!(
                "{path}:{}: `{}`: SQL on a session DB table outside `agent_runner::session_db`; \
                 add a function there and call it",
                idx + 1,
                line.trim()
            ));
        }
    }
    report("session DB statements outside `session_db`", &failures);
}

/// Lines (index, literal text) of production code (before `#[cfg(test)]`) whose string literals
/// name `messages_in`, `messages_out`, `processing_ack` or `delivered` right after `FROM`,
/// `INTO`, `UPDATE`, `JOIN` or `TABLE`: a statement on a session DB table.
fn session_db_statements(lexed: &Lexed) -> Vec<(usize, String)> {
    const TABLES: [&str; 4] = ["messages_in", "messages_out", "processing_ack", "delivered"];
    const KEYWORDS: [&str; 5] = ["FROM", "INTO", "UPDATE", "JOIN", "TABLE"];
    let unit_tests_from = lexed
        .code
        .lines()
        .position(|line| line.contains("#[cfg(test)]"))
        .unwrap_or(usize::MAX);
    let lines: Vec<&str> = lexed.literals.lines().collect();
    // Every word of the literals with its line, in order, so `FROM` may end the line before.
    let words: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .take(unit_tests_from)
        .flat_map(|(idx, line)| {
            line.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|word| !word.is_empty())
                .map(move |word| (idx, word))
        })
        .collect();
    let mut found: Vec<(usize, String)> = Vec::new();
    for pair in words.windows(2) {
        let ((_, keyword), (idx, table)) = (pair[0], pair[1]);
        if KEYWORDS.contains(&keyword.to_uppercase().as_str())
            && TABLES.contains(&table)
            && found.last().is_none_or(|(last, _)| *last != idx)
        {
            found.push((idx, lines[idx].to_string()));
        }
    }
    found
}

/// STYLE §13, as text: the layers' arrows point down. `plan/` never reaches the DB (it is handed
/// the `Current` that `db::config` reads), `cli/` runs no SQL and opens no DB (it calls `ops`),
/// `db/` and `channels/` never import `runtime/`, `manifest/` imports neither `plan/` nor
/// `runtime/`, and `containers/` touches no session file (no session DB, no heartbeat).
/// Comments do not count; for `cli/` and `containers/`, string literals do (SQL and file names
/// live in strings).
#[test]
fn tidy_layers_point_down() {
    let layers = [
        Layer {
            folder: "reconciler/src/plan/",
            banned: &[Mention::Path("db"), Mention::Word("rusqlite")],
            in_strings: false,
            fix: "plan/ is pure: take what the DB holds as an argument (`Current`, `Running`), \
                  read by `db::config` in `ops`",
        },
        Layer {
            folder: "reconciler/src/cli/",
            banned: &[
                Mention::Word("SELECT"),
                Mention::Word("INSERT"),
                Mention::Word("UPDATE"),
                Mention::Word("DELETE"),
                Mention::Word("rusqlite"),
                Mention::Text(".execute("),
                Mention::Word("query_row"),
                Mention::Text("db::open"),
                Mention::Word("open_readonly"),
                Mention::Word("Connection"),
            ],
            in_strings: true,
            fix: "cli/ parses, calls an operation and prints: move the query into `db/` and call \
                  it from `ops/`",
        },
        Layer {
            folder: "reconciler/src/channels/",
            banned: &[Mention::Path("runtime")],
            in_strings: false,
            fix: "channels/ sits below runtime/: adapters hand typed messages up through the \
                  `Channel` trait; move what both need below both (`channels/` or `state.rs`)",
        },
        Layer {
            folder: "reconciler/src/manifest/",
            banned: &[Mention::Path("plan"), Mention::Path("runtime")],
            in_strings: false,
            fix: "manifest/ turns YAML into `state`: what it shares with plans (the effect \
                  table, defaults) is declared in `state/`",
        },
        Layer {
            folder: "reconciler/src/containers/",
            banned: &[
                Mention::Word("session_db"),
                Mention::Text("inbound.db"),
                Mention::Text("outbound.db"),
                Mention::Text("heartbeat"),
                Mention::Text("HEARTBEAT"),
            ],
            in_strings: true,
            fix: "containers/ talks to Docker and nothing else: session files (the session DBs, \
                  the heartbeat) are `runtime/`'s, through `agent_runner::session_db`; hand \
                  containers/ the paths in its `SpawnSpec`",
        },
        Layer {
            folder: "reconciler/src/db/",
            banned: &[Mention::Path("runtime")],
            in_strings: false,
            fix: "db/ sits below runtime/: move what both need (ids, time formats, reasons) below \
                  both, e.g. into `agent_runner::session_db` or `state.rs`",
        },
    ];
    let mut failures = Vec::new();
    let mut used = BTreeSet::new();
    for layer in &layers {
        for file in rust_files(&[layer.folder.trim_end_matches('/')]) {
            let path = file.to_string_lossy().into_owned();
            let lexed = Lexed::new(&read(&file));
            let text = if layer.in_strings {
                &lexed.without_comments
            } else {
                &lexed.code
            };
            for (idx, line) in text.lines().enumerate() {
                for mention in layer.banned {
                    if !mention.is_in(line) {
                        continue;
                    }
                    let pending = PENDING_LAYER_EXCEPTIONS
                        .iter()
                        .position(|(file, needle, _why)| path == *file && line.contains(needle));
                    match pending {
                        Some(index) => {
                            used.insert(index);
                        }
                        None => failures.push(format!(
                            "{path}:{}: `{}` in {}; {}",
                            idx + 1,
                            mention.text(),
                            layer.folder,
                            layer.fix
                        )),
                    }
                }
            }
        }
    }
    for (index, (file, needle, why)) in PENDING_LAYER_EXCEPTIONS.iter().enumerate() {
        if !used.contains(&index) {
            failures.push(format!(
                "tests/tidy.rs: the exception for `{needle}` in {file} ({why}) matches nothing \
                 any more; delete it from PENDING_LAYER_EXCEPTIONS"
            ));
        }
    }
    report("imports or SQL against the layering", &failures);
}

/// Known offences another change of issue 9 removes: `(file, text on the line, why)`. Each must
/// still match something (the test says when one can go), so the list only shrinks.
const PENDING_LAYER_EXCEPTIONS: &[(&str, &str, &str)] = &[(
    "reconciler/src/containers/spawn.rs",
    "agent_runner::session_db::outbound_dir(",
    "derives the outbound mount's host path (no file is opened); the spawn rework in \
     containers/spawn.rs and runtime/compose.rs (the `agentenv` change) should hand it in \
     through `SpawnSpec`",
)];

/// One layer of [`tidy_layers_point_down`].
struct Layer {
    /// The folder (relative to the repository root, ending in `/`).
    folder: &'static str,
    /// What its code must not mention.
    banned: &'static [Mention],
    /// Whether string literals count (SQL is written in strings).
    in_strings: bool,
    /// How to fix an offence.
    fix: &'static str,
}

/// A way code mentions something.
#[derive(Clone, Copy)]
enum Mention {
    /// A path segment: `name::` not preceded by an identifier character (`db::` but not
    /// `session_db::`).
    Path(&'static str),
    /// A whole word.
    Word(&'static str),
    /// Any occurrence of the text.
    Text(&'static str),
}

impl Mention {
    fn text(self) -> String {
        match self {
            Mention::Path(name) => format!("{name}::"),
            Mention::Word(word) | Mention::Text(word) => word.to_string(),
        }
    }

    fn is_in(self, line: &str) -> bool {
        let is_ident = |c: char| c.is_alphanumeric() || c == '_';
        let occurrences = |needle: String| {
            line.match_indices(&needle)
                .map(|(at, _)| (at, at + needle.len()))
                .collect::<Vec<_>>()
        };
        match self {
            Mention::Text(text) => line.contains(text),
            Mention::Path(name) => occurrences(format!("{name}::"))
                .into_iter()
                .any(|(at, _)| !line[..at].chars().next_back().is_some_and(is_ident)),
            Mention::Word(word) => occurrences(word.to_string()).into_iter().any(|(at, end)| {
                !line[..at].chars().next_back().is_some_and(is_ident)
                    && !line[end..].chars().next().is_some_and(is_ident)
            }),
        }
    }
}

/// One "only here" rule of [`tidy_environment_and_sqlite_are_opened_in_one_place`].
struct Rule {
    /// Text that marks a use (matched in code with comments and strings blanked).
    needle: &'static str,
    /// Files (or folder prefixes) that own the use.
    allowed: &'static [&'static str],
    /// `(file, text on the raw line, why)` for single justified uses elsewhere.
    exceptions: &'static [(&'static str, &'static str, &'static str)],
    /// A variant unit tests may use (after `#[cfg(test)]`, or in a `tests.rs`/`*_tests.rs` file).
    unit_tests_may: Option<&'static str>,
    /// How to fix an offence.
    fix: &'static str,
}

/// Fails with every offence listed, one per line.
#[track_caller]
fn report(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} {what}:\n{}\n",
        failures.len(),
        failures.join("\n")
    );
}

/// Every `.rs` file under `trees`, relative to the repository root, sorted.
fn rust_files(trees: &[&str]) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|err| panic!("read {}: {err}", dir.display()));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let relative = dir.join(entry.file_name());
            if entry.file_type().expect("file type").is_dir() {
                walk(root, &relative, out);
            } else if relative.extension().is_some_and(|ext| ext == "rs") {
                out.push(relative);
            }
        }
    }
    let root = repo_root();
    let mut files = Vec::new();
    for tree in trees {
        walk(&root, Path::new(tree), &mut files);
    }
    files.sort();
    files
}

fn read(relative: &Path) -> String {
    std::fs::read_to_string(repo_root().join(relative))
        .unwrap_or_else(|err| panic!("read {}: {err}", relative.display()))
}

/// The module path of a source file as `(name, "/" or ".rs")` steps, `None` for crate roots
/// and out-of-line unit tests.
fn module_path(file: &Path, src: &str) -> Option<Vec<(String, &'static str)>> {
    let relative = file.strip_prefix(src).expect("file under its crate source");
    let parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let (last, dirs) = parts.split_last()?;
    let mut module: Vec<(String, &'static str)> =
        dirs.iter().map(|dir| (dir.clone(), "/")).collect();
    match last.as_str() {
        "mod.rs" => {}
        name if name == "tests.rs" || name.ends_with("_tests.rs") => return None,
        "lib.rs" | "main.rs" if dirs.is_empty() => return None,
        other => module.push((other.trim_end_matches(".rs").to_owned(), ".rs")),
    }
    (!module.is_empty()).then_some(module)
}

/// The lines of `### \`<krate>/\`` under `## Code map`, up to the next heading.
fn code_map_section(architecture: &str, krate: &str) -> Vec<String> {
    let heading = format!("### `{krate}/`");
    let code_map = architecture
        .split("\n## ")
        .find(|part| part.starts_with("Code map"))
        .unwrap_or_default();
    code_map
        .lines()
        .skip_while(|line| !line.starts_with(&heading))
        .skip(1)
        .take_while(|line| !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn names_module(section: &[String], module: &[(String, &'static str)]) -> bool {
    let (name, form) = module.last().expect("module paths are never empty");
    let wanted = format!("{name}{form}");
    let mut bullets = section.iter().filter(|line| line.starts_with("- "));
    if module.len() == 1 {
        // A top-level folder leads its own bullet; a top-level file is named in a bullet that is
        // not about a folder (so `db/`'s `routing.rs` does not name a top-level `routing.rs`).
        return bullets.any(|line| match backticked(line).next() {
            Some(first) if wanted.ends_with('/') => first == wanted,
            Some(first) => !first.ends_with('/') && backticked(line).any(|span| span == wanted),
            None => false,
        });
    }
    let folder = format!("{}/", module[0].0);
    bullets
        .filter(|line| backticked(line).next() == Some(folder.as_str()))
        .any(|line| {
            backticked(line).any(|span| span == wanted || span.ends_with(&format!("/{wanted}")))
        })
}

/// The texts between pairs of backticks on one line.
fn backticked(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').skip(1).step_by(2)
}

/// `key = "value"` on one TOML line.
fn toml_string(line: &str, key: &str) -> Option<String> {
    let value = line
        .strip_prefix(key)?
        .trim_start()
        .strip_prefix('=')?
        .trim();
    Some(value.strip_prefix('"')?.strip_suffix('"')?.to_owned())
}

fn idents(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|id| !id.is_empty())
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte].matches('\n').count() + 1
}

/// A `fn` or `struct` of a file: name, whole span, body span, and whether it is a test.
struct Item {
    name: String,
    span: std::ops::Range<usize>,
    body: std::ops::Range<usize>,
    is_test: bool,
}

/// The `fn` and `struct` items of blanked code, outermost first; a `fn` inside another `fn`'s
/// body is part of that body. A `fn` is a test when `#[test]` or `#[tokio::test` stands
/// between the previous item and it.
fn items(code: &str) -> Vec<Item> {
    let bytes = code.as_bytes();
    let mut items = Vec::new();
    let mut pos = 0;
    let mut previous_end = 0;
    while pos < code.len() {
        let Some((keyword_at, keyword)) = ["fn ", "struct "]
            .iter()
            .filter_map(|keyword| find_word(code, pos, keyword).map(|at| (at, *keyword)))
            .min()
        else {
            break;
        };
        let name_at = keyword_at + keyword.len();
        let name: String = code[name_at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let opens = code[name_at..].find(['{', ';']).map(|at| name_at + at);
        let Some(open) = opens.filter(|at| bytes[*at] == b'{') else {
            // A declaration without a body (`struct Unit;`, a trait method): skip it.
            pos = opens.map_or(code.len(), |at| at + 1);
            continue;
        };
        let close = matching_brace(code, open);
        let attributes = &code[previous_end..keyword_at];
        items.push(Item {
            name,
            span: keyword_at..close,
            body: open..close,
            is_test: keyword == "fn "
                && (attributes.contains("#[test]") || attributes.contains("#[tokio::test")),
        });
        previous_end = close;
        pos = close;
    }
    items
}

/// Position of `keyword` at or after `from` that is not the tail of a longer identifier.
fn find_word(code: &str, from: usize, keyword: &str) -> Option<usize> {
    let mut at = from;
    while let Some(found) = code[at..].find(keyword) {
        let start = at + found;
        let before = code[..start].chars().next_back();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return Some(start);
        }
        at = start + keyword.len();
    }
    None
}

/// The byte just past the `}` matching the `{` at `open` (or the end of the text).
fn matching_brace(code: &str, open: usize) -> usize {
    let mut depth = 0usize;
    for (at, byte) in code.bytes().enumerate().skip(open) {
        match byte {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return at + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// A source text with parts blanked to spaces (newlines kept, so lines and offsets still match).
struct Lexed {
    /// Comments and string/char literals blanked.
    code: String,
    /// Only string/char literals blanked (comments kept).
    without_strings: String,
    /// Only string/char literals kept (code and comments blanked).
    literals: String,
    /// Only comments blanked (string literals kept).
    without_comments: String,
}

impl Lexed {
    fn new(source: &str) -> Lexed {
        let chars: Vec<char> = source.chars().collect();
        let mut code = String::with_capacity(source.len());
        let mut without_strings = String::with_capacity(source.len());
        let mut literals = String::with_capacity(source.len());
        let mut without_comments = String::with_capacity(source.len());
        let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
        let mut idx = 0;
        while idx < chars.len() {
            let (len, kind) = Lexed::token(&chars, idx);
            for &c in &chars[idx..idx + len] {
                code.push(if kind == Kind::Code { c } else { blank(c) });
                without_strings.push(if kind == Kind::Literal { blank(c) } else { c });
                literals.push(if kind == Kind::Literal { c } else { blank(c) });
                without_comments.push(if kind == Kind::Comment { blank(c) } else { c });
            }
            idx += len;
        }
        Lexed {
            code,
            without_strings,
            literals,
            without_comments,
        }
    }

    /// Length (in chars) and kind of the token starting at `idx`.
    fn token(chars: &[char], idx: usize) -> (usize, Kind) {
        let at = |offset: usize| chars.get(idx + offset).copied();
        let rest = chars.len() - idx;
        let ident_before = idx > 0 && (chars[idx - 1].is_alphanumeric() || chars[idx - 1] == '_');
        match (at(0), at(1)) {
            (Some('/'), Some('/')) => {
                let len = chars[idx..].iter().position(|c| *c == '\n').unwrap_or(rest);
                (len, Kind::Comment)
            }
            (Some('/'), Some('*')) => {
                let mut depth = 0;
                let mut len = 0;
                while len < rest {
                    match (at(len), at(len + 1)) {
                        (Some('/'), Some('*')) => (depth, len) = (depth + 1, len + 2),
                        (Some('*'), Some('/')) => {
                            (depth, len) = (depth - 1, len + 2);
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => len += 1,
                    }
                }
                (len.min(rest), Kind::Comment)
            }
            (Some('"'), _) => {
                let mut len = 1;
                while len < rest && at(len) != Some('"') {
                    len += if at(len) == Some('\\') { 2 } else { 1 };
                }
                ((len + 1).min(rest), Kind::Literal)
            }
            (Some('r'), Some('"' | '#')) if !ident_before => {
                match Lexed::raw_string(chars, idx + 1) {
                    Some(len) => (len + 1, Kind::Literal),
                    None => (1, Kind::Code),
                }
            }
            (Some('b'), Some('r')) if !ident_before => match Lexed::raw_string(chars, idx + 2) {
                Some(len) => (len + 2, Kind::Literal),
                None => (1, Kind::Code),
            },
            (Some('\''), Some('\\')) => {
                let len = chars[idx + 2..]
                    .iter()
                    .position(|c| *c == '\'')
                    .map_or(rest, |at| at + 3);
                (len, Kind::Literal)
            }
            (Some('\''), Some(_)) if at(2) == Some('\'') => (3, Kind::Literal),
            _ => (1, Kind::Code),
        }
    }

    /// Length of a raw string whose `#…"` starts at `start`, if it is one.
    fn raw_string(chars: &[char], start: usize) -> Option<usize> {
        let hashes = chars[start..].iter().take_while(|c| **c == '#').count();
        if chars.get(start + hashes) != Some(&'"') {
            return None;
        }
        let mut at = start + hashes + 1;
        while at < chars.len() {
            if chars[at] == '"'
                && chars[at + 1..]
                    .iter()
                    .take(hashes)
                    .filter(|c| **c == '#')
                    .count()
                    == hashes
            {
                return Some(at + 1 + hashes - start);
            }
            at += 1;
        }
        Some(chars.len() - start)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Code,
    Comment,
    Literal,
}
