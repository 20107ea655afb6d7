//! Counting CSV records without parsing them: newlines outside double quotes.
//!
//! RFC 4180 quoting toggles on every `"` (an escaped `""` toggles twice), so whether a
//! newline ends a record depends only on the parity of the quotes before it. Blocks of
//! the file are scanned in parallel, each counting its newlines for both possible
//! states at its start; a sequential pass then picks the right count per block.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use pyo3::prelude::*;
use rayon::prelude::*;

use crate::error::{CoreError, CoreResult};
use crate::pool::run_in;

const BLOCK: usize = 8 << 20;

/// Per block: newlines seen with an even / odd number of quotes before them in the
/// block, whether the block holds an odd number of quotes, and its last byte.
#[derive(Clone, Copy, Default)]
struct BlockCount {
    even: u64,
    odd: u64,
    flips: bool,
}

fn count_block(data: &[u8]) -> BlockCount {
    let mut c = BlockCount::default();
    let mut inq = false;
    for &b in data {
        if b == b'"' {
            inq = !inq;
        } else if b == b'\n' {
            if inq {
                c.odd += 1;
            } else {
                c.even += 1;
            }
        }
    }
    c.flips = inq;
    c
}

/// Records (lines outside quotes) in a CSV file, the header line included. A last line
/// without a trailing newline counts as a record.
pub fn count_records(path: &Path) -> CoreResult<u64> {
    let file = File::open(path).map_err(|e| CoreError::from_io(e, path))?;
    let size = file
        .metadata()
        .map_err(|e| CoreError::from_io(e, path))?
        .len() as usize;
    if size == 0 {
        return Ok(0);
    }
    let n_blocks = size.div_ceil(BLOCK);
    // Bounded memory: a few blocks in flight per worker.
    let counts: Vec<BlockCount> = (0..n_blocks)
        .into_par_iter()
        .map_init(
            || vec![0u8; BLOCK],
            |buf, k| -> CoreResult<BlockCount> {
                let off = k * BLOCK;
                let len = BLOCK.min(size - off);
                file.read_exact_at(&mut buf[..len], off as u64)
                    .map_err(|e| CoreError::from_io(e, path))?;
                Ok(count_block(&buf[..len]))
            },
        )
        .collect::<CoreResult<_>>()?;
    let mut total = 0u64;
    let mut inq = false;
    for c in &counts {
        total += if inq { c.odd } else { c.even };
        inq ^= c.flips;
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, (size - 1) as u64)
        .map_err(|e| CoreError::from_io(e, path))?;
    if last[0] != b'\n' {
        total += 1;
    }
    Ok(total)
}

/// Lines of a CSV file outside double quotes (records, the header included).
#[pyfunction]
#[pyo3(signature = (path, threads=0))]
pub fn count_csv_records(
    py: Python<'_>,
    path: std::path::PathBuf,
    threads: usize,
) -> PyResult<u64> {
    Ok(py.detach(|| run_in(threads, || count_records(&path)))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_hide_newlines() {
        let c = count_block(b"a,b\n1,\"x\ny\"\n2,\"\"\"q\"\"\"\n");
        assert_eq!(c.even, 3);
        assert!(!c.flips);
    }
}
