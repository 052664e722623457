//! The index's JSON views, shared by the commands (`export --format jsonl`, `search`,
//! `stats --format json`) and the web API: one torrent with its files and peers, one
//! search hit, the stats.

use std::net::SocketAddr;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{version_str, Category, Release, Stats, StoredTorrent};

#[derive(Serialize)]
struct JsonTorrent<'a> {
    infohash: String,
    infohash_v2: Option<String>,
    name: String,
    name_hex: String,
    version: &'a str,
    file_count: u64,
    total_bytes: u64,
    piece_length: u64,
    metadata_ok: bool,
    private: bool,
    discovered: i64,
    last_seen: i64,
    source: &'a str,
    seeds_estimate: Option<u32>,
    peers_estimate: Option<u32>,
    /// When the estimates were measured (unix seconds); null when there are none.
    estimated_at: Option<i64>,
    /// `movie`, `tv`, ..., `other`; null for a torrent stored before classification.
    category: Option<&'static str>,
    /// The release fields parsed from the name (empty fields left out); null as `category`.
    release: Option<&'a Release>,
    files: Vec<JsonFile>,
    files_omitted: u64,
    peers: Vec<String>,
}

#[derive(Serialize)]
struct JsonFile {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_hex: Option<Vec<String>>,
    length: u64,
}

/// One JSON line for one torrent.
pub fn torrent_line(st: &StoredTorrent, peers: &[SocketAddr]) -> anyhow::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(&json_row(st, peers))?;
    line.push(b'\n');
    Ok(line)
}

/// The JSON object of one torrent (the API's torrent object too).
pub fn torrent_value(st: &StoredTorrent, peers: &[SocketAddr]) -> serde_json::Value {
    serde_json::to_value(json_row(st, peers)).unwrap_or(serde_json::Value::Null)
}

/// The row [`torrent_line`] and [`torrent_value`] serialise.
fn json_row<'a>(st: &'a StoredTorrent, peers: &[SocketAddr]) -> JsonTorrent<'a> {
    let t = &st.torrent;
    let files = t
        .files
        .iter()
        .map(|f| {
            let path = f.path_lossy();
            let exact = f
                .path
                .iter()
                .map(|c| std::str::from_utf8(c).ok())
                .collect::<Option<Vec<_>>>();
            let exact =
                exact.is_some_and(|c| !c.iter().any(|s| s.contains('/')) && c.join("/") == path);
            JsonFile {
                path,
                path_hex: (!exact).then(|| f.path.iter().map(hex::encode).collect()),
                length: f.length,
            }
        })
        .collect();
    JsonTorrent {
        infohash: t.info_hash.to_hex(),
        infohash_v2: t.info_hash_v2.map(hex::encode),
        name: estudely_peer_wire::info::display(&t.name),
        name_hex: hex::encode(&t.name),
        version: version_str(t.version),
        file_count: t.file_count,
        total_bytes: t.total_bytes,
        piece_length: t.piece_length,
        metadata_ok: true,
        private: t.private,
        discovered: t.discovered,
        last_seen: st.last_seen,
        source: t.source.as_str(),
        seeds_estimate: t.seeds_estimate,
        peers_estimate: t.peers_estimate,
        estimated_at: st.estimated_at,
        category: t.category.map(Category::as_str),
        release: t.release.as_ref(),
        files,
        files_omitted: st.files_omitted,
        peers: peers.iter().map(SocketAddr::to_string).collect(),
    }
}

/// One search result as a JSON object (the API's result objects too).
pub fn hit_value(hit: &StoredTorrent) -> serde_json::Value {
    let t = &hit.torrent;
    json!({
        "infohash": t.info_hash.to_hex(),
        "infohash_v2": t.info_hash_v2.map(hex::encode),
        "name": estudely_peer_wire::info::display(&t.name),
        "name_hex": hex::encode(&t.name),
        "version": version_str(t.version),
        "file_count": t.file_count,
        "total_bytes": t.total_bytes,
        "piece_length": t.piece_length,
        "private": t.private,
        "discovered": t.discovered,
        "last_seen": hit.last_seen,
        "source": t.source.as_str(),
        "seeds_estimate": t.seeds_estimate,
        "peers_estimate": t.peers_estimate,
        "estimated_at": hit.estimated_at,
        "category": t.category.map(Category::as_str),
        "release": t.release,
    })
}

/// [`hit_value`] with `matched_file`: the stored path that explains the hit (see
/// [`crate::Store::matched_files`]), or null. `search --format jsonl`'s objects.
pub fn hit_with_file(hit: &StoredTorrent, file: Option<&str>) -> serde_json::Value {
    let mut v = hit_value(hit);
    v["matched_file"] = file.map_or(serde_json::Value::Null, |f| f.into());
    v
}

/// The stats as one JSON object.
pub fn stats_value(s: &Stats) -> Value {
    let obj = |pairs: &[(String, u64)]| -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<Map<_, _>>(),
        )
    };
    json!({
        "torrents": s.torrents,
        "files": s.files,
        "sightings": s.sightings,
        "nodes": s.nodes,
        "by_version": obj(&s.by_version),
        "by_source": obj(&s.by_source),
        "by_day": obj(&s.by_day),
        "counters": obj(&s.counters),
        "by_category": obj(&s.by_category),
        "deleted": s.deleted,
    })
}
