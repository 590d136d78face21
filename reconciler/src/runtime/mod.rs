//! The long-running runtime (`nanoclaw run`): channels → router → session inbound.db →
//! container → outbound.db → delivery → channels, plus the sweep. (Being built.)

pub mod ids;
pub mod route;
