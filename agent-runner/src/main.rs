//! Entry point of the in-container runner.
fn main() {}
