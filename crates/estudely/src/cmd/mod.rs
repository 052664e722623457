//! One module per subcommand; [`run`] dispatches.

pub mod collect;
pub mod crawl;
pub mod db;
pub mod demo;
pub mod export;
pub mod metadata;
pub mod node;
pub mod query;
pub mod report;
pub mod run;
pub mod search;
pub mod serve;
pub mod simulate;
pub mod stats;
pub mod testnet;

use crate::cli::Command;

/// Run one subcommand to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Query(args) => query::run(args).await,
        Command::Node(args) => node::run(args).await,
        Command::Metadata(args) => metadata::run(args).await,
        Command::Crawl(args) => crawl::run(args).await,
        Command::Testnet(args) => testnet::run(args).await,
        Command::Collect(args) => collect::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        // The index clients block (PostgreSQL's runs a runtime of its own): off the runtime.
        Command::Export(args) => blocking(move || export::run(args)).await,
        Command::Search(args) => blocking(move || search::run(args)).await,
        Command::Stats(args) => blocking(move || stats::run(args)).await,
        Command::Report(args) => blocking(move || report::run(args)).await,
        Command::Simulate(args) => blocking(move || simulate::run(args)).await,
    }
}

/// Run a blocking command on tokio's blocking pool.
async fn blocking(f: impl FnOnce() -> anyhow::Result<()> + Send + 'static) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("the command panicked: {e}"))?
}
