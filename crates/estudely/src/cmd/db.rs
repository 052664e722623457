//! `--db`, shared by the commands that read the index (`export`, `search`, `stats`).

use clap::Args;

use crate::store::{DbUrl, Store, DEFAULT_DB};

/// Which index to read.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// The index: an SQLite file (`PATH`, `sqlite:PATH`) or a `postgres://` URL.
    #[arg(long, value_name = "URL", default_value = DEFAULT_DB)]
    pub db: String,
}

impl DbArgs {
    /// Open the index for reading only: a missing SQLite file is a usage error naming it.
    pub fn open_read_only(&self) -> anyhow::Result<Box<dyn Store>> {
        DbUrl::parse(&self.db)?.open_read_only()
    }
}
