//! The PostgreSQL backend (placeholder: being written).

/// A PostgreSQL index.
#[derive(Debug)]
pub struct PgStore;

impl PgStore {
    /// Connect, creating the schema as needed.
    pub fn connect(_url: &str) -> anyhow::Result<PgStore> {
        anyhow::bail!("PostgreSQL index: not built yet")
    }

    /// Connect read-only.
    pub fn connect_read_only(url: &str) -> anyhow::Result<PgStore> {
        Self::connect(url)
    }
}

// Placeholder until the backend lands: its constructors always fail, so these never run.
impl super::Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }
    fn write(&mut self, _: &str, _: &super::Batch) -> anyhow::Result<()> {
        anyhow::bail!("not built yet")
    }
    fn contains(&mut self, _: &estudely_krpc::InfoHash) -> anyhow::Result<bool> {
        anyhow::bail!("not built yet")
    }
    fn for_each_info_hash(
        &mut self,
        _: &mut dyn FnMut(estudely_krpc::InfoHash),
    ) -> anyhow::Result<()> {
        anyhow::bail!("not built yet")
    }
    fn claim(
        &mut self,
        _: &estudely_krpc::InfoHash,
        _: &str,
        _: std::time::Duration,
    ) -> anyhow::Result<bool> {
        anyhow::bail!("not built yet")
    }
    fn save_nodes(
        &mut self,
        _: &[estudely_krpc::CompactNode],
        _: i64,
        _: usize,
    ) -> anyhow::Result<()> {
        anyhow::bail!("not built yet")
    }
    fn load_nodes(&mut self, _: usize) -> anyhow::Result<Vec<estudely_krpc::CompactNode>> {
        anyhow::bail!("not built yet")
    }
    fn search(&mut self, _: &str, _: usize, _: usize) -> anyhow::Result<Vec<super::StoredTorrent>> {
        anyhow::bail!("not built yet")
    }
    fn torrent(
        &mut self,
        _: &estudely_krpc::InfoHash,
    ) -> anyhow::Result<Option<super::StoredTorrent>> {
        anyhow::bail!("not built yet")
    }
    fn export(
        &mut self,
        _: Option<i64>,
        _: &mut dyn FnMut(&super::StoredTorrent, &[std::net::SocketAddr]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        anyhow::bail!("not built yet")
    }
    fn stats(&mut self) -> anyhow::Result<super::Stats> {
        anyhow::bail!("not built yet")
    }
}
