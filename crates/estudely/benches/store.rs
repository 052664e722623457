//! Index benchmark: insert synthetic torrents through the `Store` trait, then time searches.
//!
//! `cargo bench -p estudely --bench store -- [--db URL] [--torrents N]`: inserts N torrents
//! (default 1,000,000; names of 3-8 words from a fixed vocabulary, 1-20 files each) in
//! batches of 1000, prints torrents/s; runs 1000 searches of random vocabulary words and
//! prints p50/p95/p99 latency, and the same sorted by size and by discovery; times pages
//! of `recent`, `sightings_of` lookups and one whole `Report::from_store`; prints the
//! SQLite file size. `--db` defaults to a file in a
//! temporary directory (deleted at the end); `--db PATH` keeps the SQLite file (e.g. for
//! measuring `estudely run` over a big index), and a `postgres://` URL (or
//! `postgres:host=DIR dbname=...`) benchmarks that backend. `--seed N` (default 1) picks
//! other torrents, e.g. to add more to an index filled before; `--searches N` (default
//! 1000) sets the number of searches, 0 for none. `--reclassify` then times `estudely
//! reclassify` twice: with the rules the torrents were stored with (everything read and
//! classified, nothing written), and with a rule that files every torrent under `other`
//! (everything written). `--writers N` (default 1) writes the batches through N stores
//! (N connections) at once, as N crawlers sharing one index do; the rate is then the
//! torrents over the write phase's wall time, the batches made by one generator thread
//! ahead of the writers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use estudely::report::Report;
use estudely::store::{Batch, DbUrl, SearchSort, Sighting, Source, Torrent};
use estudely_krpc::InfoHash;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod common;

use common::{percentile, synthetic, VOCAB};

const BATCH: usize = 1000;

/// Sightings given to each of the newest torrents before timing `sightings_of`.
const SIGHTINGS_EACH: u16 = 200;

/// The options, for messages.
const USAGE: &str = "--db URL, --torrents N, --seed N, --searches N, --writers N, --reclassify";

struct Opts {
    db: Option<String>,
    torrents: usize,
    seed: u64,
    searches: usize,
    writers: usize,
    reclassify: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut opts = Opts {
        db: None,
        torrents: 1_000_000,
        seed: 1,
        searches: 1000,
        writers: 1,
        reclassify: false,
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
            "--writers" => {
                let n = args.next().ok_or("--writers needs a number")?;
                opts.writers = n
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--writers `{n}` is not a number above 0"))?;
            }
            "--reclassify" => opts.reclassify = true,
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
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let done = if opts.writers > 1 {
        fill_concurrently(&url, &opts, &mut rng)?
    } else {
        fill(&url, &opts, &mut rng)?
    };
    let mut store = url.open()?;
    let searches = opts.searches;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let report = |label: &str, times: &mut Vec<Duration>, rows: usize| {
        times.sort();
        if let Some(max) = times.last() {
            println!(
                "{label}: {} queries, {rows} rows: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                times.len(),
                ms(percentile(times, 0.50)),
                ms(percentile(times, 0.95)),
                ms(percentile(times, 0.99)),
                ms(*max)
            );
        }
    };
    for (label, sort) in [
        ("search", SearchSort::Relevance),
        ("search by size", SearchSort::Size),
        ("search by discovered", SearchSort::Discovered),
        ("search by seeders", SearchSort::Seeders),
    ] {
        let mut times = Vec::with_capacity(searches);
        let mut hits = 0;
        for _ in 0..searches {
            let q = VOCAB[rng.gen_range(0..VOCAB.len())];
            let t0 = Instant::now();
            hits += store.search_sorted(q, sort, 20, 0)?.len();
            times.push(t0.elapsed());
        }
        report(&format!("{label} (one word)"), &mut times, hits);
    }
    // The query language: a word, an excluded word and a field; and the counts per
    // category of one word (what every search page also asks).
    let mut times = Vec::with_capacity(searches);
    let mut hits = 0;
    for _ in 0..searches {
        let (a, b) = (
            VOCAB[rng.gen_range(0..VOCAB.len())],
            VOCAB[rng.gen_range(0..VOCAB.len())],
        );
        let q = format!("{a} -{b} size:>1MB");
        let t0 = Instant::now();
        hits += store.search_sorted(&q, SearchSort::Relevance, 20, 0)?.len();
        times.push(t0.elapsed());
    }
    report("search with exclusion and field", &mut times, hits);
    let mut times = Vec::with_capacity(searches);
    let mut counted = 0;
    for _ in 0..searches {
        let q = estudely::store::SearchQuery::parse(VOCAB[rng.gen_range(0..VOCAB.len())])?;
        let t0 = Instant::now();
        let counts = store.category_counts(&q)?;
        counted += counts.counts.len();
        times.push(t0.elapsed());
    }
    report("category counts (one word)", &mut times, counted);
    // Pages of the newest torrents: mostly the first ones, some deep.
    let mut times = Vec::with_capacity(searches);
    let mut rows = 0;
    for i in 0..searches {
        let offset = if i % 10 == 0 {
            rng.gen_range(0..done.clamp(1, 10_000))
        } else {
            20 * (i % 5)
        };
        let t0 = Instant::now();
        rows += store.recent(20, offset)?.len();
        times.push(t0.elapsed());
    }
    report("recent (20 a page)", &mut times, rows);
    // The sightings of the newest torrents, after giving each some (not timed above).
    let newest: Vec<InfoHash> = store
        .recent(searches.min(1000), 0)?
        .into_iter()
        .map(|t| t.torrent.info_hash)
        .collect();
    let sightings = newest
        .iter()
        .flat_map(|&info_hash| {
            (0..SIGHTINGS_EACH).map(move |i| Sighting {
                info_hash,
                addr: SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881)),
                source: Source::GetPeers,
                at: 1_700_000_000 + i64::from(i),
            })
        })
        .collect();
    store.write(
        "bench",
        &Batch {
            sightings,
            ..Batch::default()
        },
    )?;
    let mut times = Vec::with_capacity(searches);
    let mut rows = 0;
    for i in 0..searches {
        let Some(key) = newest.get(i % newest.len().max(1)) else {
            break;
        };
        let t0 = Instant::now();
        rows += store.sightings_of(key, 50)?.0.len();
        times.push(t0.elapsed());
    }
    report(
        &format!("sightings_of ({SIGHTINGS_EACH} each, 50 a page)"),
        &mut times,
        rows,
    );
    if searches > 0 {
        // The parts of the report, then the whole.
        let t0 = Instant::now();
        store.stats()?;
        let t1 = Instant::now();
        let range = store.discovered_range()?;
        let t2 = Instant::now();
        if let Some((first, last)) = range {
            store.timeline(estudely::report::bucket_secs(first, last))?;
        }
        let t3 = Instant::now();
        store.size_histogram()?;
        let t4 = Instant::now();
        store.total_bytes()?;
        let t5 = Instant::now();
        println!(
            "report parts: stats {:.1} ms, discovered_range {:.2} ms, timeline {:.1} ms, \
             size_histogram {:.1} ms, total_bytes {:.1} ms",
            ms(t1 - t0),
            ms(t2 - t1),
            ms(t3 - t2),
            ms(t4 - t3),
            ms(t5 - t4)
        );
        let t0 = Instant::now();
        let report = Report::from_store(store.as_mut(), "bench".into(), 0)?;
        println!(
            "report: Report::from_store in {:.1} ms ({} timeline points, {} torrents)",
            ms(t0.elapsed()),
            report.timeline.len(),
            report.total("torrents")
        );
    }
    drop(store);
    if opts.reclassify {
        reclassify(&url, tmp.path())?;
    }
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

/// Time `reclassify` with the built-in rules (nothing to write), then with a rule that
/// changes every torrent's category (everything written).
fn reclassify(url: &DbUrl, dir: &std::path::Path) -> anyhow::Result<()> {
    use estudely::cmd::reclassify::reclassify;
    use estudely_classify::Rules;
    let rules = dir.join("all-other.toml");
    std::fs::write(&rules, "[[rule]]\npattern = '.'\ncategory = \"other\"\n")?;
    for (what, rules) in [
        ("built-in rules", Rules::default()),
        ("every torrent changed", Rules::with_file(&rules)?),
    ] {
        let classifier = estudely::store::Classifier::new(rules);
        let t0 = Instant::now();
        let done = reclassify(url, &classifier)?;
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "reclassify ({what}): {} torrents, {} changed in {secs:.1} s ({:.0} torrents/s)",
            done.torrents,
            done.changed,
            done.torrents as f64 / secs
        );
    }
    Ok(())
}

/// Insert `opts.torrents` through one store, timing the writes alone; the torrents inserted.
fn fill(url: &DbUrl, opts: &Opts, rng: &mut SmallRng) -> anyhow::Result<usize> {
    let mut store = url.open()?;
    let (mut files, mut busy) = (0usize, Duration::ZERO);
    let start = Instant::now();
    let mut done = 0;
    while done < opts.torrents {
        let n = BATCH.min(opts.torrents - done);
        let torrents: Vec<Torrent> = (done..done + n).map(|i| synthetic(rng, i)).collect();
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
    Ok(done)
}

/// Insert `opts.torrents` through `opts.writers` stores at once, each on its own thread and
/// connection, taking the batches one generator thread makes ahead of them (the same
/// torrents as [`fill`] for the same seed); timed by the write phase's wall clock.
fn fill_concurrently(url: &DbUrl, opts: &Opts, rng: &mut SmallRng) -> anyhow::Result<usize> {
    let (tx, rx) = mpsc::sync_channel::<Batch>(2 * opts.writers);
    // Each writer holds the receiver: when all have stopped, the generator's send fails.
    let rx = Arc::new(Mutex::new(rx));
    let (written, files) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let stores = (0..opts.writers)
        .map(|_| url.open())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let start = Instant::now();
    let total = opts.torrents;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let writers: Vec<_> = stores
            .into_iter()
            .map(|mut store| {
                let (rx, written, files) = (Arc::clone(&rx), &written, &files);
                scope.spawn(move || -> anyhow::Result<()> {
                    loop {
                        let next = rx.lock().expect("no writer panics").recv();
                        let Ok(batch) = next else { return Ok(()) };
                        let n = batch.torrents.len();
                        let f = batch.torrents.iter().map(|t| t.files.len()).sum();
                        store.write("bench", &batch)?;
                        files.fetch_add(f, Ordering::Relaxed);
                        let before = written.fetch_add(n, Ordering::Relaxed);
                        if (before + n) / 100_000 > before / 100_000 {
                            let secs = start.elapsed().as_secs_f64();
                            eprintln!(
                                "  {} torrents, {:.0}/s so far ({secs:.1} s)",
                                before + n,
                                (before + n) as f64 / secs
                            );
                        }
                    }
                })
            })
            .collect();
        drop(rx);
        let mut made = 0;
        while made < total {
            let n = BATCH.min(total - made);
            let torrents: Vec<Torrent> = (made..made + n).map(|i| synthetic(rng, i)).collect();
            made += n;
            let batch = Batch {
                torrents,
                ..Batch::default()
            };
            if tx.send(batch).is_err() {
                break; // every writer stopped: their errors are below
            }
        }
        drop(tx);
        for w in writers {
            w.join().expect("no writer panics")?;
        }
        Ok(())
    })?;
    let wall = start.elapsed();
    let done = written.into_inner();
    println!(
        "insert: {done} torrents, {} files in {:.1} s with {} writers: {:.0} torrents/s",
        files.into_inner(),
        wall.as_secs_f64(),
        opts.writers,
        done as f64 / wall.as_secs_f64()
    );
    Ok(done)
}

fn url_kind(url: &DbUrl) -> &'static str {
    match url {
        DbUrl::Sqlite(_) => "sqlite",
        DbUrl::Postgres(_) => "postgres",
    }
}
