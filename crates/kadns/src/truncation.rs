//! Encoding a response, and truncation (RFC 1035 §4.2.1, RFC 6891 §7,
//! RFC 2181 §9): a UDP response that does not fit the client's limit
//! becomes a well-formed TC reply holding the header, the question and the
//! OPT record, and nothing else.
//!
//! hickory-proto 0.26.3's encoder, when a message overflows a maximum size,
//! moves its position back without shortening the buffer, so a datagram
//! cut by it carries the bytes of a partial record after the question. The
//! stub therefore never gives the encoder a limit: it encodes the whole
//! response, and when that is longer than the client's limit it encodes
//! the TC reply instead.

use hickory_proto::ProtoError;
use hickory_proto::op::Message;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

/// Smallest UDP limit: what a client without EDNS can receive (RFC 1035).
pub(crate) const MIN_UDP_LIMIT: u16 = 512;

/// Encodes `response` into `out` (cleared first), whole.
pub(crate) fn encode(response: &Message, out: &mut Vec<u8>) -> Result<(), ProtoError> {
    out.clear();
    let mut encoder = BinEncoder::new(out);
    response.emit(&mut encoder)
}

/// True when a response of `len` bytes must be truncated for `limit`.
pub(crate) fn must_truncate(len: usize, limit: usize) -> bool {
    len > limit
}

/// Makes `response` the TC reply: TC set, no records (the OPT record stays).
pub(crate) fn truncate(response: &mut Message) {
    response.metadata.truncation = true;
    response.answers.clear();
    response.authorities.clear();
    response.additionals.clear();
}
