//! JSON values (the index's JSON views, the commands' JSON lines) as Python objects, and
//! chunks of rows as columns, which pandas turns into a DataFrame without a Python loop.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::Value;

/// `value` as the Python object `json.loads` would give.
pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Rows (JSON objects) as columns: `{key: [value of each row]}`, the keys in the order
/// they first appear, `None` where a row lacks one.
pub fn columns<'py>(py: Python<'py>, rows: &[Value]) -> PyResult<Bound<'py, PyDict>> {
    let mut keys: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for row in rows {
        if let Value::Object(map) = row {
            for k in map.keys() {
                if seen.insert(k.as_str()) {
                    keys.push(k);
                }
            }
        }
    }
    let out = PyDict::new(py);
    for key in keys {
        let column = PyList::empty(py);
        for row in rows {
            match row.get(key) {
                Some(v) => column.append(to_py(py, v)?)?,
                None => column.append(py.None())?,
            }
        }
        out.set_item(key, column)?;
    }
    Ok(out)
}
