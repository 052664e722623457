//! The index that `estudely run` builds, read from Python: one read-only connection for the
//! small queries (`search`, `torrent`, `stats`), and for the whole index (`export`'s rows) a
//! thread of its own with its own connection, handing over chunks of rows one at a time, so
//! that no more than two chunks are ever in memory. Rows are the JSON views `export
//! --format jsonl` and `search --format jsonl` write: as Python values, or (for pyarrow,
//! much faster on a big index) the same fields in Arrow's buffers ([`crate::columns`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use estudely::cli::Command;
use estudely::crawl::setup::StopOn;
use estudely_store::json::{hit_with_file, stats_value, torrent_value};
use estudely_store::{DbUrl, Store, StoredTorrent};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyString};

use crate::columns::Chunk;
use crate::convert;
use crate::errors::command_error;
use crate::kwargs;
use crate::task::{spawn_buffered, LineWriter, Task};

/// An index opened read-only: `sqlite:PATH`, a plain path, or `postgres://...`, as `--db`.
#[pyclass(module = "estudely._native")]
pub struct Index {
    url: String,
    store: Mutex<Option<Box<dyn Store>>>,
}

/// A chunk's sender found its reader gone: the iteration was closed, not failed.
#[derive(Debug)]
struct ReaderGone;

impl std::fmt::Display for ReaderGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the reader of the rows went away")
    }
}

impl std::error::Error for ReaderGone {}

impl Index {
    /// A task reading the whole index (from `since`) on a connection of its own, its
    /// torrents gathered `chunk_size` at a time into chunks (`new`, `len`, `push`) that
    /// `send` hands to Python one at a time.
    ///
    /// With `parts` above 1, the index is split into that many ranges of about as many
    /// torrents ([`Store::export_bounds`]; a backend that cannot split gives one), each read
    /// by a thread on a connection of its own: the chunks of a range come in its order, but
    /// those of different ranges interleave, each made by `new(part)` so that the reader
    /// can put them back in order. The export is mostly CPU (SQLite, the layout), so a
    /// second core halves the export thread's share, the critical path on a big index.
    #[allow(clippy::too_many_arguments)]
    fn export_task<C: Send + 'static>(
        &self,
        since: Option<&Bound<'_, PyAny>>,
        chunk_size: usize,
        parts: usize,
        new: impl Fn(usize) -> C + Send + Sync + 'static,
        len: fn(&C) -> usize,
        push: fn(&mut C, &StoredTorrent, &[SocketAddr]),
        send: fn(&LineWriter, C) -> std::io::Result<()>,
    ) -> PyResult<Task> {
        if chunk_size == 0 {
            return Err(PyValueError::new_err("chunk_size must be at least 1"));
        }
        if parts == 0 {
            return Err(PyValueError::new_err("parts must be at least 1"));
        }
        let since = since_secs(since)?;
        let db = DbUrl::parse(&self.url).map_err(|e| PyValueError::new_err(e.0))?;
        // A chunk ahead of the reader for each range's thread.
        spawn_buffered("export", parts, move |out, stop| {
            let mut store = db.open_read_only()?;
            let keys = if parts > 1 {
                store.export_bounds(since, parts)?
            } else {
                Vec::new()
            };
            let mut ends = vec![None];
            ends.extend(keys.into_iter().map(Some));
            ends.push(None);
            let ranges: Vec<_> = ends.windows(2).map(|w| (w[0], w[1])).collect();
            // Set by a range that failed: the others stop at their next torrent.
            let halt = AtomicBool::new(false);
            let range = |part: usize, store: &mut dyn Store| -> anyhow::Result<()> {
                let (from, to) = ranges[part];
                let (mut chunk, mut sent) = (new(part), false);
                let result = store.export_range(since, from, to, &mut |st, peers| {
                    push(&mut chunk, st, peers);
                    if len(&chunk) == chunk_size {
                        send(&out, std::mem::replace(&mut chunk, new(part)))
                            .map_err(|_| ReaderGone)?;
                        sent = true;
                    }
                    if halt.load(Ordering::Relaxed)
                        || matches!(&stop, StopOn::Flag(rx) if *rx.borrow())
                    {
                        return Err(ReaderGone.into());
                    }
                    Ok(())
                });
                match result {
                    Err(e) if e.is::<ReaderGone>() => return Ok(()),
                    Err(e) => {
                        halt.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                    Ok(()) => {}
                }
                // The last chunk, or an empty one when there was none: the columns' types
                // then still reach Python (an empty table keeps its schema).
                if len(&chunk) > 0 || !sent {
                    let _ = send(&out, chunk);
                }
                Ok(())
            };
            std::thread::scope(|scope| {
                let others: Vec<_> = (1..ranges.len())
                    .map(|part| {
                        let (db, range, halt) = (&db, &range, &halt);
                        scope.spawn(move || {
                            let result = db
                                .open_read_only()
                                .and_then(|mut store| range(part, store.as_mut()));
                            if result.is_err() {
                                halt.store(true, Ordering::Relaxed);
                            }
                            result
                        })
                    })
                    .collect();
                let mut result = range(0, store.as_mut());
                for thread in others {
                    let other = thread
                        .join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("an export thread panicked")));
                    // The first range's error first.
                    result = result.and(other);
                }
                result
            })
        })
    }

    /// Run `f` on the open store, detached from the interpreter.
    fn with_store<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut dyn Store) -> anyhow::Result<T> + Send,
    ) -> PyResult<T> {
        let result = py.detach(|| {
            let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
            let store = guard
                .as_mut()
                .ok_or_else(|| anyhow::anyhow!("the index is closed"))?;
            f(store.as_mut())
        });
        result.map_err(|e| command_error(&e))
    }
}

/// `since` as unix seconds: an int, or a str as `export --since` takes it (a date, an RFC
/// 3339 time, unix seconds).
fn since_secs(since: Option<&Bound<'_, PyAny>>) -> PyResult<Option<i64>> {
    let Some(since) = since.filter(|s| !s.is_none()) else {
        return Ok(None);
    };
    if since.is_instance_of::<PyInt>() {
        return since.extract().map(Some);
    }
    if let Ok(s) = since.cast::<PyString>() {
        let s = s.to_cow()?;
        let s: &str = &s;
        return estudely::cmd::export::parse_since(s)
            .map(Some)
            .map_err(|e| PyValueError::new_err(format!("invalid value '{s}' for 'since': {e}")));
    }
    Err(PyTypeError::new_err(
        "since must be unix seconds (int), a date or an RFC 3339 time (str)",
    ))
}

#[pymethods]
impl Index {
    /// Open the index at `url` for reading (a missing SQLite file is a `ValueError`, never
    /// a new empty index).
    #[new]
    fn new(py: Python<'_>, url: &str) -> PyResult<Self> {
        let db = DbUrl::parse(url).map_err(|e| PyValueError::new_err(e.0))?;
        let store = py
            .detach(|| db.open_read_only())
            .map_err(|e| command_error(&e))?;
        Ok(Index {
            url: url.to_owned(),
            store: Mutex::new(Some(store)),
        })
    }

    /// Search results as columns (the fields of `search --format jsonl` but
    /// `matched_file`), with `search`'s flags as keywords: `limit`, `offset`, `sort`
    /// (`relevance`, `size`, `discovered`, `seeders`), `category`. The query is in
    /// `estudely search`'s syntax (phrases, exclusions, fields).
    #[pyo3(signature = (query, **kwargs))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        query: String,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let fixed = ["--db", &self.url, "--format", "jsonl"];
        let Command::Search(args) =
            kwargs::command("search", &["search"], kwargs, &fixed, &[query])?
        else {
            return Err(PyRuntimeError::new_err("internal error: not a search"));
        };
        let hits = self.with_store(py, move |store| {
            let mut q = estudely_store::parse_query(&args.query.join(" "))?;
            if let Some(c) = args.category {
                q.and_category(c);
            }
            let hits = store.find(&q, args.sort.into(), args.limit, args.offset)?;
            let matched = store.matched_files(&q, &hits)?;
            Ok(hits
                .iter()
                .zip(&matched)
                .map(|(hit, file)| hit_with_file(hit, file.as_deref()))
                .collect::<Vec<_>>())
        })?;
        convert::columns(py, &hits)
    }

    /// One torrent with its stored files (no peers), as `export --format jsonl` writes it;
    /// `None` when the index does not hold it. `infohash`: 40 or 64 hex digits, or a magnet
    /// link.
    fn torrent<'py>(&self, py: Python<'py>, infohash: &str) -> PyResult<Bound<'py, PyAny>> {
        let key = estudely::args::parse_info_hash(infohash).map_err(PyValueError::new_err)?;
        let found = self.with_store(py, move |store| {
            Ok(store.torrent(&key)?.map(|st| torrent_value(&st, &[])))
        })?;
        match found {
            Some(v) => convert::to_py(py, &v),
            None => Ok(py.None().into_bound(py)),
        }
    }

    /// The counts of `stats --format json`, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = self.with_store(py, |store| store.stats())?;
        convert::to_py(py, &stats_value(&stats))
    }

    /// Every torrent discovered at or after `since`, oldest first, as `export --format
    /// jsonl` writes them: a task yielding chunks of `chunk_size` rows as columns (lists of
    /// Python values), read on a connection of its own. Without pyarrow.
    #[pyo3(signature = (since=None, chunk_size=65_536))]
    fn torrent_chunks(
        &self,
        since: Option<&Bound<'_, PyAny>>,
        chunk_size: usize,
    ) -> PyResult<Task> {
        self.export_task(
            since,
            chunk_size,
            1,
            |_| Vec::new(),
            Vec::len,
            |rows, st, peers| rows.push(torrent_value(st, peers)),
            LineWriter::send_rows,
        )
    }

    /// [`Index::torrent_chunks`] with each chunk in Arrow's buffers (see
    /// [`crate::columns`]): `{"rows": n, "part": p, "columns": [(name, column), ...]}`, for
    /// pyarrow. With `parts` above 1, read by up to that many threads, each a range of
    /// the index (see [`Index::export_task`]): the chunks of part 0, then of part 1, ...
    /// are the torrents in order, but the parts' chunks come interleaved.
    #[pyo3(signature = (since=None, chunk_size=65_536, parts=1))]
    fn torrent_columns(
        &self,
        since: Option<&Bound<'_, PyAny>>,
        chunk_size: usize,
        parts: usize,
    ) -> PyResult<Task> {
        self.export_task(
            since,
            chunk_size,
            parts,
            |part| Box::new(Chunk::new(part)),
            |c| c.len(),
            |c, st, peers| c.push(st, peers),
            LineWriter::send_columns,
        )
    }

    /// Close the connection (later calls fail; iterations already started go on).
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            self.store.lock().unwrap_or_else(|p| p.into_inner()).take();
        });
    }

    /// The `url` it was opened with.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }
}
