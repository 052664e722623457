//! Rust errors as Python exceptions, with the CLI's one-line messages: what `estudely`
//! would exit 2 for (a [`UsageError`] anywhere in the chain, a refused flag) is a
//! `ValueError`, a value of the wrong kind or an unknown keyword a `TypeError`, any other
//! failure an [`EstudelyError`] (a `RuntimeError`).

use estudely::embed::ArgError;
use estudely_store::UsageError;
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::PyErr;

create_exception!(
    estudely,
    EstudelyError,
    PyRuntimeError,
    "A failure of an Estudely command (a network, index or I/O error), with the one-line \
     message the `estudely` command line prints."
);

/// `error` as the Python exception the CLI's exit status stands for: `ValueError` for a
/// usage error (exit 2), [`EstudelyError`] for anything else (exit 1). The message is the
/// CLI's line (`{e:#}`: each cause after a colon) without its `error: `.
pub fn command_error(error: &anyhow::Error) -> PyErr {
    let message = format!("{error:#}");
    if error.chain().any(|c| c.is::<UsageError>()) {
        PyValueError::new_err(message)
    } else {
        EstudelyError::new_err(message)
    }
}

/// Named arguments that make no command, for `function`: `TypeError` for an unknown name
/// or a value of the wrong kind (as Python says it of its own functions), `ValueError` with
/// the CLI's message for a value it refuses.
pub fn argument_error(function: &str, error: &ArgError) -> PyErr {
    match error {
        ArgError::Unknown(_) | ArgError::Type { .. } => {
            PyTypeError::new_err(format!("{function}() {error}"))
        }
        ArgError::Value(message) => PyValueError::new_err(message.clone()),
        ArgError::NoCommand(_) => PyRuntimeError::new_err(error.to_string()),
    }
}
