//! Integration tests of the `kadns` binary, run as a user runs it. Tests that
//! load the machine (floods, thousands of connections) are in `tests/load`.

mod answer_cache;
mod e2e_churn;
mod e2e_deadline;
mod e2e_demo;
mod e2e_encrypted;
mod e2e_flags;
mod e2e_forward;
mod e2e_glibc;
mod e2e_keepalive;
mod e2e_malformed;
mod e2e_metrics;
mod e2e_network;
mod e2e_ops;
mod e2e_stale;
mod e2e_support;
mod e2e_update;
mod e2e_upstream;
mod e2e_zonefile;
mod key;
mod publish;
mod stub;
mod support;
mod zone;
