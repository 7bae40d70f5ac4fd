//! Header flags by the RFCs: AA, RA and AD in the stub's responses.
//!
//! The choices, and why, are in `docs/compliance.md`:
//! - **AA** is set on answers from kadns zones. The stub is the only server
//!   that speaks for a kadns name, and it answers from data it verified
//!   itself against the zone key: it holds the zone's data the way unbound
//!   holds `local-data`, which also sets AA. Forwarded answers never carry
//!   AA (they come from a cache or an upstream, not from us).
//! - **RA** is set on every response: the stub recurses (forwards) for every
//!   name outside kadns zones.
//! - **AD** (RFC 6840 §5.8, RFC 4035 §3.2.3) only when the query set AD or
//!   DO, and only when the data was verified: by kadns for its own names,
//!   by the upstream (its AD passed on, never invented) for forwarded ones.

use hickory_proto::op::{Message, Metadata};

/// True when the client asked to hear whether the data was verified: the
/// query set AD, or set DO in its EDNS record.
pub(crate) fn wants_ad(request: &Message) -> bool {
    request.metadata.authentic_data || request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok)
}

/// Flags of the NOTIMP answer to an opcode other than QUERY: AA, RA, RD,
/// AD and CD are defined for QUERY only (RFC 1035 §4.1.1, RFC 4035 §3.2),
/// so none of them is set or echoed.
pub(crate) fn not_a_query(metadata: &mut Metadata) {
    metadata.authoritative = false;
    metadata.recursion_available = false;
    metadata.recursion_desired = false;
    metadata.authentic_data = false;
    metadata.checking_disabled = false;
}

/// Flags of an answer from a kadns zone: AA, RA, and AD when asked for and
/// `verified`.
pub(crate) fn kadns_answer(metadata: &mut Metadata, request: &Message, verified: bool) {
    metadata.authoritative = true;
    metadata.recursion_available = true;
    metadata.authentic_data = verified && wants_ad(request);
}

/// Flags of a forwarded answer: RA, no AA, and the upstream's AD when asked for.
pub(crate) fn forwarded_answer(metadata: &mut Metadata, request: &Message, upstream_ad: bool) {
    metadata.authoritative = false;
    metadata.recursion_available = true;
    metadata.authentic_data = upstream_ad && wants_ad(request);
}
