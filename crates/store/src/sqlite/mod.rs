//! The SQLite backend: one file in WAL mode, the schema of [the crate root](crate) created by
//! versioned migrations ([`schema`]), full-text search with FTS5.
//!
//! `write` holds the writes (batches, leases, nodes), `read` the reads (a torrent, the
//! stats), `export` the streaming export, `search` the searches, `browse` the web UI's other reads. A writer opens with [`SqliteStore::open`]; `export`, `search` and
//! `stats` open with [`SqliteStore::open_read_only`], which never creates a file.

mod browse;
pub(crate) mod codec;
mod estimates;
mod export;
mod guard;
mod prune;
mod read;
pub mod schema;
mod search;
mod write;

#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use estudely_krpc::{CompactNode, InfoHash};
use rusqlite::{Connection, OpenFlags};

use super::{
    Batch, ExportKey, SearchSort, SightingCounts, SightingRow, Source, Stats, Store, StoredTorrent,
};
use crate::prune::{Candidate, DbSize, Deleted, PruneFilter};
use crate::{Category, CategoryCounts, Release, SearchQuery, UsageError};

/// An SQLite index, open for writing or for reading only.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// The statement timeout, once set.
    guard: guard::Guard,
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
            guard: guard::Guard::default(),
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
            guard: guard::Guard::default(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the connection as one call under the statement timeout (`limited`) or
    /// not, with an aborted statement's error made plain.
    fn guarded<T>(
        &mut self,
        limited: bool,
        f: impl FnOnce(&mut Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.guard.start(limited);
        let result = f(&mut self.conn);
        self.guard.start(false);
        self.guard.check(result)
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
        let what = format!("writing to SQLite index `{}`", self.path.display());
        self.guarded(true, |c| write::write(c, owner, batch))
            .context(what)
    }

    fn contains(&mut self, info_hash: &InfoHash) -> anyhow::Result<bool> {
        self.guarded(true, |c| Ok(read::contains(c, info_hash)?))
    }

    fn known_among(&mut self, keys: &[InfoHash]) -> anyhow::Result<Vec<InfoHash>> {
        self.guarded(true, |c| read::known_among(c, keys))
    }

    fn sweep_leases(&mut self) -> anyhow::Result<u64> {
        self.guarded(true, |c| write::sweep_leases(c, unix_now()))
    }

    fn deleted_among(&mut self, keys: &[InfoHash]) -> anyhow::Result<Vec<InfoHash>> {
        self.guarded(true, |c| prune::deleted_among(c, keys))
    }

    fn for_each_deleted(&mut self, f: &mut dyn FnMut(InfoHash)) -> anyhow::Result<()> {
        self.guarded(false, |c| prune::for_each_deleted(c, f))
    }

    fn prune_scan(
        &mut self,
        filter: &PruneFilter,
        after: Option<&Candidate>,
        limit: usize,
    ) -> anyhow::Result<Vec<Candidate>> {
        self.guarded(false, |c| prune::scan(c, filter, after, limit))
    }

    fn delete_torrents(&mut self, keys: &[InfoHash], at: i64) -> anyhow::Result<Deleted> {
        let what = format!("deleting from SQLite index `{}`", self.path.display());
        self.guarded(false, |c| prune::delete(c, keys, at))
            .context(what)
    }

    fn torrent_count(&mut self) -> anyhow::Result<u64> {
        self.guarded(false, |c| {
            let n: i64 = c.query_row("SELECT count(*) FROM torrents", [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn db_size(&mut self) -> anyhow::Result<DbSize> {
        prune::size(&self.conn, &self.path)
    }

    fn reclaim(&mut self) -> anyhow::Result<()> {
        let what = format!("vacuuming SQLite index `{}`", self.path.display());
        self.guarded(false, |c| prune::reclaim(c)).context(what)
    }

    fn lease_owners(&mut self) -> anyhow::Result<Vec<String>> {
        self.guarded(false, |c| {
            let mut stmt = c.prepare("SELECT DISTINCT owner FROM leases LIMIT 4096")?;
            let owners = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(owners)
        })
    }

    fn release_leases(&mut self, owner: &str) -> anyhow::Result<u64> {
        self.guarded(true, |c| {
            Ok(c.execute("DELETE FROM leases WHERE owner = ?1", [owner])? as u64)
        })
    }

    fn for_each_info_hash(&mut self, f: &mut dyn FnMut(InfoHash)) -> anyhow::Result<()> {
        self.guarded(false, |c| read::for_each_info_hash(c, f))
    }

    fn claim(
        &mut self,
        info_hash: &InfoHash,
        owner: &str,
        lease: Duration,
    ) -> anyhow::Result<bool> {
        self.guarded(true, |c| {
            write::claim(c, info_hash, owner, lease, unix_now())
        })
    }

    fn save_nodes(&mut self, nodes: &[CompactNode], at: i64, keep: usize) -> anyhow::Result<()> {
        self.guarded(true, |c| write::save_nodes(c, nodes, at, keep))
    }

    fn load_nodes(&mut self, max: usize) -> anyhow::Result<Vec<CompactNode>> {
        self.guarded(true, |c| read::load_nodes(c, max))
    }

    fn find(
        &mut self,
        query: &SearchQuery,
        sort: SearchSort,
        limit: usize,
        offset: usize,
    ) -> anyhow::Result<Vec<StoredTorrent>> {
        let what = format!("searching SQLite index `{}`", self.path.display());
        self.guarded(true, |c| search::find(c, query, sort, limit, offset))
            .context(what)
    }

    fn category_counts(&mut self, query: &SearchQuery) -> anyhow::Result<CategoryCounts> {
        let what = format!("searching SQLite index `{}`", self.path.display());
        self.guarded(true, |c| search::category_counts(c, query))
            .context(what)
    }

    fn torrent(&mut self, info_hash: &InfoHash) -> anyhow::Result<Option<StoredTorrent>> {
        self.guarded(true, |c| read::torrent(c, info_hash))
    }

    fn export(
        &mut self,
        since: Option<i64>,
        f: &mut dyn FnMut(&StoredTorrent, &[SocketAddr]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.guarded(false, |c| export::export(c, since, f))
    }

    fn export_bounds(
        &mut self,
        since: Option<i64>,
        parts: usize,
    ) -> anyhow::Result<Vec<ExportKey>> {
        self.guarded(false, |c| export::bounds(c, since, parts))
    }

    fn export_range(
        &mut self,
        since: Option<i64>,
        from: Option<ExportKey>,
        to: Option<ExportKey>,
        f: &mut dyn FnMut(&StoredTorrent, &[SocketAddr]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.guarded(false, |c| export::export_range(c, since, from, to, f))
    }

    fn stats(&mut self) -> anyhow::Result<Stats> {
        self.guarded(true, |c| read::stats(c))
    }

    fn recent(&mut self, limit: usize, offset: usize) -> anyhow::Result<Vec<StoredTorrent>> {
        self.guarded(true, |c| browse::recent(c, limit, offset))
    }

    fn sightings_of(
        &mut self,
        info_hash: &InfoHash,
        max: usize,
    ) -> anyhow::Result<(Vec<SightingRow>, SightingCounts)> {
        self.guarded(true, |c| browse::sightings_of(c, info_hash, max))
    }

    fn discovered_range(&mut self) -> anyhow::Result<Option<(i64, i64)>> {
        self.guarded(true, |c| browse::discovered_range(c))
    }

    fn timeline(&mut self, bucket_secs: i64) -> anyhow::Result<Vec<(i64, Source, u64)>> {
        self.guarded(true, |c| browse::timeline(c, bucket_secs))
    }

    fn size_histogram(&mut self) -> anyhow::Result<Vec<u64>> {
        self.guarded(true, |c| browse::size_histogram(c))
    }

    fn total_bytes(&mut self) -> anyhow::Result<u64> {
        self.guarded(true, |c| browse::total_bytes(c))
    }

    fn set_statement_timeout(&mut self, limit: Duration) -> anyhow::Result<()> {
        self.guard.set(&self.conn, limit);
        Ok(())
    }

    fn set_categories(&mut self, rows: &[(InfoHash, Category, Release)]) -> anyhow::Result<()> {
        let what = format!("writing to SQLite index `{}`", self.path.display());
        write::set_categories(&mut self.conn, rows).context(what)
    }

    fn stale_estimates(&mut self, before: i64, limit: usize) -> anyhow::Result<Vec<InfoHash>> {
        self.guarded(true, |c| estimates::stale(c, before, limit))
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

#[cfg(test)]
mod category_tests {
    use super::fixtures::{open, torrent};
    use super::*;
    use rusqlite::params;

    fn write(s: &mut SqliteStore, torrents: Vec<crate::Torrent>) {
        let batch = Batch {
            torrents,
            ..Batch::default()
        };
        s.write("t", &batch).unwrap();
    }

    #[test]
    fn categories_are_stored_searched_counted_and_set_again() {
        let (_dir, mut s) = open();
        let film = torrent(1, b"Silent.River.2019.1080p.BluRay.x264-GRP.mkv", 10);
        let show = torrent(2, b"Silent.River.S01E02.720p.WEB.x264-GRP.mkv", 20);
        let book = torrent(3, b"Silent River.epub", 30);
        assert_eq!(film.category, Some(Category::Movie));
        assert_eq!(show.category, Some(Category::Tv));
        write(&mut s, vec![film, show, book]);
        // Round trip, release fields included.
        let t = s.torrent(&InfoHash([2; 20])).unwrap().unwrap().torrent;
        assert_eq!(t.category, Some(Category::Tv));
        let r = t.release.unwrap();
        assert_eq!(
            (r.season, r.episode, r.title.as_deref()),
            (Some(1), Some(2), Some("Silent River"))
        );
        // Search within a category, with words and without.
        let keys = |hits: Vec<StoredTorrent>| -> Vec<u8> {
            hits.iter().map(|h| h.torrent.info_hash.0[0]).collect()
        };
        let all = s
            .search_sorted("silent", SearchSort::Discovered, 10, 0)
            .unwrap();
        assert_eq!(keys(all), [3, 2, 1]);
        let tv = s
            .search_in("silent", Category::Tv, SearchSort::Relevance, 10, 0)
            .unwrap();
        assert_eq!(keys(tv), [2]);
        let ebooks = s
            .search_in("", Category::Ebook, SearchSort::Relevance, 10, 0)
            .unwrap();
        assert_eq!(keys(ebooks), [3]);
        assert!(s
            .search_in("silent", Category::Game, SearchSort::Size, 10, 0)
            .unwrap()
            .is_empty());
        // A row from before classification: null, counted as unclassified.
        s.conn
            .execute(
                "UPDATE torrents SET category = NULL, release = NULL WHERE info_hash = ?1",
                params![[3u8; 20]],
            )
            .unwrap();
        let t = s.torrent(&InfoHash([3; 20])).unwrap().unwrap().torrent;
        assert_eq!((t.category, t.release), (None, None));
        let st = s.stats().unwrap();
        let by = |w: &str| st.by_category.iter().find(|(k, _)| k == w).map(|(_, n)| *n);
        assert_eq!(
            (by("movie"), by("tv"), by("unclassified")),
            (Some(1), Some(1), Some(1))
        );
        // Set again (reclassify): unknown keys are skipped.
        let fix = (InfoHash([3; 20]), Category::Ebook, Release::default());
        let ghost = (InfoHash([9; 20]), Category::Game, Release::default());
        s.set_categories(&[fix, ghost]).unwrap();
        let t = s.torrent(&InfoHash([3; 20])).unwrap().unwrap().torrent;
        assert_eq!(
            (t.category, t.release),
            (Some(Category::Ebook), Some(Release::default()))
        );
        assert_eq!(s.stats().unwrap().torrents, 3);
    }
}
