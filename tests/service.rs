//! Issue 14 point 2: `nanoclaw service install|uninstall|status` against a recording
//! `systemctl` on PATH (this container runs no systemd), the unit file checked by the real
//! `systemd-analyze verify` where it is installed, and two installs side by side.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{BIN, Env};

/// A `systemctl` that appends its arguments to `systemctl.log` beside it and answers `show`
/// with the contents of `show.txt`.
fn fake_systemctl(env: &Env) -> PathBuf {
    let bin = env.root.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let script = bin.join("systemctl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{root}/systemctl.log'\ncase \"$*\" in *show*) cat '{root}/show.txt' ;; esac\n",
            root = env.root.path().display()
        ),
    )
    .expect("write systemctl");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    env.set_var("PATH", &crate::support::path_with_first(&bin));
    show(env, "active", "running");
    bin
}

fn show(env: &Env, active: &str, sub: &str) {
    std::fs::write(
        env.root.path().join("show.txt"),
        format!(
            "LoadState=loaded\nActiveState={active}\nSubState={sub}\nNRestarts=0\nUnitFileState=enabled\nResult=success\n"
        ),
    )
    .expect("write show.txt");
}

fn calls(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.root.path().join("systemctl.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn unit_file(env: &Env) -> PathBuf {
    let slug = reconciler::paths::Paths::new(env.data()).slug();
    env.config_home()
        .join("systemd/user")
        .join(format!("nanoclaw-{slug}.service"))
}

fn install(env: &Env) -> PathBuf {
    env.write("agents.yaml", "kind: agent\nname: echo\nprovider: mock\n");
    fake_systemctl(env);
    let run = env.run(&[
        "service",
        "install",
        "--user",
        &env.manifests().display().to_string(),
    ]);
    run.success();
    let unit = unit_file(env);
    assert!(
        unit.is_file(),
        "unit written to {}\n{}",
        unit.display(),
        run.stdout
    );
    unit
}

#[test]
fn issue_14_service_install_writes_enables_and_starts_a_unit_named_by_the_slug() {
    let env = Env::new("service-install");
    let unit = install(&env);
    let slug = reconciler::paths::Paths::new(env.data()).slug();
    let name = format!("nanoclaw-{slug}.service");
    assert_eq!(
        calls(&env),
        [
            "--user daemon-reload".to_string(),
            format!("--user reset-failed {name}"),
            format!("--user enable {name}"),
            format!("--user restart {name}"),
        ]
    );
    let text = std::fs::read_to_string(&unit).expect("unit");
    let data = env
        .data()
        .canonicalize()
        .expect("data dir exists after install");
    let manifests = env.manifests().canonicalize().expect("manifests");
    let bin = Path::new(BIN).canonicalize().expect("binary");
    for line in [
        format!(
            "ExecStart=\"{}\" \"run\" \"{}\" \"--data\" \"{}\"",
            bin.display(),
            manifests.display(),
            data.display()
        ),
        "Restart=on-failure".to_string(),
        "StartLimitBurst=5".to_string(),
        "StandardError=journal".to_string(),
        format!("SyslogIdentifier=nanoclaw-{slug}"),
        "WantedBy=default.target".to_string(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    verify(&unit);

    // Installing again rewrites the file and restarts; nothing else changes.
    env.run(&[
        "service",
        "install",
        "--user",
        &env.manifests().display().to_string(),
    ])
    .success();
    assert_eq!(std::fs::read_to_string(&unit).expect("unit"), text);
}

/// `systemd-analyze verify` parses the unit as systemd would (it needs no running systemd in
/// system mode); any complaint on stderr fails.
#[allow(clippy::print_stderr)] // says why the check is skipped
fn verify(unit: &Path) {
    let Ok(output) = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
    else {
        eprintln!(
            "systemd-analyze is not installed: the unit file is checked by its snapshot only"
        );
        return;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify {}:\n{stderr}",
        unit.display()
    );
}

#[test]
fn issue_14_service_status_shows_the_unit_and_the_daemons_health() {
    let env = Env::new("service-status");
    fake_systemctl(&env);
    let before = env.run(&["service", "status", "--user"]);
    assert_eq!(before.code, 1, "not installed: {}", before.stdout);
    assert!(before.stdout.contains("not installed"), "{}", before.stdout);

    install(&env);
    let no_daemon = env.run(&["service", "status", "--user"]);
    assert_eq!(
        no_daemon.code, 1,
        "no daemon holds the lock:\n{}",
        no_daemon.stdout
    );
    assert!(
        no_daemon.stdout.contains("state:    active (running)"),
        "{}",
        no_daemon.stdout
    );
    assert!(
        no_daemon.stdout.contains("Daemon: not running"),
        "{}",
        no_daemon.stdout
    );

    // The daemon's health is its lock: whoever holds `run.lock` is the running daemon.
    let lock = reconciler::lockfile::acquire(&env.data().join("run.lock")).expect("lock");
    let healthy = env.run(&["service", "status", "--user"]);
    assert_eq!(healthy.code, 0, "{}{}", healthy.stdout, healthy.stderr);
    assert!(
        healthy
            .stdout
            .contains(&format!("Daemon: running (pid {}", std::process::id())),
        "{}",
        healthy.stdout
    );
    drop(lock);

    show(&env, "failed", "failed");
    let failed = env.run(&["service", "status", "--user"]);
    assert_eq!(failed.code, 1);
    assert!(failed.stdout.contains("it failed"), "{}", failed.stdout);
}

#[test]
fn issue_14_two_installs_get_two_units_and_uninstalling_one_leaves_the_other() {
    let first = Env::new("service-first");
    let second = Env::new("service-second");
    // Both installs share one config home, as two data dirs of one user do.
    second.set_var(
        "XDG_CONFIG_HOME",
        &first.config_home().display().to_string(),
    );
    let first_unit = install(&first);
    second.write("agents.yaml", "kind: agent\nname: echo\nprovider: mock\n");
    fake_systemctl(&second);
    second
        .run(&[
            "service",
            "install",
            "--user",
            &second.manifests().display().to_string(),
        ])
        .success();
    let slug = reconciler::paths::Paths::new(second.data()).slug();
    let second_unit = first
        .config_home()
        .join(format!("systemd/user/nanoclaw-{slug}.service"));
    assert!(second_unit.is_file());
    assert_ne!(first_unit, second_unit);

    let run = second.run(&["service", "uninstall", "--user"]);
    run.success();
    assert!(run.stdout.contains("Stopped and removed"), "{}", run.stdout);
    assert!(!second_unit.exists());
    assert!(first_unit.is_file(), "the other install's unit stays");
    assert!(
        calls(&second)
            .iter()
            .any(|call| call == &format!("--user disable --now nanoclaw-{slug}.service")),
        "{:?}",
        calls(&second)
    );
    assert!(
        !calls(&second)
            .iter()
            .any(|call| call.contains(&reconciler::paths::Paths::new(first.data()).slug())),
        "never a call on the other install's unit"
    );
    let again = second.run(&["service", "uninstall", "--user"]);
    again.success();
    assert!(again.stdout.contains("No service"), "{}", again.stdout);
}

#[test]
fn issue_14_service_install_refuses_invalid_manifests_and_writes_nothing() {
    let env = Env::new("service-invalid");
    fake_systemctl(&env);
    env.write("agents.yaml", "kind: agent\nname: Not A Name\n");
    let run = env.run(&[
        "service",
        "install",
        "--user",
        &env.manifests().display().to_string(),
    ]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("agents.yaml"), "{}", run.stderr);
    assert!(!unit_file(&env).exists());
    assert!(calls(&env).is_empty(), "{:?}", calls(&env));
}
