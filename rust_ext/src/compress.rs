//! zstd compression of many chunks (or frames of consecutive chunks) at once.

use std::cell::RefCell;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use rayon::prelude::*;

use crate::buffer::{borrow_bytes, BytesView};
use crate::error::{CoreError, CoreResult};
use crate::pool::run_sized;

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
    let total: usize = views.iter().map(|v| v.as_slice().len()).sum();
    let results: CoreResult<Vec<(u8, Vec<u8>)>> = py.detach(|| {
        run_sized(threads, total, || {
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
    // Decode straight into the bytes objects we return: allocate them (uninitialised)
    // with the GIL, then fill them in parallel without it. Nothing else can see them
    // until this function returns.
    for (codec, view, raw_len) in &parsed {
        if *codec == CODEC_ZSTD {
            check_frame_header(view.as_slice(), *raw_len)?;
        } else if *codec == CODEC_RAW {
            if view.as_slice().len() != *raw_len {
                return Err(CoreError::corrupt(format!(
                    "raw payload is {} bytes, expected {raw_len}",
                    view.as_slice().len()
                ))
                .into());
            }
        } else {
            return Err(CoreError::corrupt(format!("unknown codec {codec}")).into());
        }
    }
    let outs: Vec<Bound<'py, PyBytes>> = parsed
        .iter()
        .map(|(_, _, n)| new_uninit_bytes(py, *n))
        .collect::<PyResult<_>>()?;
    let targets: Vec<(usize, usize)> = outs
        .iter()
        .map(|b| (b.as_bytes().as_ptr() as usize, b.as_bytes().len()))
        .collect();
    let total: usize = parsed.iter().map(|(_, _, n)| *n).sum();
    let result: CoreResult<()> = py.detach(|| {
        run_sized(threads, total, || {
            parsed.par_iter().zip(targets.par_iter()).try_for_each(
                |((codec, view, raw_len), &(addr, len))| {
                    // SAFETY: each target is a distinct, freshly allocated bytes object of
                    // `len` bytes that no other code can reach yet.
                    let dst = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len) };
                    decompress_to_slice(*codec, view.as_slice(), *raw_len, dst)
                },
            )
        })
    });
    result?;
    PyList::new(py, outs)
}

fn new_uninit_bytes(py: Python<'_>, len: usize) -> PyResult<Bound<'_, PyBytes>> {
    let n =
        isize::try_from(len).map_err(|_| CoreError::corrupt(format!("invalid length {len}")))?;
    // SAFETY: a NULL source asks CPython for an uninitialised object of `n` bytes.
    unsafe {
        Ok(Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), n),
        )?
        .cast_into_unchecked())
    }
}

/// Decode into a slice of exactly `raw_len` bytes.
fn decompress_to_slice(
    codec: u8,
    payload: &[u8],
    raw_len: usize,
    dst: &mut [u8],
) -> CoreResult<()> {
    if codec == CODEC_RAW {
        if payload.len() != raw_len || dst.len() != raw_len {
            return Err(CoreError::corrupt(format!(
                "raw payload is {} bytes, expected {raw_len}",
                payload.len()
            )));
        }
        dst.copy_from_slice(payload);
        return Ok(());
    }
    let n = DECOMPRESSOR.with(|cell| -> CoreResult<usize> {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| CoreError::corrupt(format!("zstd context: {e}")))?,
            );
        }
        let d = slot.as_mut().expect("decompressor set");
        d.decompress_to_buffer(payload, dst)
            .map_err(|e| CoreError::corrupt(format!("zstd frame does not decode: {e}")))
    })?;
    if n != raw_len {
        return Err(CoreError::corrupt(format!(
            "zstd frame decodes to {n} bytes, expected {raw_len}"
        )));
    }
    Ok(())
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
