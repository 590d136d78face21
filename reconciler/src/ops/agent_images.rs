//! Providing the per-agent images of a configuration (host.md §4.13): for every agent with
//! packages, its image is reused or built (`containers::agent_image::ensure`), the outcome
//! recorded in the central DB (`db::agent_images`, which `status` reads), and a failed build
//! leaves the agent on its previous per-agent image (or its provider's image when it never had
//! one), running. Old per-agent images of this install are pruned afterwards.
//!
//! `nanoclaw run` (before it starts) and `nanoclaw image build` call [`provide`]; the executor
//! that rebuilds a running agent's image after an apply calls [`provide_one`]. Nothing here
//! prints: build output goes to the caller's `progress` and to the logs.

use std::collections::{BTreeMap, BTreeSet};

use super::OpsError;
use crate::containers::agent_image::{self, BuildFailure};
use crate::containers::{AgentImages, BuildProgress, Docker, image_exists};
use crate::db;
use crate::paths::Paths;
use crate::state::Agent;

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

/// Which image one agent runs after [`provide_one`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its per-agent image, reused (`built` false) or built now.
    Ready { tag: String, built: bool },
    /// The build failed; the agent keeps `kept` (its previous per-agent image), or its
    /// provider's image when `None`.
    Failed {
        failure: BuildFailure,
        kept: Option<String>,
    },
}

/// True when the agent lists any package.
pub fn has_packages(agent: &Agent) -> bool {
    !agent.packages.apt.is_empty() || !agent.packages.npm.is_empty()
}

/// The image a per-agent image of `agent` starts from: its own `image`, else the production
/// image of this run ([`AgentImages::package_base`]).
pub fn base_of<'a>(agent: &'a Agent, images: &'a AgentImages) -> &'a str {
    agent
        .image
        .as_deref()
        .filter(|tag| !tag.trim().is_empty())
        .unwrap_or_else(|| images.package_base())
}

/// Provides the per-agent image of every agent in `agents` with packages, forgets the rows of
/// agents without, then prunes this install's other per-agent images (never one a container
/// uses, never another install's).
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
    let keep: BTreeSet<String> = provided.per_agent.values().cloned().collect();
    match agent_image::prune(docker, &paths.slug(), &keep).await {
        Ok(pruned) => provided.pruned = pruned,
        Err(err) => tracing::warn!(error = %err, "cannot prune old per-agent images"),
    }
    Ok(provided)
}

/// Provides one agent's per-agent image and records the outcome. A failed build is an
/// [`Outcome::Failed`], not an error: only the DB failing is.
pub async fn provide_one(
    paths: &Paths,
    docker: &Docker,
    images: &AgentImages,
    agent: &Agent,
    progress: &mut dyn FnMut(&str, BuildProgress),
) -> Result<Outcome, OpsError> {
    let base = base_of(agent, images);
    let result = agent_image::ensure(
        docker,
        &paths.slug(),
        &agent.name,
        base,
        &agent.packages,
        |event| progress(&agent.name, event),
    )
    .await;
    let conn = open(paths)?;
    match result {
        Ok(ensured) => {
            db::agent_images::record_built(&conn, &agent.name, &ensured.tag)?;
            Ok(Outcome::Ready {
                tag: ensured.tag,
                built: ensured.built,
            })
        }
        Err(failure) => {
            db::agent_images::record_failed(&conn, &agent.name, &failure.tag, &failure.message)?;
            let previous = db::agent_images::get(&conn, &agent.name)?.and_then(|row| row.tag);
            let kept = match previous {
                Some(tag) if image_exists(docker, &tag).await.unwrap_or(false) => Some(tag),
                _ => None,
            };
            tracing::warn!(
                agent = %agent.name,
                error = %failure.message,
                kept = kept.as_deref().unwrap_or("its provider's image"),
                "per-agent image build failed: the agent keeps its previous image"
            );
            Ok(Outcome::Failed { failure, kept })
        }
    }
}

fn open(paths: &Paths) -> Result<rusqlite::Connection, OpsError> {
    let path = paths.db();
    db::open(&path).map_err(|source| OpsError::Open { path, source })
}
