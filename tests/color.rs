//! Colour (issue 9 point 11): plan, validate and image output follow one decision, `--color`
//! with `NO_COLOR`: `never` and `NO_COLOR` give no escape codes, `always` gives them, on
//! stdout and on stderr alike.

use crate::support::{self, Env, Run};

const ESC: char = '\u{1b}';

/// `text` without its SGR escape sequences.
fn plain(text: &str) -> String {
    regex::Regex::new("\u{1b}\\[[0-9;]*m")
        .expect("the pattern is valid")
        .replace_all(text, "")
        .into_owned()
}

const VALID: &str = "kind: agent\nname: andy\nprovider: mock\n---\nkind: channel\nname: term\nchannel_type: cli\nplatform_id: local\nwirings: [{agent: andy, engage_mode: pattern, engage_pattern: '.'}]\n";

/// The three ways to ask: `NO_COLOR` (the harness sets it) with `auto`, `--color never`
/// without `NO_COLOR`, and `--color always` with `NO_COLOR` (the flag wins).
fn three_ways(env: &Env, args: &[&str]) -> [(String, Run); 3] {
    let with = |flag: &[&str], no_color: bool| {
        let mut all = flag.to_vec();
        all.extend_from_slice(args);
        let mut command = env.command(&all);
        if !no_color {
            command.env_remove("NO_COLOR");
        }
        Run::from(command.output().expect("run nanoclaw"))
    };
    [
        ("NO_COLOR".to_string(), with(&[], true)),
        (
            "--color never".to_string(),
            with(&["--color", "never"], false),
        ),
        (
            "--color always".to_string(),
            with(&["--color", "always"], true),
        ),
    ]
}

#[track_caller]
fn check(what: &str, runs: [(String, Run); 3], text_of: impl Fn(&Run) -> &str) {
    for (how, run) in &runs {
        let text = text_of(run);
        let coloured = text.contains(ESC);
        assert_eq!(
            coloured,
            how == "--color always",
            "{what} with {how}: escape codes {}\n{text:?}",
            if coloured { "present" } else { "absent" }
        );
    }
}

#[test]
fn issue_9_validate_and_plan_colour_only_when_asked() {
    let env = Env::new("color");
    env.write("m.yaml", VALID);
    check(
        "validate (stdout)",
        three_ways(&env, &["validate", "manifests"]),
        |run| &run.stdout,
    );
    check(
        "plan (stdout)",
        three_ways(&env, &["plan", "manifests"]),
        |run| &run.stdout,
    );
    env.write("m.yaml", "kind: agent\nname: Andy\nprovider: mock\n");
    let runs = three_ways(&env, &["validate", "manifests"]);
    for (how, run) in &runs {
        assert_eq!(run.code, 1, "{how}: {}", run.stderr);
        assert!(
            plain(&run.stderr).contains("agent.Andy"),
            "{how}: {}",
            run.stderr
        );
    }
    check("validate (stderr)", runs, |run| &run.stderr);
}

#[test]
fn issue_9_image_output_colours_only_when_asked() {
    let Some(()) = support::docker() else { return };
    let built = support::agent_image();
    let env = Env::new("color-image");
    let runs = three_ways(
        &env,
        &["image", "build", "--recipe", "minimal", "--tag", built.tag],
    );
    for (how, run) in &runs {
        run.success();
        assert_eq!(
            plain(&run.stdout),
            format!("reused {}\n", built.tag),
            "{how}"
        );
    }
    check("image build (stdout)", runs, |run| &run.stdout);
}
