//! `estudely._native`, the Rust half of the `estudely` Python package (`python/`): the
//! commands of the `estudely` binary run in-process, on threads of their own, with their
//! flags as keyword arguments, and the index read in chunks. The Python half turns what
//! this module hands over (JSON lines, CSV lines, columns) into pandas DataFrames.
//!
//! Layers: [`kwargs`] parses keyword arguments with the command line's own parser
//! (through `estudely::embed`); [`task`] runs a command on a thread, hands its stdout over
//! line by line and stops it on Ctrl-C; [`commands`] wires each command; [`index`] reads an
//! index, whose torrents [`columns`] lays out in Arrow's buffers; [`codec`] is bencode and
//! info dicts; [`errors`] maps failures to exceptions with the CLI's messages. The
//! interpreter is never held while Rust works.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod codec;
mod columns;
mod commands;
mod convert;
mod errors;
mod index;
mod kwargs;
mod task;

use pyo3::prelude::*;

/// The native part of the `estudely` package; use `estudely` itself.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("EstudelyError", py.get_type::<errors::EstudelyError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<task::Task>()?;
    m.add_class::<index::Index>()?;
    m.add_function(wrap_pyfunction!(commands::collect, m)?)?;
    m.add_function(wrap_pyfunction!(commands::crawl, m)?)?;
    m.add_function(wrap_pyfunction!(commands::metadata, m)?)?;
    m.add_function(wrap_pyfunction!(commands::run, m)?)?;
    m.add_function(wrap_pyfunction!(commands::testnet, m)?)?;
    m.add_function(wrap_pyfunction!(commands::simulate, m)?)?;
    m.add_function(wrap_pyfunction!(commands::query, m)?)?;
    m.add_function(wrap_pyfunction!(commands::flags, m)?)?;
    m.add_function(wrap_pyfunction!(codec::bdecode, m)?)?;
    m.add_function(wrap_pyfunction!(codec::bencode, m)?)?;
    m.add_function(wrap_pyfunction!(codec::parse_info, m)?)?;
    Ok(())
}
