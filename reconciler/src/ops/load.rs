//! Loading the manifests as this host sees them: every file under the folder, validated, with
//! each mount checked against this machine's mount policy (`<data>` and the allowlist).

use std::path::Path;

use super::OpsError;
use crate::manifest::{self, Diagnostic, Manifests};
use crate::mount_policy::Policy;
use crate::state::State;

/// Manifests loaded and validated: the desired state, its digest and the warnings.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub state: State,
    /// sha256 over the loaded files (pins saved plans, recorded in the history).
    pub digest: String,
    /// Problems that do not stop `plan`, `apply` or `run`; the caller shows them.
    pub warnings: Vec<Diagnostic>,
    /// Where each resource is declared.
    pub sources: std::collections::BTreeMap<crate::state::Address, manifest::Source>,
}

/// Validates `dir` with the mount policy of the install at `data`: the manifests, or every
/// diagnostic (warnings too) when any is an error.
pub fn validate(dir: &Path, data: &Path) -> Result<Manifests, Vec<Diagnostic>> {
    let policy = Policy::load(data);
    manifest::load_for_host(dir, &policy)
}

/// [`validate`], as the input of a plan or an apply: errors are [`OpsError::Invalid`].
pub fn load(dir: &Path, data: &Path) -> Result<Loaded, OpsError> {
    match validate(dir, data) {
        Ok(manifests) => Ok(Loaded {
            state: manifests.state,
            digest: manifests.digest,
            warnings: manifests.warnings,
            sources: manifests.sources,
        }),
        Err(diagnostics) => Err(OpsError::Invalid { diagnostics }),
    }
}
