//! The commands, started from Python: each parses its keyword arguments as the command line
//! would ([`crate::kwargs`]), then runs the CLI's own code on a thread of its own
//! ([`crate::task`]), its stdout going to the returned [`Task`] (JSON lines, or CSV for
//! `simulate`) and Ctrl-C replaced by the task's stop flag.

use std::io::Write as _;

use estudely::cli::Command;
use estudely::cmd;
use estudely::crawl::setup::StopOn;
use estudely::embed::{self, FlagKind};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::kwargs;
use crate::task::{block_on, spawn, Task};

/// A command of another kind than asked for: a bug here, not the caller's.
fn mismatch(name: &str) -> PyErr {
    PyRuntimeError::new_err(format!(
        "internal error: arguments of {name} parsed as another command"
    ))
}

/// `estudely collect --format jsonl ...`: one JSON line per (infohash, peer considered).
#[pyfunction]
#[pyo3(signature = (**kwargs))]
pub fn collect(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Task> {
    let fixed = ["--format", "jsonl"];
    let Command::Collect(args) = kwargs::command("collect", &["collect"], kwargs, &fixed, &[])?
    else {
        return Err(mismatch("collect"));
    };
    spawn("collect", move |out, stop| {
        block_on(cmd::collect::run_with(args, out, stop))
    })
}

/// `estudely crawl --format jsonl ...`: one JSON line per (infohash, peer). The peers file
/// is written only when `peers_file` is given.
#[pyfunction]
#[pyo3(signature = (**kwargs))]
pub fn crawl(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Task> {
    let peers_file = match kwargs {
        Some(kw) => kw.get_item("peers_file")?.is_some_and(|v| !v.is_none()),
        None => false,
    };
    let fixed = ["--format", "jsonl"];
    let Command::Crawl(args) = kwargs::command("crawl", &["crawl"], kwargs, &fixed, &[])? else {
        return Err(mismatch("crawl"));
    };
    spawn("crawl", move |out, stop| {
        block_on(cmd::crawl::run_with(args, out, peers_file, stop))
    })
}

/// `estudely metadata --format jsonl ...`: one JSON line per torrent obtained, from the
/// peers CSV `csv` (bytes, as `crawl` writes it) or else the file `file`.
#[pyfunction]
#[pyo3(signature = (csv=None, file=None, **kwargs))]
pub fn metadata(
    csv: Option<Vec<u8>>,
    file: Option<String>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Task> {
    let fixed = ["--format", "jsonl"];
    // In memory, the FILE argument is only a placeholder the input replaces.
    let positional = [file.unwrap_or_else(|| "-".into())];
    let function = "fetch_metadata";
    let Command::Metadata(args) =
        kwargs::command(function, &["metadata"], kwargs, &fixed, &positional)?
    else {
        return Err(mismatch(function));
    };
    let input = csv.map(|bytes| cmd::metadata::PeersCsv {
        label: "peers".into(),
        bytes,
    });
    spawn("metadata", move |out, stop| {
        block_on(cmd::metadata::run_with(args, input, out, stop))
    })
}

/// `estudely run ...`: builds the index `db` until its `overall_timeout` or a stop; its
/// one line, at the end, is the summary as a JSON object (the fields of
/// [`cmd::run::RunSummary`]). A stop (Ctrl-C) ends it as Ctrl-C ends the CLI: what is
/// known is committed first.
#[pyfunction]
#[pyo3(signature = (**kwargs))]
pub fn run(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Task> {
    let Command::Run(args) = kwargs::command("run", &["run"], kwargs, &[], &[])? else {
        return Err(mismatch("run"));
    };
    spawn("run", move |mut out, stop| {
        let summary = block_on(cmd::run::run_with(args, stop))?;
        serde_json::to_writer(&mut out, &summary)?;
        Ok(out.write_all(b"\n")?)
    })
}

/// `estudely testnet ...`: its first line is `bootstrap IP:PORT`, once the network is
/// ready and its manifest written; it runs until stopped (or `seconds`).
#[pyfunction]
#[pyo3(signature = (**kwargs))]
pub fn testnet(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Task> {
    let Command::Testnet(args) = kwargs::command("testnet", &["testnet"], kwargs, &[], &[])? else {
        return Err(mismatch("testnet"));
    };
    spawn("testnet", move |out, stop| {
        block_on(cmd::testnet::run_with(args, out, stop))
    })
}

/// `estudely simulate --format csv ...`: `#` summary lines and the coverage table's CSV.
/// Stopping it ends it within a step of its virtual clock (not at its next row, which may
/// be far off in a big network): the row of where it stopped, then `# stopped at ...`.
#[pyfunction]
#[pyo3(signature = (**kwargs))]
pub fn simulate(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Task> {
    let fixed = ["--format", "csv"];
    let Command::Simulate(args) = kwargs::command("simulate", &["simulate"], kwargs, &fixed, &[])?
    else {
        return Err(mismatch("simulate"));
    };
    spawn("simulate", move |out, stop| {
        // Asked before every step: a load of the flag, no lock held between steps.
        cmd::simulate::run_until_stopped(args, out, move || match &stop {
            StopOn::Flag(rx) => *rx.borrow(),
            StopOn::Signals => false,
        })
    })
}

/// `estudely query METHOD ARGS... --format jsonl`: the reply as one JSON line (two for
/// `announce`). `method` is the subcommand: `ping`, `find-node`, `get-peers`, `sample`,
/// `announce`.
#[pyfunction]
#[pyo3(signature = (method, args, **kwargs))]
pub fn query(
    method: &str,
    args: Vec<String>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Task> {
    let fixed = ["--format", "jsonl"];
    let function = method.replace('-', "_");
    let Command::Query(query) =
        kwargs::command(&function, &["query", method], kwargs, &fixed, &args)?
    else {
        return Err(mismatch(method));
    };
    // A query waits for its reply up to its `--timeout`: a stop (Ctrl-C) ends the wait.
    spawn("query", move |out, stop| {
        block_on(async move {
            tokio::select! {
                r = cmd::query::run_with(query, out) => r,
                () = stop.fired() => Ok(()),
            }
        })
    })
}

/// The flags of a command (`"collect"`, `"query ping"`) as dicts: `name`, `flag`, `kind`
/// (`switch`, `one`, `many`), `value_name`, `help`, `default` (a list), `choices`.
#[pyfunction]
pub fn flags<'py>(py: Python<'py>, command: &str) -> PyResult<Bound<'py, PyList>> {
    let path: Vec<&str> = command.split_whitespace().collect();
    let flags = embed::flags(&path).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    let out = PyList::empty(py);
    for f in flags {
        let d = PyDict::new(py);
        d.set_item("name", f.name)?;
        d.set_item("flag", f.long)?;
        let kind = match f.kind {
            FlagKind::Switch => "switch",
            FlagKind::One => "one",
            FlagKind::Many => "many",
        };
        d.set_item("kind", kind)?;
        d.set_item("value_name", f.value_name)?;
        d.set_item("help", f.help)?;
        d.set_item("default", f.default)?;
        d.set_item("choices", f.choices)?;
        out.append(d)?;
    }
    Ok(out)
}
