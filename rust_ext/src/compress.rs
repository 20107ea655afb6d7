//! zstd compression of many chunks (or frames of consecutive chunks) at once.

use std::cell::RefCell;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use rayon::prelude::*;

use crate::buffer::{borrow_bytes, BytesView};
use crate::error::{CoreError, CoreResult};
use crate::pool::run_sized;
use zstd::zstd_safe::zstd_sys;

/// Stored bytes are the raw bytes (compression did not shrink them).
pub const CODEC_RAW: u8 = 0;
/// Stored bytes are one zstd frame.
pub const CODEC_ZSTD: u8 = 1;
/// Stored bytes are one zstd frame compressed with the frame's base chunks, concatenated,
/// as its reference prefix ("patch-from"): decoding needs those bytes.
pub const CODEC_DELTA: u8 = 2;

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

/// A zstd context used with a reference prefix. The safe wrapper ties a prefix's
/// lifetime to its context's, which rules out the per-thread reuse that matters here
/// (a fresh context costs a table reset per frame); zstd itself drops a prefix after
/// the one frame it was given for, so each call below sets it right before use.
struct RawCCtx(std::ptr::NonNull<zstd_sys::ZSTD_CCtx>);
struct RawDCtx(std::ptr::NonNull<zstd_sys::ZSTD_DCtx>);

impl Drop for RawCCtx {
    fn drop(&mut self) {
        // SAFETY: created by ZSTD_createCCtx, freed once.
        unsafe { zstd_sys::ZSTD_freeCCtx(self.0.as_ptr()) };
    }
}

impl Drop for RawDCtx {
    fn drop(&mut self) {
        // SAFETY: created by ZSTD_createDCtx, freed once.
        unsafe { zstd_sys::ZSTD_freeDCtx(self.0.as_ptr()) };
    }
}

fn zstd_check(code: usize, what: &str) -> CoreResult<usize> {
    // SAFETY: plain FFI on a return code.
    if unsafe { zstd_sys::ZSTD_isError(code) } != 0 {
        let name = unsafe { std::ffi::CStr::from_ptr(zstd_sys::ZSTD_getErrorName(code)) };
        return Err(CoreError::corrupt(format!(
            "{what}: {}",
            name.to_string_lossy()
        )));
    }
    Ok(code)
}

/// The window that lets a frame reach back over its whole prefix.
fn prefix_window_log(total: usize) -> i32 {
    let bits = usize::BITS - total.max(1).leading_zeros();
    (bits as i32).clamp(10, 27)
}

/// Compress `data` with `prefix` as zstd's reference prefix (codec 2, "patch-from").
pub fn compress_with_prefix(data: &[u8], prefix: &[u8], level: i32) -> CoreResult<Vec<u8>> {
    use zstd_sys::ZSTD_cParameter as P;
    check_level(level)?;
    if prefix.len() + data.len() > MAX_RAW_LEN {
        return Err(CoreError::InvalidArgument("delta frame too large".into()));
    }
    DELTA_CCTX.with(|cell| -> CoreResult<Vec<u8>> {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            // SAFETY: plain constructor; NULL means out of memory.
            let p = unsafe { zstd_sys::ZSTD_createCCtx() };
            let p = std::ptr::NonNull::new(p)
                .ok_or_else(|| CoreError::corrupt("zstd context: out of memory"))?;
            *slot = Some(RawCCtx(p));
        }
        let c = slot.as_ref().expect("context set").0.as_ptr();
        let mut out: Vec<u8> = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
        // SAFETY: `c` is a live context owned by this thread; the prefix and the data
        // outlive the ZSTD_compress2 call, after which zstd no longer refers to them.
        unsafe {
            zstd_check(
                zstd_sys::ZSTD_CCtx_reset(
                    c,
                    zstd_sys::ZSTD_ResetDirective::ZSTD_reset_session_and_parameters,
                ),
                "zstd reset",
            )?;
            zstd_check(
                zstd_sys::ZSTD_CCtx_setParameter(c, P::ZSTD_c_compressionLevel, level),
                "zstd level",
            )?;
            zstd_check(
                zstd_sys::ZSTD_CCtx_setParameter(
                    c,
                    P::ZSTD_c_windowLog,
                    prefix_window_log(prefix.len() + data.len()),
                ),
                "zstd window",
            )?;
            zstd_check(
                zstd_sys::ZSTD_CCtx_setPledgedSrcSize(c, data.len() as u64),
                "zstd source size",
            )?;
            zstd_check(
                zstd_sys::ZSTD_CCtx_refPrefix(c, prefix.as_ptr().cast(), prefix.len()),
                "zstd prefix",
            )?;
            let n = zstd_check(
                zstd_sys::ZSTD_compress2(
                    c,
                    out.as_mut_ptr().cast(),
                    out.capacity(),
                    data.as_ptr().cast(),
                    data.len(),
                ),
                "zstd delta compression failed",
            )?;
            out.set_len(n);
        }
        Ok(out)
    })
}

/// Decode a codec-2 frame, given the prefix it was compressed against, into `dst`
/// (exactly `dst.len()` bytes).
pub fn decompress_with_prefix(payload: &[u8], prefix: &[u8], dst: &mut [u8]) -> CoreResult<()> {
    check_frame_header(payload, dst.len())?;
    DELTA_DCTX.with(|cell| -> CoreResult<()> {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            // SAFETY: plain constructor; NULL means out of memory.
            let p = unsafe { zstd_sys::ZSTD_createDCtx() };
            let p = std::ptr::NonNull::new(p)
                .ok_or_else(|| CoreError::corrupt("zstd context: out of memory"))?;
            *slot = Some(RawDCtx(p));
        }
        let d = slot.as_ref().expect("context set").0.as_ptr();
        // SAFETY: as in compress_with_prefix; `dst` is writable for its length.
        let n = unsafe {
            zstd_check(
                zstd_sys::ZSTD_DCtx_reset(
                    d,
                    zstd_sys::ZSTD_ResetDirective::ZSTD_reset_session_and_parameters,
                ),
                "zstd reset",
            )?;
            zstd_check(
                zstd_sys::ZSTD_DCtx_refPrefix(d, prefix.as_ptr().cast(), prefix.len()),
                "zstd prefix",
            )?;
            zstd_check(
                zstd_sys::ZSTD_decompressDCtx(
                    d,
                    dst.as_mut_ptr().cast(),
                    dst.len(),
                    payload.as_ptr().cast(),
                    payload.len(),
                ),
                "delta frame does not decode (damaged frame or wrong base)",
            )?
        };
        if n != dst.len() {
            return Err(CoreError::corrupt(format!(
                "delta frame decodes to {n} bytes, expected {}",
                dst.len()
            )));
        }
        Ok(())
    })
}

thread_local! {
    static DELTA_CCTX: RefCell<Option<RawCCtx>> = const { RefCell::new(None) };
    static DELTA_DCTX: RefCell<Option<RawDCtx>> = const { RefCell::new(None) };
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
    if codec == CODEC_DELTA {
        return Err(CoreError::corrupt(
            "a delta frame (codec 2) decodes only with its base chunks",
        ));
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
    codec_payload_list(py, &results?)
}

/// Compress each `(data, [base, ...])` against its bases, concatenated, in parallel:
/// `[(codec, payload), ...]` — codec 2 when the delta is clearly smaller than `data`
/// compressed alone (see `ingest::compress_groups_delta`), else codec 0/1.
#[pyfunction]
#[pyo3(signature = (items, level=3, threads=0))]
pub fn compress_delta_many<'py>(
    py: Python<'py>,
    items: Vec<(Bound<'py, PyAny>, Vec<Bound<'py, PyAny>>)>,
    level: i32,
    threads: usize,
) -> PyResult<Bound<'py, PyList>> {
    check_level(level)?;
    let mut parsed: Vec<(BytesView, Vec<u8>)> = Vec::with_capacity(items.len());
    for (data, bases) in &items {
        let mut prefix = Vec::new();
        for b in bases {
            prefix.extend_from_slice(borrow_bytes(b)?.as_slice());
        }
        parsed.push((borrow_bytes(data)?, prefix));
    }
    let total: usize = parsed
        .iter()
        .map(|(d, p)| d.as_slice().len() + p.len())
        .sum();
    let results: CoreResult<Vec<(u8, Vec<u8>)>> = py.detach(|| {
        run_sized(threads, total, || {
            parsed
                .par_iter()
                .map(|(d, p)| delta_or_plain(d.as_slice(), p, level))
                .collect()
        })
    });
    codec_payload_list(py, &results?)
}

/// `[(codec, payload), ...]` as a Python list of tuples.
fn codec_payload_list<'py>(
    py: Python<'py>,
    results: &[(u8, Vec<u8>)],
) -> PyResult<Bound<'py, PyList>> {
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

/// How much smaller than the data compressed alone a delta must be to be kept.
pub const DELTA_KEEP: f64 = 0.8;

/// A delta against `prefix` when clearly smaller than `data` compressed alone (a delta
/// under an eighth of the raw size is kept without trying the data alone); else the
/// ordinary encoding. Returns (codec, payload).
pub fn delta_or_plain(data: &[u8], prefix: &[u8], level: i32) -> CoreResult<(u8, Vec<u8>)> {
    if prefix.is_empty() || data.is_empty() {
        return compress(data, level);
    }
    let delta = compress_with_prefix(data, prefix, level)?;
    if delta.len() * 8 <= data.len() {
        return Ok((CODEC_DELTA, delta));
    }
    let (codec, alone) = compress(data, level)?;
    if (delta.len() as f64) < DELTA_KEEP * alone.len() as f64 {
        Ok((CODEC_DELTA, delta))
    } else {
        Ok((codec, alone))
    }
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
    let mut prefixes: Vec<Option<BytesView>> = Vec::new();
    for item in items.try_iter()? {
        let item = item?;
        let (codec, payload, raw_len, prefix): (
            i128,
            Bound<'py, PyAny>,
            i128,
            Option<Bound<'py, PyAny>>,
        ) = if item.len()? == 4 {
            item.extract()?
        } else {
            let (c, p, r): (i128, Bound<'py, PyAny>, i128) = item.extract()?;
            (c, p, r, None)
        };
        let codec = u8::try_from(codec)
            .map_err(|_| CoreError::corrupt(format!("unknown codec {codec}")))?;
        let raw_len = usize::try_from(raw_len)
            .map_err(|_| CoreError::corrupt(format!("invalid raw length {raw_len}")))?;
        parsed.push((codec, borrow_bytes(&payload)?, raw_len));
        prefixes.push(match prefix {
            Some(p) if !p.is_none() => Some(borrow_bytes(&p)?),
            _ => None,
        });
    }
    // Decode straight into the bytes objects we return: allocate them (uninitialised)
    // with the GIL, then fill them in parallel without it. Nothing else can see them
    // until this function returns.
    for ((codec, view, raw_len), prefix) in parsed.iter().zip(&prefixes) {
        if *codec == CODEC_DELTA {
            if prefix.is_none() {
                return Err(CoreError::corrupt(
                    "a delta frame (codec 2) decodes only with its base chunks",
                )
                .into());
            }
            check_frame_header(view.as_slice(), *raw_len)?;
        } else if *codec == CODEC_ZSTD {
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
            parsed
                .par_iter()
                .zip(targets.par_iter())
                .zip(prefixes.par_iter())
                .try_for_each(|(((codec, view, raw_len), &(addr, len)), prefix)| {
                    // SAFETY: each target is a distinct, freshly allocated bytes object of
                    // `len` bytes that no other code can reach yet.
                    let dst = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len) };
                    match prefix {
                        Some(p) if *codec == CODEC_DELTA => {
                            decompress_with_prefix(view.as_slice(), p.as_slice(), dst)
                        }
                        _ => decompress_to_slice(*codec, view.as_slice(), *raw_len, dst),
                    }
                })
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
    fn delta_round_trip_needs_its_base() {
        let mut base = Vec::new();
        let mut x: u64 = 12345;
        for i in 0..2000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            base.extend_from_slice(
                format!(
                    "{i},P{:06},{:.3},n {}\n",
                    x % 999_999,
                    (x % 100_000) as f64 / 7.0,
                    x >> 40
                )
                .as_bytes(),
            );
        }
        let mut data = base.clone();
        data[30_000..30_010].copy_from_slice(b"0123456789");
        let payload = compress_with_prefix(&data, &base, 3).unwrap();
        let alone = compress(&data, 3).unwrap().1.len();
        assert!(alone > 10_000);
        assert!(
            payload.len() < 200,
            "delta is {} bytes, alone {alone}",
            payload.len()
        );
        let mut out = vec![0u8; data.len()];
        decompress_with_prefix(&payload, &base, &mut out).unwrap();
        assert_eq!(out, data);
        let mut wrong = base.clone();
        wrong[100] ^= 1;
        let mut out2 = vec![0u8; data.len()];
        let decoded = decompress_with_prefix(&payload, &wrong, &mut out2);
        assert!(decoded.is_err() || out2 != data);
        assert!(decompress(CODEC_DELTA, &payload, data.len()).is_err());
    }

    #[test]
    fn levels_checked() {
        assert!(check_level(0).is_err());
        assert!(check_level(23).is_err());
        assert!(check_level(3).is_ok());
    }
}
