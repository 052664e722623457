//! Property tests: canonical encode → decode round-trips, and arbitrary bytes never panic.

use estudely_bencode::{decode, decode_with, scan_with, Kind, Limits, OwnedValue, RawValue, Value};
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

/// The lazy reading of `raw` finds exactly the tree `v`: same kinds, same bytes, same
/// entries in the same order.
fn same(raw: RawValue<'_>, v: &Value<'_>) -> bool {
    raw.raw() == v.raw()
        && match v.kind() {
            Kind::Int(i) => raw.as_int() == Some(*i),
            Kind::Bytes(b) => raw.as_bytes() == Some(*b),
            Kind::List(items) => raw.list().is_some_and(|l| {
                l.clone().count() == items.len() && l.zip(items).all(|(r, v)| same(r, v))
            }),
            Kind::Dict(entries) => raw.dict().is_some_and(|d| {
                d.clone().count() == entries.len()
                    && d.zip(entries)
                        .all(|((rk, r), (k, v))| rk == *k && same(r, v))
            }),
        }
}

/// [`scan_with`] accepts what [`decode_with`] accepts, fails with the same error otherwise,
/// and reads back the same tree.
fn scan_agrees(bytes: &[u8], limits: Limits) -> Result<(), TestCaseError> {
    match (scan_with(bytes, limits), decode_with(bytes, limits)) {
        (Ok(r), Ok(v)) => prop_assert!(same(r, &v), "{:?}", bytes),
        (Err(a), Err(b)) => prop_assert_eq!(a, b),
        (a, b) => prop_assert!(false, "scan {:?} but decode {:?}", a, b.map(|v| v.raw())),
    }
    Ok(())
}

/// Small limits, so that the depth and count limits are hit too.
const TIGHT: Limits = Limits {
    max_depth: 3,
    max_size: 200,
    max_values: 20,
    strict: false,
};

proptest! {
    #[test]
    fn scan_agrees_with_decode_on_valid_input(v in owned_value()) {
        let bytes = v.to_bytes();
        scan_agrees(&bytes, Limits::default())?;
        scan_agrees(&bytes, TIGHT)?;
    }

    #[test]
    fn scan_agrees_with_decode_on_mutated_input(
        v in owned_value(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = v.to_bytes();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        scan_agrees(&bytes, Limits::default())?;
        scan_agrees(&bytes, TIGHT)?;
        let cut = cut.index(bytes.len() + 1);
        scan_agrees(&bytes[..cut], Limits::default())?;
        let strict = Limits { strict: true, ..Limits::default() };
        scan_agrees(&bytes, strict)?;
    }

    #[test]
    fn scan_agrees_with_decode_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        scan_agrees(&bytes, Limits::default())?;
        scan_agrees(&bytes, TIGHT)?;
    }

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
