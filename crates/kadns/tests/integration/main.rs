//! Integration tests of the `kadns` binary, run as a user runs it.

mod e2e_demo;
mod e2e_glibc;
mod key;
mod publish;
mod stub;
mod support;
mod zone;
