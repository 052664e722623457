//! Web UI benchmark: the latency of `estudely serve`'s pages and API over a big index.
//!
//! `cargo bench -p estudely --bench serve -- [--db URL] [--torrents N] [--requests N]`:
//! with `--torrents N` (default 1,000,000 when no `--db` is given), first fills the index
//! (a temporary SQLite file, or `--db`) with N synthetic torrents (the `store` bench's
//! generator; every 100,000th also holds the rare word `zyzzyva`); with `--db` alone,
//! serves that index as it is (e.g. one filled by `cargo bench --bench store -- --db PATH`).
//! Then starts the web server in this process on 127.0.113.200 and times `--requests`
//! (default 200) sequential GETs of each kind, one connection per request, printing
//! p50/p95/max as a markdown table. `/stats` is cached after its first request: the first
//! one is reported on its own line.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use estudely::store::{Batch, DbUrl, Torrent};
use estudely::web::{AppState, WebConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod common;

use common::{percentile, synthetic, VOCAB};

/// A word in few names: every [`RARE_EVERY`]th synthetic torrent holds it.
const RARE: &str = "zyzzyva";
const RARE_EVERY: usize = 100_000;
const BATCH: usize = 1000;
const USAGE: &str = "--db URL, --torrents N, --requests N, --seed N";

struct Opts {
    db: Option<String>,
    torrents: Option<usize>,
    requests: usize,
    seed: u64,
}

fn number(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<u64, String> {
    let n = args.next().ok_or(format!("{flag} needs a number"))?;
    n.replace(['_', ','], "")
        .parse()
        .map_err(|_| format!("{flag} `{n}` is not a number"))
}

fn parse_args() -> Result<Opts, String> {
    let mut opts = Opts {
        db: None,
        torrents: None,
        requests: 200,
        seed: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--db" => opts.db = Some(args.next().ok_or("--db needs a URL")?),
            "--torrents" => opts.torrents = Some(number(&mut args, "--torrents")? as usize),
            "--requests" => opts.requests = number(&mut args, "--requests")? as usize,
            "--seed" => opts.seed = number(&mut args, "--seed")?,
            "--bench" => {} // passed by `cargo bench`
            other => return Err(format!("unknown argument `{other}` (use {USAGE})")),
        }
    }
    Ok(opts)
}

/// Fill `url` with `n` synthetic torrents.
fn fill(url: &DbUrl, n: usize, seed: u64) -> anyhow::Result<()> {
    let mut store = url.open()?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let count = BATCH.min(n - done);
        let torrents: Vec<Torrent> = (done..done + count)
            .map(|i| {
                let mut t = synthetic(&mut rng, i);
                if i % RARE_EVERY == 0 {
                    t.name.extend_from_slice(format!(" {RARE}").as_bytes());
                }
                t
            })
            .collect();
        store.write(
            "bench",
            &Batch {
                torrents,
                ..Batch::default()
            },
        )?;
        done += count;
        if done % 100_000 == 0 {
            eprintln!("  {done} torrents, {:.0} s", start.elapsed().as_secs_f64());
        }
    }
    println!(
        "fill: {n} torrents in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One GET on a new connection: (status, body length).
fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, usize)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let status = std::str::from_utf8(&raw[..raw.len().min(12)])
        .ok()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{path}: not an HTTP response"))?;
    let body = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |i| raw.len() - i - 4);
    Ok((status, body))
}

/// Latencies of one kind of request.
struct Row {
    what: String,
    times: Vec<Duration>,
    not_ok: usize,
    bytes: usize,
}

fn time(addr: SocketAddr, what: &str, paths: &mut dyn FnMut(usize) -> String, n: usize) -> Row {
    let mut row = Row {
        what: what.to_owned(),
        times: Vec::with_capacity(n),
        not_ok: 0,
        bytes: 0,
    };
    for i in 0..n {
        let path = paths(i);
        let t0 = Instant::now();
        match get(addr, &path) {
            Ok((200, len)) => row.bytes += len,
            Ok((status, _)) => {
                if row.not_ok == 0 {
                    eprintln!("{path}: HTTP {status}");
                }
                row.not_ok += 1;
            }
            Err(e) => {
                eprintln!("{path}: {e:#}");
                row.not_ok += 1;
            }
        }
        row.times.push(t0.elapsed());
    }
    row.times.sort();
    row
}

fn main() -> anyhow::Result<()> {
    let opts = parse_args().map_err(anyhow::Error::msg)?;
    let tmp = tempfile::tempdir()?;
    let url = match &opts.db {
        Some(s) => DbUrl::parse(s)?,
        None => DbUrl::Sqlite(tmp.path().join("bench.sqlite")),
    };
    let torrents = opts
        .torrents
        .or(opts.db.is_none().then_some(1_000_000))
        .unwrap_or(0);
    if torrents > 0 {
        println!("serve bench: filling {url} with {torrents} torrents");
        fill(&url, torrents, opts.seed)?;
    }
    let stats = url.open_read_only()?.stats()?;
    println!(
        "serve bench: {} ({} torrents, {} files), {} requests each",
        url, stats.torrents, stats.files, opts.requests
    );

    // The server, in this process, on its own thread and runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let args = WebConfig::default();
    let state = Arc::new(AppState::new(url.clone(), &args));
    // Dropped last, here, after the server has stopped.
    let keep = Arc::clone(&state);
    let listener = rt.block_on(estudely::web::bind("127.0.113.200:0".parse()?, false))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        rt.block_on(estudely::web::serve(listener, state, None, async {
            let _ = stop_rx.await;
        }))
    });

    // Keys to look up: the results of searches for a few words.
    let mut rng = SmallRng::seed_from_u64(opts.seed ^ 0x5e7e);
    let mut keys = Vec::new();
    {
        let mut store = url.open_read_only()?;
        for w in VOCAB.iter().take(20) {
            keys.extend(
                store
                    .search(w, 20, 0)?
                    .into_iter()
                    .map(|t| t.torrent.info_hash.to_hex()),
            );
        }
    }
    anyhow::ensure!(!keys.is_empty(), "the index is empty");
    let n = opts.requests;
    let word = |rng: &mut SmallRng| VOCAB[rng.gen_range(0..VOCAB.len())];
    let mut rows = Vec::new();
    let rng = &mut rng;
    rows.push(time(
        addr,
        "`/search?q=<common word>` (random vocabulary word)",
        &mut |_| format!("/search?q={}", enc(word(rng))),
        n,
    ));
    rows.push(time(
        addr,
        &format!("`/search?q={RARE}` (rare word)"),
        &mut |_| format!("/search?q={RARE}"),
        n,
    ));
    rows.push(time(
        addr,
        "`/search?q=<common word>&sort=size`",
        &mut |_| format!("/search?q={}&sort=size", enc(word(rng))),
        n,
    ));
    rows.push(time(
        addr,
        "`/search?q=<common word>&sort=discovered`",
        &mut |_| format!("/search?q={}&sort=discovered", enc(word(rng))),
        n,
    ));
    rows.push(time(
        addr,
        "`/search?q=<two common words>`",
        &mut |_| format!("/search?q={}+{}", enc(word(rng)), enc(word(rng))),
        n,
    ));
    rows.push(time(
        addr,
        "`/search?q=<part of a word>` (substring: a word less its first and last letters)",
        &mut |_| {
            let w = VOCAB
                .iter()
                .filter(|w| w.is_ascii() && w.len() >= 6)
                .nth(rng.gen_range(0..30))
                .expect("thirty long ASCII words in the vocabulary");
            format!("/search?q={}", enc(&w[1..w.len() - 1]))
        },
        n,
    ));
    rows.push(time(
        addr,
        "`/search?q=<common word>&sort=seeders`",
        &mut |_| format!("/search?q={}&sort=seeders", enc(word(rng))),
        n,
    ));
    rows.push(time(
        addr,
        "`/search?q=<common word> -<common word> size:>100MB files:>2`",
        &mut |_| {
            let q = format!("{} -{} size:>100MB files:>2", word(rng), word(rng));
            format!("/search?q={}", enc(&q))
        },
        n,
    ));
    rows.push(time(
        addr,
        "`/search?q=category:<category> size:>1GB` (no words: newest 10,000)",
        &mut |i| {
            let c = estudely::store::Category::ALL[i % estudely::store::Category::ALL.len()];
            format!(
                "/search?q={}",
                enc(&format!("category:{} size:>1GB", c.as_str()))
            )
        },
        n,
    ));
    rows.push(time(
        addr,
        "`/torrent/<infohash>`",
        &mut |i| format!("/torrent/{}", keys[i % keys.len()]),
        n,
    ));
    rows.push(time(addr, "`/recent`", &mut |_| "/recent".to_owned(), n));
    rows.push(time(
        addr,
        "`/recent?page=<1..200>`",
        &mut |i| format!("/recent?page={}", 1 + i % 200),
        n,
    ));
    rows.push(time(
        addr,
        "`/stats` (first, uncached)",
        &mut |_| "/stats".to_owned(),
        1,
    ));
    rows.push(time(
        addr,
        "`/stats` (cached)",
        &mut |_| "/stats".to_owned(),
        n,
    ));
    rows.push(time(
        addr,
        "`/api/v1/search?q=<common word>` (limit 20)",
        &mut |_| format!("/api/v1/search?q={}", enc(word(rng))),
        n,
    ));
    rows.push(time(
        addr,
        "`/torznab/api?t=search&q=<common word>` (limit 50)",
        &mut |_| format!("/torznab/api?t=search&q={}", enc(word(rng))),
        n,
    ));
    rows.push(time(
        addr,
        "`/torznab/api?t=search&q=<common word>&cat=2000`",
        &mut |_| format!("/torznab/api?t=search&q={}&cat=2000", enc(word(rng))),
        n,
    ));
    rows.push(time(
        addr,
        "`/torznab/api?t=movie&q=<common word>&year=<y>` (1,000 candidates filtered)",
        &mut |i| {
            format!(
                "/torznab/api?t=movie&q={}&year={}",
                enc(word(rng)),
                1990 + i % 30
            )
        },
        n,
    ));
    rows.push(time(
        addr,
        "`/feed?category=<category>`",
        &mut |i| {
            format!(
                "/feed?category={}",
                ["movie", "music", "ebook", "software", "other"][i % 5]
            )
        },
        n,
    ));
    rows.push(time(
        addr,
        "`/api/v1/torrents/<infohash>`",
        &mut |i| format!("/api/v1/torrents/{}", keys[(i * 7) % keys.len()]),
        n,
    ));

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!("| request | n | p50 ms | p95 ms | max ms | not 200 | avg body |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let ok = r.times.len() - r.not_ok;
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {} |",
            r.what,
            r.times.len(),
            ms(percentile(&r.times, 0.50)),
            ms(percentile(&r.times, 0.95)),
            ms(*r.times.last().unwrap()),
            r.not_ok,
            human(r.bytes / ok.max(1)),
        );
    }
    let _ = stop_tx.send(());
    server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    drop(keep);
    Ok(())
}

/// Percent-encode a query word (the vocabulary holds non-ASCII words).
fn enc(w: &str) -> String {
    w.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn human(bytes: usize) -> String {
    if bytes >= 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}
