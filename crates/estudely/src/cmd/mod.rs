//! One module per subcommand (`Command::run` in `cli.rs` dispatches).

pub mod collect;
pub mod crawl;
pub mod db;
pub mod demo;
pub mod export;
pub mod metadata;
pub mod node;
pub mod prune;
pub mod query;
pub mod reclassify;
pub mod report;
pub mod run;
pub mod search;
pub mod serve;
pub mod simulate;
pub mod stats;
pub mod testnet;

/// Run a blocking command on tokio's blocking pool.
pub(crate) async fn blocking(
    f: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("the command panicked: {e}"))?
}
