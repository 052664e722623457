//! Prometheus metrics (`--metrics ADDR`): the counters the program already keeps, published
//! through the [`metrics`] facade and served as text at `http://ADDR/metrics`.
//!
//! [`serve`] installs the recorder and serves `GET /metrics` with axum (the web UI's server)
//! on the current tokio runtime; `estudely serve` and `run --serve` also answer `/metrics`
//! once the recorder is installed. Without it every `publish_*` call is a no-op costing a
//! few atomic loads.
//!
//! The publishing side (`publish_*`, the metric names and help texts) is the pipeline
//! crate's [`estudely_pipeline::metrics`], re-exported here; see it for the list of metrics.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::header;
use axum::routing::get;
use axum::Router;
use clap::Args;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::debug;

pub use estudely_pipeline::metrics::*;

use crate::resolve::UsageError;

/// The `--metrics` flag, for any long-running command.
#[derive(Debug, Clone, Default, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics while running (e.g. 127.0.0.1:9100).
    #[arg(long = "metrics", value_name = "ADDR")]
    pub addr: Option<SocketAddr>,
}

impl MetricsArgs {
    /// [`serve`] at the address, if one was given.
    pub fn start(&self) -> anyhow::Result<()> {
        match self.addr {
            Some(addr) => serve(addr),
            None => Ok(()),
        }
    }
}

/// The recorder's settings: histogram buckets.
fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("estudely_db_write_seconds".into()),
            &DB_WRITE_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("estudely_http_request_seconds".into()),
                &DB_WRITE_BUCKETS,
            )
        })
        .expect("bucket list is not empty")
}

/// The installed recorder's handle, once [`install`] ran.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the Prometheus recorder (once per process; later calls return the same
/// handle). A task folds histograms in every few seconds, on the current tokio runtime.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = builder().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed"))?;
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The recorder's handle, if [`install`] ran (the web UI then serves `/metrics` too).
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE.get().cloned()
}

/// Install the recorder and serve `GET /metrics` on `addr`, on the current tokio runtime
/// (it must be running: the server is a task). A failed bind is a [`UsageError`] naming
/// the address.
pub fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| UsageError(format!("cannot listen on --metrics `{addr}`: {e}")))?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let handle = install()?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let h = handle.clone();
            async move {
                h.run_upkeep();
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    h.render(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            debug!("metrics server: {e}");
        }
    });
    Ok(())
}
