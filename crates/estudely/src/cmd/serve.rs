//! `estudely serve`: the web UI and JSON API over an index (see [`crate::web`]).

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;

use crate::args::WebArgs;
use crate::cmd::db::DbArgs;
use crate::store::DbUrl;
use crate::web::{self, AppState};

/// `estudely serve --help` epilogue.
pub const EXAMPLES: &str =
    "Pages: / (newest), /search?q=WORDS&sort=relevance|size|discovered&page=N,
/torrent/INFOHASH, /recent, /stats (charts). JSON: /api/v1/search?q=&limit=&offset=&sort=,
/api/v1/torrents/INFOHASH, /api/v1/stats. Prometheus: /metrics.
The index is opened read-only; `estudely run` may write it at the same time.

Examples:
  estudely serve
  estudely serve --db crawl.sqlite --listen 127.0.0.1:9000
  estudely serve --db postgres://estudely@db/estudely --listen 0.0.0.0:8080 --auth me:secret";

/// `estudely serve ...`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Which index.
    #[command(flatten)]
    pub db: DbArgs,
    /// Where to listen (loopback by default: use --auth before opening it to a network).
    #[arg(long, value_name = "ADDR", default_value = web::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Web server settings.
    #[command(flatten)]
    pub web: WebArgs,
}

/// Run `estudely serve ...` until Ctrl-C.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let url = DbUrl::parse(&args.db.db)?;
    crate::metrics::install()?;
    let config = args.web.config()?;
    let listener = web::bind(args.listen, args.web.auth.is_some()).await?;
    let state = Arc::new(AppState::new(url, &config));
    let pool = Arc::clone(&state.pool);
    // Fail now on a missing file or a refused connection, not at the first page.
    tokio::task::spawn_blocking(move || pool.check()).await??;
    eprintln!(
        "serve: index {}, web UI at http://{}/",
        state.pool.url(),
        listener.local_addr()?
    );
    web::serve(listener, state, args.web.auth.clone(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
