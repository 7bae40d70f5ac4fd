//! Extended DNS Errors (RFC 8914): why an answer is what it is.

use crate::error::{ForwardError, LookupError};

/// Longest EXTRA-TEXT sent, in bytes: enough for a reason and a DHT key,
/// small enough to fit any response.
pub const MAX_EXTRA_TEXT: usize = 200;

/// One Extended DNS Error: an INFO-CODE from the IANA registry and an
/// EXTRA-TEXT for humans. The stub writes it as EDNS option 15 when the
/// client sent EDNS.
///
/// ```
/// use kadns_resolver::ExtendedError;
///
/// let ede = ExtendedError::new(ExtendedError::NO_REACHABLE_AUTHORITY, "no peers");
/// assert_eq!(ede.option_data(), b"\x00\x16no peers");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExtendedError {
    /// The INFO-CODE.
    pub code: u16,
    /// The EXTRA-TEXT, at most [`MAX_EXTRA_TEXT`] bytes of UTF-8.
    pub text: String,
}

impl ExtendedError {
    /// The EDNS option code of Extended DNS Errors.
    pub const OPTION_CODE: u16 = 15;
    /// 0: Other.
    pub const OTHER: u16 = 0;
    /// 3: Stale Answer.
    pub const STALE_ANSWER: u16 = 3;
    /// 6: DNSSEC Bogus (here: the bundles found are forged, misplaced,
    /// malformed or a rollback).
    pub const BOGUS: u16 = 6;
    /// 7: Signature Expired.
    pub const SIGNATURE_EXPIRED: u16 = 7;
    /// 18: Prohibited.
    pub const PROHIBITED: u16 = 18;
    /// 19: Stale NXDOMAIN Answer.
    pub const STALE_NXDOMAIN_ANSWER: u16 = 19;
    /// 21: Not Supported.
    pub const NOT_SUPPORTED: u16 = 21;
    /// 22: No Reachable Authority (here: the DHT).
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;
    /// 23: Network Error (here: the upstream servers).
    pub const NETWORK_ERROR: u16 = 23;

    /// An error with `code` and `text` (cut to [`MAX_EXTRA_TEXT`] bytes on a
    /// character boundary).
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        let mut text = text.into();
        if text.len() > MAX_EXTRA_TEXT {
            let mut end = MAX_EXTRA_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        Self { code, text }
    }

    /// The option's data: INFO-CODE (big-endian) then EXTRA-TEXT.
    pub fn option_data(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(2 + self.text.len());
        data.extend_from_slice(&self.code.to_be_bytes());
        data.extend_from_slice(self.text.as_bytes());
        data
    }

    /// The error for a failed lookup: 22 when the DHT (or the time) ran
    /// out, 6 or 7 when only invalid bundles were found, 23 when the
    /// upstream failed, 0 otherwise.
    pub fn for_lookup(error: &LookupError) -> Self {
        let code = match error {
            LookupError::Source { .. }
            | LookupError::Timeout { .. }
            | LookupError::Unreached { .. }
            | LookupError::Deadline { .. } => Self::NO_REACHABLE_AUTHORITY,
            LookupError::OnlyInvalid { reasons, .. } => {
                if reasons.keys().all(|r| r == "expired") {
                    Self::SIGNATURE_EXPIRED
                } else {
                    Self::BOGUS
                }
            }
            LookupError::Invalid { source, .. } if source.reason() == "expired" => {
                Self::SIGNATURE_EXPIRED
            }
            LookupError::Invalid { .. } | LookupError::Rollback { .. } => Self::BOGUS,
            LookupError::Forward { source } => return Self::for_forward(source),
            _ => Self::OTHER,
        };
        Self::new(code, error.to_string())
    }

    /// The error for a failed forward: 0 (Other) when the forwarder refused
    /// the query to keep a limit (nothing was sent), else 23 (Network Error).
    pub fn for_forward(error: &ForwardError) -> Self {
        if error.limit_reason().is_some() {
            return Self::new(Self::OTHER, format!("not forwarded: {error}"));
        }
        Self::new(Self::NETWORK_ERROR, format!("upstream: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    use kadns_record::DhtKey;

    #[test]
    fn refused_forwards_are_other_failed_ones_network_errors() {
        let share = ExtendedError::for_forward(&ForwardError::ClientBusy { limit: 4 });
        assert_eq!(share.code, ExtendedError::OTHER);
        assert!(share.text.starts_with("not forwarded: "), "{}", share.text);
        assert_eq!(
            ExtendedError::for_forward(&ForwardError::TooManyWaiters { limit: 8 }).code,
            ExtendedError::OTHER
        );
        let timeout = ForwardError::Timeout {
            server: "127.0.0.1:53".parse().unwrap(),
            after: Duration::from_secs(1),
        };
        assert_eq!(
            ExtendedError::for_forward(&timeout).code,
            ExtendedError::NETWORK_ERROR
        );
    }

    #[test]
    fn codes_and_bytes() {
        let key = DhtKey::from_bytes([1; 32]);
        let unreached = LookupError::Unreached {
            key,
            reached: 0,
            required: 3,
        };
        assert_eq!(ExtendedError::for_lookup(&unreached).code, 22);
        let mut reasons = BTreeMap::new();
        reasons.insert("expired".to_owned(), 2);
        let expired = LookupError::OnlyInvalid {
            key,
            reasons: reasons.clone(),
        };
        assert_eq!(ExtendedError::for_lookup(&expired).code, 7);
        reasons.insert("bad_signature".to_owned(), 1);
        let bogus = ExtendedError::for_lookup(&LookupError::OnlyInvalid { key, reasons });
        assert_eq!(bogus.code, 6);
        assert!(bogus.text.contains("bad_signature ×1"), "{}", bogus.text);
        assert!(bogus.text.contains("expired ×2"), "{}", bogus.text);
        let rollback = LookupError::Rollback {
            key,
            sequence: 1,
            highest: 2,
        };
        assert_eq!(ExtendedError::for_lookup(&rollback).code, 6);
        let forward = LookupError::Forward {
            source: ForwardError::Deadline {
                after: Duration::from_secs(4),
            },
        };
        assert_eq!(ExtendedError::for_lookup(&forward).code, 23);
        let long = ExtendedError::new(0, "é".repeat(300));
        assert!(long.text.len() <= MAX_EXTRA_TEXT);
        assert_eq!(&long.option_data()[..2], &[0, 0]);
    }
}
