//! One module per subcommand; [`run`] dispatches.

pub mod node;
pub mod query;

use crate::cli::Command;

/// Run one subcommand to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Query(args) => query::run(args).await,
        Command::Node(args) => node::run(args).await,
    }
}
