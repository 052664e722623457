//! The PostgreSQL client: asynchronous `tokio-postgres`, every connection driven by one
//! I/O thread shared by the whole process, and a blocking face for the [`Store`](crate::Store)
//! trait.
//!
//! Why not the synchronous `postgres` crate: it builds a Tokio runtime inside each client and
//! drives the connection only while a call blocks on it. Inside a Tokio application (`run`,
//! `serve`, the Python package) that is a runtime inside the runtime: closing a client may not
//! happen on a Tokio thread (the web pool had to drop its connections on a thread of their
//! own), and a connection the server closed while idle is noticed only at its next query.
//!
//! Here each connection's task runs on the I/O thread (`postgres/io.rs`: one while any
//! connection is open, joined with the last) from connect to close, so a server
//! that goes away is seen at once ([`Client::is_closed`]) and a client can be dropped on any
//! thread, runtime or not. [`Client::inner`] is the asynchronous client itself, whose queries
//! can be awaited from any executor (they only talk to the connection task through
//! channels). The blocking methods ([`Client::query`], [`Transaction::commit`], ...) have the
//! names and signatures of the `postgres` crate's: they wait on the same futures, and must not
//! be called from inside an asynchronous task (as with that crate, they panic there); the
//! store calls them from its own thread, tokio's blocking pool, or the CLI's `main`.
//!
//! This face is written here rather than taken from the `postgres` crate because that crate's
//! is tied to its per-client runtime; it is a few dozen forwarding lines.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::io::IoRef;
pub use tokio_postgres::error::SqlState;
pub use tokio_postgres::types::ToSql;
pub use tokio_postgres::{Config, Error, IsolationLevel, Portal, Row, Statement};

/// Parameters of a statement.
type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// The statement methods of [`Client`] and [`Transaction`]: each waits on its inner
/// asynchronous one, with the statement from the connection's [`Cache`].
macro_rules! statements {
    () => {
        /// The statement `sql` names: prepared now, or earlier on this connection.
        fn statement<S: ?Sized + Sql>(&mut self, sql: &S) -> Result<Statement, Error> {
            let (inner, io) = (&self.inner, &self.io);
            sql.statement(&mut self.cache, |text| io.wait(inner.prepare(text)))
        }

        /// The rows of one statement.
        pub fn query<S: ?Sized + Sql>(
            &mut self,
            sql: &S,
            params: Params<'_>,
        ) -> Result<Vec<Row>, Error> {
            let st = self.statement(sql)?;
            self.io.wait(self.inner.query(&st, params))
        }

        /// The one row of a statement (an error if it returns none or several).
        pub fn query_one<S: ?Sized + Sql>(
            &mut self,
            sql: &S,
            params: Params<'_>,
        ) -> Result<Row, Error> {
            let st = self.statement(sql)?;
            self.io.wait(self.inner.query_one(&st, params))
        }

        /// The row of a statement, if any (an error if several).
        pub fn query_opt<S: ?Sized + Sql>(
            &mut self,
            sql: &S,
            params: Params<'_>,
        ) -> Result<Option<Row>, Error> {
            let st = self.statement(sql)?;
            self.io.wait(self.inner.query_opt(&st, params))
        }

        /// Run one statement; the rows it changed.
        pub fn execute<S: ?Sized + Sql>(
            &mut self,
            sql: &S,
            params: Params<'_>,
        ) -> Result<u64, Error> {
            let st = self.statement(sql)?;
            self.io.wait(self.inner.execute(&st, params))
        }

        /// Run statements separated by `;`, without parameters (nothing prepared).
        pub fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
            self.io.wait(self.inner.batch_execute(sql))
        }

        /// Prepare a statement (or take it from the connection's cache).
        pub fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
            self.statement(sql)
        }
    };
}

/// Most statements a connection keeps prepared; past that it forgets them all (statements
/// built with values in their text, if any, must not pile up on the server).
const CACHED: usize = 256;

/// The statements a connection has prepared, by their text.
///
/// A query given as text costs two round trips, one to prepare it and one to run it; the
/// store runs the same few dozen texts over and over (a claim, a lookup, a page's
/// queries), so each connection keeps what it prepared and runs it in one. Prepared
/// statements belong to the session, not to a transaction: one prepared in a transaction
/// that rolls back is still there.
#[derive(Default)]
pub struct Cache(HashMap<String, Statement>);

/// A statement to run: its text (prepared once per connection, see [`Cache`]) or one
/// prepared already.
pub trait Sql {
    /// The prepared statement, `prepare` making it if need be.
    fn statement(
        &self,
        cache: &mut Cache,
        prepare: impl FnOnce(&str) -> Result<Statement, Error>,
    ) -> Result<Statement, Error>;
}

impl Sql for str {
    fn statement(
        &self,
        cache: &mut Cache,
        prepare: impl FnOnce(&str) -> Result<Statement, Error>,
    ) -> Result<Statement, Error> {
        if let Some(st) = cache.0.get(self) {
            return Ok(st.clone());
        }
        let st = prepare(self)?;
        if cache.0.len() >= CACHED {
            cache.0.clear();
        }
        cache.0.insert(self.to_owned(), st.clone());
        Ok(st)
    }
}

impl Sql for String {
    fn statement(
        &self,
        cache: &mut Cache,
        prepare: impl FnOnce(&str) -> Result<Statement, Error>,
    ) -> Result<Statement, Error> {
        self.as_str().statement(cache, prepare)
    }
}

impl Sql for Statement {
    fn statement(
        &self,
        _: &mut Cache,
        _: impl FnOnce(&str) -> Result<Statement, Error>,
    ) -> Result<Statement, Error> {
        Ok(self.clone())
    }
}

/// A connection, its task on the I/O thread.
///
/// Dropping it closes the connection and waits (a second at most) until its task has
/// ended, as the synchronous client did: the server's last answers (to the statements the
/// client closes as it goes) are read and the connection ends cleanly, even when the
/// process exits right after, instead of the server finding the socket gone while it
/// writes ("could not send data to client").
pub struct Client {
    // Dropped first: that ends the connection's task.
    inner: tokio_postgres::Client,
    cache: Cache,
    // Then this waits for the task's end,
    _ended: Ended,
    // and then the I/O thread is let go (joined if this was its last connection).
    io: IoRef,
}

/// How long dropping a [`Client`] waits for its connection's task to end.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The end of a connection's task, which dropping it waits for.
struct Ended(mpsc::Receiver<()>);

impl Drop for Ended {
    fn drop(&mut self) {
        // Disconnected (the task is gone) or told: either way it has ended.
        let _ = self.0.recv_timeout(CLOSE_WAIT);
    }
}

impl Client {
    /// Connect as `config` says (no TLS: a unix socket or a trusted network).
    pub fn connect(config: &Config) -> Result<Client, anyhow::Error> {
        let io = IoRef::acquire()?;
        let config = config.clone();
        let (done, ended) = mpsc::sync_channel(1);
        // Connected on the I/O thread, whose runtime has the sockets and timers.
        let connecting = io.spawn(async move {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                // Its end (closed by us or by the server) is seen by the client's calls.
                let _ = connection.await;
                let _ = done.send(());
            });
            Ok::<_, Error>(client)
        });
        let connected = io
            .wait(connecting)
            .map_err(|e| anyhow::anyhow!("the connection attempt failed: {e}"))??;
        Ok(Client {
            inner: connected,
            cache: Cache::default(),
            _ended: Ended(ended),
            io,
        })
    }

    /// The asynchronous client, for callers inside a runtime.
    pub fn inner(&self) -> &tokio_postgres::Client {
        &self.inner
    }

    /// Has the connection ended (closed by the server, or lost)?
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    statements!();

    /// Begin a transaction (rolled back if dropped uncommitted).
    pub fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        let (cache, io) = (&mut self.cache, &self.io);
        io.wait(self.inner.transaction())
            .map(|inner| Transaction { inner, cache, io })
    }

    /// A transaction with options (read-only, isolation level).
    pub fn build_transaction(&mut self) -> TransactionBuilder<'_> {
        TransactionBuilder {
            inner: self.inner.build_transaction(),
            cache: &mut self.cache,
            io: &self.io,
        }
    }
}

/// Options of a transaction to begin: [`Client::build_transaction`].
pub struct TransactionBuilder<'a> {
    inner: tokio_postgres::TransactionBuilder<'a>,
    cache: &'a mut Cache,
    io: &'a IoRef,
}

impl<'a> TransactionBuilder<'a> {
    /// Read-only or not.
    pub fn read_only(self, on: bool) -> Self {
        TransactionBuilder {
            inner: self.inner.read_only(on),
            cache: self.cache,
            io: self.io,
        }
    }

    /// Its isolation level.
    pub fn isolation_level(self, level: IsolationLevel) -> Self {
        TransactionBuilder {
            inner: self.inner.isolation_level(level),
            cache: self.cache,
            io: self.io,
        }
    }

    /// Begin it.
    pub fn start(self) -> Result<Transaction<'a>, Error> {
        let (cache, io) = (self.cache, self.io);
        io.wait(self.inner.start())
            .map(|inner| Transaction { inner, cache, io })
    }
}

/// An open transaction: rolled back if dropped without [`Transaction::commit`] (the
/// `ROLLBACK` is queued on the connection, whose task sends it).
pub struct Transaction<'a> {
    inner: tokio_postgres::Transaction<'a>,
    cache: &'a mut Cache,
    io: &'a IoRef,
}

impl Transaction<'_> {
    /// The asynchronous transaction, for callers inside a runtime.
    pub fn inner(&self) -> &tokio_postgres::Transaction<'_> {
        &self.inner
    }

    statements!();

    /// The rows of `sql` run with `first`, then with the parameters of what `later` builds
    /// (`params` lists them). `first` is sent before `later` runs, so the server executes
    /// it while this thread builds the next; both answers come back in one wait. What a
    /// long write gains: the client's work on its second half off the server's path.
    pub fn query_then<S: ?Sized + Sql, D>(
        &mut self,
        sql: &S,
        first: Params<'_>,
        later: impl FnOnce() -> D,
        params: impl for<'d> Fn(&'d D) -> Vec<&'d (dyn ToSql + Sync)>,
    ) -> Result<(Vec<Row>, Vec<Row>), Error> {
        let st = self.statement(sql)?;
        let mut cx = Context::from_waker(Waker::noop());
        // A first poll encodes the statement and hands it to the connection's task (which
        // sends it at once); the answer is awaited below.
        let mut one = pin!(self.inner.query(&st, first));
        let early = match one.as_mut().poll(&mut cx) {
            Poll::Ready(rows) => Some(rows),
            Poll::Pending => None,
        };
        let data = later();
        let values = params(&data);
        // Failed at once (the transaction is aborted): the second is not sent.
        let early = match early {
            Some(Err(e)) => return Err(e),
            other => other,
        };
        let mut two = pin!(self.inner.query(&st, &values));
        let early_two = match two.as_mut().poll(&mut cx) {
            Poll::Ready(rows) => Some(rows),
            Poll::Pending => None,
        };
        self.io.wait(async move {
            let one = match early {
                Some(rows) => rows?,
                None => one.await?,
            };
            let two = match early_two {
                Some(rows) => rows?,
                None => two.await?,
            };
            Ok((one, two))
        })
    }

    /// Bind a statement to a portal, whose rows are then read a few at a time.
    pub fn bind<S: ?Sized + Sql>(&mut self, sql: &S, params: Params<'_>) -> Result<Portal, Error> {
        let st = self.statement(sql)?;
        self.io.wait(self.inner.bind(&st, params))
    }

    /// The next `max_rows` rows of `portal` (none once it is exhausted).
    pub fn query_portal(&mut self, portal: &Portal, max_rows: i32) -> Result<Vec<Row>, Error> {
        self.io.wait(self.inner.query_portal(portal, max_rows))
    }

    /// Commit it.
    pub fn commit(self) -> Result<(), Error> {
        self.io.wait(self.inner.commit())
    }

    /// Roll it back.
    pub fn rollback(self) -> Result<(), Error> {
        self.io.wait(self.inner.rollback())
    }
}

/// What a connection and a transaction both do, for code that runs in either.
pub trait GenericClient {
    /// The rows of one statement.
    fn query<S: ?Sized + Sql>(&mut self, sql: &S, params: Params<'_>) -> Result<Vec<Row>, Error>;
    /// The one row of a statement.
    fn query_one<S: ?Sized + Sql>(&mut self, sql: &S, params: Params<'_>) -> Result<Row, Error>;
    /// The row of a statement, if any.
    fn query_opt<S: ?Sized + Sql>(
        &mut self,
        sql: &S,
        params: Params<'_>,
    ) -> Result<Option<Row>, Error>;
    /// Run one statement; the rows it changed.
    fn execute<S: ?Sized + Sql>(&mut self, sql: &S, params: Params<'_>) -> Result<u64, Error>;
    /// Run statements separated by `;`, without parameters.
    fn batch_execute(&mut self, sql: &str) -> Result<(), Error>;
}

/// [`GenericClient`] for a type whose inherent methods have its names.
macro_rules! generic {
    ($ty:ty) => {
        impl GenericClient for $ty {
            fn query<S: ?Sized + Sql>(
                &mut self,
                sql: &S,
                params: Params<'_>,
            ) -> Result<Vec<Row>, Error> {
                <$ty>::query(self, sql, params)
            }
            fn query_one<S: ?Sized + Sql>(
                &mut self,
                sql: &S,
                params: Params<'_>,
            ) -> Result<Row, Error> {
                <$ty>::query_one(self, sql, params)
            }
            fn query_opt<S: ?Sized + Sql>(
                &mut self,
                sql: &S,
                params: Params<'_>,
            ) -> Result<Option<Row>, Error> {
                <$ty>::query_opt(self, sql, params)
            }
            fn execute<S: ?Sized + Sql>(
                &mut self,
                sql: &S,
                params: Params<'_>,
            ) -> Result<u64, Error> {
                <$ty>::execute(self, sql, params)
            }
            fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
                <$ty>::batch_execute(self, sql)
            }
        }
    };
}
generic!(Client);
generic!(Transaction<'_>);
