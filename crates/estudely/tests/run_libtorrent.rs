//! `estudely run` against real libtorrent (interop/lt_swarm.py) on loopback: every torrent
//! the swarm seeds (v1, multi-file, a 46 KB info dict, hybrid v1+v2 announced under both
//! keys, v2 only, a non-ASCII name) is stored exactly once in the SQLite index, with every
//! field as libtorrent made it: the key (the v1 infohash, or the truncated v2 one for a v2
//! torrent), the full v2 infohash, name, sizes, piece length, file count and version.
//!
//! Loopback only: the swarm on 127.0.104.x, the run on 127.0.105.1.

#[path = "common/swarm.rs"]
mod swarm;

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use estudely::store::{version_str, DbUrl, StoredTorrent};
use swarm::Swarm;

#[test]
fn run_stores_every_libtorrent_torrent_once_with_every_field() {
    let swarm = Swarm::start(&[
        "--nodes",
        "6",
        "--base-ip",
        "127.0.104",
        "--torrents-per-node",
        "2",
        "--kinds",
        "v1,v1multi,bigmeta,hybrid,v2,utf8",
        "--sample-interval",
        "0",
        "--seconds",
        "240",
    ]);
    let want = swarm.torrents();
    assert_eq!(want.len(), 12);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite");
    let boot = swarm.node_addr(0);
    let done = common::run_bounded(
        &[
            "run",
            "--db",
            db.to_str().unwrap(),
            "--bootstrap",
            &boot,
            "--bind",
            "127.0.105.1:0",
            "--rate",
            "100",
            "--overall-timeout",
            "30",
        ],
        Duration::from_secs(120),
    );
    eprintln!("{}", done.stderr);
    assert!(done.status.success(), "{}", done.stderr);

    let mut store = DbUrl::Sqlite(db).open_read_only().unwrap();
    let mut got: BTreeMap<String, StoredTorrent> = BTreeMap::new();
    store
        .export(None, &mut |t, _| {
            let prev = got.insert(t.torrent.info_hash.to_hex(), t.clone());
            assert!(prev.is_none(), "stored twice: {:?}", t.torrent.info_hash);
            Ok(())
        })
        .unwrap();
    for t in &want {
        let kind = t["kind"].as_str().unwrap();
        // The key: the v1 infohash (v1 and hybrid), else the truncated v2 one.
        let key = t["infohash"]
            .as_str()
            .unwrap_or_else(|| t["dht_key"].as_str().unwrap());
        let s = &got
            .get(key)
            .unwrap_or_else(|| panic!("{kind} {key} not stored: {:?}", got.keys()))
            .torrent;
        assert_eq!(s.name, t["name"].as_str().unwrap().as_bytes(), "{kind}");
        assert_eq!(s.file_count, t["file_count"].as_u64().unwrap(), "{kind}");
        assert_eq!(s.total_bytes, t["total_bytes"].as_u64().unwrap(), "{kind}");
        assert_eq!(
            s.piece_length,
            t["piece_length"].as_u64().unwrap(),
            "{kind}"
        );
        let version = match kind {
            "hybrid" => "hybrid",
            "v2" => "v2",
            _ => "v1",
        };
        assert_eq!(version_str(s.version), version, "{kind}");
        assert_eq!(
            s.info_hash_v2.map(hex::encode),
            t["infohash_v2"].as_str().map(String::from),
            "{kind}: the full v2 infohash"
        );
    }
    assert_eq!(got.len(), want.len(), "nothing else, and each once");
}
