//! Setting up a crawl, for every command that crawls (`crawl`, `collect`, `demo`, `run`):
//! the flags they share, the crawler's budgets and caps, binding the driver, the signal
//! watcher, and the network notes of their end summaries.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use estudely_dht_core::crawl::{
    resting_bytes_for_rate, searches_for_rate, CrawlConfig, CrawlStats, Shard,
};
// The search bounds live with the crawler (the simulation sets them the same way).
pub use estudely_dht_core::crawl::{
    search_queue_for_rate, MAX_CONCURRENT_SEARCHES, MAX_SEARCH_QUEUE,
};
use estudely_dht_core::{AddrPolicy, Config};

use crate::resolve::{self, UsageError};
use crate::{CrawlDriver, CrawlDriverConfig};

/// What `crawl` and `collect` share about the network: which addresses to follow, whether
/// to harvest announces, and the warm-start file (the binary's `--allow-private`,
/// `--no-harvest` and `--state FILE`). The default follows public addresses only, harvests
/// announces and keeps no state file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrawlNet {
    /// Also follow private, loopback, link-local and CGNAT addresses learned from the
    /// network (your own lab network). Without it they are refused (and counted), except in
    /// the ranges of the bootstrap addresses.
    pub allow_private: bool,
    /// Do not report infohashes that other nodes announce to our node (announce
    /// harvesting, on by default).
    pub no_harvest: bool,
    /// Save the good nodes found to this file at the end, and start from the nodes saved
    /// there (before the bootstrap routers) when it exists: a warm start (see
    /// [`crate::state`]).
    pub state: Option<PathBuf>,
}

impl CrawlNet {
    /// The nodes saved in the [`state`](CrawlNet::state) file (none without one, or when
    /// the file does not exist); a malformed file is a usage error, before any packet is
    /// sent.
    pub fn saved_nodes(&self) -> anyhow::Result<Vec<estudely_krpc::CompactNode>> {
        match &self.state {
            Some(path) => crate::state::load(path),
            None => Ok(Vec::new()),
        }
    }

    /// Save the crawl's good nodes to the [`state`](CrawlNet::state) file, if there is one.
    pub fn save_state(&self, driver: &CrawlDriver) -> anyhow::Result<()> {
        let Some(path) = &self.state else {
            return Ok(());
        };
        let nodes = driver.crawler().good_nodes(crate::state::MAX_SAVED);
        crate::state::save(path, &nodes)
    }
}

/// `; shard 2/4`, or nothing for the whole keyspace: for start lines.
pub fn shard_note(shard: Shard) -> String {
    if shard == Shard::all() {
        String::new()
    } else {
        format!("; shard {shard}")
    }
}

/// The highest `--rate`: what one core sends (see BENCHMARKS.md, "Loopback throughput").
/// The per-IP budgets hold at any rate: a fast crawl spreads over more nodes, never harder
/// on one.
pub const MAX_RATE: f64 = 50_000.0;

/// Queries per second: more than 0, at most [`MAX_RATE`].
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let q: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of queries per second"))?;
    if !(q > 0.0 && q <= MAX_RATE) {
        return Err(format!("`{s}` must be more than 0 and at most {MAX_RATE}"));
    }
    Ok(q)
}

/// The `--bind` addresses of a crawling command: `0.0.0.0:0` when none is given, at most
/// one per address family.
pub fn checked_bind(bind: &[SocketAddr]) -> anyhow::Result<Vec<SocketAddr>> {
    if bind.is_empty() {
        return Ok(vec![SocketAddr::from(([0, 0, 0, 0], 0))]);
    }
    let v4 = bind.iter().filter(|a| a.is_ipv4()).count();
    if v4 > 1 || bind.len() - v4 > 1 {
        let all: Vec<String> = bind.iter().map(ToString::to_string).collect();
        let msg = format!(
            "--bind takes at most one IPv4 and one IPv6 address, got {}",
            all.join(", ")
        );
        return Err(UsageError(msg).into());
    }
    Ok(bind.to_vec())
}

/// The budgets `crawl`, `collect` and `demo` give the crawler.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    /// Stop sampling after this many infohashes (0 = no limit).
    pub max_infohashes: usize,
    /// Distinct peers kept per infohash.
    pub peers_per_infohash: usize,
    /// Global query rate, per second.
    pub rate: f64,
    /// `--allow-private`: private-use ranges allowed on top of the bootstrap ranges.
    pub allow_private: bool,
    /// Report infohashes announced to our node (not `--no-harvest`).
    pub harvest: bool,
    /// Start a new seen-set generation when it is full instead of stopping (`run`, whose
    /// index deduplicates).
    pub forget_seen_when_full: bool,
    /// The slice of the node-id space sampled (`--shard`).
    pub shard: Shard,
}

/// Most crawler queries in flight (a `--rate` of 26,000 q/s or more).
pub const MAX_IN_FLIGHT: usize = 32_768;

/// Queries in flight and peer searches at once for a crawl at `rate` queries a second:
/// enough to keep the rate busy on the real network, where a fifth of the queries or more
/// wait out the 3 s timeout (about 1.25 in flight per query a second; a search keeps 1-3
/// in flight), and never fewer than a slow crawl's 32 and 16 (the defaults at 25 q/s).
/// Without them a `--rate 1000` crawl would send a few dozen queries a second: the
/// simulation (`estudely simulate --search-peers`) shows it.
pub fn concurrency_for_rate(rate: f64) -> (usize, usize) {
    let rate = if rate > 0.0 { rate } else { f64::MAX };
    let in_flight = (rate * 1.25).clamp(32.0, MAX_IN_FLIGHT as f64) as usize;
    (in_flight, searches_for_rate(rate))
}

/// Most infohashes whose peer search is pending in the crawler (running or queued), and so
/// the cap of every per-infohash map a crawl sink keeps while searches run: the `source` of
/// `crawl`'s rows, `collect`'s searching infohashes.
pub const SEARCHES_CAP: usize = MAX_CONCURRENT_SEARCHES + MAX_SEARCH_QUEUE;

/// Queries the global rate limit lets go back to back at `rate` a second: 10 ms worth,
/// and never fewer than 10 (the node's default, so every rate up to 1,000 q/s keeps it).
pub fn query_burst_for_rate(rate: f64) -> f64 {
    (rate / 100.0).max(10.0)
}

/// The deadline an `--overall-timeout` stands for: `None` (no limit) for 0.
pub fn overall_limit(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then_some(timeout)
}

/// The crawl driver's timeout for an `--overall-timeout` (0 = none: until Ctrl-C).
pub fn crawl_limit(overall_timeout: Duration) -> Option<Duration> {
    overall_limit(overall_timeout)
}

/// Resolve the bootstrap nodes (for the bound families) and bind a crawler to `bind`.
pub async fn start_crawler(
    bind: Vec<SocketAddr>,
    bootstrap: &[String],
    budgets: Budgets,
) -> anyhow::Result<CrawlDriver> {
    let v4 = bind.iter().any(SocketAddr::is_ipv4);
    let v6 = bind.iter().any(SocketAddr::is_ipv6);
    let seeds = resolve::resolve_bootstrap(bootstrap, v4, v6).await?;
    let (in_flight, searches) = concurrency_for_rate(budgets.rate);
    let crawl = CrawlConfig {
        max_infohashes: budgets.max_infohashes,
        peers_per_infohash: budgets.peers_per_infohash,
        max_in_flight: in_flight,
        max_concurrent_searches: searches,
        max_search_queue: search_queue_for_rate(budgets.rate),
        harvest: budgets.harvest,
        forget_seen_when_full: budgets.forget_seen_when_full,
        bootstrap: seeds,
        shard: budgets.shard,
        max_resting_bytes: resting_bytes_for_rate(budgets.rate),
        ..CrawlConfig::default()
    };
    // The crawler adds the ranges of the bootstrap addresses (a loopback testnet).
    let addr_policy = AddrPolicy::with_private(budgets.allow_private);
    let node = Config {
        query_rate: budgets.rate,
        // 10 ms of the rate may go back to back (10 at most rates): the driver's timer wakes
        // every millisecond or two, and a burst of 10 would cap a fast crawl at ~6,000 q/s.
        query_burst: query_burst_for_rate(budgets.rate),
        addr_policy,
        // Room for the crawler's queries and our node's own lookups.
        max_in_flight: Config::default().max_in_flight.max(2 * in_flight),
        ..Config::default()
    };
    CrawlDriver::bind(CrawlDriverConfig {
        bind,
        node,
        crawl,
        seed: None,
    })
}

/// `; shard 2/4: 57 listings of nodes outside it (not sampled); refused addresses:
/// private 3, multicast 1; 12 dead nodes`: the shard (unless the whole keyspace) and how
/// often nodes outside it were listed (with repeats), what the address policy refused and
/// the nodes that stopped answering, when there are any (for end summaries).
pub fn network_note(stats: &CrawlStats, shard: Shard) -> String {
    let mut note = shard_note(shard);
    if stats.nodes_other_shard > 0 {
        if note.is_empty() {
            note.push_str("; shard 1/1");
        }
        note.push_str(&format!(
            ": {} listings of nodes outside it (not sampled)",
            stats.nodes_other_shard
        ));
    }
    if stats.nodes_resting > 0 {
        note.push_str(&format!(
            "; resting nodes met again {} times (not asked)",
            stats.nodes_resting
        ));
    }
    if stats.harvested > 0 {
        note.push_str(&format!("; {} infohashes announced to us", stats.harvested));
    }
    if stats.addr_refused.total() > 0 {
        note.push_str(&format!(
            "; refused addresses: {}",
            stats.addr_refused.describe()
        ));
    }
    if stats.nodes_dead > 0 {
        note.push_str(&format!("; {} dead nodes", stats.nodes_dead));
    }
    let (secure, exempt, unsecured) = (
        stats.table_secure,
        stats.table_exempt,
        stats.table_unsecured,
    );
    if secure + exempt + unsecured > 0 {
        note.push_str(&format!(
            "; routing table BEP 42: {secure} secure, {unsecured} unsecured, {exempt} local"
        ));
    }
    if stats.nodes_refused > 0 {
        note.push_str(&format!(
            "; {} nodes not kept (node table full)",
            stats.nodes_refused
        ));
    }
    if stats.seen_full {
        note.push_str("; sampling stopped: seen-set full");
    }
    note
}

/// Completes on Ctrl-C or (on Unix) SIGTERM; never if the signals cannot be watched.
pub async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What ends a command early, as Ctrl-C does: the process's signals (the binary), or a
/// flag set by the program that runs the command in-process (the Python package), which
/// must not take SIGINT and SIGTERM over from its host.
#[derive(Debug, Clone, Default)]
pub enum StopOn {
    /// Ctrl-C or (on Unix) SIGTERM.
    #[default]
    Signals,
    /// [`StopFlag::stop`] on the flag this came from.
    Flag(tokio::sync::watch::Receiver<bool>),
}

impl StopOn {
    /// A stop flag and what it stops.
    pub fn flag() -> (StopFlag, StopOn) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (StopFlag(tx), StopOn::Flag(rx))
    }

    /// Completes when the command is to stop: [`interrupted`], or once the flag is set (at
    /// once if it already is; never if its [`StopFlag`] is dropped unset).
    pub fn fired(&self) -> impl std::future::Future<Output = ()> + 'static {
        let flag = match self {
            StopOn::Signals => None,
            StopOn::Flag(rx) => Some(rx.clone()),
        };
        async move {
            match flag {
                None => interrupted().await,
                Some(mut rx) => {
                    if rx.wait_for(|&stop| stop).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }
}

/// Stops the commands given its [`StopOn`], from any thread.
#[derive(Debug)]
pub struct StopFlag(tokio::sync::watch::Sender<bool>);

impl StopFlag {
    /// Stop: the commands end as on Ctrl-C (writing what they have).
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// Whether [`StopFlag::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}

/// The signal watch of a command that called [`Interrupt::watch_from_now`].
static EARLY: std::sync::OnceLock<tokio::sync::watch::Receiver<bool>> = std::sync::OnceLock::new();

/// Ctrl-C and SIGTERM, watched once for a whole command, so that every stage of it (the
/// crawl, the fetches) sees the same signal, whenever it comes. Stops watching when dropped.
#[derive(Debug)]
pub struct Interrupt {
    rx: tokio::sync::watch::Receiver<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Interrupt {
    /// Start watching (inside a tokio runtime). After [`Interrupt::watch_from_now`], the
    /// watch that started then (it has seen any signal since).
    pub fn watch() -> Interrupt {
        Interrupt::watch_on(&StopOn::Signals)
    }

    /// Watch what `stop` says: [`Interrupt::watch`] for the signals, else its flag (no
    /// task, no signal handler).
    pub fn watch_on(stop: &StopOn) -> Interrupt {
        if let StopOn::Flag(rx) = stop {
            return Interrupt {
                rx: rx.clone(),
                task: None,
            };
        }
        if let Some(rx) = EARLY.get() {
            return Interrupt {
                rx: rx.clone(),
                task: None,
            };
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            interrupted().await;
            let _ = tx.send(true);
        });
        Interrupt {
            rx,
            task: Some(task),
        }
    }

    /// Catch Ctrl-C and SIGTERM from now on, for the rest of the process: a command whose
    /// set-up takes a while (opening and loading an index) calls it first, so that a signal
    /// during the set-up stops it cleanly instead of killing it. Only for commands that
    /// watch the signal (through [`Interrupt::watch`]) once set up. Inside a tokio runtime.
    pub fn watch_from_now() {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            // `signal` installs the handler when called, not when first polled.
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            let (tx, rx) = tokio::sync::watch::channel(false);
            if EARLY.set(rx).is_err() {
                return;
            }
            tokio::spawn(async move {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                let _ = tx.send(true);
            });
        }
    }

    /// Completes once the signal has come (at once if it already has).
    pub fn fired(&self) -> impl std::future::Future<Output = ()> + 'static {
        let mut rx = self.rx.clone();
        async move {
            if rx.wait_for(|&fired| fired).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Whether the signal has come.
    pub fn happened(&self) -> bool {
        *self.rx.borrow()
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_grows_with_the_rate_within_bounds() {
        assert_eq!(
            concurrency_for_rate(25.0),
            (32, 16),
            "the defaults of a slow crawl"
        );
        assert_eq!(concurrency_for_rate(1_000.0), (1_250, 500));
        assert_eq!(
            concurrency_for_rate(100_000.0),
            (MAX_IN_FLIGHT, MAX_CONCURRENT_SEARCHES)
        );
        assert_eq!(
            concurrency_for_rate(0.0),
            (MAX_IN_FLIGHT, MAX_CONCURRENT_SEARCHES),
            "0 = unlimited"
        );
        assert_eq!(search_queue_for_rate(25.0), 8_192);
        assert_eq!(query_burst_for_rate(25.0), 10.0);
        assert_eq!(query_burst_for_rate(10_000.0), 100.0);
        assert_eq!(search_queue_for_rate(4_000.0), 32_000);
        assert_eq!(search_queue_for_rate(0.0), MAX_SEARCH_QUEUE);
    }
}
