//! Providing the per-agent images of a configuration (docs/containers.md#agent-images): for every
//! agent with packages, its image is reused or built (`containers::agent_image::ensure`), the
//! outcome recorded in the central DB (`db::agent_images`, which `status` reads), and a failed
//! build leaves the agent on its previous per-agent image (or its provider's image when it never
//! had one), running. Old per-agent images of this install are pruned afterwards.
//!
//! `nanoclaw run` (before it starts) and `nanoclaw image build` call [`provide`]; a running
//! daemon rebuilds an agent's image after an apply through `runtime::builds`, which holds the
//! one-agent step ([`provide_one`]) both share. Nothing here prints: build output goes to the
//! caller's `progress`.

use std::collections::{BTreeMap, BTreeSet};

use super::OpsError;
use crate::containers::agent_image::BuildFailure;
use crate::containers::{AgentImages, BuildProgress, Docker};
use crate::db;
use crate::paths::Paths;
use crate::runtime::builds;
use crate::state::Agent;

pub use crate::runtime::builds::{Outcome, base_of, has_packages};

/// What [`provide`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provided {
    /// Agent → the image it runs (for [`AgentImages::per_agent`]).
    pub per_agent: BTreeMap<String, String>,
    /// Agents whose image was built now, with its tag.
    pub built: Vec<(String, String)>,
    /// Failed builds (recorded in the DB); each agent keeps the image in `per_agent`, if any.
    pub failures: Vec<BuildFailure>,
    /// Old per-agent images removed.
    pub pruned: Vec<String>,
}

/// Provides the per-agent image of every agent in `agents` with packages, forgets the rows of
/// agents without, then prunes this install's other per-agent images (never one the central DB
/// records or a container uses, never another install's).
pub async fn provide(
    paths: &Paths,
    docker: &Docker,
    images: &AgentImages,
    agents: &[&Agent],
    progress: &mut dyn FnMut(&str, BuildProgress),
) -> Result<Provided, OpsError> {
    let mut provided = Provided::default();
    for agent in agents {
        if !has_packages(agent) {
            let conn = open(paths)?;
            db::agent_images::forget(&conn, &agent.name)?;
            continue;
        }
        match provide_one(paths, docker, images, agent, progress).await? {
            Outcome::Ready { tag, built } => {
                if built {
                    provided.built.push((agent.name.clone(), tag.clone()));
                }
                provided.per_agent.insert(agent.name.clone(), tag);
            }
            Outcome::Failed { failure, kept } => {
                if let Some(kept) = kept {
                    provided.per_agent.insert(agent.name.clone(), kept);
                }
                provided.failures.push(failure);
            }
        }
    }
    // The images the central DB records are kept too: a running daemon's agents use them.
    let keep: BTreeSet<String> = provided.per_agent.values().cloned().collect();
    provided.pruned = builds::prune(paths, docker, &keep).await;
    Ok(provided)
}

/// Provides one agent's per-agent image and records the outcome
/// ([`crate::runtime::builds::provide_one`], which the daemon's builder calls too). A failed
/// build is an [`Outcome::Failed`], not an error: only the DB failing is.
pub async fn provide_one(
    paths: &Paths,
    docker: &Docker,
    images: &AgentImages,
    agent: &Agent,
    progress: &mut dyn FnMut(&str, BuildProgress),
) -> Result<Outcome, OpsError> {
    builds::provide_one(paths, docker, images, agent, |name: &str, event| {
        progress(name, event)
    })
    .await
    .map_err(|source| OpsError::Open {
        path: paths.db(),
        source,
    })
}

fn open(paths: &Paths) -> Result<rusqlite::Connection, OpsError> {
    let path = paths.db();
    db::open(&path).map_err(|source| OpsError::Open { path, source })
}
