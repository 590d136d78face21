//! The single end-to-end test binary: runs the real `nanoclaw` binary on temp dirs, real
//! SQLite files and (where needed) a real Docker daemon. Area modules below; the harness is in
//! `support/`.

mod support;

mod containers;
mod delivery;
mod manifests;
mod plan_apply;
mod recovery;
mod runtime;
mod tidy;
