//! Integration tests of the `kadns` binary, run as a user runs it.

mod e2e_churn;
mod e2e_demo;
mod e2e_glibc;
mod e2e_malformed;
mod e2e_metrics;
mod e2e_network;
mod e2e_support;
mod e2e_update;
mod e2e_upstream;
mod key;
mod publish;
mod stub;
mod support;
mod zone;
