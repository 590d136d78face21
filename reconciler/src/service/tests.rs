//! Snapshots of the unit file and plist of a fixed install, the names two installs get, and
//! the parsing of the managers' answers.

use std::path::PathBuf;

use super::*;

fn service(scope: Scope) -> Service {
    Service {
        slug: "1a2b3c4d".to_string(),
        scope,
        exe: PathBuf::from("/usr/local/bin/nanoclaw"),
        manifests: PathBuf::from("/home/ann/agents/manifests"),
        data: PathBuf::from("/home/ann/.local/state/nanoclaw"),
        uid: Some(1000),
        environment: vec![(
            "DOCKER_HOST".to_string(),
            "unix:///run/docker.sock".to_string(),
        )],
    }
}

#[test]
fn the_user_unit_restarts_on_failure_within_a_start_limit_and_logs_to_the_journal() {
    expect_test::expect![[r#"
        # Written by `nanoclaw service install`; `nanoclaw service uninstall` removes it.
        # The nanoclaw daemon of the data dir /home/ann/.local/state/nanoclaw (install 1a2b3c4d).
        [Unit]
        Description=nanoclaw agents of /home/ann/.local/state/nanoclaw (install 1a2b3c4d)
        After=network-online.target docker.service
        Wants=network-online.target
        StartLimitIntervalSec=600
        StartLimitBurst=5

        [Service]
        Type=exec
        ExecStart="/usr/local/bin/nanoclaw" "run" "/home/ann/agents/manifests" "--data" "/home/ann/.local/state/nanoclaw"
        Environment="DOCKER_HOST=unix:///run/docker.sock"
        Restart=on-failure
        RestartSec=10
        TimeoutStopSec=90
        KillMode=mixed
        UMask=0077
        NoNewPrivileges=yes
        StandardOutput=journal
        StandardError=journal
        SyslogIdentifier=nanoclaw-1a2b3c4d

        [Install]
        WantedBy=default.target
    "#]]
    .assert_eq(&service(Scope::User).render(Platform::Systemd));
}

#[test]
fn the_system_unit_runs_as_the_data_dirs_owner_from_boot() {
    let unit = service(Scope::System).render(Platform::Systemd);
    assert!(unit.contains("\nUser=1000\n"), "{unit}");
    assert!(unit.contains("\nWantedBy=multi-user.target\n"), "{unit}");
    let root = Service {
        uid: None,
        ..service(Scope::System)
    };
    assert!(!root.render(Platform::Systemd).contains("User="));
    assert!(
        !service(Scope::User)
            .render(Platform::Systemd)
            .contains("User=")
    );
}

#[test]
fn unit_words_escape_quotes_specifiers_and_variables() {
    let odd = Service {
        manifests: PathBuf::from("/srv/my \"agents\" 100%/$HOME"),
        ..service(Scope::User)
    };
    let unit = odd.render(Platform::Systemd);
    assert!(
        unit.contains(r#""/srv/my \"agents\" 100%%/$$HOME""#),
        "{unit}"
    );
}

#[test]
fn the_launchd_plist_restarts_after_a_failure_only_and_throttles() {
    expect_test::expect![[r#"
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
        <!-- Written by `nanoclaw service install`; `nanoclaw service uninstall` removes it. -->
        <plist version="1.0">
        <dict>
          <key>Label</key>
          <string>com.nanoclaw.1a2b3c4d</string>
          <key>ProgramArguments</key>
          <array>
            <string>/usr/local/bin/nanoclaw</string>
            <string>run</string>
            <string>/home/ann/agents/manifests</string>
            <string>--data</string>
            <string>/home/ann/.local/state/nanoclaw</string>
          </array>
          <key>EnvironmentVariables</key>
          <dict>
            <key>DOCKER_HOST</key>
            <string>unix:///run/docker.sock</string>
          </dict>
          <key>RunAtLoad</key>
          <true/>
          <key>KeepAlive</key>
          <dict>
            <key>SuccessfulExit</key>
            <false/>
          </dict>
          <key>ThrottleInterval</key>
          <integer>30</integer>
          <key>ExitTimeOut</key>
          <integer>90</integer>
          <key>ProcessType</key>
          <string>Background</string>
          <key>Umask</key>
          <integer>63</integer>
          <key>StandardOutPath</key>
          <string>/home/ann/.local/state/nanoclaw/nanoclaw.log</string>
          <key>StandardErrorPath</key>
          <string>/home/ann/.local/state/nanoclaw/nanoclaw.log</string>
        </dict>
        </plist>
    "#]]
    .assert_eq(&service(Scope::User).render(Platform::Launchd));
}

#[test]
fn two_installs_never_share_a_unit_name_or_file() {
    let other = Service {
        slug: "99aa88bb".to_string(),
        ..service(Scope::User)
    };
    for platform in [Platform::Systemd, Platform::Launchd] {
        assert_ne!(service(Scope::User).name(platform), other.name(platform));
        let manager = Manager {
            platform,
            scope: Scope::User,
            dir: PathBuf::from("/units"),
        };
        assert_ne!(manager.file("1a2b3c4d"), manager.file("99aa88bb"));
    }
    assert_eq!(name("1a2b3c4d", Platform::Systemd), "nanoclaw-1a2b3c4d");
}

#[test]
fn systemctl_show_reads_running_failed_and_not_loaded() {
    let running = systemd::parse_show(
        "LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=2\nUnitFileState=enabled\nResult=success\n",
    );
    assert!(running.running && !running.failed);
    assert_eq!(running.restarts, Some(2));
    assert_eq!(running.enabled, Some(true));
    assert_eq!(running.state, "active (running)");
    let looped = systemd::parse_show(
        "LoadState=loaded\nActiveState=failed\nSubState=failed\nNRestarts=5\nUnitFileState=enabled\nResult=start-limit-hit\n",
    );
    assert!(looped.failed && !looped.running);
    assert!(
        looped.state.contains("restarted too often"),
        "{}",
        looped.state
    );
    let absent = systemd::parse_show("LoadState=not-found\nActiveState=inactive\nSubState=dead\n");
    assert_eq!(absent.state, "not loaded");
}

#[test]
fn launchctl_print_reads_the_state_and_runs() {
    let state = launchd::parse_print("com.nanoclaw.x = {\n\tstate = running\n\truns = 3\n}\n");
    assert!(state.running);
    assert_eq!(state.restarts, Some(2));
}
