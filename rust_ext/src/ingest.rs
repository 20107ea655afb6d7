//! One pass over a file: read, cut, hash every chunk and the whole file; then
//! compress only the chunks the caller marks as new, without reading the file again.
//!
//! A reader thread fills fixed-size blocks, a cutter thread cuts (in parallel
//! segments) and hashes them, and the caller receives finished blocks through a
//! bounded channel while it looks digests up in its index and compresses the new
//! chunks. Memory stays bounded by the channel depths times the block size, however
//! large the file.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};
use rayon::prelude::*;

use crate::chunker::{cut_parallel_with, ChunkerParams};
use crate::compress::{check_level, compress, delta_or_plain};
use crate::error::{CoreError, CoreResult};
use crate::hashing::{Digest, HashKey};
use crate::pool::{pool, run_sized};

/// Bytes read per block. The ingest pipeline holds about four blocks at once (one
/// read ahead, one cut, one queued, one being compressed), so this bounds a commit's
/// memory: 4 MiB keeps a commit's peak RSS near 100 MiB at any file size, with the same
/// speed as 16 MiB on two cores (every block still has ~250 chunks to share out).
pub const DEFAULT_BLOCK: usize = 4 << 20;

/// Complete chunks cut from one block of input: `bytes()[0]` starts a chunk.
///
/// `data` carries headroom at the front so that the bytes left over from the
/// previous block (always shorter than the max chunk size) can be put in front of
/// freshly read bytes without copying those.
pub struct Block {
    pub data: Vec<u8>,
    pub start: usize,
    pub file_offset: u64,
    pub ends: Vec<usize>,
    pub digests: Vec<Digest>,
    /// Where the buffer goes back when the block is dropped, so the reader reuses
    /// warm memory instead of faulting in fresh pages for every block.
    recycle: Option<Sender<Vec<u8>>>,
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(tx) = self.recycle.take() {
            let _ = tx.try_send(std::mem::take(&mut self.data));
        }
    }
}

impl Block {
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..]
    }

    pub fn range(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        start..self.ends[i]
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// A frame: consecutive chunks `first..first + count` compressed together.
pub struct Frame {
    pub codec: u8,
    pub payload: Vec<u8>,
    pub first: usize,
    pub count: usize,
    pub raw_len: usize,
}

/// Group the sorted chunk `indices` into runs of consecutive chunks of at most
/// `frame_size` raw bytes (0: one chunk per frame) and compress the runs in parallel.
pub fn compress_indices(
    block: &Block,
    indices: &[usize],
    level: i32,
    frame_size: usize,
) -> CoreResult<Vec<Frame>> {
    check_level(level)?;
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut prev: Option<usize> = None;
    let mut acc = 0usize;
    for &i in indices {
        if i >= block.len() {
            return Err(CoreError::InvalidArgument(format!(
                "chunk index {i} out of range for a batch of {} chunks",
                block.len()
            )));
        }
        if let Some(p) = prev {
            if i <= p {
                return Err(CoreError::InvalidArgument(
                    "chunk indices must be strictly increasing".into(),
                ));
            }
        }
        let len = block.range(i).len();
        let extend = match (prev, groups.last()) {
            (Some(p), Some(_)) => i == p + 1 && frame_size > 0 && acc + len <= frame_size,
            _ => false,
        };
        if extend {
            groups.last_mut().expect("group").1 += 1;
            acc += len;
        } else {
            groups.push((i, 1));
            acc = len;
        }
        prev = Some(i);
    }
    groups
        .par_iter()
        .map(|&(first, count)| {
            let start = block.range(first).start;
            let end = block.range(first + count - 1).end;
            let raw = &block.bytes()[start..end];
            let (codec, payload) = compress(raw, level)?;
            Ok(Frame {
                codec,
                payload,
                first,
                count,
                raw_len: raw.len(),
            })
        })
        .collect()
}

/// Compress each group of consecutive chunks `(first, count, prefix)` against its
/// prefix (the base chunks' bytes, concatenated): a delta frame (codec 2) when that is
/// clearly smaller than compressing the chunks alone, else an ordinary frame
/// (`compress::delta_or_plain`).
pub fn compress_groups_delta(
    block: &Block,
    groups: &[(usize, usize, &[u8])],
    level: i32,
) -> CoreResult<Vec<Frame>> {
    check_level(level)?;
    for &(first, count, _) in groups {
        if count == 0 || first + count > block.len() {
            return Err(CoreError::InvalidArgument(format!(
                "chunks {first}..{} out of range for a batch of {} chunks",
                first + count,
                block.len()
            )));
        }
    }
    groups
        .par_iter()
        .map(|&(first, count, prefix)| {
            let start = block.range(first).start;
            let end = block.range(first + count - 1).end;
            let raw = &block.bytes()[start..end];
            let frame = |codec, payload| Frame {
                codec,
                payload,
                first,
                count,
                raw_len: raw.len(),
            };
            let (codec, payload) = delta_or_plain(raw, prefix, level)?;
            Ok(frame(codec, payload))
        })
        .collect()
}

/// Cut `buf` (which starts at a chunk boundary) and hash its complete chunks.
/// Returns the chunk ends and digests; bytes after the last end are the carry.
fn cut_and_hash(
    params: &ChunkerParams,
    key: HashKey,
    buf: &[u8],
    eof: bool,
) -> (Vec<usize>, Vec<Digest>) {
    cut_parallel_with(params, buf, eof, region_size(params), |chunk| {
        key.hash(chunk)
    })
}

/// Region size for parallel cutting: large enough that resynchronising at region
/// starts costs little, small enough that a block splits into work for every thread.
pub fn region_size(params: &ChunkerParams) -> usize {
    (params.avg_size * 32).clamp(1 << 20, 4 << 20)
}

pub enum Message {
    Block(Block),
    Done { digest: Digest, size: u64 },
}

/// The state machine that turns read blocks into chunked blocks.
struct Cutter {
    params: ChunkerParams,
    key: HashKey,
    /// `None` when another thread hashes the whole file (the threaded pipeline).
    file_hasher: Option<blake3::Hasher>,
    carry: Vec<u8>,
    offset: u64,
    size: u64,
    recycle: Option<Sender<Vec<u8>>>,
}

impl Cutter {
    fn new(params: ChunkerParams, key: HashKey) -> Self {
        Self {
            params,
            key,
            file_hasher: Some(key.hasher()),
            carry: Vec::new(),
            offset: 0,
            size: 0,
            recycle: None,
        }
    }

    /// Feed a buffer of `headroom` spare bytes followed by freshly read bytes;
    /// `eof` when no more will follow.
    fn feed(&mut self, mut buf: Vec<u8>, headroom: usize, eof: bool) -> Option<Block> {
        self.size += (buf.len() - headroom) as u64;
        let carry_len = self.carry.len();
        let start = if carry_len <= headroom {
            buf[headroom - carry_len..headroom].copy_from_slice(&self.carry);
            headroom - carry_len
        } else {
            // Only when a caller gave too little headroom: copy everything once.
            let mut b = std::mem::take(&mut self.carry);
            b.extend_from_slice(&buf[headroom..]);
            buf = b;
            0
        };
        self.carry.clear();
        let (ends, digests) = {
            let view = &buf[start..];
            self.hash_and_cut(view, carry_len, eof)
        };
        let used = ends.last().copied().unwrap_or(0);
        let view_len = buf.len() - start;
        if used < view_len {
            self.carry.extend_from_slice(&buf[start + used..]);
            buf.truncate(start + used);
        }
        if ends.is_empty() {
            return None;
        }
        let block = Block {
            data: buf,
            start,
            file_offset: self.offset,
            ends,
            digests,
            recycle: self.recycle.clone(),
        };
        self.offset += used as u64;
        Some(block)
    }

    fn hash_and_cut(
        &mut self,
        buf: &[u8],
        fresh_from: usize,
        eof: bool,
    ) -> (Vec<usize>, Vec<Digest>) {
        let params = &self.params;
        let key = self.key;
        match &mut self.file_hasher {
            Some(hasher) if buf.len() < crate::pool::INLINE_BYTES => {
                hasher.update(&buf[fresh_from..]);
                cut_and_hash(params, key, buf, eof)
            }
            Some(hasher) => {
                let (_, result) = rayon::join(
                    || {
                        hasher.update(&buf[fresh_from..]);
                    },
                    || cut_and_hash(params, key, buf, eof),
                );
                result
            }
            None => cut_and_hash(params, key, buf, eof),
        }
    }

    fn headroom(&self) -> usize {
        self.params.max_size
    }

    fn digest(&self) -> Digest {
        *self
            .file_hasher
            .as_ref()
            .expect("digest of a cutter that hashes the file")
            .finalize()
            .as_bytes()
    }
}

fn open_file(path: &Path) -> CoreResult<File> {
    let file = File::open(path).map_err(|e| CoreError::from_io(e, path))?;
    let meta = file.metadata().map_err(|e| CoreError::from_io(e, path))?;
    if meta.is_dir() {
        return Err(CoreError::IsADirectory {
            path: path.display().to_string(),
        });
    }
    Ok(file)
}

/// Read up to `n` bytes after `headroom` zeroed bytes; fewer only at end of file.
#[allow(dead_code)]
fn read_block(file: &mut File, headroom: usize, n: usize, path: &Path) -> CoreResult<Vec<u8>> {
    read_block_into(Vec::with_capacity(headroom + n), file, headroom, n, path)
}

fn read_block_into(
    mut buf: Vec<u8>,
    file: &mut File,
    headroom: usize,
    n: usize,
    path: &Path,
) -> CoreResult<Vec<u8>> {
    buf.clear();
    buf.reserve(headroom + n);
    buf.resize(headroom, 0);
    file.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| CoreError::from_io(e, path))?;
    Ok(buf)
}

/// Where a file chunker gets its blocks from.
enum Source {
    /// Everything inline on the caller's thread (threads == 1).
    Inline {
        file: File,
        path: PathBuf,
        cutter: Box<Cutter>,
        state: InlineState,
    },
    /// Reader and cutter threads ahead of the caller.
    Threaded { rx: Receiver<CoreResult<Message>> },
}

#[derive(PartialEq, Eq)]
enum InlineState {
    Reading,
    DonePending,
    Finished,
}

pub struct FileChunkerCore {
    source: Source,
    block_size: usize,
}

fn thread_error(path: &Path, what: &str, e: std::io::Error) -> CoreError {
    CoreError::Io {
        path: path.display().to_string(),
        message: format!("cannot start {what} thread: {e}"),
        errno: None,
    }
}

impl FileChunkerCore {
    pub fn open(
        path: &Path,
        params: ChunkerParams,
        key: HashKey,
        threads: usize,
        block_size: usize,
    ) -> CoreResult<Self> {
        let mut file = open_file(path)?;
        let block_size = block_size.max(params.max_size * 4).max(1 << 16);
        let mut cutter = Box::new(Cutter::new(params, key));
        // A file that fits in one block gains nothing from the reader pipeline, and
        // starting its threads would cost more than cutting it.
        let small = file
            .metadata()
            .map(|m| (m.len() as usize) < block_size)
            .unwrap_or(false);
        if threads == 1 || small {
            return Ok(Self {
                source: Source::Inline {
                    file,
                    path: path.to_path_buf(),
                    cutter,
                    state: InlineState::Reading,
                },
                block_size,
            });
        }
        let headroom = cutter.headroom();
        let (recycle_tx, recycle_rx) = bounded::<Vec<u8>>(2);
        cutter.recycle = Some(recycle_tx);
        // The whole-file hash is computed as each block is read, alongside the cutting
        // of the previous block: both are tasks of the same pool, so the two cores
        // share all the work with no extra thread to oversubscribe them.
        cutter.file_hasher = None;
        let (tx, rx) = bounded::<CoreResult<Message>>(1);
        let read_path = path.to_path_buf();
        let work_pool = pool(threads);
        std::thread::Builder::new()
            .name("reprocas-ingest".into())
            .spawn(move || {
                work_pool.install(|| {
                    let mut hasher = key.hasher();
                    let mut read_next =
                        |hasher: &mut blake3::Hasher| -> CoreResult<(Vec<u8>, bool)> {
                            let buf = recycle_rx
                                .try_recv()
                                .unwrap_or_else(|_| Vec::with_capacity(headroom + block_size));
                            let buf =
                                read_block_into(buf, &mut file, headroom, block_size, &read_path)?;
                            let eof = buf.len() - headroom < block_size;
                            hasher.update_rayon(&buf[headroom..]);
                            Ok((buf, eof))
                        };
                    let mut next = read_next(&mut hasher);
                    loop {
                        let (buf, eof) = match next {
                            Ok(v) => v,
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                        };
                        let block = if eof {
                            next = Err(CoreError::InvalidArgument("read past end".into()));
                            cutter.feed(buf, headroom, true)
                        } else {
                            let (n, block) = rayon::join(
                                || read_next(&mut hasher),
                                || cutter.feed(buf, headroom, false),
                            );
                            next = n;
                            block
                        };
                        if let Some(b) = block {
                            if tx.send(Ok(Message::Block(b))).is_err() {
                                return;
                            }
                        }
                        if eof {
                            let _ = tx.send(Ok(Message::Done {
                                digest: *hasher.finalize().as_bytes(),
                                size: cutter.size,
                            }));
                            return;
                        }
                    }
                })
            })
            .map_err(|e| thread_error(path, "ingest", e))?;
        Ok(Self {
            source: Source::Threaded { rx },
            block_size,
        })
    }

    /// The next message, or `None` once `Done` has been delivered.
    pub fn next_message(&mut self) -> Option<CoreResult<Message>> {
        let block_size = self.block_size;
        match &mut self.source {
            Source::Threaded { rx } => rx.recv().ok(),
            Source::Inline {
                file,
                path,
                cutter,
                state,
            } => loop {
                match state {
                    InlineState::Finished => return None,
                    InlineState::DonePending => {
                        *state = InlineState::Finished;
                        return Some(Ok(Message::Done {
                            digest: cutter.digest(),
                            size: cutter.size,
                        }));
                    }
                    InlineState::Reading => {}
                }
                let headroom = cutter.headroom();
                let buf = match read_block(file, headroom, block_size, path) {
                    Ok(b) => b,
                    Err(e) => {
                        *state = InlineState::Finished;
                        return Some(Err(e));
                    }
                };
                let eof = buf.len() - headroom < block_size;
                if eof {
                    *state = InlineState::DonePending;
                }
                let work = buf.len();
                if let Some(b) = run_sized(1, work, || cutter.feed(buf, headroom, eof)) {
                    return Some(Ok(Message::Block(b)));
                }
            },
        }
    }
}

/// Every chunk of a file as (offset, length, digest), the file digest and its size.
pub type FileChunks = (Vec<(u64, u32, Digest)>, Digest, u64);

/// One-shot: cut and hash a whole file, returning every chunk and the file digest.
pub fn chunk_file_all(
    path: &Path,
    params: ChunkerParams,
    key: HashKey,
    threads: usize,
) -> CoreResult<FileChunks> {
    let mut core = FileChunkerCore::open(path, params, key, threads, DEFAULT_BLOCK)?;
    let mut chunks = Vec::new();
    while let Some(msg) = core.next_message() {
        match msg? {
            Message::Block(b) => {
                let mut start = 0usize;
                for (end, digest) in b.ends.iter().zip(&b.digests) {
                    chunks.push((b.file_offset + start as u64, (end - start) as u32, *digest));
                    start = *end;
                }
            }
            Message::Done { digest, size } => return Ok((chunks, digest, size)),
        }
    }
    Err(CoreError::Io {
        path: path.display().to_string(),
        message: "chunking stopped before the end of the file".into(),
        errno: None,
    })
}

/// One-shot over an in-memory buffer.
pub fn chunk_buffer_all(
    params: &ChunkerParams,
    key: HashKey,
    data: &[u8],
) -> (Vec<usize>, Vec<Digest>, Digest) {
    let mut hasher = key.hasher();
    let (_, (ends, digests)) = rayon::join(
        || {
            if data.len() >= 1 << 20 {
                hasher.update_rayon(data);
            } else {
                hasher.update(data);
            }
        },
        || cut_and_hash(params, key, data, true),
    );
    (ends, digests, *hasher.finalize().as_bytes())
}

/// Incremental chunking of input that arrives in arbitrary reads; the cut points
/// equal those of the one-shot calls on the concatenated input.
pub struct StreamCore {
    cutter: Cutter,
    /// Input not yet cut, after `headroom` spare bytes: small reads are gathered so
    /// that each cut pass covers a large buffer instead of re-scanning the carry.
    pending: Vec<u8>,
    finished: bool,
}

impl StreamCore {
    pub fn new(params: ChunkerParams, key: HashKey) -> Self {
        let cutter = Cutter::new(params, key);
        let pending = vec![0; cutter.headroom()];
        Self {
            cutter,
            pending,
            finished: false,
        }
    }

    fn threshold(&self) -> usize {
        (self.cutter.params.max_size * 4).max(1 << 20)
    }

    pub fn update(&mut self, data: &[u8]) -> CoreResult<Option<Block>> {
        if self.finished {
            return Err(CoreError::InvalidArgument(
                "this stream chunker is finished; create a new one".into(),
            ));
        }
        let headroom = self.cutter.headroom();
        self.pending.extend_from_slice(data);
        if self.pending.len() - headroom < self.threshold() {
            return Ok(None);
        }
        let buf = std::mem::replace(&mut self.pending, vec![0; headroom]);
        Ok(self.cutter.feed(buf, headroom, false))
    }

    pub fn finish(&mut self) -> CoreResult<(Option<Block>, Digest, u64)> {
        if self.finished {
            return Err(CoreError::InvalidArgument(
                "this stream chunker is already finished".into(),
            ));
        }
        self.finished = true;
        let headroom = self.cutter.headroom();
        let buf = std::mem::take(&mut self.pending);
        let block = self.cutter.feed(buf, headroom, true);
        Ok((block, self.cutter.digest(), self.cutter.size))
    }
}

pub type SharedBlock = Arc<Block>;
