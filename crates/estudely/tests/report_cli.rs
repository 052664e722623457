//! End to end: `estudely report` on files a user has (collect's CSV, export's JSONL) with
//! hostile names, and on a malformed file. (`--db` is tested with the index's read methods.)

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const COLLECT_HEADER: &str =
    "infohash,name,file_count,total_bytes,piece_length,peer_ip,peer_port,metadata_ok";
const SCRIPT: &str = "<script>alert(1)</script>";
/// A client-like string a hostile node could send, with markup, quotes and controls.
const CLIENT: &str = "LT\u{1b}[31m 2.0\"><img src=x onerror=alert(1)>]]>";

fn estudely(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_estudely"))
        .args(args)
        .output()
        .expect("run estudely")
}

fn hex(b: u8) -> String {
    format!("{b:02x}").repeat(20)
}

/// The `data-value` of the summary row `key`.
fn value(page: &str, key: &str) -> Option<u64> {
    let at = page.find(&format!("<tr data-key=\"{key}\">"))?;
    let rest = &page[at..];
    let v = &rest[rest.find("data-value=\"")? + 12..];
    v[..v.find('"')?].parse().ok()
}

/// Every `<figure class="chart" id="chart-...">` holds one non-empty `<svg>`; no raw `<script` or `<img`.
fn check_page(page: &str) {
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.contains("<script"), "unescaped <script");
    assert!(!page.contains("<img"), "unescaped <img");
    assert!(!page.contains('\u{1b}'));
    let figures: Vec<&str> = page
        .split("<figure class=\"chart\" id=\"chart-")
        .skip(1)
        .collect();
    assert_eq!(figures.len(), 7);
    for f in figures {
        let f = &f[..f.find("</figure>").expect("closed figure")];
        let svg = &f[f.find("<svg ").expect("an svg")..f.find("</svg>").expect("closed svg")];
        assert!(svg.contains("<title") && svg.len() > 200, "{f}");
    }
}

fn run_ok(args: &[&str]) -> String {
    let out = estudely(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    stderr
}

#[test]
fn report_from_a_collect_csv() {
    let dir = tempfile::tempdir().unwrap();
    // The input's own name is hostile too: it is shown on the page.
    let input = dir.path().join("run<b>.csv");
    let (a, b, c) = (hex(0xaa), hex(0xbb), hex(0xcc));
    fs::write(
        &input,
        format!(
            "{COLLECT_HEADER}\n\
             {a},\"{SCRIPT}\",2,3145728,262144,127.0.0.1,6881,True\n\
             {a},\"{SCRIPT}\",2,3145728,262144,::1,6882,True\n\
             {b},\"{CLIENT}\",1,2147483648,1048576,10.0.0.1,1,True\n\
             {c},,0,0,0,,,False\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("report.html");
    let stderr = run_ok(&[
        "report",
        "--csv",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(stderr.starts_with(&format!("wrote {}: 2 torrents, 3 files, ", out.display())));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let page = fs::read_to_string(&out).unwrap();
    check_page(&page);
    assert!(page.contains("run&lt;b&gt;.csv"));
    for (k, v) in [
        ("torrents", 2),
        ("files", 3),
        ("total_bytes", (3 << 20) + (2 << 30)),
        ("infohashes", 3),
        ("peers", 3),
        ("fetched", 2),
        ("no_peers", 1),
    ] {
        assert_eq!(value(&page, k), Some(v), "{k}");
    }
    // A CSV has no timeline, versions or clients.
    for id in ["discoveries", "versions", "clients", "intervals"] {
        let at = page
            .find(&format!("<figure class=\"chart\" id=\"chart-{id}\">"))
            .unwrap();
        let fig = &page[at..at + page[at..].find("</figure>").unwrap()];
        assert!(fig.contains(">no data<"), "{id}");
    }
    for id in ["outcomes", "sizes"] {
        let at = page
            .find(&format!("<figure class=\"chart\" id=\"chart-{id}\">"))
            .unwrap();
        let fig = &page[at..at + page[at..].find("</figure>").unwrap()];
        assert!(fig.contains("<rect class=\"bar\""), "{id}");
    }
}

#[test]
fn report_from_an_export_jsonl_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("index.jsonl");
    let line = |ih: String, name: &str, version: &str, at: i64, source: &str, peers: &str| {
        serde_json::json!({
            "infohash": ih, "infohash_v2": null, "name": name, "name_hex": "",
            "version": version, "file_count": 1, "total_bytes": 1000, "piece_length": 16384,
            "metadata_ok": true, "private": false, "discovered": at, "last_seen": at,
            "source": source, "files": [], "files_omitted": 0,
            "peers": serde_json::from_str::<serde_json::Value>(peers).unwrap(),
        })
        .to_string()
    };
    let text = [
        line(
            hex(1),
            SCRIPT,
            "v1",
            1_714_521_600,
            "sample",
            "[\"1.2.3.4:5\"]",
        ),
        line(hex(2), CLIENT, "hybrid", 1_714_525_200, "announce", "[]"),
        line(
            hex(3),
            "x",
            "v2",
            1_714_528_800,
            "get_peers",
            "[\"[::1]:1\", \"1.1.1.1:2\"]",
        ),
    ]
    .join("\n");
    fs::write(&input, text + "\n").unwrap();
    let out = estudely(&["report", "--jsonl", input.to_str().unwrap(), "-o", "-"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = String::from_utf8(out.stdout).unwrap();
    check_page(&page);
    assert_eq!(value(&page, "torrents"), Some(3));
    assert_eq!(value(&page, "peers"), Some(3));
    for v in ["v1", "v2", "hybrid"] {
        assert_eq!(value(&page, v), Some(1), "{v}");
    }
    let at = page
        .find("<figure class=\"chart\" id=\"chart-discoveries\">")
        .unwrap();
    let fig = &page[at..at + page[at..].find("</figure>").unwrap()];
    assert_eq!(fig.matches("<rect class=\"bar\"").count(), 3);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("wrote stdout: 3 torrents"));
}

#[test]
fn report_from_a_crawl_csv_on_stdin() {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_estudely"))
        .args(["report", "--csv", "-", "-o", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run estudely");
    let text = format!(
        "infohash,peer_ip,peer_port\n{a},1.2.3.4,5\n{a},::1,6\n{b},1.2.3.4,5\n",
        a = hex(1),
        b = hex(2)
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = String::from_utf8(out.stdout).unwrap();
    check_page(&page);
    assert!(page.contains("<code id=\"input\">stdin</code>"));
    assert_eq!(value(&page, "infohashes"), Some(2));
    assert_eq!(value(&page, "peers"), Some(3));
    assert_eq!(value(&page, "torrents"), None, "a crawl has no metadata");
}

#[test]
fn report_of_a_malformed_row_is_a_usage_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.csv");
    fs::write(
        &input,
        format!(
            "{COLLECT_HEADER}\n{},,0,0,0,,,True\nnot-hex,,0,0,0,,,True\n",
            hex(1)
        ),
    )
    .unwrap();
    let out_path = dir.path().join("report.html");
    let out = estudely(&[
        "report",
        "--csv",
        input.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3: bad infohash", input.display())),
        "{stderr}"
    );
    assert!(!out_path.exists());
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "a temp file left"
    );

    // Exactly one input, and an output.
    for args in [
        &["report", "-o", "x.html"][..],
        &["report", "--csv", "a", "--jsonl", "b", "-o", "x.html"],
        &["report", "--csv", "a"],
    ] {
        assert_eq!(estudely(args).status.code(), Some(2), "{args:?}");
    }
    let missing = dir.path().join("missing.csv");
    let out = estudely(&["report", "--csv", missing.to_str().unwrap(), "-o", "-"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!Path::new("-").exists());
}
