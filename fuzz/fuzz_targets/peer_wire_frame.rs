//! Arbitrary bytes into the frame parser and into a metadata session (fresh, and past both
//! handshakes): no panic, and a parsed frame never claims more bytes than it was given.
#![no_main]

use estudely_peer_wire::{
    parse_frame, ExtHandshake, Handshake, Message, MetadataSession, Reserved, SessionConfig,
};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 20] = [7; 20];

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while let Ok(Some((_, used))) = parse_frame(&data[at..], 1 << 16) {
        assert!(used >= 4 && at + used <= data.len());
        at += used;
    }

    let config = SessionConfig {
        max_frame_len: 1 << 16,
        ..SessionConfig::default()
    };
    let mut fresh = MetadataSession::new(config.clone(), KEY, [1; 20]);
    for chunk in data.chunks(97) {
        fresh.handle_input(chunk);
        let _ = fresh.poll_transmit();
    }
    let _ = fresh.state();

    let mut ready = MetadataSession::new(config, KEY, [1; 20]);
    let hs = Handshake {
        reserved: Reserved::ours(false),
        info_hash: KEY,
        peer_id: [2; 20],
    };
    ready.handle_input(&hs.encode());
    let ext = ExtHandshake {
        ut_metadata: Some(1),
        metadata_size: Some(40_000),
        ..ExtHandshake::default()
    };
    if let Ok(bytes) = (Message::Extended {
        id: 0,
        payload: &ext.to_bytes(),
    })
    .to_vec()
    {
        ready.handle_input(&bytes);
    }
    ready.handle_input(data);
    let _ = ready.poll_transmit();
    let _ = ready.outcome();
});
