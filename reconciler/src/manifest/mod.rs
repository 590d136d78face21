//! manifest (being built).
