//! What forwarding returns: the response, and whether it is stale.

use hickory_proto::op::Message;

/// A forwarded response, and how it was obtained.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Forwarded {
    /// The response, under the client's id and with the client's question;
    /// TTLs counted down if it came from the cache.
    pub message: Message,
    /// Served stale (RFC 8767): every upstream failed and this is the last
    /// answer they gave, within the stale window, with TTL 30. The stub
    /// adds EDE 3 (Stale Answer).
    pub stale: bool,
    /// Answered from the cache (fresh or stale), without an upstream exchange.
    pub from_cache: bool,
}

impl Forwarded {
    pub(crate) fn new(
        mut message: Message,
        request: &Message,
        stale: bool,
        from_cache: bool,
    ) -> Self {
        message.metadata.id = request.metadata.id;
        if let (Some(stored), Some(asked)) = (message.queries.first(), request.queries.first()) {
            // A cached answer keeps the case of the query that filled the
            // cache: write its records under the name as this client wrote it.
            let stored = stored.name.clone();
            for record in message.answers.iter_mut() {
                if record.name == stored {
                    record.name = asked.name.clone();
                }
            }
        }
        message.queries = request.queries.clone();
        Self {
            message,
            stale,
            from_cache,
        }
    }
}
