//! DNS over HTTPS (RFC 8484), the HTTP side as pure functions: a request's
//! DNS query out of a GET (`?dns=` base64url) or a POST
//! (`application/dns-message`), and a DNS response into an HTTP response
//! whose freshness is the smallest TTL in it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use kadns_resolver::hickory_proto::op::Message;

/// The path DoH is served on (RFC 8484's example, what clients default to).
pub(crate) const DOH_PATH: &str = "/dns-query";

/// The media type of a DNS message in HTTP.
pub(crate) const DNS_MESSAGE: &str = "application/dns-message";

/// Largest DNS message accepted in a request (the DNS message limit).
pub(crate) const MAX_DOH_QUERY: usize = 65_535;

/// Smallest DNS message: a header.
const MIN_DNS_MESSAGE: usize = 12;

/// Why a DoH request carries no DNS query; each maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DohError {
    /// The path is not [`DOH_PATH`].
    #[error("not found: DNS queries go to {DOH_PATH}")]
    NotFound,
    /// Neither GET nor POST.
    #[error("method not allowed: use GET or POST")]
    Method,
    /// A POST whose Content-Type is not `application/dns-message`.
    #[error("unsupported media type: the body must be {DNS_MESSAGE}")]
    MediaType,
    /// The query is larger than [`MAX_DOH_QUERY`].
    #[error("payload too large: a DNS message is at most {MAX_DOH_QUERY} bytes")]
    TooLarge,
    /// The `dns` parameter is missing or not base64url, or the message is
    /// shorter than a DNS header.
    #[error("bad request: {reason}")]
    BadRequest {
        /// What is wrong.
        reason: &'static str,
    },
}

impl DohError {
    /// The HTTP status answering this error.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Method => StatusCode::METHOD_NOT_ALLOWED,
            Self::MediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// A label for metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Method => "method",
            Self::MediaType => "media_type",
            Self::TooLarge => "too_large",
            Self::BadRequest { .. } => "bad_request",
        }
    }
}

/// What the listener does with a request once its head is read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DohRequest {
    /// A GET: the query, decoded from the URI.
    Query(Vec<u8>),
    /// A POST whose head is acceptable: read the body (at most
    /// [`MAX_DOH_QUERY`] bytes) and pass it to [`check_body`].
    ReadBody,
}

/// Checks a request's head: the path, the method, and for GET the `dns`
/// parameter (base64url without padding, RFC 8484 §4.1), for POST the
/// Content-Type and a Content-Length within bounds.
pub(crate) fn parse_head(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<DohRequest, DohError> {
    if uri.path() != DOH_PATH {
        return Err(DohError::NotFound);
    }
    match *method {
        Method::GET => {
            let encoded = uri
                .query()
                .unwrap_or_default()
                .split('&')
                .find_map(|pair| pair.strip_prefix("dns="))
                .ok_or(DohError::BadRequest {
                    reason: "no dns parameter",
                })?;
            // Base64 of 65,535 bytes: larger cannot be a DNS message (http's
            // URI limit, 64 KiB, already keeps it below that).
            if encoded.len() > MAX_DOH_QUERY.div_ceil(3) * 4 {
                return Err(DohError::TooLarge);
            }
            // Padding is not allowed by RFC 8484, but some clients send it.
            let encoded = encoded.trim_end_matches("%3D").trim_end_matches('=');
            let query = URL_SAFE_NO_PAD
                .decode(encoded)
                .map_err(|_| DohError::BadRequest {
                    reason: "the dns parameter is not base64url",
                })?;
            check_body(&query)?;
            Ok(DohRequest::Query(query))
        }
        Method::POST => {
            let media = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(str::trim);
            if !media.is_some_and(|m| m.eq_ignore_ascii_case(DNS_MESSAGE)) {
                return Err(DohError::MediaType);
            }
            let length = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if length.is_some_and(|l| l > MAX_DOH_QUERY as u64) {
                return Err(DohError::TooLarge);
            }
            Ok(DohRequest::ReadBody)
        }
        _ => Err(DohError::Method),
    }
}

/// Checks a query's size: a DNS header at least, [`MAX_DOH_QUERY`] at most.
pub(crate) fn check_body(query: &[u8]) -> Result<(), DohError> {
    if query.len() > MAX_DOH_QUERY {
        return Err(DohError::TooLarge);
    }
    if query.len() < MIN_DNS_MESSAGE {
        return Err(DohError::BadRequest {
            reason: "shorter than a DNS header",
        });
    }
    Ok(())
}

/// The headers of a successful DoH response carrying `response`:
/// Content-Type, Content-Length and Cache-Control `max-age` (RFC 8484 §5.1).
pub(crate) fn response_headers(response: &[u8]) -> Vec<(header::HeaderName, HeaderValue)> {
    vec![
        (header::CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE)),
        (header::CONTENT_LENGTH, HeaderValue::from(response.len())),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_str(&format!("max-age={}", max_age(response)))
                .expect("digits are a valid header value"),
        ),
    ]
}

/// How long an HTTP cache may keep `response`: the smallest TTL among its
/// answer records; for an answer without them, the smallest among its
/// authority records (the SOA of a negative answer, whose TTL the stub
/// already sets to the negative caching time); 0 when it has neither or
/// does not decode.
pub(crate) fn max_age(response: &[u8]) -> u32 {
    let Ok(message) = Message::from_vec(response) else {
        return 0;
    };
    let section = if message.answers.is_empty() {
        &message.authorities
    } else {
        &message.answers
    };
    section.iter().map(|r| r.ttl).min().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kadns_resolver::hickory_proto::op::{Message, OpCode, Query};
    use kadns_resolver::hickory_proto::rr::rdata::{A, SOA};
    use kadns_resolver::hickory_proto::rr::{Name, RData, Record, RecordType};

    fn query_bytes() -> Vec<u8> {
        let mut query = Message::query();
        query.add_query(Query::query(
            Name::from_ascii("www.example.").unwrap(),
            RecordType::A,
        ));
        query.to_vec().unwrap()
    }

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    #[test]
    fn get_decodes_base64url_without_padding() {
        let bytes = query_bytes();
        let encoded = URL_SAFE_NO_PAD.encode(&bytes);
        let head = parse_head(
            &Method::GET,
            &uri(&format!("/dns-query?ct=x&dns={encoded}")),
            &HeaderMap::new(),
        );
        assert_eq!(head, Ok(DohRequest::Query(bytes.clone())));
        // RFC 8484's own example (§4.1.1), www.example.com A.
        let rfc = "AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB";
        let Ok(DohRequest::Query(q)) = parse_head(
            &Method::GET,
            &uri(&format!("/dns-query?dns={rfc}")),
            &HeaderMap::new(),
        ) else {
            panic!("the RFC example is refused");
        };
        let message = Message::from_vec(&q).unwrap();
        assert_eq!(message.queries[0].name.to_ascii(), "www.example.com.");

        let get = |u: &str| parse_head(&Method::GET, &uri(u), &HeaderMap::new());
        assert_eq!(get("/other?dns=AAAB"), Err(DohError::NotFound));
        assert!(matches!(
            get("/dns-query"),
            Err(DohError::BadRequest { .. })
        ));
        assert!(matches!(
            get("/dns-query?dns=***"),
            Err(DohError::BadRequest { .. })
        ));
        assert!(
            matches!(get("/dns-query?dns=AAAB"), Err(DohError::BadRequest { .. })),
            "shorter than a header"
        );
    }

    #[test]
    fn post_needs_the_media_type_and_a_bounded_length() {
        let mut headers = HeaderMap::new();
        let post = |h: &HeaderMap| parse_head(&Method::POST, &uri("/dns-query"), h);
        assert_eq!(post(&headers), Err(DohError::MediaType));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(post(&headers), Err(DohError::MediaType));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
        assert_eq!(post(&headers), Ok(DohRequest::ReadBody));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(70_000));
        assert_eq!(post(&headers), Err(DohError::TooLarge));
        assert_eq!(
            parse_head(&Method::PUT, &uri("/dns-query"), &headers),
            Err(DohError::Method)
        );
        assert_eq!(check_body(&query_bytes()), Ok(()));
        assert_eq!(
            check_body(&vec![0; MAX_DOH_QUERY + 1]),
            Err(DohError::TooLarge)
        );
        assert_eq!(DohError::TooLarge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn max_age_is_the_smallest_answer_ttl_or_the_soa_of_a_negative_answer() {
        let name = Name::from_ascii("www.example.").unwrap();
        let mut response = Message::response(1, OpCode::Query);
        for ttl in [300, 60, 900] {
            response.answers.push(Record::from_rdata(
                name.clone(),
                ttl,
                RData::A(A::new(192, 0, 2, 1)),
            ));
        }
        let bytes = response.to_vec().unwrap();
        assert_eq!(max_age(&bytes), 60);
        let headers = response_headers(&bytes);
        assert!(headers.contains(&(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=60")
        )));
        assert!(headers.contains(&(header::CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE))));

        let mut negative = Message::response(1, OpCode::Query);
        let soa = SOA::new(name.clone(), name.clone(), 1, 3600, 600, 86_400, 30);
        negative
            .authorities
            .push(Record::from_rdata(name, 30, RData::SOA(soa)));
        assert_eq!(max_age(&negative.to_vec().unwrap()), 30);
        assert_eq!(
            max_age(&Message::response(1, OpCode::Query).to_vec().unwrap()),
            0
        );
        assert_eq!(max_age(b"junk"), 0);
    }
}
