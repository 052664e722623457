//! A sequence of arbitrary datagrams from a few addresses into one DHT node, with time
//! passing: the node never panics and its bounded state stays bounded.
#![no_main]
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use estudely_dht_core::{Config, Node};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut node = Node::new(Config::default(), t0);
    let mut now = t0;
    // Each chunk: 1 byte source selector, 1 byte time step, 2 bytes length, payload.
    let mut rest = data;
    while rest.len() >= 4 {
        let from = SocketAddr::from(([127, 0, 1, rest[0] % 8], 6881));
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
