//! The PostgreSQL I/O thread: one per process while any connection is open, none otherwise.
//!
//! Every connection's task runs on it ([`super::client`]). It is a thread of our own that
//! drives a current-thread Tokio runtime, started by the first connection and stopped and
//! joined when the last one closes, so that nothing is left running once the index is
//! closed: a Python notebook that searched an index and then pressed Ctrl-C on a crawl
//! finds no thread of ours behind (the package's tests check exactly that).

use std::future::Future;
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The running I/O thread, and how many connections use it.
struct Io {
    handle: Handle,
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
    users: usize,
}

/// The I/O thread, while one runs.
static IO: Mutex<Option<Io>> = Mutex::new(None);

/// A use of the I/O thread (a connection's): it runs while one exists.
pub struct IoRef(Handle);

impl IoRef {
    /// Use the I/O thread, starting it if none runs.
    pub fn acquire() -> std::io::Result<IoRef> {
        let mut io = IO.lock().unwrap_or_else(|e| e.into_inner());
        if io.is_none() {
            *io = Some(start()?);
        }
        let Some(running) = io.as_mut() else {
            unreachable!("started just above")
        };
        running.users += 1;
        Ok(IoRef(running.handle.clone()))
    }

    /// Wait for `f` on this thread (the I/O thread drives the sockets meanwhile). Must not
    /// be called from inside an asynchronous task: it panics there, as Tokio's `block_on`.
    pub fn wait<F: Future>(&self, f: F) -> F::Output {
        self.0.block_on(f)
    }

    /// Run `f` on the I/O thread (a connection's task, or what needs its sockets).
    pub fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.spawn(f)
    }
}

impl Drop for IoRef {
    /// The last use gone, the thread is stopped and joined.
    fn drop(&mut self) {
        let last = {
            let mut io = IO.lock().unwrap_or_else(|e| e.into_inner());
            match io.as_mut() {
                Some(running) if running.users > 1 => {
                    running.users -= 1;
                    None
                }
                _ => io.take(),
            }
        };
        if let Some(io) = last {
            let _ = io.stop.send(());
            let _ = io.thread.join();
        }
    }
}

/// Start the thread; its runtime's handle once it runs.
fn start() -> std::io::Result<Io> {
    let (ready, started) = mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("estudely-pg".into())
        .spawn(move || {
            let rt = match Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let _ = ready.send(Ok(rt.handle().clone()));
            // Drives every connection's task until told to stop (the last one has ended).
            rt.block_on(async move {
                let _ = stopped.await;
            });
        })?;
    let handle = match started.recv() {
        Ok(Ok(handle)) => handle,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(std::io::Error::other(format!(
                "cannot start PostgreSQL's I/O thread: {e}"
            )));
        }
        Err(_) => {
            let _ = thread.join();
            return Err(std::io::Error::other(
                "PostgreSQL's I/O thread ended at start",
            ));
        }
    };
    Ok(Io {
        handle,
        stop,
        thread,
        users: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim() == name)
            .count()
    }

    /// The thread runs while a use exists, serves spawned work, and is joined with the
    /// last use: none is left behind.
    #[test]
    fn the_thread_lives_exactly_as_long_as_its_uses() {
        let a = IoRef::acquire().unwrap();
        let b = IoRef::acquire().unwrap();
        assert_eq!(threads_named("estudely-pg"), 1);
        assert_eq!(a.wait(b.spawn(async { 40 + 2 })).unwrap(), 42);
        drop(a);
        assert_eq!(threads_named("estudely-pg"), 1, "one use is left");
        drop(b);
        assert_eq!(threads_named("estudely-pg"), 0, "the last use joined it");
        // And it starts again when needed.
        let c = IoRef::acquire().unwrap();
        assert_eq!(c.wait(c.spawn(async { 7 })).unwrap(), 7);
        drop(c);
        assert_eq!(threads_named("estudely-pg"), 0);
    }
}
