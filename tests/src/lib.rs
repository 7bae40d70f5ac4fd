//! Test harness for kadns.
//!
//! - [`client`]: send one DNS query over UDP or TCP and read the answer, with
//!   hickory-proto's message types.
//! - [`upstream`]: a small DNS server on loopback that plays "the ordinary
//!   DNS" for forwarding tests.
//! - [`encrypted_upstream`]: a DoT and DoH upstream on loopback, fixed records.
//! - [`dig`]: run the real `dig`, when installed (CI installs it).
//! - [`kdig`]: run the real `kdig` over DoT and DoH, when installed.
//! - [`tls`]: a throw-away CA and server certificate for DoT and DoH tests.
//! - [`net`]: a [`net::TestNet`] of in-process DHT server nodes on loopback.
//!
//! Everything talks only to loopback addresses, and every wait has a deadline.
#![allow(clippy::unwrap_used)]

pub mod client;
pub mod dig;
pub mod encrypted_upstream;
pub mod hostile;
pub mod kdig;
pub mod net;
pub mod process;
pub mod tls;
pub mod upstream;

/// Errors in tests are reported, not handled.
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
