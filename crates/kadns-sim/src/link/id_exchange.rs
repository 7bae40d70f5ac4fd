//! The simulator's stand-in for Noise on the byte-stream stacks
//! ([`Stack::Yamux`](super::Stack::Yamux)).

use std::io;

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt};
use libp2p::PeerId;
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};

/// The simulator's stand-in for Noise: each side sends its peer id (one
/// length byte, then the id's bytes) and reads the other's. The dialer can
/// send data after one round trip, as with Noise XX; a dead host never
/// answers, so a dial into it hangs until the upgrade timeout, as with
/// Noise. Ids are announced, not proven: see [`Stack::Noise`](super::Stack::Noise).
#[derive(Clone, Copy, Debug)]
pub struct IdExchange {
    /// This side's peer id.
    pub local: PeerId,
}

/// [`IdExchange`]'s protocol name in multistream-select.
pub const ID_EXCHANGE_PROTOCOL: &str = "/kadns-sim/id/1.0.0";

impl UpgradeInfo for IdExchange {
    type Info = &'static str;
    type InfoIter = std::iter::Once<&'static str>;

    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once(ID_EXCHANGE_PROTOCOL)
    }
}

async fn exchange_ids<C>(local: PeerId, mut io: C) -> io::Result<(PeerId, C)>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mine = local.to_bytes();
    let len = u8::try_from(mine.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut hello = Vec::with_capacity(1 + mine.len());
    hello.push(len);
    hello.extend_from_slice(&mine);
    io.write_all(&hello).await?;
    io.flush().await?;
    let mut len = [0u8; 1];
    io.read_exact(&mut len).await?;
    let mut theirs = vec![0u8; usize::from(len[0])];
    io.read_exact(&mut theirs).await?;
    let peer =
        PeerId::from_bytes(&theirs).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((peer, io))
}

impl<C> InboundConnectionUpgrade<C> for IdExchange
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = (PeerId, C);
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<(PeerId, C)>>;

    fn upgrade_inbound(self, socket: C, _: Self::Info) -> Self::Future {
        exchange_ids(self.local, socket).boxed()
    }
}

impl<C> OutboundConnectionUpgrade<C> for IdExchange
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = (PeerId, C);
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<(PeerId, C)>>;

    fn upgrade_outbound(self, socket: C, _: Self::Info) -> Self::Future {
        exchange_ids(self.local, socket).boxed()
    }
}
