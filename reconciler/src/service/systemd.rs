//! The systemd unit of an install and the `systemctl` calls that load, start, stop and query
//! it. `unit` is pure; its text is snapshot-tested and checked by `systemd-analyze verify`.

use std::fmt::Write as _;

use super::{
    Manager, RESTART_SECS, START_LIMIT_BURST, START_LIMIT_INTERVAL_SECS, STOP_TIMEOUT_SECS, Scope,
    Service, ServiceError, UnitState, run,
};

const SYSTEMCTL: &str = "systemctl";
const HINT: &str = "`nanoclaw service` needs systemd's `systemctl` on Linux; start `nanoclaw run` \
                    from your own supervisor instead";

/// The unit file's text.
pub fn unit(service: &Service) -> String {
    let mut out = String::new();
    let name = service.name(super::Platform::Systemd);
    let _ = writeln!(
        out,
        "# Written by `nanoclaw service install`; `nanoclaw service uninstall` removes it.\n\
         # The nanoclaw daemon of the data dir {data} (install {slug}).\n\
         [Unit]\n\
         Description=nanoclaw agents of {data} (install {slug})\n\
         After=network-online.target docker.service\n\
         Wants=network-online.target\n\
         StartLimitIntervalSec={START_LIMIT_INTERVAL_SECS}\n\
         StartLimitBurst={START_LIMIT_BURST}\n\
         \n\
         [Service]\n\
         Type=exec",
        data = escape(&service.data.display().to_string()),
        slug = service.slug,
    );
    if service.scope == Scope::System
        && let Some(uid) = service.uid
    {
        let _ = writeln!(out, "User={uid}");
    }
    let mut exec = quote(&service.exe.display().to_string());
    for arg in service.run_args() {
        exec.push(' ');
        exec.push_str(&quote(&arg));
    }
    let _ = writeln!(out, "ExecStart={exec}");
    for (key, value) in &service.environment {
        let _ = writeln!(out, "Environment={}", quote(&format!("{key}={value}")));
    }
    let _ = write!(
        out,
        "Restart=on-failure\n\
         RestartSec={RESTART_SECS}\n\
         TimeoutStopSec={STOP_TIMEOUT_SECS}\n\
         KillMode=mixed\n\
         UMask=0077\n\
         NoNewPrivileges=yes\n\
         StandardOutput=journal\n\
         StandardError=journal\n\
         SyslogIdentifier={name}\n\
         \n\
         [Install]\n\
         WantedBy={}\n",
        match service.scope {
            Scope::User => "default.target",
            Scope::System => "multi-user.target",
        }
    );
    out
}

/// An ExecStart/Environment word: double-quoted, with `\`, `"`, `%` and `$` escaped.
fn quote(word: &str) -> String {
    let mut out = String::from("\"");
    for ch in word.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

/// A value in a free-text setting (`Description`): `%` specifiers escaped, no newline.
fn escape(text: &str) -> String {
    text.replace('%', "%%").replace('\n', " ")
}

fn systemctl(manager: &Manager, args: &[&str]) -> Result<String, ServiceError> {
    let mut all = Vec::with_capacity(args.len() + 1);
    if manager.scope == Scope::User {
        all.push("--user");
    }
    all.extend_from_slice(args);
    run(SYSTEMCTL, &all, HINT)
}

/// `daemon-reload`, then enable and (re)start `name`, clearing a former start-limit failure.
pub(super) fn install(manager: &Manager, name: &str) -> Result<(), ServiceError> {
    let unit = format!("{name}.service");
    reload(manager)?;
    let _ = systemctl(manager, &["reset-failed", &unit]);
    systemctl(manager, &["enable", &unit])?;
    systemctl(manager, &["restart", &unit])?;
    Ok(())
}

/// Stops and disables `name` (a unit that is not loaded is not an error).
pub(super) fn stop(manager: &Manager, name: &str) -> Result<(), ServiceError> {
    let unit = format!("{name}.service");
    systemctl(manager, &["disable", "--now", &unit])?;
    let _ = systemctl(manager, &["reset-failed", &unit]);
    Ok(())
}

pub(super) fn reload(manager: &Manager) -> Result<(), ServiceError> {
    systemctl(manager, &["daemon-reload"]).map(|_| ())
}

/// `systemctl show`'s properties of `name`.
pub(super) fn state(manager: &Manager, name: &str) -> Result<UnitState, ServiceError> {
    let unit = format!("{name}.service");
    let text = systemctl(
        manager,
        &[
            "show",
            &unit,
            "--property=LoadState,ActiveState,SubState,NRestarts,UnitFileState,Result",
        ],
    )?;
    Ok(parse_show(&text))
}

/// Reads `Key=Value` lines of `systemctl show` (pure).
pub fn parse_show(text: &str) -> UnitState {
    let get = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let load = get("LoadState");
    let active = get("ActiveState");
    let sub = get("SubState");
    let result = get("Result");
    let state = if load == "not-found" || load.is_empty() {
        "not loaded".to_string()
    } else if result == "start-limit-hit" {
        format!("{active} ({sub}): restarted too often, systemd stopped trying")
    } else {
        format!("{active} ({sub})")
    };
    let file_state = get("UnitFileState");
    UnitState {
        running: active == "active" && sub == "running",
        failed: active == "failed",
        restarts: get("NRestarts").parse().ok(),
        enabled: (!file_state.is_empty()).then(|| file_state == "enabled"),
        state,
    }
}
