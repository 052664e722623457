//! The output contract of issue 7, end to end, as a user runs the binary: names escaped
//! visibly and reversibly in CSV.
//!
//! Loopback only: in-test peers on 127.0.80.x. Every wait is bounded by a generous
//! liveness limit (never asserted as a speed) and every child is killed by a Drop guard.

mod metadata_util;

use std::time::Duration;

use estudely::output::csv_name_unescape;
use metadata_util::{run_cli, sha1, Behaviour, FakePeers};

/// Liveness limit for any one wait: a hang fails the test instead of blocking the suite.
const LIMIT: Duration = Duration::from_secs(60);

/// A valid single-file v1 info dict named with the raw bytes `name`.
fn info_dict_raw(name: &[u8]) -> Vec<u8> {
    let mut d = format!("d6:lengthi1000e4:name{}:", name.len()).into_bytes();
    d.extend_from_slice(name);
    d.extend_from_slice(b"12:piece lengthi16384e6:pieces20:");
    d.extend_from_slice(&[9; 20]);
    d.push(b'e');
    d
}

#[test]
fn metadata_csv_escapes_control_characters_and_bad_utf8_reversibly() {
    let raw: &[u8] = b"line\nbreak\ttab\x7f,\"q\"\\ caf\xc3\xa9 \xc2\x85 \xff\xfe end";
    let info = info_dict_raw(raw);
    let peers = FakePeers::start("127.0.80.1", &[Behaviour::Good], info.clone());
    let key = hex::encode(sha1(&info));
    let input = format!("{key},127.0.80.1,{}\n", peers.addrs[0].port());

    let run = run_cli(&["metadata", "-"], Some(input.as_bytes()), LIMIT);
    assert!(run.status.success(), "{}", run.stderr);
    let escaped = r#"line\x0abreak\x09tab\x7f,"q"\\ café \u0085 \xff\xfe end"#;
    let quoted = escaped.replace('"', "\"\"");
    assert_eq!(
        run.stdout,
        format!(
            "infohash,name,file_count,total_bytes,piece_length\n\
             {key},\"{quoted}\",1,1000,16384\n"
        )
    );
    let mut rows = csv::Reader::from_reader(run.stdout.as_bytes());
    let row = rows.records().next().unwrap().unwrap();
    assert_eq!(&row[1], escaped);
    assert_eq!(csv_name_unescape(&row[1]).unwrap(), raw, "reversible");

    // JSON lines: `name` for display as before, `name_hex` exact.
    let run = run_cli(
        &["metadata", "-", "--format", "jsonl"],
        Some(input.as_bytes()),
        LIMIT,
    );
    assert!(run.status.success(), "{}", run.stderr);
    let row: serde_json::Value = serde_json::from_str(run.stdout.trim_end()).unwrap();
    assert_eq!(row["name_hex"], hex::encode(raw));
    assert_eq!(
        row["name"],
        "line\u{fffd}break\u{fffd}tab\u{fffd},\"q\"\\ café \u{fffd} \u{fffd}\u{fffd} end"
    );
}
