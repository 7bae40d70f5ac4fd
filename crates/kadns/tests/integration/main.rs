//! Integration tests of the `kadns` binary, run as a user runs it.

mod key;
mod stub;
mod support;
mod zone;
