//! channels (being built).
