//! Integration tests of kadns-dht: many nodes in one process on 127.0.0.1,
//! plus the crash test with the `kadns-dht-node` binary.

mod support;

mod absence;
mod crash;
mod hostile;
mod put_get;
mod replication;
mod restart;
mod storage;
mod survivors;
