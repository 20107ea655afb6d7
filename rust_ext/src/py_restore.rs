//! Python bindings for reading stored chunks back (see `restore.rs`).

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::error::CoreError;
use crate::hashing::{Digest, HashKey};
use crate::pool::{run_in, run_sized};
use crate::restore::{
    assemble_fd, read_chunks as read_chunks_core, verify_frames as verify_frames_core, BaseRef,
    ChunkRef, FrameChunks, FrameRef,
};

pub(crate) type FrameTuple = (usize, u64, usize, u8, usize);
pub(crate) type ChunkTuple = (usize, usize, usize, Vec<u8>);
/// Per delta frame index, its bases as (frame index, offset, length).
pub(crate) type BasesMap = std::collections::HashMap<usize, Vec<(usize, usize, usize)>>;
type PackFrameTuple = (u64, usize, u8, usize, Vec<(usize, usize, Vec<u8>)>);

fn to_digest(v: &[u8]) -> PyResult<Digest> {
    v.try_into().map_err(|_| {
        CoreError::InvalidArgument(format!("a digest is 32 bytes, got {}", v.len())).into()
    })
}

/// Write a file's chunks to the open descriptor `fd`, verifying every chunk.
///
/// `frames`: `[(pack_index, offset, stored_len, codec, raw_len)]`;
/// `chunks`: `[(frame_index, offset_in_frame, length, digest)]` in file order;
/// `bases`: `{frame_index: [(base_frame_index, offset, length), ...]}` for delta frames
/// (their bases are frames of the same list, decoded first).
#[pyfunction]
#[pyo3(signature = (fd, packs, frames, chunks, key=None, threads=0, bases=None))]
#[allow(clippy::too_many_arguments)]
pub fn assemble_file(
    py: Python<'_>,
    fd: i32,
    packs: Vec<PathBuf>,
    frames: Vec<FrameTuple>,
    chunks: Vec<ChunkTuple>,
    key: Option<&[u8]>,
    threads: usize,
    bases: Option<BasesMap>,
) -> PyResult<u64> {
    let key = HashKey::from_opt(key)?;
    let (frames, deps, chunks) = parse_plan(frames, chunks, bases)?;
    let total: usize = chunks.iter().map(|c| c.len).sum();
    Ok(py.detach(|| {
        run_sized(threads, total, || {
            assemble_fd(fd, &packs, &frames, &deps, &chunks, key)
        })
    })?)
}

/// Frames, each frame's bases, and the chunks wanted.
pub(crate) type Plan = (Vec<FrameRef>, Vec<Vec<BaseRef>>, Vec<ChunkRef>);

pub(crate) fn parse_plan(
    frames: Vec<FrameTuple>,
    chunks: Vec<ChunkTuple>,
    bases: Option<BasesMap>,
) -> PyResult<Plan> {
    let frames: Vec<FrameRef> = frames
        .into_iter()
        .map(|(pack, offset, stored_len, codec, raw_len)| FrameRef {
            pack,
            offset,
            stored_len,
            codec,
            raw_len,
        })
        .collect();
    let mut deps: Vec<Vec<BaseRef>> = vec![Vec::new(); frames.len()];
    for (f, list) in bases.unwrap_or_default() {
        let slot = deps
            .get_mut(f)
            .ok_or_else(|| CoreError::InvalidArgument(format!("frame index {f} out of range")))?;
        for (frame, offset, len) in list {
            if frame >= frames.len() {
                return Err(
                    CoreError::InvalidArgument(format!("base frame {frame} out of range")).into(),
                );
            }
            slot.push(BaseRef { frame, offset, len });
        }
    }
    let chunks: Vec<ChunkRef> = chunks
        .into_iter()
        .map(|(frame, offset, len, d)| {
            if frame >= frames.len() {
                return Err(CoreError::InvalidArgument(format!(
                    "frame index {frame} out of range"
                ))
                .into());
            }
            Ok(ChunkRef {
                frame,
                offset,
                len,
                digest: to_digest(&d)?,
            })
        })
        .collect::<PyResult<_>>()?;
    Ok((frames, deps, chunks))
}

/// The verified bytes of chunks given as a read plan (like `assemble_file`'s), in
/// order: `[bytes, ...]`. Frames and bases are decoded once each, in parallel.
#[pyfunction]
#[pyo3(signature = (packs, frames, chunks, key=None, threads=0, bases=None))]
pub fn read_chunks<'py>(
    py: Python<'py>,
    packs: Vec<PathBuf>,
    frames: Vec<FrameTuple>,
    chunks: Vec<ChunkTuple>,
    key: Option<&[u8]>,
    threads: usize,
    bases: Option<BasesMap>,
) -> PyResult<Bound<'py, pyo3::types::PyList>> {
    let key = HashKey::from_opt(key)?;
    let (frames, deps, chunks) = parse_plan(frames, chunks, bases)?;
    let total: usize = frames.iter().map(|f| f.raw_len).sum();
    let out = py.detach(|| {
        run_sized(threads, total, || {
            read_chunks_core(&packs, &frames, &deps, &chunks, key)
        })
    })?;
    pyo3::types::PyList::new(py, out.iter().map(|b| pyo3::types::PyBytes::new(py, b)))
}

/// Decode every frame of a pack and re-hash its chunks.
///
/// `frames`: `[(offset, stored_len, codec, raw_len, [(offset_in_frame, length, digest)])]`.
/// Returns problems as `[(frame_index, chunk_index | None, message)]`.
#[pyfunction]
#[pyo3(signature = (pack, frames, key=None, threads=0))]
pub fn verify_frames(
    py: Python<'_>,
    pack: PathBuf,
    frames: Vec<PackFrameTuple>,
    key: Option<&[u8]>,
    threads: usize,
) -> PyResult<Vec<(usize, Option<usize>, String)>> {
    let key = HashKey::from_opt(key)?;
    let parsed: Vec<FrameChunks> = frames
        .into_iter()
        .map(|(offset, stored_len, codec, raw_len, chunks)| {
            let chunks = chunks
                .into_iter()
                .map(|(o, l, d)| Ok((o, l, to_digest(&d)?)))
                .collect::<PyResult<Vec<_>>>()?;
            Ok((
                FrameRef {
                    pack: 0,
                    offset,
                    stored_len,
                    codec,
                    raw_len,
                },
                chunks,
            ))
        })
        .collect::<PyResult<_>>()?;
    Ok(py.detach(|| run_in(threads, || verify_frames_core(&pack, &parsed, key)))?)
}
