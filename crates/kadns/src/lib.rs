//! kadns: DNS served from a Kademlia DHT.
//!
//! This crate is the `kadns` binary's library side: the DNS stub that
//! `/etc/resolv.conf` points at. [`Stub`] binds UDP and TCP sockets and answers
//! every query through a [`kadns_resolver::Resolver`]: names in kadns zones from
//! verified signed records, every other name through the upstream DNS.
//!
//! ```no_run
//! use kadns::{Stub, StubConfig};
//! use kadns_resolver::{Config, MemorySource, Resolver};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let resolver = Resolver::builder(Config::default(), MemorySource::new()).build()?;
//! let mut config = StubConfig::default();
//! config.listen = vec!["127.0.0.1:5353".parse()?];
//! let stub = Stub::bind(&config, resolver).await?;
//! println!("answering on {:?}", stub.udp_addrs());
//! stub.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod answer_cache;
mod client_policy;
pub mod control;
mod flags;
mod handler;
mod metrics;
mod metrics_server;
mod nofile;
mod notify;
mod publish_task;
mod recent_errors;
mod serve_config;
pub mod server;
mod service;
mod stub;
mod stub_config;
mod supervise;
mod truncation;

pub use client_policy::{ClientPolicy, RateLimit};
pub use handler::StubHandler;
pub use metrics::{QueryLabels, StubMetrics};
pub use nofile::raise_nofile_limit;
pub use recent_errors::{RECENT_ERRORS, RecentError, RecentErrors, RecentErrorsLayer};
pub use serve_config::{
    ConfigError, DhtConfig, MIN_REPLICATION_INTERVAL, MetricsConfig, P2pConfig, PublishConfig,
    ServeConfig, default_data_dir,
};
pub use server::tls_config::{ALPN_DOH, ALPN_DOT, TlsConfigError, TlsIdentity};
pub use service::run::{ConfigLoader, JOIN_WAIT, ServiceFailure};
pub use service::{Service, ServiceError, TEST_HOOKS_ENV};
pub use stub::{Stub, StubError};
pub use stub_config::{DEFAULT_MAX_UDP_PAYLOAD, StubConfig};
pub use supervise::Part;
