//! Chunks of the index's torrents as columns of plain buffers in Arrow's layouts (values,
//! offsets, validity bitmaps), which the Python side wraps as pyarrow arrays: no Python
//! object per row, per file or per peer. The rows of `export --format jsonl` as Python
//! objects (a dict per file) took 80 s and 7.9 GB of peak RSS for 1 M torrents with 10 M
//! files; BENCHMARKS.md ("Python") has the figures of this path.
//!
//! A chunk is built on the export thread, detached from the interpreter; [`Chunk::into_py`]
//! then hands each buffer over as it is, a [`Buffer`] that pyarrow wraps without a copy
//! (validity bitmaps, small, as `bytes`).
//! The fields and their text are `export --format jsonl`'s (`estudely_store::json`), which
//! the Python tests check row by row.

use std::net::SocketAddr;

use estudely_peer_wire::FileEntry;
use estudely_store::{Release, StoredTorrent};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

/// A validity bitmap: bit `i` (least significant first) set when value `i` is present.
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    len: usize,
    nulls: usize,
}

impl Bits {
    fn push(&mut self, set: bool) {
        if self.len.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if set {
            if let Some(last) = self.bytes.last_mut() {
                *last |= 1 << (self.len % 8);
            }
        } else {
            self.nulls += 1;
        }
        self.len += 1;
    }

    /// The bitmap, or `None` (every value present) where Arrow needs none.
    fn validity<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        (self.nulls > 0).then(|| PyBytes::new(py, &self.bytes))
    }
}

/// Is `raw` text that `estudely_peer_wire::info::display` leaves as it is: UTF-8 without
/// control characters? One pass over the bytes for printable ASCII, the usual case (this
/// runs for every name and path component, 10 M at 1 M torrents).
fn printable(raw: &[u8]) -> bool {
    // A test of every byte of a block, not stopping at the first that fails, compiles to
    // vector instructions (stopping at each byte did not).
    let ascii = raw.chunks(32).all(|block| {
        block
            .iter()
            .fold(true, |ok, &b| ok & (b.wrapping_sub(0x20) < 0x5f))
    });
    ascii || std::str::from_utf8(raw).is_ok_and(|s| !s.chars().any(char::is_control))
}

/// Optional strings or bytes: Arrow's `large_string` / `large_binary`.
struct Text {
    offsets: Vec<i64>,
    data: Vec<u8>,
    valid: Bits,
    binary: bool,
}

impl Text {
    fn new(binary: bool) -> Self {
        Text {
            offsets: vec![0],
            data: Vec::new(),
            valid: Bits::default(),
            binary,
        }
    }

    fn push(&mut self, value: Option<&[u8]>) {
        self.data.extend_from_slice(value.unwrap_or_default());
        self.offsets.push(self.data.len() as i64);
        self.valid.push(value.is_some());
    }

    fn push_str(&mut self, value: &str) {
        self.push(Some(value.as_bytes()));
    }

    /// `bytes` in lower-case hex, written in place.
    fn push_hex(&mut self, bytes: &[u8]) {
        let start = self.data.len();
        self.data.resize(start + 2 * bytes.len(), 0);
        // The slice is exactly twice the input: encoding cannot fail.
        let _ = hex::encode_to_slice(bytes, &mut self.data[start..]);
        self.offsets.push(self.data.len() as i64);
        self.valid.push(true);
    }

    /// A file's path as the JSON view shows it (components joined with `/`, each as
    /// `display` shows it); whether that is exactly its components (the JSON view adds
    /// `path_hex` where not). Components that are plain text are copied as they are,
    /// without the allocations of `FileEntry::path_lossy`.
    fn push_path(&mut self, file: &FileEntry) -> bool {
        let plain = |c: &[u8]| printable(c) && !c.contains(&b'/');
        if file.path.iter().all(|c| plain(c)) {
            for (i, c) in file.path.iter().enumerate() {
                if i > 0 {
                    self.data.push(b'/');
                }
                self.data.extend_from_slice(c);
            }
            self.offsets.push(self.data.len() as i64);
            self.valid.push(true);
            return true;
        }
        let path = file.path_lossy();
        let exact = file
            .path
            .iter()
            .map(|c| std::str::from_utf8(c).ok())
            .collect::<Option<Vec<_>>>()
            .is_some_and(|c| !c.iter().any(|s| s.contains('/')) && c.join("/") == path);
        self.push_str(&path);
        exact
    }

    /// `("text" | "binary", validity, offsets, data, nulls)`.
    fn into_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let kind = if self.binary { "binary" } else { "text" };
        PyTuple::new(
            py,
            [
                kind.into_pyobject(py)?.into_any(),
                self.valid.validity(py).into_pyobject(py)?.into_any(),
                Buffer::ints(py, self.offsets)?.into_any(),
                Buffer::bytes(py, self.data)?.into_any(),
                self.valid.nulls.into_pyobject(py)?.into_any(),
            ],
        )
    }
}

/// Optional whole numbers: Arrow's `int64`.
#[derive(Default)]
struct Ints {
    values: Vec<i64>,
    valid: Bits,
}

impl Ints {
    fn push(&mut self, value: Option<i64>) {
        self.values.push(value.unwrap_or(0));
        self.valid.push(value.is_some());
    }

    /// `("int", validity, values, nulls)`.
    fn into_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            [
                "int".into_pyobject(py)?.into_any(),
                self.valid.validity(py).into_pyobject(py)?.into_any(),
                Buffer::ints(py, self.values)?.into_any(),
                self.valid.nulls.into_pyobject(py)?.into_any(),
            ],
        )
    }
}

/// The offsets of a list column (Arrow's `large_list`) into its values, with validity.
struct Lists {
    offsets: Vec<i64>,
    valid: Bits,
}

impl Lists {
    fn new() -> Self {
        Lists {
            offsets: vec![0],
            valid: Bits::default(),
        }
    }

    /// End the current list (null when `present` is false) at `len` values.
    fn end(&mut self, len: usize, present: bool) {
        self.offsets.push(len as i64);
        self.valid.push(present);
    }

    /// `("list", validity, offsets, values, nulls)`.
    fn into_py<'py>(
        self,
        py: Python<'py>,
        values: Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            [
                "list".into_pyobject(py)?.into_any(),
                self.valid.validity(py).into_pyobject(py)?.into_any(),
                Buffer::ints(py, self.offsets)?.into_any(),
                values.into_any(),
                self.valid.nulls.into_pyobject(py)?.into_any(),
            ],
        )
    }
}

/// `("struct", validity, [(name, column), ...], nulls)`.
fn struct_py<'py>(
    py: Python<'py>,
    valid: &Bits,
    fields: Vec<(&str, Bound<'py, PyTuple>)>,
) -> PyResult<Bound<'py, PyTuple>> {
    let list = PyList::empty(py);
    for (name, column) in fields {
        list.append((name, column))?;
    }
    PyTuple::new(
        py,
        [
            "struct".into_pyobject(py)?.into_any(),
            valid.validity(py).into_pyobject(py)?.into_any(),
            list.into_any(),
            valid.nulls.into_pyobject(py)?.into_any(),
        ],
    )
}

/// `("bool", bits)`: present in every row.
fn bools_py<'py>(py: Python<'py>, bits: &Bits) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            "bool".into_pyobject(py)?.into_any(),
            PyBytes::new(py, &bits.bytes).into_any(),
        ],
    )
}

/// A column's buffer handed to Python without a copy: pyarrow wraps its memory
/// (`pyarrow.foreign_buffer(address, size, base=buffer)`), and this object, kept as that
/// buffer's base, keeps the memory alive and unchanged (nothing can change it). Copying
/// each buffer into a `bytes` object instead (a GB at 1 M torrents, into freshly faulted
/// pages) was most of the reading thread's work (BENCHMARKS.md, "Python").
#[pyclass(module = "estudely._native", frozen)]
pub struct Buffer(Owned);

/// What a [`Buffer`] holds.
enum Owned {
    Bytes(Vec<u8>),
    /// Whole numbers in the machine's order, as Arrow (and pyarrow) read them.
    Ints(Vec<i64>),
}

impl Buffer {
    fn bytes(py: Python<'_>, data: Vec<u8>) -> PyResult<Bound<'_, Buffer>> {
        Bound::new(py, Buffer(Owned::Bytes(data)))
    }

    fn ints(py: Python<'_>, data: Vec<i64>) -> PyResult<Bound<'_, Buffer>> {
        Bound::new(py, Buffer(Owned::Ints(data)))
    }
}

#[pymethods]
impl Buffer {
    /// Where the memory starts.
    #[getter]
    fn address(&self) -> usize {
        match &self.0 {
            Owned::Bytes(v) => v.as_ptr() as usize,
            Owned::Ints(v) => v.as_ptr() as usize,
        }
    }

    /// Its size in bytes.
    fn __len__(&self) -> usize {
        match &self.0 {
            Owned::Bytes(v) => v.len(),
            Owned::Ints(v) => std::mem::size_of_val(v.as_slice()),
        }
    }
}

/// The release fields, one column each (the `Release` struct's, in its order).
struct Releases {
    valid: Bits,
    title: Text,
    year: Ints,
    season: Ints,
    episode: Ints,
    episode_end: Ints,
    resolution: Text,
    video_codec: Text,
    group: Text,
}

impl Releases {
    fn new() -> Self {
        Releases {
            valid: Bits::default(),
            title: Text::new(false),
            year: Ints::default(),
            season: Ints::default(),
            episode: Ints::default(),
            episode_end: Ints::default(),
            resolution: Text::new(false),
            video_codec: Text::new(false),
            group: Text::new(false),
        }
    }

    fn push(&mut self, r: Option<&Release>) {
        self.valid.push(r.is_some());
        let text = |f: fn(&Release) -> &Option<String>| r.and_then(|r| f(r).as_deref());
        let int = |f: fn(&Release) -> Option<u16>| r.and_then(f).map(i64::from);
        self.title.push(text(|r| &r.title).map(str::as_bytes));
        self.year.push(int(|r| r.year));
        self.season.push(int(|r| r.season));
        self.episode.push(int(|r| r.episode));
        self.episode_end.push(int(|r| r.episode_end));
        self.resolution
            .push(text(|r| &r.resolution).map(str::as_bytes));
        self.video_codec
            .push(text(|r| &r.video_codec).map(str::as_bytes));
        self.group.push(text(|r| &r.group).map(str::as_bytes));
    }
}

/// One chunk of torrents, column by column, in `export --format jsonl`'s field order.
pub struct Chunk {
    rows: usize,
    /// Which range of a split export it belongs to (0 when not split).
    part: usize,
    infohash: Text,
    infohash_v2: Text,
    name: Text,
    name_hex: Text,
    version: Text,
    file_count: Ints,
    total_bytes: Ints,
    piece_length: Ints,
    metadata_ok: Bits,
    private: Bits,
    discovered: Ints,
    last_seen: Ints,
    source: Text,
    seeds_estimate: Ints,
    peers_estimate: Ints,
    estimated_at: Ints,
    category: Text,
    release: Releases,
    files: Lists,
    file_path: Text,
    file_path_hex: Lists,
    file_path_hex_parts: Text,
    file_length: Ints,
    files_omitted: Ints,
    peers: Lists,
    peer: Text,
    name_bytes: Text,
}

impl Chunk {
    /// An empty chunk of range `part`.
    pub fn new(part: usize) -> Self {
        Chunk {
            rows: 0,
            part,
            infohash: Text::new(false),
            infohash_v2: Text::new(false),
            name: Text::new(false),
            name_hex: Text::new(false),
            version: Text::new(false),
            file_count: Ints::default(),
            total_bytes: Ints::default(),
            piece_length: Ints::default(),
            metadata_ok: Bits::default(),
            private: Bits::default(),
            discovered: Ints::default(),
            last_seen: Ints::default(),
            source: Text::new(false),
            seeds_estimate: Ints::default(),
            peers_estimate: Ints::default(),
            estimated_at: Ints::default(),
            category: Text::new(false),
            release: Releases::new(),
            files: Lists::new(),
            file_path: Text::new(false),
            file_path_hex: Lists::new(),
            file_path_hex_parts: Text::new(false),
            file_length: Ints::default(),
            files_omitted: Ints::default(),
            peers: Lists::new(),
            peer: Text::new(false),
            name_bytes: Text::new(true),
        }
    }
}

/// Numbers the index keeps as `u64` but never beyond `i64` (sizes, counts): saturated.
fn int(n: u64) -> Option<i64> {
    Some(i64::try_from(n).unwrap_or(i64::MAX))
}

impl Chunk {
    /// Rows so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Add one torrent, as `export` sees it (with its stored files and its peers).
    pub fn push(&mut self, st: &StoredTorrent, peers: &[SocketAddr]) {
        let t = &st.torrent;
        self.rows += 1;
        self.infohash.push_hex(&t.info_hash.0);
        let v2 = t.info_hash_v2.map(hex::encode);
        self.infohash_v2.push(v2.as_deref().map(str::as_bytes));
        if printable(&t.name) {
            // What `display` would give: the bytes as they are.
            self.name.push(Some(&t.name));
        } else {
            self.name
                .push_str(&estudely_peer_wire::info::display(&t.name));
        }
        self.name_hex.push_hex(&t.name);
        self.version
            .push_str(estudely_store::version_str(t.version));
        self.file_count.push(int(t.file_count));
        self.total_bytes.push(int(t.total_bytes));
        self.piece_length.push(int(t.piece_length));
        self.metadata_ok.push(true);
        self.private.push(t.private);
        self.discovered.push(Some(t.discovered));
        self.last_seen.push(Some(st.last_seen));
        self.source.push_str(t.source.as_str());
        self.seeds_estimate.push(t.seeds_estimate.map(i64::from));
        self.peers_estimate.push(t.peers_estimate.map(i64::from));
        self.estimated_at.push(st.estimated_at);
        self.category
            .push(t.category.map(|c| c.as_str().as_bytes()));
        self.release.push(t.release.as_ref());
        for f in &t.files {
            // As the JSON view: `path` for display, and the raw components in hex where it
            // is not exactly them joined with `/`.
            let exact = self.file_path.push_path(f);
            self.file_length.push(int(f.length));
            if !exact {
                for component in &f.path {
                    self.file_path_hex_parts.push_hex(component);
                }
            }
            let parts = self.file_path_hex_parts.offsets.len() - 1;
            self.file_path_hex.end(parts, !exact);
        }
        self.files.end(self.file_path.offsets.len() - 1, true);
        self.files_omitted.push(int(st.files_omitted));
        for p in peers {
            self.peer.push_str(&p.to_string());
        }
        self.peers.end(self.peer.offsets.len() - 1, true);
        self.name_bytes.push(Some(&t.name));
    }

    /// The chunk as Python sees it: `{"rows": n, "part": p, "columns": [(name, column),
    /// ...]}`, each column a tuple that `estudely._arrow` turns into a pyarrow array.
    pub fn into_py(self, py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
        let r = self.release;
        let release = struct_py(
            py,
            &r.valid,
            vec![
                ("title", r.title.into_py(py)?),
                ("year", r.year.into_py(py)?),
                ("season", r.season.into_py(py)?),
                ("episode", r.episode.into_py(py)?),
                ("episode_end", r.episode_end.into_py(py)?),
                ("resolution", r.resolution.into_py(py)?),
                ("video_codec", r.video_codec.into_py(py)?),
                ("group", r.group.into_py(py)?),
            ],
        )?;
        let path_hex = self
            .file_path_hex
            .into_py(py, self.file_path_hex_parts.into_py(py)?)?;
        let file = struct_py(
            py,
            &Bits::default(),
            vec![
                ("path", self.file_path.into_py(py)?),
                ("path_hex", path_hex),
                ("length", self.file_length.into_py(py)?),
            ],
        )?;
        let columns: Vec<(&str, Bound<'_, PyTuple>)> = vec![
            ("infohash", self.infohash.into_py(py)?),
            ("infohash_v2", self.infohash_v2.into_py(py)?),
            ("name", self.name.into_py(py)?),
            ("name_hex", self.name_hex.into_py(py)?),
            ("version", self.version.into_py(py)?),
            ("file_count", self.file_count.into_py(py)?),
            ("total_bytes", self.total_bytes.into_py(py)?),
            ("piece_length", self.piece_length.into_py(py)?),
            ("metadata_ok", bools_py(py, &self.metadata_ok)?),
            ("private", bools_py(py, &self.private)?),
            ("discovered", self.discovered.into_py(py)?),
            ("last_seen", self.last_seen.into_py(py)?),
            ("source", self.source.into_py(py)?),
            ("seeds_estimate", self.seeds_estimate.into_py(py)?),
            ("peers_estimate", self.peers_estimate.into_py(py)?),
            ("estimated_at", self.estimated_at.into_py(py)?),
            ("category", self.category.into_py(py)?),
            ("release", release),
            ("files", self.files.into_py(py, file)?),
            ("files_omitted", self.files_omitted.into_py(py)?),
            ("peers", self.peers.into_py(py, self.peer.into_py(py)?)?),
            ("name_bytes", self.name_bytes.into_py(py)?),
        ];
        let out = PyDict::new(py);
        out.set_item("rows", self.rows)?;
        out.set_item("part", self.part)?;
        out.set_item("columns", columns)?;
        Ok(out)
    }
}
