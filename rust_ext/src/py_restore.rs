//! Python bindings for reading stored chunks back (see `restore.rs`).

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::error::CoreError;
use crate::hashing::{Digest, HashKey};
use crate::pool::{run_in, run_sized};
use crate::restore::{
    assemble_fd, verify_frames as verify_frames_core, ChunkRef, FrameChunks, FrameRef,
};

type FrameTuple = (usize, u64, usize, u8, usize);
type ChunkTuple = (usize, usize, usize, Vec<u8>);
type PackFrameTuple = (u64, usize, u8, usize, Vec<(usize, usize, Vec<u8>)>);

fn to_digest(v: &[u8]) -> PyResult<Digest> {
    v.try_into().map_err(|_| {
        CoreError::InvalidArgument(format!("a digest is 32 bytes, got {}", v.len())).into()
    })
}

/// Write a file's chunks to the open descriptor `fd`, verifying every chunk.
///
/// `frames`: `[(pack_index, offset, stored_len, codec, raw_len)]`;
/// `chunks`: `[(frame_index, offset_in_frame, length, digest)]` in file order.
#[pyfunction]
#[pyo3(signature = (fd, packs, frames, chunks, key=None, threads=0))]
pub fn assemble_file(
    py: Python<'_>,
    fd: i32,
    packs: Vec<PathBuf>,
    frames: Vec<FrameTuple>,
    chunks: Vec<ChunkTuple>,
    key: Option<&[u8]>,
    threads: usize,
) -> PyResult<u64> {
    let key = HashKey::from_opt(key)?;
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
    let chunks: Vec<ChunkRef> = chunks
        .into_iter()
        .map(|(frame, offset, len, d)| {
            Ok(ChunkRef {
                frame,
                offset,
                len,
                digest: to_digest(&d)?,
            })
        })
        .collect::<PyResult<_>>()?;
    let total: usize = chunks.iter().map(|c| c.len).sum();
    Ok(py.detach(|| {
        run_sized(threads, total, || {
            assemble_fd(fd, &packs, &frames, &chunks, key)
        })
    })?)
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
