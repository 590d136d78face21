//! The configuration rows of the central DB (agents and their container configs, chats,
//! wirings, users, roles, memberships, destinations, and each managed resource's last-applied
//! spec): the one module that reads and writes them.
//!
//! [`read`] turns every row into the typed [`Current`] that `plan` compares with the manifests;
//! [`agent`] reads one agent the same way, for the runtime at spawn. [`Writer`] maps each
//! resource to its rows inside an apply's transaction (the mirror of the reads). The row ↔
//! resource mapping lives only here; nothing here decides what to write (that is `plan`) or
//! when (that is `apply`).

mod read;
mod write;

use serde::{Deserialize, Serialize};

pub use self::read::{ProviderColumns, agent, provider_columns, read};
pub use self::write::Writer;
pub use crate::state::Current;
use crate::state::{Address, Mount};

/// A row that does not map to a resource.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading the central DB")]
    Db(#[from] rusqlite::Error),
    #[error("`{address}`: column `{column}` holds invalid JSON")]
    Json {
        address: Address,
        column: &'static str,
        source: serde_json::Error,
    },
    #[error("`{address}`: column `{column}` holds unknown value `{value}`")]
    Value {
        address: Address,
        column: &'static str,
        value: String,
    },
}

/// The `additional_mounts` JSON element (v2 shape, camelCase: docs/manifests.md).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountRow {
    pub host_path: String,
    #[serde(default)]
    pub container_path: Option<String>,
    #[serde(default)]
    pub readonly: Option<bool>,
}

impl From<&Mount> for MountRow {
    fn from(mount: &Mount) -> MountRow {
        MountRow {
            host_path: mount.host_path.clone(),
            container_path: Some(mount.container_path.clone()),
            readonly: Some(mount.readonly),
        }
    }
}
