//! A sequence of arbitrary datagrams from a few addresses into one DHT node, with time
//! passing: the node never panics and its bounded state stays bounded.
#![no_main]
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use estudely_dht_core::{Config, Node};
use libfuzzer_sys::fuzz_target;

/// Where a chunk comes from: public unicast addresses only (a node may ignore loopback,
/// private and bogon sources). The selector's low 3 bits pick one of 8 hosts: 1.1.1.1-3,
/// 8.8.4.1-3, 2001:4860::1 and 2001:4860::2; the next 2 bits one of the ports 6881-6884,
/// so one host can appear as several nodes.
fn source(selector: u8) -> SocketAddr {
    let host = selector & 7;
    let port = 6881 + u16::from((selector >> 3) & 3);
    let ip = match host {
        0..=2 => IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1 + host)),
        3..=5 => IpAddr::V4(Ipv4Addr::new(8, 8, 4, host - 2)),
        _ => {
            let last = u16::from(host - 5);
            IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0, 0, 0, 0, 0, last))
        }
    };
    SocketAddr::new(ip, port)
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut node = Node::new(Config::default(), t0);
    let mut now = t0;
    // Each chunk: 1 byte source selector, 1 byte time step, 2 bytes length, payload.
    let mut rest = data;
    while rest.len() >= 4 {
        let from = source(rest[0]);
        now += Duration::from_millis(u64::from(rest[1]) * 50);
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) % 1500).min(rest.len() - 4);
        let payload = &rest[4..4 + len];
        node.handle_datagram(now, from, payload);
        node.handle_timeout(now);
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
        rest = &rest[4 + len..];
    }
    assert!(node.stats().in_flight <= Config::default().max_in_flight);
});
