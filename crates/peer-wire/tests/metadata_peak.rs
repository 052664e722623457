//! A session whose driver reserves the announced size (`hold_for_grant`, as the fetcher's
//! memory budget does) holds at most about that size while it fetches and verifies: the
//! pieces are written into one buffer that becomes the info dict, never joined into a
//! second copy. Allocations are counted by a global allocator of this test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use estudely_peer_wire::{
    ExtHandshake, Handshake, Message, MetadataMsg, MetadataSession, Reserved, SessionConfig,
    METADATA_PIECE_LEN,
};
use sha1::{Digest, Sha1};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn more(n: usize) {
    let now = LIVE.fetch_add(n, SeqCst) + n;
    PEAK.fetch_max(now, SeqCst);
}

/// The system allocator, counting the bytes live and their peak.
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            more(l.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            more(l.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), SeqCst);
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                more(new - l.size());
            } else {
                LIVE.fetch_sub(l.size() - new, SeqCst);
            }
        }
        q
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn ext(id: u8, payload: &[u8]) -> Vec<u8> {
    Message::Extended { id, payload }.to_vec().unwrap()
}

#[test]
fn a_granted_session_never_holds_its_metadata_twice() {
    const SIZE: usize = 4 << 20;
    let info: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let key: [u8; 20] = Sha1::digest(&info).into();
    let config = SessionConfig {
        hold_for_grant: true,
        ..SessionConfig::default()
    };
    let mut reserved = Reserved::default();
    reserved.set_extensions(true);
    let theirs = Handshake {
        reserved,
        info_hash: key,
        peer_id: *b"-XX0001-000000000000",
    };
    let announce = ExtHandshake {
        ut_metadata: Some(1),
        metadata_size: Some(SIZE as u64),
        ..ExtHandshake::default()
    };

    let base = LIVE.load(SeqCst);
    PEAK.store(base, SeqCst);
    let mut s = MetadataSession::new(config, key, *b"-ES0001-000000000000");
    s.handle_input(&theirs.encode());
    s.handle_input(&ext(0, &announce.to_bytes()));
    s.grant();
    let pieces = SIZE.div_ceil(METADATA_PIECE_LEN);
    for piece in 0..pieces {
        let _ = s.poll_transmit();
        let at = piece * METADATA_PIECE_LEN;
        let data = MetadataMsg::Data {
            piece: piece as u32,
            total_size: SIZE as u64,
            data: &info[at..(at + METADATA_PIECE_LEN).min(SIZE)],
        };
        s.handle_input(&ext(
            estudely_peer_wire::session::OUR_UT_METADATA,
            &data.to_bytes(),
        ));
    }
    let got = s.into_outcome().unwrap().unwrap();
    let peak = PEAK.load(SeqCst) - base;
    assert!(got.info == info, "the info dict, verified");
    assert!(
        peak < SIZE + SIZE / 4,
        "peak {peak} bytes for {SIZE} bytes of metadata"
    );
}
