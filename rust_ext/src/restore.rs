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
use std::sync::Arc;

use rayon::prelude::*;

use crate::compress::{decompress_into, decompress_with_prefix, CODEC_DELTA};
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

/// A base of a delta frame: a slice `offset..offset + len` of another frame of the
/// plan. A delta frame's bases, concatenated in order, are its zstd reference prefix.
#[derive(Clone, Copy, Debug)]
pub struct BaseRef {
    pub frame: usize,
    pub offset: usize,
    pub len: usize,
}

/// Per frame of a plan, the bases it decodes against (empty for ordinary frames).
pub type Deps = [Vec<BaseRef>];

const WINDOW: usize = 8 << 20;

/// Read and decode one frame into `out` (whose allocation is reused).
fn load_frame_into(
    files: &[(PathBuf, File)],
    frames: &[FrameRef],
    idx: usize,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
    prefix: Option<&[u8]>,
) -> CoreResult<()> {
    let f = frames
        .get(idx)
        .ok_or_else(|| CoreError::InvalidArgument(format!("frame index {idx} out of range")))?;
    let (path, file) = files
        .get(f.pack)
        .ok_or_else(|| CoreError::InvalidArgument(format!("pack index {} out of range", f.pack)))?;
    scratch.resize(f.stored_len, 0);
    file.read_exact_at(scratch, f.offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            CoreError::corrupt(format!(
                "{} ends before byte {} (truncated pack?)",
                path.display(),
                f.offset + f.stored_len as u64
            ))
            .at(Some(idx), None)
        } else {
            CoreError::from_io(e, path)
        }
    })?;
    match prefix {
        Some(p) if f.codec == CODEC_DELTA => {
            out.clear();
            out.resize(f.raw_len, 0);
            decompress_with_prefix(scratch, p, out)
        }
        _ => decompress_into(f.codec, scratch, f.raw_len, out),
    }
    .map_err(|e| e.at(Some(idx), None))
}

fn load_frame(files: &[(PathBuf, File)], frames: &[FrameRef], idx: usize) -> CoreResult<Vec<u8>> {
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    load_frame_into(files, frames, idx, &mut scratch, &mut out, None)?;
    Ok(out)
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

/// One window of consecutive chunks with the frames it needs, decoded and verified.
struct Window {
    start: usize,
    end: usize,
    /// Decoded frames, by frame index (shared with the next window when it needs them).
    decoded: HashMap<usize, Arc<Vec<u8>>>,
}

/// Every frame `roots` need: themselves and, for delta frames, their bases (transitively).
fn with_bases(roots: &[usize], deps: &Deps) -> Vec<usize> {
    let mut seen: std::collections::HashSet<usize> = roots.iter().copied().collect();
    let mut stack: Vec<usize> = roots.to_vec();
    while let Some(f) = stack.pop() {
        for b in deps.get(f).map_or(&[][..], |v| v.as_slice()) {
            if seen.insert(b.frame) {
                stack.push(b.frame);
            }
        }
    }
    let mut out: Vec<usize> = seen.into_iter().collect();
    out.sort_unstable();
    out
}

/// A delta frame's reference prefix: its bases' bytes, concatenated.
fn prefix_of(f: usize, deps: &Deps, decoded: &HashMap<usize, Arc<Vec<u8>>>) -> CoreResult<Vec<u8>> {
    let mut prefix = Vec::new();
    for b in &deps[f] {
        let data = decoded
            .get(&b.frame)
            .ok_or_else(|| CoreError::InvalidArgument(format!("base frame {} missing", b.frame)))?;
        let slice = data.get(b.offset..b.offset + b.len).ok_or_else(|| {
            CoreError::corrupt("a base chunk lies outside its frame").at(Some(b.frame), None)
        })?;
        prefix.extend_from_slice(slice);
    }
    Ok(prefix)
}

/// Decode the frames of chunks `start..end` and verify every chunk, in parallel.
/// Frame buffers come from (and go back to) `pool` so memory is reused, not refaulted.
/// Delta frames are decoded after their bases, in rounds.
#[allow(clippy::too_many_arguments)]
fn decode_window(
    files: &[(PathBuf, File)],
    frames: &[FrameRef],
    deps: &Deps,
    chunks: &[ChunkRef],
    start: usize,
    end: usize,
    key: HashKey,
    pool: &mut Vec<Vec<u8>>,
    previous: Option<&HashMap<usize, Arc<Vec<u8>>>>,
) -> CoreResult<Window> {
    let window = &chunks[start..end];
    let mut roots: Vec<usize> = window.iter().map(|c| c.frame).collect();
    roots.sort_unstable();
    roots.dedup();
    let needed = with_bases(&roots, deps);
    let mut decoded: HashMap<usize, Arc<Vec<u8>>> = HashMap::new();
    let mut todo: Vec<usize> = Vec::new();
    for &i in &needed {
        match previous.and_then(|p| p.get(&i)) {
            Some(d) => {
                decoded.insert(i, d.clone());
            }
            None => todo.push(i),
        }
    }
    while !todo.is_empty() {
        // Frames whose bases are all decoded go in this round.
        let (ready, later): (Vec<usize>, Vec<usize>) = todo.iter().partition(|&&i| {
            deps.get(i)
                .is_none_or(|v| v.iter().all(|b| decoded.contains_key(&b.frame)))
        });
        if ready.is_empty() {
            return Err(CoreError::corrupt(
                "delta frames refer to each other in a cycle",
            ));
        }
        let jobs: Vec<(usize, Vec<u8>, Option<Vec<u8>>)> = ready
            .iter()
            .map(|&i| {
                let prefix = if deps.get(i).is_some_and(|v| !v.is_empty()) {
                    Some(prefix_of(i, deps, &decoded)?)
                } else {
                    None
                };
                Ok((i, pool.pop().unwrap_or_default(), prefix))
            })
            .collect::<CoreResult<_>>()?;
        let fresh: Vec<(usize, Vec<u8>)> = jobs
            .into_par_iter()
            .map_init(Vec::new, |scratch, (i, mut buf, prefix)| {
                load_frame_into(files, frames, i, scratch, &mut buf, prefix.as_deref())
                    .map(|_| (i, buf))
            })
            .collect::<CoreResult<_>>()?;
        decoded.extend(fresh.into_iter().map(|(i, d)| (i, Arc::new(d))));
        todo = later;
    }
    window
        .par_iter()
        .enumerate()
        .try_for_each(|(k, c)| -> CoreResult<()> {
            let data = &decoded[&c.frame];
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
    Ok(Window {
        start,
        end,
        decoded,
    })
}

/// Write a verified window, coalescing chunks that lie back to back in one frame.
fn write_window<W: Write>(
    out: &mut W,
    out_name: &Path,
    chunks: &[ChunkRef],
    w: &Window,
) -> CoreResult<u64> {
    let mut written = 0u64;
    let mut run: Option<(usize, usize, usize)> = None; // frame, from, to
    let flush = |out: &mut W, run: (usize, usize, usize)| -> CoreResult<()> {
        let (f, a, b) = run;
        out.write_all(&w.decoded[&f][a..b])
            .map_err(|e| CoreError::from_io(e, out_name))
    };
    for c in &chunks[w.start..w.end] {
        match run {
            Some((f, a, b)) if f == c.frame && b == c.offset => run = Some((f, a, b + c.len)),
            _ => {
                if let Some(r) = run {
                    flush(out, r)?;
                }
                run = Some((c.frame, c.offset, c.offset + c.len));
            }
        }
        written += c.len as u64;
    }
    if let Some(r) = run {
        flush(out, r)?;
    }
    Ok(written)
}

/// The end of the window that starts at `start`: bounded both by the bytes it writes
/// and by the decoded size of the frames it needs (a later version may draw a little
/// from each of many frames, and every needed frame is decoded whole).
fn window_end(frames: &[FrameRef], deps: &Deps, chunks: &[ChunkRef], start: usize) -> usize {
    let mut end = start;
    let mut raw = 0usize;
    let mut decoded = 0usize;
    let mut seen: std::collections::HashSet<usize> = std::collections::HashSet::new();
    while end < chunks.len() && ((raw < WINDOW && decoded < WINDOW) || end == start) {
        let c = &chunks[end];
        if !seen.contains(&c.frame) {
            for f in with_bases(&[c.frame], deps) {
                if seen.insert(f) {
                    decoded += frames.get(f).map_or(0, |f| f.raw_len);
                }
            }
        }
        raw += c.len;
        end += 1;
    }
    end
}

/// Write the chunks, in order, to `out`, verifying each one before any of its window
/// is written. The next window is decoded while the current one is written.
pub fn assemble<W: Write + Send>(
    out: &mut W,
    out_name: &Path,
    packs: &[PathBuf],
    frames: &[FrameRef],
    deps: &Deps,
    chunks: &[ChunkRef],
    key: HashKey,
) -> CoreResult<u64> {
    let files = open_packs(packs)?;
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut written = 0u64;
    if chunks.is_empty() {
        return Ok(0);
    }
    let first_end = window_end(frames, deps, chunks, 0);
    let mut current = decode_window(
        &files, frames, deps, chunks, 0, first_end, key, &mut pool, None,
    )?;
    loop {
        let next_start = current.end;
        if next_start >= chunks.len() {
            written += write_window(out, out_name, chunks, &current)?;
            break;
        }
        let next_end = window_end(frames, deps, chunks, next_start);
        let mut spare = std::mem::take(&mut pool);
        let prev = &current.decoded;
        let (w, next) = rayon::join(
            || write_window(out, out_name, chunks, &current),
            || {
                decode_window(
                    &files,
                    frames,
                    deps,
                    chunks,
                    next_start,
                    next_end,
                    key,
                    &mut spare,
                    Some(prev),
                )
            },
        );
        written += w?;
        let next = next?;
        pool = spare;
        // Buffers no longer shared with the next window go back to the pool.
        pool.extend(
            current
                .decoded
                .into_values()
                .filter_map(|a| Arc::try_unwrap(a).ok()),
        );
        // Keep reuse, not every buffer a window ever needed: about two windows' worth
        // (memory stays bounded by the window, not by the file).
        let mut kept = 0usize;
        pool.retain(|b| {
            kept += b.capacity();
            kept <= 2 * WINDOW
        });
        current = next;
    }
    out.flush().map_err(|e| CoreError::from_io(e, out_name))?;
    Ok(written)
}

/// [`assemble`] into an open file descriptor owned by the caller.
pub fn assemble_fd(
    fd: i32,
    packs: &[PathBuf],
    frames: &[FrameRef],
    deps: &Deps,
    chunks: &[ChunkRef],
    key: HashKey,
) -> CoreResult<u64> {
    // SAFETY: the caller keeps `fd` open for the duration of the call; ManuallyDrop
    // makes sure we never close it.
    let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    let mut writer: &File = &file;
    let name = PathBuf::from(format!("<fd {fd}>"));
    assemble(&mut writer, &name, packs, frames, deps, chunks, key)
}

/// The bytes of `chunks` (any order, any files), each verified against its digest:
/// their frames and, for delta frames, the bases are decoded once, in parallel.
pub fn read_chunks(
    packs: &[PathBuf],
    frames: &[FrameRef],
    deps: &Deps,
    chunks: &[ChunkRef],
    key: HashKey,
) -> CoreResult<Vec<Vec<u8>>> {
    let singles: Vec<Vec<usize>> = (0..chunks.len()).map(|i| vec![i]).collect();
    read_joined(packs, frames, deps, chunks, &singles, key)
}

/// For each list of indices into `chunks`, those chunks' bytes concatenated (a delta's
/// reference prefix), every chunk verified; frames decoded once each, in parallel.
pub fn read_joined(
    packs: &[PathBuf],
    frames: &[FrameRef],
    deps: &Deps,
    chunks: &[ChunkRef],
    joins: &[Vec<usize>],
    key: HashKey,
) -> CoreResult<Vec<Vec<u8>>> {
    if chunks.is_empty() {
        return Ok(joins.iter().map(|_| Vec::new()).collect());
    }
    let files = open_packs(packs)?;
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let w = decode_window(
        &files,
        frames,
        deps,
        chunks,
        0,
        chunks.len(),
        key,
        &mut pool,
        None,
    )?;
    joins
        .iter()
        .map(|idx| {
            let mut out = Vec::with_capacity(
                idx.iter()
                    .map(|&i| chunks.get(i).map_or(0, |c| c.len))
                    .sum(),
            );
            for &i in idx {
                let c = chunks.get(i).ok_or_else(|| {
                    CoreError::InvalidArgument(format!("chunk index {i} out of range"))
                })?;
                out.extend_from_slice(&w.decoded[&c.frame][c.offset..c.offset + c.len]);
            }
            Ok(out)
        })
        .collect()
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
