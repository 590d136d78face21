//! The long-running runtime (`nanoclaw run`): channels → router → session inbound.db →
//! container → outbound.db → delivery → channels, plus the sweep. (Being built.)

pub mod delivery;
pub mod ids;
pub mod route;
pub mod router;
pub mod session;
pub mod sweep;
pub mod watch;
