//! Headless chromium for the web UI tests: the DOM of a page after it loaded
//! ([`dump_dom`]), a phone-width screenshot ([`screenshot`]), a few helpers to read the
//! serialised DOM without an HTML parser, and ([`http`]) a minimal HTTP/1.1 GET client over
//! `std::net::TcpStream` for the API tests.
//!
//! Chromium runs with a fresh profile and every background service off, its host resolver
//! mapping every host but 127.x.x.x to "not found" (pages are loaded by loopback IP or `file://`), so it
//! opens no connection off the machine. A run that hangs is killed (with its child
//! processes) after [`HANG`]: a guard, not a property under test.
//!
//! Without a `chromium` binary, [`require`] returns `None` (the caller skips, saying so)
//! unless `ESTUDELY_REQUIRE_CHROMIUM` is set (as `scripts/test` does): then it panics.
#![allow(dead_code)] // each test file uses a different subset

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one chromium run may take before it is killed.
pub const HANG: Duration = Duration::from_secs(60);

/// The chromium binary on `PATH`, if any.
pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The chromium binary; `None` (after saying that `test` is skipped) when there is none and
/// `ESTUDELY_REQUIRE_CHROMIUM` is unset; a panic when it is set.
pub fn require(test: &str) -> Option<PathBuf> {
    if let Some(bin) = binary() {
        return Some(bin);
    }
    if std::env::var_os("ESTUDELY_REQUIRE_CHROMIUM").is_some() {
        panic!("{test}: no chromium on PATH, and ESTUDELY_REQUIRE_CHROMIUM is set (scripts/test installs it)");
    }
    eprintln!(
        "SKIPPED {test}: no chromium on PATH (install Debian's `chromium`, or run scripts/test; \
         set ESTUDELY_REQUIRE_CHROMIUM=1 to fail instead of skipping)"
    );
    None
}

/// The flags of every run: headless, a fresh profile in `profile`, nothing in the
/// background, no name resolution (so no connection to anything but an IP literal).
fn base_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-breakpad",
        "--disable-dev-shm-usage",
        "--metrics-recording-only",
        "--safebrowsing-disable-auto-update",
        "--disable-features=OptimizationHints,MediaRouter,Translate,DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.*",
        "--mute-audio",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// What one chromium run printed.
pub struct Output {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Run chromium with the base flags and `args`, in its own process group (killed whole after
/// [`HANG`]); panic if it hung.
pub fn run(args: &[String]) -> Output {
    use std::os::unix::process::CommandExt as _;
    let bin = binary().expect("chromium on PATH");
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut child = Command::new(bin)
        .args(base_args(profile.path()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start chromium");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = thread::spawn(move || {
        let mut o = Vec::new();
        let _ = out.read_to_end(&mut o);
        o
    });
    let err_reader = thread::spawn(move || {
        let mut e = Vec::new();
        let _ = err.read_to_end(&mut e);
        e
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break Some(s);
        }
        if started.elapsed() > HANG {
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    // Its helpers (zygote, renderer) are in its process group: stop whatever is left.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
    let stdout = reader.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let Some(status) = status else {
        panic!("chromium {args:?} still running after {HANG:?}: killed\n{stderr}");
    };
    Output {
        success: status.success(),
        stdout,
        stderr,
    }
}

/// The DOM of `url` after it loaded, serialised (`--dump-dom`).
pub fn dump_dom(url: &str) -> String {
    let out = run(&["--dump-dom".to_owned(), url.to_owned()]);
    let dom = String::from_utf8(out.stdout).expect("the DOM is UTF-8");
    assert!(
        out.success && dom.contains("<html"),
        "chromium --dump-dom {url}: no DOM\n{}",
        out.stderr
    );
    dom
}

/// A screenshot of `url` at phone size (390 × 844), as PNG bytes.
pub fn screenshot(url: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a directory");
    let file = dir.path().join("shot.png");
    let out = run(&[
        format!("--screenshot={}", file.display()),
        "--window-size=390,844".to_owned(),
        url.to_owned(),
    ]);
    let png = std::fs::read(&file).unwrap_or_default();
    assert!(
        out.success && !png.is_empty(),
        "chromium --screenshot {url}: no file\n{}",
        out.stderr
    );
    png
}

/// Undo the entity escaping of serialised HTML text and attribute values.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text of an HTML fragment: tags dropped, entities decoded.
pub fn text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        rest = match rest[i..].find('>') {
            Some(j) => &rest[i + j + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    unescape(&out)
}

/// One element of a serialised DOM: its start tag and its inner HTML.
#[derive(Debug, Clone)]
pub struct Element {
    /// The tag name, lower case.
    pub tag: String,
    /// The start tag, `<tag ...>`.
    pub start: String,
    /// Everything between the start and the end tag.
    pub inner: String,
}

impl Element {
    /// The decoded value of attribute `name` (written `name="..."`, as chromium
    /// serialises).
    pub fn attr(&self, name: &str) -> Option<String> {
        let pat = format!(" {name}=\"");
        let i = self.start.find(&pat)? + pat.len();
        let j = self.start[i..].find('"')?;
        Some(unescape(&self.start[i..i + j]))
    }

    /// Its text.
    pub fn text(&self) -> String {
        text(&self.inner)
    }
}

/// The element whose start tag begins at byte `at` of `dom`.
fn element_at(dom: &str, at: usize) -> Element {
    let rest = &dom[at + 1..];
    let tag: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect::<String>()
        .to_ascii_lowercase();
    let start_end = at + dom[at..].find('>').expect("a closed start tag") + 1;
    let start = dom[at..start_end].to_owned();
    let void = [
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr",
    ];
    if void.contains(&tag.as_str()) || start.ends_with("/>") {
        return Element {
            tag,
            start,
            inner: String::new(),
        };
    }
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut depth = 1;
    let mut pos = start_end;
    loop {
        let next_close = dom[pos..]
            .find(&close)
            .map(|i| pos + i)
            .unwrap_or_else(|| panic!("no {close} for {start}"));
        let next_open = dom[pos..next_close]
            .match_indices(&open)
            .find_map(|(i, _)| {
                let after = dom.as_bytes().get(pos + i + open.len()).copied();
                matches!(after, Some(b' ' | b'>' | b'/' | b'\n' | b'\t')).then_some(pos + i)
            });
        match next_open {
            Some(o) => {
                depth += 1;
                pos = o + open.len();
            }
            None => {
                depth -= 1;
                if depth == 0 {
                    return Element {
                        tag,
                        start,
                        inner: dom[start_end..next_close].to_owned(),
                    };
                }
                pos = next_close + close.len();
            }
        }
    }
}

/// The element with `id`, if any.
pub fn by_id(dom: &str, id: &str) -> Option<Element> {
    let pat = format!(" id=\"{id}\"");
    let i = dom.find(&pat)?;
    let at = dom[..i].rfind('<')?;
    Some(element_at(dom, at))
}

/// Every element whose start tag begins with `prefix` (e.g. `<li class="file"`), in order.
pub fn all(dom: &str, prefix: &str) -> Vec<Element> {
    dom.match_indices(prefix)
        .map(|(i, _)| element_at(dom, i))
        .collect()
}

/// The text of the `<title>` element.
pub fn title(dom: &str) -> String {
    let i = dom.find("<title>").expect("a <title>");
    element_at(dom, i).text()
}

/// A minimal HTTP/1.1 GET client over `std::net::TcpStream`, one request per connection.
pub mod http {
    use std::io::{Read as _, Write as _};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    use base64::Engine as _;

    /// A response.
    #[derive(Debug)]
    pub struct Response {
        pub status: u16,
        /// Header names lower case, in order.
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Response {
        /// The first header `name` (any case).
        pub fn header(&self, name: &str) -> Option<&str> {
            let name = name.to_ascii_lowercase();
            self.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        }

        /// The body as text.
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        /// The body as JSON; panics (showing it) if it is not.
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
        }
    }

    /// `GET path` from `addr`, with basic authentication when `auth` is `(user, pass)`.
    /// The read time limit only guards against a hang.
    pub fn get(addr: SocketAddr, path: &str, auth: Option<(&str, &str)>) -> Response {
        try_get(addr, path, auth).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
    }

    /// [`get`], returning the error (e.g. connection refused) instead of panicking.
    pub fn try_get(
        addr: SocketAddr,
        path: &str,
        auth: Option<(&str, &str)>,
    ) -> std::io::Result<Response> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if let Some((u, p)) = auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        parse(&raw).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Parse a whole response (read until the server closed).
    pub fn parse(raw: &[u8]) -> Result<Response, String> {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no end of headers")?;
        let head = std::str::from_utf8(&raw[..end]).map_err(|e| e.to_string())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().ok_or("empty response")?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = raw[end + 4..].to_vec();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        if chunked {
            body = dechunk(&body)?;
        } else if let Some((_, len)) = headers.iter().find(|(n, _)| n == "content-length") {
            let len: usize = len.parse().map_err(|_| "bad content-length")?;
            if body.len() < len {
                return Err(format!("body cut short: {} of {len} bytes", body.len()));
            }
            body.truncate(len);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        loop {
            let eol = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
            let size_text = std::str::from_utf8(&b[..eol]).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .map_err(|_| format!("bad chunk size {size_text:?}"))?;
            b = &b[eol + 2..];
            if size == 0 {
                return Ok(out);
            }
            if b.len() < size + 2 {
                return Err("chunk cut short".into());
            }
            out.extend_from_slice(&b[..size]);
            b = &b[size + 2..];
        }
    }
}
