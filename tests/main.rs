//! The single end-to-end test binary: runs the real `nanoclaw` binary on temp dirs, real
//! SQLite files and (where needed) a real Docker daemon. Area modules below; the harness is in
//! `support/`.

mod support;

mod chat;
mod claude_code;
mod containers;
mod credentials;
mod daemon;
mod delivery;
mod fake_api;
mod images;
mod manifests;
mod plan_apply;
mod recovery;
mod runner;
mod runtime;
mod session_files;
mod telegram;
mod tidy;
