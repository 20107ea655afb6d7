//! `reprocas._core`: the native core. This file is only the registry; each concern
//! lives in its own module.

use pyo3::prelude::*;

pub mod buffer;
pub mod chunker;
pub mod compress;
pub mod csv;
pub mod error;
pub mod hashing;
pub mod ingest;
pub mod objstore;
pub mod pool;
pub mod py_ingest;
pub mod py_restore;
pub mod restore;

/// Whether this build was compiled with optimisations (a debug build is far slower).
#[pyfunction]
fn is_release_build() -> bool {
    !cfg!(debug_assertions)
}

/// Worker threads used when a call is given `threads=0`.
#[pyfunction]
fn default_threads() -> usize {
    pool::default_threads()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CODEC_RAW", compress::CODEC_RAW)?;
    m.add("CODEC_ZSTD", compress::CODEC_ZSTD)?;
    m.add_function(wrap_pyfunction!(is_release_build, m)?)?;
    m.add_function(wrap_pyfunction!(default_threads, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::blake3_digest, m)?)?;
    m.add_function(wrap_pyfunction!(compress::compress_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(compress::compress_delta_many, m)?)?;
    m.add_function(wrap_pyfunction!(compress::decompress_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(py_ingest::chunk_buffer, m)?)?;
    m.add_function(wrap_pyfunction!(py_ingest::chunk_file, m)?)?;
    m.add_function(wrap_pyfunction!(py_ingest::cut_buffer, m)?)?;
    m.add_function(wrap_pyfunction!(csv::count_csv_records, m)?)?;
    m.add_function(wrap_pyfunction!(csv::csv_complete_records, m)?)?;
    m.add_function(wrap_pyfunction!(py_restore::assemble_file, m)?)?;
    m.add_function(wrap_pyfunction!(py_restore::read_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(py_restore::verify_frames, m)?)?;
    m.add_class::<py_ingest::PyChunkerParams>()?;
    m.add_class::<py_ingest::ChunkTable>()?;
    m.add_class::<py_ingest::ChunkBatch>()?;
    m.add_class::<py_ingest::FileChunker>()?;
    m.add_class::<py_ingest::StreamChunker>()?;
    m.add_class::<objstore::ObjectStore>()?;
    Ok(())
}
