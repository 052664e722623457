//! The tokio loop around the sans-IO [`Crawler`]: one UDP socket per address family, the
//! clock, and a [`CrawlSink`] that receives every finding as soon as it is made.
//!
//! Like [`estudely_dht::driver`], but the loop is run by the caller (no task, no handle): the
//! crawl is the whole program, so [`CrawlDriver::run`] simply returns when the crawler is
//! done, the time is up, the caller's stop future fires, or the sink asks to stop.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use estudely_dht_core::crawl::{CrawlConfig, CrawlEvent, CrawlStats, Crawler, Shard};
use estudely_dht_core::Config;
use rand::RngCore as _;
use tokio::net::UdpSocket;
use tokio::time::MissedTickBehavior;
use tracing::{debug, trace};

use crate::resolve::UsageError;
use estudely_dht::driver::{bind_udp, recv, sleep_until, Sockets};

/// The target of this module's log lines: the module's path from before it left the
/// `estudely` crate, so that `RUST_LOG=estudely::crawl::driver=debug` still selects them.
pub const LOG_TARGET: &str = "estudely::crawl::driver";

/// Receive buffer size: larger than any KRPC datagram we accept.
const RECV_BUF: usize = 2048;

/// How to start a crawl.
#[derive(Debug, Clone, Default)]
pub struct CrawlDriverConfig {
    /// Local addresses to bind: at most one IPv4 and one IPv6 address (port 0 = any).
    /// IPv6 sockets are IPv6-only.
    pub bind: Vec<SocketAddr>,
    /// The crawler's node. Its `ipv4` / `ipv6` flags are set from the bound sockets and its
    /// `seed` from [`CrawlDriverConfig::seed`].
    pub node: Config,
    /// Crawl budgets and the bootstrap addresses.
    pub crawl: CrawlConfig,
    /// Seed of the RNGs. Default `None`: a random seed from the OS.
    pub seed: Option<u64>,
}

/// Why [`CrawlDriver::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The infohash budget is spent and every peer search has ended.
    Done,
    /// The overall timeout passed.
    Timeout,
    /// The caller's stop future completed (Ctrl-C, SIGTERM).
    Interrupted,
    /// The sink asked to stop (e.g. stdout was closed).
    SinkClosed,
}

/// Counters for a progress line, computed by the driver.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The crawler's counters.
    pub stats: CrawlStats,
    /// The counters of the crawler's node.
    pub node: estudely_dht_core::Stats,
    /// Queries actually sent by the crawler's node (all kinds).
    pub queries_sent: u64,
    /// Queries per second over the last second or so.
    pub recent_rate: f64,
    /// Time since the crawl started.
    pub elapsed: Duration,
}

/// The end of a crawl.
#[derive(Debug, Clone, PartialEq)]
pub struct CrawlReport {
    /// Why it stopped.
    pub reason: StopReason,
    /// The crawler's counters at the end.
    pub stats: CrawlStats,
    /// Queries actually sent by the crawler's node (all kinds).
    pub queries_sent: u64,
    /// How long it ran.
    pub elapsed: Duration,
    /// The slice of the node-id space it sampled (`--shard`).
    pub shard: Shard,
}

impl CrawlReport {
    /// Average queries per second.
    pub fn rate(&self) -> f64 {
        self.queries_sent as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

/// Where a crawl's findings go.
pub trait CrawlSink {
    /// One finding, as soon as it is made. `Ok(false)` stops the crawl
    /// ([`StopReason::SinkClosed`]); an error stops it and is returned by `run`.
    fn event(&mut self, event: &CrawlEvent) -> anyhow::Result<bool>;

    /// Called every progress period, if [`CrawlDriver::run`] was given one.
    fn progress(&mut self, _progress: &Progress) {}

    /// Called right after [`CrawlSink::progress`], with the crawler (e.g. to save its good
    /// nodes now and then).
    fn tick(&mut self, _crawler: &Crawler) {}

    /// An infohash whose peer search is to stop (the sink knows enough of it). Polled after
    /// every batch of events until `None`.
    fn poll_cancel(&mut self) -> Option<estudely_krpc::InfoHash> {
        None
    }

    /// Called after every batch of events and cancels, to act on the crawler (e.g.
    /// continue a search, [`Crawler::resume_search`]); true if it did anything (the new
    /// datagrams and events are then handled at once, and it is called again).
    fn steer(&mut self, _crawler: &mut Crawler) -> anyhow::Result<bool> {
        Ok(false)
    }
}

/// A crawler bound to its sockets, ready to [`run`](CrawlDriver::run).
#[derive(Debug)]
pub struct CrawlDriver {
    crawler: Crawler,
    sockets: Sockets,
    local_addrs: Vec<SocketAddr>,
    send_errors: u64,
    shard: Shard,
}

impl CrawlDriver {
    /// Bind the sockets and create the crawler (inside a tokio runtime). A family given twice,
    /// no address, or a failed bind is a [`UsageError`] naming the address.
    pub fn bind(config: CrawlDriverConfig) -> anyhow::Result<CrawlDriver> {
        let (mut v4, mut v6) = (None, None);
        for addr in &config.bind {
            let slot = if addr.is_ipv4() { &mut v4 } else { &mut v6 };
            if slot.is_some() {
                let msg = format!("--bind given twice for the same address family ({addr})");
                return Err(UsageError(msg).into());
            }
            let socket =
                bind_udp(*addr).map_err(|e| UsageError(format!("cannot bind `{addr}`: {e}")))?;
            *slot = Some(socket);
        }
        if v4.is_none() && v6.is_none() {
            return Err(UsageError("no address to bind".into()).into());
        }
        let local_addrs = v4
            .iter()
            .chain(v6.iter())
            .map(UdpSocket::local_addr)
            .collect::<io::Result<Vec<_>>>()?;
        let mut node = config.node;
        node.ipv4 = v4.is_some();
        node.ipv6 = v6.is_some();
        node.seed = config.seed.unwrap_or_else(|| rand::rngs::OsRng.next_u64());
        let shard = config.crawl.shard;
        let crawler = Crawler::new(node, config.crawl, Instant::now());
        Ok(CrawlDriver {
            crawler,
            sockets: Sockets { v4, v6 },
            local_addrs,
            send_errors: 0,
            shard,
        })
    }

    /// The addresses the sockets are bound to (ports resolved), IPv4 first.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The slice of the node-id space the crawler samples (`--shard`).
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// The crawler inside (counters, its node).
    pub fn crawler(&self) -> &Crawler {
        &self.crawler
    }

    /// The crawler inside, to change its settings (e.g.
    /// [`Crawler::set_peers_for_fetch`]).
    pub fn crawler_mut(&mut self) -> &mut Crawler {
        &mut self.crawler
    }

    /// Start from nodes saved by an earlier run (`--state`); returns how many were taken.
    pub fn warm_start(&mut self, nodes: &[estudely_krpc::CompactNode]) -> usize {
        self.crawler.warm_start(Instant::now(), nodes)
    }

    /// Crawl until the crawler is done, `timeout` passes, `stop` completes or the sink stops
    /// it. Every finding goes to `sink` as soon as it is made; with `progress_every`, the
    /// sink's `progress` is called that often.
    pub async fn run(
        &mut self,
        timeout: Option<Duration>,
        stop: impl Future<Output = ()>,
        progress_every: Option<Duration>,
        sink: &mut impl CrawlSink,
    ) -> anyhow::Result<CrawlReport> {
        let start = Instant::now();
        let until = timeout.map(|t| start + t);
        let mut ticker = tokio::time::interval(progress_every.unwrap_or(Duration::from_secs(3600)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut recent: VecDeque<(Instant, u64)> = VecDeque::new();
        let (mut buf4, mut buf6) = (vec![0u8; RECV_BUF], vec![0u8; RECV_BUF]);
        tokio::pin!(stop);
        let reason = loop {
            if !self.flush(sink).await? {
                break StopReason::SinkClosed;
            }
            if self.crawler.is_done() {
                break StopReason::Done;
            }
            let deadline = self.crawler.poll_timeout();
            tokio::select! {
                () = &mut stop => break StopReason::Interrupted,
                () = sleep_until_opt(until) => break StopReason::Timeout,
                r = recv(self.sockets.v4.as_ref(), &mut buf4) => self.received(r, &buf4),
                r = recv(self.sockets.v6.as_ref(), &mut buf6) => self.received(r, &buf6),
                () = sleep_until(deadline) => self.crawler.handle_timeout(Instant::now()),
                _ = ticker.tick(), if progress_every.is_some() => {
                    let now = Instant::now();
                    let queries = self.queries_sent();
                    recent.push_back((now, queries));
                    while recent.len() > 5 {
                        recent.pop_front();
                    }
                    let (t0, q0) = recent[0];
                    let dt = now.duration_since(t0).as_secs_f64();
                    let recent_rate = if dt > 0.0 { (queries - q0) as f64 / dt } else { 0.0 };
                    sink.progress(&Progress {
                        stats: self.crawler.stats(),
                        node: self.crawler.node().stats(),
                        queries_sent: queries,
                        recent_rate,
                        elapsed: now.duration_since(start),
                    });
                    sink.tick(&self.crawler);
                }
            }
        };
        let node = self.crawler.node().stats();
        debug!(target: LOG_TARGET, ?reason, stats = ?self.crawler.stats(), ?node, "crawl stopped");
        Ok(CrawlReport {
            reason,
            stats: self.crawler.stats(),
            queries_sent: self.queries_sent(),
            elapsed: start.elapsed(),
            shard: self.shard,
        })
    }

    fn queries_sent(&self) -> u64 {
        self.crawler.node().stats().queries_sent
    }

    fn received(&mut self, r: io::Result<(usize, SocketAddr)>, buf: &[u8]) {
        match r {
            Ok((len, from)) => {
                trace!(target: LOG_TARGET, %from, len, "datagram");
                self.crawler
                    .handle_datagram(Instant::now(), from, &buf[..len]);
            }
            // E.g. ICMP errors surfacing on some platforms: never fatal.
            Err(e) => debug!(target: LOG_TARGET, "recv error: {e}"),
        }
    }

    /// Send what the crawler queued, then hand its findings to the sink. False: the sink
    /// asked to stop.
    async fn flush(&mut self, sink: &mut impl CrawlSink) -> anyhow::Result<bool> {
        loop {
            while let Some(t) = self.crawler.poll_transmit() {
                self.sockets.send(&t, &mut self.send_errors).await;
                // Sent: the buffer goes back to the crawler for its next datagram.
                self.crawler.recycle(t);
            }
            while let Some(event) = self.crawler.poll_event() {
                debug!(target: LOG_TARGET, ?event, "found");
                if !sink.event(&event)? {
                    return Ok(false);
                }
            }
            while let Some(ih) = sink.poll_cancel() {
                self.crawler.cancel_search(&ih);
            }
            if !sink.steer(&mut self.crawler)? {
                return Ok(true);
            }
        }
    }
}

/// Sleep until `until`, or forever without one (no overall timeout: until Ctrl-C).
pub async fn sleep_until_opt(until: Option<Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
