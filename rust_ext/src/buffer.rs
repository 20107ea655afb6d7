//! Zero-copy access to Python buffers (bytes, bytearray, memoryview, mmap, numpy).

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;

use crate::error::CoreError;

/// A contiguous byte view of a Python object, usable with the GIL released.
pub struct BytesView {
    buf: PyBuffer<u8>,
}

impl BytesView {
    pub fn as_slice(&self) -> &[u8] {
        let len = self.buf.len_bytes();
        if len == 0 {
            return &[];
        }
        // SAFETY: the buffer is C-contiguous (checked in `borrow_bytes`), of item size
        // 1, and kept alive (and its exporter pinned) for as long as `self.buf` lives.
        unsafe { std::slice::from_raw_parts(self.buf.buf_ptr() as *const u8, len) }
    }
}

/// Borrow `obj`'s bytes without copying them.
pub fn borrow_bytes(obj: &Bound<'_, PyAny>) -> PyResult<BytesView> {
    let buf = PyBuffer::<u8>::get(obj).map_err(|_| {
        CoreError::InvalidArgument(format!(
            "expected a bytes-like object, got {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    if !buf.is_c_contiguous() {
        return Err(CoreError::InvalidArgument("buffer must be C-contiguous".into()).into());
    }
    Ok(BytesView { buf })
}
