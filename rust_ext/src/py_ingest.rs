//! Python bindings of the chunker and the file pipeline: coarse calls only.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::buffer::borrow_bytes;
use crate::chunker::ChunkerParams;
use crate::error::CoreError;
use crate::hashing::{Digest, HashKey};
use crate::ingest::{
    chunk_buffer_all, chunk_file_all, compress_groups_delta, compress_indices, Block,
    FileChunkerCore, Frame, Message, StreamCore, DEFAULT_BLOCK,
};
use crate::pool::{run_in, run_sized};
use crate::py_restore::{parse_plan, BasesMap, ChunkTuple, FrameTuple};
use crate::restore::read_joined;

/// FastCDC parameters: sizes in bytes and a seed for the gear table.
#[pyclass(name = "ChunkerParams", module = "reprocas._core", frozen, eq)]
#[derive(Clone)]
pub struct PyChunkerParams {
    pub inner: ChunkerParams,
}

impl PartialEq for PyChunkerParams {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.inner, &other.inner);
        (a.min_size, a.avg_size, a.max_size, a.seed) == (b.min_size, b.avg_size, b.max_size, b.seed)
    }
}

#[pymethods]
impl PyChunkerParams {
    #[new]
    #[pyo3(signature = (min_size, avg_size, max_size, seed=0))]
    fn new(min_size: i64, avg_size: i64, max_size: i64, seed: u64) -> PyResult<Self> {
        let to_usize = |name: &str, v: i64| -> PyResult<usize> {
            usize::try_from(v).map_err(|_| {
                CoreError::InvalidParams(format!("{name} size must be positive (got {v})")).into()
            })
        };
        let inner = ChunkerParams::new(
            to_usize("min", min_size)?,
            to_usize("avg", avg_size)?,
            to_usize("max", max_size)?,
            seed,
        )?;
        Ok(Self { inner })
    }

    #[getter]
    fn min_size(&self) -> usize {
        self.inner.min_size
    }
    #[getter]
    fn avg_size(&self) -> usize {
        self.inner.avg_size
    }
    #[getter]
    fn max_size(&self) -> usize {
        self.inner.max_size
    }
    #[getter]
    fn seed(&self) -> u64 {
        self.inner.seed
    }

    fn __repr__(&self) -> String {
        let p = &self.inner;
        format!(
            "ChunkerParams(min_size={}, avg_size={}, max_size={}, seed={})",
            p.min_size, p.avg_size, p.max_size, p.seed
        )
    }

    fn __hash__(&self) -> u64 {
        let p = &self.inner;
        (p.min_size as u64)
            .wrapping_mul(31)
            .wrapping_add(p.avg_size as u64)
            .wrapping_mul(31)
            .wrapping_add(p.max_size as u64)
            .wrapping_mul(31)
            .wrapping_add(p.seed)
    }
}

fn digests_list<'py>(py: Python<'py>, digests: &[Digest]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, digests.iter().map(|d| PyBytes::new(py, d)))
}

/// The chunk table of a whole file or buffer.
#[pyclass(module = "reprocas._core", frozen)]
pub struct ChunkTable {
    #[pyo3(get)]
    file_digest: Py<PyBytes>,
    #[pyo3(get)]
    size: u64,
    #[pyo3(get)]
    offsets: Py<PyList>,
    #[pyo3(get)]
    lengths: Py<PyList>,
    #[pyo3(get)]
    digests: Py<PyList>,
    count: usize,
}

#[pymethods]
impl ChunkTable {
    fn __len__(&self) -> usize {
        self.count
    }

    fn __repr__(&self) -> String {
        format!("ChunkTable(size={}, chunks={})", self.size, self.count)
    }
}

fn make_table(
    py: Python<'_>,
    offsets: Vec<u64>,
    lengths: Vec<u64>,
    digests: &[Digest],
    file_digest: &Digest,
    size: u64,
) -> PyResult<ChunkTable> {
    Ok(ChunkTable {
        file_digest: PyBytes::new(py, file_digest).unbind(),
        size,
        count: offsets.len(),
        offsets: PyList::new(py, offsets)?.unbind(),
        lengths: PyList::new(py, lengths)?.unbind(),
        digests: digests_list(py, digests)?.unbind(),
    })
}

/// Cut and hash a whole in-memory buffer.
#[pyfunction]
#[pyo3(signature = (data, params, key=None, threads=0))]
pub fn chunk_buffer(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    params: &PyChunkerParams,
    key: Option<&[u8]>,
    threads: usize,
) -> PyResult<ChunkTable> {
    let key = HashKey::from_opt(key)?;
    let view = borrow_bytes(data)?;
    let p = params.inner.clone();
    let (ends, digests, file_digest) =
        py.detach(|| run_in(threads, || chunk_buffer_all(&p, key, view.as_slice())));
    let mut offsets = Vec::with_capacity(ends.len());
    let mut lengths = Vec::with_capacity(ends.len());
    let mut start = 0usize;
    for &e in &ends {
        offsets.push(start as u64);
        lengths.push((e - start) as u64);
        start = e;
    }
    make_table(
        py,
        offsets,
        lengths,
        &digests,
        &file_digest,
        view.as_slice().len() as u64,
    )
}

/// Cut only (no hashing): the chunk end offsets of a whole in-memory buffer.
#[pyfunction]
#[pyo3(signature = (data, params, threads=0))]
pub fn cut_buffer(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    params: &PyChunkerParams,
    threads: usize,
) -> PyResult<Vec<usize>> {
    let view = borrow_bytes(data)?;
    let p = params.inner.clone();
    Ok(py.detach(|| {
        run_in(threads, || {
            crate::chunker::cut_parallel(&p, view.as_slice(), true, crate::ingest::region_size(&p))
        })
    }))
}

/// Cut and hash a whole file in one pass (bounded memory, any size).
#[pyfunction]
#[pyo3(signature = (path, params, key=None, threads=0))]
pub fn chunk_file(
    py: Python<'_>,
    path: PathBuf,
    params: &PyChunkerParams,
    key: Option<&[u8]>,
    threads: usize,
) -> PyResult<ChunkTable> {
    let key = HashKey::from_opt(key)?;
    let p = params.inner.clone();
    let (chunks, file_digest, size) = py.detach(|| chunk_file_all(&path, p, key, threads))?;
    let offsets = chunks.iter().map(|c| c.0).collect();
    let lengths = chunks.iter().map(|c| c.1 as u64).collect();
    let digests: Vec<Digest> = chunks.iter().map(|c| c.2).collect();
    make_table(py, offsets, lengths, &digests, &file_digest, size)
}

/// A block of consecutive chunks of a file, holding their bytes until compressed.
#[pyclass(module = "reprocas._core", frozen)]
pub struct ChunkBatch {
    block: Arc<Block>,
    threads: usize,
}

#[pymethods]
impl ChunkBatch {
    fn __len__(&self) -> usize {
        self.block.len()
    }

    /// File offset of the first chunk.
    #[getter]
    fn offset(&self) -> u64 {
        self.block.file_offset
    }

    /// Bytes covered by the batch's chunks.
    #[getter]
    fn size(&self) -> usize {
        self.block.bytes().len()
    }

    #[getter]
    fn offsets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let b = &self.block;
        PyList::new(
            py,
            (0..b.len()).map(|i| b.file_offset + b.range(i).start as u64),
        )
    }

    #[getter]
    fn lengths<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let b = &self.block;
        PyList::new(py, (0..b.len()).map(|i| b.range(i).len()))
    }

    #[getter]
    fn digests<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        digests_list(py, &self.block.digests)
    }

    /// The raw bytes of chunk `index`.
    fn chunk<'py>(&self, py: Python<'py>, index: i64) -> PyResult<Bound<'py, PyBytes>> {
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        if index >= self.block.len() {
            return Err(CoreError::InvalidArgument(format!(
                "chunk index {index} out of range for a batch of {} chunks",
                self.block.len()
            ))
            .into());
        }
        Ok(PyBytes::new(
            py,
            &self.block.bytes()[self.block.range(index)],
        ))
    }

    /// Compress the chunks at `indices` (strictly increasing). Consecutive chunks are
    /// grouped into frames of at most `frame_size` raw bytes (0: one frame per chunk).
    /// Returns `[(codec, payload, first_index, count, raw_len), ...]`.
    #[pyo3(signature = (indices, level=3, frame_size=0))]
    fn compress<'py>(
        &self,
        py: Python<'py>,
        indices: Vec<i64>,
        level: i32,
        frame_size: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let indices: Vec<usize> = indices
            .into_iter()
            .map(|i| {
                usize::try_from(i).map_err(|_| {
                    CoreError::InvalidArgument(format!(
                        "chunk index {i} out of range for a batch of {} chunks",
                        self.block.len()
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let block = self.block.clone();
        let work: usize = indices
            .iter()
            .filter(|&&i| i < block.len())
            .map(|&i| block.range(i).len())
            .sum();
        let frames = py.detach(|| {
            run_sized(self.threads, work, || {
                compress_indices(&block, &indices, level, frame_size)
            })
        })?;
        frames_list(py, &frames)
    }

    /// Compress groups of consecutive chunks against base chunks ("patch-from"), the
    /// bases read from the store in the same GIL-free call: `packs`, `frames`, `chunks`
    /// and `bases` are a read plan (as for `read_chunks`) of the base chunks, and each
    /// group is `(first, count, [index into chunks, ...])`; a group's bases,
    /// concatenated, are its reference prefix. Every base is verified against its
    /// digest. Each group becomes one frame: a delta (codec 2) when that is clearly
    /// smaller than compressing it alone, else an ordinary frame (codec 0/1).
    #[pyo3(signature = (packs, frames, chunks, groups, level=3, bases=None, key=None))]
    #[allow(clippy::too_many_arguments)]
    fn compress_delta_stored<'py>(
        &self,
        py: Python<'py>,
        packs: Vec<PathBuf>,
        frames: Vec<FrameTuple>,
        chunks: Vec<ChunkTuple>,
        groups: Vec<(usize, usize, Vec<usize>)>,
        level: i32,
        bases: Option<BasesMap>,
        key: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyList>> {
        let key = HashKey::from_opt(key)?;
        let (frames, deps, chunks) = parse_plan(frames, chunks, bases)?;
        let block = self.block.clone();
        let joins: Vec<Vec<usize>> = groups.iter().map(|g| g.2.clone()).collect();
        let work: usize = block.bytes().len() + frames.iter().map(|f| f.raw_len).sum::<usize>();
        let out: Vec<Frame> = py.detach(|| {
            run_sized(
                self.threads,
                work,
                || -> crate::error::CoreResult<Vec<Frame>> {
                    let prefixes = read_joined(&packs, &frames, &deps, &chunks, &joins, key)?;
                    let views: Vec<(usize, usize, &[u8])> = groups
                        .iter()
                        .zip(&prefixes)
                        .map(|(g, p)| (g.0, g.1, p.as_slice()))
                        .collect();
                    compress_groups_delta(&block, &views, level)
                },
            )
        })?;
        frames_list(py, &out)
    }
}

fn frames_list<'py>(py: Python<'py>, frames: &[Frame]) -> PyResult<Bound<'py, PyList>> {
    let items = frames
        .iter()
        .map(|f| {
            PyTuple::new(
                py,
                [
                    f.codec.into_pyobject(py)?.into_any(),
                    PyBytes::new(py, &f.payload).into_any(),
                    f.first.into_pyobject(py)?.into_any(),
                    f.count.into_pyobject(py)?.into_any(),
                    f.raw_len.into_pyobject(py)?.into_any(),
                ],
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// Iterate over a file's chunks in batches; after the last batch, `file_digest` and
/// `size` describe the whole file.
#[pyclass(module = "reprocas._core")]
pub struct FileChunker {
    core: Option<FileChunkerCore>,
    threads: usize,
    #[pyo3(get)]
    file_digest: Option<Py<PyBytes>>,
    #[pyo3(get)]
    size: Option<u64>,
}

#[pymethods]
impl FileChunker {
    #[new]
    #[pyo3(signature = (path, params, key=None, threads=0, block_size=DEFAULT_BLOCK))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        params: &PyChunkerParams,
        key: Option<&[u8]>,
        threads: usize,
        block_size: usize,
    ) -> PyResult<Self> {
        let key = HashKey::from_opt(key)?;
        let p = params.inner.clone();
        let core = py.detach(|| FileChunkerCore::open(&path, p, key, threads, block_size))?;
        Ok(Self {
            core: Some(core),
            threads,
            file_digest: None,
            size: None,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<ChunkBatch>> {
        let Some(core) = self.core.as_mut() else {
            return Ok(None);
        };
        let msg = py.detach(|| core.next_message());
        match msg {
            None => {
                self.core = None;
                Err(CoreError::Io {
                    path: String::new(),
                    message: "the chunking pipeline stopped unexpectedly".into(),
                    errno: None,
                }
                .into())
            }
            Some(Err(e)) => {
                self.core = None;
                Err(e.into())
            }
            Some(Ok(Message::Block(block))) => Ok(Some(ChunkBatch {
                block: Arc::new(block),
                threads: self.threads,
            })),
            Some(Ok(Message::Done { digest, size })) => {
                self.core = None;
                self.file_digest = Some(PyBytes::new(py, &digest).unbind());
                self.size = Some(size);
                Ok(None)
            }
        }
    }
}

/// Chunk input that arrives in pieces; cut points equal the one-shot calls'.
#[pyclass(module = "reprocas._core")]
pub struct StreamChunker {
    core: StreamCore,
    #[pyo3(get)]
    file_digest: Option<Py<PyBytes>>,
    #[pyo3(get)]
    size: Option<u64>,
}

fn block_chunks<'py>(py: Python<'py>, block: Option<Block>) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    if let Some(b) = block {
        for i in 0..b.len() {
            let r = b.range(i);
            list.append((
                b.file_offset + r.start as u64,
                r.len(),
                PyBytes::new(py, &b.digests[i]),
            ))?;
        }
    }
    Ok(list)
}

#[pymethods]
impl StreamChunker {
    #[new]
    #[pyo3(signature = (params, key=None))]
    fn new(params: &PyChunkerParams, key: Option<&[u8]>) -> PyResult<Self> {
        let key = HashKey::from_opt(key)?;
        Ok(Self {
            core: StreamCore::new(params.inner.clone(), key),
            file_digest: None,
            size: None,
        })
    }

    /// Feed more input; returns the chunks completed by it as `(offset, length, digest)`.
    fn update<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let view = borrow_bytes(data)?;
        let core = &mut self.core;
        let block = py.detach(|| core.update(view.as_slice()))?;
        block_chunks(py, block)
    }

    /// End of input: returns the remaining chunks; sets `file_digest` and `size`.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let core = &mut self.core;
        let (block, digest, size) = py.detach(|| core.finish())?;
        self.file_digest = Some(PyBytes::new(py, &digest).unbind());
        self.size = Some(size);
        block_chunks(py, block)
    }
}
