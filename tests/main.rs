//! The single end-to-end test binary: runs the real `nanoclaw` binary on temp dirs, real
//! SQLite files and (where needed) a real Docker daemon. Area modules below; the harness is in
//! `support/`.

mod support;

mod agent_env;
mod agent_images;
mod approvals;
mod capstone;
mod chat;
mod claude_agent;
mod claude_code;
mod color;
mod containers;
mod credentials;
mod daemon;
mod delivery;
mod doctor;
mod executor;
mod fake_api;
mod images;
mod import;
mod logs;
mod manifests;
mod multi_install;
mod plan_apply;
mod questions;
mod recovery;
mod runner;
mod runtime;
mod self_modify;
mod service;
mod session_files;
mod telegram;
mod tidy;
mod tools;
mod watch;
