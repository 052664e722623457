//! `estudely query`: one KRPC query (two for `announce`), the reply printed.
//!
//! The queries go out from a short-lived read-only node (BEP 43), so the node we ask does
//! not put our ephemeral address in its routing table.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use estudely_dht_core::{AddrPolicy, Config, QueryError};
use estudely_krpc::{Body, Message, NodeId, Query, Want};
use rand::RngCore as _;

use crate::args::{Format, QueryArgs, QueryMethod};
use crate::dht::{DhtError, DhtHandle, DriverConfig};
use crate::output::ReplyView;
use crate::resolve::{self, UsageError};

/// Extra time the CLI waits beyond the node's own query timeout before giving up itself.
const SLACK: Duration = Duration::from_secs(2);

/// Run `estudely query ...`.
pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    run_with(args, std::io::stdout()).await
}

/// [`run`] with the replies written to `out` instead of stdout: for a program that sends
/// queries in-process (the Python package).
pub async fn run_with<W: Write>(args: QueryArgs, out: W) -> anyhow::Result<()> {
    let addr = match &args.method {
        QueryMethod::Ping { addr }
        | QueryMethod::FindNode { addr, .. }
        | QueryMethod::GetPeers { addr, .. }
        | QueryMethod::Sample { addr, .. }
        | QueryMethod::Announce { addr, .. } => addr.clone(),
    };
    // Without --bind, prefer IPv4: most of the DHT lives there.
    let prefer = args
        .bind
        .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let to = resolve::resolve_one(&addr, Some(prefer)).await?;
    let bind = match args.bind {
        Some(b) if b.is_ipv4() != to.is_ipv4() => {
            return Err(UsageError(format!(
                "cannot reach {to} (from `{addr}`) from --bind {b}: address families differ"
            ))
            .into())
        }
        Some(b) => b,
        None if to.is_ipv4() => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        None => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    // The target is the user's own choice: its range (say loopback) is allowed.
    let config = Config {
        read_only: true,
        query_timeout: args.timeout,
        addr_policy: AddrPolicy::strict().with_ranges_of(&[to]),
        ..Config::default()
    };
    let dht = DhtHandle::spawn(DriverConfig {
        bind: vec![bind],
        node: config,
        ..DriverConfig::default()
    })?;
    let asker = Asker {
        dht: &dht,
        to,
        timeout: args.timeout,
        format: args.output.format,
        printed: Cell::new(false),
        out: RefCell::new(out),
    };
    let result = send(&asker, args.method, args.want.map(|w| w.to_want())).await;
    dht.shutdown().await;
    result
}

async fn send<W: Write>(
    asker: &Asker<'_, W>,
    method: QueryMethod,
    want: Option<Want>,
) -> anyhow::Result<()> {
    let want = want.unwrap_or_default();
    // Our id is filled in by the node.
    let id = NodeId::default();
    let query = match method {
        QueryMethod::Ping { .. } => Query::Ping { id },
        QueryMethod::FindNode { target, .. } => Query::FindNode {
            id,
            target: target.unwrap_or_else(random_id),
            want,
        },
        QueryMethod::GetPeers {
            info_hash,
            scrape,
            noseed,
            ..
        } => Query::GetPeers {
            id,
            info_hash,
            want,
            noseed,
            scrape,
        },
        QueryMethod::Sample { target, .. } => Query::SampleInfohashes {
            id,
            target: target.unwrap_or_else(random_id),
            want,
        },
        QueryMethod::Announce {
            info_hash,
            port,
            implied_port,
            seed,
            ..
        } => {
            let get_peers = Query::GetPeers {
                id,
                info_hash,
                want,
                noseed: false,
                scrape: false,
            };
            let reply = asker.ask(get_peers).await?;
            let token = match reply.body {
                Body::Response(r) => r.token,
                _ => None,
            };
            let Some(token) = token else {
                bail!(
                    "{} gave no token in its get_peers reply: cannot announce",
                    asker.to
                );
            };
            Query::AnnouncePeer {
                id,
                info_hash,
                port,
                implied_port,
                token,
                seed,
            }
        }
    };
    asker.ask(query).await.map(drop)
}

/// Sends queries to one node and prints the replies (to stdout, `W`).
struct Asker<'a, W> {
    dht: &'a DhtHandle,
    to: SocketAddr,
    timeout: Duration,
    format: Format,
    printed: Cell<bool>,
    out: RefCell<W>,
}

impl<W: Write> Asker<'_, W> {
    async fn ask(&self, query: Query) -> anyhow::Result<Message> {
        let method = String::from_utf8_lossy(query.method()).into_owned();
        let to = self.to;
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout + SLACK, self.dht.query(to, query)).await;
        let rtt = started.elapsed();
        let no_reply = || {
            let secs = self.timeout.as_secs_f64();
            anyhow::anyhow!("no reply from {to} to {method} within {secs} s")
        };
        match result {
            Ok(Ok(msg)) => {
                self.print(&ReplyView::new(&method, to, rtt, &msg))?;
                Ok(msg)
            }
            Err(_) | Ok(Err(DhtError::Query(QueryError::Timeout))) => Err(no_reply()),
            Ok(Err(DhtError::Query(QueryError::Remote(e)))) => {
                if self.format == Format::Jsonl {
                    self.print(&ReplyView::error(&method, to, rtt, &e))?;
                }
                bail!(
                    "{to} answered {method} with error {}: {}",
                    e.code,
                    e.message
                )
            }
            Ok(Err(e)) => Err(e).with_context(|| format!("{method} to {to} failed")),
        }
    }

    fn print(&self, view: &ReplyView) -> anyhow::Result<()> {
        let text = match self.format {
            // A blank line between two human replies (announce prints two).
            Format::Human if self.printed.replace(true) => format!("\n{}", view.to_human()),
            Format::Human => view.to_human(),
            Format::Jsonl => view.to_json() + "\n",
        };
        let mut out = self.out.borrow_mut();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .context("cannot write to stdout")
    }
}

/// A uniformly random id, for targets the user did not choose.
pub fn random_id() -> NodeId {
    let mut id = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut id);
    NodeId(id)
}
