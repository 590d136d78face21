//! Startup cleanup: containers left behind by a previous run of THIS install.
//!
//! Selects by the `nanoclaw.install=<slug>` label only, so peer installs sharing the daemon are
//! never touched (host.md §4.3). Runs before the Runner tracks anything, so every match is an
//! orphan.

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptions;

use super::labels::install_filter;
use super::spawn::remove_quietly;
use super::{ContainerError, Docker};

/// Names of this install's containers (running or not).
pub async fn list_install(docker: &Docker, slug: &str) -> Result<Vec<String>, ContainerError> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_string(),
            vec![install_filter(slug)],
        )])),
        ..Default::default()
    };
    let containers = docker.client.list_containers(Some(options)).await?;
    Ok(containers
        .into_iter()
        .filter_map(|container| container.names?.into_iter().next())
        .map(|name| name.trim_start_matches('/').to_string())
        .collect())
}

/// The install slugs of every nanoclaw container on the daemon, with how many each has (for
/// `nanoclaw doctor`: other installs sharing this Docker daemon).
pub async fn installs(
    docker: &Docker,
) -> Result<std::collections::BTreeMap<String, usize>, ContainerError> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_string(),
            vec![super::labels::LABEL_INSTALL.to_string()],
        )])),
        ..Default::default()
    };
    let mut slugs = std::collections::BTreeMap::new();
    for container in docker.client.list_containers(Some(options)).await? {
        if let Some(slug) = container
            .labels
            .and_then(|labels| labels.get(super::labels::LABEL_INSTALL).cloned())
        {
            *slugs.entry(slug).or_insert(0) += 1;
        }
    }
    Ok(slugs)
}

/// Force-removes every container labelled with this install's slug; returns how many.
pub async fn remove_orphans(docker: &Docker, slug: &str) -> Result<usize, ContainerError> {
    let names = list_install(docker, slug).await?;
    for name in &names {
        tracing::info!(container = %name, "removing orphaned container");
        remove_quietly(docker, name).await?;
    }
    Ok(names.len())
}
