//! Session DB protocol.
