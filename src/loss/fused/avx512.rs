//! The f32 row loops written out with AVX-512 intrinsics: one 16-lane
//! vector holds exactly the portable loop's 16 lanes (`lanes::row_sums`).
//!
//! Like `avx2.rs`, it performs the portable loop's operations in the same
//! order — lane l sums the elements i ≡ l (mod 16), the exp is `fast_exp`'s
//! step by step — so every level gives the same bits (tests compare it with
//! the scalar level). The max, the sweep and the gradient's scaling each
//! take one instruction per 16 elements where the AVX2 code takes two.

use std::arch::x86_64::*;

use super::super::fast_exp::{LN2_HI, LN2_LO, LOG2_E, POLY, ROUNDER};
use super::kdim::{GradientRun, KdimNext, KdimScales};
use super::lanes::{finish_block, prefetch, prefetch_at, BLOCK, LANES, TILE};

/// e^d for sixteen d ≤ 0: `fast_exp::exp_nonpositive_f32` lane by lane
/// (tested on every 61st negative pattern in `half/avx512.rs`). Its last
/// step is one instruction: the product e^r·2^n, rounded once, is what
/// `vscalefps` gives, and 0 where n is below −126 (there the portable code
/// multiplies by +0). The f32 and the half-type loops share it.
///
/// The portable code's clamp at `MIN_INPUT` is not needed here: it only
/// changes d below it or NaN, whose n (below −126, or NaN: n is monotone in
/// d and n(MIN_INPUT) = −150) the mask turns into 0, as the portable code
/// does with the clamped value.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn exp16(d: __m512) -> __m512 {
    exp16_with(d, &POLY)
}

/// [`exp16`] with `poly` for (e^r − 1)/r (`fast_exp::POLY` or `HALF_POLY`).
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn exp16_with(d: __m512, poly: &[f32]) -> __m512 {
    let (e_r, n) = exp16_parts(d, poly);
    let normal = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(n, _mm512_set1_ps(-126.0));
    _mm512_maskz_scalef_ps(normal, e_r, n)
}

/// [`exp16_with`] for sixteen d from `fast_exp::NORMAL_EXP_FLOOR` to 0: the same
/// bits without the compare and the mask, which only zero lanes below it.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn exp16_normal_with(d: __m512, poly: &[f32]) -> __m512 {
    let (e_r, n) = exp16_parts(d, poly);
    _mm512_scalef_ps(e_r, n)
}

/// e^r and n of e^d = e^r·2^n (see [`exp16`]).
#[inline]
#[target_feature(enable = "avx512f")]
fn exp16_parts(d: __m512, poly: &[f32]) -> (__m512, __m512) {
    let rounder = _mm512_set1_ps(ROUNDER);
    let n = _mm512_sub_ps(_mm512_fmadd_ps(d, _mm512_set1_ps(LOG2_E), rounder), rounder);
    // fma(−n, c, x) and fnmadd(n, c, x) round the same exact value once.
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), d);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(poly[0]);
    for &c in &poly[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    (_mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0)), n)
}

/// `lanes::row_max` for f32: the max ignoring NaN, lane l over i ≡ l (mod 16).
#[target_feature(enable = "avx512f")]
pub(super) fn row_max(x: &[f32]) -> f32 {
    let mut acc = _mm512_set1_ps(f32::NEG_INFINITY);
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        // SAFETY: the chunk holds 16 f32.
        let v = unsafe { _mm512_loadu_ps(chunk.as_ptr()) };
        // max(v, acc) is v where v > acc, else acc — `if v > acc`, NaN v ignored.
        acc = _mm512_max_ps(v, acc);
    }
    let mut lanes = [0.0f32; LANES];
    // SAFETY: `lanes` holds 16 f32.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc) };
    for (l, &v) in rest.iter().enumerate() {
        lanes[l] = if v > lanes[l] { v } else { lanes[l] };
    }
    lanes.iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// `lanes::row_sums` for f32: S and L over a row given its max.
///
/// # Safety
/// The CPU must support AVX-512 F. `a` must be as long as `x` when `COEF`,
/// and `out` when `WRITE`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn row_sums<const COEF: bool, const WRITE: bool>(
    x: &[f32],
    a: &[f32],
    out: &mut [f32],
    max: f32,
    next: &[f32],
) -> (f64, f64) {
    assert!((!COEF || a.len() >= x.len()) && (!WRITE || out.len() >= x.len()));
    let m = _mm512_set1_ps(max);
    let (mut sum_exp, mut sum_shifted) = (0.0, 0.0);
    let mut start = 0;
    while start < x.len() {
        let end = (start + BLOCK).min(x.len());
        let full = start + (end - start) / LANES * LANES;
        let mut e_acc = _mm512_setzero_ps();
        let mut s_acc = _mm512_setzero_ps();
        let mut i = start;
        while i < full {
            if let Some(v) = next.get(i) {
                prefetch(v);
            }
            // SAFETY: i + 16 ≤ full ≤ x.len(), and a and out are at least as
            // long as x where they are read or written (asserted above).
            unsafe {
                let d = _mm512_sub_ps(_mm512_loadu_ps(x.as_ptr().add(i)), m);
                let e = exp16(d);
                e_acc = _mm512_add_ps(e_acc, e);
                s_acc = match COEF {
                    true => _mm512_fmadd_ps(d, _mm512_loadu_ps(a.as_ptr().add(i)), s_acc),
                    false => _mm512_add_ps(s_acc, d),
                };
                if WRITE {
                    _mm512_storeu_ps(out.as_mut_ptr().add(i), e);
                }
            }
            i += LANES;
        }
        let mut e_lanes = [0.0f32; LANES];
        let mut s_lanes = [0.0f32; LANES];
        // SAFETY: each array holds 16 f32.
        unsafe {
            _mm512_storeu_ps(e_lanes.as_mut_ptr(), e_acc);
            _mm512_storeu_ps(s_lanes.as_mut_ptr(), s_acc);
        }
        // The block's last few elements and the fold, as the portable loop does them.
        let (e, s) = finish_block::<f32, COEF, WRITE>(x, a, out, max, full..end, &mut e_lanes, &mut s_lanes);
        sum_exp += e;
        sum_shifted += s;
        start = end;
    }
    (sum_exp, sum_shifted)
}

/// `lanes::row_apply` for f32: e·scale_p + a·scale_a (a = 1 without `COEF`),
/// a product and a sum rounded apart, as the portable loop does.
#[target_feature(enable = "avx512f")]
pub(super) fn row_apply<const COEF: bool>(row: &mut [f32], a: &[f32], scale_p: f32, scale_a: f32) {
    assert!(!COEF || a.len() >= row.len());
    let (sp, sa) = (_mm512_set1_ps(scale_p), _mm512_set1_ps(scale_a));
    let full = row.len() / LANES * LANES;
    let mut i = 0;
    while i < full {
        // SAFETY: i + 16 ≤ full ≤ row.len() ≤ a.len() where `a` is read.
        unsafe {
            let e = _mm512_loadu_ps(row.as_ptr().add(i));
            let shift = match COEF {
                true => _mm512_mul_ps(_mm512_loadu_ps(a.as_ptr().add(i)), sa),
                false => sa,
            };
            _mm512_storeu_ps(row.as_mut_ptr().add(i), _mm512_add_ps(_mm512_mul_ps(e, sp), shift));
        }
        i += LANES;
    }
    for i in full..row.len() {
        let shift = if COEF { a[i] * scale_a } else { scale_a };
        row[i] = row[i] * scale_p + shift;
    }
}

/// `kdim::sums` for f32: S and L of the packed tile's 16 positions at j
/// (classes `stride` apart in `pack`, max `max`), with the exponentials
/// written back with `WRITE`. With `next`, each class step also copies the
/// same 16 columns of the next tile out of the block and keeps their max,
/// as `lanes::tile_pack` does, and prefetches the line of the tile after
/// next; without it, the next tile's line is prefetched from `ahead` (the
/// block from the next tile on).
///
/// # Safety
/// The CPU must support AVX-512 F, AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn kdim_sums<const COEF: bool, const WRITE: bool>(
    pack: &mut [f32],
    stride: usize,
    j: usize,
    max: &[f32],
    a: &[f32],
    ahead: &[f32],
    inner: usize,
    mut next: Option<KdimNext<'_>>,
) -> ([f64; LANES], [f64; LANES]) {
    let classes = pack.len() / stride;
    // Every access below is in bounds when these hold.
    assert!(j + LANES <= stride && max.len() >= LANES && (!COEF || a.len() >= classes));
    if let Some(n) = &next {
        n.check(classes, inner, j);
    }
    // SAFETY (all loads and stores below): within the slices, by the asserts above.
    let m = unsafe { _mm512_loadu_ps(max.as_ptr()) };
    let sweep = KdimSweep {
        pack: pack.as_mut_ptr(),
        stride,
        j,
        m,
        a,
        ahead: ahead.as_ptr(),
        inner,
    };
    // The copy or not chosen here, not in each class step.
    let ([exp_lo, exp_hi], [shifted_lo, shifted_hi], next_max) = match next.as_mut() {
        // SAFETY: `check` above; the rest by the asserts above.
        Some(n) => unsafe {
            sweep.run::<COEF, WRITE, true>(classes, n.logits.as_ptr(), n.values.as_mut_ptr(), n.stride)
        },
        None => unsafe { sweep.run::<COEF, WRITE, false>(classes, std::ptr::null(), std::ptr::null_mut(), 0) },
    };
    if let Some(n) = next {
        unsafe {
            _mm512_storeu_ps(n.max.as_mut_ptr(), next_max);
            // This level keeps no min: its masked exp costs nothing extra.
            _mm512_storeu_ps(n.min.as_mut_ptr(), _mm512_set1_ps(f32::NEG_INFINITY));
        }
    }
    let mut sum_exp = [0.0f64; LANES];
    let mut sum_shifted = [0.0f64; LANES];
    unsafe {
        _mm512_storeu_pd(sum_exp.as_mut_ptr(), exp_lo);
        _mm512_storeu_pd(sum_exp.as_mut_ptr().add(8), exp_hi);
        _mm512_storeu_pd(sum_shifted.as_mut_ptr(), shifted_lo);
        _mm512_storeu_pd(sum_shifted.as_mut_ptr().add(8), shifted_hi);
    }
    (sum_exp, sum_shifted)
}

/// `kdim::pick_targets` for f32, eight positions per step with gathers:
/// each kept position's class (else `u32::MAX`, also past `width`), its
/// weight (1 without `weights`) and its logit from the packed tile
/// (`values`, rows `stride` apart), both 0 where not kept. `targets` holds
/// the raw targets from the tile's first on (at least `width`), `ignore`
/// marks ignored ones; the next tile's are prefetched meanwhile.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
pub(super) fn pick_targets(
    targets: &[i64],
    ignore: i64,
    width: usize,
    values: &[f32],
    stride: usize,
    weights: Option<&[f64]>,
    out_ys: &mut [u32; TILE],
    out_weights: &mut [f64; TILE],
    out_picked: &mut [f64; TILE],
) {
    let classes = values.len() / stride.max(1);
    assert!(width <= TILE && width <= stride && targets.len() >= width && weights.is_none_or(|w| w.len() >= classes));
    let lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    let mut j = 0;
    while j < width {
        // One line of eight targets per step: the next tile's, so that its
        // loads below find them in cache.
        if let Some(ahead) = targets.get(j + TILE) {
            prefetch(ahead);
        }
        let within = ((1u16 << (width - j).min(8)) - 1) as u8;
        // SAFETY: only the lanes below width are loaded (masked lanes do not fault).
        let y = unsafe { _mm512_maskz_loadu_epi64(within, targets.as_ptr().add(j)) };
        let kept = _mm512_mask_cmpneq_epi64_mask(within, y, _mm512_set1_epi64(ignore));
        // Validation keeps every kept class in 0..C; checked here, as the gathers rely on it.
        assert_eq!(kept & _mm512_cmpge_epu64_mask(y, _mm512_set1_epi64(classes as i64)), 0);
        let at = _mm512_add_epi64(
            _mm512_mullo_epi64(y, _mm512_set1_epi64(stride as i64)),
            _mm512_add_epi64(lane, _mm512_set1_epi64(j as i64)),
        );
        // SAFETY: the gathers read only kept lanes, at class y < C (asserted),
        // position j + l < width ≤ stride: inside `values` and `weights`.
        // The stores write 8 lanes at j + 8 ≤ TILE (j < width ≤ TILE, j a multiple of 8).
        unsafe {
            let picked = _mm512_mask_i64gather_ps::<4>(_mm256_setzero_ps(), kept, at, values.as_ptr());
            let weight = match weights {
                Some(w) => _mm512_mask_i64gather_pd::<8>(_mm512_setzero_pd(), kept, y, w.as_ptr()),
                None => _mm512_maskz_mov_pd(kept, _mm512_set1_pd(1.0)),
            };
            let class = _mm512_cvtepi64_epi32(_mm512_mask_mov_epi64(_mm512_set1_epi64(-1), kept, y));
            _mm256_storeu_si256(out_ys.as_mut_ptr().add(j).cast(), class);
            _mm512_storeu_pd(out_weights.as_mut_ptr().add(j), weight);
            _mm512_storeu_pd(out_picked.as_mut_ptr().add(j), _mm512_cvtps_pd(picked));
        }
        j += 8;
    }
}

/// [`kdim_sums`]' loop over the classes of one group.
struct KdimSweep<'a> {
    pack: *mut f32,
    stride: usize,
    j: usize,
    m: __m512,
    a: &'a [f32],
    /// The block from the next tile on (only prefetched from).
    ahead: *const f32,
    inner: usize,
}

impl KdimSweep<'_> {
    /// S and L in f64 (lanes 0–7 and 8–15) and, with `COPY`, the max of
    /// the next tile's columns copied from `logits` to `values`.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and FMA; the group at `j` of each of
    /// `classes` classes must lie within `pack` (and within `logits` and
    /// `values` with `COPY`, classes `inner` and `next_stride` apart), and
    /// `a` hold `classes` weights with `COEF`.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn run<const COEF: bool, const WRITE: bool, const COPY: bool>(
        &self,
        classes: usize,
        logits: *const f32,
        values: *mut f32,
        next_stride: usize,
    ) -> ([__m512d; 2], [__m512d; 2], __m512) {
        let (p, j, inner, m) = (self.pack, self.j, self.inner, self.m);
        let mut next_max = _mm512_set1_ps(f32::NEG_INFINITY);
        let (mut exp_lo, mut exp_hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        let (mut shifted_lo, mut shifted_hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        let mut k0 = 0;
        while k0 < classes {
            let mut e_acc = _mm512_setzero_ps();
            let mut s_acc = _mm512_setzero_ps();
            for k in k0..classes.min(k0 + BLOCK / LANES) {
                // SAFETY: the caller's promises.
                unsafe {
                    if COPY {
                        // The tile after next, a line per class and group, so
                        // that the copy below finds its lines in L2.
                        prefetch_at(self.ahead.wrapping_add(TILE + k * inner + j));
                        let v = _mm512_loadu_ps(logits.add(k * inner + j));
                        _mm512_storeu_ps(values.add(k * next_stride + j), v);
                        // max(v, acc) is acc where v is NaN or equal: f32::max(acc, v), as in `tile_pack`.
                        next_max = _mm512_max_ps(v, next_max);
                    } else {
                        prefetch_at(self.ahead.wrapping_add(k * inner + j));
                    }
                    let run = p.add(k * self.stride + j);
                    let d = _mm512_sub_ps(_mm512_loadu_ps(run), m);
                    let e = exp16(d);
                    e_acc = _mm512_add_ps(e_acc, e);
                    s_acc = match COEF {
                        true => _mm512_fmadd_ps(d, _mm512_set1_ps(*self.a.get_unchecked(k)), s_acc),
                        false => _mm512_add_ps(s_acc, d),
                    };
                    if WRITE {
                        _mm512_storeu_ps(run, e);
                    }
                }
            }
            // Each lane's block sum into f64, as `sum_exp[l] += e_acc[l] as f64`.
            exp_lo = _mm512_add_pd(exp_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e_acc)));
            exp_hi = _mm512_add_pd(
                exp_hi,
                _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e_acc)))),
            );
            shifted_lo = _mm512_add_pd(shifted_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(s_acc)));
            shifted_hi = _mm512_add_pd(
                shifted_hi,
                _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(s_acc)))),
            );
            k0 += BLOCK / LANES;
        }
        ([exp_lo, exp_hi], [shifted_lo, shifted_hi], next_max)
    }
}

/// `kdim::write_gradient` for f32: each class's run of the tile's gradient,
/// e·scale_p + a·scale_w (a = the class weight with `COEF`, else 1; a
/// product and a sum rounded apart, as the portable loop does) with the
/// target's entry at the target's class, from the exponentials in `values`
/// (classes `stride` apart) to `out` at k·inner + s0 (`width` positions).
///
/// With `stream`, each whole 64-byte line of a run goes out in one
/// streaming store straight from a register, shifted across two groups
/// (`vpermt2ps`) when the run does not start on a line; only the partial
/// lines at a run's ends take ordinary masked stores. The caller fences.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn kdim_gradient<const COEF: bool>(
    values: &[f32],
    stride: usize,
    width: usize,
    scales: &KdimScales<'_>,
    a: &[f32],
    out: &mut [f32],
    inner: usize,
    s0: usize,
    stream: bool,
) {
    let classes = values.len() / stride.max(1);
    // Every access below is in bounds when these hold.
    assert!(width <= stride && stride.is_multiple_of(LANES) && (!COEF || a.len() >= classes));
    assert!(scales.scale_p.len() >= stride && scales.scale_w.len() >= stride);
    assert!(scales.ys.len() >= stride && scales.target_entries.len() >= stride);
    assert!(classes == 0 || out.len() >= (classes - 1) * inner + s0 + width);
    let groups = stride / LANES;
    for k in 0..classes {
        let w = _mm512_set1_ps(if COEF { a[k] } else { 1.0 });
        let class = _mm512_set1_epi32(k as i32);
        let run = GradientRun::new(&values[k * stride..][..stride], scales);
        // SAFETY (every call below): group i < stride / 16 lies within each
        // of the run's arrays, which hold `stride` values at least (asserted
        // above); stride is a multiple of 16, not 0 where there is a class.
        let group = |i: usize| unsafe { kdim_gradient_group::<COEF>(&run, w, class, i * LANES) };
        let dst = out[k * inner + s0..][..width].as_mut_ptr();
        // Positions before the run's first line boundary (0 when not streaming).
        let head = match stream {
            true => (64 - dst as usize % 64) % 64 / 4,
            false => 0,
        };
        let mut current = group(0);
        if head > 0 {
            // SAFETY: lanes below min(head, width) are within the run.
            unsafe { _mm512_mask_storeu_ps(dst, lanes_below(head.min(width)), current) };
        }
        // Line l of the run: lanes head.. of group l, then lanes ..head of group l + 1.
        let shift = _mm512_add_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(head as i32),
        );
        let (mut p, mut i) = (head, 0);
        while p < width {
            let next = match i + 1 < groups {
                true => group(i + 1),
                false => _mm512_setzero_ps(),
            };
            let line = match head {
                0 => current,
                _ => _mm512_permutex2var_ps(current, shift, next),
            };
            // SAFETY: positions p.. of the run, as many as stored (p < width);
            // with `stream`, dst + p lies on a 64-byte line (p ≡ head mod 16).
            unsafe {
                match (p + LANES <= width, stream) {
                    (true, true) => _mm512_stream_ps(dst.add(p), line),
                    (true, false) => _mm512_storeu_ps(dst.add(p), line),
                    (false, _) => _mm512_mask_storeu_ps(dst.add(p), lanes_below(width - p), line),
                }
            }
            current = next;
            (p, i) = (p + LANES, i + 1);
        }
    }
}

/// The gradient of the 16 positions at j of one class's run `e` (its
/// exponentials), with `w` its weight and `class` its index in every lane.
///
/// # Safety
/// The CPU must support AVX-512 F; positions j..j + 16 of each of `run`'s
/// arrays must lie within it.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn kdim_gradient_group<const COEF: bool>(run: &GradientRun, w: __m512, class: __m512i, j: usize) -> __m512 {
    // SAFETY: the caller's promise.
    unsafe {
        let sw = _mm512_loadu_ps(run.scale_w.add(j));
        let shift = if COEF { _mm512_mul_ps(w, sw) } else { sw };
        let g = _mm512_add_ps(
            _mm512_mul_ps(_mm512_loadu_ps(run.e.add(j)), _mm512_loadu_ps(run.scale_p.add(j))),
            shift,
        );
        let target = _mm512_cmpeq_epi32_mask(_mm512_loadu_si512(run.ys.add(j).cast()), class);
        _mm512_mask_loadu_ps(g, target, run.target_entries.add(j))
    }
}

/// The mask of lanes 0..n of 16 (n ≤ 16).
#[inline]
fn lanes_below(n: usize) -> __mmask16 {
    (((1u32 << n) - 1) & 0xffff) as __mmask16
}
