//! Plans: diff desired vs. current state, classify each change by the effect table, render.
//! (Being built: only the effect table exists so far.)

pub mod effect;
