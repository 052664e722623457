//! Index benchmark: insert synthetic torrents through the `Store` trait, then time searches.
//!
//! `cargo bench -p estudely --bench store -- [--db URL] [--torrents N]`: inserts N torrents
//! (default 1,000,000; names of 3-8 words from a fixed vocabulary, 1-20 files each) in
//! batches of 1000, prints torrents/s; runs 1000 searches of random vocabulary words and
//! prints p50/p95/p99 latency; prints the SQLite file size. `--db` defaults to a file in a
//! temporary directory (deleted at the end); `--db PATH` keeps the SQLite file (e.g. for
//! measuring `estudely run` over a big index), and a `postgres://` URL (or
//! `postgres:host=DIR dbname=...`) benchmarks that backend. `--seed N` (default 1) picks
//! other torrents, e.g. to add more to an index filled before; `--searches N` (default
//! 1000) sets the number of searches, 0 for none.

use std::time::{Duration, Instant};

use estudely::store::{Batch, DbUrl, Torrent};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod common;

use common::{percentile, synthetic, VOCAB};

const BATCH: usize = 1000;

/// The options, for messages.
const USAGE: &str = "--db URL, --torrents N, --seed N, --searches N";

struct Opts {
    db: Option<String>,
    torrents: usize,
    seed: u64,
    searches: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut opts = Opts {
        db: None,
        torrents: 1_000_000,
        seed: 1,
        searches: 1000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--db" => opts.db = Some(args.next().ok_or("--db needs a URL")?),
            "--torrents" => {
                let n = args.next().ok_or("--torrents needs a number")?;
                opts.torrents = n
                    .replace(['_', ','], "")
                    .parse()
                    .map_err(|_| format!("--torrents `{n}` is not a number"))?;
            }
            "--seed" => {
                let n = args.next().ok_or("--seed needs a number")?;
                opts.seed = n
                    .parse()
                    .map_err(|_| format!("--seed `{n}` is not a number"))?;
            }
            "--searches" => {
                let n = args.next().ok_or("--searches needs a number")?;
                opts.searches = n
                    .parse()
                    .map_err(|_| format!("--searches `{n}` is not a number"))?;
            }
            "--bench" => {} // passed by `cargo bench`
            other => return Err(format!("unknown argument `{other}` (use {USAGE})")),
        }
    }
    Ok(opts)
}

fn main() -> anyhow::Result<()> {
    let opts = parse_args().map_err(anyhow::Error::msg)?;
    let tmp = tempfile::tempdir()?;
    let url = match &opts.db {
        Some(s) => DbUrl::parse(s)?,
        None => DbUrl::Sqlite(tmp.path().join("bench.sqlite")),
    };
    println!(
        "store bench: {} torrents into {} ({url})",
        opts.torrents,
        url_kind(&url)
    );
    let mut store = url.open()?;
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let (mut files, mut busy) = (0usize, Duration::ZERO);
    let start = Instant::now();
    let mut done = 0;
    while done < opts.torrents {
        let n = BATCH.min(opts.torrents - done);
        let torrents: Vec<Torrent> = (done..done + n).map(|i| synthetic(&mut rng, i)).collect();
        files += torrents.iter().map(|t| t.files.len()).sum::<usize>();
        let batch = Batch {
            torrents,
            ..Batch::default()
        };
        let t0 = Instant::now();
        store.write("bench", &batch)?;
        busy += t0.elapsed();
        done += n;
        if done % 100_000 == 0 {
            eprintln!(
                "  {done} torrents, {:.0}/s so far",
                done as f64 / busy.as_secs_f64()
            );
        }
    }
    let wall = start.elapsed();
    println!(
        "insert: {done} torrents, {files} files in {:.1} s of writes ({:.1} s with generation): {:.0} torrents/s",
        busy.as_secs_f64(),
        wall.as_secs_f64(),
        done as f64 / busy.as_secs_f64()
    );
    let searches = opts.searches;
    let mut times = Vec::with_capacity(searches);
    let mut hits = 0;
    for _ in 0..searches {
        let q = VOCAB[rng.gen_range(0..VOCAB.len())];
        let t0 = Instant::now();
        hits += store.search(q, 20, 0)?.len();
        times.push(t0.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    if let Some(max) = times.last() {
        println!(
            "search: {searches} one-word queries, {hits} hits: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.95)),
            ms(percentile(&times, 0.99)),
            ms(*max)
        );
    }
    drop(store);
    if let DbUrl::Sqlite(path) = &url {
        let size: u64 = ["", "-wal", "-shm"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
            .map(|m| m.len())
            .sum();
        println!(
            "size: {:.1} MiB ({:.0} bytes/torrent)",
            size as f64 / 1048576.0,
            size as f64 / done.max(1) as f64
        );
    }
    Ok(())
}

fn url_kind(url: &DbUrl) -> &'static str {
    match url {
        DbUrl::Sqlite(_) => "sqlite",
        DbUrl::Postgres(_) => "postgres",
    }
}
