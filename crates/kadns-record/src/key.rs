//! Zone keys: the signing key a zone owner holds, and the zone id everyone else
//! knows it by.

use core::fmt;
use core::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hickory_proto::rr::Name;

use crate::error::ZoneIdError;
use crate::zbase32;

/// Length of a zone id in characters: 32 bytes of public key in z-base-32.
pub const ZONE_ID_LEN: usize = 52;

/// A zone's public identity: its ed25519 public key.
///
/// Written as 52 characters of z-base-32, which is also a valid DNS label, so
/// `www.<zone-id>` is a name that says which key must have signed its answer.
///
/// ```
/// use kadns_record::{ZoneId, ZoneKey};
///
/// let key = ZoneKey::from_seed([7; 32]);
/// let id = key.zone_id();
/// let text = id.to_string();
/// assert_eq!(text.len(), 52);
/// assert_eq!(text.parse::<ZoneId>().unwrap(), id);
/// // Zone ids are DNS labels, so they compare case-insensitively.
/// assert_eq!(text.to_uppercase().parse::<ZoneId>().unwrap(), id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ZoneId(VerifyingKey);

impl ZoneId {
    /// Reads a zone id from its 32 public-key bytes.
    ///
    /// Refuses byte strings that are not a point on the curve, and the weak
    /// (small-order) keys that `verify_strict` would never accept a signature from.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, ZoneIdError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| ZoneIdError::NotAKey)?;
        if key.is_weak() {
            return Err(ZoneIdError::WeakKey);
        }
        Ok(Self(key))
    }

    /// The 32 public-key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The zone's self-certifying apex, `<zone-id>.`, as a DNS name.
    pub fn apex(&self) -> Name {
        // A zone id is 52 characters of a lower-case alphanumeric alphabet: a valid label.
        Name::from_labels([self.to_string().as_bytes()]).unwrap_or_else(|_| Name::root())
    }

    /// Verifies an ed25519 signature with RFC 8032's strict checks.
    pub(crate) fn verify_strict(&self, message: &[u8], signature: &Signature) -> bool {
        self.0.verify_strict(message, signature).is_ok()
    }
}

impl fmt::Display for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&zbase32::encode(self.as_bytes()))
    }
}

impl fmt::Debug for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZoneId({self})")
    }
}

impl FromStr for ZoneId {
    type Err = ZoneIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.len() != ZONE_ID_LEN {
            return Err(ZoneIdError::Length { len: text.len() });
        }
        let bytes = zbase32::decode::<32>(text).map_err(|e| match e {
            zbase32::Zbase32Error::Character(index) => ZoneIdError::Character { index },
            zbase32::Zbase32Error::Length => ZoneIdError::Length { len: text.len() },
            zbase32::Zbase32Error::Padding => ZoneIdError::Padding,
        })?;
        Self::from_bytes(&bytes)
    }
}

/// A zone's ed25519 signing key. Whoever holds it answers for the zone.
///
/// `Debug` never prints the key.
///
/// ```
/// use kadns_record::ZoneKey;
///
/// let key = ZoneKey::from_seed([1; 32]);
/// assert!(!format!("{key:?}").contains("0101"));
/// assert_eq!(key.seed(), &[1; 32]);
/// ```
#[derive(Clone)]
pub struct ZoneKey(SigningKey);

impl ZoneKey {
    /// Builds the key from its 32-byte secret seed (RFC 8032).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// The 32-byte secret seed, for a keystore to write. Handle with care.
    pub fn seed(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The zone id this key signs for.
    pub fn zone_id(&self) -> ZoneId {
        ZoneId(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.0.sign(message)
    }
}

impl fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ZoneKey {{ zone: {}, secret: <redacted> }}",
            self.zone_id()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_are_specific() {
        let id = ZoneKey::from_seed([9; 32]).zone_id().to_string();
        assert_eq!("abc".parse::<ZoneId>(), Err(ZoneIdError::Length { len: 3 }));
        let bad = format!("{}l{}", &id[..10], &id[11..]);
        assert_eq!(
            bad.parse::<ZoneId>(),
            Err(ZoneIdError::Character { index: 10 })
        );
        assert_eq!(
            format!("{id}.").parse::<ZoneId>().map(|z| z.to_string()),
            Ok(id)
        );
        // All-zero bytes decode to the identity point: a weak key.
        assert_eq!("y".repeat(52).parse::<ZoneId>(), Err(ZoneIdError::WeakKey));
    }

    #[test]
    fn apex_is_one_label() {
        let id = ZoneKey::from_seed([3; 32]).zone_id();
        let apex = id.apex();
        assert_eq!(apex.num_labels(), 1);
        assert!(apex.is_fqdn());
        assert_eq!(apex.to_ascii(), format!("{id}."));
    }
}
