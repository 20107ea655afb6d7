//! The one error type of the native core, and its single mapping onto the
//! `reprocas.errors` exception tree.

use std::fmt;
use std::io;
use std::path::Path;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

#[derive(Debug)]
pub enum CoreError {
    /// Chunker or codec parameters that cannot work.
    InvalidParams(String),
    /// A caller passed something malformed (bad key length, index out of range).
    InvalidArgument(String),
    /// The file does not exist.
    NotFound { path: String },
    /// The file exists but may not be read.
    PermissionDenied { path: String },
    /// A directory was given where a file was expected.
    IsADirectory { path: String },
    /// Any other I/O failure while reading or writing `path`.
    Io {
        path: String,
        message: String,
        errno: Option<i32>,
    },
    /// Stored bytes that do not decode, or decode to the wrong size or digest.
    /// `frame` and `chunk` index the caller's lists when the call had them.
    Corrupt {
        message: String,
        frame: Option<usize>,
        chunk: Option<usize>,
    },
}

impl CoreError {
    pub fn from_io(err: io::Error, path: &Path) -> Self {
        let path_s = path.display().to_string();
        match err.kind() {
            io::ErrorKind::NotFound => CoreError::NotFound { path: path_s },
            io::ErrorKind::PermissionDenied => CoreError::PermissionDenied { path: path_s },
            io::ErrorKind::IsADirectory => CoreError::IsADirectory { path: path_s },
            _ => CoreError::Io {
                path: path_s,
                message: err.to_string(),
                errno: err.raw_os_error(),
            },
        }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::InvalidParams(m) => write!(f, "invalid parameters: {m}"),
            CoreError::InvalidArgument(m) => write!(f, "{m}"),
            CoreError::NotFound { path } => write!(f, "no such file: {path}"),
            CoreError::PermissionDenied { path } => {
                write!(
                    f,
                    "permission denied reading {path}: check the file's permissions"
                )
            }
            CoreError::IsADirectory { path } => {
                write!(f, "{path} is a directory; give a regular file")
            }
            CoreError::Io { path, message, .. } => write!(f, "I/O error on {path}: {message}"),
            CoreError::Corrupt { message, .. } => write!(f, "corrupt data: {message}"),
        }
    }
}

impl std::error::Error for CoreError {}

/// Name of the `reprocas.errors` class each variant becomes.
fn class_name(err: &CoreError) -> &'static str {
    match err {
        CoreError::InvalidParams(_) => "InvalidParameterError",
        CoreError::InvalidArgument(_) => "InvalidParameterError",
        CoreError::NotFound { .. } => "SourceNotFoundError",
        CoreError::PermissionDenied { .. } => "SourcePermissionError",
        CoreError::IsADirectory { .. } => "SourceIsDirectoryError",
        CoreError::Io {
            errno: Some(28), ..
        } => "StorageFullError",
        CoreError::Io { .. } => "StorageIOError",
        CoreError::Corrupt { .. } => "CorruptDataError",
    }
}

fn fields<'py>(py: Python<'py>, err: &CoreError) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match err {
        CoreError::NotFound { path }
        | CoreError::PermissionDenied { path }
        | CoreError::IsADirectory { path } => d.set_item("path", path)?,
        CoreError::Io { path, errno, .. } => {
            d.set_item("path", path)?;
            d.set_item("errno", errno)?;
        }
        CoreError::Corrupt { frame, chunk, .. } => {
            d.set_item("frame_index", frame)?;
            d.set_item("chunk_index", chunk)?;
        }
        _ => {}
    }
    Ok(d)
}

impl From<CoreError> for PyErr {
    fn from(err: CoreError) -> PyErr {
        Python::attach(|py| {
            let message = err.to_string();
            let build = || -> PyResult<PyErr> {
                let module = py.import("reprocas.errors")?;
                let cls = module.getattr(class_name(&err))?;
                let inst = cls.call((message.clone(),), Some(&fields(py, &err)?))?;
                Ok(PyErr::from_value(inst))
            };
            build().unwrap_or_else(|_| match err {
                CoreError::InvalidParams(_) | CoreError::InvalidArgument(_) => {
                    PyValueError::new_err(message)
                }
                _ => PyRuntimeError::new_err(message),
            })
        })
    }
}

impl CoreError {
    pub fn corrupt(message: impl Into<String>) -> Self {
        CoreError::Corrupt {
            message: message.into(),
            frame: None,
            chunk: None,
        }
    }

    /// Attach the index of the frame (and chunk) the error is about.
    pub fn at(self, frame: Option<usize>, chunk: Option<usize>) -> Self {
        match self {
            CoreError::Corrupt { message, .. } => CoreError::Corrupt {
                message,
                frame,
                chunk,
            },
            other => other,
        }
    }
}

pub type CoreResult<T> = Result<T, CoreError>;
