//! Start-up: listen, add the bootstrap and saved peers, dial, bootstrap.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use libp2p::Multiaddr;
use libp2p::core::transport::ListenerId;
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::DialOpts;

use super::{EventLoop, is_ip, peer_of, routing_peers};
use crate::config::Config;
use crate::error::Error;

impl EventLoop {
    /// Starts listening on `config.listen`, adds the bootstrap and saved
    /// peers, dials them and starts a bootstrap. Returns once every listener
    /// reported an address.
    pub async fn start(&mut self, config: &Config) -> Result<(), Error> {
        let mut waiting: HashMap<ListenerId, Multiaddr> = HashMap::new();
        for addr in &config.listen {
            if !is_ip(addr) {
                return Err(Error::BadAddress {
                    addr: addr.clone(),
                    reason: "listen addresses must start with /ip4 or /ip6",
                });
            }
            let id = self
                .swarm
                .listen_on(addr.clone())
                .map_err(|e| Error::Listen {
                    addr: addr.clone(),
                    source: Arc::new(e),
                })?;
            waiting.insert(id, addr.clone());
        }
        let mut dials = Vec::new();
        for addr in &config.bootstrap {
            if !is_ip(addr) {
                return Err(Error::BadAddress {
                    addr: addr.clone(),
                    reason: "bootstrap addresses must be /ip4 or /ip6: kadns does not resolve names (docs/dht.md)",
                });
            }
            let Some(peer) = peer_of(addr) else {
                return Err(Error::BadAddress {
                    addr: addr.clone(),
                    reason: "bootstrap addresses must end in /p2p/<peer id>",
                });
            };
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
            dials.push((peer, vec![addr.clone()]));
        }
        let local = *self.swarm.local_peer_id();
        self.peers
            .load_saved(&mut self.swarm.behaviour_mut().kad, local, &mut dials);
        // Listen first: the identify message a peer gets when we dial it
        // carries our listen addresses, and a peer that got none has no
        // address to put us in its routing table under.
        while !waiting.is_empty() {
            let event = self.swarm.select_next_some().await;
            match &event {
                SwarmEvent::NewListenAddr { listener_id, .. } => {
                    waiting.remove(listener_id);
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    reason: Err(e),
                    ..
                } => {
                    if let Some(addr) = waiting.remove(listener_id) {
                        return Err(Error::Listen {
                            addr,
                            source: Arc::new(std::io::Error::new(e.kind(), e.to_string())),
                        });
                    }
                }
                SwarmEvent::ListenerError { listener_id, error } => {
                    if let Some(addr) = waiting.remove(listener_id) {
                        return Err(Error::Listen {
                            addr,
                            source: Arc::new(std::io::Error::new(error.kind(), error.to_string())),
                        });
                    }
                }
                _ => {}
            }
            self.on_swarm_event(event);
            self.commit_group();
        }
        for (peer, addrs) in dials {
            if let Err(e) = self
                .swarm
                .dial(DialOpts::peer_id(peer).addresses(addrs).build())
            {
                tracing::debug!(%peer, error = %e, "dial failed");
            }
        }
        // The join lookup: our own id, which fills the nearest buckets and
        // makes us known to our closest peers. libp2p's automatic bootstrap
        // (run when a peer enters a routing table of fewer than k) then walks
        // the farther buckets once, with a table already this full; an
        // explicit `bootstrap()` here would make that two walks per start.
        let kad = &mut self.swarm.behaviour_mut().kad;
        if routing_peers(kad).is_empty() {
            tracing::debug!("no known peers: starting alone");
        } else {
            kad.get_closest_peers(local);
        }
        Ok(())
    }
}
