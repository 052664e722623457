//! Arbitrary bytes into the bencode decoder: no panic; whatever decodes keeps exact spans and
//! re-encodes canonically to something that decodes to the same tree.
#![no_main]
use estudely_bencode::{decode, decode_prefix, Limits, OwnedValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
