//! The stub's request handler: one query in, one answer out.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::opt::EdnsOption;
use hickory_server::proto::rr::{DNSClass, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use ipnet::IpNet;
use kadns_resolver::{BundleSource, ExtendedError, Outcome, Resolver, Route};
use tracing::{Instrument, debug, debug_span, warn};

use crate::flags;
use crate::metrics::{QueryLabels, StubMetrics};
use crate::truncation;

/// Answers DNS requests through a [`Resolver`].
///
/// Decided once per query: an opcode other than QUERY gets NOTIMP, anything
/// but exactly one question gets FORMERR, a name in a kadns zone is looked up
/// and verified, every other name is forwarded upstream as the client sent it.
/// hickory's server in front of it drops packets too short for a header and
/// responses (no reflection), answers undecodable messages with FORMERR and
/// clients outside the allowed networks with REFUSED.
#[derive(Debug)]
pub struct StubHandler<S: BundleSource> {
    resolver: Resolver<S>,
    metrics: Arc<StubMetrics>,
    max_udp_payload: u16,
    /// Client networks answered; `None` answers every client.
    allow: Option<Vec<IpNet>>,
}

/// The parts of a response, before encoding.
struct Reply {
    metadata: Metadata,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
    outcome: &'static str,
    /// Why, for an EDNS client (RFC 8914): see [`add_extended_error`].
    extended_error: Option<ExtendedError>,
}

impl Reply {
    fn error(request: &Request, code: ResponseCode, outcome: &'static str) -> Self {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        metadata.response_code = code;
        Self {
            metadata,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            outcome,
            extended_error: None,
        }
    }

    fn because(mut self, extended_error: ExtendedError) -> Self {
        self.extended_error = Some(extended_error);
        self
    }
}

impl<S: BundleSource> StubHandler<S> {
    /// A handler answering through `resolver`.
    pub fn new(resolver: Resolver<S>, metrics: Arc<StubMetrics>, max_udp_payload: u16) -> Self {
        Self {
            resolver,
            metrics,
            max_udp_payload,
            allow: None,
        }
    }

    /// Answers only clients in `networks`; every other client gets REFUSED
    /// with EDE 18 "Prohibited" (RFC 8914). Without this, every client that
    /// reaches the sockets is answered. [`Stub`](crate::Stub) sets it from
    /// `StubConfig::allow` (loopback by default).
    pub fn allow(mut self, networks: impl IntoIterator<Item = IpNet>) -> Self {
        self.allow = Some(networks.into_iter().collect());
        self
    }

    /// Whether a client at `ip` may be answered (IPv4-mapped IPv6 addresses
    /// count as their IPv4 address).
    fn allowed(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allow
            .as_ref()
            .is_none_or(|nets| nets.iter().any(|net| net.contains(&ip)))
    }

    async fn reply(&self, request: &Request) -> Reply {
        if !self.allowed(request.src().ip()) {
            self.metrics.refused_clients.inc();
            return Reply::error(request, ResponseCode::Refused, "refused").because(
                ExtendedError::new(
                    ExtendedError::PROHIBITED,
                    "this client is not in the stub's allowed networks",
                ),
            );
        }
        if request.metadata.op_code != OpCode::Query {
            let mut reply = Reply::error(request, ResponseCode::NotImp, "notimp");
            flags::not_a_query(&mut reply.metadata);
            return reply;
        }
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return Reply::error(request, ResponseCode::BADVERS, "badvers");
        }
        let Ok(info) = request.request_info() else {
            // Zero or several questions.
            return Reply::error(request, ResponseCode::FormErr, "formerr");
        };
        let query = info.query.original();
        match self.resolver.route(query.name()) {
            Route::Forward => {
                self.metrics.forwarded_queries.inc();
                self.forward(request).await
            }
            _ if query.query_class() != DNSClass::IN => {
                Reply::error(request, ResponseCode::Refused, "refused").because(ExtendedError::new(
                    ExtendedError::NOT_SUPPORTED,
                    "kadns zones are class IN",
                ))
            }
            _ if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR) => {
                // kadns zones are never transferred: there is no primary to transfer from.
                Reply::error(request, ResponseCode::Refused, "refused").because(ExtendedError::new(
                    ExtendedError::PROHIBITED,
                    "kadns zones are not transferred",
                ))
            }
            _ => {
                self.metrics.kadns_queries.inc();
                let answer = self.resolver.lookup(query.name(), query.query_type()).await;
                let mut reply = Reply::error(request, answer.response_code(), "");
                flags::kadns_answer(&mut reply.metadata, request, answer.authenticated);
                reply.outcome = match &answer.outcome {
                    Outcome::Records => "noerror",
                    Outcome::NxDomain => "nxdomain",
                    Outcome::NoData => "nodata",
                    Outcome::Upstream { .. } => "upstream",
                    _ => "servfail",
                };
                reply.extended_error = answer.extended_error();
                reply.answers = answer.answers;
                reply.authorities = answer.authorities;
                reply
            }
        }
    }

    /// Forwards the client's own message (EDNS options, DO and CD bits kept)
    /// and relays the upstream's records and RCODE under the client's id.
    async fn forward(&self, request: &Request) -> Reply {
        let message = match Message::from_vec(request.as_slice()) {
            Ok(message) => message,
            Err(error) => {
                debug!(%error, "cannot re-read the request for forwarding");
                return Reply::error(request, ResponseCode::FormErr, "formerr");
            }
        };
        match self.resolver.forward(&message).await {
            Ok(forwarded) => {
                let stale = forwarded.stale;
                let response = forwarded.message;
                let mut reply = Reply::error(request, response.metadata.response_code, "upstream");
                // The upstream is trusted as the system trusted it before kadns:
                // its AD bit is passed on (when asked for), never invented.
                flags::forwarded_answer(
                    &mut reply.metadata,
                    request,
                    response.metadata.authentic_data,
                );
                reply.answers = response.answers;
                reply.authorities = response.authorities;
                reply.additionals = response.additionals;
                if stale {
                    reply.extended_error = Some(ExtendedError::new(
                        ExtendedError::STALE_ANSWER,
                        "every upstream failed; answered from the forward cache",
                    ));
                }
                reply
            }
            Err(error) => {
                debug!(%error, "upstream failed");
                Reply::error(request, ResponseCode::ServFail, "servfail")
                    .because(ExtendedError::for_forward(&error))
            }
        }
    }

    /// The EDNS record of the response: present if the request had one, with
    /// the client's buffer size capped by ours (hickory truncates to it).
    fn response_edns(&self, request: &Request) -> Option<Edns> {
        let client = request.edns.as_ref()?;
        let mut edns = Edns::new();
        edns.set_max_payload(
            client
                .max_payload()
                .clamp(512, self.max_udp_payload.max(512)),
        );
        edns.set_dnssec_ok(client.flags().dnssec_ok);
        Some(edns)
    }
}

/// Over UDP, a reply that does not fit the client's limit becomes a clean TC
/// reply: header and question (and the OPT record), no partial record. See
/// [`truncation`]; the client retries over TCP and gets it whole.
fn fit_udp(
    request: &Request,
    edns: Option<&Edns>,
    mut reply: Reply,
    metrics: &StubMetrics,
) -> Reply {
    if request.protocol() != Protocol::Udp {
        return reply;
    }
    let limit = truncation::udp_limit(edns);
    let len = truncation::encoded_len(
        request,
        edns,
        reply.metadata,
        &reply.answers,
        &reply.authorities,
        &reply.additionals,
    );
    if truncation::must_truncate(len, limit) {
        debug!(
            ?len,
            limit, "too big for UDP: truncated, the client retries over TCP"
        );
        metrics.truncated_responses.inc();
        reply.metadata.truncation = true;
        reply.answers.clear();
        reply.authorities.clear();
        reply.additionals.clear();
    }
    reply
}

#[async_trait::async_trait]
impl<S: BundleSource> RequestHandler for StubHandler<S> {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let protocol = match request.protocol() {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            _ => "other",
        };
        let qname = request
            .queries
            .queries()
            .first()
            .map(|q| q.original().name().to_string())
            .unwrap_or_default();
        let qtype = request
            .queries
            .queries()
            .first()
            .map(|q| q.query_type().to_string())
            .unwrap_or_default();
        let span = debug_span!("dns", id = request.metadata.id, %qname, %qtype, protocol, src = %request.src());
        let reply = self.reply(request).instrument(span.clone()).await;
        let _entered = span.enter();

        let mut edns = self.response_edns(request);
        if let (Some(edns), Some(ede)) = (edns.as_mut(), reply.extended_error.as_ref()) {
            add_extended_error(edns, ede);
        }
        let reply = fit_udp(request, edns.as_ref(), reply, &self.metrics);
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = edns.as_ref() {
            builder.edns(edns);
        }
        let metadata = reply.metadata;
        let response = builder.build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            None,
            reply.additionals.iter(),
        );
        let outcome = reply.outcome;
        match response_handle.send_response(response).await {
            Ok(info) => {
                // The encoder may have truncated the answer (TC) to fit the client's buffer.
                self.metrics
                    .responses
                    .get_or_create(&QueryLabels {
                        protocol: protocol.to_owned(),
                        outcome: outcome.to_owned(),
                    })
                    .inc();
                debug!(rcode = %info.response_code, outcome, "answered");
                info
            }
            Err(error) => {
                warn!(%error, "could not send a response");
                let mut metadata = metadata;
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// Extended DNS Errors (RFC 8914): adds `ede` to the response's OPT record
/// as option 15 (INFO-CODE, then EXTRA-TEXT). hickory 0.26 has no type for
/// it, so the option is written as raw bytes. Only clients that sent EDNS
/// get an OPT record, and so an EDE.
fn add_extended_error(edns: &mut Edns, ede: &ExtendedError) {
    edns.options_mut().insert(EdnsOption::Unknown(
        ExtendedError::OPTION_CODE,
        ede.option_data(),
    ));
}
