//! Arbitrary bytes into the bencode decoder: no panic; whatever decodes keeps exact spans and
//! re-encodes canonically to something that decodes to the same tree; the tree-less scanner
//! accepts exactly what the decoder accepts, and fails with the same error.
#![no_main]
use estudely_bencode::{decode, decode_prefix, scan_with, Limits, OwnedValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert_eq!(
        scan_with(data, Limits::default()).map(|r| r.raw()),
        decode(data).map(|v| v.raw())
    );
    if let Ok(v) = decode(data) {
        assert_eq!(v.raw(), data);
        let owned = OwnedValue::from(&v);
        let again = owned.to_bytes();
        let v2 = decode(&again).expect("canonical re-encoding decodes");
        assert_eq!(OwnedValue::from(&v2), owned);
    }
    if let Ok((v, used)) = decode_prefix(data, Limits::default()) {
        assert_eq!(v.raw(), &data[..used]);
    }
});
