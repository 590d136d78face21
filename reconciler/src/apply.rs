//! apply (being built).
