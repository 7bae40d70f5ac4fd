//! The way out: one query prepared for the upstreams (0x20 case, loop
//! marker) and tried on each server in turn, within the per-server and the
//! total bound.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use tokio::time::{Instant, timeout};

use super::markers::LOOP_MARKER_OPTION;
use super::{EDNS_PAYLOAD, Forwarder};
use crate::error::ForwardError;
use crate::exchange::Response;

impl Forwarder {
    /// The shared path: loop marker, 0x20 case randomization, failover (a
    /// fresh id for every attempt). `question` is the question as the
    /// caller asked it. The caller holds a forwarding slot.
    pub(super) async fn send(
        &self,
        mut outgoing: Message,
        question: &Query,
        servers: &[SocketAddr],
    ) -> Result<Response, ForwardError> {
        if servers.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        // Random letter case (DNS 0x20): one more thing an off-path spoofer
        // must guess. The answer's owner names are put back below.
        let mut sent = question.clone();
        sent.name.randomize_label_case();
        outgoing.queries = vec![sent.clone()];
        // The loop marker: kadns forwards a client's EDNS options as they
        // are, so a query that comes back to us through any chain of kadns
        // resolvers still carries it (see `forward`).
        let edns = outgoing.edns.get_or_insert_with(|| {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            edns
        });
        let guard = self.markers.enter();
        edns.options_mut().insert(EdnsOption::Unknown(
            LOOP_MARKER_OPTION,
            guard.marker.to_vec(),
        ));
        let mut response = self.failover(&mut outgoing, servers).await?;
        // Answers for the question carry the name as the caller wrote it.
        for record in response.message.answers.iter_mut() {
            if record.name == sent.name {
                record.name = question.name.clone();
            }
        }
        Ok(response)
    }

    /// Tries each server in order until one answers with something other than
    /// SERVFAIL or REFUSED, within the per-server and the total bound. Each
    /// attempt goes out under a fresh random id (and, in `exchange::exchange`, from
    /// a fresh socket and so a fresh source port).
    async fn failover(
        &self,
        query: &mut Message,
        servers: &[SocketAddr],
    ) -> Result<Response, ForwardError> {
        let deadline = Instant::now() + self.total_timeout;
        let mut last_error = None;
        let mut last_refusal = None;
        for server in servers {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                last_error = Some(ForwardError::Deadline {
                    after: self.total_timeout,
                });
                break;
            }
            query.metadata.id = rand::random();
            let bytes = query.to_vec().map_err(|e| ForwardError::Encode {
                source: Arc::new(e),
            })?;
            let bound = self.attempt_timeout.min(left);
            self.metrics.upstream_queries.inc();
            match timeout(bound, self.transports.exchange(*server, query, &bytes)).await {
                Ok(Ok(response)) => match response.message.metadata.response_code {
                    ResponseCode::ServFail | ResponseCode::Refused => {
                        tracing::debug!(%server, rcode = %response.message.metadata.response_code, "trying the next upstream");
                        last_refusal = Some(response);
                    }
                    _ => return Ok(response),
                },
                Ok(Err(error)) => {
                    tracing::debug!(%server, %error, "upstream failed");
                    last_error = Some(error);
                }
                Err(_) => {
                    tracing::debug!(%server, ?bound, "upstream timed out");
                    last_error = Some(ForwardError::Timeout {
                        server: *server,
                        after: bound,
                    });
                }
            }
        }
        match (last_refusal, last_error) {
            (Some(response), _) => Ok(response),
            (None, Some(error)) => Err(error),
            (None, None) => Err(ForwardError::NoUpstream),
        }
    }
}
