//! `estudely node`: a full DHT node until Ctrl-C or SIGTERM.
//!
//! The first line on stdout is `listening ADDR [ADDR6] id HEX`, so scripts (and the tests)
//! learn the ports chosen for `:0`. Everything else goes to the log on stderr: the bootstrap
//! result, a stats line every `--stats-interval`, and shutdown.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use estudely_dht_core::{AddrPolicy, Config, LookupOutcome, Stats};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use crate::args::NodeArgs;
use crate::dht::{DhtError, DhtHandle, DriverConfig};
use crate::resolve::{self, UsageError};

/// Run `estudely node ...`.
pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let v4 = args.bind.iter().filter(|a| a.is_ipv4()).count();
    let v6 = args.bind.len() - v4;
    if v4 > 1 || v6 > 1 {
        let all: Vec<String> = args.bind.iter().map(|a| a.to_string()).collect();
        return Err(UsageError(format!(
            "--bind takes at most one IPv4 and one IPv6 address, got {}",
            all.join(", ")
        ))
        .into());
    }
    let (has_v4, has_v6) = (v4 == 1, v6 == 1);
    let seeds = if args.bootstrap.no_bootstrap {
        Vec::new()
    } else {
        resolve::resolve_bootstrap(&args.bootstrap.nodes, has_v4, has_v6).await?
    };
    let config = Config {
        id: args.id,
        read_only: args.read_only,
        addr_policy: AddrPolicy::with_private(args.allow_private),
        ..Config::default()
    };
    let dht = DhtHandle::spawn(DriverConfig {
        bind: args.bind.clone(),
        node: config,
        seed: args.seed,
        peer_events: None,
    })?;

    let addrs: Vec<String> = dht.local_addrs().iter().map(|a| a.to_string()).collect();
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening {} id {}", addrs.join(" "), dht.id())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")?;
    drop(out);
    info!(id = %dht.id(), "listening on {}", addrs.join(", "));

    let mut bootstrap = start_bootstrap(&dht, &seeds);
    let mut stats_timer = tokio::time::interval(args.stats_interval);
    stats_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    stats_timer.tick().await; // The first tick is immediate.
    let mut terminate = terminate_signal()?;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                r.context("cannot listen for Ctrl-C")?;
                info!("Ctrl-C: shutting down");
                break;
            }
            _ = terminate.recv() => {
                info!("SIGTERM: shutting down");
                break;
            }
            _ = stats_timer.tick() => {
                let stats = dht.stats().await?;
                info!("{}", stats_line(&stats));
                // An empty table after bootstrapping: the network was unreachable. Try again.
                let idle = bootstrap.as_ref().is_none_or(JoinHandle::is_finished);
                if idle && stats.nodes_v4 + stats.nodes_v6 == 0 && !seeds.is_empty() {
                    info!("routing table empty: bootstrapping again");
                    bootstrap = start_bootstrap(&dht, &seeds);
                }
            }
        }
    }
    if let Some(b) = bootstrap {
        b.abort();
    }
    dht.shutdown().await;
    Ok(())
}

/// Bootstrap in the background and log how it went.
fn start_bootstrap(dht: &DhtHandle, seeds: &[SocketAddr]) -> Option<JoinHandle<()>> {
    if seeds.is_empty() {
        info!("not bootstrapping: waiting to be found");
        return None;
    }
    info!("bootstrapping from {} address(es)", seeds.len());
    let (dht, seeds) = (dht.clone(), seeds.to_vec());
    Some(tokio::spawn(async move {
        match dht.bootstrap(&seeds).await {
            Ok(outcome) => log_bootstrap(&dht, &outcome).await,
            Err(DhtError::Stopped) => {}
            Err(e) => warn!("bootstrap failed: {e}"),
        }
    }))
}

async fn log_bootstrap(dht: &DhtHandle, outcome: &LookupOutcome) {
    let Ok(stats) = dht.stats().await else { return };
    let table = stats.nodes_v4 + stats.nodes_v6;
    if table == 0 {
        warn!(
            queried = outcome.queried,
            "bootstrap found no node: is the network reachable?"
        );
    } else {
        info!(
            queried = outcome.queried,
            closest = outcome.closest.len(),
            "bootstrapped: {table} node(s) in the routing table"
        );
    }
}

/// One log line of counters.
pub fn stats_line(s: &Stats) -> String {
    format!(
        "stats: nodes {} v4 / {} v6 (BEP 42: {} secure, {} unsecured, {} local), {} torrents, \
         {} peers, {} in flight, queries {} in / {} out, {} replies sent ({} withheld by per-IP \
         budget), {} malformed, {} dead, refused addresses: {}",
        s.nodes_v4,
        s.nodes_v6,
        s.nodes_secure,
        s.nodes_unsecured,
        s.nodes_exempt,
        s.torrents,
        s.peers,
        s.in_flight,
        s.queries_received,
        s.queries_sent,
        s.replies_sent,
        s.replies_dropped,
        s.malformed,
        s.dead,
        s.refused.describe()
    )
}

#[cfg(unix)]
fn terminate_signal() -> anyhow::Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::terminate()).context("cannot listen for SIGTERM")
}

/// Elsewhere only Ctrl-C stops the node.
#[cfg(not(unix))]
fn terminate_signal() -> anyhow::Result<NeverSignal> {
    Ok(NeverSignal)
}

#[cfg(not(unix))]
struct NeverSignal;

#[cfg(not(unix))]
impl NeverSignal {
    async fn recv(&mut self) -> Option<()> {
        std::future::pending().await
    }
}
