//! Named bounds of the record format. Every one is enforced on encode and on decode.

/// Largest encoded bundle, signature included, in bytes.
///
/// A bundle holds every RRset of one owner name. 4 KiB keeps a DHT message, and
/// the DNS answer built from it, small; it is far above what ordinary names need
/// (a name with A, AAAA, MX, a few TXT records and a DKIM key is under 1 KiB).
pub const MAX_BUNDLE_LEN: usize = 4096;

/// Most resource records in one bundle.
pub const MAX_RECORDS: usize = 255;

/// Largest TTL a record may carry, in seconds (one day). Caches never keep a
/// record longer than this, so an update reaches every resolver within a day
/// even if the owner gave a long TTL.
pub const MAX_TTL: u32 = 86_400;

/// Furthest a bundle's expiry may lie in the future when it is checked, in
/// seconds (31 days). Bounds how long a leaked or replayed bundle can live.
pub const MAX_VALIDITY: u64 = 31 * 86_400;

/// Longest owner name field (relative wire form, terminating zero included), in
/// bytes. Chosen so that the owner name under the zone-id apex
/// (`<owner>.<52-char zone id>.`) stays within DNS's 255-byte limit.
pub const MAX_OWNER_LEN: usize = 255 - ZONE_APEX_WIRE_LEN + 1;

/// Wire length of the zone-id apex `<zone-id>.`: one length byte, 52
/// characters, the root byte.
pub(crate) const ZONE_APEX_WIRE_LEN: usize = 1 + 52 + 1;
