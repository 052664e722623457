//! One metadata-fetch attempt at one peer: the socket and the clock around a
//! [`MetadataSession`].

use std::net::SocketAddr;

use estudely_peer_wire::{
    CryptoProvide, InfoSummary, MetadataSession, SessionConfig, SessionState,
};
use rand::RngCore as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::encrypted::handshake as mse_handshake;
use super::{
    Encryption, EncryptionPolicy, FailureKind, FetchConfig, FetchFailure, FetchedMetadata,
};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 32 * 1024;

/// Fetch and verify the info dict of `info_hash` (a v1 infohash or a v2 one truncated to 20
/// bytes) from `peer`, within [`FetchConfig::attempt_timeout`].
pub async fn fetch_one(
    peer: SocketAddr,
    info_hash: [u8; 20],
    cfg: &FetchConfig,
) -> Result<FetchedMetadata, FetchFailure> {
    fetch_one_until(peer, info_hash, cfg, Instant::now() + cfg.attempt_timeout).await
}

/// [`fetch_one`] with an extra deadline (e.g. a batch's), whichever comes first.
pub async fn fetch_one_until(
    peer: SocketAddr,
    info_hash: [u8; 20],
    cfg: &FetchConfig,
    deadline: Instant,
) -> Result<FetchedMetadata, FetchFailure> {
    // Peers come from the network (or from a file made from it): never connect to an
    // address the policy refuses, whatever the caller passed.
    if let Err(range) = cfg.addr_policy.check(&peer) {
        return Err(FetchFailure::new(
            FailureKind::AddressRefused,
            format!("{range} address refused (see --allow-private)"),
        ));
    }
    let start = Instant::now();
    let deadline = deadline.min(start + cfg.attempt_timeout);
    let timed_out = |what: String, step_end: Instant| {
        let detail = if deadline <= step_end {
            format!(
                "attempt deadline reached after {} ({what})",
                secs(start, deadline)
            )
        } else {
            what
        };
        FetchFailure::new(FailureKind::Timeout, detail)
    };

    let stream = dial(peer, cfg, start, deadline, &timed_out).await?;
    match cfg.encryption {
        EncryptionPolicy::Off => plain(stream, peer, info_hash, cfg, deadline, &timed_out).await,
        EncryptionPolicy::Required => {
            let provide = CryptoProvide::RC4;
            encrypted(stream, provide, peer, info_hash, cfg, deadline, &timed_out).await
        }
        EncryptionPolicy::Prefer => {
            match plain(stream, peer, info_hash, cfg, deadline, &timed_out).await {
                Err(f) if closed_before_handshake(&f) && Instant::now() < deadline => {
                    // The usual answer of a peer that requires encryption: once more, with
                    // MSE, within the same deadline.
                    let stream = dial(peer, cfg, Instant::now(), deadline, &timed_out).await?;
                    let provide = CryptoProvide::BOTH;
                    encrypted(stream, provide, peer, info_hash, cfg, deadline, &timed_out)
                        .await
                        .map_err(|e| {
                            FetchFailure::new(e.kind, format!("{}; then with MSE: {e}", f.detail))
                        })
                }
                r => r,
            }
        }
    }
}

/// The metadata exchange in plaintext.
async fn plain(
    mut stream: Box<dyn PeerStream>,
    peer: SocketAddr,
    info_hash: [u8; 20],
    cfg: &FetchConfig,
    deadline: Instant,
    timed_out: &impl Fn(String, Instant) -> FetchFailure,
) -> Result<FetchedMetadata, FetchFailure> {
    exchange(&mut stream, peer, info_hash, cfg, deadline, timed_out).await
}

/// The MSE handshake (offering `provide`, under the handshake timeout), then the metadata
/// exchange over the encrypted stream.
async fn encrypted(
    stream: Box<dyn PeerStream>,
    provide: CryptoProvide,
    peer: SocketAddr,
    info_hash: [u8; 20],
    cfg: &FetchConfig,
    deadline: Instant,
    timed_out: &impl Fn(String, Instant) -> FetchFailure,
) -> Result<FetchedMetadata, FetchFailure> {
    let by = deadline.min(Instant::now() + cfg.handshake_timeout);
    let enc = match mse_handshake(stream, info_hash, provide, by).await {
        Err(f) if f.kind == FailureKind::Timeout => {
            let what = format!("no MSE handshake within {:?}", cfg.handshake_timeout);
            return Err(timed_out(what, by));
        }
        r => r?,
    };
    let encryption = enc.encryption();
    let mut stream: Box<dyn PeerStream> = Box::new(enc);
    let mut fetched = exchange(&mut stream, peer, info_hash, cfg, deadline, timed_out).await?;
    fetched.encryption = encryption;
    Ok(fetched)
}

/// Whether the peer closed the connection before answering our BitTorrent handshake.
fn closed_before_handshake(f: &FetchFailure) -> bool {
    f.kind == FailureKind::Closed && f.detail.starts_with(CLOSED_BEFORE_HANDSHAKE)
}

const CLOSED_BEFORE_HANDSHAKE: &str = "connection closed before its handshake";

/// A connection to a peer, whatever carries it.
pub trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerStream for T {}

/// Open a connection to `peer` (TCP) by the connect deadline.
async fn dial(
    peer: SocketAddr,
    cfg: &FetchConfig,
    start: Instant,
    deadline: Instant,
    timed_out: &impl Fn(String, Instant) -> FetchFailure,
) -> Result<Box<dyn PeerStream>, FetchFailure> {
    let connect_by = deadline.min(start + cfg.connect_timeout);
    let stream = match timeout_at(connect_by, TcpStream::connect(peer)).await {
        Err(_) => {
            let what = format!("no TCP connection within {:?}", cfg.connect_timeout);
            return Err(timed_out(what, connect_by));
        }
        Ok(Err(e)) => {
            return Err(FetchFailure::new(
                FailureKind::Refused,
                format!("connect: {e}"),
            ))
        }
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);

    Ok(Box::new(stream))
}

/// Run the metadata exchange over an open connection.
async fn exchange(
    stream: &mut Box<dyn PeerStream>,
    peer: SocketAddr,
    info_hash: [u8; 20],
    cfg: &FetchConfig,
    deadline: Instant,
    timed_out: &impl Fn(String, Instant) -> FetchFailure,
) -> Result<FetchedMetadata, FetchFailure> {
    let config = SessionConfig {
        max_metadata_size: cfg.max_metadata_size,
        client: cfg.client.clone(),
        ..SessionConfig::default()
    };
    let mut session = MetadataSession::new(config, info_hash, cfg.peer_id.unwrap_or_else(peer_id));
    let mut buf = vec![0u8; READ_CHUNK];
    let handshake_by = Instant::now() + cfg.handshake_timeout;
    // Deadline for the next metadata piece, and the count it was set at.
    let mut piece_by: Option<(Instant, u32)> = None;

    while !session.is_finished() {
        let state = session.state();
        let (step_end, waiting_for) = match state {
            SessionState::Fetching { received, pieces } => {
                let by = match piece_by {
                    Some((by, at)) if at == received => by,
                    _ => {
                        let by = Instant::now() + cfg.piece_timeout;
                        piece_by = Some((by, received));
                        by
                    }
                };
                let what = format!(
                    "no metadata piece within {:?} ({received}/{pieces} received)",
                    cfg.piece_timeout
                );
                (by, what)
            }
            SessionState::AwaitingExtHandshake => (
                handshake_by,
                format!("no extended handshake within {:?}", cfg.handshake_timeout),
            ),
            _ => (
                handshake_by,
                format!("no handshake within {:?}", cfg.handshake_timeout),
            ),
        };
        let step_end = step_end.min(deadline);
        if let Some(out) = session.poll_transmit() {
            let write = async {
                stream.write_all(&out).await?;
                stream.flush().await
            };
            match timeout_at(step_end, write).await {
                Err(_) => return Err(timed_out(format!("{waiting_for}; write stalled"), step_end)),
                Ok(Err(e)) => return Err(closed(state, &format!("write: {e}"))),
                Ok(Ok(())) => {}
            }
        }
        match timeout_at(step_end, stream.read(&mut buf)).await {
            Err(_) => return Err(timed_out(waiting_for, step_end)),
            Ok(Ok(0)) => return Err(closed(state, "EOF")),
            Ok(Ok(n)) => session.handle_input(&buf[..n]),
            Ok(Err(e)) => return Err(closed(state, &e.to_string())),
        }
    }
    let client = session.peer_extensions().and_then(|e| e.client.clone());
    match session.into_outcome() {
        Some(Ok(metadata)) => match InfoSummary::parse(&metadata.info) {
            Ok(summary) => Ok(FetchedMetadata {
                peer,
                info: metadata.info,
                summary,
                client,
                encryption: Encryption::Plaintext,
            }),
            Err(e) => Err(FetchFailure::new(
                FailureKind::Protocol,
                format!("verified info dict does not parse: {e}"),
            )),
        },
        Some(Err(e)) => Err(FetchFailure::new(e.kind().into(), e.to_string())),
        // The loop only ends once the session has finished.
        None => Err(FetchFailure::new(
            FailureKind::Protocol,
            "session unfinished",
        )),
    }
}

/// The peer went away in `state`.
fn closed(state: SessionState, why: &str) -> FetchFailure {
    let during = match state {
        SessionState::Handshaking => "before its handshake".to_owned(),
        SessionState::AwaitingExtHandshake => "before its extended handshake".to_owned(),
        SessionState::Fetching { received, pieces } => {
            format!("after {received}/{pieces} metadata pieces")
        }
        SessionState::Done | SessionState::Failed(_) => "after the end".to_owned(),
    };
    FetchFailure::new(
        FailureKind::Closed,
        format!("connection closed {during} ({why})"),
    )
}

fn secs(from: Instant, to: Instant) -> String {
    format!("{:?}", to.saturating_duration_since(from))
}

/// `-ES0001-` and 12 random bytes (BEP 20 style).
fn peer_id() -> [u8; 20] {
    let mut id = *b"-ES0001-000000000000";
    rand::rngs::OsRng.fill_bytes(&mut id[8..]);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_close_before_the_peers_handshake_retries_with_mse() {
        assert!(closed_before_handshake(&closed(
            SessionState::Handshaking,
            "EOF"
        )));
        assert!(!closed_before_handshake(&closed(
            SessionState::AwaitingExtHandshake,
            "EOF"
        )));
        let timeout = FetchFailure::new(FailureKind::Timeout, CLOSED_BEFORE_HANDSHAKE);
        assert!(!closed_before_handshake(&timeout));
    }
}
