//! The PostgreSQL client inside a Tokio application: every connection is driven by one I/O
//! thread of the process, so a store may be opened, used and dropped from any thread, a
//! connection the server closes is seen closed at once, and the asynchronous client can be
//! awaited from inside a runtime.
#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use common::Server;
use estudely_krpc::InfoHash;
use estudely_store::postgres::client::Client;
use estudely_store::postgres::PgStore;
use estudely_store::Store;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// As `serve` does: opened and queried on the blocking pool, then dropped on the runtime's
/// own thread. The synchronous client this replaces closed its connection by blocking on a
/// runtime of its own, which panics there ("Cannot start a runtime from within a runtime").
#[test]
fn a_store_used_on_the_blocking_pool_is_dropped_on_the_runtime_thread() {
    let (_server, url) = Server::start();
    current_thread().block_on(async move {
        let store = tokio::task::spawn_blocking(move || {
            let mut store = PgStore::connect(&url).unwrap();
            assert!(!store.contains(&InfoHash([7; 20])).unwrap());
            store
        })
        .await
        .unwrap();
        drop(store);
    });
}

/// The asynchronous client of a store is awaited on the application's runtime, while the
/// blocking face keeps working from another thread.
#[test]
fn the_async_client_is_awaited_from_inside_a_runtime() {
    let (_server, url) = Server::start();
    let store = PgStore::connect(&url).unwrap();
    let n: i32 = current_thread().block_on(async {
        let row = store
            .async_client()
            .query_one("SELECT 40 + $1::int", &[&2i32])
            .await
            .unwrap();
        row.get(0)
    });
    assert_eq!(n, 42);
}

/// A connection the server ends (here terminated by another session, as a restart or an
/// administrator would) is known closed without a query, because its task keeps reading
/// the socket while the client is idle.
#[test]
fn a_connection_the_server_ends_is_seen_closed_while_idle() {
    let (_server, url) = Server::start();
    let mut store = PgStore::connect(&url).unwrap();
    assert!(!store.is_closed());
    // Ends every other session of this database.
    let mut c = Client::connect(&url.parse().unwrap()).unwrap();
    let ended = c
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert!(ended >= 1, "{ended} sessions ended");
    // The end reaches the client's task a moment later: look, a little apart, for 10 s.
    let mut seen = false;
    for _ in 0..200 {
        if store.is_closed() {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen, "the ended connection still looks open");
    // Its next query says the connection was lost, and a reconnect brings it back.
    let e = store.contains(&InfoHash([1; 20])).unwrap_err();
    assert!(estudely_store::connection_lost(&e), "{e:#}");
    store.reconnect().unwrap();
    assert!(!store.contains(&InfoHash([1; 20])).unwrap());
}

/// The statements this session has prepared, among those whose text starts with `prefix`.
fn prepared(c: &mut Client, prefix: &str) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pg_prepared_statements WHERE starts_with(statement, $1)",
        &[&prefix],
    )
    .unwrap()
    .get(0)
}

/// A text run again (on the connection or in a transaction) is prepared once and kept:
/// one round trip per run instead of two. The kept ones stay bounded.
#[test]
fn a_statement_run_again_is_prepared_once_and_the_kept_ones_are_bounded() {
    let (_server, url) = Server::start();
    let mut c = Client::connect(&url.parse().unwrap()).unwrap();
    for i in 0..3i32 {
        let n: i32 = c
            .query_one("SELECT 1 + $1::int /* kept */", &[&i])
            .unwrap()
            .get(0);
        assert_eq!(n, 1 + i);
    }
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT 1 + $1::int /* kept */", &[&5i32])
        .unwrap();
    tx.rollback().unwrap();
    assert_eq!(prepared(&mut c, "SELECT 1 + $1::int /* kept */"), 1);
    // Many texts: the connection forgets them all past its bound.
    for i in 0..600 {
        c.execute(&format!("SELECT {i} /* many */"), &[]).unwrap();
    }
    let kept = prepared(&mut c, "SELECT ");
    assert!(kept > 0 && kept <= 256, "{kept} statements kept");
}
