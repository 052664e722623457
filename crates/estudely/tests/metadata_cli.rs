//! `estudely metadata` as a user runs it: input handling, errors and output formats, with an
//! in-test peer on 127.0.32.x.

mod metadata_util;

use std::time::Duration;

use metadata_util::{info_dict, run_cli, sha1, Behaviour, FakePeers};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn malformed_rows_are_warned_with_their_line_and_skipped() {
    let info = info_dict("a,\"quoted\" name.bin");
    let peers = FakePeers::start("127.0.32.1", &[Behaviour::Good], info.clone());
    let key = hex::encode(sha1(&info));
    let port = peers.addrs[0].port();
    let csv = format!(
        "infohash,peer_ip,peer_port\n\
         {key},127.0.32.1\n\
         nothex,127.0.32.1,{port}\n\
         {key},127.0.32.999,{port}\n\
         {key},127.0.32.1,99999\n\
         \n\
         {},127.0.32.1,{port}\n\
         {key},127.0.32.1,{port},extra\n",
        key.to_uppercase()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers.csv");
    std::fs::write(&file, csv).unwrap();
    let path = file.to_str().unwrap();
    let run = run_cli(&["metadata", "--allow-private", path], None, LIMIT);
    assert!(run.status.success(), "{}", run.stderr);
    // RFC 4180 quoting of the comma and the quotes in the name.
    assert_eq!(
        run.stdout,
        format!(
            "infohash,name,file_count,total_bytes,piece_length\n\
             {key},\"a,\"\"quoted\"\" name.bin\",1,1000000,16384\n"
        )
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    let want_warnings = [
        (
            2,
            "expected 3 columns (infohash,peer_ip,peer_port), found 2",
        ),
        (3, "infohash `nothex` is not 40 or 64 hex digits"),
        (4, "`127.0.32.999` is not an IP address"),
        (5, "port `99999` is not a number from 1 to 65535"),
        (
            8,
            "expected 3 columns (infohash,peer_ip,peer_port), found 4",
        ),
    ];
    assert_eq!(lines.len(), want_warnings.len() + 1, "{}", run.stderr);
    for ((line, why), got) in want_warnings.iter().zip(&lines) {
        assert_eq!(
            *got,
            format!("warning: {path}: line {line}: {why}; skipped")
        );
    }
    assert_eq!(lines[5], "metadata: 1/1 infohashes, 1 attempt: 1 ok");
}

#[test]
fn stdin_and_jsonl() {
    let info = info_dict("stdin.bin");
    let peers = FakePeers::start("127.0.32.2", &[Behaviour::Good], info.clone());
    let key = hex::encode(sha1(&info));
    let csv = format!("{key},127.0.32.2,{}\n", peers.addrs[0].port());
    let run = run_cli(
        &["metadata", "--allow-private", "-", "--format", "jsonl"],
        Some(csv.as_bytes()),
        LIMIT,
    );
    assert!(run.status.success(), "{}", run.stderr);
    let row: serde_json::Value = serde_json::from_str(run.stdout.trim_end()).unwrap();
    assert_eq!(row["infohash"], key.as_str());
    assert_eq!(row["name"], "stdin.bin");
    assert_eq!(row["name_hex"], hex::encode("stdin.bin"));
    assert_eq!(row["version"], "v1");
    assert_eq!(row["peer"], peers.addrs[0].to_string());
    assert_eq!(row["metadata_size"], info.len());
    assert_eq!(row["failed"], serde_json::json!([]));
}

#[test]
fn missing_file_is_a_one_line_usage_error() {
    let run = run_cli(
        &["metadata", "--allow-private", "/nonexistent/peers.csv"],
        None,
        LIMIT,
    );
    assert_eq!(run.status.code(), Some(2));
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "error: cannot read `/nonexistent/peers.csv`: No such file or directory (os error 2)\n"
    );
    let run = run_cli(
        &["metadata", "--allow-private", "x.csv", "--concurrency", "0"],
        None,
        LIMIT,
    );
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
}

#[test]
fn empty_input_prints_the_header_and_a_summary() {
    let run = run_cli(
        &["metadata", "--allow-private", "-"],
        Some(b"infohash,peer_ip,peer_port\n"),
        LIMIT,
    );
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "infohash,name,file_count,total_bytes,piece_length\n"
    );
    assert_eq!(run.stderr, "metadata: 0/0 infohashes, 0 attempts\n");
}

/// Without `--allow-private`, a peer at a loopback address (as a hostile DHT node could list)
/// is refused before any connection: the row says no metadata, the summary counts
/// `address_refused`, and the listener never sees a connection.
#[test]
fn private_peers_are_refused_without_allow_private() {
    let listener = std::net::TcpListener::bind("127.0.32.9:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = "0123456789abcdef0123456789abcdef01234567";
    let csv = format!("infohash,peer_ip,peer_port\n{key},127.0.32.9,{port}\n");
    let run = run_cli(&["metadata", "-"], Some(csv.as_bytes()), LIMIT);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stderr.contains("address_refused"), "{}", run.stderr);
    assert!(!run.stdout.contains(key), "no metadata row: {}", run.stdout);
    assert_eq!(
        listener.accept().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::WouldBlock),
        "no connection reached the refused peer"
    );
}

/// A peers CSV in which every peer is at a loopback address (a testnet's, fetched without
/// the flag): besides the summary, one line says why and names `--allow-private`; with the
/// flag, that line is gone (the attempts are made, and fail otherwise).
#[test]
fn a_file_of_private_peers_only_names_allow_private() {
    // Ports nobody listens on: with --allow-private the connects are refused.
    let closed: Vec<u16> = (0..3)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.32.10:0").unwrap();
            l.local_addr().unwrap().port()
        })
        .collect();
    let mut csv = String::from("infohash,peer_ip,peer_port\n");
    for (i, port) in closed.iter().enumerate() {
        csv += &format!("{:040x},127.0.32.10,{port}\n", i + 1);
        csv += &format!("{:040x},127.0.32.11,{port}\n", i + 1);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers.csv");
    std::fs::write(&file, csv).unwrap();
    let path = file.to_str().unwrap();

    let run = run_cli(&["metadata", path], None, LIMIT);
    assert!(run.status.success(), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines.contains(&"metadata: 0/3 infohashes, 6 attempts: 0 ok, 6 address_refused"),
        "{}",
        run.stderr
    );
    let hints: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("--allow-private"))
        .collect();
    assert_eq!(hints.len(), 1, "{}", run.stderr);
    assert!(hints[0].contains("every peer (6)"), "{}", hints[0]);

    let run = run_cli(
        &["metadata", "--allow-private", "--transport", "tcp", path],
        None,
        LIMIT,
    );
    assert!(run.status.success(), "{}", run.stderr);
    assert!(!run.stderr.contains("--allow-private"), "{}", run.stderr);
}
