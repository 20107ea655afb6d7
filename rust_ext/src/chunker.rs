//! FastCDC 2020 content-defined chunking with normalised chunking (level 2).
//!
//! Cut points are a pure function of the bytes, the parameters and the seed; the
//! golden tests pin them because a silent change would defeat deduplication against
//! every chunk already stored.
//!
//! The gear table is derived from the seed with BLAKE3 in XOF mode, so a keyed
//! repository can use a secret seed and its chunk boundaries leak nothing.

use std::sync::{Arc, OnceLock};

use crate::error::CoreError;

/// Smallest and largest sizes any parameter may take.
pub const MIN_ALLOWED: usize = 64;
pub const MAX_ALLOWED: usize = 64 << 20;

pub type GearTable = [u64; 256];

fn derive_gear(seed: u64) -> GearTable {
    let mut hasher = blake3::Hasher::new_derive_key("reprocas 2026-11 fastcdc gear table v1");
    hasher.update(&seed.to_le_bytes());
    let mut reader = hasher.finalize_xof();
    let mut bytes = [0u8; 256 * 8];
    reader.fill(&mut bytes);
    let mut table = [0u64; 256];
    for (slot, word) in table.iter_mut().zip(bytes.chunks_exact(8)) {
        *slot = u64::from_le_bytes(word.try_into().expect("8-byte word"));
    }
    table
}

fn gear_for(seed: u64) -> Arc<GearTable> {
    static DEFAULT: OnceLock<Arc<GearTable>> = OnceLock::new();
    if seed == 0 {
        DEFAULT.get_or_init(|| Arc::new(derive_gear(0))).clone()
    } else {
        Arc::new(derive_gear(seed))
    }
}

/// A mask of `bits` one-bits taken from the top of the word: the top bits of a gear
/// hash depend on the most recent 64 bytes, the bottom ones on only the last few.
fn top_mask(bits: u32) -> u64 {
    if bits == 0 {
        0
    } else {
        !0u64 << (64 - bits)
    }
}

/// Validated chunking parameters with the derived masks and gear table.
#[derive(Clone, Debug)]
pub struct ChunkerParams {
    pub min_size: usize,
    pub avg_size: usize,
    pub max_size: usize,
    pub seed: u64,
    mask_s: u64,
    mask_l: u64,
    gear: Arc<GearTable>,
}

impl ChunkerParams {
    pub fn new(
        min_size: usize,
        avg_size: usize,
        max_size: usize,
        seed: u64,
    ) -> Result<Self, CoreError> {
        let bad = |why: String| Err(CoreError::InvalidParams(why));
        if min_size == 0 || avg_size == 0 || max_size == 0 {
            return bad(format!(
                "chunk sizes must be positive (got min={min_size}, avg={avg_size}, max={max_size})"
            ));
        }
        if min_size < MIN_ALLOWED {
            return bad(format!(
                "min size {min_size} is below the smallest allowed, {MIN_ALLOWED} bytes"
            ));
        }
        if max_size > MAX_ALLOWED {
            return bad(format!(
                "max size {max_size} is above the largest allowed, {MAX_ALLOWED} bytes"
            ));
        }
        if min_size > avg_size {
            return bad(format!(
                "min size {min_size} is larger than avg size {avg_size}; need min <= avg <= max"
            ));
        }
        if avg_size > max_size {
            return bad(format!(
                "avg size {avg_size} is larger than max size {max_size}; need min <= avg <= max"
            ));
        }
        let bits = (avg_size as f64).log2().round() as u32;
        let mask_s = top_mask((bits + 2).min(63));
        let mask_l = top_mask(bits.saturating_sub(2));
        Ok(Self {
            min_size,
            avg_size,
            max_size,
            seed,
            mask_s,
            mask_l,
            gear: gear_for(seed),
        })
    }

    /// Length of the chunk that starts at `data[0]`, or `None` when `data` ends before
    /// a cut point is certain and more input may follow (`eof == false`).
    #[inline]
    pub fn cut(&self, data: &[u8], eof: bool) -> Option<usize> {
        let len = data.len();
        if len <= self.min_size {
            return if eof || len >= self.max_size {
                Some(len)
            } else {
                None
            };
        }
        let end = len.min(self.max_size);
        let center = end.min(self.avg_size);
        let gear = &*self.gear;
        let mut h: u64 = 0;
        if let Some(i) = scan(gear, data, self.min_size, center, self.mask_s, &mut h) {
            return Some(i);
        }
        if let Some(i) = scan(
            gear,
            data,
            center.max(self.min_size),
            end,
            self.mask_l,
            &mut h,
        ) {
            return Some(i);
        }
        if end == self.max_size || eof {
            Some(end)
        } else {
            None
        }
    }

    /// Every cut of `data`, as chunk end offsets, treating `data` as the whole input.
    pub fn cut_all(&self, data: &[u8]) -> Vec<usize> {
        let mut ends = Vec::with_capacity(data.len() / self.avg_size + 1);
        let mut pos = 0;
        while pos < data.len() {
            let n = self.cut(&data[pos..], true).expect("eof always cuts");
            pos += n;
            ends.push(pos);
        }
        ends
    }
}

/// Roll the gear hash over `data[from..to]`; return the chunk length at the first
/// position whose hash has all `mask` bits clear.
#[inline(always)]
fn scan(
    gear: &GearTable,
    data: &[u8],
    from: usize,
    to: usize,
    mask: u64,
    h: &mut u64,
) -> Option<usize> {
    if from >= to {
        return None;
    }
    let window = &data[from..to];
    let mut hash = *h;
    // Two bytes per iteration: the dependency chain is one shift-add per byte either
    // way, but halving the loop overhead and branches measurably helps.
    let mut pairs = window.chunks_exact(2);
    let mut i = from;
    for pair in &mut pairs {
        hash = (hash << 1).wrapping_add(gear[pair[0] as usize]);
        if hash & mask == 0 {
            *h = hash;
            return Some(i + 1);
        }
        hash = (hash << 1).wrapping_add(gear[pair[1] as usize]);
        if hash & mask == 0 {
            *h = hash;
            return Some(i + 2);
        }
        i += 2;
    }
    if let [b] = pairs.remainder() {
        hash = (hash << 1).wrapping_add(gear[*b as usize]);
        if hash & mask == 0 {
            *h = hash;
            return Some(i + 1);
        }
    }
    *h = hash;
    None
}

/// Number of regions one thread cuts at once, interleaved: the gear hash is one
/// long dependency chain per region, so stepping several independent regions in the
/// same loop keeps the core's execution units busy.
pub const LANES: usize = 4;

/// Speculative cuts of `LANES` regions at once. Region `l` is cut from `starts[l]` as
/// if a chunk began there, until the first cut at or past `stops[l]`; results equal
/// [`cut_range`] on each region.
pub fn cut_lanes(
    params: &ChunkerParams,
    data: &[u8],
    starts: [usize; LANES],
    stops: [usize; LANES],
    eof: bool,
) -> [Vec<usize>; LANES] {
    let gear = &*params.gear;
    let len = data.len();
    let mut out: [Vec<usize>; LANES] =
        std::array::from_fn(|l| Vec::with_capacity((stops[l] - starts[l]) / params.avg_size + 2));
    // Per lane: start of the current chunk, scan position, end of the current phase,
    // mask of the current phase, rolling hash.
    let mut cstart = starts;
    let mut pos = [0usize; LANES];
    let mut limit = [0usize; LANES];
    let mut mask = [0u64; LANES];
    let mut h = [0u64; LANES];
    // A lane needs a full max-size window ahead to use the fast path.
    let fast_ok = |c: usize| c + params.max_size <= len;
    let begin = |l: usize,
                 c: usize,
                 pos: &mut [usize; LANES],
                 limit: &mut [usize; LANES],
                 mask: &mut [u64; LANES],
                 h: &mut [u64; LANES]| {
        pos[l] = c + params.min_size;
        limit[l] = c + params.avg_size.max(params.min_size);
        mask[l] = params.mask_s;
        h[l] = 0;
    };
    let mut all_fast = true; // every lane has a full window: the fast loop may run
    for l in 0..LANES {
        if cstart[l] >= stops[l] || !fast_ok(cstart[l]) {
            all_fast = false;
        }
        begin(l, cstart[l], &mut pos, &mut limit, &mut mask, &mut h);
    }
    'outer: loop {
        if !all_fast {
            break;
        }
        // Phase transitions: small-mask phase ends at avg, large-mask phase ends with
        // a forced cut at max.
        for l in 0..LANES {
            while pos[l] >= limit[l] {
                if mask[l] == params.mask_s && limit[l] < cstart[l] + params.max_size {
                    pos[l] = limit[l];
                    limit[l] = cstart[l] + params.max_size;
                    mask[l] = params.mask_l;
                } else {
                    let end = cstart[l] + params.max_size;
                    out[l].push(end);
                    cstart[l] = end;
                    if end >= stops[l] || !fast_ok(end) {
                        break 'outer;
                    }
                    begin(l, end, &mut pos, &mut limit, &mut mask, &mut h);
                }
            }
        }
        let steps = (0..LANES).map(|l| limit[l] - pos[l]).min().unwrap_or(0);
        let (k, hit) = step4(gear, data, &pos, steps, &mask, &mut h);
        for p in pos.iter_mut() {
            *p += k;
        }
        if hit {
            for l in 0..LANES {
                if h[l] & mask[l] == 0 {
                    let end = pos[l];
                    out[l].push(end);
                    cstart[l] = end;
                    if end >= stops[l] || !fast_ok(end) {
                        // Finish this lane (and the others) on the scalar path below.
                        break 'outer;
                    }
                    begin(l, end, &mut pos, &mut limit, &mut mask, &mut h);
                }
            }
        }
    }
    // Scalar finish: each lane continues from its last cut.
    for l in 0..LANES {
        let mut p = out[l].last().copied().unwrap_or(starts[l]);
        while p < stops[l] {
            match params.cut(&data[p..], eof) {
                Some(n) => {
                    p += n;
                    out[l].push(p);
                }
                None => break,
            }
        }
    }
    out
}

/// The hot loop of [`cut_lanes`]: roll four independent gear hashes `steps` bytes
/// (or until one of them hits its mask). Returns the bytes stepped and whether a lane hit.
#[inline(never)]
fn step4(
    gear: &GearTable,
    data: &[u8],
    pos: &[usize; LANES],
    steps: usize,
    mask: &[u64; LANES],
    h: &mut [u64; LANES],
) -> (usize, bool) {
    let w0 = &data[pos[0]..pos[0] + steps];
    let w1 = &data[pos[1]..pos[1] + steps];
    let w2 = &data[pos[2]..pos[2] + steps];
    let w3 = &data[pos[3]..pos[3] + steps];
    let [m0, m1, m2, m3] = *mask;
    let [mut a, mut b, mut c, mut d] = *h;
    let mut k = 0usize;
    let mut hit = false;
    for (((&x0, &x1), &x2), &x3) in w0.iter().zip(w1).zip(w2).zip(w3) {
        a = (a << 1).wrapping_add(gear[x0 as usize]);
        b = (b << 1).wrapping_add(gear[x1 as usize]);
        c = (c << 1).wrapping_add(gear[x2 as usize]);
        d = (d << 1).wrapping_add(gear[x3 as usize]);
        k += 1;
        // Separate branches: each fuses into one test-and-jump and is almost never
        // taken, which is cheaper than combining the four tests into one flag.
        if a & m0 == 0 {
            hit = true;
            break;
        }
        if b & m1 == 0 {
            hit = true;
            break;
        }
        if c & m2 == 0 {
            hit = true;
            break;
        }
        if d & m3 == 0 {
            hit = true;
            break;
        }
    }
    *h = [a, b, c, d];
    (k, hit)
}

/// Cut points of `data` computed in parallel regions that resynchronise.
///
/// Each region is cut as if a chunk began at its start (four regions at a time per
/// thread, see [`cut_lanes`]); the exact chain coming from the previous region is then
/// followed until it lands on one of the region's own cut points, after which the two
/// agree forever (a cut depends only on where its chunk began). The bridges from one
/// region's last cut into the next are computed in parallel too, assuming the previous
/// region synchronised (it almost always does); the serial stitch checks that and
/// falls back to cutting on its own when it did not. The result equals
/// [`ChunkerParams::cut_all`] (or [`cut_serial`] when not at `eof`) — only faster.
///
/// When not at `eof`, the bytes after the last returned end are the carry that must
/// be prepended to the next block.
pub fn cut_parallel(params: &ChunkerParams, data: &[u8], eof: bool, region: usize) -> Vec<usize> {
    cut_parallel_with(params, data, eof, region, |_| ()).0
}

/// [`cut_parallel`] that also computes `per_chunk(bytes)` for every chunk, on the same
/// thread right after the chunk is cut, while its bytes are still in cache.
pub fn cut_parallel_with<T, F>(
    params: &ChunkerParams,
    data: &[u8],
    eof: bool,
    region: usize,
    per_chunk: F,
) -> (Vec<usize>, Vec<T>)
where
    T: Send + Sync + Clone,
    F: Fn(&[u8]) -> T + Sync,
{
    use rayon::prelude::*;
    let region = region.max(params.max_size * 2);
    let n_regions = data.len().div_ceil(region);
    let annotate = |start: usize, ends: &[usize]| -> Vec<T> {
        let mut prev = start;
        ends.iter()
            .map(|&e| {
                let v = per_chunk(&data[prev..e]);
                prev = e;
                v
            })
            .collect()
    };
    if n_regions < LANES {
        let ends = cut_serial(params, data, 0, eof);
        let values = annotate(0, &ends);
        return (ends, values);
    }
    let starts: Vec<usize> = (0..n_regions).map(|k| k * region).collect();
    let stops: Vec<usize> = (0..n_regions)
        .map(|k| ((k + 1) * region).min(data.len()))
        .collect();
    let groups: Vec<usize> = (0..n_regions).step_by(LANES).collect();
    let per_group: Vec<Vec<Spec<T>>> = groups
        .par_iter()
        .map(|&g| {
            let cuts: Vec<Vec<usize>> = if g + LANES <= n_regions {
                let st: [usize; LANES] = std::array::from_fn(|l| starts[g + l]);
                let sp: [usize; LANES] = std::array::from_fn(|l| stops[g + l]);
                cut_lanes(params, data, st, sp, eof).into_iter().collect()
            } else {
                (g..n_regions)
                    .map(|k| cut_range(params, data, starts[k], stops[k], eof))
                    .collect()
            };
            cuts.into_iter()
                .enumerate()
                .map(|(l, ends)| {
                    let values = annotate(starts[g + l], &ends);
                    Spec { ends, values }
                })
                .collect()
        })
        .collect();
    let speculative: Vec<Spec<T>> = per_group.into_iter().flatten().collect();
    let bridges: Vec<Option<Bridge<T>>> = (0..n_regions)
        .into_par_iter()
        .map(|k| {
            if k == 0 {
                return None;
            }
            let entry = *speculative[k - 1].ends.last()?;
            Some(bridge(
                params,
                data,
                eof,
                entry,
                &speculative[k].ends,
                &per_chunk,
            ))
        })
        .collect();
    stitch(params, data, eof, speculative, bridges, &per_chunk)
}

/// One region's speculative cuts and their per-chunk values.
struct Spec<T> {
    ends: Vec<usize>,
    values: Vec<T>,
}

/// The exact cuts from `entry` up to and including the first one that is also a cut
/// of the region's speculative chain (at index `sync`).
struct Bridge<T> {
    entry: usize,
    cuts: Vec<usize>,
    values: Vec<T>,
    sync: Option<usize>,
}

fn bridge<T, F: Fn(&[u8]) -> T>(
    params: &ChunkerParams,
    data: &[u8],
    eof: bool,
    entry: usize,
    spec: &[usize],
    per_chunk: &F,
) -> Bridge<T> {
    let mut pos = entry;
    let mut b = Bridge {
        entry,
        cuts: Vec::new(),
        values: Vec::new(),
        sync: None,
    };
    let mut j = 0usize;
    while pos < data.len() {
        let Some(n) = params.cut(&data[pos..], eof) else {
            break;
        };
        let next = pos + n;
        while j < spec.len() && spec[j] < next {
            j += 1;
        }
        b.cuts.push(next);
        b.values.push(per_chunk(&data[pos..next]));
        pos = next;
        if j < spec.len() && spec[j] == next {
            b.sync = Some(j);
            return b;
        }
        if next >= data.len() || spec.last().is_none_or(|&last| next > last) {
            break;
        }
    }
    b
}

/// Follow the exact chain through the speculative per-region cuts.
fn stitch<T: Clone, F: Fn(&[u8]) -> T>(
    params: &ChunkerParams,
    data: &[u8],
    eof: bool,
    speculative: Vec<Spec<T>>,
    bridges: Vec<Option<Bridge<T>>>,
    per_chunk: &F,
) -> (Vec<usize>, Vec<T>) {
    let cap = data.len() / params.avg_size + 8;
    let mut ends: Vec<usize> = Vec::with_capacity(cap);
    let mut values: Vec<T> = Vec::with_capacity(cap);
    let mut pos = 0usize;
    for (k, (spec, pre)) in speculative.into_iter().zip(bridges).enumerate() {
        if k == 0 {
            pos = spec.ends.last().copied().unwrap_or(0);
            ends.extend(spec.ends);
            values.extend(spec.values);
            continue;
        }
        let b = match pre {
            Some(b) if b.entry == pos => b,
            // The previous region never synchronised: bridge from where we really are.
            _ => bridge(params, data, eof, pos, &spec.ends, per_chunk),
        };
        if let Some(&last) = b.cuts.last() {
            pos = last;
        }
        ends.extend_from_slice(&b.cuts);
        values.extend(b.values);
        if let Some(j) = b.sync {
            ends.extend_from_slice(&spec.ends[j + 1..]);
            values.extend_from_slice(&spec.values[j + 1..]);
            pos = ends.last().copied().unwrap_or(pos);
        }
    }
    // The last region's chain may stop short of what the exact chain can still cut.
    while pos < data.len() {
        match params.cut(&data[pos..], eof) {
            Some(n) => {
                values.push(per_chunk(&data[pos..pos + n]));
                pos += n;
                ends.push(pos);
            }
            None => break,
        }
    }
    (ends, values)
}

/// Speculative cuts of a segment `[start, stop)`: chunks are cut from `start` until
/// the first cut at or past `stop` (which may reach into the next segment).
fn cut_range(
    params: &ChunkerParams,
    data: &[u8],
    start: usize,
    stop: usize,
    eof: bool,
) -> Vec<usize> {
    let mut ends = Vec::with_capacity((stop - start) / params.avg_size + 2);
    let mut pos = start;
    while pos < stop {
        match params.cut(&data[pos..], eof) {
            Some(n) => {
                pos += n;
                ends.push(pos);
            }
            None => break,
        }
    }
    ends
}

/// Exact cuts of `data` from `start`, one after another.
pub fn cut_serial(params: &ChunkerParams, data: &[u8], start: usize, eof: bool) -> Vec<usize> {
    cut_range(params, data, start, data.len(), eof)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg_bytes(n: usize, mut state: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect()
    }

    #[test]
    fn rejects_bad_params() {
        assert!(ChunkerParams::new(0, 1024, 4096, 0).is_err());
        assert!(ChunkerParams::new(2048, 1024, 4096, 0).is_err());
        assert!(ChunkerParams::new(256, 8192, 4096, 0).is_err());
        assert!(ChunkerParams::new(16, 1024, 4096, 0).is_err());
        assert!(ChunkerParams::new(256, 1024, 4096, 0).is_ok());
    }

    #[test]
    fn chunks_cover_input_within_bounds() {
        let p = ChunkerParams::new(2048, 8192, 32768, 0).unwrap();
        let data = lcg_bytes(1 << 20, 7);
        let ends = p.cut_all(&data);
        assert_eq!(*ends.last().unwrap(), data.len());
        let mut prev = 0;
        for (i, &e) in ends.iter().enumerate() {
            let n = e - prev;
            assert!(n <= p.max_size);
            if i + 1 < ends.len() {
                assert!(n >= p.min_size);
            }
            prev = e;
        }
        let mean = data.len() as f64 / ends.len() as f64;
        assert!(mean > 4096.0 && mean < 16384.0, "mean chunk {mean}");
    }

    #[test]
    fn parallel_equals_serial() {
        let p = ChunkerParams::new(256, 1024, 4096, 0).unwrap();
        let data = lcg_bytes(3 << 20, 11);
        let serial = p.cut_all(&data);
        for seg in [8192, 9000, 20000, 65536, 1 << 20] {
            assert_eq!(cut_parallel(&p, &data, true, seg), serial, "segment {seg}");
        }
        // Not at EOF: the parallel cut stops where the serial one would.
        let partial = cut_serial(&p, &data, 0, false);
        assert_eq!(cut_parallel(&p, &data, false, 16384), partial);
    }

    #[test]
    fn low_entropy_input_hits_max() {
        let p = ChunkerParams::new(256, 1024, 4096, 0).unwrap();
        let data = vec![0u8; 100_000];
        let ends = p.cut_all(&data);
        assert!(ends.windows(2).all(|w| w[1] - w[0] <= 4096));
        assert_eq!(cut_parallel(&p, &data, true, 16384), ends);
    }

    #[test]
    fn seed_changes_cuts() {
        let a = ChunkerParams::new(256, 1024, 4096, 0).unwrap();
        let b = ChunkerParams::new(256, 1024, 4096, 42).unwrap();
        let data = lcg_bytes(1 << 18, 3);
        assert_ne!(a.cut_all(&data), b.cut_all(&data));
    }
}
