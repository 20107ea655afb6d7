//! Thread pools by size, so callers (and benchmarks) can ask for one thread or all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

/// Run `f` on a pool of `threads` workers; 0 means one worker per core.
pub fn run_in<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    pool(threads).install(f)
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
