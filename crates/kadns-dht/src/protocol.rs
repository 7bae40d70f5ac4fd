//! `/kadns/store/1.0.0`: a store request that is answered only after the
//! receiver validated the record and flushed it to disk.
//!
//! Request: 32 bytes of DHT key, then the bundle bytes, then end of stream.
//! Response: `0x00` (stored), or `0x01` followed by a UTF-8 reason of at most
//! [`MAX_REASON_LEN`] bytes (refused).

use std::io;

use futures::prelude::*;
use kadns_record::{DhtKey, MAX_BUNDLE_LEN};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;

/// The protocol name.
pub const STORE_PROTOCOL: StreamProtocol = StreamProtocol::new("/kadns/store/1.0.0");

/// Largest request read: the key and twice the bundle limit, so that a
/// slightly oversized bundle still reaches validation and gets a `too_large`
/// answer, while a huge one is cut off at the stream.
pub const MAX_REQUEST_LEN: usize = 32 + 2 * MAX_BUNDLE_LEN;

/// Longest refusal reason sent or read, in bytes.
pub const MAX_REASON_LEN: usize = 64;

/// A request to store a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreRequest {
    /// The DHT key the record is offered under.
    pub key: DhtKey,
    /// The bundle bytes (unvalidated until the receiver checks them).
    pub bytes: Vec<u8>,
}

/// The answer to a [`StoreRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreResponse {
    /// Valid, and on the receiver's disk (or already was).
    Stored,
    /// Refused, with the reason label.
    Refused {
        /// [`Refusal::reason`](crate::Refusal::reason), or another short label.
        reason: String,
    },
}

/// The codec of [`STORE_PROTOCOL`].
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreCodec;

async fn read_bounded<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message too large",
        ));
    }
    Ok(buf)
}

impl Codec for StoreCodec {
    type Protocol = StreamProtocol;
    type Request = StoreRequest;
    type Response = StoreResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<StoreRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let buf = read_bounded(io, MAX_REQUEST_LEN).await?;
        let (key, bytes) = buf.split_at_checked(32).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "request shorter than a key")
        })?;
        let key = DhtKey::from_slice(key)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad key"))?;
        Ok(StoreRequest {
            key,
            bytes: bytes.to_vec(),
        })
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<StoreResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let buf = read_bounded(io, 1 + MAX_REASON_LEN).await?;
        match buf.split_first() {
            Some((0, [])) => Ok(StoreResponse::Stored),
            Some((1, reason)) => Ok(StoreResponse::Refused {
                reason: String::from_utf8_lossy(reason).into_owned(),
            }),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad store response",
            )),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: StoreRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(req.key.as_bytes()).await?;
        io.write_all(&req.bytes).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: StoreResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match res {
            StoreResponse::Stored => io.write_all(&[0]).await?,
            StoreResponse::Refused { reason } => {
                let mut end = reason.len().min(MAX_REASON_LEN);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                io.write_all(&[1]).await?;
                io.write_all(reason.as_bytes().get(..end).unwrap_or_default())
                    .await?;
            }
        }
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;

    use super::*;

    #[tokio::test]
    async fn codec_round_trips_and_bounds() {
        let mut codec = StoreCodec;
        let req = StoreRequest {
            key: DhtKey::from_bytes([3; 32]),
            bytes: vec![9; 100],
        };
        let mut buf = Cursor::new(Vec::new());
        codec
            .write_request(&STORE_PROTOCOL, &mut buf, req.clone())
            .await
            .unwrap();
        let mut read = Cursor::new(buf.into_inner());
        assert_eq!(
            codec
                .read_request(&STORE_PROTOCOL, &mut read)
                .await
                .unwrap(),
            req
        );

        for res in [
            StoreResponse::Stored,
            StoreResponse::Refused {
                reason: "older".to_owned(),
            },
        ] {
            let mut buf = Cursor::new(Vec::new());
            codec
                .write_response(&STORE_PROTOCOL, &mut buf, res.clone())
                .await
                .unwrap();
            let mut read = Cursor::new(buf.into_inner());
            assert_eq!(
                codec
                    .read_response(&STORE_PROTOCOL, &mut read)
                    .await
                    .unwrap(),
                res
            );
        }

        // Too long, too short, and a reason cut at the bound.
        let mut read = Cursor::new(vec![0u8; MAX_REQUEST_LEN + 1]);
        assert!(
            codec
                .read_request(&STORE_PROTOCOL, &mut read)
                .await
                .is_err()
        );
        let mut read = Cursor::new(vec![0u8; 31]);
        assert!(
            codec
                .read_request(&STORE_PROTOCOL, &mut read)
                .await
                .is_err()
        );
        let mut buf = Cursor::new(Vec::new());
        let long = StoreResponse::Refused {
            reason: "é".repeat(100),
        };
        codec
            .write_response(&STORE_PROTOCOL, &mut buf, long)
            .await
            .unwrap();
        assert!(buf.get_ref().len() <= 1 + MAX_REASON_LEN);
    }
}
