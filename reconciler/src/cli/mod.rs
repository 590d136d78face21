//! Command-line interface: the clap types, dispatch, and the one place that prints.
//!
//! Each subcommand lives in its own file with its `Args` (help text and an example) and
//! `run(args, ctx) -> anyhow::Result<Status>`. Library code returns values and `String`s;
//! only this folder writes to stdout/stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

/// `eprintln!` that cannot panic: text for the person at the terminal (progress, the plan `run`
/// applies, errors) goes to stderr, and a closed or broken stderr drops it instead of panicking
/// (a dead `tee` must not take `nanoclaw run` down).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($crate::logging::stderr(), $($arg)*);
    }};
}

pub mod adopt;
pub mod apply;
pub mod auth;
pub mod chat;
pub mod completions;
pub mod doctor;
pub mod export;
pub mod history;
pub mod image;
pub mod import;
pub mod pair;
pub mod plan;
pub mod restart;
pub mod run;
pub mod schema;
pub mod service;
pub mod status;
pub mod validate;
pub mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::env;
use crate::logging::LogFormat;
use crate::paths::Paths;

const AFTER_HELP: &str = "\
Manifests are YAML files under a directory (default `manifests/`); see docs/manifests.md.
State (central DB, sessions, sockets) lives in --data DIR.

Examples:
  nanoclaw validate                 check manifests/ and list every error
  nanoclaw plan                     show what apply would change
  nanoclaw apply --yes              make the DB match the manifests
  nanoclaw run                      apply, then start the runtime (channels, router, containers)
  nanoclaw chat                     talk to the agent wired to the CLI channel
  nanoclaw auth set anthropic       store the API key agents use (read from stdin, never shown)
  nanoclaw pair telegram            a one-time code that makes its sender the owner";

/// Declarative personal AI agents in Docker containers, wired to chat channels.
#[derive(Debug, Parser)]
#[command(name = "nanoclaw", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// State directory: central DB, session folders, sockets.
    /// Default: $XDG_STATE_HOME/nanoclaw or ~/.local/state/nanoclaw.
    #[arg(long, global = true, value_name = "DIR", env = env::NANOCLAW_DATA_DIR)]
    pub data: Option<PathBuf>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// When to colour output: auto (terminal and NO_COLOR unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Validate(validate::ValidateArgs),
    Plan(plan::PlanArgs),
    Apply(apply::ApplyArgs),
    History(history::HistoryArgs),
    Export(export::ExportArgs),
    Schema(schema::SchemaArgs),
    Run(run::RunArgs),
    Watch(watch::WatchArgs),
    Restart(restart::RestartArgs),
    Status(status::StatusArgs),
    Chat(chat::ChatArgs),
    Image(image::ImageArgs),
    Import(import::ImportArgs),
    Service(service::ServiceArgs),
    Doctor(doctor::DoctorArgs),
    Completions(completions::CompletionsArgs),
    Auth(auth::AuthArgs),
    Pair(pair::PairArgs),
    Adopt(adopt::AdoptArgs),
}

/// What a command reports to the shell. Converted to an exit code once, in `main`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 0: success (or, with `--detailed-exitcode`, no changes).
    Ok,
    /// 1: the input is invalid (diagnostics were printed).
    Invalid,
    /// 1: the command failed.
    Error,
    /// 2: with `--detailed-exitcode`, the plan has changes.
    Changes,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        match status {
            Status::Ok => ExitCode::SUCCESS,
            Status::Invalid | Status::Error => ExitCode::from(1),
            Status::Changes => ExitCode::from(2),
        }
    }
}

/// Resolved global context handed to every command.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub paths: Paths,
    /// Colour stdout: `--color always`, or `auto` on a terminal without `NO_COLOR`.
    pub color: bool,
    /// Colour stderr (diagnostics, build progress), decided the same way for stderr.
    pub color_stderr: bool,
    pub log_format: LogFormat,
}

impl Ctx {
    pub fn from_global(global: &GlobalArgs) -> Ctx {
        let data = global.data.clone().unwrap_or_else(Paths::default_data_dir);
        Ctx {
            paths: Paths::new(data),
            color: wants_color(global.color, &std::io::stdout()),
            color_stderr: wants_color(global.color, &std::io::stderr()),
            log_format: global.log_format,
        }
    }
}

/// `--color` for one stream: `always` and `never` as said; `auto` asks anstream, which colours
/// a terminal unless `NO_COLOR` (or `CLICOLOR=0`, `TERM=dumb`) says not to. Every coloured
/// output (plan, validate, image) follows this one decision.
fn wants_color<S: anstream::stream::RawStream>(choice: ColorChoice, stream: &S) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            env::get(env::NO_COLOR).is_none()
                && anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never
        }
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<Status> {
    let ctx = Ctx::from_global(&cli.global);
    match cli.command {
        Command::Validate(args) => validate::run(args, &ctx),
        Command::Plan(args) => plan::run(args, &ctx),
        Command::Apply(args) => apply::run(args, &ctx),
        Command::History(args) => history::run(args, &ctx),
        Command::Export(args) => export::run(args, &ctx),
        Command::Schema(args) => schema::run(args, &ctx),
        Command::Run(args) => run::run(args, &ctx),
        Command::Watch(args) => watch::run(args, &ctx),
        Command::Restart(args) => restart::run(args, &ctx),
        Command::Status(args) => status::run(args, &ctx),
        Command::Chat(args) => chat::run(args, &ctx),
        Command::Image(args) => image::run(args, &ctx),
        Command::Import(args) => import::run(args, &ctx),
        Command::Service(args) => service::run(args, &ctx),
        Command::Doctor(args) => doctor::run(args, &ctx),
        Command::Completions(args) => completions::run(args, &ctx),
        Command::Auth(args) => auth::run(args, &ctx),
        Command::Pair(args) => pair::run(args, &ctx),
        Command::Adopt(args) => adopt::run(args, &ctx),
    }
}

/// Prints an error and its causes as `error: …` lines; returns exit code 1. A broken stderr
/// loses the text but never turns the exit into a panic.
pub fn report(err: &anyhow::Error) -> ExitCode {
    say!("error: {err}");
    for cause in err.chain().skip(1) {
        say!("  caused by: {cause}");
    }
    ExitCode::from(1)
}
