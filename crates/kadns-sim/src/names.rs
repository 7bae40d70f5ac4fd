//! The names a scenario publishes: one zone, `count` owner names, each with
//! a newest version (sequence 2, what the publisher puts) and the false
//! answers liars serve for it.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use kadns_dht::unix_now;
use kadns_record::hickory_proto::rr::{RData, rdata::A};
use kadns_record::{Bundle, DhtKey, OwnerName, Rr, SignedBundle, ZoneKey};

use crate::link::mix;
use crate::storage::{LieBook, Lies};

/// Why the scenario's names could not be built (a bug, not an input error).
#[derive(Debug, thiserror::Error)]
#[error("building simulated bundle {name}: {reason}")]
pub struct NameError {
    name: String,
    reason: String,
}

/// The published names and what each may legitimately resolve to.
#[derive(Debug)]
pub struct Names {
    /// The newest signed bundle per name, in publishing order.
    pub newest: Vec<SignedBundle>,
    /// Key → bytes of the newest version.
    pub newest_bytes: HashMap<DhtKey, Vec<u8>>,
    /// Key → bytes of the older (stale) version.
    pub stale_bytes: HashMap<DhtKey, Vec<u8>>,
    /// The lies liars tell.
    pub book: Arc<LieBook>,
}

/// What a returned bundle was, compared with what was published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The newest version.
    Fresh,
    /// A version older than the newest.
    Stale,
    /// Anything that was never published under this key.
    Wrong,
}

fn signed(
    key: &ZoneKey,
    label: &str,
    sequence: u64,
    expires: u64,
    ip: Ipv4Addr,
) -> Result<SignedBundle, NameError> {
    let err = |e: &dyn std::fmt::Display| NameError {
        name: label.to_owned(),
        reason: e.to_string(),
    };
    let owner = OwnerName::from_labels([label.as_bytes()]).map_err(|e| err(&e))?;
    let rr = Rr::new(300, &RData::A(A(ip))).map_err(|e| err(&e))?;
    Bundle::new(owner, sequence, expires, vec![rr])
        .map_err(|e| err(&e))?
        .sign(key)
        .map_err(|e| err(&e))
}

impl Names {
    /// `count` names in one zone whose key is drawn from `seed`.
    pub fn generate(count: usize, seed: u64) -> Result<Self, NameError> {
        let seed_bytes = |salt: u64| {
            let mut s = [0u8; 32];
            for (i, chunk) in s.chunks_mut(8).enumerate() {
                chunk.copy_from_slice(&mix(seed ^ salt ^ i as u64).to_be_bytes());
            }
            s
        };
        let zone = ZoneKey::from_seed(seed_bytes(0x2000));
        let attacker = ZoneKey::from_seed(seed_bytes(0x4000));
        let expires = unix_now() + 86_400;
        let mut names = Names {
            newest: Vec::with_capacity(count),
            newest_bytes: HashMap::new(),
            stale_bytes: HashMap::new(),
            book: Arc::default(),
        };
        let mut book = LieBook::default();
        for i in 0..count {
            let label = format!("n{i}");
            let last = (i % 250) as u8;
            let newest = signed(&zone, &label, 2, expires, Ipv4Addr::new(192, 0, 2, last))?;
            let stale = signed(&zone, &label, 1, expires, Ipv4Addr::new(198, 51, 100, last))?;
            let mut forged = signed(
                &zone,
                &label,
                1_000,
                expires,
                Ipv4Addr::new(192, 0, 2, last),
            )?
            .into_bytes();
            // The A record's four address bytes sit just before the
            // 64-byte signature: change them after signing.
            let at = forged.len() - 64 - 4;
            forged[at..at + 4].copy_from_slice(&[203, 0, 113, last]);
            let wrong = signed(
                &attacker,
                &label,
                1_000,
                expires,
                Ipv4Addr::new(203, 0, 113, last),
            )?;
            let key = newest.dht_key();
            names.newest_bytes.insert(key, newest.as_bytes().to_vec());
            names.stale_bytes.insert(key, stale.as_bytes().to_vec());
            book.lies.insert(
                key,
                Lies {
                    expires,
                    stale: stale.into_bytes(),
                    forged,
                    wrong_key: wrong.into_bytes(),
                },
            );
            names.newest.push(newest);
        }
        names.book = Arc::new(book);
        Ok(names)
    }

    /// Judges the bundle bytes a lookup of `key` returned.
    pub fn verdict(&self, key: &DhtKey, bytes: &[u8]) -> Verdict {
        if self.newest_bytes.get(key).is_some_and(|b| b == bytes) {
            Verdict::Fresh
        } else if self.stale_bytes.get(key).is_some_and(|b| b == bytes) {
            Verdict::Stale
        } else {
            Verdict::Wrong
        }
    }
}
