//! The vectorised inner loops, written once in plain Rust over fixed 16-lane
//! blocks and compiled three times: for the baseline ISA (the scalar
//! fallback, which LLVM may still vectorise with SSE2), and inside functions
//! with `#[target_feature]` for AVX2+FMA and AVX-512. Rust never contracts
//! `a * b + c` into a fused multiply-add, so every level evaluates the same
//! operations in the same order and gives the same bits (the tests check).
//!
//! A row's statistics are its max M, S = Σ e^(x−M) and L = Σ a·(x − M),
//! where `a` is a coefficient per element (class weights, or weights times
//! the probability target) or 1. L is what smoothing and probability targets
//! need, and it doubles as the detector of non-finite rows: a NaN or ±inf
//! anywhere makes M or L non-finite (the exp below maps NaN to a finite value).

use std::ops::{Add, Mul, Sub};

use super::super::element::Element;
use super::super::fast_exp::exp_nonpositive_f32;
use super::super::simd::{Simd, SimdLevel};

/// Element types the fused kernel runs on: f32 and f64.
pub(crate) trait Lane:
    Element + PartialOrd + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self>
{
    const ZERO: Self;
    const NEG_INFINITY: Self;
    /// e^d for d = x − max ≤ 0 (NaN rows are caught through L).
    fn exp_lane(self) -> Self;
    /// self·a + b with one rounding (an FMA instruction where the level has
    /// one, a libm call in the portable build: slow there, but the same bits).
    fn fma(self, a: Self, b: Self) -> Self;
    /// The larger of self (never NaN) and v, ignoring a NaN v. Unlike an
    /// `if` on an array element, which LLVM turns into a masked store
    /// (microcoded, slow on AMD), this is one max instruction per vector.
    fn max_ignoring_nan(self, v: Self) -> Self;
    /// The caller's buffer as this type, when it is this type.
    fn cast<E: Element>(data: &[E]) -> Option<&[Self]>;
    fn cast_mut<E: Element>(data: &mut [E]) -> Option<&mut [Self]>;
}

impl Lane for f32 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    #[inline(always)]
    fn exp_lane(self) -> Self {
        exp_nonpositive_f32(self)
    }
    #[inline(always)]
    fn max_ignoring_nan(self, v: Self) -> Self {
        self.max(v)
    }
    #[inline(always)]
    fn fma(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
    fn cast<E: Element>(data: &[E]) -> Option<&[Self]> {
        E::as_f32(data)
    }
    fn cast_mut<E: Element>(data: &mut [E]) -> Option<&mut [Self]> {
        E::as_f32_mut(data)
    }
}

impl Lane for f64 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    #[inline(always)]
    fn exp_lane(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn max_ignoring_nan(self, v: Self) -> Self {
        self.max(v)
    }
    #[inline(always)]
    fn fma(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
    fn cast<E: Element>(data: &[E]) -> Option<&[Self]> {
        E::as_f64(data)
    }
    fn cast_mut<E: Element>(data: &mut [E]) -> Option<&mut [Self]> {
        E::as_f64_mut(data)
    }
}

pub(crate) const LANES: usize = 16;
/// Elements accumulated in the working type before flushing to f64: short
/// enough that f32 lane sums stay accurate, long enough to cost nothing.
pub(super) const BLOCK: usize = 1024;

/// One position's statistics, in f64.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Stats {
    pub max: f64,
    pub sum_exp: f64,
    pub sum_shifted: f64,
}

impl Stats {
    /// Whether the closed forms hold; otherwise the reference kernel decides.
    pub fn finite(&self) -> bool {
        // `&`, not `&&`: no branches in the loops over a tile's positions.
        self.max.is_finite() & self.sum_shifted.is_finite() & self.sum_exp.is_finite()
    }
}

/// Sums 16 lanes in a fixed tree, in f64.
#[inline(always)]
pub(crate) fn fold_lanes<T: Lane>(acc: &[T; LANES]) -> f64 {
    let mut v = [0.0f64; LANES];
    for l in 0..LANES {
        v[l] = acc[l].to_f64();
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            v[l] += v[l + width];
        }
    }
    v[0]
}

/// The max, ignoring NaN (NaN rows are caught through L).
#[inline(always)]
fn row_max<T: Lane>(x: &[T]) -> T {
    let mut acc = [T::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for l in 0..LANES {
            acc[l] = if chunk[l] > acc[l] { chunk[l] } else { acc[l] };
        }
    }
    for (l, &v) in rest.iter().enumerate() {
        acc[l] = if v > acc[l] { v } else { acc[l] };
    }
    acc.iter().fold(T::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// Asks for the cache line holding `v` to be brought into L2. A hint only.
#[inline(always)]
pub(super) fn prefetch<T>(v: &T) {
    prefetch_at(v);
}

/// [`prefetch`] of the line at `p`, which may point anywhere (past a
/// slice's end too): for loops that would otherwise test each address.
#[inline(always)]
pub(super) fn prefetch_at<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch cannot fault or change memory, whatever the
    // address (an unmapped one is dropped); SSE is part of the x86-64
    // baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        _mm_prefetch::<_MM_HINT_T1>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// S and L over a row given its max; with `WRITE` the exponentials go to
/// `out`, with `COEF` L is weighted by `a` (both the row's length). The next
/// row is prefetched meanwhile, so the memory streams while this one computes.
#[inline(always)]
fn row_sums<T: Lane, const COEF: bool, const WRITE: bool>(
    x: &[T],
    a: &[T],
    out: &mut [T],
    max: T,
    next: &[T],
) -> (f64, f64) {
    let line = (64 / std::mem::size_of::<T>()).max(1);
    let (mut sum_exp, mut sum_shifted) = (0.0, 0.0);
    let mut start = 0;
    while start < x.len() {
        let end = (start + BLOCK).min(x.len());
        let full = start + (end - start) / LANES * LANES;
        let mut e_acc = [T::ZERO; LANES];
        let mut s_acc = [T::ZERO; LANES];
        // chunks_exact: no bounds checks in the lane loop, so it vectorises.
        let xs = x[start..full].chunks_exact(LANES);
        let coef = if COEF { &a[start..full] } else { &x[start..full] };
        // One prefetch per cache line of the next row, spread over the loop
        // (a burst would stall on the CPU's few line-fill buffers).
        let ahead = next.get(start..full).unwrap_or(&[]);
        let ahead_line = |i: usize| {
            for offset in (0..LANES).step_by(line) {
                if let Some(v) = ahead.get(i * LANES + offset) {
                    prefetch(v);
                }
            }
        };
        if WRITE {
            let chunks = xs
                .zip(coef.chunks_exact(LANES))
                .zip(out[start..full].chunks_exact_mut(LANES));
            for (i, ((xc, ac), oc)) in chunks.enumerate() {
                ahead_line(i);
                for l in 0..LANES {
                    let d = xc[l] - max;
                    let e = d.exp_lane();
                    e_acc[l] = e_acc[l] + e;
                    s_acc[l] = if COEF { d.fma(ac[l], s_acc[l]) } else { s_acc[l] + d };
                    oc[l] = e;
                }
            }
        } else {
            for (i, (xc, ac)) in xs.zip(coef.chunks_exact(LANES)).enumerate() {
                ahead_line(i);
                for l in 0..LANES {
                    let d = xc[l] - max;
                    e_acc[l] = e_acc[l] + d.exp_lane();
                    s_acc[l] = if COEF { d.fma(ac[l], s_acc[l]) } else { s_acc[l] + d };
                }
            }
        }
        let (e, s) = finish_block::<T, COEF, WRITE>(x, a, out, max, full..end, &mut e_acc, &mut s_acc);
        sum_exp += e;
        sum_shifted += s;
        start = end;
    }
    (sum_exp, sum_shifted)
}

/// The end of one block of [`row_sums`] (shared with the AVX2 sweep, so
/// both give the same bits): the elements `tail` after the last whole lane
/// group, taken into lanes 0.., then each lane sum folded into f64.
#[inline(always)]
pub(super) fn finish_block<T: Lane, const COEF: bool, const WRITE: bool>(
    x: &[T],
    a: &[T],
    out: &mut [T],
    max: T,
    tail: std::ops::Range<usize>,
    e_acc: &mut [T; LANES],
    s_acc: &mut [T; LANES],
) -> (f64, f64) {
    let full = tail.start;
    for i in tail {
        let l = i - full;
        let d = x[i] - max;
        let e = d.exp_lane();
        e_acc[l] = e_acc[l] + e;
        s_acc[l] = if COEF { d.fma(a[i], s_acc[l]) } else { s_acc[l] + d };
        if WRITE {
            out[i] = e;
        }
    }
    (fold_lanes(e_acc), fold_lanes(s_acc))
}

#[inline(always)]
fn row_stats<T: Lane, const COEF: bool, const WRITE: bool>(x: &[T], a: &[T], out: &mut [T], next: &[T]) -> Stats {
    let max = row_max(x);
    let (sum_exp, sum_shifted) = row_sums::<T, COEF, WRITE>(x, a, out, max, next);
    Stats {
        max: max.to_f64(),
        sum_exp,
        sum_shifted,
    }
}

/// Over a row of exponentials: e·scale_p + a·scale_a (a = 1 without `COEF`).
#[inline(always)]
fn row_apply<T: Lane, const COEF: bool>(row: &mut [T], a: &[T], scale_p: T, scale_a: T) {
    if COEF {
        for (v, &w) in row.iter_mut().zip(a) {
            *v = *v * scale_p + w * scale_a;
        }
    } else {
        for v in row.iter_mut() {
            *v = *v * scale_p + scale_a;
        }
    }
}

/// `LANES` values from `src` (fewer at a tile's end: the rest are 0 and unused).
#[inline(always)]
fn load<T: Lane>(src: &[T]) -> [T; LANES] {
    match <&[T; LANES]>::try_from(src) {
        Ok(full) => *full,
        Err(_) => {
            let mut v = [T::ZERO; LANES];
            v[..src.len()].copy_from_slice(src);
            v
        }
    }
}

/// A K-dim tile copied out of its (C, S) block: the logits of `width`
/// consecutive positions, class-major, each class's row [`padded`] to whole
/// lane groups; then (after [`tile_sweep`] with `WRITE`) their exponentials.
///
/// Why a copy: the classes of a position lie S apart, and when S·size is a
/// multiple of a large power of two (S = 256·256 here) all C runs of a tile
/// fall into the same cache sets, so re-reading them from the block for a
/// second sweep, or for the target's logit, would miss the cache.
pub(super) struct PackedTile<T> {
    pub values: Vec<T>,
    /// The max per position (padding lanes: 0).
    pub max: Vec<T>,
    /// The min per position where the AVX2 sweep that copied the tile
    /// kept it, else −∞ (padding lanes: 0). A position whose
    /// min − max is at least `fast_exp::NORMAL_EXP_FLOOR` needs no clamp in its exps.
    pub min: Vec<T>,
    pub width: usize,
}

impl<T: Lane> PackedTile<T> {
    pub fn new() -> Self {
        PackedTile {
            values: Vec::new(),
            max: Vec::new(),
            min: Vec::new(),
            width: 0,
        }
    }

    /// Makes room for `classes` rows of `width` positions. Neither the
    /// values nor the max and min are cleared: [`tile_pack_columns`] and
    /// `kdim.rs`'s sweeps write every one (padding included) before it is read.
    pub fn reset(&mut self, classes: usize, width: usize) {
        let stride = padded(width);
        self.width = width;
        self.values.resize(classes * stride, T::ZERO);
        self.max.resize(stride, T::NEG_INFINITY);
        self.min.resize(stride, T::NEG_INFINITY);
    }

    /// The value of class `k` at position `j` of the tile.
    #[inline(always)]
    pub fn at(&self, k: usize, j: usize) -> T {
        self.values[k * padded(self.width) + j]
    }
}

/// Copies positions s0..s0+width of a (C, S) block into `tile`, streaming
/// each class's run from memory once (the sweep of the previous tile
/// prefetched it), and keeps the max per position.
#[inline(always)]
fn tile_pack<T: Lane>(block: &[T], inner: usize, s0: usize, width: usize, tile: &mut PackedTile<T>) {
    tile.reset(block.len() / inner, width);
    tile_pack_columns(block, inner, s0, 0, tile);
}

/// Copies the columns from `first` on of the tile at s0 (reset to its
/// width) out of its block, with their max, and sets the padding: the rest
/// of [`tile_pack`], after `kdim.rs` copied the first columns during the
/// previous tile's sweep.
#[inline(always)]
fn tile_pack_columns<T: Lane>(block: &[T], inner: usize, s0: usize, first: usize, tile: &mut PackedTile<T>) {
    let width = tile.width;
    let stride = padded(width);
    let classes = tile.values.len() / stride.max(1);
    // Usually `kdim.rs` copied the whole tile: then only the padding is left.
    if first < width {
        // On the stack while the classes stream in: with the max in the heap
        // next to `values`, LLVM no longer vectorises the loop.
        let mut max = [T::NEG_INFINITY; TILE];
        for k in 0..classes {
            let run = &block[k * inner + s0 + first..][..width - first];
            pack_run(
                run,
                &mut tile.values[k * stride + first..][..stride - first],
                &mut max[..width - first],
            );
        }
        tile.max[first..width].copy_from_slice(&max[..width - first]);
        // Not kept here: these positions' exps take the clamp.
        tile.min[first..width].fill(T::NEG_INFINITY);
    }
    tile.max[width..stride].fill(T::ZERO);
    tile.min[width..stride].fill(T::ZERO);
}

/// Copies one class's run into its packed row (padding with zeros) and
/// updates the max per position. Separate slices as arguments tell LLVM
/// they do not overlap, so the loop vectorises.
#[inline(always)]
fn pack_run<T: Lane>(run: &[T], packed: &mut [T], max: &mut [T]) {
    let width = run.len();
    let full = width / LANES * LANES;
    let chunks = run[..full]
        .chunks_exact(LANES)
        .zip(packed[..full].chunks_exact_mut(LANES))
        .zip(max[..full].chunks_exact_mut(LANES));
    for ((src, dst), m) in chunks {
        for l in 0..LANES {
            dst[l] = src[l];
            m[l] = m[l].max_ignoring_nan(src[l]);
        }
    }
    for i in full..width {
        packed[i] = run[i];
        max[i] = max[i].max_ignoring_nan(run[i]);
    }
    // Padding lanes (x = max = 0) compute e^0 and are never read.
    packed[width..].fill(T::ZERO);
}

/// The statistics of a packed tile's positions, with the positions as the
/// lanes and the accumulators in registers, L weighted by the coefficients
/// `a` given per element, class-major: a[c·width + j] (probability targets;
/// class targets take `kdim.rs`). With `WRITE` the exponentials replace the
/// logits in the tile, for [`tile_apply`].
#[inline(always)]
fn tile_sweep<T: Lane, const WRITE: bool>(
    tile: &mut PackedTile<T>,
    a: &[T],
    ahead: Ahead<'_, T>,
    stats: &mut TileStats,
) {
    let width = tile.width;
    let stride = padded(width);
    let classes = tile.values.len() / stride.max(1);
    let pack = &mut tile.values[..];
    for j0 in (0..stride).step_by(LANES) {
        let m: &[T; LANES] = tile.max[j0..j0 + LANES].try_into().expect("LANES values");
        let n = LANES.min(width - j0);
        let (sum_exp, sum_shifted) =
            sweep_group::<T, WRITE, true>(pack, stride, j0, classes, m, ahead, |k| load(&a[k * width + j0..][..n]));
        for l in 0..n {
            stats.max[j0 + l] = m[l].to_f64();
            stats.sum_exp[j0 + l] = sum_exp[l];
            stats.sum_shifted[j0 + l] = sum_shifted[l];
        }
    }
}

/// The statistics of a tile's positions, a column each, so that the
/// per-position loops after the sweep read them as vectors.
pub(super) struct TileStats {
    pub max: Vec<f64>,
    pub sum_exp: Vec<f64>,
    pub sum_shifted: Vec<f64>,
}

impl TileStats {
    pub fn new() -> Self {
        TileStats {
            max: vec![0.0; TILE],
            sum_exp: vec![0.0; TILE],
            sum_shifted: vec![0.0; TILE],
        }
    }

    /// Position `j`'s statistics.
    #[inline(always)]
    pub fn get(&self, j: usize) -> Stats {
        Stats {
            max: self.max[j],
            sum_exp: self.sum_exp[j],
            sum_shifted: self.sum_shifted[j],
        }
    }
}

/// [`tile_sweep`] for the `LANES` positions at `j0` of the packed tile: S and L per lane, with the accumulators in registers.
#[inline(always)]
fn sweep_group<T: Lane, const WRITE: bool, const COEF: bool>(
    pack: &mut [T],
    stride: usize,
    j0: usize,
    classes: usize,
    m: &[T; LANES],
    ahead: Ahead<'_, T>,
    coef_of: impl Fn(usize) -> [T; LANES],
) -> ([f64; LANES], [f64; LANES]) {
    let line = (64 / std::mem::size_of::<T>()).max(1);
    let mut sum_exp = [0.0f64; LANES];
    let mut sum_shifted = [0.0f64; LANES];
    for k0 in (0..classes).step_by(BLOCK / LANES) {
        let mut e_acc = [T::ZERO; LANES];
        let mut s_acc = [T::ZERO; LANES];
        for k in k0..classes.min(k0 + BLOCK / LANES) {
            // The next tile's lines for these lanes, one class per step: the
            // prefetches spread over the sweep instead of arriving in bursts.
            for offset in (0..LANES).step_by(line) {
                if let Some(v) = ahead.logits.get(k * ahead.inner + j0 + offset) {
                    prefetch(v);
                }
            }
            let run: &mut [T; LANES] = (&mut pack[k * stride + j0..][..LANES])
                .try_into()
                .expect("LANES values");
            let a = coef_of(k);
            for l in 0..LANES {
                let d = run[l] - m[l];
                let e = d.exp_lane();
                e_acc[l] = e_acc[l] + e;
                s_acc[l] = if COEF { d.fma(a[l], s_acc[l]) } else { s_acc[l] + d };
                if WRITE {
                    run[l] = e;
                }
            }
        }
        for l in 0..LANES {
            sum_exp[l] += e_acc[l].to_f64();
            sum_shifted[l] += s_acc[l].to_f64();
        }
    }
    (sum_exp, sum_shifted)
}

/// The gradient of a tile from the exponentials [`tile_sweep`] left in
/// `tile`: out = e·scale_p\[j\] + a·scale_a\[j\] (a as in [`tile_sweep`]),
/// written to the block's gradient `out` one class run at a time.
#[inline(always)]
fn tile_apply<T: Lane>(
    out: &mut [T],
    inner: usize,
    s0: usize,
    a: &[T],
    tile: &PackedTile<T>,
    (scale_p, scale_a): (&[T], &[T]),
) {
    let width = scale_p.len();
    let stride = padded(width);
    let classes = out.len() / inner;
    for k in 0..classes {
        let run = &mut out[k * inner + s0..][..width];
        let e = &tile.values[k * stride..][..width];
        run.iter_mut()
            .zip(e)
            .zip(scale_p.iter().zip(scale_a))
            .zip(&a[k * width..][..width])
            .for_each(|(((o, &e), (&sp, &sa)), &a)| *o = e * sp + a * sa);
    }
}

/// What to prefetch while a tile is swept: the block from the next tile's
/// first position on (empty after the last tile), whose classes lie `inner` apart.
#[derive(Clone, Copy)]
pub(super) struct Ahead<'a, T> {
    pub logits: &'a [T],
    pub inner: usize,
}

/// A packed tile's row length: its width rounded up to whole lane groups.
pub(super) fn padded(width: usize) -> usize {
    width.div_ceil(LANES) * LANES
}

/// Spatial positions per tile in K-dim input: a class's run of a tile is
/// 512 bytes (f32), so that the packed tile and the next one being copied
/// (2·C runs) stay in L1 for small C beside the block's lines that the
/// copy streams through. At 256 positions the two took 42 of L1's 48 KiB at
/// C = 21, and the sweeps' reads missed: 128 made the K-dim forward 6–9 %
/// faster at one thread (AVX2 and AVX-512), the AVX-512 forward+backward
/// 13 %; 64 gained nothing more.
pub(super) const TILE: usize = 128;

/// Generates the entry point of one kernel: the plain function, an AVX2+FMA
/// and an AVX-512 copy, and the run-time choice between them.
macro_rules! dispatched {
    ($(#[$doc:meta])* $name:ident <$($gen:ident $(: $bound:path)?),* ; $(const $c:ident: $ct:ty),*>
        ($($arg:ident: $ty:ty),*) -> $ret:ty = $body:ident) => {
        $(#[$doc])*
        #[inline]
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name<$($gen $(: $bound)?),* $(, const $c: $ct)*>(level: $crate::loss::simd::Simd, $($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn avx2<$($gen $(: $bound)?),* $(, const $c: $ct)*>($($arg: $ty),*) -> $ret {
                $body::<$($gen),* $(, $c)*>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn avx512<$($gen $(: $bound)?),* $(, const $c: $ct)*>($($arg: $ty),*) -> $ret {
                $body::<$($gen),* $(, $c)*>($($arg),*)
            }
            match level.level() {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `level` is a `Simd`, which only `simd::current()` makes, and it holds
                // Avx2 only when the CPU reports AVX2 and FMA.
                $crate::loss::simd::SimdLevel::Avx2 => unsafe { avx2::<$($gen),* $(, $c)*>($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above, Avx512 only when the CPU reports AVX-512 F, VL, DQ and BW.
                $crate::loss::simd::SimdLevel::Avx512 => unsafe { avx512::<$($gen),* $(, $c)*>($($arg),*) },
                _ => $body::<$($gen),* $(, $c)*>($($arg),*),
            }
        }
    };
}
pub(super) use dispatched;

dispatched! {
    /// A contiguous row's statistics; see [`row_sums`] for `COEF` and `WRITE`.
    stats_row_portable<T: Lane; const COEF: bool, const WRITE: bool>(x: &[T], a: &[T], out: &mut [T], next: &[T]) -> Stats = row_stats
}

/// A contiguous row's statistics; see [`row_sums`] for `COEF` and `WRITE`.
/// f32 rows on AVX2 (and AVX-512) CPUs take the hand-written sweep.
#[inline]
pub(super) fn stats_row<T: Lane, const COEF: bool, const WRITE: bool>(
    level: Simd,
    x: &[T],
    a: &[T],
    out: &mut [T],
    next: &[T],
) -> Stats {
    #[cfg(target_arch = "x86_64")]
    if level.level() >= SimdLevel::Avx2 {
        if let (Some(x), Some(a), Some(out), Some(next)) =
            (f32::cast(x), f32::cast(a), f32::cast_mut(out), f32::cast(next))
        {
            if level.level() == SimdLevel::Avx512 {
                // SAFETY: `level` is a `Simd`, which only `simd::current()` makes, and it holds
                // Avx512 only when the CPU reports AVX-512 F, VL, DQ, AVX2 and FMA.
                return unsafe { row_stats_avx512::<COEF, WRITE>(x, a, out, next) };
            }
            // SAFETY: `level` is a `Simd`, which only `simd::current()` makes, and it holds
            // Avx2 or above only when the CPU reports AVX2 and FMA.
            return unsafe { row_stats_avx2::<COEF, WRITE>(x, a, out, next) };
        }
    }
    stats_row_portable::<T, COEF, WRITE>(level, x, a, out, next)
}

/// [`row_stats`] for f32 with the sweep of `avx2.rs`.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_stats_avx2<const COEF: bool, const WRITE: bool>(
    x: &[f32],
    a: &[f32],
    out: &mut [f32],
    next: &[f32],
) -> Stats {
    let max = row_max(x);
    // SAFETY: the caller guarantees AVX2 and FMA; the callers pass `a` and
    // `out` with the row's length where COEF and WRITE use them.
    let (sum_exp, sum_shifted) = unsafe { super::avx2::row_sums::<COEF, WRITE>(x, a, out, max, next) };
    Stats {
        max: f64::from(max),
        sum_exp,
        sum_shifted,
    }
}
/// [`row_stats`] for f32 with the 16-lane loops of `avx512.rs`.
///
/// # Safety
/// The CPU must support AVX-512 F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
unsafe fn row_stats_avx512<const COEF: bool, const WRITE: bool>(
    x: &[f32],
    a: &[f32],
    out: &mut [f32],
    next: &[f32],
) -> Stats {
    let max = super::avx512::row_max(x);
    // SAFETY: the caller guarantees the features; the callers pass `a` and
    // `out` with the row's length where COEF and WRITE use them.
    let (sum_exp, sum_shifted) = unsafe { super::avx512::row_sums::<COEF, WRITE>(x, a, out, max, next) };
    Stats {
        max: f64::from(max),
        sum_exp,
        sum_shifted,
    }
}
dispatched! {
    /// e·scale_p + a·scale_a over a contiguous row of exponentials.
    apply_row_portable<T: Lane; const COEF: bool>(row: &mut [T], a: &[T], scale_p: T, scale_a: T) -> () = row_apply
}

/// e·scale_p + a·scale_a over a contiguous row of exponentials; f32 rows on
/// AVX-512 CPUs take the 16-lane loop of `avx512.rs`.
#[inline]
pub(super) fn apply_row<T: Lane, const COEF: bool>(level: Simd, row: &mut [T], a: &[T], scale_p: T, scale_a: T) {
    #[cfg(target_arch = "x86_64")]
    if level.level() == SimdLevel::Avx512 {
        if let (Some(row), Some(a)) = (f32::cast_mut(row), f32::cast(a)) {
            let (scale_p, scale_a) = (scale_p.to_f64() as f32, scale_a.to_f64() as f32);
            // SAFETY: `level` is a `Simd`, which only `simd::current()` makes, and it holds
            // Avx512 only when the CPU reports AVX-512 F.
            return unsafe { super::avx512::row_apply::<COEF>(row, a, scale_p, scale_a) };
        }
    }
    apply_row_portable::<T, COEF>(level, row, a, scale_p, scale_a)
}
dispatched! {
    /// Copies a K-dim tile out of its block (see [`tile_pack`]).
    pack_tile_at<T: Lane;>(block: &[T], inner: usize, s0: usize, width: usize, tile: &mut PackedTile<T>) -> () = tile_pack
}

/// Copies a K-dim tile out of its block (see [`tile_pack`]). Never at the
/// AVX-512 level: there LLVM turns the copy into gathers and scatters, three
/// times slower than the AVX2 build (the same operations, so the same bits).
#[inline]
pub(super) fn pack_tile<T: Lane>(
    level: Simd,
    block: &[T],
    inner: usize,
    s0: usize,
    width: usize,
    tile: &mut PackedTile<T>,
) {
    pack_tile_at(level.at_most(SimdLevel::Avx2), block, inner, s0, width, tile)
}
dispatched! {
    /// Copies the last columns of a K-dim tile out of its block (see [`tile_pack_columns`]).
    pack_columns_at<T: Lane;>(block: &[T], inner: usize, s0: usize, first: usize, tile: &mut PackedTile<T>) -> () = tile_pack_columns
}

/// Copies the columns from `first` on of a K-dim tile out of its block (see
/// [`tile_pack_columns`]); as [`pack_tile`], never at the AVX-512 level.
#[inline]
pub(super) fn pack_columns<T: Lane>(
    level: Simd,
    block: &[T],
    inner: usize,
    s0: usize,
    first: usize,
    tile: &mut PackedTile<T>,
) {
    pack_columns_at(level.at_most(SimdLevel::Avx2), block, inner, s0, first, tile)
}
dispatched! {
    /// A packed tile's statistics; with `WRITE` its exponentials stay in the tile (see [`tile_sweep`]).
    sweep_tile<T: Lane; const WRITE: bool>(tile: &mut PackedTile<T>, a: &[T], ahead: Ahead<'_, T>, stats: &mut TileStats) -> () = tile_sweep
}
dispatched! {
    /// A K-dim tile's gradient from its exponentials (see [`tile_apply`]).
    apply_tile<T: Lane;>(out: &mut [T], inner: usize, s0: usize, a: &[T], tile: &PackedTile<T>, scales: (&[T], &[T])) -> () = tile_apply
}
