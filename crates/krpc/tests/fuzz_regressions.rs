//! Inputs the fuzzers found (`fuzz/`), kept as regression tests: each must decode without a
//! panic, and what decodes must re-encode to bytes that decode to the same message.

use estudely_krpc::Message;

fn round_trips(name: &str) {
    let path = format!(
        "{}/tests/fuzz_regressions/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let _ = Message::salvage_query_tid(&data);
    if let Ok(m) = Message::decode(&data) {
        let again = Message::decode(&m.encode()).expect("our encoding decodes");
        assert_eq!(again, m, "{name}");
    }
}

/// An error message of 151 bytes, mostly invalid UTF-8: each bad byte became U+FFFD (three
/// bytes), so the decoded message outgrew the 256-byte cap and lost its tail when decoded
/// again. Found by `krpc_decode` in its first 10-minute run.
#[test]
fn error_message_that_grows_when_made_valid_utf8() {
    round_trips("error_message_lossy_growth.bin");
}

/// Every reproducer the fuzzers saved for this bug (`fuzz/artifacts-found/krpc_decode`).
#[test]
fn every_saved_reproducer_round_trips() {
    let dir = format!("{}/tests/fuzz_regressions", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".bin") || name.starts_with("crash-") {
            round_trips(&name);
            n += 1;
        }
    }
    assert!(n >= 6, "{n} reproducers in {dir}");
}

#[test]
fn long_invalid_error_messages_are_capped_at_256_bytes_of_utf8() {
    for n in [100usize, 255, 256, 257, 400] {
        let msg: Vec<u8> = (0..n)
            .map(|i| if i % 3 == 0 { 0xff } else { b'a' })
            .collect();
        let mut d = format!("d1:eli201e{}:", msg.len()).into_bytes();
        d.extend(&msg);
        d.extend(b"e1:t2:aa1:y1:ee");
        let m = Message::decode(&d).unwrap();
        let estudely_krpc::Body::Error(e) = &m.body else {
            panic!("not an error")
        };
        assert!(e.message.len() <= 256, "{n}: {}", e.message.len());
        assert_eq!(Message::decode(&m.encode()).unwrap(), m, "{n}");
    }
}
