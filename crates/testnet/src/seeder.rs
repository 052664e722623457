//! A metadata-only seeder on loopback: a TCP listener that serves the info dicts of a set of
//! synthetic torrents over BEP 3/10/9 (the data itself does not exist). It lets the testnet
//! and `estudely demo` offer real metadata fetches with no BitTorrent client installed.
//!
//! The protocol is [`estudely_peer_wire::MetadataServer`]; this module only owns sockets:
//! read the 68-byte handshake to learn which torrent is wanted, then shuttle bytes until the
//! fetcher closes, errs, or stays idle for 30 s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use estudely_peer_wire::{Handshake, MetadataServer, HANDSHAKE_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, Instrument};

/// Idle time after which a fetcher's connection is dropped.
const IDLE: Duration = Duration::from_secs(30);
/// Connections served at once per seeder by default; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 64;

/// Where a seeder finds the info dict of the torrent a handshake names: a fixed map, or a
/// world that makes it when asked (see [`crate::world`]).
pub trait InfoSource: Send + Sync + 'static {
    /// The bencoded info dict of `info_hash`, if this source has it.
    fn info(&self, info_hash: &[u8; 20]) -> Option<Arc<[u8]>>;
}

impl InfoSource for HashMap<[u8; 20], Arc<[u8]>> {
    fn info(&self, info_hash: &[u8; 20]) -> Option<Arc<[u8]>> {
        self.get(info_hash).cloned()
    }
}

/// A running seeder; dropping it stops it.
#[derive(Debug)]
pub struct Seeder {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Seeder {
    /// Listen on `bind` and serve `torrents` (20-byte infohash → bencoded info dict).
    pub async fn spawn(
        bind: SocketAddr,
        torrents: HashMap<[u8; 20], Arc<[u8]>>,
    ) -> anyhow::Result<Seeder> {
        Self::spawn_from(bind, Arc::new(torrents), MAX_CONNECTIONS).await
    }

    /// Listen on `bind` and serve whatever `source` has, at most `connections` fetchers at
    /// once.
    pub async fn spawn_from<S: InfoSource>(
        bind: SocketAddr,
        source: Arc<S>,
        connections: usize,
    ) -> anyhow::Result<Seeder> {
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("seeder cannot listen on {bind}"))?;
        let addr = listener.local_addr()?;
        let torrents = source;
        let slots = Arc::new(tokio::sync::Semaphore::new(connections.max(1)));
        let span = tracing::info_span!(target: "estudely::seeder", "seeder", %addr);
        let task = tokio::spawn(
            async move {
                loop {
                    let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                        return;
                    };
                    let Ok((stream, peer)) = listener.accept().await else {
                        continue;
                    };
                    // As real clients do: without it, each small message written after
                    // another waits for the fetcher's delayed ACK (40 ms on Linux).
                    let _ = stream.set_nodelay(true);
                    let torrents = Arc::clone(&torrents);
                    tokio::spawn(async move {
                        if let Err(e) = serve(stream, &*torrents).await {
                            debug!(target: "estudely::seeder", %peer, "seeder connection ended: {e:#}");
                        }
                        drop(permit);
                    });
                }
            }
            .instrument(span),
        );
        Ok(Seeder { addr, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Seeder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<S: InfoSource>(mut stream: TcpStream, torrents: &S) -> anyhow::Result<()> {
    let mut first = [0u8; HANDSHAKE_LEN];
    tokio::time::timeout(IDLE, stream.read_exact(&mut first)).await??;
    let hs = Handshake::parse(&first)?.context("incomplete handshake")?;
    let info = torrents
        .info(&hs.info_hash)
        .context("handshake for a torrent we do not have")?;
    let mut server = MetadataServer::new(info, hs.info_hash, *b"-ES0100-estudelyseed");
    server.handle_input(&first);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(out) = server.poll_transmit() {
            stream.write_all(&out).await?;
        }
        if let Some(e) = server.error() {
            anyhow::bail!("{e}");
        }
        let n = tokio::time::timeout(IDLE, stream.read(&mut buf)).await??;
        if n == 0 {
            return Ok(());
        }
        server.handle_input(&buf[..n]);
    }
}
