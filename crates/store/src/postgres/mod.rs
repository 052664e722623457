//! The PostgreSQL backend: one database shared by several crawlers.
//!
//! The schema is the one of [the crate root](crate), with `bytea` keys, `bigint` sizes and times,
//! `inet` addresses and `text` words; `leases.expires` is a `timestamptz` on the server's
//! clock, so that crawlers on machines whose clocks disagree still agree on expiry.
//! Search uses a `tsvector` over the name and file paths (GIN index) and, when the
//! `pg_trgm` extension can be had (it is in `postgresql-contrib`), a trigram index on the
//! name for substrings.

mod browse;
pub mod client;
mod conn;
mod estimates;
mod io;
mod lease;
mod migrate;
mod prune;
mod read;
mod schema;
mod search;
mod text;
mod write;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use client::{Client, Config};
use estudely_krpc::{CompactNode, InfoHash, NodeId};
use tokio_postgres::config::Host;

use crate::prune::{Candidate, DbSize, Deleted, PruneFilter};

use super::{
    Batch, Category, CategoryCounts, Release, SearchQuery, SearchSort, SightingCounts, SightingRow,
    Source, Stats, Store, StoredTorrent,
};

/// How long a connection attempt may take, unless the connection string says
/// (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most attempts at one batch that hits a deadlock or serialization failure.
const WRITE_ATTEMPTS: usize = 5;

/// A PostgreSQL index, over one connection.
///
/// Blocking: its calls wait on the asynchronous client's futures (see [`client`]), so it
/// must never be called from inside an asynchronous task (it would panic). `estudely run`
/// keeps its store on a std thread of its own, `serve` calls it on tokio's blocking pool, and
/// the read commands call it from `main`.
pub struct PgStore {
    client: Client,
    /// Is the trigram index there (substring search)?
    trgm: bool,
    /// Where, for messages (never the password).
    target: String,
    /// The statement timeout, once set.
    timeout: Option<Duration>,
    /// How it was opened, to open it again ([`Store::reconnect`]).
    reopen: Reopen,
    /// The transaction of the last batch when its commit went unanswered (the connection
    /// was lost): committed or not, the server knows, and the batch written again is
    /// skipped if it was (see [`conn::lost_commit`]).
    unacked: Option<i64>,
}

/// The connection string and the mode of a store, to connect again.
struct Reopen {
    url: String,
    read_only: bool,
}

impl Reopen {
    fn new(url: &str, read_only: bool) -> Reopen {
        Reopen {
            url: url.to_owned(),
            read_only,
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .field("trgm", &self.trgm)
            .finish()
    }
}

impl PgStore {
    /// Connect to `url` (`postgres://…`, `postgresql://…` or a libpq `key=value` string;
    /// `host=/dir` is a unix socket directory), creating or migrating the schema as needed.
    pub fn connect(url: &str) -> anyhow::Result<PgStore> {
        let (mut client, target) = open(url)?;
        let another = || open(url).map(|(c, _)| c);
        let trgm = migrate::migrate(&mut client, &another)
            .with_context(|| format!("PostgreSQL index {target}"))?;
        Ok(PgStore {
            client,
            trgm,
            target,
            timeout: None,
            reopen: Reopen::new(url, false),
            unacked: None,
        })
    }

    /// Connect for reading only: the session's transactions are read-only
    /// (`default_transaction_read_only`), and the schema must already be there, at this
    /// build's version (nothing is created or migrated).
    pub fn connect_read_only(url: &str) -> anyhow::Result<PgStore> {
        let (mut client, target) = open(url)?;
        let trgm = client
            .batch_execute("SET SESSION default_transaction_read_only = on")
            .map_err(anyhow::Error::from)
            .and_then(|()| schema::check(&mut client))
            .map_err(|e| on_standby(&mut client, e))
            .with_context(|| format!("PostgreSQL index {target}"))?;
        Ok(PgStore {
            client,
            trgm,
            target,
            timeout: None,
            reopen: Reopen::new(url, true),
            unacked: None,
        })
    }

    /// Has its connection ended (the server closed it, or it was lost)? Known at once, without
    /// a query: the connection's task on the I/O thread sees the socket close.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The asynchronous client of its connection, whose queries can be awaited from inside a
    /// runtime (see [`client`]).
    pub fn async_client(&self) -> &tokio_postgres::Client {
        self.client.inner()
    }

    /// Does search find substrings of names (is `pg_trgm` there)?
    pub fn substring_search(&self) -> bool {
        self.trgm
    }

    fn context(&self, what: &str) -> String {
        format!("PostgreSQL index {}: {what}", self.target)
    }

    /// `result` with context `what`, a statement cancelled by the statement timeout made
    /// plain ("query took too long").
    fn check<T>(&self, what: &str, result: anyhow::Result<T>) -> anyhow::Result<T> {
        let cancelled = |e: &anyhow::Error| {
            e.chain().any(|c| {
                c.downcast_ref::<client::Error>()
                    .and_then(client::Error::code)
                    == Some(&client::SqlState::QUERY_CANCELED)
            })
        };
        match (result, self.timeout) {
            (Err(e), Some(limit)) if cancelled(&e) => {
                Err(super::too_long(limit).context(self.context(what)))
            }
            (r, _) => r.with_context(|| self.context(what)),
        }
    }
}

/// `e` (the schema cannot be read), with what to do when the server is a hot standby: a
/// standby cannot be migrated, its primary can, and the standby then replays that.
fn on_standby(client: &mut Client, e: anyhow::Error) -> anyhow::Error {
    let standby = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .is_ok_and(|r| r.get::<_, bool>(0));
    if !standby {
        return e;
    }
    anyhow::anyhow!(
        "{e:#}; this server is a read-only standby: run `estudely run` on its primary, \
         whose migration the standby then replays"
    )
}

/// Parse and connect; return the client and a description of the target for messages.
fn open(url: &str) -> anyhow::Result<(Client, String)> {
    let mut config = Config::from_str(url).map_err(|e| {
        anyhow::anyhow!("--db: not a PostgreSQL connection string ({e}): use postgres://USER@HOST/DB or `host=... dbname=...`")
    })?;
    let target = describe(&config);
    if config.get_connect_timeout().is_none() {
        // A server behind a dead route would hold a (re)connection for minutes.
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let client = Client::connect(&config)
        .with_context(|| format!("PostgreSQL index {target}: cannot connect"))?;
    Ok((client, target))
}

/// `database NAME on HOST` (no user, no password).
fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let host = if hosts.is_empty() {
        "the default host".to_owned()
    } else {
        hosts.join(",")
    };
    match config.get_dbname() {
        Some(db) => format!("`{db}` on {host}"),
        None => format!("on {host}"),
    }
}

impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn write(&mut self, owner: &str, batch: &Batch) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(xid) = self.unacked {
            // The same batch again, after a lost connection: written already if its
            // transaction committed.
            let committed = conn::lost_commit(&mut self.client, xid);
            match committed.with_context(|| self.context("write"))? {
                true => {
                    self.unacked = None;
                    return Ok(());
                }
                false => self.unacked = None,
            }
        }
        let mut attempt = 1;
        loop {
            let mut xid = None;
            let result = self.client.transaction().and_then(|mut tx| {
                xid = Some(conn::xid(&mut tx)?);
                write::batch(&mut tx, owner, batch)?;
                tx.commit()
            });
            match result {
                Err(e) if write::retryable(&e) && attempt < WRITE_ATTEMPTS => attempt += 1,
                Err(e) if xid.is_some() && crate::lost::pg_is_lost(&e) => {
                    // The COMMIT may have reached the server: ask it after reconnecting.
                    self.unacked = xid;
                    return Err(e).with_context(|| self.context("write"));
                }
                r => return r.with_context(|| self.context("write")),
            }
        }
    }

    fn reconnect(&mut self) -> anyhow::Result<()> {
        let fresh = match self.reopen.read_only {
            true => PgStore::connect_read_only(&self.reopen.url)?,
            false => PgStore::connect(&self.reopen.url)?,
        };
        // The old client (closed) goes; the new one takes the session settings.
        self.client = fresh.client;
        self.trgm = fresh.trgm;
        if let Some(limit) = self.timeout {
            self.set_statement_timeout(limit)?;
        }
        Ok(())
    }

    fn connection_closed(&self) -> bool {
        self.is_closed()
    }

    fn contains(&mut self, info_hash: &InfoHash) -> anyhow::Result<bool> {
        let row = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM torrents WHERE info_hash = $1)
                     OR EXISTS (SELECT 1 FROM torrents
                                WHERE substring(info_hash_v2 from 1 for 20) = $1)",
                &[&&info_hash.0[..]],
            )
            .with_context(|| self.context("contains"))?;
        Ok(row.get(0))
    }

    fn known_among(&mut self, keys: &[InfoHash]) -> anyhow::Result<Vec<InfoHash>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&[u8]> = keys.iter().map(|k| &k.0[..]).collect();
        let rows = self
            .client
            .query(
                "SELECT info_hash FROM torrents WHERE info_hash = ANY($1::bytea[])
                 UNION SELECT substring(info_hash_v2 from 1 for 20) FROM torrents
                 WHERE substring(info_hash_v2 from 1 for 20) = ANY($1::bytea[])
                 UNION SELECT info_hash FROM deleted WHERE info_hash = ANY($1::bytea[])",
                &[&keys],
            )
            .with_context(|| self.context("known_among"))?;
        prune::keys_of(&rows)
    }

    fn deleted_among(&mut self, keys: &[InfoHash]) -> anyhow::Result<Vec<InfoHash>> {
        let context = self.context("reading the blocklist");
        prune::deleted_among(&mut self.client, keys).context(context)
    }

    fn for_each_deleted(&mut self, f: &mut dyn FnMut(InfoHash)) -> anyhow::Result<()> {
        let context = self.context("reading the blocklist");
        prune::for_each_deleted(&mut self.client, f).context(context)
    }

    fn prune_scan(
        &mut self,
        filter: &PruneFilter,
        after: Option<&Candidate>,
        limit: usize,
    ) -> anyhow::Result<Vec<Candidate>> {
        let context = self.context("reading the torrents to prune");
        prune::scan(&mut self.client, filter, after, limit).context(context)
    }

    fn delete_torrents(&mut self, keys: &[InfoHash], at: i64) -> anyhow::Result<Deleted> {
        let context = self.context("deleting torrents");
        prune::delete(&mut self.client, keys, at).context(context)
    }

    fn torrent_count(&mut self) -> anyhow::Result<u64> {
        let r = read::torrent_count(&mut self.client);
        self.check("counting torrents", r)
    }

    fn db_size(&mut self) -> anyhow::Result<DbSize> {
        let context = self.context("measuring the database");
        prune::size(&mut self.client).context(context)
    }

    fn reclaim(&mut self) -> anyhow::Result<()> {
        // Deleted rows' space is reused by later rows once autovacuum has passed; giving it
        // back to the file system would need VACUUM FULL, which locks the tables.
        Ok(())
    }

    fn sweep_leases(&mut self) -> anyhow::Result<u64> {
        let n = self
            .client
            .execute("DELETE FROM leases WHERE expires <= now()", &[])
            .with_context(|| self.context("sweeping expired leases"))?;
        Ok(n)
    }

    fn lease_owners(&mut self) -> anyhow::Result<Vec<String>> {
        let rows = self
            .client
            .query("SELECT DISTINCT owner FROM leases LIMIT 4096", &[])
            .with_context(|| self.context("reading the lease owners"))?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    fn release_leases(&mut self, owner: &str) -> anyhow::Result<u64> {
        let n = self
            .client
            .execute("DELETE FROM leases WHERE owner = $1", &[&owner])
            .with_context(|| self.context("releasing a gone crawler's leases"))?;
        Ok(n)
    }

    fn for_each_info_hash(&mut self, f: &mut dyn FnMut(InfoHash)) -> anyhow::Result<()> {
        let context = self.context("reading the stored infohashes");
        read::each_key(&mut self.client, f).context(context)
    }

    fn claim(
        &mut self,
        info_hash: &InfoHash,
        owner: &str,
        lease: Duration,
    ) -> anyhow::Result<bool> {
        let r = lease::claim_many(&mut self.client, &[*info_hash], owner, lease);
        let granted = r.with_context(|| self.context("claim"))?;
        Ok(granted.first().copied().unwrap_or(false))
    }

    fn claim_many(
        &mut self,
        keys: &[InfoHash],
        owner: &str,
        lease: Duration,
    ) -> anyhow::Result<Vec<bool>> {
        let r = lease::claim_many(&mut self.client, keys, owner, lease);
        r.with_context(|| self.context("claim"))
    }

    fn save_nodes(&mut self, nodes: &[CompactNode], at: i64, keep: usize) -> anyhow::Result<()> {
        let result = self.client.transaction().and_then(|mut tx| {
            write::nodes(&mut tx, nodes, at, keep)?;
            tx.commit()
        });
        result.with_context(|| self.context("saving nodes"))
    }

    fn load_nodes(&mut self, max: usize) -> anyhow::Result<Vec<CompactNode>> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query(
                "SELECT ip, port, id FROM nodes ORDER BY last_good DESC, ip, port LIMIT $1",
                &[&max],
            )
            .with_context(|| self.context("loading nodes"))?;
        let mut nodes = Vec::with_capacity(rows.len());
        for row in &rows {
            let (ip, port, id): (std::net::IpAddr, i32, &[u8]) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            // A row that is not a node (bad port or id) is skipped, not fatal.
            let (Ok(port), Ok(id)) = (u16::try_from(port), <[u8; 20]>::try_from(id)) else {
                continue;
            };
            nodes.push(CompactNode {
                id: NodeId(id),
                addr: SocketAddr::new(ip, port),
            });
        }
        Ok(nodes)
    }

    fn find(
        &mut self,
        query: &SearchQuery,
        sort: SearchSort,
        limit: usize,
        offset: usize,
    ) -> anyhow::Result<Vec<StoredTorrent>> {
        let r = search::find(&mut self.client, self.trgm, query, sort, limit, offset);
        self.check("search", r)
    }

    fn category_counts(&mut self, query: &SearchQuery) -> anyhow::Result<CategoryCounts> {
        let r = search::category_counts(&mut self.client, self.trgm, query);
        self.check("search", r)
    }

    fn torrent(&mut self, info_hash: &InfoHash) -> anyhow::Result<Option<StoredTorrent>> {
        let r = read::torrent(&mut self.client, info_hash);
        self.check("reading a torrent", r)
    }

    fn export(
        &mut self,
        since: Option<i64>,
        f: &mut dyn FnMut(&StoredTorrent, &[SocketAddr]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let context = self.context("export");
        read::export(&mut self.client, since, f).context(context)
    }

    fn stats(&mut self) -> anyhow::Result<Stats> {
        let r = read::stats(&mut self.client);
        self.check("stats", r)
    }

    fn recent(&mut self, limit: usize, offset: usize) -> anyhow::Result<Vec<StoredTorrent>> {
        let r = browse::recent(&mut self.client, limit, offset);
        self.check("recent torrents", r)
    }

    fn sightings_of(
        &mut self,
        info_hash: &InfoHash,
        max: usize,
    ) -> anyhow::Result<(Vec<SightingRow>, SightingCounts)> {
        let r = browse::sightings_of(&mut self.client, info_hash, max);
        self.check("sightings", r)
    }

    fn discovered_range(&mut self) -> anyhow::Result<Option<(i64, i64)>> {
        let r = browse::discovered_range(&mut self.client);
        self.check("discovery range", r)
    }

    fn timeline(&mut self, bucket_secs: i64) -> anyhow::Result<Vec<(i64, Source, u64)>> {
        let r = browse::timeline(&mut self.client, bucket_secs);
        self.check("timeline", r)
    }

    fn size_histogram(&mut self) -> anyhow::Result<Vec<u64>> {
        let r = browse::size_histogram(&mut self.client);
        self.check("size histogram", r)
    }

    fn total_bytes(&mut self) -> anyhow::Result<u64> {
        let r = browse::total_bytes(&mut self.client);
        self.check("total size", r)
    }

    fn set_statement_timeout(&mut self, limit: Duration) -> anyhow::Result<()> {
        let limit = limit.max(Duration::from_millis(1));
        let ms = limit.as_millis().min(i32::MAX as u128);
        let r = self
            .client
            .batch_execute(&format!("SET statement_timeout = {ms}"))
            .map_err(anyhow::Error::from);
        self.check("setting the statement timeout", r)?;
        self.timeout = Some(limit);
        Ok(())
    }

    fn set_categories(&mut self, rows: &[(InfoHash, Category, Release)]) -> anyhow::Result<()> {
        let r = write::set_categories(&mut self.client, rows);
        self.check("setting categories", r)
    }

    fn stale_estimates(&mut self, before: i64, limit: usize) -> anyhow::Result<Vec<InfoHash>> {
        let r = estimates::stale(&mut self.client, before, limit);
        self.check("stale estimates", r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_never_show_passwords() {
        let c = Config::from_str("postgres://me:secret@db.example:5433/idx").unwrap();
        assert_eq!(describe(&c), "`idx` on db.example");
        let c = Config::from_str("host=/tmp/pg dbname=x password=secret").unwrap();
        assert_eq!(describe(&c), "`x` on /tmp/pg");
    }

    #[test]
    fn bad_urls_are_one_line_errors() {
        let Err(e) = open("postgres://[::1") else {
            panic!("a bad URL connected")
        };
        let e = e.to_string();
        assert!(e.contains("not a PostgreSQL connection string"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
