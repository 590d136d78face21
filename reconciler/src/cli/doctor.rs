//! `nanoclaw doctor [DIR] [--json]`: checks this install and explains each problem with its
//! fix (`ops::doctor`); exit 0 when all is well, 2 with warnings only, 1 with a failure.

use std::path::PathBuf;

use clap::Args;

use super::{Ctx, Status};
use crate::doctor::Outcome;
use crate::ops;

const AFTER_HELP: &str = "\
Checks, each with its fix: the data dir's permissions, free disk space, the manifests (valid,
and applied to the DB), Docker (reachable, API 1.41 or later), the agent images (present,
built by this version), credentials for every provider in use, channel tokens for every channel
type in use, the service (`nanoclaw service`), and other nanoclaw installs on this host (and
that none runs this data dir). Nothing is changed. See docs/service.md.

Exit code: 0 all ok, 2 warnings only, 1 at least one failure.

Examples:
  nanoclaw doctor
  nanoclaw doctor my-manifests --json | jq '.checks[] | select(.outcome != \"ok\")'";

/// Check this install and explain every problem with its fix.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct DoctorArgs {
    /// Manifest directory.
    #[arg(default_value = "manifests", value_name = "DIR")]
    pub dir: PathBuf,
    /// Print the findings as JSON (`{data_dir, slug, checks: [{id, outcome, summary, fix?}]}`).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DoctorArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    // The runner `nanoclaw run` would use, if there is one without building it: the images
    // are compared with it too.
    let runner = super::image::find_runner(None)
        .ok()
        .flatten()
        .and_then(|path| std::fs::read(path).ok())
        .map(|bytes| crate::containers::image::runner_digest(&bytes));
    let findings = ops::doctor::doctor(&ctx.paths, &args.dir, runner.as_deref());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        print!("{}", findings.render());
    }
    Ok(match findings.worst() {
        Outcome::Ok | Outcome::Skipped => Status::Ok,
        Outcome::Warn => Status::Changes,
        Outcome::Fail => Status::Error,
    })
}
