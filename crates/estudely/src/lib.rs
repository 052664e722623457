//! `estudely`, the command-line face of the Estudely DHT toolkit.
//!
//! The binary is a thin `main` over [`main_with`]; the pieces are public so that tests and
//! benches reuse them: [`dht`] runs a `dht-core` node on tokio sockets, [`cli`] is the clap
//! surface, [`cmd`] holds one module per subcommand, [`output`] renders replies, and
//! [`resolve`] turns typed addresses into socket addresses. [`embed`] runs the commands
//! in-process for another program (the Python package): flags given as named values, rows
//! into a writer, a stop flag in place of Ctrl-C.
//!
//! The library work lives in crates of its own, re-exported here under their old module
//! paths: [`crawl`] and [`resolve`] (`estudely-crawl`), [`pipeline`] and [`progress`]
//! (`estudely-pipeline`), [`testnet`] and [`seeder`] (`estudely-testnet`). They take no
//! clap: [`args`] holds the command line's structs and maps them onto their plain
//! configurations.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod args;
pub mod cli;
pub mod cmd;
pub mod embed;
pub mod metrics;
pub mod output;

/// The tokio crawl driver and its set-up (the `estudely-crawl` crate).
pub use estudely_crawl as crawl;
/// Turning typed addresses into socket addresses (in the `estudely-crawl` crate).
pub use estudely_crawl::resolve;
/// The tokio DHT node driver (the `estudely-dht` crate).
pub use estudely_dht as dht;
/// The metadata fetcher (the `estudely-fetch` crate).
pub use estudely_fetch as fetch;
/// The crawl → peers → metadata → rows pipeline (the `estudely-pipeline` crate).
pub use estudely_pipeline as pipeline;
/// Progress on stderr for long-running commands (in the `estudely-pipeline` crate).
pub use estudely_pipeline::progress;
/// The figures and charts of an index or an output file (the `estudely-report` crate).
pub use estudely_report as report;
/// The index, SQLite or PostgreSQL (the `estudely-store` crate).
pub use estudely_store as store;
/// Loopback test networks (the `estudely-testnet` crate).
pub use estudely_testnet as testnet;
/// The metadata-only seeder of the test networks (in the `estudely-testnet` crate).
pub use estudely_testnet::seeder;
/// The web UI and JSON API (the `estudely-web` crate).
pub use estudely_web as web;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::cli::Cli;
use crate::resolve::UsageError;

/// Run a parsed command line: set up logging and a single-threaded runtime, run the
/// subcommand, and print any error as one line. Returns the process exit code: 0 on
/// success, 2 for a usage error (bad address, unknown name), 1 for any other failure.
pub fn main_with(cli: Cli) -> ExitCode {
    init_logging(cli.command.default_log_filter());
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            let r = rt.block_on(cli.command.run());
            // Do not wait for a resolver thread stuck on an unreachable DNS server.
            rt.shutdown_background();
            r
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code(&e)
        }
    }
}

/// 2 if a [`UsageError`] is anywhere in the error's chain, else 1.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    if e.chain().any(|c| c.is::<UsageError>()) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// Log to stderr, filtered by `RUST_LOG` or else `default_filter` (with the uTP library's
/// warnings left out: it warns at every start that the UDP receive buffer is smaller than it
/// would like for bulk transfers, which metadata fetching is not).
fn init_logging(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_filter},librqbit_utp=error")));
    // `try_init`: a second call (in tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
