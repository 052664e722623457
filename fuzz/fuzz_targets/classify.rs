//! Classification of hostile names and file lists: never panics, and the title it parses is
//! never longer than the name. Input: the name, then one file path per line (lossy UTF-8),
//! each file's length taken from the path's bytes.
#![no_main]

use estudely_classify::Classifier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static C: Classifier = Classifier::default();
    }
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let name = lines.next().unwrap_or("");
    let files: Vec<(&str, u64)> = lines
        .take(1_000)
        .map(|p| (p, p.bytes().fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)))))
        .collect();
    C.with(|c| {
        let got = c.classify(name, files.iter().copied());
        assert!(got.release.title.map_or(0, |t| t.len()) <= name.len());
    });
});
