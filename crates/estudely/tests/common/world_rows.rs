//! Checking what `run` stored against the endless world that served it: one
//! `export --format jsonl` object against the world's torrent, field by field.

use estudely::testnet::world::WorldTorrent;
use serde_json::Value;

/// Check one `export --format jsonl` object against the world's torrent: name, sizes, and
/// every stored file's raw path and length (the rest counted as omitted).
pub fn check_row(row: &Value, t: &WorldTorrent) {
    let ih = row["infohash"].as_str().unwrap();
    assert_eq!(row["name_hex"], hex::encode(&t.name), "{ih}: name");
    assert_eq!(row["file_count"], t.files.len() as u64, "{ih}: file_count");
    assert_eq!(row["total_bytes"], t.total_bytes(), "{ih}: total_bytes");
    assert_eq!(row["piece_length"], t.piece_length, "{ih}: piece_length");
    let files = row["files"].as_array().unwrap();
    assert_eq!(
        files.len() as u64 + row["files_omitted"].as_u64().unwrap(),
        t.files.len() as u64,
        "{ih}: files stored and omitted"
    );
    for (f, (path, len)) in files.iter().zip(&t.files) {
        let got = match f["path_hex"].as_array() {
            Some(parts) => parts
                .iter()
                .map(|p| hex::decode(p.as_str().unwrap()).unwrap())
                .collect::<Vec<_>>()
                .join(&b'/'),
            None => f["path"].as_str().unwrap().as_bytes().to_vec(),
        };
        assert_eq!(&got, path, "{ih}: path");
        assert_eq!(f["length"], *len, "{ih}: length");
    }
}
