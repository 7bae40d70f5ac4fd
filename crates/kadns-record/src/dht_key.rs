//! Where a bundle lives in the DHT.

use core::fmt;

use sha2::{Digest, Sha256};

use crate::key::ZoneId;
use crate::owner::OwnerName;

/// Domain-separation tag hashed in front of every DHT key.
pub const DHT_KEY_TAG: &[u8] = b"kadns-dht-key-v1\0";

/// The DHT key of one owner name in one zone:
/// `SHA-256(DHT_KEY_TAG || zone public key || canonical owner name)`.
///
/// A storage node learns neither the zone nor the name from it.
///
/// ```
/// use kadns_record::{DhtKey, OwnerName, ZoneKey};
///
/// let zone = ZoneKey::from_seed([5; 32]).zone_id();
/// let www = OwnerName::from_labels([b"www".as_slice()]).unwrap();
/// let key = DhtKey::derive(&zone, &www);
/// assert_ne!(key, DhtKey::derive(&zone, &OwnerName::apex()));
/// assert_eq!(key.to_string().len(), 64);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DhtKey([u8; 32]);

impl DhtKey {
    /// Derives the key for `owner` in `zone`.
    pub fn derive(zone: &ZoneId, owner: &OwnerName) -> Self {
        let mut hash = Sha256::new();
        hash.update(DHT_KEY_TAG);
        hash.update(zone.as_bytes());
        hash.update(owner.wire());
        Self(hash.finalize().into())
    }

    /// Wraps 32 bytes read from elsewhere (a DHT record key).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads a key from a byte slice; `None` unless it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The 32 key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for DhtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for DhtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DhtKey({self})")
    }
}
