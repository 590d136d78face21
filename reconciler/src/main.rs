//! The `nanoclaw` binary: parse arguments, start logging, run the command, map to an exit code.

use std::process::ExitCode;

use clap::Parser;
use reconciler::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    reconciler::logging::init(cli.global.log_format);
    match cli::run(cli) {
        Ok(status) => status.into(),
        Err(err) => cli::report(&err),
    }
}
