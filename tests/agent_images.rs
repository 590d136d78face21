//! Per-agent images against the real daemon, through `nanoclaw image build DIR`: an agent
//! listing `packages.apt` gets its own image with the package inside, an unchanged list
//! reuses it (its labels say so), a failing package leaves the previous image and records the
//! error, and old per-agent images of this install are pruned, never another install's.
//!
//! The agents name the production test image (`support::production_image`) as their own
//! `image`, so no shared tag is built; it has apt and Debian's sources. `tree` is a package the
//! production image does not hold.

use std::process::{Command, Stdio};

use crate::support::{self, Env};

/// Removes the images it names when dropped (unless `NANOCLAW_TEST_KEEP=1`): only images the
/// test made.
pub(crate) struct Images(pub(crate) Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        if support::keep_docker_objects() {
            return;
        }
        for tag in &self.0 {
            let _ = Command::new("docker")
                .args(["image", "rm", "--no-prune", tag])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn agent_with(packages: &str) -> String {
    format!(
        "kind: agent\nname: andy\nprovider: mock\nimage: {}\npackages:\n  apt: [{packages}]\n",
        support::production_test_image()
    )
}

/// `built|reused TAG (agent andy)` from stdout: the per-agent tag.
fn agent_tag(stdout: &str) -> String {
    stdout
        .lines()
        .find(|line| line.ends_with("(agent andy)"))
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no per-agent image line in:\n{stdout}"))
        .to_string()
}

pub(crate) fn image_exists(tag: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", tag])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("docker image inspect")
        .success()
}

fn run_in(tag: &str, args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(["run", "--rm", "--entrypoint", args[0], tag])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .expect("docker run");
    assert!(
        output.status.success(),
        "{args:?} in {tag}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn image_row(env: &Env) -> reconciler::db::agent_images::AgentImageRow {
    let conn = reconciler::db::open_readonly(&env.db()).expect("open the DB");
    reconciler::db::agent_images::get(&conn, "andy")
        .expect("read agent_images")
        .expect("a row for andy")
}

#[test]
fn packages_apt_builds_a_per_agent_image_reused_while_unchanged_and_kept_after_a_failure() {
    let Some(()) = support::docker() else { return };
    support::production_image();
    let env = Env::new("agent-image");
    env.write("andy.yaml", &agent_with("tree"));
    let built = env.run(&["image", "build", "manifests"]);
    built.success();
    let tag = agent_tag(&built.stdout);
    let mut made = Images(vec![tag.clone()]);
    let slug = reconciler::paths::slug_of(&env.data());
    assert!(
        built.stdout.contains(&format!("built {tag} (agent andy)"))
            && tag.starts_with(&format!("nanoclaw-agent-{slug}-andy:")),
        "{}\n{}",
        built.stdout,
        built.stderr
    );
    assert!(
        built
            .stderr
            .contains("apt-get install -y --no-install-recommends 'tree'"),
        "the build shows its steps:\n{}",
        built.stderr
    );
    assert!(run_in(&tag, &["tree", "--version"]).starts_with("tree v"));
    assert_eq!(image_row(&env).tag.as_deref(), Some(tag.as_str()));

    let again = env.run(&["image", "build", "manifests"]);
    again.success();
    assert!(
        again.stdout.contains(&format!("reused {tag} (agent andy)"))
            && !again.stderr.contains("Step "),
        "an unchanged list does not rebuild:\n{}\n{}",
        again.stdout,
        again.stderr
    );

    env.write("andy.yaml", &agent_with("tree, no-such-pkg-xyz"));
    let failed = env.run(&["image", "build", "manifests"]);
    assert_eq!(failed.code, 1, "{}\n{}", failed.stdout, failed.stderr);
    assert!(
        failed
            .stderr
            .contains("error: agent `andy`: building its image")
            && failed.stderr.contains(&format!("keeps running on `{tag}`")),
        "{}",
        failed.stderr
    );
    let row = image_row(&env);
    assert_eq!(
        row.tag.as_deref(),
        Some(tag.as_str()),
        "the previous image stays"
    );
    let error = row.error.expect("the failure is recorded");
    assert!(error.contains("no-such-pkg-xyz"), "{error}");
    if let Some(failed_tag) = row.failed_tag {
        made.0.push(failed_tag);
    }
    assert!(image_exists(&tag), "the previous image is not pruned");
}

/// Tags a tiny image (from the minimal test image) as a per-agent image of install `slug`.
pub(crate) fn fake_agent_image(tag: &str, slug: &str) {
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .args(["--label", &format!("nanoclaw.install={slug}")])
        .args(["--label", "nanoclaw.agent-inputs-sha256=0000"])
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("docker build");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("FROM {}\n", support::test_image()).as_bytes())
        .expect("write the Dockerfile");
    assert!(child.wait().expect("docker build").success());
}

#[test]
fn old_per_agent_images_of_this_install_are_pruned_and_never_another_installs() {
    let Some(()) = support::docker() else { return };
    support::production_image();
    let env = Env::new("agent-image-prune");
    env.write("andy.yaml", &agent_with("tree"));
    env.run(&["validate", "manifests"]).success();
    std::fs::create_dir_all(env.data()).expect("data dir");
    let slug = reconciler::paths::slug_of(&env.data());
    let stale = format!("nanoclaw-agent-{slug}-gone:000000000000");
    // The other install's slug is this run's own (a second temp data dir): a fixed one was
    // shared by every checkout testing on this dockerd at once, and one run's cleanup removed
    // the image another run was asserting on.
    let other_env = Env::new("agent-image-prune-other");
    let other_slug = reconciler::paths::slug_of(&other_env.data());
    let other = format!("nanoclaw-agent-{other_slug}-andy:000000000000");
    let mut made = Images(vec![stale.clone(), other.clone()]);
    fake_agent_image(&stale, &slug);
    fake_agent_image(&other, &other_slug);
    let built = env.run(&["image", "build", "manifests"]);
    built.success();
    made.0.push(agent_tag(&built.stdout));
    assert!(
        built
            .stderr
            .contains(&format!("removed the old agent image `{stale}`")),
        "{}",
        built.stderr
    );
    assert!(
        !image_exists(&stale),
        "this install's stale image is pruned"
    );
    assert!(image_exists(&other), "another install's image is kept");
}
