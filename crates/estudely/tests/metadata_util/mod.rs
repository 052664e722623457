//! Shared by the `metadata_*` tests: running the binary with bounded waits, libtorrent
//! helper processes killed on drop, and in-test peers (good and hostile) on tokio.
#![allow(dead_code)]

pub mod clients;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use estudely_peer_wire::{parse_frame, ExtHandshake, Handshake, Message, MetadataMsg, Reserved};
use serde_json::Value;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const BIN: &str = env!("CARGO_BIN_EXE_estudely");
pub const INTEROP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop");

/// What a run of the binary left behind.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// Peak resident set size (VmHWM of `/proc/PID/status`, sampled every 20 ms while it
    /// ran), in KiB; `None` if it could not be read even once.
    pub peak_rss_kib: Option<u64>,
}

impl Run {
    /// The peak resident set size in KiB. Panics when `/proc/PID/status` could not be read
    /// while the process ran: a memory bound that cannot be measured fails, it never passes.
    pub fn peak_rss_kib(&self) -> u64 {
        self.peak_rss_kib.unwrap_or_else(|| {
            panic!(
                "could not read VmHWM from /proc/PID/status while the process ran \
                 (is /proc mounted and readable?): the memory bound cannot be checked"
            )
        })
    }
}

/// A child process killed (and reaped) when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn drain(mut r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// Run `estudely ARGS` with `stdin`, killing it after `limit`.
pub fn run_cli(args: &[&str], stdin: Option<&[u8]>, limit: Duration) -> Run {
    let start = Instant::now();
    let child = Command::new(BIN)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn estudely");
    let mut g = Guard(child);
    if let Some(input) = stdin {
        let mut w = g.0.stdin.take().unwrap();
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    let out = drain(g.0.stdout.take().unwrap());
    let err = drain(g.0.stderr.take().unwrap());
    let status_path = format!("/proc/{}/status", g.0.id());
    let mut peak: Option<u64> = None;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = Some(peak.map_or(kib, |p| p.max(kib)));
            }
        }
        if let Some(status) = g.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < limit,
            "estudely {args:?} still running after {limit:?}"
        );
        thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let stdout = out.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    let stderr = err.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    Run {
        status,
        stdout,
        stderr,
        elapsed,
        peak_rss_kib: peak,
    }
}

/// A python3 helper under `interop/` that prints one JSON ready line; told to `quit`, then
/// killed, when dropped.
pub struct PyHelper {
    guard: Guard,
    stdin: Option<ChildStdin>,
    pub ready: Value,
}

impl PyHelper {
    pub fn start(script: &str, args: &[&str]) -> PyHelper {
        let child = Command::new("python3")
            .arg(format!("{INTEROP}/{script}"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be installed");
        let mut guard = Guard(child);
        let stdout = guard.0.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(40)) {
            Ok(Some(Ok(line))) => line,
            other => panic!("{script} gave no ready line ({other:?}): is libtorrent installed?"),
        };
        let ready: Value = serde_json::from_str(&line).expect("ready line is JSON");
        assert_eq!(ready["ready"], true, "{ready}");
        let stdin = guard.0.stdin.take();
        PyHelper {
            guard,
            stdin,
            ready,
        }
    }
}

impl Drop for PyHelper {
    fn drop(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = writeln!(s, "quit");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.guard.0.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        // Guard's drop kills it.
    }
}

/// `python3 interop/lt_seeders.py inspect FILES...`: libtorrent's view of .torrent files.
pub fn lt_inspect(files: &[String]) -> Vec<Value> {
    let out = Command::new("python3")
        .arg(format!("{INTEROP}/lt_seeders.py"))
        .arg("inspect")
        .args(files)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn sha1(b: &[u8]) -> [u8; 20] {
    Sha1::digest(b).into()
}

/// A valid single-file v1 info dict spanning two 16 KiB metadata pieces.
pub fn info_dict(name: &str) -> Vec<u8> {
    let pieces: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut d = format!(
        "d6:lengthi1000000e4:name{}:{name}12:piece lengthi16384e6:pieces{}:",
        name.len(),
        pieces.len()
    )
    .into_bytes();
    d.extend_from_slice(&pieces);
    d.push(b'e');
    d
}

/// How an in-test peer behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Serves the real info dict.
    Good,
    /// Announces `metadata_size` 2^40.
    BigSize,
    /// Serves valid pieces of a different info dict.
    WrongHash,
    /// Sends its handshake one byte every 5 s.
    SlowHandshake,
    /// Handshakes, then sends each metadata piece one byte every 200 ms.
    SlowPiece,
    /// Handshakes, then sends a length prefix of 0xFFFFFFFF.
    HugeFrame,
    /// Rejects every metadata request.
    Rejecter,
    /// Answers with another infohash in its handshake.
    OtherInfohash,
    /// Accepts the connection and closes it at once.
    AcceptClose,
    /// Handshakes without the extension-protocol bit.
    NoExtensions,
}

/// In-test peers, each on its own listener, run by a tokio runtime on a thread of their own.
pub struct FakePeers {
    pub addrs: Vec<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakePeers {
    /// One listener per behaviour, on `ip` (any free port), serving `info`.
    pub fn start(ip: &str, behaviours: &[Behaviour], info: Vec<u8>) -> FakePeers {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let behaviours = behaviours.to_vec();
        let ip = ip.to_owned();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let info = Arc::new(info);
                let other = Arc::new(info_dict("some other torrent"));
                let mut addrs = Vec::new();
                for b in behaviours {
                    let l = TcpListener::bind((ip.as_str(), 0)).await.unwrap();
                    addrs.push(l.local_addr().unwrap());
                    let (info, other) = (Arc::clone(&info), Arc::clone(&other));
                    tokio::spawn(async move {
                        while let Ok((s, _)) = l.accept().await {
                            let (info, other) = (Arc::clone(&info), Arc::clone(&other));
                            tokio::spawn(async move {
                                let _ = serve(s, b, &info, &other).await;
                            });
                        }
                    });
                }
                addr_tx.send(addrs).unwrap();
                let _ = stopped.await;
            });
        });
        let addrs = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fake peers up");
        FakePeers {
            addrs,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for FakePeers {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const OUR_UT: u8 = 3;

async fn serve(mut s: TcpStream, b: Behaviour, info: &[u8], other: &[u8]) -> std::io::Result<()> {
    if b == Behaviour::AcceptClose {
        return Ok(());
    }
    let mut hs = [0u8; 68];
    s.read_exact(&mut hs).await?;
    let theirs = Handshake::parse(&hs).ok().flatten().expect("a handshake");
    let mut reserved = Reserved::default();
    reserved.set_extensions(b != Behaviour::NoExtensions);
    let ours = Handshake {
        reserved,
        info_hash: if b == Behaviour::OtherInfohash {
            [0xee; 20]
        } else {
            theirs.info_hash
        },
        peer_id: *b"-XX0001-hostilepeer!",
    };
    if b == Behaviour::SlowHandshake {
        for byte in ours.encode() {
            s.write_all(&[byte]).await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
    s.write_all(&ours.encode()).await?;
    let served = if b == Behaviour::WrongHash {
        other
    } else {
        info
    };
    let ext = ExtHandshake {
        ut_metadata: Some(OUR_UT),
        metadata_size: Some(if b == Behaviour::BigSize {
            1 << 40
        } else {
            served.len() as u64
        }),
        client: Some(format!("fake {b:?}")),
        ..ExtHandshake::default()
    };
    let mut out = Vec::new();
    Message::Extended {
        id: 0,
        payload: &ext.to_bytes(),
    }
    .encode(&mut out)
    .unwrap();
    if b == Behaviour::HugeFrame {
        out.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 20, 3]);
    }
    s.write_all(&out).await?;
    // Answer metadata requests until the client goes away.
    let mut their_ut = None;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut replies = Vec::new();
        let mut at = 0;
        while let Some((msg, used)) = parse_frame(&buf[at..], 1 << 20).expect("client frames") {
            at += used;
            let Message::Extended { id, payload } = msg else {
                continue;
            };
            if id == 0 {
                their_ut = ExtHandshake::decode(payload).unwrap().ut_metadata;
                continue;
            }
            let Some(MetadataMsg::Request { piece }) = MetadataMsg::decode(payload).unwrap() else {
                continue;
            };
            let reply = if b == Behaviour::Rejecter {
                MetadataMsg::Reject { piece }.to_bytes()
            } else {
                let from = piece as usize * 16384;
                let data = &served[from.min(served.len())..(from + 16384).min(served.len())];
                MetadataMsg::Data {
                    piece,
                    total_size: served.len() as u64,
                    data,
                }
                .to_bytes()
            };
            let id = their_ut.expect("extended handshake first");
            Message::Extended {
                id,
                payload: &reply,
            }
            .encode(&mut replies)
            .unwrap();
        }
        buf.drain(..at);
        if b == Behaviour::SlowPiece {
            for byte in replies {
                s.write_all(&[byte]).await?;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        } else {
            s.write_all(&replies).await?;
        }
    }
}
