//! A batch whose `COMMIT` reached PostgreSQL but whose answer was lost with the connection
//! is written again after reconnecting, and counts once: sighting counts and counters are
//! added on write, so a blind replay would double them.
//!
//! The lost answer is real: the store talks to the server through a unix-socket proxy
//! that, once armed, forwards the client's `COMMIT` and then cuts the connection before the
//! server's reply comes back. The server is a throwaway one from `scripts/pg-test-server`
//! (unix socket only, no TCP).
#![cfg(feature = "postgres")]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

mod common;

use common::Server;
use estudely_krpc::InfoHash;
use estudely_store::postgres::PgStore;
use estudely_store::{connection_lost, Batch, SightingSum, Source, Store};

/// A proxy from `listen` (a socket directory of its own) to the server's socket in
/// `server`; when `armed`, the next `COMMIT` is forwarded and its connection cut before any
/// reply. Disarms itself.
fn proxy(listen: &Path, server: &Path, armed: Arc<AtomicBool>) {
    let socket = listen.join(".s.PGSQL.5432");
    let listener = UnixListener::bind(&socket).unwrap();
    let upstream = server.join(".s.PGSQL.5432");
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(server) = UnixStream::connect(&upstream) else {
                continue;
            };
            let cut = Arc::new(AtomicBool::new(false));
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (armed, cut_up) = (armed.clone(), cut.clone());
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = match c_in.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let commit = buf[..n].windows(7).any(|w| w == b"COMMIT\0");
                    if commit && armed.swap(false, Ordering::SeqCst) {
                        // No reply may reach the client from now on.
                        cut_up.store(true, Ordering::SeqCst);
                        let _ = s_out.write_all(&buf[..n]);
                        let _ = c_in.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                    if s_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
            let (mut s_in, mut c_out) = (server, client);
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = match s_in.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if cut.load(Ordering::SeqCst) || c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_out.shutdown(std::net::Shutdown::Both);
            });
        }
    });
}

fn batch(count: u64, counter: u64) -> Batch {
    Batch {
        sighting_sums: vec![SightingSum {
            info_hash: InfoHash([7; 20]),
            addr: "127.0.0.1:6881".parse().unwrap(),
            source: Source::GetPeers,
            first_seen: 10,
            last_seen: 20,
            count,
        }],
        counters: vec![("replayed".into(), counter)],
        ..Batch::default()
    }
}

/// (the sighting's count, the counter), read on a connection of their own.
fn figures(url: &str) -> (i64, i64) {
    let mut c = estudely_store::postgres::client::Client::connect(&url.parse().unwrap()).unwrap();
    let count = c
        .query_opt("SELECT count FROM sightings", &[])
        .unwrap()
        .map_or(0, |r| r.get(0));
    let counter = c
        .query_opt("SELECT value FROM counters WHERE name = 'replayed'", &[])
        .unwrap()
        .map_or(0, |r| r.get(0));
    (count, counter)
}

#[test]
fn a_batch_whose_commit_answer_was_lost_is_not_counted_twice() {
    let (server, url) = Server::start();
    let via = tempfile::Builder::new()
        .prefix("estudely-px")
        .tempdir_in("/tmp")
        .unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    proxy(via.path(), &server.0, armed.clone());
    let proxied = url.replace(
        &format!("host={}", server.0.display()),
        &format!("host={}", via.path().display()),
    );
    assert_ne!(proxied, url);

    let mut store = PgStore::connect(&proxied).unwrap();
    store.write("me", &batch(3, 5)).unwrap();
    assert_eq!(figures(&url), (3, 5));

    armed.store(true, Ordering::SeqCst);
    let second = batch(4, 2);
    let e = store
        .write("me", &second)
        .expect_err("the connection is cut at COMMIT");
    assert!(connection_lost(&e), "a lost connection: {e:#}");
    // The server did commit it: only the answer was lost.
    while figures(&url) != (7, 7) {
        thread::sleep(Duration::from_millis(20));
    }

    store.reconnect().unwrap();
    store.write("me", &second).unwrap();
    assert_eq!(figures(&url), (7, 7), "the replayed batch counted twice");

    // The next batch is written as usual.
    store.write("me", &batch(1, 1)).unwrap();
    assert_eq!(figures(&url), (8, 8));
}
