//! Which transport each upstream exchange goes over: plain DNS (UDP, then
//! TCP), DNS over TLS or DNS over HTTPS, by the upstream's address. The
//! forwarder knows its servers by socket address; this table remembers the
//! encrypted ones and holds the DoT and DoH clients (built only when some
//! upstream needs them, so a plain setup never reads the trust store).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use hickory_proto::op::Message;

use crate::error::ForwardError;
use crate::exchange::{Response, exchange};
use crate::exchange_https::DohClient;
use crate::exchange_tls::{DotClient, TlsClientError};
use crate::upstream::Upstream;

/// The encrypted upstreams by address, and their clients.
#[derive(Debug, Default)]
pub(crate) struct Transports {
    encrypted: HashMap<SocketAddr, Upstream>,
    dot: Option<DotClient>,
    doh: Option<DohClient>,
}

impl Transports {
    /// The table for `servers` (every configured upstream, default and
    /// per-domain), trusting the system's roots and `ca`.
    pub(crate) fn new<'a>(
        servers: impl IntoIterator<Item = &'a Upstream>,
        ca: Option<&Path>,
    ) -> Result<Self, TlsClientError> {
        let encrypted: HashMap<SocketAddr, Upstream> = servers
            .into_iter()
            .filter(|u| !matches!(u, Upstream::Plain(_)))
            .map(|u| (u.addr(), u.clone()))
            .collect();
        let uses = |transport| encrypted.values().any(|u| u.transport() == transport);
        let dot = uses("tls").then(|| DotClient::new(ca)).transpose()?;
        let doh = uses("https").then(|| DohClient::new(ca)).transpose()?;
        Ok(Self {
            encrypted,
            dot,
            doh,
        })
    }

    /// One exchange with the upstream at `server`, over its transport. Not
    /// bounded in time (the caller's timeout is); safe to cancel.
    pub(crate) async fn exchange(
        &self,
        server: SocketAddr,
        query: &Message,
        bytes: &[u8],
    ) -> Result<Response, ForwardError> {
        match (self.encrypted.get(&server), &self.dot, &self.doh) {
            (Some(upstream @ Upstream::Tls { .. }), Some(dot), _) => {
                dot.exchange(upstream, query, bytes).await
            }
            (Some(upstream @ Upstream::Https { .. }), _, Some(doh)) => {
                doh.exchange(upstream, query, bytes).await
            }
            _ => exchange(server, query, bytes).await,
        }
    }
}
