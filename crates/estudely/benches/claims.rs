//! Lease claims on PostgreSQL: one at a time (`Store::claim`, as `run` asked before)
//! against a request at a time (`Store::claim_many`, 64 claims in two statements, as `run`
//! asks now).
//!
//! `cargo bench -p estudely --bench claims -- --db URL [--claims N] [--rounds R]` claims N
//! new keys each way, R times alternating which goes first, on a store connected as `run`
//! connects (the index is created or migrated if needed; the leases taken are deleted
//! again). Prints claims per second for each way and their ratio, per round.

use std::time::{Duration, Instant};

use estudely::store::postgres::PgStore;
use estudely::store::Store;
use estudely_krpc::InfoHash;

const USAGE: &str = "--db URL [--claims N] [--rounds R]";

/// Claims in one request of `run`'s (`CLAIMS_PER_REQUEST`).
const PER_REQUEST: usize = 64;

fn main() {
    if let Err(e) = run() {
        eprintln!("claims bench: {e}");
        std::process::exit(2);
    }
}

fn number(v: Option<String>, what: &str) -> Result<usize, String> {
    v.and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .ok_or(format!("{what} takes a positive number"))
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut url, mut claims, mut rounds) = (None, 20_000, 3);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--db" => url = args.next(),
            "--claims" => claims = number(args.next(), "--claims")?,
            "--rounds" => rounds = number(args.next(), "--rounds")?,
            other => return Err(format!("unknown argument `{other}`; usage: {USAGE}")),
        }
    }
    let url = url.ok_or(format!("usage: {USAGE}"))?;
    let url = url.strip_prefix("postgres:").unwrap_or(&url).to_owned();
    let mut store = PgStore::connect(&url).map_err(|e| format!("{e:#}"))?;
    let lease = Duration::from_secs(600);
    let mut next = 0u64;
    let mut keys = |n: usize| -> Vec<InfoHash> {
        (0..n)
            .map(|_| {
                next += 1;
                let mut k = [0xbe; 20];
                k[..8].copy_from_slice(&next.to_be_bytes());
                InfoHash(k)
            })
            .collect()
    };
    println!("{claims} new keys each way, {rounds} rounds");
    for round in 1..=rounds {
        let one = |store: &mut PgStore, keys: &[InfoHash]| -> Result<f64, String> {
            let start = Instant::now();
            for k in keys {
                store
                    .claim(k, "bench", lease)
                    .map_err(|e| format!("{e:#}"))?;
            }
            Ok(keys.len() as f64 / start.elapsed().as_secs_f64())
        };
        let many = |store: &mut PgStore, keys: &[InfoHash]| -> Result<f64, String> {
            let start = Instant::now();
            for chunk in keys.chunks(PER_REQUEST) {
                store
                    .claim_many(chunk, "bench", lease)
                    .map_err(|e| format!("{e:#}"))?;
            }
            Ok(keys.len() as f64 / start.elapsed().as_secs_f64())
        };
        let (a, b) = (keys(claims), keys(claims));
        let (single, batched) = if round % 2 == 1 {
            (one(&mut store, &a)?, many(&mut store, &b)?)
        } else {
            let batched = many(&mut store, &b)?;
            (one(&mut store, &a)?, batched)
        };
        println!(
            "round {round}: one at a time {single:.0} claims/s, {PER_REQUEST} a request {batched:.0} claims/s: {:.1} x",
            batched / single
        );
    }
    store
        .release_leases("bench")
        .map_err(|e| format!("{e:#}"))?;
    Ok(())
}
