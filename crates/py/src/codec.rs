//! Bencode and info dicts for learners: [`bdecode`] and [`bencode`] over the
//! `estudely-bencode` crate (the decoder the crawler trusts with hostile input), and
//! [`parse_info`] over `estudely-peer-wire`'s info dict parser (what a fetched torrent's
//! metadata says).

use std::collections::BTreeMap;

use estudely_bencode::{Kind, OwnedValue, Value};
use estudely_peer_wire::{InfoSummary, Version};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};
use sha1::Digest as _;

/// Decode bencode: ints as `int`, byte strings as `bytes`, lists as `list`, dicts as `dict`
/// with `bytes` keys in the order received. Malformed or trailing input is a `ValueError`
/// naming the byte offset.
#[pyfunction]
pub fn bdecode<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let value = estudely_bencode::decode(data).map_err(|e| PyValueError::new_err(e.to_string()))?;
    to_py(py, &value)
}

fn to_py<'py>(py: Python<'py>, value: &Value<'_>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value.kind() {
        Kind::Int(i) => i.into_pyobject(py)?.into_any(),
        Kind::Bytes(b) => PyBytes::new(py, b).into_any(),
        Kind::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Kind::Dict(entries) => {
            let dict = PyDict::new(py);
            for (k, v) in entries {
                dict.set_item(PyBytes::new(py, k), to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Encode as canonical bencode (dict keys sorted): `int`, `bytes` (or `bytearray`), `str`
/// (as UTF-8), `list` or `tuple`, `dict` with `bytes` or `str` keys. Anything else (a
/// `bool`, a `float`, `None`) is a `TypeError`.
#[pyfunction]
pub fn bencode<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let value = from_py(obj, 0)?;
    Ok(PyBytes::new(py, &value.to_bytes()))
}

/// Deeper nesting than this is refused (as the decoder refuses it), not a stack overflow.
const MAX_DEPTH: usize = 512;

fn from_py(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<OwnedValue> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "bencode: nesting deeper than {MAX_DEPTH}"
        )));
    }
    if obj.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err("bencode has no booleans: use 0 or 1"));
    }
    if obj.is_instance_of::<PyInt>() {
        let i: i64 = obj
            .extract()
            .map_err(|_| PyValueError::new_err("bencode: integer out of the 64-bit range"))?;
        return Ok(OwnedValue::Int(i));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(OwnedValue::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(OwnedValue::Bytes(b.to_vec()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(OwnedValue::Bytes(s.to_cow()?.as_bytes().to_vec()));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for item in obj.try_iter()? {
            items.push(from_py(&item?, depth + 1)?);
        }
        return Ok(OwnedValue::List(items));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = BTreeMap::new();
        for (k, v) in d.iter() {
            let key = match from_py(&k, depth + 1)? {
                OwnedValue::Bytes(b) => b,
                _ => {
                    return Err(PyTypeError::new_err(
                        "bencode dict keys must be bytes or str",
                    ))
                }
            };
            if map.insert(key, from_py(&v, depth + 1)?).is_some() {
                return Err(PyValueError::new_err(
                    "bencode: a str key and a bytes key are the same bytes",
                ));
            }
        }
        return Ok(OwnedValue::Dict(map));
    }
    let kind = obj.get_type().name()?;
    Err(PyTypeError::new_err(format!("cannot bencode a {kind}")))
}

/// What an info dict (the metadata a peer sends) or a whole `.torrent` file says: `infohash`
/// (the 40-hex DHT key), `infohash_v2` (64 hex, v2 and hybrid), `name` (for display),
/// `name_bytes`, `name_hex`, `version`, `file_count`, `total_bytes`, `piece_length`,
/// `files` (the first ones: `path` for display, `path_bytes` the raw components,
/// `length`) and `files_truncated`. A malformed one is a `ValueError`.
#[pyfunction]
pub fn parse_info<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let bad = |e: &dyn std::fmt::Display| PyValueError::new_err(e.to_string());
    let top = estudely_bencode::decode(data).map_err(|e| bad(&e))?;
    // A .torrent file holds the info dict under `info`: hash its bytes as they are.
    let info = top.get(b"info").map_or(data, |v| v.raw());
    let summary = InfoSummary::parse(info).map_err(|e| bad(&e))?;
    let v2 = (summary.version != Version::V1).then(|| {
        let digest: [u8; 32] = sha2::Sha256::digest(info).into();
        digest
    });
    let key: [u8; 20] = match (summary.version, v2) {
        (Version::V2, Some(v2)) => v2[..20].try_into().unwrap_or([0; 20]),
        _ => sha1::Sha1::digest(info).into(),
    };
    let out = PyDict::new(py);
    out.set_item("infohash", hex::encode(key))?;
    out.set_item("infohash_v2", v2.map(hex::encode))?;
    out.set_item("name", summary.name_lossy())?;
    out.set_item("name_bytes", PyBytes::new(py, &summary.name))?;
    out.set_item("name_hex", hex::encode(&summary.name))?;
    out.set_item("version", estudely_store::version_str(summary.version))?;
    out.set_item("file_count", summary.file_count)?;
    out.set_item("total_bytes", summary.total_bytes)?;
    out.set_item("piece_length", summary.piece_length)?;
    let files = PyList::empty(py);
    for f in &summary.files {
        let file = PyDict::new(py);
        file.set_item("path", f.path_lossy())?;
        let parts: Vec<Bound<'_, PyBytes>> = f.path.iter().map(|c| PyBytes::new(py, c)).collect();
        file.set_item("path_bytes", parts)?;
        file.set_item("length", f.length)?;
        files.append(file)?;
    }
    out.set_item("files", files)?;
    out.set_item("files_truncated", summary.files_truncated())?;
    Ok(out)
}
