//! Saved plans (`plan --out FILE`, `apply --plan FILE`): the plan's JSON plus what apply needs to
//! execute it exactly — the full desired state, the diff options — and what pins it: the DB
//! generation, the manifest digest and a digest of the current DB configuration.
//!
//! [`check`] refuses a stale plan and says what changed. Reads and writes only the plan file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Current, Options, Plan, digest_of, json};
use crate::state::State;

/// The file format: the plan JSON's fields plus `desired`, `options` and `current_digest`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    pub generation: i64,
    pub manifest_digest: String,
    pub current_digest: String,
    pub options: Options,
    #[serde(flatten)]
    pub plan: serde_json::Map<String, Value>,
    pub desired: State,
}

#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("reading saved plan `{path}`")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{path}` is not a saved plan: save one with `nanoclaw plan --out FILE` (the output of \
         `plan --json` cannot be applied)"
    )]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("saved plan `{path}` has format version {found}, this nanoclaw reads {expected}")]
    Version {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("writing saved plan `{path}`")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("saved plan `{path}` is stale: {why}")]
    Stale { path: PathBuf, why: String },
}

impl SavedPlan {
    pub fn new(
        plan: &Plan,
        desired: &State,
        current: &Current,
        manifest_digest: &str,
        options: Options,
    ) -> SavedPlan {
        let mut body = match json::to_json(plan, manifest_digest) {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        for key in ["format_version", "generation", "manifest_digest"] {
            body.remove(key);
        }
        SavedPlan {
            format_version: json::FORMAT_VERSION,
            generation: plan.generation,
            manifest_digest: manifest_digest.to_string(),
            current_digest: digest_of(current),
            options,
            plan: body,
            desired: desired.clone(),
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), SavedError> {
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        std::fs::write(path, text + "\n").map_err(|source| SavedError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn read(path: &Path) -> Result<SavedPlan, SavedError> {
        let text = std::fs::read_to_string(path).map_err(|source| SavedError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let saved: SavedPlan = serde_json::from_str(&text).map_err(|source| SavedError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        if saved.format_version != json::FORMAT_VERSION {
            return Err(SavedError::Version {
                path: path.to_path_buf(),
                found: saved.format_version,
                expected: json::FORMAT_VERSION,
            });
        }
        Ok(saved)
    }

    /// Refuses the plan when the DB generation, the manifests or the DB configuration changed
    /// since it was computed, or when its desired state is not what the manifests (`desired`,
    /// loaded and validated now) declare: a hand-edited file must not bypass validation.
    pub fn check(
        &self,
        path: &Path,
        current: &Current,
        manifest_digest: &str,
        desired: &State,
    ) -> Result<(), SavedError> {
        let stale = |why: String| SavedError::Stale {
            path: path.to_path_buf(),
            why,
        };
        if current.generation != self.generation {
            return Err(stale(format!(
                "the DB is at generation {}, the plan was made at generation {}",
                current.generation, self.generation
            )));
        }
        if manifest_digest != self.manifest_digest {
            return Err(stale(format!(
                "the manifests changed since the plan was made (digest {} → {})",
                short(&self.manifest_digest),
                short(manifest_digest)
            )));
        }
        if digest_of(current) != self.current_digest {
            return Err(stale(
                "the DB configuration changed since the plan was made (an edit outside apply)"
                    .to_string(),
            ));
        }
        if &self.desired != desired {
            let differ: Vec<String> = self
                .desired
                .resources
                .iter()
                .filter(|(address, resource)| desired.get(address) != Some(*resource))
                .map(|(address, _)| address)
                .chain(
                    desired
                        .resources
                        .keys()
                        .filter(|address| self.desired.get(address).is_none()),
                )
                .map(ToString::to_string)
                .collect();
            return Err(stale(format!(
                "its resources do not match what the manifests declare ({}); was the file \
                 edited? Run `nanoclaw plan --out` again",
                differ.join(", ")
            )));
        }
        Ok(())
    }
}

/// The first 12 characters of a digest.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{diff, fixture};
    use crate::state::{Resource, User};

    fn saved(current: &Current) -> (tempfile::TempDir, PathBuf, SavedPlan) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let desired = fixture::state();
        let plan = diff(&desired, current);
        SavedPlan::new(&plan, &desired, current, "digest-1", Options::default())
            .write(&path)
            .unwrap();
        let read = SavedPlan::read(&path).unwrap();
        (dir, path, read)
    }

    #[test]
    fn a_fresh_plan_round_trips_and_passes() {
        let current = Current::default();
        let (_dir, path, read) = saved(&current);
        assert_eq!(read.desired, fixture::state());
        assert_eq!(read.plan["summary"]["add"], 8);
        read.check(&path, &current, "digest-1", &fixture::state())
            .unwrap();
    }

    #[test]
    fn plan_json_output_is_not_mistaken_for_a_saved_plan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let plan = diff(&fixture::state(), &Current::default());
        let json = json::to_json(&plan, "digest-1").to_string();
        std::fs::write(&path, json).unwrap();
        let err = SavedPlan::read(&path).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "is not a saved plan: save one with `nanoclaw plan --out FILE` \
                 (the output of `plan --json` cannot be applied)"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_plan_whose_desired_state_was_edited_is_refused() {
        let current = Current::default();
        let (_dir, path, mut read) = saved(&current);
        let manifests = fixture::state();
        read.desired.insert(Resource::User(User {
            id: "cli:mallory".into(),
            display_name: None,
        }));
        let err = read
            .check(&path, &current, "digest-1", &manifests)
            .unwrap_err()
            .to_string()
            .replace(&path.display().to_string(), "PLAN");
        assert_eq!(
            err,
            "saved plan `PLAN` is stale: its resources do not match what the manifests declare \
             (user.cli:mallory); was the file edited? Run `nanoclaw plan --out` again"
        );
    }

    #[test]
    fn stale_plans_say_what_changed() {
        let current = Current::default();
        let (_dir, path, read) = saved(&current);
        let why = |current: &Current, digest: &str| {
            read.check(&path, current, digest, &fixture::state())
                .unwrap_err()
                .to_string()
                .replace(&path.display().to_string(), "PLAN")
        };
        let newer = Current {
            generation: 3,
            ..Current::default()
        };
        assert_eq!(
            why(&newer, "digest-1"),
            "saved plan `PLAN` is stale: the DB is at generation 3, the plan was made at generation 0"
        );
        assert_eq!(
            why(&current, "digest-2"),
            "saved plan `PLAN` is stale: the manifests changed since the plan was made (digest digest-1 → digest-2)"
        );
        let mut edited = Current::default();
        edited.state.insert(Resource::User(User {
            id: "cli:x".into(),
            display_name: None,
        }));
        assert_eq!(
            why(&edited, "digest-1"),
            "saved plan `PLAN` is stale: the DB configuration changed since the plan was made (an edit outside apply)"
        );
    }
}
