//! `nanoclaw completions SHELL`: shell completion scripts generated from the clap definition.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Ctx, Status};

/// Print a shell completion script to stdout.
///
/// Example: `nanoclaw completions bash > ~/.local/share/bash-completion/completions/nanoclaw`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to generate completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs, _ctx: &Ctx) -> anyhow::Result<Status> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "nanoclaw", &mut std::io::stdout());
    Ok(Status::Ok)
}
