//! Arbitrary bytes as an info dict: `InfoSummary::parse` returns, never panics, and a summary
//! is internally consistent.
#![no_main]

use estudely_peer_wire::{torrent_file_bytes, InfoSummary};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = InfoSummary::parse(data) {
        assert!(s.files.len() as u64 <= s.file_count);
        assert!(s.piece_length > 0);
        let _ = s.name_lossy();
        for f in &s.files {
            let _ = f.path_lossy();
        }
        // Wrapping a valid info dict yields a torrent whose info dict is the same bytes.
        let t = torrent_file_bytes(data);
        assert_eq!(t.len(), data.len() + 8);
    }
});
