//! The in-container agent runner. `session_db` is also imported by the host.
pub mod session_db;
