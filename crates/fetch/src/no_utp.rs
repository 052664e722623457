//! The [`UtpDialer`] of a build without the `utp` feature: no uTP library, no socket. Every
//! uTP attempt fails at once as a local error that names the feature, so `--transport both`
//! still fetches over TCP and `--transport utp` says why it cannot.

use std::net::{IpAddr, SocketAddr};

use tokio::time::Instant;

use super::PeerStream;
use super::{FailureKind, FetchFailure};

/// Stands in for the uTP dialer: it never binds a socket, and every connect fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UtpDialer;

impl UtpDialer {
    /// A dialer (with no uTP in this build).
    pub fn new() -> Self {
        UtpDialer
    }

    /// Always `None`: no socket is ever bound.
    pub fn local_addr(&self, _peer: &SocketAddr) -> Option<SocketAddr> {
        None
    }

    /// Fails at once: this build has no uTP.
    pub async fn connect(
        &self,
        _peer: SocketAddr,
        _local: Option<IpAddr>,
        _connect_by: Instant,
    ) -> Result<Box<dyn PeerStream>, FetchFailure> {
        Err(FetchFailure::new(
            FailureKind::LocalError,
            "this build has no uTP (estudely-fetch's `utp` feature)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_utp_connect_fails_at_once_naming_the_feature() {
        let d = UtpDialer::new();
        let peer: SocketAddr = "127.0.140.30:6881".parse().unwrap();
        let f = match d.connect(peer, None, Instant::now()).await {
            Ok(_) => panic!("connected without uTP"),
            Err(f) => f,
        };
        assert_eq!(f.kind, FailureKind::LocalError);
        assert!(f.detail.contains("`utp` feature"), "{f}");
        assert_eq!(d.local_addr(&peer), None);
    }
}
