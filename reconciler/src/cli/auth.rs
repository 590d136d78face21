//! `nanoclaw auth set|status|remove anthropic|telegram`: the credential the credential proxy
//! lends to agents (`credentials::Store`) and the Telegram bot token (`credentials::TokenStore`).
//! The secret is read from stdin (without echo on a terminal), stored 0600 in the data dir, and
//! never printed: `status` names only its kind and source.

use std::io::{BufRead, IsTerminal, Read};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

use super::{Ctx, Status};
use crate::credentials::{self, Credential, CredentialError, Kind, Secret, Store, TokenStore};
use crate::env;

/// Manage the credentials agents use without ever seeing them.
///
/// The credential stays on the host: containers reach the API through the credential proxy with
/// a placeholder key (docs/security.md#credentials). A stored credential wins over the
/// daemon's `ANTHROPIC_API_KEY` / `CLAUDE_CODE_OAUTH_TOKEN`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct AuthArgs {
    #[command(subcommand)]
    pub command: AuthCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Store a credential read from stdin (one line; on a terminal it is not echoed).
    Set(SetArgs),
    /// Show which kind of credential is in force and where it comes from (never its value).
    Status(StatusArgs),
    /// Delete the stored credential.
    Remove(RemoveArgs),
}

/// The service a credential is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Service {
    /// Anthropic's API (Claude Code in the agents).
    Anthropic,
    /// The Telegram bot the `telegram` channel speaks as (its token from BotFather).
    Telegram,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    pub service: Service,
    /// What the Anthropic secret is; default: recognised by its prefix (`sk-ant-oat…` is an
    /// OAuth token, anything else an API key).
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// A Console API key, sent as `x-api-key`.
    ApiKey,
    /// A Claude subscription OAuth token (`claude setup-token`), sent as a bearer token.
    OauthToken,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub service: Option<Service>,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    pub service: Service,
}

const AFTER_HELP: &str = "\
Examples:
  nanoclaw auth set anthropic < key.txt      store an API key kept in a file
  nanoclaw auth set anthropic                paste it on the terminal (not echoed)
  nanoclaw auth set anthropic --kind oauth-token < token.txt
                                             a Claude subscription token (`claude setup-token`)
  nanoclaw auth set telegram < bot-token.txt the Telegram bot token from BotFather
  nanoclaw auth status                       which kind is set, and where from
  nanoclaw auth remove anthropic             delete the stored credential";

/// Longest secret accepted on stdin (real ones are about 110 characters).
const MAX_SECRET: u64 = 16 * 1024;

pub fn run(args: AuthArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let store = Store::new(&ctx.paths.data);
    let tokens = TokenStore::telegram(&ctx.paths.data);
    match args.command {
        AuthCommand::Set(args) if args.service == Service::Telegram => set_telegram(ctx, &tokens),
        AuthCommand::Set(args) => set(args, ctx, &store),
        AuthCommand::Status(StatusArgs {
            service: Some(Service::Telegram),
        }) => telegram_status(&tokens, true),
        AuthCommand::Status(_) => {
            let status = status(&store)?;
            telegram_status(&tokens, false)?;
            Ok(status)
        }
        AuthCommand::Remove(RemoveArgs {
            service: Service::Telegram,
        }) => remove_telegram(&tokens),
        AuthCommand::Remove(_) => remove(&store),
    }
}

fn set_telegram(ctx: &Ctx, tokens: &TokenStore) -> anyhow::Result<Status> {
    let token = read_secret(Service::Telegram)?;
    if !is_bot_token(&token) {
        bail!(
            "that is not a Telegram bot token\n\nhint: BotFather gives tokens like `123456789:AAF…` (digits, a colon, then letters, digits, `_` and `-`)"
        );
    }
    ctx.paths
        .ensure()
        .with_context(|| format!("creating {}", ctx.paths.data.display()))?;
    tokens.save(&Secret::new(token))?;
    println!(
        "stored the Telegram bot token in `{}` (readable only by you)",
        tokens.path().display()
    );
    println!("the `telegram` channel uses it from its next start (restart a running daemon)");
    Ok(Status::Ok)
}

/// `<bot id>:<secret>`, as BotFather hands them out.
fn is_bot_token(token: &str) -> bool {
    token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|byte| byte.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
    })
}

/// The Telegram line of `auth status`: always when asked for, else only when a token is set.
fn telegram_status(tokens: &TokenStore, asked: bool) -> anyhow::Result<Status> {
    let env_token = env::get(env::TELEGRAM_BOT_TOKEN).map(Secret::new);
    match tokens.resolve(env_token)? {
        Some((_, source)) => {
            println!("telegram: a bot token, {source}");
            Ok(Status::Ok)
        }
        None if asked => {
            println!("telegram: not set");
            say!("\nhint: run `nanoclaw auth set telegram` and paste the token BotFather gave you");
            Ok(Status::Error)
        }
        None => Ok(Status::Ok),
    }
}

fn remove_telegram(tokens: &TokenStore) -> anyhow::Result<Status> {
    if tokens.remove()? {
        println!("removed the stored Telegram bot token");
    } else {
        println!("no Telegram bot token was stored");
    }
    if env::get(env::TELEGRAM_BOT_TOKEN).is_some() {
        println!(
            "a daemon started with this environment still uses `{}`",
            env::TELEGRAM_BOT_TOKEN
        );
    }
    Ok(Status::Ok)
}

fn set(args: SetArgs, ctx: &Ctx, store: &Store) -> anyhow::Result<Status> {
    let secret = read_secret(Service::Anthropic)?;
    let kind = match args.kind {
        Some(KindArg::ApiKey) => Kind::ApiKey,
        Some(KindArg::OauthToken) => Kind::OauthToken,
        None => Kind::detect(&secret),
    };
    ctx.paths
        .ensure()
        .with_context(|| format!("creating {}", ctx.paths.data.display()))?;
    store.save(&Credential {
        kind,
        secret: Secret::new(secret),
    })?;
    println!(
        "stored {} for `anthropic` in `{}` (readable only by you)",
        kind.describe(),
        store.path().display()
    );
    println!("agents use it from their next request; a running daemon needs no restart");
    Ok(Status::Ok)
}

/// One line from stdin, without echo on a terminal; refused when empty or not a header-safe
/// token, with the fix.
fn read_secret(service: Service) -> anyhow::Result<String> {
    let (what, command, example) = match service {
        Service::Anthropic => (
            "the Anthropic API key or OAuth token",
            "anthropic",
            "the key itself (`sk-ant-…`)",
        ),
        Service::Telegram => (
            "the Telegram bot token from BotFather",
            "telegram",
            "the token itself (`123456789:AAF…`)",
        ),
    };
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let mut line = String::new();
    if terminal {
        say!("paste {what}, then press Enter (it is not shown):");
        let _echo = EchoOff::new();
        stdin.lock().read_line(&mut line).context("reading stdin")?;
        say!("");
    } else {
        stdin
            .lock()
            .take(MAX_SECRET)
            .read_to_string(&mut line)
            .context("reading the secret from stdin")?;
    }
    let secret = line.trim();
    if secret.is_empty() {
        bail!(
            "no secret on stdin\n\nhint: pipe it in, e.g. `nanoclaw auth set {command} < key.txt`, or run the command on a terminal and paste it"
        );
    }
    if !secret.bytes().all(|byte| byte.is_ascii_graphic()) {
        bail!(
            "the secret must be one line of printable characters without spaces\n\nhint: give only {example}, one per command"
        );
    }
    Ok(secret.to_string())
}

fn status(store: &Store) -> anyhow::Result<Status> {
    let env = credentials::from_env();
    match store.resolve(env.as_ref()) {
        Ok((credential, source)) => {
            println!("anthropic: {}, {source}", credential.kind.describe());
            if matches!(source, credentials::Source::Environment(_)) {
                println!(
                    "(this shell's environment; a daemon uses its own environment unless a credential is stored)"
                );
            }
            Ok(Status::Ok)
        }
        Err(CredentialError::Missing) => {
            println!("anthropic: not set");
            say!("\nhint: run `nanoclaw auth set anthropic` and paste the API key or OAuth token");
            Ok(Status::Error)
        }
        Err(err) => Err(err.into()),
    }
}

fn remove(store: &Store) -> anyhow::Result<Status> {
    if store.remove()? {
        println!("removed the stored credential for `anthropic`");
    } else {
        println!("no credential for `anthropic` was stored");
    }
    if let Some((_, source)) = credentials::from_env() {
        println!("a daemon started with this environment still uses the credential {source}");
    }
    Ok(Status::Ok)
}

/// Turns terminal echo off for its lifetime.
struct EchoOff {
    saved: Option<rustix::termios::Termios>,
}

impl EchoOff {
    fn new() -> EchoOff {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok();
        if let Some(saved) = &saved {
            let mut quiet = saved.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
        }
        EchoOff { saved }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}
