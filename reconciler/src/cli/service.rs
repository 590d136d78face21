//! `nanoclaw service install|uninstall|status [--user|--system]`: the daemon of this data dir
//! as a systemd unit or launchd agent named by the install slug (`ops::service`).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Ctx, Status};
use crate::ops::{self, OpsError};
use crate::service::{Platform, Scope};

const AFTER_HELP: &str = "\
The service runs `nanoclaw run DIR --data DATA` (docs/service.md). It is named by the install
slug (nanoclaw-<slug>.service, com.nanoclaw.<slug>), so each data dir gets its own. It restarts
after a failure, but stops after 5 starts within 10 minutes so a crash loop does not hammer
Docker. Logs go to the journal: `journalctl --user -u nanoclaw-<slug>` (macOS: DATA/nanoclaw.log).

A user service (the default) runs while you are logged in; `loginctl enable-linger $USER` keeps
it running after logout and starts it at boot. As root, the default is a system service that
runs as the data dir's owner.

Examples:
  nanoclaw service install manifests      write, enable and start the service
  nanoclaw service status                 the unit's state and the daemon's health
  nanoclaw service uninstall              stop, disable and remove it";

/// Run the daemon as a service (systemd, or launchd on macOS).
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ServiceArgs {
    #[command(subcommand)]
    pub command: ServiceCommand,
    /// The user's service manager (default unless root).
    #[arg(long, global = true, conflicts_with = "system")]
    pub user: bool,
    /// The system's service manager (root only; default as root).
    #[arg(long, global = true)]
    pub system: bool,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Validate the manifests, write the service, enable and start it (again, if installed).
    Install {
        /// Manifest directory the service runs.
        #[arg(default_value = "manifests", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Stop, disable and remove the service of this data dir.
    Uninstall,
    /// The service's state and the daemon's health; exit code 1 unless both are up.
    Status,
}

pub fn run(args: ServiceArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let scope = match (args.user, args.system) {
        (true, _) => Some(Scope::User),
        (_, true) => Some(Scope::System),
        _ => None,
    };
    match args.command {
        ServiceCommand::Install { dir } => install(ctx, &dir, scope),
        ServiceCommand::Uninstall => {
            let done = ops::service::uninstall(&ctx.paths, scope)?;
            if done.removed {
                println!(
                    "Stopped and removed {} ({}).",
                    done.name,
                    done.file.display()
                );
            } else {
                println!(
                    "No service {} is installed ({} does not exist).",
                    done.name,
                    done.file.display()
                );
            }
            Ok(Status::Ok)
        }
        ServiceCommand::Status => status(ctx, scope),
    }
}

fn install(ctx: &Ctx, dir: &std::path::Path, scope: Option<Scope>) -> anyhow::Result<Status> {
    let installed = match ops::service::install(&ctx.paths, dir, scope) {
        Ok(installed) => installed,
        Err(OpsError::Invalid { diagnostics }) => {
            let text = crate::manifest::render(&diagnostics);
            let _ = crate::logging::stderr().write_all(text.as_bytes());
            return Ok(Status::Invalid);
        }
        Err(err) => return Err(err.into()),
    };
    println!(
        "Installed and started the {} service {} ({}).",
        installed.scope.as_str(),
        installed.name,
        installed.file.display()
    );
    match installed.platform {
        Platform::Systemd => {
            let user = if installed.scope == Scope::User {
                " --user"
            } else {
                ""
            };
            println!("Logs: journalctl{user} -u {} -f", installed.name);
            if installed.scope == Scope::User {
                println!(
                    "It runs while you are logged in; `loginctl enable-linger` keeps it running after logout."
                );
            }
        }
        Platform::Launchd => println!(
            "Logs: {}",
            ctx.paths
                .data
                .join(crate::service::launchd::LOG_FILE)
                .display()
        ),
    }
    Ok(Status::Ok)
}

fn status(ctx: &Ctx, scope: Option<Scope>) -> anyhow::Result<Status> {
    let status = ops::service::status(&ctx.paths, scope)?;
    println!(
        "Service: {} ({} service)",
        status.name,
        status.scope.as_str()
    );
    if !status.installed {
        println!("  not installed ({} does not exist)", status.file.display());
        println!("  install it with `nanoclaw service install DIR`");
    }
    if let Some(unit) = &status.unit {
        println!("  file:     {}", status.file.display());
        println!("  state:    {}", unit.state);
        if let Some(enabled) = unit.enabled {
            println!("  enabled:  {}", if enabled { "yes" } else { "no" });
        }
        if let Some(restarts) = unit.restarts {
            println!("  restarts: {restarts}");
        }
        if unit.failed {
            println!(
                "  it failed: read the logs, fix the cause, then `nanoclaw service install` again"
            );
        }
    }
    match &status.daemon {
        Some(holder) => println!(
            "Daemon: running (pid {}, since {}), data dir {}",
            holder.pid,
            holder.since,
            ctx.paths.data.display()
        ),
        None => println!(
            "Daemon: not running for the data dir {}",
            ctx.paths.data.display()
        ),
    }
    Ok(if status.healthy() {
        Status::Ok
    } else {
        Status::Error
    })
}
