//! The row loops of the float16/bfloat16 kernel (`loss/reduced.rs`), over
//! one position's classes widened to f32, in 16 lanes of f32 sums folded in
//! a fixed tree. Like `lanes.rs` they are plain Rust compiled once per SIMD
//! level, so every level gives the same bits. `T::round_f32` rounds to the
//! half type where libtorch rounds (branch-free, see `half_bits.rs`).
//!
//! The log-probabilities are lp_c = r((x_c − M) − ln_sum) with the row's max
//! M and ln_sum as libtorch's log_softmax keeps them; no loop stores them.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod exp_table;
#[cfg(all(test, target_arch = "x86_64"))]
mod lane_tests;

#[cfg(target_arch = "x86_64")]
use std::any::TypeId;

#[cfg(target_arch = "x86_64")]
use half::{bf16, f16};

use super::super::element::Element;
use super::super::fast_exp::exp_half;
use super::super::simd::{Simd, SimdLevel};
use super::lanes::{dispatched, fold_lanes, prefetch, LANES};

/// The AVX2 and AVX-512 loops write gradient rows from this size on with
/// streaming stores: written once and not read again here, they need not
/// be read in before their write. One thread gains nothing (its sweep is
/// bound by its instructions); two threads sharing the memory bus gain
/// 3–5 % (forward+backward, AVX-512).
#[cfg(target_arch = "x86_64")]
const STREAM_ROW_BYTES: usize = 32 << 10;

/// Σ term(x_i, w_i) over two slices of one length, in 16 lanes (lane l
/// takes i ≡ l mod 16), folded in f64. Chunks, not indices: no bounds
/// checks in the lane loop, so it vectorises.
#[inline(always)]
fn lane_sum(x: &[f32], w: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (x, w) = (x.chunks_exact(LANES), w[..x.len()].chunks_exact(LANES));
    let (x_rest, w_rest) = (x.remainder(), w.remainder());
    for (xc, wc) in x.zip(w) {
        for l in 0..LANES {
            acc[l] += term(xc[l], wc[l]);
        }
    }
    for (l, (&xv, &wv)) in x_rest.iter().zip(w_rest).enumerate() {
        acc[l] += term(xv, wv);
    }
    fold_lanes(&acc) as f32
}

/// Widens a contiguous row into `dst` (its length) and returns its max,
/// and whether every value is finite.
#[inline(always)]
fn widen_with_max<T: Element>(src: &[T], dst: &mut [f32]) -> (f32, bool) {
    let mut max = [f32::NEG_INFINITY; LANES];
    // v·0 is 0 for finite v and NaN otherwise: one NaN marks the row.
    let mut poison = [0.0f32; LANES];
    let full = src.len() / LANES * LANES;
    let chunks = src[..full].chunks_exact(LANES).zip(dst[..full].chunks_exact_mut(LANES));
    for (s, d) in chunks {
        for l in 0..LANES {
            let v = s[l].widen_f32();
            d[l] = v;
            max[l] = max[l].max(v);
            poison[l] += v * 0.0;
        }
    }
    for i in full..src.len() {
        let v = src[i].widen_f32();
        dst[i] = v;
        max[i - full] = max[i - full].max(v);
        poison[i - full] += v * 0.0;
    }
    let m = max.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    (m, poison.iter().all(|p| !p.is_nan()))
}

/// Prefetches the line of `next` (the next row, or empty) that holds class
/// `start`, when `start` begins one (every other 16-class step for the
/// half types). The next row then arrives at the pace this row is read:
/// one line of it per 16 classes, which fetched it in the first half of
/// the sweep, measured 6–15 % slower at one thread (2048×32000, both half
/// types, AVX2 and AVX-512), its burst of misses stalling the loads.
#[inline(always)]
pub(super) fn prefetch_next_line<T>(next: &[T], start: usize) {
    let per_line = 64 / std::mem::size_of::<T>();
    if start.is_multiple_of(per_line) {
        if let Some(v) = next.get(start) {
            prefetch(v);
        }
    }
}

/// Σ e^(x − max) for a finite max. Meanwhile the next row (`next`, the
/// half-type logits of the next position or empty) is prefetched, each
/// line as this row's line at the same classes is read (see
/// [`prefetch_next_line`]), so that its widening reads from L2.
#[inline(always)]
fn exp_sum<T: Element>(row: &[f32], max: f32, next: &[T]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for (i, chunk) in chunks.enumerate() {
        prefetch_next_line(next, i * LANES);
        for l in 0..LANES {
            acc[l] += exp_half(chunk[l] - max);
        }
    }
    for (l, &x) in rest.iter().enumerate() {
        acc[l] += exp_half(x - max);
    }
    fold_lanes(&acc) as f32
}

/// Σ_c lp_c, or Σ_c r(lp_c·w_c) with `WEIGHTED` (`w`: the row's length).
#[inline(always)]
fn log_probability_sum<T: Element, const WEIGHTED: bool>(row: &[f32], max: f32, ln_sum: f32, w: &[f32]) -> f32 {
    let w = if WEIGHTED { w } else { row };
    lane_sum(row, w, |x, w| {
        let lp = T::round_f32((x - max) - ln_sum);
        if WEIGHTED {
            T::round_f32(lp * w)
        } else {
            lp
        }
    })
}

/// Replaces the row by its log-probabilities.
#[inline(always)]
fn log_probabilities<T: Element>(row: &mut [f32], max: f32, ln_sum: f32) {
    for v in row.iter_mut() {
        *v = T::round_f32((*v - max) - ln_sum);
    }
}

/// The gradient w.r.t. one class-target position's log-probabilities, as
/// autograd builds it, without a buffer: `at_target` at class `target`
/// (`usize::MAX` for none), elsewhere `base`, or with `WEIGHTED` the
/// rounded r(base·w_c).
#[derive(Clone, Copy)]
pub(crate) struct ClassGradient {
    pub base: f32,
    pub target: usize,
    pub at_target: f32,
}

impl ClassGradient {
    /// g_c (`w`: w_c when `WEIGHTED`).
    #[inline(always)]
    fn at<T: Element, const WEIGHTED: bool>(self, c: usize, w: f32) -> f32 {
        if c == self.target {
            self.at_target
        } else if WEIGHTED {
            T::round_f32(self.base * w)
        } else {
            self.base
        }
    }

    /// g_c for the 16 classes from `start` (`w`: their weights when
    /// `WEIGHTED`). Values, not a choice of address: LLVM would gather.
    #[inline(always)]
    fn chunk<T: Element, const WEIGHTED: bool>(self, start: usize, w: &[f32]) -> [f32; LANES] {
        let mut g = [self.base; LANES];
        if WEIGHTED {
            for l in 0..LANES {
                g[l] = T::round_f32(self.base * w[l]);
            }
        }
        // One chunk of the row holds the target.
        if self.target.wrapping_sub(start) < LANES {
            let lane = self.target - start;
            for (l, v) in g.iter_mut().enumerate() {
                if l == lane {
                    *v = self.at_target;
                }
            }
        }
        g
    }
}

/// log_softmax's backward into `out`: r(g_c − e^(lp_c)·Σg), with `sum_g` =
/// Σg, and g_c from `g_chunk(c, w)` (16 classes from c) and `g_at(c, w_c)`
/// (the last ones). With `SUM` it returns, from the same lp_c, what
/// [`log_probability_sum`] returns (the same lanes, so the same bits), so
/// that the loss and the gradient take one sweep.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_with<T: Element, const SUM: bool, const WEIGHTED: bool>(
    row: &[f32],
    max: f32,
    ln_sum: f32,
    (g_chunk, g_at): (impl Fn(usize, &[f32]) -> [f32; LANES], impl Fn(usize, f32) -> f32),
    sum_g: f32,
    w: &[f32],
    out: &mut [T],
) -> f32 {
    let n = row.len();
    let out = &mut out[..n];
    let w = if WEIGHTED { &w[..n] } else { row };
    let mut acc = [0.0f32; LANES];
    let step = |x: f32, g: f32, w: f32, o: &mut T, acc: &mut f32| {
        let lp = T::round_f32((x - max) - ln_sum);
        // The fast exp maps NaN to a number; libtorch's gives NaN.
        let e = if lp.is_nan() { lp } else { exp_half(lp) };
        *o = T::narrow_f32(g - e * sum_g);
        if SUM {
            *acc += if WEIGHTED { T::round_f32(lp * w) } else { lp };
        }
    };
    let full = n / LANES * LANES;
    let chunks = row[..full]
        .chunks_exact(LANES)
        .zip(w[..full].chunks_exact(LANES))
        .zip(out[..full].chunks_exact_mut(LANES));
    for (i, ((xc, wc), oc)) in chunks.enumerate() {
        let gc = g_chunk(i * LANES, wc);
        for l in 0..LANES {
            step(xc[l], gc[l], wc[l], &mut oc[l], &mut acc[l]);
        }
    }
    for i in full..n {
        step(row[i], g_at(i, w[i]), w[i], &mut out[i], &mut acc[i - full]);
    }
    fold_lanes(&acc) as f32
}

/// [`backward_with`] for a gradient `g` held in a row (probability targets).
#[inline(always)]
fn backward_row<T: Element>(row: &[f32], max: f32, ln_sum: f32, g: &[f32], sum_g: f32, out: &mut [T]) -> f32 {
    let g = &g[..row.len()];
    let g_chunk = |c: usize, _: &[f32]| -> [f32; LANES] {
        let mut v = [0.0; LANES];
        v.copy_from_slice(&g[c..c + LANES]);
        v
    };
    backward_with::<T, false, false>(row, max, ln_sum, (g_chunk, |c, _| g[c]), sum_g, &[], out)
}

/// Σ_c g_c of a class-target position's gradient w.r.t. its `n`
/// log-probabilities, in the lanes [`plain_sum`] would use on it as a row
/// (so the same bits); `w`: the weights when `WEIGHTED`.
#[inline(always)]
fn class_gradient_sum<T: Element, const WEIGHTED: bool>(n: usize, k: ClassGradient, w: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let full = n / LANES * LANES;
    // The chunks before and after the target's take `base` (or its
    // weighted values) as they are, in loops LLVM keeps in vectors.
    // Unweighted, they read no memory.
    let add = |acc: &mut [f32; LANES], start: usize, end: usize, patched: bool| {
        for chunk in (start..end).step_by(LANES) {
            let wc = if WEIGHTED { &w[chunk..chunk + LANES] } else { &[] };
            let gc = match patched {
                true => k.chunk::<T, WEIGHTED>(chunk, wc),
                false => ClassGradient {
                    target: usize::MAX,
                    ..k
                }
                .chunk::<T, WEIGHTED>(0, wc),
            };
            for l in 0..LANES {
                acc[l] += gc[l];
            }
        }
    };
    let target_chunk = (k.target.min(full) / LANES * LANES).min(full);
    let after = (target_chunk + LANES).min(full);
    add(&mut acc, 0, target_chunk, false);
    add(&mut acc, target_chunk, after, true);
    add(&mut acc, after, full, false);
    for i in full..n {
        acc[i - full] += k.at::<T, WEIGHTED>(i, if WEIGHTED { w[i] } else { 0.0 });
    }
    fold_lanes(&acc) as f32
}

/// [`backward_with`] for a class-target position: its gradient w.r.t. the
/// log-probabilities made on the fly, and first summed
/// ([`class_gradient_sum`]).
#[inline(always)]
fn class_backward_row<T: Element, const SUM: bool, const WEIGHTED: bool>(
    row: &[f32],
    max: f32,
    ln_sum: f32,
    k: ClassGradient,
    w: &[f32],
    out: &mut [T],
) -> f32 {
    let n = row.len();
    let w = if WEIGHTED { &w[..n] } else { row };
    let sum_g = class_gradient_sum::<T, WEIGHTED>(n, k, w);
    let g = (
        |c: usize, w: &[f32]| k.chunk::<T, WEIGHTED>(c, w),
        |c: usize, w: f32| k.at::<T, WEIGHTED>(c, w),
    );
    backward_with::<T, SUM, WEIGHTED>(row, max, ln_sum, g, sum_g, w, out)
}

/// Σ g in lanes.
#[inline(always)]
fn plain_sum(g: &[f32]) -> f32 {
    lane_sum(g, g, |v, _| v)
}

dispatched! {
    /// Widens a contiguous row and finds its max (see [`widen_with_max`]).
    widen_row<T: Element;>(src: &[T], dst: &mut [f32]) -> (f32, bool) = widen_with_max
}
dispatched! {
    /// Σ e^(x − max) over a row (see [`exp_sum`]).
    sum_exp<T: Element;>(row: &[f32], max: f32, next: &[T]) -> f32 = exp_sum
}
dispatched! {
    /// The row's log-probabilities summed, weighted with `WEIGHTED` (see [`log_probability_sum`]).
    sum_log_probabilities<T: Element; const WEIGHTED: bool>(row: &[f32], max: f32, ln_sum: f32, w: &[f32]) -> f32 = log_probability_sum
}
dispatched! {
    /// The row's log-probabilities in place (see [`log_probabilities`]).
    write_log_probabilities<T: Element;>(row: &mut [f32], max: f32, ln_sum: f32) -> () = log_probabilities
}
dispatched! {
    /// log_softmax's backward for one row (see [`backward_row`]).
    log_softmax_backward<T: Element;>(row: &[f32], max: f32, ln_sum: f32, g: &[f32], sum_g: f32, out: &mut [T]) -> f32 = backward_row
}
dispatched! {
    /// log_softmax's backward for one class-target row (see [`class_backward_row`]).
    class_log_softmax_backward<T: Element; const SUM: bool, const WEIGHTED: bool>(row: &[f32], max: f32, ln_sum: f32, k: ClassGradient, w: &[f32], out: &mut [T]) -> f32 = class_backward_row
}
dispatched! {
    /// Σ g in 16 lanes (see [`lane_sum`]).
    sum<;>(g: &[f32]) -> f32 = plain_sum
}
dispatched! {
    /// Σ g of a class-target position's gradient (see [`class_gradient_sum`]).
    class_gradient_total<T: Element; const WEIGHTED: bool>(n: usize, k: ClassGradient, w: &[f32]) -> f32 = class_gradient_sum
}

/// A half type's bit pattern: f16 and bf16 are 16-bit sign-magnitude, so
/// their raw bits order their values ([`BitVerdict::of`]).
#[cfg(target_arch = "x86_64")]
pub(crate) trait Bits: Element {
    fn of_bits(bits: u16) -> Self;
    fn bits(self) -> u16;
}

#[cfg(target_arch = "x86_64")]
impl Bits for f16 {
    fn of_bits(bits: u16) -> Self {
        f16::from_bits(bits)
    }
    fn bits(self) -> u16 {
        self.to_bits()
    }
}

#[cfg(target_arch = "x86_64")]
impl Bits for bf16 {
    fn of_bits(bits: u16) -> Self {
        bf16::from_bits(bits)
    }
    fn bits(self) -> u16 {
        self.to_bits()
    }
}

/// A row's max and min, for a row [`Direct::of`] takes (no NaN, no +inf,
/// a finite max). The min tells whether any of its exps can underflow.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Extremes {
    pub max: f32,
    pub min: f32,
}

/// The patterns the lps of a row of `n` classes and extremes `row` can
/// take, when they are at most `most` and few beside `n`: the AVX2 and
/// AVX-512 backward sweeps then look the unweighted gradient up by lp
/// pattern in a table the row builds. lp = r((x − max) − ln_sum) never
/// rises as x falls and is never above zero, so from the max down the
/// patterns of the negative lps rise from the max's to the min's; `None`
/// when the max's lp is +0 (its pattern then lies apart from the others').
#[cfg(target_arch = "x86_64")]
fn lp_patterns<H: Bits>(row: Extremes, ln_sum: f32, n: usize, most: usize) -> Option<std::ops::Range<usize>> {
    // The bits of r(t), as the sweeps' steps round it.
    let pattern = |t: f32| H::narrow_f32(t).bits() as usize;
    let (top, bottom) = (
        // The max's lp: max − max is +0 (the max is finite).
        pattern(0.0 - ln_sum),
        pattern((row.min - row.max) - ln_sum),
    );
    let count = bottom.checked_sub(top)? + 1;
    (top >= 0x8000 && count <= most.min(n / 4)).then_some(top..top + count)
}

/// What three reductions of a row's raw 16-bit patterns tell of its
/// extremes, the scans in `half/avx512.rs` and `half/avx2.rs` (which see
/// the values without widening them).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, PartialEq)]
pub(crate) enum BitVerdict {
    /// NaN, +inf or only −inf: the row takes the f32 copy.
    Rejected,
    /// The row's extremes.
    Found(Extremes),
    /// The max is a zero: which one, +0 or −0, the float scan's order of
    /// the row decides (a rare row, so it is scanned again). The row's min.
    ZeroMax(f32),
}

#[cfg(target_arch = "x86_64")]
impl BitVerdict {
    /// From a nonempty row's signed 16-bit max `smax` and unsigned 16-bit
    /// `umin` and `umax` of its patterns. Sign-magnitude, read as integers:
    /// if any value has its sign clear, `smax` is the max (+inf and NaN
    /// above every number); if none has, the max is the smallest
    /// magnitude, `umin`. Any negative value makes `umax` the most negative
    /// one, negative NaN above −inf.
    pub fn of<H: Bits>(smax: u16, umin: u16, umax: u16) -> Self {
        const SIGN: u16 = 0x8000;
        let inf = H::from_f64(f64::INFINITY).bits();
        let positive = smax & SIGN == 0;
        if (positive && smax >= inf) || umax > (inf | SIGN) {
            return BitVerdict::Rejected;
        }
        let max = if positive { smax } else { umin };
        let min = H::of_bits(if umax & SIGN != 0 { umax } else { umin }).widen_f32();
        match max {
            m if m == inf | SIGN => BitVerdict::Rejected,
            m if m & !SIGN == 0 => BitVerdict::ZeroMax(min),
            m => BitVerdict::Found(Extremes {
                max: H::of_bits(m).widen_f32(),
                min,
            }),
        }
    }

    /// [`BitVerdict::of`] from the lanes of the three reductions (each lane
    /// a partial signed max, unsigned min and unsigned max of the patterns).
    pub fn of_lanes<H: Bits>(smax: &[u16], umin: &[u16], umax: &[u16]) -> Self {
        let smax = smax.iter().map(|&b| b as i16).fold(i16::MIN, i16::max) as u16;
        let umin = umin.iter().copied().fold(u16::MAX, u16::min);
        let umax = umax.iter().copied().fold(0, u16::max);
        Self::of::<H>(smax, umin, umax)
    }

    /// The row's extremes, `None` when rejected; a zero max comes from
    /// `float_max`, the row scanned in float order.
    pub fn extremes(self, float_max: impl FnOnce() -> f32) -> Option<Extremes> {
        match self {
            BitVerdict::Rejected => None,
            BitVerdict::Found(extremes) => Some(extremes),
            BitVerdict::ZeroMax(min) => Some(Extremes { max: float_max(), min }),
        }
    }
}

/// The slice as `&[H]`, when `T` is `H`.
#[cfg(target_arch = "x86_64")]
fn as_type<T: 'static, H: 'static>(s: &[T]) -> Option<&[H]> {
    // SAFETY: `T` and `H` are the same type.
    (TypeId::of::<T>() == TypeId::of::<H>()).then(|| unsafe { &*(s as *const [T] as *const [H]) })
}

/// The slice as `&mut [H]`, when `T` is `H`.
#[cfg(target_arch = "x86_64")]
fn as_type_mut<T: 'static, H: 'static>(s: &mut [T]) -> Option<&mut [H]> {
    // SAFETY: `T` and `H` are the same type.
    (TypeId::of::<T>() == TypeId::of::<H>()).then(|| unsafe { &mut *(s as *mut [T] as *mut [H]) })
}

/// Runs `$body` with `$s` = `$src` as its half type `H`, f16 or bf16.
#[cfg(target_arch = "x86_64")]
macro_rules! on_half {
    ($T:ty, $src:expr, |$s:ident, $H:ident| $body:expr) => {
        if let Some($s) = as_type::<$T, f16>($src) {
            type $H = f16;
            $body
        } else if let Some($s) = as_type::<$T, bf16>($src) {
            type $H = bf16;
            $body
        } else {
            unreachable!("`Direct::of` takes the half types only")
        }
    };
}

/// Runs `$body` with `$m` the module of `$kernel`'s loops.
#[cfg(target_arch = "x86_64")]
macro_rules! on_kernel {
    ($kernel:expr, |$m:ident| $body:expr) => {
        match $kernel {
            Kernel::Avx512 => {
                use self::avx512 as $m;
                $body
            }
            Kernel::Avx2 => {
                use self::avx2 as $m;
                $body
            }
        }
    };
}

/// The loops that sweep a [`Direct`] row: `half/avx512.rs`, or on AVX2
/// CPUs with F16C `half/avx2.rs`.
#[derive(Clone, Copy)]
enum Kernel {
    Avx2,
    Avx512,
}

/// A contiguous position's half-precision classes, which the AVX-512 or
/// AVX2 loops sweep as they are instead of an f32 copy. Only
/// [`Direct::of`] makes one: on CPUs with AVX-512, or AVX2 and F16C, for
/// f16 and bf16 rows without NaN or +inf whose max is finite (other rows
/// take the f32 copy).
#[derive(Clone, Copy)]
pub(crate) struct Direct<'a, T> {
    src: &'a [T],
    row: Extremes,
    kernel: Kernel,
}

/// A row's extremes as [`Direct::of`] would find them (`None` where the
/// row takes the f32 copy), found by a sweep of the row before it.
#[derive(Clone, Copy)]
pub(crate) struct ScannedRow(Option<Extremes>);

impl<'a, T: Element> Direct<'a, T> {
    /// The row `src` with its max, when the AVX-512 or AVX2 loops can take
    /// it; `known`, when a sweep of the row before found it, spares its pass.
    pub fn of(level: Simd, src: &'a [T], known: Option<ScannedRow>) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if T::REDUCED {
            let kernel = match level.level() {
                SimdLevel::Avx512 => Kernel::Avx512,
                SimdLevel::Avx2 if level.has_f16c() => Kernel::Avx2,
                _ => return None,
            };
            let extremes = match known {
                Some(ScannedRow(extremes)) => extremes,
                // SAFETY: `level` is a `Simd`, which only `simd::current()`
                // makes: it holds Avx512 only when the CPU reports AVX-512 F
                // and BW, and Avx2 only with AVX2 and FMA, F16C checked above.
                None => on_kernel!(kernel, |k| on_half!(T, src, |s, H| unsafe { k::row_max::<H>(s) })),
            };
            return extremes.map(|row| Direct { src, row, kernel });
        }
        let _ = (level, src, known);
        None
    }

    /// The row's max.
    pub fn max(&self) -> f32 {
        self.row.max
    }

    /// Class `c`'s logit.
    pub fn at(&self, c: usize) -> f32 {
        self.src[c].widen_f32()
    }

    /// Σ e^(x − max) (see [`exp_sum`]); `next` (the next row or empty) is prefetched.
    pub fn sum_exp(&self, next: &[T]) -> f32 {
        let none = ClassGradient {
            base: 0.0,
            target: usize::MAX,
            at_target: 0.0,
        };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Direct` exists only on CPUs with its kernel's features (`Direct::of`).
        return on_kernel!(self.kernel, |m| on_half!(T, self.src, |s, H| unsafe {
            m::exp_sum::<H, false>(s, self.row, as_type::<T, H>(next).unwrap_or(&[]), none).0
        }));
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("`Direct::of` makes none here: {next:?} {}", none.base)
    }

    /// [`Direct::sum_exp`], and Σg of the unweighted class gradient `k`
    /// (`class_gradient_total::<T, false>`'s bits) from the same sweep.
    pub fn sum_exp_and_gradient_total(&self, next: &[T], k: ClassGradient) -> (f32, f32) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Direct` exists only on CPUs with its kernel's features (`Direct::of`).
        return on_kernel!(self.kernel, |m| on_half!(T, self.src, |s, H| unsafe {
            m::exp_sum::<H, true>(s, self.row, as_type::<T, H>(next).unwrap_or(&[]), k)
        }));
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("`Direct::of` makes none here: {next:?} {}", k.base)
    }

    /// The log-probabilities summed (see [`log_probability_sum`]), and the
    /// max of `next` (the next row, or empty: then `None`) for its `Direct::of`.
    pub fn sum_log_probabilities<const WEIGHTED: bool>(
        &self,
        ln_sum: f32,
        w: &[f32],
        next: &[T],
    ) -> (f32, Option<ScannedRow>) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Direct` exists only on CPUs with its kernel's features (`Direct::of`).
        return on_kernel!(self.kernel, |k| on_half!(T, self.src, |s, H| unsafe {
            let next = as_type::<T, H>(next).unwrap_or(&[]);
            let (sum, next_max) = k::log_probability_sum::<H, WEIGHTED>(s, self.row.max, ln_sum, w, next);
            (sum, next_max.map(ScannedRow))
        }));
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("`Direct::of` makes none here: {ln_sum} {w:?} {next:?}")
    }

    /// log_softmax's backward for the class-target row into `out` (see
    /// [`class_backward_row`]), at `level`; and the max of `next` (the next
    /// row, or empty: then `None`) for its `Direct::of`, as
    /// [`Direct::sum_log_probabilities`] finds it.
    pub fn class_backward<const SUM: bool, const WEIGHTED: bool>(
        &self,
        level: Simd,
        ln_sum: f32,
        k: ClassGradient,
        w: &[f32],
        out: &mut [T],
        next: &[T],
    ) -> (f32, Option<ScannedRow>) {
        let sum_g = class_gradient_total::<T, WEIGHTED>(level, self.src.len(), k, w);
        self.class_backward_with_total::<SUM, WEIGHTED>(ln_sum, k, sum_g, w, out, next)
    }

    /// [`Direct::class_backward`] given Σg (`sum_g`, as
    /// [`Direct::sum_exp_and_gradient_total`] finds it).
    pub fn class_backward_with_total<const SUM: bool, const WEIGHTED: bool>(
        &self,
        ln_sum: f32,
        k: ClassGradient,
        sum_g: f32,
        w: &[f32],
        out: &mut [T],
        next: &[T],
    ) -> (f32, Option<ScannedRow>) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Direct` exists only on CPUs with its kernel's features (`Direct::of`).
        return on_kernel!(self.kernel, |m| on_half!(T, self.src, |s, H| unsafe {
            let out = as_type_mut::<T, H>(out).expect("out has the row's type");
            let next = as_type::<T, H>(next).unwrap_or(&[]);
            let (sum, next_max) = m::class_backward::<H, SUM, WEIGHTED>(s, self.row, ln_sum, k, sum_g, w, out, next);
            (sum, next_max.map(ScannedRow))
        }));
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!(
            "`Direct::of` makes none here: {ln_sum} {} {sum_g} {w:?} {out:?} {next:?}",
            k.base
        )
    }
}
