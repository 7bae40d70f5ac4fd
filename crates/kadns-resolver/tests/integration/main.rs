//! Integration tests of kadns-resolver: one binary, one module per area.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used)]

mod cache;
mod cname;
mod negative;
mod records;
mod resilience;
mod routing;
mod support;
mod upstream;
mod verification;
mod wildcard;
