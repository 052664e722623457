//! Message Stream Encryption over a [`PeerStream`]: [`handshake`] drives the sans-IO
//! [`MseInitiator`] over an open connection, and [`Encrypted`] then carries the rest of the
//! connection, RC4-encrypting what is written and decrypting what is read (or passing it
//! through if the peer selected plaintext).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use estudely_peer_wire::mse::{Rc4, RANDOM_LEN};
use estudely_peer_wire::{CryptoProvide, MseInitiator, MseState};
use rand::RngCore as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::time::{timeout_at, Instant};

use super::PeerStream;
use super::{Encryption, FailureKind, FetchFailure};

/// Largest write accepted (encrypted and buffered) at once.
const MAX_WRITE: usize = 64 * 1024;

/// A connection after a successful MSE handshake.
pub struct Encrypted {
    inner: Box<dyn PeerStream>,
    enc: Option<Rc4>,
    dec: Option<Rc4>,
    /// Decrypted bytes that arrived with the end of the handshake, not yet read.
    leftover: Vec<u8>,
    leftover_at: usize,
    /// Encrypted bytes accepted by `poll_write` and not yet written to `inner`.
    pending: Vec<u8>,
    pending_at: usize,
    encryption: Encryption,
}

impl Encrypted {
    /// How the connection is carried: [`Encryption::Rc4`] or [`Encryption::MsePlaintext`].
    pub fn encryption(&self) -> Encryption {
        self.encryption
    }

    /// Write pending encrypted bytes to the inner stream; `Ready(Ok)` once none is left.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending_at < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.pending_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending_at += n;
        }
        self.pending.clear();
        self.pending_at = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Encrypted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // Keep written bytes moving while the caller waits for an answer.
        if let Poll::Ready(Err(e)) = this.drain(cx) {
            return Poll::Ready(Err(e));
        }
        if this.leftover_at < this.leftover.len() {
            let n = buf.remaining().min(this.leftover.len() - this.leftover_at);
            buf.put_slice(&this.leftover[this.leftover_at..this.leftover_at + n]);
            this.leftover_at += n;
            if this.leftover_at == this.leftover.len() {
                this.leftover = Vec::new();
                this.leftover_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if let Some(dec) = &mut this.dec {
            dec.apply(&mut buf.filled_mut()[before..]);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Encrypted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // Bytes are encrypted exactly once, when accepted; accept more only once the
        // previous ones are out, so at most MAX_WRITE bytes wait here.
        ready!(this.drain(cx))?;
        let n = data.len().min(MAX_WRITE);
        this.pending.extend_from_slice(&data[..n]);
        if let Some(enc) = &mut this.enc {
            enc.apply(&mut this.pending);
        }
        // Try to send now; what cannot go yet goes on the next write, read or flush.
        if let Poll::Ready(Err(e)) = this.drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Run the MSE handshake for `info_hash` over `stream` by `by`, offering `provide`.
/// Fails as [`FailureKind::Timeout`] (the caller words it), [`FailureKind::Closed`] or
/// [`FailureKind::Protocol`].
pub(super) async fn handshake(
    mut stream: Box<dyn PeerStream>,
    info_hash: [u8; 20],
    provide: CryptoProvide,
    by: Instant,
) -> Result<Encrypted, FetchFailure> {
    let mut random = [0u8; RANDOM_LEN];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let mut mse = MseInitiator::new(info_hash, &random, provide);
    // Small reads: the handshake is at most about 1.2 KiB; later bytes stay in the socket
    // or come back as leftover.
    let mut buf = [0u8; 1024];
    let timeout = || FetchFailure::new(FailureKind::Timeout, "no MSE handshake in time");
    loop {
        if let Some(out) = mse.poll_transmit() {
            match timeout_at(by, stream.write_all(&out)).await {
                Err(_) => return Err(timeout()),
                Ok(Err(e)) => return Err(closed(mse.state(), &format!("write: {e}"))),
                Ok(Ok(())) => {}
            }
        }
        match mse.state() {
            MseState::Done => break,
            MseState::Failed(e) => {
                return Err(FetchFailure::new(
                    FailureKind::Protocol,
                    format!("MSE: {e}"),
                ))
            }
            _ => {}
        }
        match timeout_at(by, stream.read(&mut buf)).await {
            Err(_) => return Err(timeout()),
            Ok(Ok(0)) => return Err(closed(mse.state(), "EOF")),
            Ok(Ok(n)) => mse.handle_input(&buf[..n]),
            Ok(Err(e)) => return Err(closed(mse.state(), &e.to_string())),
        }
    }
    let (cipher, leftover) = mse
        .into_stream()
        .map_err(|e| FetchFailure::new(FailureKind::Protocol, format!("MSE: {e}")))?;
    let encryption = if cipher.is_encrypted() {
        Encryption::Rc4
    } else {
        Encryption::MsePlaintext
    };
    let (enc, dec) = cipher.split();
    Ok(Encrypted {
        inner: stream,
        enc,
        dec,
        leftover,
        leftover_at: 0,
        pending: Vec::new(),
        pending_at: 0,
        encryption,
    })
}

fn closed(state: &MseState, why: &str) -> FetchFailure {
    FetchFailure::new(
        FailureKind::Closed,
        format!("connection closed during the MSE handshake ({state:?}; {why})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use estudely_peer_wire::MseResponder;
    use std::time::Duration;
    use tokio::io::duplex;

    /// A responder over the other end of an in-memory pipe, echoing decrypted bytes back
    /// encrypted.
    async fn echo_responder(mut io: tokio::io::DuplexStream, accept: CryptoProvide) {
        let mut b = MseResponder::new(vec![[7; 20]], &[9; RANDOM_LEN], accept);
        let mut buf = [0u8; 4096];
        while !b.is_done() {
            let n = io.read(&mut buf).await.unwrap();
            assert!(n > 0);
            b.handle_input(&buf[..n]);
            if let Some(out) = b.poll_transmit() {
                io.write_all(&out).await.unwrap();
            }
        }
        let (mut cipher, rest) = b.into_stream().unwrap();
        assert!(rest.is_empty());
        loop {
            let n = io.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            cipher.decrypt(&mut buf[..n]);
            let mut reply = buf[..n].to_vec();
            reply.reverse();
            cipher.encrypt(&mut reply);
            io.write_all(&reply).await.unwrap();
        }
    }

    async fn round_trip(accept: CryptoProvide, expect: Encryption) {
        // Room for a whole handshake message: both sides write before they read.
        let (a, b) = duplex(4096);
        let server = tokio::spawn(echo_responder(b, accept));
        let by = Instant::now() + Duration::from_secs(60);
        let mut s = handshake(Box::new(a), [7; 20], CryptoProvide::BOTH, by)
            .await
            .unwrap();
        assert_eq!(s.encryption(), expect);
        let msg: Vec<u8> = (0..200u8).collect();
        s.write_all(&msg).await.unwrap();
        s.flush().await.unwrap();
        let mut back = vec![0u8; 200];
        s.read_exact(&mut back).await.unwrap();
        back.reverse();
        assert_eq!(back, msg);
        drop(s);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn rc4_round_trip_in_memory() {
        round_trip(CryptoProvide::BOTH, Encryption::Rc4).await;
    }

    #[tokio::test]
    async fn plaintext_select_round_trip_in_memory() {
        round_trip(CryptoProvide::PLAINTEXT, Encryption::MsePlaintext).await;
    }

    #[tokio::test]
    async fn garbage_is_a_protocol_failure() {
        let (a, mut b) = duplex(4096);
        let server = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let _ = b.read(&mut buf).await;
            // A valid-looking Yb (2) and then no VC, ever.
            let mut yb = [0u8; 96];
            yb[95] = 2;
            b.write_all(&yb).await.unwrap();
            b.write_all(&[0x42; 600]).await.unwrap();
            let _ = b.read(&mut buf).await;
        });
        let by = Instant::now() + Duration::from_secs(60);
        let err = handshake(Box::new(a), [7; 20], CryptoProvide::BOTH, by)
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind, FailureKind::Protocol, "{err}");
        server.abort();
    }
}
