//! Property tests: canonical encode → decode round-trips, and arbitrary bytes never panic.

use estudely_bencode::{decode, decode_with, Kind, Limits, OwnedValue, Value};
use proptest::prelude::*;

fn owned_value() -> impl Strategy<Value = OwnedValue> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(OwnedValue::Int),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(OwnedValue::Bytes),
    ];
    leaf.prop_recursive(6, 128, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(OwnedValue::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..12),
                inner,
                0..8
            )
            .prop_map(OwnedValue::Dict),
        ]
    })
}

/// Every nested value's span must point at its own raw bytes inside the input.
fn check_spans(input: &[u8], v: &Value<'_>) {
    assert_eq!(&input[v.span()], v.raw());
    match v.kind() {
        Kind::List(items) => items.iter().for_each(|i| check_spans(input, i)),
        Kind::Dict(entries) => entries.iter().for_each(|(_, i)| check_spans(input, i)),
        _ => {}
    }
}

proptest! {
    #[test]
    fn round_trip(v in owned_value()) {
        let bytes = v.to_bytes();
        let strict = Limits { strict: true, ..Limits::default() };
        let decoded = decode_with(&bytes, strict).expect("canonical output decodes strictly");
        prop_assert_eq!(decoded.raw(), &bytes[..]);
        check_spans(&bytes, &decoded);
        prop_assert_eq!(OwnedValue::from(&decoded), v);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(v) = decode(&bytes) {
            // Whatever decodes re-encodes to something that decodes to the same tree.
            let again = OwnedValue::from(&v).to_bytes();
            prop_assert_eq!(OwnedValue::from(&decode(&again).unwrap()), OwnedValue::from(&v));
        }
    }

    #[test]
    fn mutated_valid_input_never_panics(v in owned_value(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut bytes = v.to_bytes();
        let i = at.index(bytes.len());
        // A strict prefix of one value is never a whole value.
        prop_assert!(decode(&bytes[..i]).is_err());
        bytes[i] = b;
        let _ = decode(&bytes);
    }
}
