//! The resolver: routing, the lookup flow, CNAME chasing, negative answers.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use kadns_record::{DhtKey, OwnerName, ZoneId};
use tokio::time::Instant;

use crate::answer::{Answer, Outcome};
use crate::cache::{Cache, Cached, Found};
use crate::config::Config;
use crate::deadline::Deadline;
use crate::error::{Error, ForwardError, LookupError};
use crate::fetch::Fetcher;
use crate::forwarder::{Forwarded, Forwarder};
use crate::metrics::Metrics;
use crate::persist::BundleStore;
use crate::records::{Placement, negative_soa, records};
use crate::reload::ReloadState;
use crate::route::{Route, Router, SharedRouter};
use crate::saved_upstreams::SavedUpstreams;
use crate::sequence_store::{MemorySequences, SequenceStore};
use crate::source::BundleSource;
use crate::wildcard;

/// The kadns resolver: answers names in kadns zones from verified DHT
/// bundles, and forwards every other name upstream.
///
/// Cheap to clone: clones share the cache, the in-flight lookups and the
/// metrics. Built with [`Resolver::builder`].
pub struct Resolver<S> {
    pub(crate) inner: Arc<Inner<S>>,
}

impl<S> Clone for Resolver<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for Resolver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("router", &self.inner.router.load())
            .field("upstreams", &self.inner.forwarder.load().servers())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner<S> {
    /// Swapped whole by [`Resolver::reload`]; shared with the forwarder.
    pub(crate) router: SharedRouter,
    pub(crate) fetcher: Arc<Fetcher<S>>,
    /// Replaced by [`Resolver::reload`] when upstreams or forwards change.
    pub(crate) forwarder: ArcSwap<Forwarder>,
    /// What [`Resolver::reload`] compares with and rebuilds from.
    pub(crate) reload: ReloadState,
    metrics: Arc<Metrics>,
    max_cname_chain: usize,
    /// One deadline per query, for every step of it.
    deadline: std::time::Duration,
    /// Cancels the background refreshes when the resolver goes away.
    _background: tokio_util::sync::DropGuard,
}

/// Builds a [`Resolver`]. Unset parts default to: an in-memory sequence store
/// (rollback protection for the life of the process only), fresh unregistered
/// metrics, and no own addresses.
#[must_use]
pub struct Builder<S> {
    config: Config,
    source: S,
    sequences: Option<Arc<dyn SequenceStore>>,
    persisted: Option<Arc<dyn BundleStore>>,
    metrics: Option<Arc<Metrics>>,
    local_addrs: Vec<SocketAddr>,
    saved_upstreams: Option<SavedUpstreams>,
}

impl<S> std::fmt::Debug for Builder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("local_addrs", &self.local_addrs)
            .finish_non_exhaustive()
    }
}

impl<S: BundleSource> Builder<S> {
    /// Where the highest sequence per DHT key is remembered: a
    /// [`SledSequences`](crate::SledSequences) for protection across restarts.
    pub fn sequences(mut self, store: impl SequenceStore) -> Self {
        self.sequences = Some(Arc::new(store));
        self
    }

    /// Where verified bundles are persisted for serving stale answers after a
    /// restart: a [`SledBundles`](crate::SledBundles) from
    /// [`SledSequences::bundles`](crate::SledSequences::bundles). Without
    /// one, stale answers come from memory only.
    pub fn persisted_cache(mut self, store: impl BundleStore) -> Self {
        self.persisted = Some(Arc::new(store));
        self
    }

    /// The metrics to record into (register them in your registry first).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The addresses the resolver itself answers on (the stub's sockets):
    /// they are never used as upstreams.
    pub fn local_addrs(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.local_addrs.extend(addrs);
        self
    }

    /// Where the upstreams of the last good start are kept: used when
    /// resolv.conf names no server but this resolver itself (see
    /// [`SavedUpstreams`]). Saving them is the caller's job, once it has
    /// started well ([`Resolver::upstreams`]).
    pub fn saved_upstreams(mut self, saved: SavedUpstreams) -> Self {
        self.saved_upstreams = Some(saved);
        self
    }

    /// Checks the trust anchors, picks the upstream servers (reading
    /// resolv.conf if none are configured) and builds the resolver.
    pub fn build(self) -> Result<Resolver<S>, Error> {
        let router: SharedRouter = Arc::new(ArcSwap::from_pointee(Router::new(
            crate::reload::anchors(&self.config)?,
        )));
        let metrics = self.metrics.unwrap_or_default();
        let forwarder = Forwarder::new(
            &self.config,
            Arc::clone(&router),
            &self.local_addrs,
            Arc::clone(&metrics),
            self.saved_upstreams.as_ref(),
        )?;
        let cache = &self.config.cache;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let fetcher = Fetcher {
            source: self.source,
            cache: Cache::new(
                cache.max_entries,
                cache.max_ttl_secs,
                cache.negative_ttl_secs,
            ),
            sequences: self
                .sequences
                .unwrap_or_else(|| Arc::new(MemorySequences::new())),
            persisted: self.persisted,
            metrics: Arc::clone(&metrics),
            timeout: self.config.dht.timeout(),
            prefetch: cache.prefetch,
            in_flight: Default::default(),
            background: Default::default(),
            shutdown: shutdown.clone(),
        };
        Ok(Resolver {
            inner: Arc::new(Inner {
                router,
                fetcher: Arc::new(fetcher),
                forwarder: ArcSwap::from_pointee(forwarder),
                reload: ReloadState::new(
                    self.config.clone(),
                    self.local_addrs,
                    self.saved_upstreams,
                ),
                metrics,
                max_cname_chain: self.config.dht.max_cname_chain,
                deadline: self.config.query.deadline(),
                _background: shutdown.drop_guard(),
            }),
        })
    }
}

/// What one name's bundle says about one query type.
enum Verdict {
    /// Records of the type (or all, for ANY).
    Records(Arc<kadns_record::VerifiedBundle>),
    /// A CNAME, to follow.
    Cname(Arc<kadns_record::VerifiedBundle>),
    /// The name exists without the type.
    NoData(Arc<kadns_record::VerifiedBundle>),
    /// The name does not exist; `signed` when an empty bundle says so.
    NxDomain { signed: bool },
}

impl Verdict {
    fn of(found: &Found, query_type: RecordType) -> Self {
        let bundle = match found {
            Found::Nothing => return Self::NxDomain { signed: false },
            Found::Bundle(bundle) if bundle.records().is_empty() => {
                return Self::NxDomain { signed: true };
            }
            Found::Bundle(bundle) => Arc::clone(bundle),
        };
        // Meta records (an empty non-terminal's only record) are never data.
        let has = |t: RecordType| bundle.answer_records().any(|r| r.record_type() == t);
        let any = query_type == RecordType::ANY && bundle.answer_records().next().is_some();
        if any || has(query_type) {
            Self::Records(bundle)
        } else if has(RecordType::CNAME) {
            Self::Cname(bundle)
        } else {
            Self::NoData(bundle)
        }
    }
}

impl<S: BundleSource> Resolver<S> {
    /// Starts building a resolver that looks bundles up in `source`.
    pub fn builder(config: Config, source: S) -> Builder<S> {
        Builder {
            config,
            source,
            sequences: None,
            persisted: None,
            metrics: None,
            local_addrs: Vec::new(),
            saved_upstreams: None,
        }
    }

    /// Where a query for `name` goes: a kadns zone, or upstream.
    pub fn route(&self, name: &Name) -> Route {
        self.inner.router.load().route(name)
    }

    /// A counter that moves whenever a cached bundle is replaced (a newer
    /// sequence, or found where nothing was) or dropped while still live.
    /// A cache of rendered answers stores the value read *before* resolving
    /// and serves an answer only while the value is unchanged, so it never
    /// serves an answer from a replaced bundle.
    ///
    /// ```
    /// use kadns_resolver::{Config, MemorySource, Resolver};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let resolver = Resolver::builder(Config::default(), MemorySource::new()).build()?;
    /// assert_eq!(resolver.answer_generation(), 0);
    /// # Ok(()) }
    /// ```
    pub fn answer_generation(&self) -> u64 {
        self.inner.fetcher.cache.answer_generation()
    }

    /// The metrics this resolver records into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The upstream servers in use, in order.
    pub fn upstreams(&self) -> Vec<SocketAddr> {
        self.inner.forwarder.load().servers().to_vec()
    }

    /// Resolves `name` (class IN). Names in kadns zones are answered from
    /// verified bundles, CNAMEs chased; other names are forwarded upstream.
    /// Never fails: failures are an [`Outcome`] too. Answers within the
    /// query deadline (`dht.deadline_ms`), CNAME chasing, the negative
    /// answer's SOA and forwarding included. Safe to cancel.
    pub async fn lookup(&self, name: &Name, query_type: RecordType) -> Answer {
        self.lookup_routed(name, query_type, self.route(name)).await
    }

    /// [`lookup`](Self::lookup) for a caller that has already routed `name`
    /// (the stub routes every query once, to choose between this and
    /// [`forward`](Self::forward)): `route` must be `self.route(name)`.
    /// Names reached by CNAMEs are routed here as usual.
    ///
    /// ```no_run
    /// use hickory_proto::rr::{Name, RecordType};
    /// use kadns_resolver::{Config, MemorySource, Resolver, Route};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let resolver = Resolver::builder(Config::default(), MemorySource::new()).build()?;
    /// let name = Name::from_ascii("www.example.kad.")?;
    /// match resolver.route(&name) {
    ///     Route::Forward => { /* resolver.forward(&message) */ }
    ///     route => {
    ///         let answer = resolver.lookup_routed(&name, RecordType::A, route).await;
    ///         println!("{:?}", answer.outcome);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(skip_all, fields(qname = %name, qtype = %query_type))]
    pub async fn lookup_routed(&self, name: &Name, query_type: RecordType, route: Route) -> Answer {
        let deadline = Deadline::after(self.inner.deadline);
        let resolve = self.resolve(name, query_type, route, deadline);
        let answer = match tokio::time::timeout_at(deadline.at(), resolve).await {
            Ok(answer) => answer,
            Err(_) => Answer::failed(deadline.error(), Vec::new()),
        };
        let outcome = answer.outcome.label();
        self.inner.metrics.count_outcome(outcome);
        match &answer.outcome {
            Outcome::DhtUnavailable { error } | Outcome::Failed { error } => {
                tracing::debug!(outcome, %error, "lookup failed");
            }
            _ => tracing::debug!(outcome, answers = answer.answers.len(), "lookup answered"),
        }
        answer
    }

    /// Forwards a client's raw query upstream as it is (header flags, EDNS,
    /// the DO bit and other options) and returns the upstream's response
    /// with the client's id and question. For the stub, for names that
    /// [`route`](Self::route) sends upstream. An error maps to SERVFAIL; one
    /// of them is [`ForwardError::Loop`]: this very query is being forwarded
    /// by this resolver right now, so it has come back through a loop.
    #[tracing::instrument(skip_all, fields(id = request.metadata.id, qname, qtype))]
    /// Answers come from the forward cache when it holds them; when every
    /// upstream fails, a stale cached answer may be returned
    /// ([`Forwarded::stale`]). `client` is the address the query came
    /// from: forwarding slots are shared fairly among client networks (/24,
    /// /56), and a network over its share or its waiting places gets
    /// [`ForwardError::ClientBusy`] or [`ForwardError::TooManyWaiters`].
    pub async fn forward(
        &self,
        request: &Message,
        client: IpAddr,
    ) -> Result<Forwarded, ForwardError> {
        if let Some(query) = request.queries.first() {
            let span = tracing::Span::current();
            span.record("qname", tracing::field::display(&query.name));
            span.record("qtype", tracing::field::display(query.query_type));
        }
        // The query's one deadline bounds the forward too.
        let result = tokio::time::timeout(
            self.inner.deadline,
            self.inner.forwarder.load_full().forward(request, client),
        )
        .await
        .unwrap_or(Err(ForwardError::Deadline {
            after: self.inner.deadline,
        }));
        match &result {
            Ok(response) => {
                self.inner.metrics.count_outcome("upstream");
                tracing::debug!(rcode = %response.message.metadata.response_code, stale = response.stale, "forwarded");
            }
            Err(error) => {
                self.inner.metrics.count_outcome("servfail");
                tracing::debug!(%error, "forward failed");
            }
        }
        result
    }

    async fn resolve(
        &self,
        qname: &Name,
        query_type: RecordType,
        route: Route,
        deadline: Deadline,
    ) -> Answer {
        let mut first_route = Some(route);
        let mut chain: Vec<Record> = Vec::new();
        let mut authenticated = true;
        // Set once any link of the answer is a stale bundle: why it is.
        let mut stale: Option<LookupError> = None;
        let mut seen = HashSet::new();
        let mut name = qname.clone();
        name.set_fqdn(true);
        // A loop, not recursion: each turn follows one CNAME.
        loop {
            seen.insert(name.clone());
            let route = first_route.take().unwrap_or_else(|| self.route(&name));
            let (zone, apex, owner) = match route {
                Route::Zone { zone, apex, owner } => (zone, apex, owner),
                Route::TooLong { zone, apex } => {
                    let negative_ttl = ttl_secs(self.inner.fetcher.cache.negative_ttl());
                    let soa = self.soa(&zone, &apex, None, negative_ttl, deadline).await;
                    return negative(Outcome::NxDomain, chain, soa, false).with_stale(stale);
                }
                Route::Forward => {
                    return self
                        .forward_lookup(&name, query_type, chain)
                        .await
                        .with_stale(stale);
                }
            };
            let key = DhtKey::derive(&zone, &owner);
            let mut cached = match self.inner.fetcher.get(key, false, deadline).await {
                Ok(cached) => cached,
                Err(error) => return Answer::failed(error, chain),
            };
            if let Some(why) = &cached.stale {
                stale.get_or_insert_with(|| why.clone());
            }
            // NODATA comes from a live bundle like any positive answer: no
            // refetch while the bundle lives.
            let mut verdict = Verdict::of(&cached.found, query_type);
            // RFC 4592: no bundle of its own, so the closest encloser's
            // wildcard may answer, under the query name (wildcard.rs).
            if let Verdict::NxDomain { .. } = verdict {
                match wildcard::source_of_synthesis(&self.inner.fetcher, &zone, &owner, deadline)
                    .await
                {
                    Ok(Some(wild)) => {
                        if let Some(why) = &wild.stale {
                            stale.get_or_insert_with(|| why.clone());
                        }
                        verdict = Verdict::of(&wild.found, query_type);
                        cached = wild;
                    }
                    Ok(None) => {}
                    // Serving stale already: the stale NXDOMAIN stands, as
                    // good as the network allows (EDE 19 says so).
                    Err(_) if cached.stale.is_some() => {}
                    Err(error) => return Answer::failed(error, chain),
                }
            }
            let now = Instant::now();
            let zone_apex = zone.apex();
            let at = Placement {
                owner: &name,
                from: &zone_apex,
                to: &apex,
                ttl_cap: Cached::ttl_left(cached.expires, now),
            };
            match verdict {
                Verdict::Records(bundle) => {
                    let wanted = |t: RecordType| query_type == RecordType::ANY || t == query_type;
                    match records(&bundle, wanted, &at) {
                        Ok(found) => chain.extend(stale_ttls(found, &cached, at.ttl_cap)),
                        Err(error) => return Answer::failed(error, chain),
                    }
                    return Answer {
                        outcome: Outcome::Records,
                        answers: chain,
                        authorities: Vec::new(),
                        authenticated,
                        stale,
                    };
                }
                Verdict::Cname(bundle) => {
                    let cname = match records(&bundle, |t| t == RecordType::CNAME, &at) {
                        Ok(found) => stale_ttls(found, &cached, at.ttl_cap).pop(),
                        Err(error) => return Answer::failed(error, chain),
                    };
                    // `Verdict::Cname` saw a CNAME record, and CNAME RDATA decodes
                    // as `RData::CNAME`; should either ever fail, refuse to follow.
                    let Some(cname) = cname else {
                        return Answer::failed(LookupError::CnameLoop { name }, chain);
                    };
                    let RData::CNAME(target) = &cname.data else {
                        return Answer::failed(LookupError::CnameLoop { name }, chain);
                    };
                    let mut target = target.0.clone();
                    target.set_fqdn(true);
                    chain.push(cname);
                    if chain.len() > self.inner.max_cname_chain {
                        let limit = self.inner.max_cname_chain;
                        return Answer::failed(LookupError::CnameChainTooLong { limit }, chain);
                    }
                    if seen.contains(&target) {
                        return Answer::failed(LookupError::CnameLoop { name: target }, chain);
                    }
                    tracing::trace!(from = %name, to = %target, "following CNAME");
                    name = target;
                }
                Verdict::NoData(bundle) => {
                    let negative_ttl = ttl_secs(self.inner.fetcher.cache.negative_ttl());
                    let at = Placement {
                        ttl_cap: at.ttl_cap.min(negative_ttl),
                        ..at
                    };
                    let apex_bundle = if owner.is_apex() { Some(bundle) } else { None };
                    let soa = self
                        .soa(&zone, &apex, apex_bundle, at.ttl_cap, deadline)
                        .await;
                    return negative(Outcome::NoData, chain, soa, authenticated).with_stale(stale);
                }
                Verdict::NxDomain { signed } => {
                    authenticated &= signed;
                    let ttl = Cached::ttl_left(cached.negative_until, now);
                    let soa = self.soa(&zone, &apex, None, ttl, deadline).await;
                    return negative(Outcome::NxDomain, chain, soa, authenticated)
                        .with_stale(stale);
                }
            }
        }
    }

    /// The authority SOA for a negative answer in `zone`: from the apex
    /// bundle (given, cached or looked up within the query's deadline), else
    /// synthesized. A failed or late apex lookup does not fail the answer.
    async fn soa(
        &self,
        zone: &ZoneId,
        apex: &Name,
        apex_bundle: Option<Arc<kadns_record::VerifiedBundle>>,
        ttl_cap: u32,
        deadline: Deadline,
    ) -> Record {
        let apex_bundle = match apex_bundle {
            Some(bundle) => Some(bundle),
            None => match self
                .inner
                .fetcher
                .get(DhtKey::derive(zone, &OwnerName::apex()), false, deadline)
                .await
            {
                Ok(Cached {
                    found: Found::Bundle(bundle),
                    ..
                }) => Some(bundle),
                Ok(_) => None,
                Err(error) => {
                    tracing::debug!(%error, "apex lookup for the SOA failed: synthesizing one");
                    None
                }
            },
        };
        let zone_apex = zone.apex();
        let at = Placement {
            owner: apex,
            from: &zone_apex,
            to: apex,
            ttl_cap,
        };
        let negative_ttl = ttl_secs(self.inner.fetcher.cache.negative_ttl());
        negative_soa(apex_bundle.as_deref(), &at, negative_ttl)
    }

    async fn forward_lookup(
        &self,
        name: &Name,
        query_type: RecordType,
        mut chain: Vec<Record>,
    ) -> Answer {
        match self
            .inner
            .forwarder
            .load_full()
            .query(name, query_type)
            .await
        {
            Ok(response) => {
                chain.extend(response.answers.iter().cloned());
                Answer {
                    authorities: response.authorities.clone(),
                    outcome: Outcome::Upstream {
                        response: Box::new(response),
                    },
                    answers: chain,
                    authenticated: false,
                    stale: None,
                }
            }
            Err(source) => Answer::failed(LookupError::Forward { source }, chain),
        }
    }
}

fn negative(outcome: Outcome, answers: Vec<Record>, soa: Record, authenticated: bool) -> Answer {
    Answer {
        outcome,
        answers,
        authorities: vec![soa],
        authenticated,
        stale: None,
    }
}

/// RFC 8767: a stale record's TTL is what is left of the stale window
/// (at most 30 s), whatever TTL was published.
fn stale_ttls(mut found: Vec<Record>, cached: &Cached, ttl_left: u32) -> Vec<Record> {
    if cached.stale.is_some() {
        for record in &mut found {
            record.ttl = ttl_left;
        }
    }
    found
}

fn ttl_secs(duration: std::time::Duration) -> u32 {
    u32::try_from(duration.as_secs()).unwrap_or(u32::MAX)
}
