//! What a lookup returns.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::Record;

use crate::ede::ExtendedError;
use crate::error::LookupError;

/// The result of [`Resolver::lookup`](crate::Resolver::lookup): an outcome and
/// the records for the answer and authority sections.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Answer {
    /// What happened.
    pub outcome: Outcome,
    /// The answer section: a CNAME chain, if any, then the records asked
    /// for. The first owner name is the query name exactly as asked (letter
    /// case included); names in kadns zones are written under the apex the
    /// query used. TTLs are at most what was published, and count down while
    /// the bundle sits in the cache.
    pub answers: Vec<Record>,
    /// The authority section: the zone's SOA for NXDOMAIN and NODATA (see
    /// `docs/resolver.md` for when it is synthesized), or an upstream's
    /// authority section.
    pub authorities: Vec<Record>,
    /// True only when every record in `answers`, and the denial for NXDOMAIN
    /// and NODATA, comes from bundles verified against their zone key: the
    /// stub's AD bit. Never true for upstream data, nor for an NXDOMAIN that
    /// rests on finding no bundle at all (a DHT can withhold, not forge).
    pub authenticated: bool,
    /// Set when the answer, or a link of its CNAME chain, comes from the
    /// last verified bundle because fetching a fresh one failed (RFC 8767
    /// serve-stale): its TTLs are at most 30 s and never outlast the
    /// signature. Holds the failure.
    pub stale: Option<LookupError>,
}

impl Answer {
    pub(crate) fn failed(error: LookupError, answers: Vec<Record>) -> Self {
        let outcome = if error.is_dht_unavailable() {
            Outcome::DhtUnavailable { error }
        } else {
            Outcome::Failed { error }
        };
        Self {
            outcome,
            answers,
            authorities: Vec::new(),
            authenticated: false,
            stale: None,
        }
    }

    /// Marks the answer stale (when `why` is set).
    pub(crate) fn with_stale(mut self, why: Option<LookupError>) -> Self {
        if why.is_some() {
            self.stale = why;
        }
        self
    }

    /// The Extended DNS Error (RFC 8914) to send with this answer: the
    /// reason for a SERVFAIL, or "Stale Answer" / "Stale NXDOMAIN Answer"
    /// for a stale one. `None` for a fresh answer or an upstream's response.
    pub fn extended_error(&self) -> Option<ExtendedError> {
        match (&self.outcome, &self.stale) {
            (Outcome::DhtUnavailable { error } | Outcome::Failed { error }, _) => {
                Some(ExtendedError::for_lookup(error))
            }
            (Outcome::NxDomain, Some(why)) => Some(ExtendedError::new(
                ExtendedError::STALE_NXDOMAIN_ANSWER,
                why.to_string(),
            )),
            (_, Some(why)) => Some(ExtendedError::new(
                ExtendedError::STALE_ANSWER,
                why.to_string(),
            )),
            _ => None,
        }
    }

    /// The RCODE for this answer: the one mapping from outcomes to response codes.
    pub fn response_code(&self) -> ResponseCode {
        self.outcome.response_code()
    }
}

/// How a lookup ended.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Verified records of the type asked for (NOERROR).
    Records,
    /// The name does not exist in its kadns zone: no bundle was found after a
    /// completed lookup, or the zone published an empty bundle for it.
    NxDomain,
    /// The name exists in its kadns zone but has no records of the type.
    NoData,
    /// The DHT could not be reached or did not answer in time (SERVFAIL; not
    /// cached).
    DhtUnavailable {
        /// Why.
        error: LookupError,
    },
    /// An upstream server answered (any RCODE). For a CNAME that left kadns,
    /// [`Answer::answers`] holds the chain followed by the upstream's answers.
    Upstream {
        /// The upstream's response, as received (id and question are those of
        /// the query the resolver sent).
        response: Box<Message>,
    },
    /// Anything else that went wrong: a refused bundle (forged, rollback), a
    /// CNAME loop, no or no working upstream (SERVFAIL).
    Failed {
        /// Why.
        error: LookupError,
    },
}

impl Outcome {
    /// The RCODE a DNS server answers with for this outcome.
    pub fn response_code(&self) -> ResponseCode {
        match self {
            Self::Records | Self::NoData => ResponseCode::NoError,
            Self::NxDomain => ResponseCode::NXDomain,
            Self::Upstream { response } => response.metadata.response_code,
            Self::DhtUnavailable { .. } | Self::Failed { .. } => ResponseCode::ServFail,
        }
    }

    /// The `outcome` label for metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Records => "noerror",
            Self::NxDomain => "nxdomain",
            Self::NoData => "nodata",
            Self::Upstream { .. } => "upstream",
            Self::DhtUnavailable { .. } | Self::Failed { .. } => "servfail",
        }
    }
}
