//! Keyword arguments into a command: Python values become [`Value`]s, which
//! [`estudely::embed::parse`] turns into the command's arguments exactly as the command line
//! would (checked by the CLI's own parsers, with its messages).

use estudely::cli::Command;
use estudely::embed::{self, Value};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::errors::argument_error;

/// The command at `path` (`["collect"]`, `["query", "ping"]`) from `kwargs` (a `None`
/// value leaves its flag at the CLI's default), with `fixed` arguments the package sets
/// itself (`--format jsonl`: such flags are not keywords) and `positional` values.
/// `function` names the Python function in messages.
pub fn command(
    function: &str,
    path: &[&str],
    kwargs: Option<&Bound<'_, PyDict>>,
    fixed: &[&str],
    positional: &[String],
) -> PyResult<Command> {
    let mut named = Vec::new();
    if let Some(kwargs) = kwargs {
        for (key, value) in kwargs.iter() {
            let key: String = key.extract()?;
            if value.is_none() {
                continue;
            }
            let value = to_value(&value, true).ok_or_else(|| {
                let kind = type_name(&value);
                PyTypeError::new_err(format!(
                    "{function}() argument '{key}' must be a str, a number, a bool or a \
                     list of them, not {kind}"
                ))
            })?;
            named.push((key, value));
        }
    }
    embed::parse(path, positional, &named, fixed).map_err(|e| argument_error(function, &e))
}

/// A Python value as a flag's value: bool, int, float, str, a path (`os.PathLike`), or
/// (when `list` is allowed) a list or tuple of those. `None` for anything else.
fn to_value(obj: &Bound<'_, PyAny>, list: bool) -> Option<Value> {
    if let Ok(b) = obj.cast::<PyBool>() {
        return Some(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        // Beyond i64 no flag takes it: the parser refuses the digits with its message.
        return Some(match obj.extract::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Str(obj.str().ok()?.to_string()),
        });
    }
    if obj.is_instance_of::<PyFloat>() {
        return obj.extract::<f64>().ok().map(Value::Float);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s.to_cow().ok().map(|s| Value::Str(s.into_owned()));
    }
    if list && (obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>()) {
        let items = obj.try_iter().ok()?;
        let mut values = Vec::new();
        for item in items {
            values.push(to_value(&item.ok()?, false)?);
        }
        return Some(Value::List(values));
    }
    // pathlib.Path and other os.PathLike objects: their str path.
    let fspath = obj.py().import("os").ok()?.getattr("fspath").ok()?;
    let path = fspath.call1((obj,)).ok()?;
    path.cast::<PyString>()
        .ok()
        .and_then(|s| s.to_cow().ok().map(|s| Value::Str(s.into_owned())))
}

/// The Python type name of `obj`, for messages.
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}
