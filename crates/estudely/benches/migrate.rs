//! Migration benchmark: how long the PostgreSQL migrations take on a big index, and how
//! long they hold a writer back.
//!
//! `cargo bench -p estudely --bench migrate -- --db URL [--from 7|9]` takes an index at the
//! latest schema (filled by `--bench store`), puts it back to schema `--from` (9: without
//! the totals; 7: also without the swarm-estimate times and the compact file lists: their
//! columns dropped, which is instant), then opens it as `run` does, which migrates it,
//! while a writer of an older build inserts a torrent every 20 ms on its own connection.
//! Prints how long the upgrade took and the writer's longest wait. The index is left at
//! the latest schema (the dropped columns come back empty: the file lists of the torrents
//! written before are gone, so use a throwaway index).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use estudely::store::postgres::PgStore;

const USAGE: &str = "--db URL [--from 7|9]";

fn main() {
    if let Err(e) = run() {
        eprintln!("migrate bench: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut url, mut from) = (None, 9);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--db" => url = args.next(),
            "--from" => {
                from = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|v| [7, 9].contains(v))
                    .ok_or("--from takes 7 or 9")?;
            }
            other => return Err(format!("unknown argument `{other}`; usage: {USAGE}")),
        }
    }
    let url = url.ok_or(format!("usage: {USAGE}"))?;
    let url = url.strip_prefix("postgres:").unwrap_or(&url).to_owned();
    let connect = || postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string());
    let mut c = connect()?;
    let torrents: i64 = c
        .query_one("SELECT count(*) FROM torrents", &[])
        .map_err(|e| e.to_string())?
        .get(0);
    let mut down = String::from(
        "DROP TABLE IF EXISTS totals CASCADE;
         DROP FUNCTION IF EXISTS estudely_torrents_totals, estudely_rows_totals,
             estudely_add_totals, estudely_torrent_keys CASCADE;",
    );
    if from == 7 {
        down.push_str(
            "ALTER TABLE torrents DROP COLUMN IF EXISTS files,
                 DROP COLUMN IF EXISTS estimated_at, DROP COLUMN IF EXISTS scraped_at;",
        );
    }
    down.push_str(&format!(
        "DELETE FROM schema_migrations WHERE version > {from};"
    ));
    c.batch_execute(&down).map_err(|e| e.to_string())?;
    c.batch_execute("VACUUM ANALYZE torrents")
        .map_err(|e| e.to_string())?;
    println!("migrate bench: {torrents} torrents, from schema {from}");

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mut w) = (stop.clone(), connect()?);
        std::thread::spawn(move || {
            let mut waits = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let mut key = [0xeeu8; 20];
                key[..8].copy_from_slice(&i.to_be_bytes());
                let t = Instant::now();
                w.execute(
                    "INSERT INTO torrents (info_hash, name, name_raw, total_bytes,
                         piece_length, file_count, files_omitted, private, version,
                         discovered, last_seen, source, search)
                     VALUES ($1, 'probe', 'probe', 5, 16384, 1, 0, false, 'v1', 1700000000,
                         1700000000, 'sample', to_tsvector('simple', 'probe'))
                     ON CONFLICT DO NOTHING",
                    &[&key.as_slice()],
                )
                .expect("probe insert");
                waits.push(t.elapsed());
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            waits
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    PgStore::connect(&url).map_err(|e| format!("{e:#}"))?;
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let mut waits = writer.join().map_err(|_| "the writer panicked")?;
    waits.sort();
    let pct = |p: f64| waits[((waits.len() - 1) as f64 * p) as usize];
    println!(
        "upgrade from schema {from}: {:.1} s; the writer's inserts: {} , p50 {:.1} ms, p99 {:.1} ms, longest {:.0} ms, {} over 1 s",
        took.as_secs_f64(),
        waits.len(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        waits.last().map_or(0.0, |w| w.as_secs_f64() * 1e3),
        waits.iter().filter(|w| **w > Duration::from_secs(1)).count()
    );
    Ok(())
}
