//! The launchd property list of an install (macOS) and the `launchctl` calls that load, stop
//! and query it. `plist` is pure and snapshot-tested. launchd has no journal: the daemon's
//! stderr goes to `<data>/nanoclaw.log`. It has no start limit either: `ThrottleInterval`
//! spaces restarts, and `KeepAlive.SuccessfulExit = false` restarts only after a failure.

use std::fmt::Write as _;
use std::path::Path;

use super::{
    Manager, RESTART_SECS, STOP_TIMEOUT_SECS, Scope, Service, ServiceError, UnitState, run,
};

const LAUNCHCTL: &str = "launchctl";
const HINT: &str = "`nanoclaw service` needs `launchctl` on macOS";
/// The log file launchd writes the daemon's output to, in the data dir.
pub const LOG_FILE: &str = "nanoclaw.log";

/// The plist's text.
pub fn plist(service: &Service) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- Written by `nanoclaw service install`; `nanoclaw service uninstall` removes it. -->\n\
         <plist version=\"1.0\">\n<dict>\n",
    );
    let string = |out: &mut String, key: &str, value: &str| {
        let _ = writeln!(out, "  <key>{key}</key>\n  <string>{}</string>", xml(value));
    };
    string(&mut out, "Label", &service.name(super::Platform::Launchd));
    out.push_str("  <key>ProgramArguments</key>\n  <array>\n");
    let _ = writeln!(
        out,
        "    <string>{}</string>",
        xml(&service.exe.display().to_string())
    );
    for arg in service.run_args() {
        let _ = writeln!(out, "    <string>{}</string>", xml(&arg));
    }
    out.push_str("  </array>\n");
    if !service.environment.is_empty() {
        out.push_str("  <key>EnvironmentVariables</key>\n  <dict>\n");
        for (key, value) in &service.environment {
            let _ = writeln!(
                out,
                "    <key>{}</key>\n    <string>{}</string>",
                xml(key),
                xml(value)
            );
        }
        out.push_str("  </dict>\n");
    }
    if service.scope == Scope::System
        && let Some(uid) = service.uid
    {
        string(&mut out, "UserName", &uid.to_string());
    }
    let log = service.data.join(LOG_FILE).display().to_string();
    let _ = write!(
        out,
        "  <key>RunAtLoad</key>\n  <true/>\n\
         \x20 <key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>\n\
         \x20 <key>ThrottleInterval</key>\n  <integer>{throttle}</integer>\n\
         \x20 <key>ExitTimeOut</key>\n  <integer>{STOP_TIMEOUT_SECS}</integer>\n\
         \x20 <key>ProcessType</key>\n  <string>Background</string>\n\
         \x20 <key>Umask</key>\n  <integer>63</integer>\n",
        throttle = RESTART_SECS * 3,
    );
    string(&mut out, "StandardOutPath", &log);
    string(&mut out, "StandardErrorPath", &log);
    out.push_str("</dict>\n</plist>\n");
    out
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `gui/<uid>` for a user agent, `system` for a daemon.
fn domain(manager: &Manager) -> String {
    match manager.scope {
        Scope::User => format!("gui/{}", rustix::process::getuid().as_raw()),
        Scope::System => "system".to_string(),
    }
}

pub(super) fn install(manager: &Manager, name: &str, path: &Path) -> Result<(), ServiceError> {
    let domain = domain(manager);
    // A loaded older version is replaced: bootout fails harmlessly when none is loaded.
    let _ = run(LAUNCHCTL, &["bootout", &format!("{domain}/{name}")], HINT);
    run(
        LAUNCHCTL,
        &["bootstrap", &domain, &path.display().to_string()],
        HINT,
    )?;
    run(LAUNCHCTL, &["enable", &format!("{domain}/{name}")], HINT)?;
    Ok(())
}

pub(super) fn stop(manager: &Manager, name: &str, _path: &Path) -> Result<(), ServiceError> {
    let _ = run(
        LAUNCHCTL,
        &["bootout", &format!("{}/{name}", domain(manager))],
        HINT,
    );
    Ok(())
}

pub(super) fn state(manager: &Manager, name: &str) -> Result<UnitState, ServiceError> {
    let target = format!("{}/{name}", domain(manager));
    match run(LAUNCHCTL, &["print", &target], HINT) {
        Ok(text) => Ok(parse_print(&text)),
        Err(ServiceError::Command { .. }) => Ok(UnitState {
            state: "not loaded".to_string(),
            ..UnitState::default()
        }),
        Err(err) => Err(err),
    }
}

/// Reads `state = …` and `runs = …` of `launchctl print` (pure).
pub fn parse_print(text: &str) -> UnitState {
    let get = |key: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(key)?.trim().strip_prefix('='))
            .map(|value| value.trim().to_string())
    };
    let state = get("state").unwrap_or_else(|| "unknown".to_string());
    UnitState {
        running: state == "running",
        failed: false,
        restarts: get("runs")
            .and_then(|runs| runs.parse::<u64>().ok())
            .map(|runs| runs.saturating_sub(1)),
        enabled: Some(true),
        state,
    }
}
