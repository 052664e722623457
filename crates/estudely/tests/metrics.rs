//! `--metrics ADDR` end to end, on loopback only: `estudely crawl` against a testnet and
//! `estudely metadata -` against a closed port are scraped over plain HTTP while they run.
//!
//! Addresses: the testnet on 127.0.93.x, everything else on 127.0.94.x.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{testnet, Proc, BIN};

/// Generous bound for anything to happen: none of these may hang the suite.
const LIMIT: Duration = Duration::from_secs(60);

/// A free TCP port on `ip` (bound, read, released).
fn free_tcp(ip: &str) -> SocketAddr {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a probe listener")
}

/// `GET /metrics` on `addr`: the status line and the body, or `None` if nobody answers.
fn scrape(addr: SocketAddr) -> Option<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

/// The value of the sample `name{labels}` (exactly as rendered), if present.
fn value(body: &str, sample: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

/// The sum of every sample of `name` (all label sets).
fn sum(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Scrape `addr` every 250 ms until `done` holds for the body (or `LIMIT`: panic).
fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < LIMIT {
        if let Some((status, body)) = scrape(addr) {
            assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
            if done(&body) {
                return body;
            }
            last = body;
        }
        thread::sleep(Duration::from_millis(250));
    }
    panic!("no {what} at http://{addr}/metrics within {LIMIT:?}; last scrape:\n{last}");
}

/// Read a child's pipe to its end on a thread.
fn drain(mut r: impl std::io::Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Wait for `proc` to exit: every command here has an `--overall-timeout` of its own (or
/// ends with its stdin), and nextest stops a test that hangs.
fn wait(proc: &mut Proc) -> std::process::ExitStatus {
    proc.0.wait().expect("wait")
}

#[test]
fn a_crawl_is_scraped_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (_net, boot, _) = testnet(
        &["--nodes", "4", "--torrents", "3", "--base-ip", "127.0.93"],
        &dir.path().join("testnet.json"),
    );
    let metrics = free_tcp("127.0.94.2");
    let peers_file = dir.path().join("peers.csv");
    let metrics_arg = metrics.to_string();
    // Over 10 s, so that one plain progress line is due (stderr is a pipe).
    let child = Command::new(BIN)
        .args(["crawl", "--bootstrap", &boot, "--bind", "127.0.94.1:0"])
        .args(["--metrics", &metrics_arg, "--allow-private"])
        .args(["--max-infohashes", "0", "--overall-timeout", "13"])
        .arg("--peers-file")
        .arg(&peers_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start estudely crawl");
    let mut crawl = Proc(child);
    let out = drain(crawl.0.stdout.take().unwrap());
    let err = drain(crawl.0.stderr.take().unwrap());

    let body = scrape_until(metrics, "infohashes and queries", |b| {
        sum(b, "estudely_queries_sent_total") > 0.0
            && value(b, "estudely_infohashes_total").is_some_and(|n| n > 0.0)
    });
    assert!(
        value(
            &body,
            "estudely_queries_sent_total{method=\"sample_infohashes\"}"
        )
        .is_some_and(|n| n > 0.0),
        "{body}"
    );
    assert!(
        value(&body, "estudely_query_outcomes_total{outcome=\"reply\"}").is_some_and(|n| n > 0.0),
        "{body}"
    );
    assert!(sum(&body, "estudely_known_nodes") > 0.0, "{body}");
    assert!(
        body.contains("# TYPE estudely_queries_sent_total counter"),
        "{body}"
    );
    // A crawl fetches no metadata: no failure reasons.
    assert!(!body.contains("estudely_metadata_failed_total"), "{body}");
    // Another path is not served.
    let mut s = TcpStream::connect(metrics).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 404 "), "{text}");

    let status = wait(&mut crawl);
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "{status}: {stderr}");
    assert!(stdout.lines().count() > 1, "rows: {stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.last().is_some_and(|l| l.starts_with("crawl: ")),
        "the summary comes last: {stderr}"
    );
    let progress: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("crawl progress: "))
        .collect();
    assert_eq!(progress.len(), 1, "one plain line in 13 s: {stderr}");
    assert!(progress[0].contains(" infohashes, "), "{stderr}");
}

#[test]
fn metadata_failures_are_scraped_by_reason() {
    // Nothing listens there: the attempt is refused at once.
    let closed = free_tcp("127.0.94.3");
    let metrics = free_tcp("127.0.94.2");
    let metrics_arg = metrics.to_string();
    let child = Command::new(BIN)
        .args([
            "metadata",
            "-",
            "--allow-private",
            "--metrics",
            &metrics_arg,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start estudely metadata");
    let mut metadata = Proc(child);
    let out = drain(metadata.0.stdout.take().unwrap());
    let err = drain(metadata.0.stderr.take().unwrap());
    let mut stdin = metadata.0.stdin.take().unwrap();
    let ih = "ab".repeat(20);
    writeln!(stdin, "infohash,peer_ip,peer_port").unwrap();
    writeln!(stdin, "{ih},{},{}", closed.ip(), closed.port()).unwrap();
    stdin.flush().unwrap();

    // stdin stays open: the command is still running while it is scraped.
    let body = scrape_until(metrics, "a refused attempt", |b| {
        value(b, "estudely_metadata_failed_total{reason=\"refused\"}") == Some(1.0)
    });
    assert_eq!(
        value(&body, "estudely_metadata_infohashes_total"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        value(&body, "estudely_metadata_fetched_total"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        sum(&body, "estudely_metadata_failed_total"),
        1.0,
        "only the reason that happened: {body}"
    );
    drop(stdin);
    let status = wait(&mut metadata);
    let (_, stderr) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(
        stderr, "metadata: 0/1 infohashes, 1 attempt: 0 ok, 1 refused\n",
        "a short run prints no progress line"
    );
}

#[test]
fn a_metrics_address_in_use_is_a_usage_error() {
    let taken = TcpListener::bind("127.0.94.4:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let peers_file = dir.path().join("peers.csv");
    let out = Command::new(BIN)
        .args([
            "crawl",
            "--bootstrap",
            "127.0.94.9:9",
            "--bind",
            "127.0.94.4:0",
        ])
        .args(["--metrics", &addr])
        .arg("--peers-file")
        .arg(&peers_file)
        .stdin(Stdio::null())
        .output()
        .expect("run estudely crawl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("`{addr}`")), "{stderr}");
    assert!(out.stdout.is_empty());
}
