//! A command running on a Rust thread of its own, its output lines read from Python.
//!
//! The command writes what the CLI would print on stdout into a [`LineWriter`], which hands
//! each complete line to a bounded channel (a full channel holds the command back, as a
//! pipe nobody reads would). Python reads the lines by iterating over the [`Task`]: it waits
//! in slices of [`SLICE`] detached from the interpreter (other Python threads run meanwhile),
//! and between slices runs the signal handlers, so that Ctrl-C raises `KeyboardInterrupt`
//! in the waiting thread. When it does, or on [`Task::close`], the command is told to stop
//! through its [`StopFlag`] (as Ctrl-C tells the CLI), the rest of its output is drained
//! and its thread joined: no thread is left behind.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::Duration;

use estudely::crawl::setup::{StopFlag, StopOn};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors::{command_error, EstudelyError};

/// How long a waiting Python thread stays detached before it looks at its signals.
const SLICE: Duration = Duration::from_millis(50);

/// Lines the command may write ahead of the reader.
const LINES_BUFFERED: usize = 4_096;

/// What a task hands to Python: a line of output, or a chunk of rows (JSON objects) that
/// Python gets as columns.
pub enum Item {
    /// One line the command wrote, without its newline.
    Line(String),
    /// Rows, each a JSON object (the index's JSON views).
    Rows(Vec<serde_json::Value>),
    /// Torrents of the index as columns (Arrow's layouts).
    Columns(Box<crate::columns::Chunk>),
}

/// A command's stdout: complete lines go to the task's channel.
pub struct LineWriter {
    tx: SyncSender<Item>,
    partial: Vec<u8>,
}

impl LineWriter {
    fn send(&self, line: &[u8]) -> io::Result<()> {
        let text = String::from_utf8_lossy(line).into_owned();
        self.send_item(Item::Line(text))
    }

    /// Hand a chunk of rows to Python (waiting while the reader is a chunk behind).
    pub fn send_rows(&self, rows: Vec<serde_json::Value>) -> io::Result<()> {
        self.send_item(Item::Rows(rows))
    }

    /// Hand a chunk of columns to Python (waiting while the reader is a chunk behind).
    pub fn send_columns(&self, chunk: Box<crate::columns::Chunk>) -> io::Result<()> {
        self.send_item(Item::Columns(chunk))
    }

    fn send_item(&self, item: Item) -> io::Result<()> {
        // The reader is gone (the task was dropped or closed): as for a closed pipe.
        self.tx
            .send(item)
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.send(&line[..end])?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        // The last line, if the command did not end it.
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            let _ = self.send(&line);
        }
    }
}

/// How a command's thread ended.
enum Outcome {
    /// It returned Ok, or was stopped.
    Done,
    /// It returned an error.
    Failed(anyhow::Error),
    /// It panicked (a bug): the panic's message.
    Panicked(String),
}

/// Run `job` on a thread named `estudely-NAME`, given the writer of its stdout and what
/// stops it.
pub fn spawn<F>(name: &str, job: F) -> PyResult<Task>
where
    F: FnOnce(LineWriter, StopOn) -> anyhow::Result<()> + Send + 'static,
{
    spawn_buffered(name, LINES_BUFFERED, job)
}

/// [`spawn`] with room for `buffered` items ahead of the reader (1 for chunks of rows).
pub fn spawn_buffered<F>(name: &str, buffered: usize, job: F) -> PyResult<Task>
where
    F: FnOnce(LineWriter, StopOn) -> anyhow::Result<()> + Send + 'static,
{
    let (tx, rx) = sync_channel(buffered);
    let (flag, stop) = StopOn::flag();
    let ended = Arc::new(AtomicBool::new(false));
    let ended_by_thread = Arc::clone(&ended);
    let writer = LineWriter {
        tx,
        partial: Vec::new(),
    };
    let thread = std::thread::Builder::new()
        .name(format!("estudely-{name}"))
        .spawn(move || {
            let outcome =
                match std::panic::catch_unwind(AssertUnwindSafe(move || job(writer, stop))) {
                    Ok(Ok(())) => Outcome::Done,
                    Ok(Err(e)) => Outcome::Failed(e),
                    Err(payload) => Outcome::Panicked(panic_message(payload.as_ref())),
                };
            ended_by_thread.store(true, Ordering::Release);
            outcome
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?;
    Ok(Task {
        stop: flag,
        ended,
        inner: Mutex::new(Inner {
            name: name.to_owned(),
            rx: Some(rx),
            thread: Some(thread),
            outcome: None,
        }),
    })
}

/// Run an async command on a current-thread tokio runtime, as the binary does.
pub fn block_on<T, F: std::future::Future<Output = anyhow::Result<T>>>(f: F) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(f);
    // Do not wait for a resolver thread stuck on an unreachable DNS server.
    rt.shutdown_background();
    result
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// A command running on its own thread: iterate to read its output lines (`str`), or its
/// chunks of rows (`dict` of column lists), as it writes them. Iteration ends when the
/// command does, raising its error if it failed.
#[pyclass(module = "estudely._native")]
pub struct Task {
    /// Outside the lock: any thread may stop the command while another reads from it.
    stop: StopFlag,
    /// Set by the command's thread as it ends.
    ended: Arc<AtomicBool>,
    inner: Mutex<Inner>,
}

struct Inner {
    name: String,
    /// `None` only while a read waits detached, or once the task is closed.
    rx: Option<Receiver<Item>>,
    thread: Option<JoinHandle<Outcome>>,
    /// Set once the thread has been joined; its error is raised once, then `Done`.
    outcome: Option<Outcome>,
}

impl Inner {
    /// Wait up to [`SLICE`] for a line, detached from the interpreter.
    fn recv(&mut self, py: Python<'_>) -> Result<Item, RecvTimeoutError> {
        let Some(rx) = self.rx.take() else {
            return Err(RecvTimeoutError::Disconnected);
        };
        let (rx, got) = py.detach(move || {
            let got = rx.recv_timeout(SLICE);
            (rx, got)
        });
        self.rx = Some(rx);
        got
    }

    /// Join the thread, once it has ended (its channel is closed), and keep its outcome.
    fn join(&mut self, py: Python<'_>) {
        if let Some(thread) = self.thread.take() {
            let outcome = py.detach(move || thread.join());
            self.outcome = Some(outcome.unwrap_or_else(|p| Outcome::Panicked(panic_message(&*p))));
        }
        self.rx = None;
    }

    /// Tell the command to stop and wait for it, dropping what it writes meanwhile. Never
    /// interrupted by a signal: the thread must be joined.
    fn stop_and_join(&mut self, py: Python<'_>, stop: &StopFlag) {
        stop.stop();
        while !matches!(self.recv(py), Err(RecvTimeoutError::Disconnected)) {}
        self.join(py);
    }

    /// The outcome as a Python result, raised once.
    fn take_result(&mut self) -> PyResult<()> {
        match self.outcome.replace(Outcome::Done) {
            Some(Outcome::Failed(e)) => Err(command_error(&e)),
            Some(Outcome::Panicked(msg)) => Err(EstudelyError::new_err(format!(
                "{} failed: internal error: {msg}",
                self.name
            ))),
            Some(Outcome::Done) | None => Ok(()),
        }
    }
}

impl Task {
    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, Inner>> {
        match self.inner.try_lock() {
            Ok(guard) => Ok(guard),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(PyRuntimeError::new_err(
                "this task is in use by another thread",
            )),
        }
    }
}

#[pymethods]
impl Task {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next line the command wrote (or chunk of rows); `StopIteration` when it has
    /// ended (its error raised first, if it failed). Ctrl-C while waiting stops the
    /// command, waits for it and raises `KeyboardInterrupt`.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut inner = self.lock()?;
        loop {
            if inner.thread.is_none() {
                return inner.take_result().map(|()| None);
            }
            match inner.recv(py) {
                Ok(item) => return item_to_py(py, item).map(Some),
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(interrupt) = py.check_signals() {
                        inner.stop_and_join(py, &self.stop);
                        return Err(interrupt);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => inner.join(py),
            }
        }
    }

    /// Tell the command to stop, as Ctrl-C tells the CLI; it ends soon after, writing what
    /// it has (keep iterating to read it). Returns at once.
    fn stop(&self) {
        self.stop.stop();
    }

    /// Stop the command (unless it has ended) and wait for its thread; lines not read yet
    /// are dropped. Raises the command's error if it failed and that was not raised yet.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut inner = self.lock()?;
        if inner.thread.is_some() {
            inner.stop_and_join(py, &self.stop);
        }
        inner.take_result()
    }

    /// Whether the command's thread is still running.
    #[getter]
    fn running(&self) -> bool {
        !self.ended.load(Ordering::Acquire)
    }
}

/// An item as Python sees it: a `str`, or a `dict` of columns.
fn item_to_py(py: Python<'_>, item: Item) -> PyResult<Bound<'_, PyAny>> {
    match item {
        Item::Line(line) => Ok(line.into_pyobject(py)?.into_any()),
        Item::Rows(rows) => Ok(crate::convert::columns(py, &rows)?.into_any()),
        Item::Columns(chunk) => Ok(chunk.into_py(py)?.into_any()),
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // Dropped unclosed: tell the command to stop and close its pipe; it ends by itself.
        self.stop.stop();
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        inner.rx = None;
    }
}
