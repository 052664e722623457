//! `collect --bind IP:PORT` makes its metadata connections from IP, over TCP and uTP alike
//! (on a host with one `--shard` per IP, each crawler's fetches leave from its own IP).
//!
//! A peer of our own, an in-test TCP and uTP listener on 127.0.76.1, is announced to a
//! testnet on 127.0.73.x for an infohash of its own; `collect --bind 127.0.75.77:0` finds
//! it, connects, and the listener notes where each connection came from. It closes every
//! TCP connection at once, so the fetcher goes on to MSE and then to uTP, reaching it over
//! both transports in one run.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use common::BIN;
use librqbit_utp::UtpSocketUdp;

/// Where the listener's connections came from, by transport.
#[derive(Debug)]
enum Seen {
    Tcp(SocketAddr),
    Utp(SocketAddr),
}

/// A TCP listener and a uTP socket on one port of `ip`, on a thread of their own; every
/// connection's source goes to the channel.
fn listener(ip: &str) -> (u16, mpsc::Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let (port_tx, port_rx) = mpsc::channel();
    let ip: IpAddr = ip.parse().unwrap();
    thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let utp = UtpSocketUdp::new_udp(SocketAddr::new(ip, 0)).await.unwrap();
            let tcp = tokio::net::TcpListener::bind(utp.bind_addr())
                .await
                .unwrap();
            port_tx.send(utp.bind_addr().port()).unwrap();
            let mut kept = Vec::new();
            loop {
                tokio::select! {
                    Ok((_closed, from)) = tcp.accept() => {
                        let _ = tx.send(Seen::Tcp(from));
                    }
                    Ok(s) = utp.accept() => {
                        let _ = tx.send(Seen::Utp(s.remote_addr()));
                        kept.push(s);
                    }
                }
            }
        });
    });
    (port_rx.recv().unwrap(), rx)
}

#[test]
fn collect_fetches_from_its_bind_address_over_tcp_and_utp() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--nodes", "8", "--torrents", "1", "--interval", "60"];
    let (_net, boot, _) = common::testnet(
        &[&args[..], &["--seconds", "120", "--base-ip", "127.0.73"]].concat(),
        &dir.path().join("t.json"),
    );
    let (port, seen) = listener("127.0.76.1");
    let ours = "76".repeat(20);
    let announced = Command::new(BIN)
        .args(["query", "--bind", "127.0.76.1:0", "announce", &boot, &ours])
        .args(["--port", &port.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        announced.status.success(),
        "{}",
        String::from_utf8_lossy(&announced.stderr)
    );
    let out = Command::new(BIN)
        .args(["collect", "--bootstrap", &boot, "--bind", "127.0.75.77:0"])
        .args([
            "--max-infohashes",
            "2",
            "--rate",
            "200",
            "--overall-timeout",
            "60",
        ])
        .args(["--format", "jsonl"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let seen: Vec<Seen> = seen.try_iter().collect();
    let from = |s: &Seen| match s {
        Seen::Tcp(a) | Seen::Utp(a) => a.ip(),
    };
    assert!(
        seen.iter().any(|s| matches!(s, Seen::Tcp(_))),
        "no TCP connection: {seen:?}\n{stderr}"
    );
    assert!(
        seen.iter().any(|s| matches!(s, Seen::Utp(_))),
        "no uTP connection: {seen:?}\n{stderr}"
    );
    let bound: IpAddr = "127.0.75.77".parse().unwrap();
    assert!(seen.iter().all(|s| from(s) == bound), "{seen:?}");
}
