//! zstd compression of many chunks (or frames of consecutive chunks) at once.

use std::cell::RefCell;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use rayon::prelude::*;

use crate::buffer::{borrow_bytes, BytesView};
use crate::error::{CoreError, CoreResult};
use crate::pool::run_in;

/// Stored bytes are the raw bytes (compression did not shrink them).
pub const CODEC_RAW: u8 = 0;
/// Stored bytes are one zstd frame.
pub const CODEC_ZSTD: u8 = 1;

pub const MIN_LEVEL: i32 = -7;
/// No stored frame decodes to more than this; a larger claim is damage, and refusing
/// it keeps damaged metadata from asking for absurd allocations.
pub const MAX_RAW_LEN: usize = 1 << 30;
pub const MAX_LEVEL: i32 = 22;

pub fn check_level(level: i32) -> CoreResult<()> {
    if (MIN_LEVEL..=MAX_LEVEL).contains(&level) && level != 0 {
        Ok(())
    } else {
        Err(CoreError::InvalidParams(format!(
            "zstd level must be between {MIN_LEVEL} and {MAX_LEVEL} and not 0 (got {level})"
        )))
    }
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compress `data` at `level`; keep it raw when zstd does not make it smaller.
pub fn compress(data: &[u8], level: i32) -> CoreResult<(u8, Vec<u8>)> {
    if data.is_empty() {
        return Ok((CODEC_RAW, Vec::new()));
    }
    let out = COMPRESSOR.with(|cell| -> CoreResult<Vec<u8>> {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            let c = zstd::bulk::Compressor::new(level)
                .map_err(|e| CoreError::InvalidParams(format!("zstd level {level}: {e}")))?;
            *slot = Some((level, c));
        }
        let (_, c) = slot.as_mut().expect("compressor set");
        c.compress(data)
            .map_err(|e| CoreError::corrupt(format!("zstd compression failed: {e}")))
    })?;
    if out.len() >= data.len() {
        Ok((CODEC_RAW, data.to_vec()))
    } else {
        Ok((CODEC_ZSTD, out))
    }
}

/// Decode one stored payload into `out` (cleared first; its allocation is reused).
pub fn decompress_into(
    codec: u8,
    payload: &[u8],
    raw_len: usize,
    out: &mut Vec<u8>,
) -> CoreResult<()> {
    out.clear();
    if codec == CODEC_RAW {
        if payload.len() != raw_len {
            return Err(CoreError::corrupt(format!(
                "raw payload is {} bytes, expected {raw_len}",
                payload.len()
            )));
        }
        out.extend_from_slice(payload);
        return Ok(());
    }
    if codec != CODEC_ZSTD {
        return Err(CoreError::corrupt(format!("unknown codec {codec}")));
    }
    check_frame_header(payload, raw_len)?;
    out.reserve(raw_len + 1);
    DECOMPRESSOR.with(|cell| -> CoreResult<()> {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| CoreError::corrupt(format!("zstd context: {e}")))?,
            );
        }
        let d = slot.as_mut().expect("decompressor set");
        d.decompress_to_buffer(payload, out)
            .map_err(|e| CoreError::corrupt(format!("zstd frame does not decode: {e}")))?;
        Ok(())
    })?;
    if out.len() != raw_len {
        return Err(CoreError::corrupt(format!(
            "zstd frame decodes to {} bytes, expected {raw_len}",
            out.len()
        )));
    }
    Ok(())
}

fn check_frame_header(payload: &[u8], raw_len: usize) -> CoreResult<()> {
    if raw_len > MAX_RAW_LEN {
        return Err(CoreError::corrupt(format!(
            "a frame claims {raw_len} raw bytes, more than any frame holds ({MAX_RAW_LEN})"
        )));
    }
    match zstd::zstd_safe::get_frame_content_size(payload) {
        Ok(Some(n)) if n != raw_len as u64 => Err(CoreError::corrupt(format!(
            "zstd frame holds {n} bytes, expected {raw_len}"
        ))),
        Err(_) => Err(CoreError::corrupt("not a zstd frame")),
        _ => Ok(()),
    }
}

/// Decode one stored payload whose raw form is `raw_len` bytes long.
pub fn decompress(codec: u8, payload: &[u8], raw_len: usize) -> CoreResult<Vec<u8>> {
    let mut out = Vec::new();
    decompress_into(codec, payload, raw_len, &mut out)?;
    Ok(out)
}

/// Compress each buffer independently, in parallel: `[(codec, payload), ...]`.
#[pyfunction]
#[pyo3(signature = (chunks, level=3, threads=0))]
pub fn compress_chunks<'py>(
    py: Python<'py>,
    chunks: &Bound<'py, PyAny>,
    level: i32,
    threads: usize,
) -> PyResult<Bound<'py, PyList>> {
    check_level(level)?;
    let views: Vec<BytesView> = chunks
        .try_iter()?
        .map(|item| borrow_bytes(&item?))
        .collect::<PyResult<_>>()?;
    let results: CoreResult<Vec<(u8, Vec<u8>)>> = py.detach(|| {
        run_in(threads, || {
            views
                .par_iter()
                .map(|v| compress(v.as_slice(), level))
                .collect()
        })
    });
    let results = results?;
    let items = results
        .iter()
        .map(|(codec, payload)| {
            PyTuple::new(
                py,
                [
                    codec.into_pyobject(py)?.into_any(),
                    PyBytes::new(py, payload).into_any(),
                ],
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// Decompress `[(codec, payload, raw_len), ...]` in parallel into `[bytes, ...]`.
#[pyfunction]
#[pyo3(signature = (items, threads=0))]
pub fn decompress_chunks<'py>(
    py: Python<'py>,
    items: &Bound<'py, PyAny>,
    threads: usize,
) -> PyResult<Bound<'py, PyList>> {
    let mut parsed: Vec<(u8, BytesView, usize)> = Vec::new();
    for item in items.try_iter()? {
        let item = item?;
        let (codec, payload, raw_len): (i128, Bound<'py, PyAny>, i128) = item.extract()?;
        let codec = u8::try_from(codec)
            .map_err(|_| CoreError::corrupt(format!("unknown codec {codec}")))?;
        let raw_len = usize::try_from(raw_len)
            .map_err(|_| CoreError::corrupt(format!("invalid raw length {raw_len}")))?;
        parsed.push((codec, borrow_bytes(&payload)?, raw_len));
    }
    let results: CoreResult<Vec<Vec<u8>>> = py.detach(|| {
        run_in(threads, || {
            parsed
                .par_iter()
                .map(|(codec, view, raw_len)| decompress(*codec, view.as_slice(), *raw_len))
                .collect()
        })
    });
    let results = results?;
    PyList::new(py, results.iter().map(|r| PyBytes::new(py, r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_raw_fallback() {
        let text = b"hello hello hello hello hello hello hello".repeat(100);
        let (codec, payload) = compress(&text, 3).unwrap();
        assert_eq!(codec, CODEC_ZSTD);
        assert!(payload.len() < text.len());
        assert_eq!(decompress(codec, &payload, text.len()).unwrap(), text);

        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let (codec, payload) = compress(&noise, 3).unwrap();
        if codec == CODEC_RAW {
            assert_eq!(payload, noise);
        }
        assert_eq!(decompress(codec, &payload, noise.len()).unwrap(), noise);
    }

    #[test]
    fn corrupt_payload_is_an_error() {
        let text = b"abcdefgh".repeat(1000);
        let (codec, mut payload) = compress(&text, 3).unwrap();
        let mid = payload.len() / 2;
        payload[mid] ^= 0xff;
        payload.truncate(mid + 1);
        assert!(decompress(codec, &payload, text.len()).is_err());
        assert!(decompress(CODEC_ZSTD, b"not zstd", 10).is_err());
        assert!(decompress(9, b"x", 1).is_err());
        assert!(decompress(CODEC_RAW, b"abc", 4).is_err());
    }

    #[test]
    fn levels_checked() {
        assert!(check_level(0).is_err());
        assert!(check_level(23).is_err());
        assert!(check_level(3).is_ok());
    }
}
