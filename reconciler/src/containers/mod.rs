//! containers (being built).
