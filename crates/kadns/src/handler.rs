//! The stub's answerer: one DNS message in, one encoded answer out.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Header, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use ipnet::IpNet;
use kadns_resolver::{BundleSource, ExtendedError, Outcome, Resolver, Route};
use tracing::{Instrument, debug, debug_span, warn};

use crate::answer_cache::{AnswerCache, Lookup, QueryKey};
use crate::client_policy::{ClientPolicy, SharedPolicy};
use crate::flags;
use crate::metrics::StubMetrics;
use crate::server::{Answerer, Disposition, QueryContext, Transport};
use crate::truncation;

/// DNS header length: anything shorter is dropped unanswered.
const HEADER_LEN: usize = 12;

/// Answers DNS messages through a [`Resolver`]; the stub's [`Answerer`].
///
/// Before anything is decoded: a packet too short for a header, and any
/// response (QR set, no reflection), is dropped. A message that does not
/// decode gets FORMERR (header echoed, no question), or REFUSED for a client
/// outside the allowed networks. Then, once per query: a client outside the
/// allowed networks gets REFUSED with EDE 18, an opcode other than QUERY
/// gets NOTIMP, an EDNS version above 0 BADVERS, anything but exactly one
/// question FORMERR; a name in a kadns zone is looked up and verified, every
/// other name is forwarded upstream as the client sent it. Over UDP an
/// answer too long for the client becomes a TC reply.
///
/// In front of all that sits the wire-format [`AnswerCache`]: right after
/// the ACL check, a query of the usual shape is keyed from its raw bytes
/// and, on a hit, answered by copying the rendered answer into `out` with
/// the query's ID and letter case patched in and the TTLs counted down: no
/// decoding, no routing, no encoding, no allocation. What is stored, and
/// why, is in `docs/resolver.md` ("Answer cache").
///
/// ```no_run
/// use std::sync::Arc;
/// use kadns::server::{Answerer, QueryContext, Transport};
/// use kadns::{StubHandler, StubMetrics};
/// use kadns_resolver::{Config, MemorySource, Resolver};
///
/// # async fn run(query: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
/// let resolver = Resolver::builder(Config::default(), MemorySource::new()).build()?;
/// let handler = StubHandler::new(resolver, Arc::new(StubMetrics::default()), 1232);
/// let ctx = QueryContext { client: "127.0.0.1:5300".parse()?, transport: Transport::Udp };
/// let mut out = Vec::new();
/// handler.answer(query, ctx, &mut out).await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StubHandler<S: BundleSource> {
    resolver: Resolver<S>,
    metrics: Arc<StubMetrics>,
    max_udp_payload: u16,
    /// Client networks answered (and the rate limit the UDP workers read).
    policy: SharedPolicy,
    /// Rendered answers, served before anything is decoded.
    cache: AnswerCache,
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
    /// Whether the encoded reply may go into the answer cache: a verified,
    /// live kadns answer (NOERROR, NXDOMAIN, NODATA) or a fresh forwarded
    /// one. The cache itself refuses SERVFAIL, TC, TTL 0 and EDE 3 too.
    cacheable: bool,
}

impl Reply {
    fn error(request: &Message, code: ResponseCode, outcome: &'static str) -> Self {
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
            cacheable: false,
        }
    }

    fn because(mut self, extended_error: ExtendedError) -> Self {
        self.extended_error = Some(extended_error);
        self
    }
}

/// Why a message could not be read past its header.
enum Undecodable {
    /// Shorter than a header, or a response: no reply at all.
    Drop,
    /// The header, for a FORMERR (or REFUSED) reply.
    Header(Header),
}

/// Decodes `query`, refusing early what cannot be a query.
fn decode(query: &[u8]) -> Result<Message, Undecodable> {
    if query.len() < HEADER_LEN || query[2] & 0x80 != 0 {
        // Too short for a header, or QR set: a response is never answered.
        return Err(Undecodable::Drop);
    }
    let header = Header::read(&mut BinDecoder::new(query)).map_err(|_| Undecodable::Drop)?;
    // Each question takes at least 5 bytes: a count the message cannot hold
    // is refused before the decoder reserves room for it.
    let room = (query.len() - HEADER_LEN) / 5;
    if usize::from(header.counts.queries) > room {
        return Err(Undecodable::Header(header));
    }
    Message::from_vec(query).map_err(|error| {
        debug!(%error, id = header.metadata.id, "undecodable query");
        Undecodable::Header(header)
    })
}

impl<S: BundleSource> StubHandler<S> {
    /// A handler answering every client through `resolver`.
    /// Its answer cache holds [`DEFAULT_BYTES`](crate::answer_cache::DEFAULT_BYTES)
    /// (see [`StubHandler::answer_cache_bytes`]) and counts into `metrics`.
    pub fn new(resolver: Resolver<S>, metrics: Arc<StubMetrics>, max_udp_payload: u16) -> Self {
        let cache = AnswerCache::with_metrics(
            crate::answer_cache::DEFAULT_BYTES,
            metrics.answer_cache.clone(),
        );
        Self {
            resolver,
            metrics,
            max_udp_payload,
            policy: Arc::new(ArcSwap::from_pointee(ClientPolicy::open())),
            cache,
        }
    }

    /// Gives the answer cache a budget of `bytes` (0 turns it off), emptying it.
    pub fn answer_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache = AnswerCache::with_metrics(bytes, self.metrics.answer_cache.clone());
        self
    }

    /// Empties the answer cache (`kadns cache flush`): every query after
    /// this is resolved again before it is cached again.
    pub fn flush_answer_cache(&self) {
        self.cache.clear();
    }

    /// The answer cache (for status output and tests).
    pub fn answer_cache(&self) -> &AnswerCache {
        &self.cache
    }

    /// The resolver behind this handler.
    pub fn resolver(&self) -> &Resolver<S> {
        &self.resolver
    }

    /// The largest response `transport` can carry to a client whose query
    /// had an OPT record with `payload` (`None`: no EDNS): over UDP its EDNS
    /// size within 512..=`max_udp_payload` (512 without EDNS); over a
    /// stream, a whole message.
    fn client_limit(&self, payload: Option<u16>, transport: Transport) -> usize {
        if transport != Transport::Udp {
            return usize::from(u16::MAX);
        }
        let min = truncation::MIN_UDP_LIMIT;
        usize::from(payload.map_or(min, |p| p.clamp(min, self.max_udp_payload.max(min))))
    }

    /// Answers only clients in `networks`; every other client gets REFUSED
    /// with EDE 18 "Prohibited" (RFC 8914). Without this, every client that
    /// reaches the sockets is answered. [`Stub`](crate::Stub) sets it from
    /// `StubConfig::allow` (loopback by default).
    pub fn allow(self, networks: impl IntoIterator<Item = IpNet>) -> Self {
        let mut policy = ClientPolicy::clone(&self.policy.load());
        policy.allow = networks.into_iter().collect();
        self.policy.store(Arc::new(policy));
        self
    }

    /// The client policy this handler reads, shared with whoever swaps it.
    pub(crate) fn with_policy(mut self, policy: SharedPolicy) -> Self {
        self.policy = policy;
        self
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.policy.load().allows(ip)
    }

    async fn reply(&self, request: &Message, allowed: bool, client: IpAddr) -> Reply {
        if !allowed {
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
        let [query] = request.queries.as_slice() else {
            // Zero or several questions.
            return Reply::error(request, ResponseCode::FormErr, "formerr");
        };
        match self.resolver.route(query.name()) {
            Route::Forward => {
                self.metrics.forwarded_queries.inc();
                self.forward(request, client).await
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
            route => {
                self.metrics.kadns_queries.inc();
                // Routed once: the resolver starts from this route.
                let answer = self
                    .resolver
                    .lookup_routed(query.name(), query.query_type(), route)
                    .await;
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
                reply.cacheable = answer.stale.is_none()
                    && matches!(
                        answer.outcome,
                        Outcome::Records | Outcome::NxDomain | Outcome::NoData
                    );
                reply.answers = answer.answers;
                reply.authorities = answer.authorities;
                reply
            }
        }
    }

    /// Forwards the client's own message (EDNS options, DO and CD bits kept)
    /// and relays the upstream's records and RCODE under the client's id.
    async fn forward(&self, request: &Message, client: IpAddr) -> Reply {
        match self.resolver.forward(request, client).await {
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
                reply.cacheable = !stale;
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

    /// The EDNS record of the response: present if the request had one,
    /// advertising the stub's own UDP size (RFC 6891 §6.2.3: a responder
    /// gives its own), whatever the client's: so a rendered answer does not
    /// depend on the client's size, and the answer cache can share it.
    fn response_edns(&self, request: &Message) -> Option<Edns> {
        let client = request.edns.as_ref()?;
        let mut edns = Edns::new();
        edns.set_max_payload(self.max_udp_payload.max(truncation::MIN_UDP_LIMIT));
        edns.set_dnssec_ok(client.flags().dnssec_ok);
        Some(edns)
    }

    /// Encodes the reply to `request` into `out`: over UDP, as a TC reply
    /// when too long for the client (see [`truncation`]); a reply that
    /// cannot be encoded becomes SERVFAIL. A cacheable reply is stored
    /// whole (before any truncation) under `cache_as`: the raw query, its
    /// key and the answer generation read before resolving.
    fn encode(
        &self,
        request: &Message,
        reply: Reply,
        transport: Transport,
        cache_as: Option<(&[u8], &QueryKey, u64)>,
        out: &mut Vec<u8>,
    ) -> bool {
        let mut edns = self.response_edns(request);
        if let (Some(edns), Some(ede)) = (edns.as_mut(), reply.extended_error.as_ref()) {
            add_extended_error(edns, ede);
        }
        let payload = request.edns.as_ref().map(Edns::max_payload);
        let limit = self.client_limit(payload, transport);
        let cacheable = reply.cacheable;
        let mut response = Message::new(
            reply.metadata.id,
            MessageType::Response,
            reply.metadata.op_code,
        );
        response.metadata = reply.metadata;
        response.queries = request.queries.clone();
        response.answers = reply.answers;
        response.authorities = reply.authorities;
        response.additionals = reply.additionals;
        response.edns = edns;
        if let Err(error) = truncation::encode(&response, out) {
            warn!(%error, "cannot encode a response: SERVFAIL instead");
            truncation::truncate(&mut response);
            response.metadata.truncation = false;
            response.metadata.response_code = ResponseCode::ServFail;
            if truncation::encode(&response, out).is_err() {
                out.clear();
                return false;
            }
        } else if cacheable && let Some((query, key, generation)) = cache_as {
            self.cache.put(query, key, out, generation, Instant::now());
        }
        if transport == Transport::Udp && truncation::must_truncate(out.len(), limit) {
            debug!(
                len = out.len(),
                limit, "too big for UDP: truncated, the client retries over TCP"
            );
            self.metrics.truncated_responses.inc();
            truncation::truncate(&mut response);
            if truncation::encode(&response, out).is_err() {
                out.clear();
                return false;
            }
        }
        true
    }

    /// The bare reply to a message that does not decode past `header`:
    /// FORMERR (REFUSED for a client outside the allowed networks), the
    /// header echoed, no question.
    fn undecodable(
        &self,
        header: &Header,
        allowed: bool,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Disposition {
        let (code, outcome) = if allowed {
            (ResponseCode::FormErr, "formerr")
        } else {
            self.metrics.refused_clients.inc();
            (ResponseCode::Refused, "refused")
        };
        let mut metadata = Metadata::response_from_request(&header.metadata);
        metadata.response_code = code;
        let mut response = Message::new(metadata.id, MessageType::Response, metadata.op_code);
        response.metadata = metadata;
        if truncation::encode(&response, out).is_err() {
            out.clear();
            return Disposition::Drop;
        }
        self.count(transport, outcome);
        Disposition::Reply
    }

    fn count(&self, transport: Transport, outcome: &'static str) {
        self.metrics.count_response(transport, outcome);
    }

    /// The answer cache's key for `query`, if the cache is on, the client
    /// `allowed`, and the query of the one shape the cache answers.
    fn cache_key(&self, query: &[u8], allowed: bool) -> Option<QueryKey> {
        if !allowed || !self.cache.enabled() {
            return None;
        }
        let key = QueryKey::parse(query);
        if key.is_none() {
            self.cache.metrics().uncacheable.inc();
        }
        key
    }

    /// The synchronous part of [`Answerer::answer`]: answers `query` from
    /// the answer cache if it can (ACL checked first), true when `out` then
    /// holds the reply to send. A listener may call it before it sets up
    /// the asynchronous answer (a task, a future in a set), and do that
    /// only when it returns false; `answer` does the same check itself.
    pub fn answer_from_cache(&self, query: &[u8], ctx: QueryContext, out: &mut Vec<u8>) -> bool {
        out.clear();
        let allowed = self.allowed(ctx.client.ip());
        self.cache_key(query, allowed)
            .is_some_and(|key| self.cached(query, &key, ctx, out))
    }

    /// Answers `query` from the answer cache if it can: true when `out`
    /// holds the reply (the whole answer, or its TC reply).
    fn cached(&self, query: &[u8], key: &QueryKey, ctx: QueryContext, out: &mut Vec<u8>) -> bool {
        let limit = self.client_limit(key.udp_payload(), ctx.transport);
        let generation = self.resolver.answer_generation();
        let outcome = match self
            .cache
            .lookup(query, key, generation, limit, Instant::now(), out)
        {
            Lookup::Hit => cached_outcome(out, false),
            Lookup::Truncated => {
                self.metrics.truncated_responses.inc();
                cached_outcome(out, true)
            }
            Lookup::Miss => return false,
        };
        self.count(ctx.transport, outcome);
        true
    }
}

impl<S: BundleSource> Answerer for StubHandler<S> {
    fn answer_now(&self, query: &[u8], ctx: QueryContext, out: &mut Vec<u8>) -> bool {
        self.answer_from_cache(query, ctx, out)
    }

    async fn answer(&self, query: &[u8], ctx: QueryContext, out: &mut Vec<u8>) -> Disposition {
        self.respond(query, ctx, out, true).await
    }

    async fn answer_after_miss(
        &self,
        query: &[u8],
        ctx: QueryContext,
        out: &mut Vec<u8>,
    ) -> Disposition {
        self.respond(query, ctx, out, false).await
    }
}

impl<S: BundleSource> StubHandler<S> {
    /// [`Answerer::answer`]; `check_cache` false when the caller has just
    /// missed the answer cache ([`Answerer::answer_now`]), so that a miss
    /// is looked up and counted once.
    async fn respond(
        &self,
        query: &[u8],
        ctx: QueryContext,
        out: &mut Vec<u8>,
        check_cache: bool,
    ) -> Disposition {
        out.clear();
        let allowed = self.allowed(ctx.client.ip());
        // The ACL first: a refused client is never answered from the cache.
        let key = self.cache_key(query, allowed);
        // Read before resolving: an answer computed while its bundle was
        // replaced is stored under the old generation, and so never served.
        let generation = self.resolver.answer_generation();
        if check_cache
            && let Some(key) = &key
            && self.cached(query, key, ctx, out)
        {
            return Disposition::Reply;
        }
        let request = match decode(query) {
            Ok(request) => request,
            Err(Undecodable::Drop) => return Disposition::Drop,
            Err(Undecodable::Header(header)) => {
                return self.undecodable(&header, allowed, ctx.transport, out);
            }
        };
        if request.metadata.message_type == MessageType::Response {
            return Disposition::Drop;
        }
        // The fields are formatted only when the span is enabled: with
        // tracing below debug, this costs one callsite check.
        let question = request.queries.first();
        let span = debug_span!(
            "dns",
            id = request.metadata.id,
            qname = question.map(|q| tracing::field::display(q.name())),
            qtype = question.map(|q| tracing::field::display(q.query_type())),
            protocol = ctx.transport.as_str(),
            src = %ctx.client
        );
        let reply = self
            .reply(&request, allowed, ctx.client.ip())
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        let outcome = reply.outcome;
        let rcode = reply.metadata.response_code;
        let cache_as = key.as_ref().map(|key| (query, key, generation));
        if !self.encode(&request, reply, ctx.transport, cache_as, out) {
            return Disposition::Drop;
        }
        self.count(ctx.transport, outcome);
        debug!(%rcode, outcome, "answered");
        Disposition::Reply
    }
}

/// The outcome label of a reply the answer cache wrote: from its header
/// (kadns answers carry AA, forwarded ones never do; a TC reply has no
/// records, so its NOERROR counts as `noerror`).
fn cached_outcome(reply: &[u8], truncated: bool) -> &'static str {
    let authoritative = reply[2] & 0x04 != 0;
    let answers = u16::from_be_bytes([reply[6], reply[7]]);
    match reply[3] & 0x0f {
        _ if !authoritative => "upstream",
        3 => "nxdomain",
        0 if answers == 0 && !truncated => "nodata",
        0 => "noerror",
        _ => "servfail",
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
