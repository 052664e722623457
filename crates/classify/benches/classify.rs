//! Torrents classified per CPU-second on one core, over the generated corpus of the tests
//! (every category, hostile names, 1 to 60 files each).
//!
//! `cargo bench -p estudely-classify --bench classify` (`TORRENTS=200000` by default).
//! The goal (issue 20): at least 100,000 torrents a second.

#[path = "../tests/corpus/mod.rs"]
mod corpus;

use std::hint::black_box;
use std::time::Instant;

use estudely_classify::Classifier;

/// User and system CPU time of this process so far.
fn cpu_seconds() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    // SAFETY: zeroed, then written by getrusage.
    let ru = unsafe { ru.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

fn main() {
    let n: usize = std::env::var("TORRENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let corpus = corpus::corpus(11, 2_000);
    let classifier = Classifier::default();
    let files: usize = corpus.iter().map(|s| s.files.len()).sum();
    let mut right = 0usize;
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    for i in 0..n {
        let s = &corpus[i % corpus.len()];
        let got = classifier.classify(&s.name, s.files.iter().map(|(p, l)| (p.as_str(), *l)));
        right += usize::from(black_box(got).category == s.truth);
    }
    let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    println!(
        "classify: {n} torrents ({:.1} files each) in {cpu:.2} CPU-s ({wall:.2} s wall): \
         {:.0} torrents per CPU-second; {:.1} % right",
        files as f64 / corpus.len() as f64,
        n as f64 / cpu,
        right as f64 * 100.0 / n as f64
    );
}
