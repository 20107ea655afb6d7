//! Thread pools by size, so callers (and benchmarks) can ask for one thread or all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

/// Run `f` on a pool of `threads` workers; 0 means one worker per core.
pub fn run_in<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    pool(threads).install(f)
}

/// Below this much work a call runs on the caller's thread: handing it to a pool costs
/// more than it saves (tens of microseconds per call, which dominate small files).
pub const INLINE_BYTES: usize = 256 << 10;

/// [`run_in`], or directly on the calling thread when the work is small.
pub fn run_sized<R: Send>(threads: usize, work_bytes: usize, f: impl FnOnce() -> R + Send) -> R {
    if work_bytes < INLINE_BYTES {
        f()
    } else {
        run_in(threads, f)
    }
}

pub fn pool(threads: usize) -> Arc<ThreadPool> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    let n = if threads == 0 {
        default_threads()
    } else {
        threads
    };
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .expect("pool registry");
    pools
        .entry(n)
        .or_insert_with(|| {
            Arc::new(
                ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(move |i| format!("reprocas-{n}-{i}"))
                    .build()
                    .expect("thread pool"),
            )
        })
        .clone()
}

pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
