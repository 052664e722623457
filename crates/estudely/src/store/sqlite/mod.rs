//! The SQLite backend: one file in WAL mode, the schema of [`crate::store`] created by
//! versioned migrations ([`schema`]), full-text search with FTS5.
//!
//! [`write`] holds the writes (batches, leases, nodes), [`read`] the queries (search,
//! export, stats). A writer opens with [`SqliteStore::open`]; `export`, `search` and
//! `stats` open with [`SqliteStore::open_read_only`], which never creates a file.

mod codec;
mod read;
pub mod schema;
mod write;

#[cfg(test)]
pub(crate) mod fixtures;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use estudely_krpc::{CompactNode, InfoHash};
use rusqlite::{Connection, OpenFlags};

use super::{Batch, Stats, Store, StoredTorrent};
use crate::resolve::UsageError;

/// An SQLite index, open for writing or for reading only.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Open `path`, creating the file if needed, and bring its schema up to date. An index
    /// written by a newer estudely, or a database that is not an Estudely index, is an error.
    pub fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        let what = path.display().to_string();
        let mut conn = Connection::open_with_flags(path, schema::writer_flags())
            .with_context(|| format!("cannot open SQLite index `{what}`"))?;
        schema::configure(&conn, true).with_context(|| format!("SQLite index `{what}`"))?;
        let version = check_version(&conn, &what, true)?;
        if version < schema::latest() {
            schema::migrate(&mut conn, &what)?;
        }
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
        })
    }

    /// Open an existing index for reading only. A missing file, or one that is not an
    /// Estudely index of this version, is a [`UsageError`] naming it.
    pub fn open_read_only(path: &Path) -> anyhow::Result<SqliteStore> {
        let what = path.display().to_string();
        if !path.is_file() {
            let why = if path.exists() {
                "not a file"
            } else {
                "no such file"
            };
            return Err(UsageError(format!("cannot open SQLite index `{what}`: {why}")).into());
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .with_context(|| format!("cannot open SQLite index `{what}`"))?;
        schema::configure(&conn, false).with_context(|| format!("SQLite index `{what}`"))?;
        let version = check_version(&conn, &what, false)?;
        if version < schema::latest() {
            return Err(UsageError(format!(
                "SQLite index `{what}` has schema version {version}, older than this estudely \
                 reads ({}): open it once for writing to migrate it",
                schema::latest()
            ))
            .into());
        }
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The schema version of an open file, checked: not newer than this binary knows, and an
/// Estudely index (or, for a writer, an empty file).
fn check_version(conn: &Connection, what: &str, writer: bool) -> anyhow::Result<i64> {
    let not_index = |why: &str| UsageError(format!("`{what}` is not an Estudely index: {why}"));
    let version = match schema::current_version(conn) {
        Ok(Some(v)) if v > 0 || writer => v,
        Ok(Some(_)) => return Err(not_index("it is empty").into()),
        Ok(None) => return Err(not_index("it holds other tables").into()),
        Err(e) => return Err(not_index(&e.to_string()).into()),
    };
    if version > schema::latest() {
        anyhow::bail!(schema::too_new(what, version));
    }
    Ok(version)
}

/// Now, unix seconds.
fn unix_now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
}

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn write(&mut self, owner: &str, batch: &Batch) -> anyhow::Result<()> {
        write::write(&mut self.conn, owner, batch)
            .with_context(|| format!("writing to SQLite index `{}`", self.path.display()))
    }

    fn contains(&mut self, info_hash: &InfoHash) -> anyhow::Result<bool> {
        Ok(read::contains(&self.conn, info_hash)?)
    }

    fn for_each_info_hash(&mut self, f: &mut dyn FnMut(InfoHash)) -> anyhow::Result<()> {
        read::for_each_info_hash(&self.conn, f)
    }

    fn claim(
        &mut self,
        info_hash: &InfoHash,
        owner: &str,
        lease: Duration,
    ) -> anyhow::Result<bool> {
        write::claim(&mut self.conn, info_hash, owner, lease, unix_now())
    }

    fn save_nodes(&mut self, nodes: &[CompactNode], at: i64, keep: usize) -> anyhow::Result<()> {
        write::save_nodes(&mut self.conn, nodes, at, keep)
    }

    fn load_nodes(&mut self, max: usize) -> anyhow::Result<Vec<CompactNode>> {
        read::load_nodes(&self.conn, max)
    }

    fn search(
        &mut self,
        query: &str,
        limit: usize,
        offset: usize,
    ) -> anyhow::Result<Vec<StoredTorrent>> {
        read::search(&self.conn, query, limit, offset)
            .with_context(|| format!("searching SQLite index `{}`", self.path.display()))
    }

    fn torrent(&mut self, info_hash: &InfoHash) -> anyhow::Result<Option<StoredTorrent>> {
        read::torrent(&self.conn, info_hash)
    }

    fn export(
        &mut self,
        since: Option<i64>,
        f: &mut dyn FnMut(&StoredTorrent, &[SocketAddr]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        read::export(&self.conn, since, f)
    }

    fn stats(&mut self) -> anyhow::Result<Stats> {
        read::stats(&self.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_twice_migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sqlite");
        drop(SqliteStore::open(&path).unwrap());
        let s = SqliteStore::open(&path).unwrap();
        let rows: i64 = s
            .conn
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, schema::latest());
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(s);
        let mut ro = SqliteStore::open_read_only(&path).unwrap();
        assert_eq!(ro.stats().unwrap(), Stats::default());
    }

    #[test]
    fn read_only_refuses_missing_foreign_and_newer_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sqlite");
        let e = SqliteStore::open_read_only(&missing).unwrap_err();
        assert!(e.is::<UsageError>());
        let msg = format!("{e:#}");
        assert!(
            msg.contains("missing.sqlite") && msg.contains("no such file"),
            "{msg}"
        );
        assert!(!missing.exists(), "a read-only open never creates the file");

        let junk = dir.path().join("junk.txt");
        std::fs::write(&junk, b"hello, this is not a database at all....").unwrap();
        let msg = format!("{:#}", SqliteStore::open_read_only(&junk).unwrap_err());
        assert!(
            msg.contains("junk.txt") && msg.contains("not an Estudely index"),
            "{msg}"
        );
        let msg = format!("{:#}", SqliteStore::open(&junk).unwrap_err());
        assert!(msg.contains("junk.txt"), "{msg}");

        let other = dir.path().join("other.sqlite");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let msg = format!("{:#}", SqliteStore::open(&other).unwrap_err());
        assert!(
            msg.contains("other.sqlite") && msg.contains("not an Estudely"),
            "{msg}"
        );

        let newer = dir.path().join("newer.sqlite");
        drop(SqliteStore::open(&newer).unwrap());
        Connection::open(&newer)
            .unwrap()
            .execute("INSERT INTO schema_migrations VALUES (999, 0)", [])
            .unwrap();
        for e in [
            SqliteStore::open(&newer).unwrap_err(),
            SqliteStore::open_read_only(&newer).unwrap_err(),
        ] {
            let msg = format!("{e:#}");
            assert!(
                msg.contains("newer.sqlite") && msg.contains("version 999"),
                "{msg}"
            );
        }
    }
}
