//! Truncation (RFC 1035 §4.2.1, RFC 6891 §7, RFC 2181 §9): a UDP response
//! that does not fit the client's limit becomes a well-formed TC reply
//! holding the header, the question and the OPT record, and nothing else.
//!
//! hickory-proto 0.26.3's encoder, when a message overflows its maximum
//! size, moves its position back without shortening the buffer, so the
//! datagram it sends carries the bytes of a partial record after the
//! question. The stub therefore measures the whole response itself first,
//! with the same encoder and no limit, and sends the TC reply it builds
//! when the response would not fit: hickory's limit is never reached.

use hickory_server::proto::op::{Edns, Metadata};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::Request;
use hickory_server::zone_handler::MessageResponseBuilder;

/// Smallest UDP limit: what a client without EDNS can receive (RFC 1035).
pub(crate) const MIN_UDP_LIMIT: u16 = 512;

/// The largest UDP response the client can take: 512 without EDNS, its
/// EDNS size otherwise (as already capped in the response's OPT record).
pub(crate) fn udp_limit(response_edns: Option<&Edns>) -> usize {
    usize::from(response_edns.map_or(MIN_UDP_LIMIT, |e| e.max_payload().max(MIN_UDP_LIMIT)))
}

/// The length in bytes of the response these parts encode to, encoded
/// exactly as hickory will encode it (same name compression), without a size
/// limit. `None` if it cannot be encoded at all.
pub(crate) fn encoded_len(
    request: &Request,
    edns: Option<&Edns>,
    metadata: Metadata,
    answers: &[Record],
    authorities: &[Record],
    additionals: &[Record],
) -> Option<usize> {
    let mut builder = MessageResponseBuilder::from_message_request(request);
    if let Some(edns) = edns {
        builder.edns(edns);
    }
    let response = builder.build(
        metadata,
        answers.iter(),
        authorities.iter(),
        None,
        additionals.iter(),
    );
    let mut bytes = Vec::with_capacity(1024);
    let mut encoder = BinEncoder::new(&mut bytes);
    response.destructive_emit(&mut encoder).ok()?;
    Some(bytes.len())
}

/// True when a response of `len` bytes must be truncated for `limit`.
pub(crate) fn must_truncate(len: Option<usize>, limit: usize) -> bool {
    len.is_some_and(|len| len > limit)
}
