//! K-dim input (N, C, d1…dk) with class targets: `LANES` consecutive
//! positions of a batch's (C, S) block in the lanes, the classes in the
//! loop, read straight from the block.
//!
//! For a fixed class the positions are contiguous. A tile of [`TILE`]
//! positions is first copied out of the block class run by class run
//! (`lanes::pack_tile`, with the max per position): the class runs of a
//! tile lie S apart, and when S·size is a multiple of a large power of two
//! they all fall into the same cache sets, so the copy is what keeps the
//! next sweeps in L1. Then each group of `LANES` positions sweeps the copy
//! for the exponentials (kept in the copy for the gradient), S and L, with
//! the accumulators in registers, and does its per-position work (ln S, the
//! terms, the gradient's scales and the target's entry, in f64) on the same
//! lanes. The gradient is then written class run by class run, the target's
//! entry patched into the run through a per-class list of its positions.
//!
//! For f32 at the AVX2 and AVX-512 levels the sweep is `avx2::kdim_sums` or
//! `avx512::kdim_sums`, which also copies the same group of the next tile
//! out of the block, one class per step: a separate copy would wait for
//! memory with nothing to do, while here the loads' wait overlaps with the
//! exponentials. The same step prefetches that class's line of the tile
//! after next, so that the copy's loads find it in L2. The AVX2 copy also
//! keeps each position's min (`PackedTile::min`): where a half group's
//! logits all lie within `fast_exp::NORMAL_EXP_FLOOR` of their max, its
//! exps skip the clamp, with the same bits. On AVX-512 the targets' logits and weights are gathered
//! (`avx512::pick_targets`), and the gradient goes out from registers in
//! whole 64-byte streaming lines (`avx512::kdim_gradient`): no buffer in
//! between, one store per line.
//!
//! Each lane does exactly what a position's sweep does alone — S and L
//! summed over the classes in order in the working type, flushed to f64
//! every `BLOCK / LANES` classes — so the results do not depend on how the
//! positions are grouped, nor on the level the loops are compiled for.

use super::super::class_targets::ClassTargets;
use super::super::fast_exp::exp_nonpositive_into;
use super::super::fast_ln::ln_into;
use super::super::simd::{Simd, SimdLevel};
use super::lanes::{padded, prefetch, Lane, PackedTile, BLOCK, LANES, TILE};

/// Marks an ignored position in [`TileTargets::ys`].
pub(super) const IGNORED: u32 = u32::MAX;

/// A packed tile of up to [`TILE`] consecutive positions of one batch's
/// (C, S) block, with what its positions need besides their logits.
pub(super) struct Tile<'a, T> {
    /// The batch's (C, S) block: the next tile is prefetched from it.
    pub block: &'a [T],
    pub inner: usize,
    /// The tile's first position in the block.
    pub s0: usize,
    /// Its positions' targets ([`pick_targets`]).
    pub targets: &'a TileTargets,
    /// The class weights in the working type, when weighted (the `a` of L).
    pub class_weights: Option<&'a [T]>,
    pub weight_sum: f64,
    pub smoothing: bool,
}

/// A tile's positions' targets, written by [`pick_targets`] up to the
/// tile's padded width.
pub(super) struct TileTargets {
    /// Each position's class, or [`IGNORED`] (also past the tile's end).
    pub ys: [u32; TILE],
    /// Each position's target weight (0 where ignored).
    pub weights: [f64; TILE],
    /// Each position's target logit (0 where ignored).
    pub picked: [f64; TILE],
}

/// The gradient's side of a tile: where it goes (the block's gradient),
/// per position the (nll, smoothing) coefficients of the upstream
/// gradient, and room for the gradient's scales.
pub(super) struct TileGrad<'a, T> {
    pub out: &'a mut [T],
    pub coefficients: &'a Coefficients,
    pub scales: &'a mut Scales<T>,
}

/// Which of a tile's positions the reference kernel must decide: [`kdim_tile`]
/// writes every group's `reference_terms`, with the gradient its
/// `reference_grad`, and `any`.
pub(super) struct TileFlags {
    /// Kept positions whose statistics are not finite (their terms).
    pub reference_terms: [bool; TILE],
    /// With the gradient: positions whose gradient the closed form does not give.
    pub reference_grad: [bool; TILE],
    /// Whether any of the above is set (usually not: no scan needed).
    pub any: bool,
}

/// What the gradient's sweep needs per position (each group's written
/// before the gradient reads it).
pub(super) struct Scales<T> {
    scale_p: [T; TILE],
    scale_w: [T; TILE],
    target_entries: [T; TILE],
}

/// A task's buffers for its tiles, reused from tile to tile: each tile
/// writes what it reads, so none is cleared in between.
pub(super) struct TileBuffers<T> {
    pub targets: TileTargets,
    pub flags: TileFlags,
    pub scales: Scales<T>,
}

impl<T: Lane> TileBuffers<T> {
    pub fn new() -> Box<Self> {
        Box::new(TileBuffers {
            targets: TileTargets {
                ys: [IGNORED; TILE],
                weights: [0.0; TILE],
                picked: [0.0; TILE],
            },
            flags: TileFlags {
                reference_terms: [false; TILE],
                reference_grad: [false; TILE],
                any: false,
            },
            scales: Scales {
                scale_p: [T::ZERO; TILE],
                scale_w: [T::ZERO; TILE],
                target_entries: [T::ZERO; TILE],
            },
        })
    }
}

/// S = Σ e^(x−M) and L = Σ a·(x − M) for the group at j (a = the class
/// weight, or 1 without `COEF`), in the order of `lanes::sweep_group`; with
/// `WRITE` the exponentials replace the logits in the packed tile. The next
/// tile's lines of these lanes are prefetched, one class per step.
#[inline(always)]
fn sums<T: Lane, const COEF: bool, const WRITE: bool>(
    t: &Tile<'_, T>,
    pack: &mut [T],
    stride: usize,
    j: usize,
    max: &[T; LANES],
) -> ([f64; LANES], [f64; LANES]) {
    let line = (64 / std::mem::size_of::<T>()).max(1);
    let classes = pack.len() / stride;
    let a = t.class_weights.unwrap_or(&[]);
    let mut sum_exp = [0.0f64; LANES];
    let mut sum_shifted = [0.0f64; LANES];
    for k0 in (0..classes).step_by(BLOCK / LANES) {
        let mut e_acc = [T::ZERO; LANES];
        let mut s_acc = [T::ZERO; LANES];
        for k in k0..classes.min(k0 + BLOCK / LANES) {
            for offset in (0..LANES).step_by(line) {
                if let Some(v) = t.block.get(k * t.inner + t.s0 + TILE + j + offset) {
                    prefetch(v);
                }
            }
            let run: &mut [T; LANES] = (&mut pack[k * stride + j..][..LANES]).try_into().expect("LANES values");
            let w = if COEF { a[k] } else { T::ZERO };
            for l in 0..LANES {
                let d = run[l] - max[l];
                let e = d.exp_lane();
                e_acc[l] = e_acc[l] + e;
                s_acc[l] = if COEF { d.fma(w, s_acc[l]) } else { s_acc[l] + d };
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

/// The next tile of the same block, which the sweep may copy group by group.
pub(super) struct Next<'a, T> {
    /// The block from the next tile's first position on.
    pub logits: &'a [T],
    /// Reset to the next tile's width (`PackedTile::reset`).
    pub tile: &'a mut PackedTile<T>,
}

/// The next tile's side of the f32 sweeps that copy it (`avx512::kdim_sums`,
/// `avx2::kdim_sums`): the block from its first position on (classes
/// `inner` apart), its packed values (rows `stride` apart) and the max and
/// min of the group's 16 positions (the min may be written as −∞: see
/// `PackedTile::min`).
pub(super) struct KdimNext<'a> {
    pub logits: &'a [f32],
    pub values: &'a mut [f32],
    pub stride: usize,
    pub max: &'a mut [f32],
    pub min: &'a mut [f32],
}

impl KdimNext<'_> {
    /// Panics unless the group at j of every one of `classes` classes lies
    /// within the slices: what the sweeps' unchecked copies rely on.
    /// Inlined: a call from a sweep would need `vzeroupper` and cost the
    /// caller its vector registers.
    #[inline(always)]
    pub fn check(&self, classes: usize, inner: usize, j: usize) {
        let last = classes.saturating_sub(1);
        assert!(
            classes == 0
                || (j + LANES <= self.stride
                    && self.logits.len() >= last * inner + j + LANES
                    && self.values.len() >= last * self.stride + j + LANES
                    && self.max.len() >= LANES
                    && self.min.len() >= LANES)
        );
    }
}

/// How a group's sums are computed: [`sums`], or for f32 on AVX-512 CPUs
/// `avx512::kdim_sums`, which also copies the group's columns of the next
/// tile (its loads wait for memory while the exponentials compute).
trait GroupSums<T: Lane> {
    /// Whether [`GroupSums::sums`] copies the next tile's groups.
    fn copies(t: &Tile<'_, T>) -> bool;
    /// [`sums`], and with `next` the group's columns of the next tile into
    /// `next.tile` with their max (and min). `extremes` are the group's
    /// max and min per position (the min may be lower: `PackedTile::min`).
    fn sums<const COEF: bool, const WRITE: bool>(
        t: &Tile<'_, T>,
        pack: &mut [T],
        stride: usize,
        j: usize,
        extremes: (&[T; LANES], &[T; LANES]),
        next: Option<&mut Next<'_, T>>,
    ) -> ([f64; LANES], [f64; LANES]);
    /// [`write_gradient`]'s runs, without the closing fence.
    fn gradient<const COEF: bool>(
        t: &Tile<'_, T>,
        tile: &PackedTile<T>,
        scales: &Scales<T>,
        out: &mut [T],
        stream: bool,
    );
}

/// The portable loop of [`sums`]; it never copies the next tile.
struct Portable;

impl<T: Lane> GroupSums<T> for Portable {
    fn copies(_: &Tile<'_, T>) -> bool {
        false
    }
    #[inline(always)]
    fn sums<const COEF: bool, const WRITE: bool>(
        t: &Tile<'_, T>,
        pack: &mut [T],
        stride: usize,
        j: usize,
        (max, _): (&[T; LANES], &[T; LANES]),
        _: Option<&mut Next<'_, T>>,
    ) -> ([f64; LANES], [f64; LANES]) {
        sums::<T, COEF, WRITE>(t, pack, stride, j, max)
    }
    #[inline(always)]
    fn gradient<const COEF: bool>(
        t: &Tile<'_, T>,
        tile: &PackedTile<T>,
        scales: &Scales<T>,
        out: &mut [T],
        stream: bool,
    ) {
        gradient_runs::<T, COEF>(t, tile, scales, out, stream);
    }
}

/// A group's arguments to the f32 sweeps (`avx512::kdim_sums`,
/// `avx2::kdim_sums`): the packed tile, the group's max and min, the class
/// weights, the block from the next tile on, and the next tile's side.
#[cfg(target_arch = "x86_64")]
struct F32Group<'a> {
    pack: &'a mut [f32],
    max: &'a [f32],
    min: &'a [f32],
    a: &'a [f32],
    ahead: &'a [f32],
    next: Option<KdimNext<'a>>,
}

/// [`sums`]' arguments as f32, when `T` is f32.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn f32_group<'a, T: Lane>(
    t: &'a Tile<'_, T>,
    pack: &'a mut [T],
    j: usize,
    (max, min): (&'a [T; LANES], &'a [T; LANES]),
    next: Option<&'a mut Next<'_, T>>,
) -> Option<F32Group<'a>> {
    let next = next.and_then(|n| {
        let stride = padded(n.tile.width);
        Some(KdimNext {
            logits: f32::cast(n.logits)?,
            values: f32::cast_mut(&mut n.tile.values[..])?,
            stride,
            max: f32::cast_mut(&mut n.tile.max[j..j + LANES])?,
            min: f32::cast_mut(&mut n.tile.min[j..j + LANES])?,
        })
    });
    let block = f32::cast(t.block)?;
    Some(F32Group {
        pack: f32::cast_mut(pack)?,
        max: f32::cast(&max[..])?,
        min: f32::cast(&min[..])?,
        a: f32::cast(t.class_weights.unwrap_or(&[]))?,
        ahead: block.get(t.s0 + TILE..).unwrap_or(&[]),
        next,
    })
}

/// [`GroupSums::sums`] through `kernel` (a level's f32 `kdim_sums`, given
/// the group's arguments as f32) when `T` is f32, else the portable [`sums`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn sums_with<T: Lane, const COEF: bool, const WRITE: bool>(
    t: &Tile<'_, T>,
    pack: &mut [T],
    stride: usize,
    j: usize,
    extremes: (&[T; LANES], &[T; LANES]),
    next: Option<&mut Next<'_, T>>,
    kernel: impl FnOnce(F32Group<'_>) -> ([f64; LANES], [f64; LANES]),
) -> ([f64; LANES], [f64; LANES]) {
    let is_f32 = f32::cast::<T>(&[]).is_some();
    match f32_group(t, pack, j, extremes, next).filter(|_| is_f32) {
        Some(g) => kernel(g),
        None => sums::<T, COEF, WRITE>(t, pack, stride, j, extremes.0),
    }
}

/// `avx512::kdim_sums` and `avx512::kdim_gradient` for f32; [`sums`] and
/// [`gradient_runs`] for other types. Only [`kdim_tile`]'s AVX-512 branch
/// names it.
#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl<T: Lane> GroupSums<T> for Avx512 {
    fn copies(_: &Tile<'_, T>) -> bool {
        f32::cast::<T>(&[]).is_some()
    }
    #[inline(always)]
    fn sums<const COEF: bool, const WRITE: bool>(
        t: &Tile<'_, T>,
        pack: &mut [T],
        stride: usize,
        j: usize,
        extremes: (&[T; LANES], &[T; LANES]),
        next: Option<&mut Next<'_, T>>,
    ) -> ([f64; LANES], [f64; LANES]) {
        sums_with::<T, COEF, WRITE>(t, pack, stride, j, extremes, next, |g| {
            // SAFETY: `Avx512` is named only in `kdim_tile`'s branch for the
            // AVX-512 level, which a `Simd` token holds only when the CPU
            // reports AVX-512 F, VL, DQ, AVX2 and FMA.
            unsafe { super::avx512::kdim_sums::<COEF, WRITE>(g.pack, stride, j, g.max, g.a, g.ahead, t.inner, g.next) }
        })
    }
    #[inline(always)]
    fn gradient<const COEF: bool>(
        t: &Tile<'_, T>,
        tile: &PackedTile<T>,
        scales: &Scales<T>,
        out: &mut [T],
        stream: bool,
    ) {
        f32_gradient::<T, COEF>(
            t,
            tile,
            scales,
            out,
            stream,
            |values, stride, width, scales, a, out, inner, s0, stream| {
                // SAFETY: as in `sums` above: the AVX-512 level's branch only.
                unsafe {
                    super::avx512::kdim_gradient::<COEF>(values, stride, width, scales, a, out, inner, s0, stream)
                }
            },
        );
    }
}

/// `avx2::kdim_sums` and `avx2::kdim_gradient` for f32; [`sums`] and
/// [`gradient_runs`] for other types. Only [`kdim_tile`]'s AVX2 branch names it.
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl<T: Lane> GroupSums<T> for Avx2 {
    fn copies(_: &Tile<'_, T>) -> bool {
        f32::cast::<T>(&[]).is_some()
    }
    #[inline(always)]
    fn sums<const COEF: bool, const WRITE: bool>(
        t: &Tile<'_, T>,
        pack: &mut [T],
        stride: usize,
        j: usize,
        extremes: (&[T; LANES], &[T; LANES]),
        next: Option<&mut Next<'_, T>>,
    ) -> ([f64; LANES], [f64; LANES]) {
        sums_with::<T, COEF, WRITE>(t, pack, stride, j, extremes, next, |g| {
            // SAFETY: `Avx2` is named only in `kdim_tile`'s branch for the
            // AVX2 level, which a `Simd` token holds only when the CPU
            // reports AVX2 and FMA.
            unsafe {
                super::avx2::kdim_sums::<COEF, WRITE>(g.pack, stride, j, (g.max, g.min), g.a, g.ahead, t.inner, g.next)
            }
        })
    }
    #[inline(always)]
    fn gradient<const COEF: bool>(
        t: &Tile<'_, T>,
        tile: &PackedTile<T>,
        scales: &Scales<T>,
        out: &mut [T],
        stream: bool,
    ) {
        f32_gradient::<T, COEF>(
            t,
            tile,
            scales,
            out,
            stream,
            |values, stride, width, scales, a, out, inner, s0, stream| {
                // SAFETY: as in `sums` above: the AVX2 level's branch only.
                unsafe { super::avx2::kdim_gradient::<COEF>(values, stride, width, scales, a, out, inner, s0, stream) }
            },
        );
    }
}

/// What the f32 gradient loops (`avx2::kdim_gradient`,
/// `avx512::kdim_gradient`) need per position of a packed tile (each array
/// holds the tile's padded width at least): the gradient's scales
/// (e·scale_p + a·scale_w) and the target's class (`u32::MAX` where none)
/// with its entry.
pub(super) struct KdimScales<'a> {
    pub scale_p: &'a [f32],
    pub scale_w: &'a [f32],
    pub ys: &'a [u32],
    pub target_entries: &'a [f32],
}

/// One class run's exponentials and the tile's [`KdimScales`], as pointers
/// from the tile's first position: the f32 gradient loops read a group of
/// each per step without a bounds test (one per array and group was a
/// third of the AVX2 loop), their callers having checked the lengths once.
pub(super) struct GradientRun {
    pub e: *const f32,
    pub scale_p: *const f32,
    pub scale_w: *const f32,
    pub ys: *const u32,
    pub target_entries: *const f32,
}

impl GradientRun {
    pub fn new(e: &[f32], scales: &KdimScales<'_>) -> Self {
        Self::at(e.as_ptr(), scales)
    }

    /// [`GradientRun::new`] from a pointer to the run's first exponential.
    pub fn at(e: *const f32, scales: &KdimScales<'_>) -> Self {
        GradientRun {
            e,
            scale_p: scales.scale_p.as_ptr(),
            scale_w: scales.scale_w.as_ptr(),
            ys: scales.ys.as_ptr(),
            target_entries: scales.target_entries.as_ptr(),
        }
    }
}

/// [`write_gradient`]'s runs for f32 by `gradient` (`avx2::kdim_gradient`
/// or `avx512::kdim_gradient`, given the packed exponentials, their
/// stride, the tile's width, the scales, the class weights, the output,
/// the class stride in it, the tile's first position and whether to
/// stream); other types take [`gradient_runs`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn f32_gradient<T: Lane, const COEF: bool>(
    t: &Tile<'_, T>,
    tile: &PackedTile<T>,
    scales: &Scales<T>,
    out: &mut [T],
    stream: bool,
    gradient: impl FnOnce(&[f32], usize, usize, &KdimScales<'_>, &[f32], &mut [f32], usize, usize, bool),
) {
    let (Some(values), Some(out32), Some(a), Some(scale_p), Some(scale_w), Some(entries)) = (
        f32::cast(&tile.values),
        f32::cast_mut(out),
        f32::cast(t.class_weights.unwrap_or(&[])),
        f32::cast(&scales.scale_p[..]),
        f32::cast(&scales.scale_w[..]),
        f32::cast(&scales.target_entries[..]),
    ) else {
        return gradient_runs::<T, COEF>(t, tile, scales, out, stream);
    };
    let scales = KdimScales {
        scale_p,
        scale_w,
        ys: &t.targets.ys,
        target_entries: entries,
    };
    gradient(
        values,
        padded(tile.width),
        tile.width,
        &scales,
        a,
        out32,
        t.inner,
        t.s0,
        stream,
    );
}

/// Each position's (nll, smoothing) coefficients of the upstream gradient,
/// in two arrays: the lanes read each as one vector.
pub(super) struct Coefficients {
    pub nll: [f64; TILE],
    pub smooth: [f64; TILE],
}

/// A group's side of the gradient: the tile's upstream coefficients and its scales.
type GroupGrad<'a, T> = (&'a Coefficients, &'a mut Scales<T>);

/// The group at j: its terms and, with `WRITE` and `grad` (the upstream
/// coefficients and the scales), its gradient's scales, with the
/// exponentials left in the packed tile.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn group<T: Lane, S: GroupSums<T>, const COEF: bool, const WRITE: bool>(
    t: &Tile<'_, T>,
    pack: &mut [T],
    stride: usize,
    j: usize,
    (max_t, min_t): (&[T; LANES], &[T; LANES]),
    next: Option<&mut Next<'_, T>>,
    grad: Option<GroupGrad<'_, T>>,
    terms: &mut [(f64, f64); LANES],
    flags: &mut TileFlags,
) {
    let (sum_exp, sum_shifted) = S::sums::<COEF, WRITE>(t, pack, stride, j, (max_t, min_t), next);
    let mut log_sums = [0.0f64; LANES];
    ln_into(&sum_exp, &mut log_sums);
    let ys: &[u32; LANES] = t.targets.ys[j..j + LANES].try_into().expect("LANES values");
    let weights: &[f64; LANES] = t.targets.weights[j..j + LANES].try_into().expect("LANES values");
    let picked: &[f64; LANES] = t.targets.picked[j..j + LANES].try_into().expect("LANES values");
    let mut max = [0.0f64; LANES];
    let mut finite = [false; LANES];
    let mut kept = [false; LANES];
    let mut reference_terms = [false; LANES];
    for l in 0..LANES {
        max[l] = max_t[l].to_f64();
        finite[l] = all_finite([max[l], sum_shifted[l], sum_exp[l]]);
        kept[l] = ys[l] != IGNORED;
        let nll = -((picked[l] - max[l] - log_sums[l]) * weights[l]);
        let smooth = match t.smoothing {
            true => log_sums[l] * t.weight_sum - sum_shifted[l],
            false => 0.0,
        };
        terms[l] = if kept[l] { (nll, smooth) } else { (0.0, 0.0) };
        reference_terms[l] = kept[l] & !finite[l];
    }
    flags.reference_terms[j..j + LANES].copy_from_slice(&reference_terms);
    flags.any |= reference_terms.iter().fold(false, |a, &r| a | r);
    let Some((coefficients, scales)) = grad.filter(|_| WRITE) else {
        return;
    };
    let nll_coefs: &[f64; LANES] = coefficients.nll[j..j + LANES].try_into().expect("LANES values");
    let smooth_coefs: &[f64; LANES] = coefficients.smooth[j..j + LANES].try_into().expect("LANES values");
    let mut scale_p = [T::ZERO; LANES];
    let mut scale_w = [T::ZERO; LANES];
    let mut shifted = [0.0f64; LANES];
    let mut sp = [0.0f64; LANES];
    let mut reference_grad = [false; LANES];
    for l in 0..LANES {
        let (nll_coef, smooth_coef) = (nll_coefs[l], smooth_coefs[l]);
        let total = -smooth_coef * t.weight_sum + weights[l] * nll_coef;
        sp[l] = -total / sum_exp[l];
        let ok = kept[l] & finite[l] & all_finite([sp[l], smooth_coef, nll_coef]);
        // An ignored position's scales are 0: its gradient is 0.
        (scale_p[l], scale_w[l]) = match ok {
            true => (T::from_f64(sp[l]), T::from_f64(-smooth_coef)),
            false => (T::ZERO, T::ZERO),
        };
        reference_grad[l] = (kept[l] & !ok) | !finite[l];
        shifted[l] = picked[l] - max[l];
    }
    flags.reference_grad[j..j + LANES].copy_from_slice(&reference_grad);
    flags.any |= reference_grad.iter().fold(false, |a, &r| a | r);
    // e^(x_y − M) in f64 for the target's entry.
    let mut exps = [0.0f64; LANES];
    exp_nonpositive_into(&shifted, &mut exps);
    let mut target_entries = [T::ZERO; LANES];
    for l in 0..LANES {
        let (nll_coef, smooth_coef) = (nll_coefs[l], smooth_coefs[l]);
        let w = weights[l];
        target_entries[l] = T::from_f64(exps[l] * sp[l] - smooth_coef * w + w * nll_coef);
    }
    scales.scale_p[j..j + LANES].copy_from_slice(&scale_p);
    scales.scale_w[j..j + LANES].copy_from_slice(&scale_w);
    scales.target_entries[j..j + LANES].copy_from_slice(&target_entries);
}

/// Whether all of `values` are finite: x·0 is ±0 for finite x and NaN
/// for ±∞ and NaN, so their sum is 0 exactly when all are. Five vector
/// operations and a compare for the lanes, where three `is_finite` took
/// more (two bit masks and compares each), and no branches over the
/// lanes, as `&&` would.
#[inline(always)]
fn all_finite(values: [f64; 3]) -> bool {
    values[0] * 0.0 + values[1] * 0.0 + values[2] * 0.0 == 0.0
}

/// The tile's gradient from the exponentials in the packed tile, class run
/// by class run: e·scale_p + a·scale_w (a = 1 without `COEF`), and the
/// target's entry at the target's class.
#[inline(always)]
fn write_gradient<T: Lane, S: GroupSums<T>, const COEF: bool>(
    t: &Tile<'_, T>,
    tile: &PackedTile<T>,
    scales: &Scales<T>,
    out: &mut [T],
) {
    let stream = std::mem::size_of_val(out) >= STREAM_BYTES;
    S::gradient::<COEF>(t, tile, scales, out, stream);
    #[cfg(target_arch = "x86_64")]
    if stream {
        // SAFETY: a store fence has no preconditions; SSE is baseline on
        // x86-64. It orders the streaming stores above before any later
        // store (the reference kernel's fix-ups) and before other threads
        // read the gradient.
        unsafe { std::arch::x86_64::_mm_sfence() };
    }
}

/// [`write_gradient`]'s runs in portable code.
#[inline(always)]
fn gradient_runs<T: Lane, const COEF: bool>(
    t: &Tile<'_, T>,
    tile: &PackedTile<T>,
    scales: &Scales<T>,
    out: &mut [T],
    stream: bool,
) {
    let width = tile.width;
    let stride = padded(width);
    let classes = tile.values.len() / stride;
    let a = t.class_weights.unwrap_or(&[]);
    // The tile's kept positions linked class by class (first[k], then
    // next[j]), so that each class run patches in its targets' entries
    // without a compare per position (LLVM turned that select into a branch
    // per lane).
    let mut first = vec![u16::MAX; classes];
    let mut next = [u16::MAX; TILE];
    for j in (0..width).rev() {
        if let Some(head) = first.get_mut(t.targets.ys[j] as usize) {
            next[j] = *head;
            *head = j as u16;
        }
    }
    // Each run is computed in a buffer on the stack, then copied out:
    // computing straight into the streaming stores, LLVM scalarises the loop.
    let mut values = [T::ZERO; TILE];
    for k in 0..classes {
        let w = if COEF { a[k] } else { T::ZERO };
        let e_run = &tile.values[k * stride..][..stride];
        for j in (0..stride).step_by(LANES) {
            values[j..j + LANES].copy_from_slice(&gradient_group::<T, COEF>(e_run, scales, w, j));
        }
        let mut j = first[k];
        while j != u16::MAX {
            values[j as usize] = scales.target_entries[j as usize];
            j = next[j as usize];
        }
        store_run(&mut out[k * t.inner + t.s0..][..width], &values[..width], stream);
    }
}

/// A class's gradient at the group at j, from its exponentials `e_run`
/// and its weight `w` (the target's entry is patched in after).
#[inline(always)]
fn gradient_group<T: Lane, const COEF: bool>(e_run: &[T], scales: &Scales<T>, w: T, j: usize) -> [T; LANES] {
    let e: &[T; LANES] = e_run[j..j + LANES].try_into().expect("LANES values");
    let sp: &[T; LANES] = scales.scale_p[j..j + LANES].try_into().expect("LANES values");
    let sw: &[T; LANES] = scales.scale_w[j..j + LANES].try_into().expect("LANES values");
    let mut o = [T::ZERO; LANES];
    for l in 0..LANES {
        let shift = if COEF { w * sw[l] } else { sw[l] };
        o[l] = e[l] * sp[l] + shift;
    }
    o
}

/// Gradient blocks at least this large (bytes) are written with streaming
/// stores: written once and not read again soon, they would only evict the
/// logits, and a normal store first reads each line from memory.
const STREAM_BYTES: usize = 256 << 10;

/// Copies `values` to `dst` (as long), bypassing the cache with `stream`
/// (x86-64) for the 16-byte-aligned part; the values are the same either way.
#[inline(always)]
fn store_run<T: Lane>(dst: &mut [T], values: &[T], stream: bool) {
    #[cfg(target_arch = "x86_64")]
    if stream {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        let size = std::mem::size_of::<T>();
        // Elements before the first 16-byte boundary, and after the last.
        let head = ((16 - dst.as_ptr() as usize % 16) % 16 / size).min(dst.len());
        let body = (dst.len() - head) * size / 16 * 16 / size;
        dst[..head].copy_from_slice(&values[..head]);
        let (src, out) = (
            values[head..].as_ptr().cast::<u8>(),
            dst[head..].as_mut_ptr().cast::<u8>(),
        );
        for i in (0..body * size).step_by(16) {
            // SAFETY: `out` and `src` point at `body` elements of `dst` and
            // `values` (both as long), i + 16 ≤ body·size bytes; `out` is
            // 16-byte aligned (dst + head elements), as `_mm_stream_si128`
            // requires; SSE2 is baseline on x86-64.
            unsafe {
                _mm_stream_si128(
                    out.add(i).cast::<__m128i>(),
                    _mm_loadu_si128(src.add(i).cast::<__m128i>()),
                )
            };
        }
        dst[head + body..].copy_from_slice(&values[head + body..]);
        return;
    }
    dst.copy_from_slice(values);
}

/// A whole packed tile: the terms of its positions into `terms` (its
/// width) and, with `grad`, their gradient, with `COEF` when the classes
/// are weighted. With `next`, where `S` copies, the next tile's whole
/// groups that this tile's groups reach are copied on the way; returns how
/// many of its columns (0 where `S` does not copy).
#[inline(always)]
fn tile<T: Lane, S: GroupSums<T>, const COEF: bool>(
    t: &Tile<'_, T>,
    packed: &mut PackedTile<T>,
    next: Option<&mut Next<'_, T>>,
    grad: Option<&mut TileGrad<'_, T>>,
    terms: &mut [(f64, f64)],
    flags: &mut TileFlags,
) -> usize {
    let width = packed.width;
    let stride = padded(width);
    let mut grad = grad;
    flags.any = false;
    let mut next = next.filter(|_| S::copies(t));
    let copied = next.as_ref().map_or(0, |n| (n.tile.width / LANES * LANES).min(stride));
    // The last group's terms when the tile ends within it; the others go
    // straight to `terms` (a buffer per group, cleared and copied out, cost
    // 1–3 % of the AVX2 forward in the harness).
    let mut partial = [(0.0, 0.0); LANES];
    for j in (0..stride).step_by(LANES) {
        let m: &[T; LANES] = packed.max[j..j + LANES].try_into().expect("LANES values");
        let low: &[T; LANES] = packed.min[j..j + LANES].try_into().expect("LANES values");
        let whole = terms
            .get_mut(j..j + LANES)
            .and_then(|t| <&mut [(f64, f64); LANES]>::try_from(t).ok());
        let is_whole = whole.is_some();
        let group_terms = whole.unwrap_or(&mut partial);
        let pack = &mut packed.values[..];
        let next = next.as_deref_mut().filter(|_| j < copied);
        macro_rules! run {
            ($write:literal) => {
                group::<T, S, COEF, $write>(
                    t,
                    pack,
                    stride,
                    j,
                    (m, low),
                    next,
                    grad.as_deref_mut().map(|g| (g.coefficients, &mut *g.scales)),
                    group_terms,
                    flags,
                )
            };
        }
        match grad.is_some() {
            true => run!(true),
            false => run!(false),
        }
        if !is_whole {
            terms[j..].copy_from_slice(&partial[..width - j]);
        }
    }
    if let Some(grad) = grad {
        write_gradient::<T, S, COEF>(t, packed, grad.scales, grad.out);
    }
    copied
}

/// [`tile`] with `COEF` chosen at run time, outside the loops.
#[inline(always)]
fn tile_any<T: Lane, S: GroupSums<T>>(
    t: &Tile<'_, T>,
    packed: &mut PackedTile<T>,
    next: Option<&mut Next<'_, T>>,
    grad: Option<&mut TileGrad<'_, T>>,
    terms: &mut [(f64, f64)],
    flags: &mut TileFlags,
) -> usize {
    match t.class_weights.is_some() {
        true => tile::<T, S, true>(t, packed, next, grad, terms, flags),
        false => tile::<T, S, false>(t, packed, next, grad, terms, flags),
    }
}

/// Each position's class (or [`IGNORED`]), weight (`weights`, or 1; 0
/// where ignored) and logit (from the packed tile; 0 where ignored) into
/// `out`, up to the tile's padded width (ignored past its end); the tile's
/// targets are those from position `p0`.
pub(super) fn pick_targets<T: Lane>(
    level: Simd,
    targets: &ClassTargets<'_>,
    p0: usize,
    packed: &PackedTile<T>,
    weights: Option<&[f64]>,
    out: &mut TileTargets,
) {
    let width = packed.width;
    let stride = padded(width);
    if !pick_targets_simd(level, targets, p0, packed, weights, out) {
        let mut ys = [usize::MAX; TILE];
        targets.copy_into(p0, &mut ys[..width], usize::MAX);
        for j in 0..width {
            (out.ys[j], out.weights[j], out.picked[j]) = match ys[j] {
                usize::MAX => (IGNORED, 0.0, 0.0),
                y => (y as u32, weights.map_or(1.0, |w| w[y]), packed.at(y, j).to_f64()),
            };
        }
    }
    // The AVX-512 loop stops at the next multiple of 8, AVX2's of 4.
    out.ys[width..stride].fill(IGNORED);
    out.weights[width..stride].fill(0.0);
    out.picked[width..stride].fill(0.0);
}

/// [`pick_targets`] before the padding, for f32 and int64 targets at the
/// AVX-512 and AVX2 levels; false (nothing written) elsewhere.
fn pick_targets_simd<T: Lane>(
    level: Simd,
    targets: &ClassTargets<'_>,
    p0: usize,
    packed: &PackedTile<T>,
    weights: Option<&[f64]>,
    out: &mut TileTargets,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let (Some(values), Some((raw, ignore))) = (f32::cast(&packed.values), targets.as_int64()) {
        let (width, raw) = (packed.width, &raw[p0..]);
        let (ys, w, picked) = (&mut out.ys, &mut out.weights, &mut out.picked);
        match level.level() {
            // SAFETY: `level` is a `Simd`, which only `simd::current()` makes, and
            // it holds Avx512 only when the CPU reports AVX-512 F, VL, DQ, AVX2 and FMA.
            SimdLevel::Avx512 => unsafe {
                super::avx512::pick_targets(raw, ignore, width, values, padded(width), weights, ys, w, picked)
            },
            // SAFETY: as above, Avx2 only when the CPU reports AVX2 and FMA.
            SimdLevel::Avx2 => unsafe {
                super::avx2::pick_targets(raw, ignore, width, values, padded(width), weights, ys, w, picked)
            },
            _ => return false,
        }
        return true;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (level, targets, p0, packed, weights, out);
    false
}

/// One packed K-dim tile: terms and, with `grad`, gradient (see [`tile`]);
/// returns how many columns of `next` it copied.
#[inline]
pub(super) fn kdim_tile<T: Lane>(
    level: Simd,
    t: &Tile<'_, T>,
    packed: &mut PackedTile<T>,
    next: Option<&mut Next<'_, T>>,
    grad: Option<&mut TileGrad<'_, T>>,
    terms: &mut [(f64, f64)],
    flags: &mut TileFlags,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    match level.level() {
        // SAFETY: `level` is a `Simd`, which only `simd::current()` makes; it
        // holds Avx2 only when the CPU reports AVX2 and FMA.
        SimdLevel::Avx2 => return unsafe { tile_avx2(t, packed, next, grad, terms, flags) },
        // SAFETY: as above, Avx512 only when the CPU reports AVX-512 F, VL
        // and DQ (and AVX2 and FMA).
        SimdLevel::Avx512 => return unsafe { tile_avx512(t, packed, next, grad, terms, flags) },
        _ => {}
    }
    tile_any::<T, Portable>(t, packed, next, grad, terms, flags)
}

/// [`tile_any`] compiled for AVX2 and FMA, with the f32 sweep of `avx2.rs`.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<T: Lane>(
    t: &Tile<'_, T>,
    packed: &mut PackedTile<T>,
    next: Option<&mut Next<'_, T>>,
    grad: Option<&mut TileGrad<'_, T>>,
    terms: &mut [(f64, f64)],
    flags: &mut TileFlags,
) -> usize {
    tile_any::<T, Avx2>(t, packed, next, grad, terms, flags)
}

/// [`tile_any`] compiled for AVX-512, with the f32 sweep of `avx512.rs`.
///
/// # Safety
/// The CPU must support AVX-512 F, VL and DQ, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
unsafe fn tile_avx512<T: Lane>(
    t: &Tile<'_, T>,
    packed: &mut PackedTile<T>,
    next: Option<&mut Next<'_, T>>,
    grad: Option<&mut TileGrad<'_, T>>,
    terms: &mut [(f64, f64)],
    flags: &mut TileFlags,
) -> usize {
    tile_any::<T, Avx512>(t, packed, next, grad, terms, flags)
}
