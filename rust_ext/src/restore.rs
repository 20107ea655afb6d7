//! Reading stored chunks back: assemble a file from frames in packs, verifying every
//! chunk against its digest, and verify whole packs.
//!
//! Work proceeds in windows of consecutive chunks so memory stays bounded whatever
//! the file size: the frames a window needs are read, decoded in parallel, each chunk
//! is re-hashed in parallel, and only then are its bytes written.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::compress::decompress;
use crate::error::{CoreError, CoreResult};
use crate::hashing::{Digest, HashKey};

/// Where one frame lives: pack (index into the caller's pack list), byte offset and
/// stored length in that pack, codec, and decoded length.
#[derive(Clone, Copy, Debug)]
pub struct FrameRef {
    pub pack: usize,
    pub offset: u64,
    pub stored_len: usize,
    pub codec: u8,
    pub raw_len: usize,
}

/// One chunk of the output: a slice of a decoded frame and the digest it must have.
#[derive(Clone, Copy, Debug)]
pub struct ChunkRef {
    pub frame: usize,
    pub offset: usize,
    pub len: usize,
    pub digest: Digest,
}

const WINDOW: usize = 32 << 20;

fn read_exact_at(file: &File, path: &Path, offset: u64, len: usize) -> CoreResult<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            CoreError::corrupt(format!(
                "{} ends before byte {} (truncated pack?)",
                path.display(),
                offset + len as u64
            ))
        } else {
            CoreError::from_io(e, path)
        }
    })?;
    Ok(buf)
}

/// Decode one frame and check it is long enough for the chunks that point into it.
fn load_frame(files: &[(PathBuf, File)], frames: &[FrameRef], idx: usize) -> CoreResult<Vec<u8>> {
    let f = frames
        .get(idx)
        .ok_or_else(|| CoreError::InvalidArgument(format!("frame index {idx} out of range")))?;
    let (path, file) = files
        .get(f.pack)
        .ok_or_else(|| CoreError::InvalidArgument(format!("pack index {} out of range", f.pack)))?;
    let payload =
        read_exact_at(file, path, f.offset, f.stored_len).map_err(|e| e.at(Some(idx), None))?;
    decompress(f.codec, &payload, f.raw_len).map_err(|e| e.at(Some(idx), None))
}

fn open_packs(packs: &[PathBuf]) -> CoreResult<Vec<(PathBuf, File)>> {
    packs
        .iter()
        .map(|p| {
            File::open(p)
                .map(|f| (p.clone(), f))
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        CoreError::corrupt(format!("pack {} is missing", p.display()))
                    }
                    _ => CoreError::from_io(e, p),
                })
        })
        .collect()
}

/// Write the chunks, in order, to `out`, verifying each one. Returns bytes written.
pub fn assemble<W: Write>(
    out: &mut W,
    out_name: &Path,
    packs: &[PathBuf],
    frames: &[FrameRef],
    chunks: &[ChunkRef],
    key: HashKey,
) -> CoreResult<u64> {
    let files = open_packs(packs)?;
    let mut written = 0u64;
    let mut start = 0usize;
    while start < chunks.len() {
        let mut end = start;
        let mut raw = 0usize;
        while end < chunks.len() && (raw < WINDOW || end == start) {
            raw += chunks[end].len;
            end += 1;
        }
        let window = &chunks[start..end];
        let mut needed: Vec<usize> = window.iter().map(|c| c.frame).collect();
        needed.sort_unstable();
        needed.dedup();
        let decoded: Vec<(usize, Vec<u8>)> = needed
            .par_iter()
            .map(|&i| load_frame(&files, frames, i).map(|d| (i, d)))
            .collect::<CoreResult<_>>()?;
        let by_frame: HashMap<usize, &Vec<u8>> = decoded.iter().map(|(i, d)| (*i, d)).collect();
        window
            .par_iter()
            .enumerate()
            .try_for_each(|(k, c)| -> CoreResult<()> {
                let data = by_frame[&c.frame];
                let bytes = data.get(c.offset..c.offset + c.len).ok_or_else(|| {
                    CoreError::corrupt(format!(
                        "chunk lies outside its frame ({}+{} > {})",
                        c.offset,
                        c.len,
                        data.len()
                    ))
                    .at(Some(c.frame), Some(start + k))
                })?;
                if key.hash(bytes) != c.digest {
                    return Err(CoreError::corrupt("chunk does not match its digest")
                        .at(Some(c.frame), Some(start + k)));
                }
                Ok(())
            })?;
        for c in window {
            let data = by_frame[&c.frame];
            out.write_all(&data[c.offset..c.offset + c.len])
                .map_err(|e| CoreError::from_io(e, out_name))?;
            written += c.len as u64;
        }
        start = end;
    }
    out.flush().map_err(|e| CoreError::from_io(e, out_name))?;
    Ok(written)
}

/// [`assemble`] into an open file descriptor owned by the caller.
pub fn assemble_fd(
    fd: i32,
    packs: &[PathBuf],
    frames: &[FrameRef],
    chunks: &[ChunkRef],
    key: HashKey,
) -> CoreResult<u64> {
    // SAFETY: the caller keeps `fd` open for the duration of the call; ManuallyDrop
    // makes sure we never close it.
    let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, &*file);
    let name = PathBuf::from(format!("<fd {fd}>"));
    assemble(&mut writer, &name, packs, frames, chunks, key)
}

/// A problem found by [`verify_frames`]: frame index, chunk index within the frame
/// (or `None` for the frame as a whole), and what is wrong.
pub type Problem = (usize, Option<usize>, String);

/// A frame and its chunks as (offset in frame, length, digest).
pub type FrameChunks = (FrameRef, Vec<(usize, usize, Digest)>);

/// Decode every frame of one pack and re-hash every chunk in it.
pub fn verify_frames(
    pack: &Path,
    frames: &[FrameChunks],
    key: HashKey,
) -> CoreResult<Vec<Problem>> {
    let files = open_packs(&[pack.to_path_buf()])?;
    let only: Vec<FrameRef> = frames
        .iter()
        .map(|(f, _)| FrameRef { pack: 0, ..*f })
        .collect();
    let problems: Vec<Vec<Problem>> = frames
        .par_iter()
        .enumerate()
        .map(|(i, (_, chunks))| match load_frame(&files, &only, i) {
            Err(e) => vec![(i, None, e.to_string())],
            Ok(data) => chunks
                .iter()
                .enumerate()
                .filter_map(|(k, &(off, len, digest))| match data.get(off..off + len) {
                    None => Some((i, Some(k), "chunk lies outside its frame".to_string())),
                    Some(bytes) if key.hash(bytes) != digest => {
                        Some((i, Some(k), "chunk does not match its digest".to_string()))
                    }
                    Some(_) => None,
                })
                .collect(),
        })
        .collect();
    Ok(problems.into_iter().flatten().collect())
}
