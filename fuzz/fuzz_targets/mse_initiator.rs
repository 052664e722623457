//! Arbitrary responder bytes into an MSE initiator: never a panic, never unbounded buffering.
//! The first byte splits the input into two deliveries, so partial reads are exercised too.
#![no_main]

use estudely_peer_wire::{CryptoProvide, MseInitiator};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let mut a = MseInitiator::new([7; 20], &[3; 32], CryptoProvide::BOTH);
    let _ = a.poll_transmit();
    let at = (usize::from(split) * 8).min(rest.len());
    a.handle_input(&rest[..at]);
    let _ = a.poll_transmit();
    a.handle_input(&rest[at..]);
    let _ = a.state();
    if let Ok((mut stream, mut leftover)) = a.into_stream() {
        stream.decrypt(&mut leftover);
        let mut out = leftover.clone();
        stream.encrypt(&mut out);
    }
});
