//! BLAKE3-256: plain by default, keyed when the repository has a 32-byte key.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::buffer::borrow_bytes;
use crate::error::{CoreError, CoreResult};

pub type Digest = [u8; 32];

/// A key for keyed hashing, checked for length once at the boundary.
#[derive(Clone, Copy, Debug, Default)]
pub struct HashKey(pub Option<[u8; 32]>);

impl HashKey {
    pub fn from_opt(key: Option<&[u8]>) -> CoreResult<Self> {
        match key {
            None => Ok(HashKey(None)),
            Some(k) => {
                let arr: [u8; 32] = k.try_into().map_err(|_| {
                    CoreError::InvalidArgument(format!(
                        "a hash key must be exactly 32 bytes (got {})",
                        k.len()
                    ))
                })?;
                Ok(HashKey(Some(arr)))
            }
        }
    }

    pub fn hasher(&self) -> blake3::Hasher {
        match &self.0 {
            None => blake3::Hasher::new(),
            Some(k) => blake3::Hasher::new_keyed(k),
        }
    }

    #[inline]
    pub fn hash(&self, data: &[u8]) -> Digest {
        match &self.0 {
            None => *blake3::hash(data).as_bytes(),
            Some(k) => *blake3::keyed_hash(k, data).as_bytes(),
        }
    }
}

/// BLAKE3-256 of a buffer (keyed when `key` is given); multithreaded above 1 MiB.
#[pyfunction]
#[pyo3(signature = (data, key=None))]
pub fn blake3_digest<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    key: Option<&[u8]>,
) -> PyResult<Bound<'py, PyBytes>> {
    let key = HashKey::from_opt(key)?;
    let view = borrow_bytes(data)?;
    let digest = py.detach(|| {
        let bytes = view.as_slice();
        if bytes.len() >= 1 << 20 {
            let mut h = key.hasher();
            h.update_rayon(bytes);
            *h.finalize().as_bytes()
        } else {
            key.hash(bytes)
        }
    });
    Ok(PyBytes::new(py, &digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_vector() {
        // From the official BLAKE3 test vectors (input_len 0, unkeyed).
        let d = HashKey(None).hash(b"");
        assert_eq!(
            d.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn key_length_checked() {
        assert!(HashKey::from_opt(Some(&[0u8; 31])).is_err());
        assert!(HashKey::from_opt(Some(&[0u8; 32])).is_ok());
    }
}
