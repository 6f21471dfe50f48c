//! The f32 row sweep written out with AVX2+FMA intrinsics.
//!
//! LLVM's vectorisation of the portable loop (`lanes::row_sums`) keeps only
//! a few of the exp's constants in registers and reloads the rest on every
//! block, and it falls back to scalar code on small changes to the loop;
//! this is the hottest loop of the crate, so it is spelled out. It performs
//! exactly the portable loop's operations in the same order — lane l of the
//! 16 sums the elements i ≡ l (mod 16), the exp is `fast_exp`'s, step by
//! step — so it gives the same bits (tests compare it with the scalar level).

use std::arch::x86_64::*;

use super::super::fast_exp::{LN2_HI, LN2_LO, LOG2_E, NORMAL_EXP_FLOOR, POLY, ROUNDER};
use super::kdim::{GradientRun, KdimNext, KdimScales};
use super::lanes::{finish_block, prefetch, prefetch_at, BLOCK, LANES, TILE};

/// Lanes of a 256-bit vector of f32: half of [`LANES`].
const HALF: usize = LANES / 2;

/// `fast_exp::ROUNDER` plus 2^n's exponent bias: d·log2 e + this, rounded
/// to an integer, has n + 127 in its low bits, so that its bits shifted
/// left by 23 are 2^n's (the rounder's own bits shift out). The sum rounds
/// to the same n as with `ROUNDER`: the two differ only at a tie, and no
/// f32 d of magnitude below 2^22 puts d·log2 e at one (log2 e's odd
/// 24-bit significand would have to divide an odd d's).
const BIASED_ROUNDER: f32 = ROUNDER + 127.0;

/// e^d for eight d ≤ 0: `fast_exp::exp_nonpositive_f32` lane by lane.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) fn exp8(d: __m256) -> __m256 {
    exp8_with(d, &POLY)
}

/// [`exp8`] with `poly` for (e^r − 1)/r (`fast_exp::POLY` or `HALF_POLY`).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) fn exp8_with(d: __m256, poly: &[f32]) -> __m256 {
    // The portable clamp at `MIN_INPUT` and floor under 2^n's exponent, as
    // a mask at the end (as `avx512::exp16_with` does): they only act where
    // n < −126 (n is monotone in d, n(MIN_INPUT) = −150) or d is NaN (n
    // NaN), and there give +0. Off the exp's chain of dependent steps, it
    // is 3 cycles shorter, which the K-dim sweep's latency-bound loop
    // feels.
    let (e_r, n, biased) = exp8_parts(d, poly, BIASED_ROUNDER);
    let normal = _mm256_cmp_ps::<_CMP_GE_OQ>(n, _mm256_set1_ps(-126.0));
    _mm256_and_ps(
        normal,
        _mm256_mul_ps(e_r, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased))),
    )
}

/// [`exp8_with`] for eight d from `fast_exp::NORMAL_EXP_FLOOR` to 0: the
/// same bits without the clamp and the floor under 2^n's exponent, which
/// only act below it.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) fn exp8_normal_with(d: __m256, poly: &[f32]) -> __m256 {
    let (e_r, _, biased) = exp8_parts(d, poly, BIASED_ROUNDER);
    _mm256_mul_ps(e_r, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased)))
}

/// [`exp8_normal_with`] for the K-dim sweep, with 2^n applied as an integer:
/// n added to e^r's exponent field. Where d ≥ `fast_exp::NORMAL_EXP_FLOOR`
/// the product e^r·2^n is a normal f32 (n ≥ −125 with e^r ≥ 2^−½, or n =
/// −126 with r > 0 and e^r > 1), so it is exact and the sum gives its bits.
/// The add runs on any of three vector ports, the multiply only on the two
/// that also run the FMAs, the sweep's busiest (forward 1–2 % faster). A
/// NaN d gives arbitrary bits, not NaN: the sweep's L, which sums d, still
/// flags its position.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp8_normal_int(d: __m256) -> __m256 {
    // With the plain rounder, the rounded sum's bits shifted left by 23
    // are n << 23, n as a two's-complement integer (the rounder's own bits
    // shift out).
    let (e_r, _, n_bits) = exp8_parts(d, &POLY, ROUNDER);
    let n_exponent = _mm256_slli_epi32::<23>(n_bits);
    _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(e_r), n_exponent))
}

/// e^r, n, and the bits of d·log2 e + `rounder` rounded, of e^d = e^r·2^n
/// (see `fast_exp::exp_nonpositive_f32`). With [`BIASED_ROUNDER`] those
/// bits hold n + 127 (2^n's biased exponent) in their low bits, with
/// `ROUNDER` n itself (the two round to the same n); only meaningful where
/// n ≥ −126.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp8_parts(d: __m256, poly: &[f32], rounder: f32) -> (__m256, __m256, __m256i) {
    let rounder = _mm256_set1_ps(rounder);
    let shifted = _mm256_fmadd_ps(d, _mm256_set1_ps(LOG2_E), rounder);
    let n = _mm256_sub_ps(shifted, rounder);
    // The bias (if any) rides in the rounder: no integer step between the rounding and the shift.
    let biased = _mm256_castps_si256(shifted);
    // fma(−n, c, x) and fnmadd(n, c, x) round the same exact value once.
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), d);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(poly[0]);
    for &c in &poly[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    (_mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0)), n, biased)
}

/// `lanes::row_sums` for f32: S and L over a row given its max.
///
/// # Safety
/// The CPU must support AVX2 and FMA. `a` must be as long as `x` when
/// `COEF`, and `out` when `WRITE`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn row_sums<const COEF: bool, const WRITE: bool>(
    x: &[f32],
    a: &[f32],
    out: &mut [f32],
    max: f32,
    next: &[f32],
) -> (f64, f64) {
    assert!((!COEF || a.len() >= x.len()) && (!WRITE || out.len() >= x.len()));
    let m = _mm256_set1_ps(max);
    let (mut sum_exp, mut sum_shifted) = (0.0, 0.0);
    let mut start = 0;
    while start < x.len() {
        let end = (start + BLOCK).min(x.len());
        let full = start + (end - start) / LANES * LANES;
        // Lanes 0–7 and 8–15 of the portable loop's 16.
        let (mut e_lo, mut e_hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut s_lo, mut s_hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = start;
        while i < full {
            if let Some(v) = next.get(i) {
                prefetch(v);
            }
            // SAFETY: i + 16 ≤ full ≤ x.len(), and a and out are at least as
            // long as x where they are read or written (asserted above).
            unsafe {
                let d_lo = _mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), m);
                let d_hi = _mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i + 8)), m);
                let x_lo = exp8(d_lo);
                let x_hi = exp8(d_hi);
                e_lo = _mm256_add_ps(e_lo, x_lo);
                e_hi = _mm256_add_ps(e_hi, x_hi);
                if COEF {
                    let a_lo = _mm256_loadu_ps(a.as_ptr().add(i));
                    let a_hi = _mm256_loadu_ps(a.as_ptr().add(i + 8));
                    s_lo = _mm256_fmadd_ps(d_lo, a_lo, s_lo);
                    s_hi = _mm256_fmadd_ps(d_hi, a_hi, s_hi);
                } else {
                    s_lo = _mm256_add_ps(s_lo, d_lo);
                    s_hi = _mm256_add_ps(s_hi, d_hi);
                }
                if WRITE {
                    _mm256_storeu_ps(out.as_mut_ptr().add(i), x_lo);
                    _mm256_storeu_ps(out.as_mut_ptr().add(i + 8), x_hi);
                }
            }
            i += LANES;
        }
        let mut e_acc = [0.0f32; LANES];
        let mut s_acc = [0.0f32; LANES];
        // SAFETY: each array holds 16 f32, two unaligned stores of 8.
        unsafe {
            _mm256_storeu_ps(e_acc.as_mut_ptr(), e_lo);
            _mm256_storeu_ps(e_acc.as_mut_ptr().add(8), e_hi);
            _mm256_storeu_ps(s_acc.as_mut_ptr(), s_lo);
            _mm256_storeu_ps(s_acc.as_mut_ptr().add(8), s_hi);
        }
        // The block's last few elements and the fold, as the portable loop does them.
        let (e, s) = finish_block::<f32, COEF, WRITE>(x, a, out, max, full..end, &mut e_acc, &mut s_acc);
        sum_exp += e;
        sum_shifted += s;
        start = end;
    }
    (sum_exp, sum_shifted)
}

/// `kdim::sums` for f32, as `avx512::kdim_sums` does it in two 8-lane
/// halves: S and L of the packed tile's 16 positions at j (classes
/// `stride` apart in `pack`, max `max`), with the exponentials written back
/// with `WRITE`. With `next`, each class step also copies the same 16
/// columns of the next tile out of the block and keeps their max (its
/// loads wait for memory while the exponentials compute) and prefetches
/// the line of the tile after next; without it, the next tile's line is
/// prefetched from `ahead`.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kdim_sums<const COEF: bool, const WRITE: bool>(
    pack: &mut [f32],
    stride: usize,
    j: usize,
    (max, min): (&[f32], &[f32]),
    a: &[f32],
    ahead: &[f32],
    inner: usize,
    mut next: Option<KdimNext<'_>>,
) -> ([f64; LANES], [f64; LANES]) {
    let classes = pack.len() / stride;
    // Every access below is in bounds when these hold.
    assert!(j + LANES <= stride && max.len() >= LANES && min.len() >= LANES && (!COEF || a.len() >= classes));
    if let Some(n) = &next {
        n.check(classes, inner, j);
    }
    // SAFETY (all loads and stores below): within the slices, by the asserts above.
    let (m_lo, m_hi) = unsafe { (_mm256_loadu_ps(max.as_ptr()), _mm256_loadu_ps(max.as_ptr().add(8))) };
    // x − max is monotone in x: from the min's on, a half's exps are all
    // normal, and the exp without the clamp gives the same bits.
    let normal = |h: usize| {
        // SAFETY: h + 8 ≤ 16 ≤ both lengths (asserted above).
        let (low, high) = unsafe {
            (
                _mm256_loadu_ps(min.as_ptr().add(h)),
                _mm256_loadu_ps(max.as_ptr().add(h)),
            )
        };
        let floor = _mm256_set1_ps(NORMAL_EXP_FLOOR);
        _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_sub_ps(low, high), floor)) == 0xFF
    };
    let sweep = KdimSweep {
        pack: pack.as_mut_ptr(),
        stride,
        j,
        m: [m_lo, m_hi],
        normal: [normal(0), normal(HALF)],
        a,
        ahead: ahead.as_ptr(),
        inner,
    };
    // The copy or not chosen here, not in each class step. Between two
    // whole tiles (the usual case) both strides are `TILE`: as constants,
    // the packed tile and the copy share one index, an addition fewer per
    // class step (two threads, forward 2–3 % faster).
    // SAFETY (the three): `check` above; the rest by the asserts above.
    let (sum_exp, sum_shifted, [next_max, next_min]) = match next.as_mut() {
        Some(n) if stride == TILE && n.stride == TILE => unsafe {
            sweep.run::<COEF, WRITE, true, true>(classes, n.logits.as_ptr(), n.values.as_mut_ptr(), n.stride)
        },
        Some(n) => unsafe {
            sweep.run::<COEF, WRITE, true, false>(classes, n.logits.as_ptr(), n.values.as_mut_ptr(), n.stride)
        },
        None => unsafe { sweep.run::<COEF, WRITE, false, false>(classes, std::ptr::null(), std::ptr::null_mut(), 0) },
    };
    if let Some(n) = next {
        unsafe {
            _mm256_storeu_ps(n.max.as_mut_ptr(), next_max[0]);
            _mm256_storeu_ps(n.max.as_mut_ptr().add(8), next_max[1]);
            _mm256_storeu_ps(n.min.as_mut_ptr(), next_min[0]);
            _mm256_storeu_ps(n.min.as_mut_ptr().add(8), next_min[1]);
        }
    }
    let mut out_exp = [0.0f64; LANES];
    let mut out_shifted = [0.0f64; LANES];
    for i in 0..4 {
        unsafe {
            _mm256_storeu_pd(out_exp.as_mut_ptr().add(4 * i), sum_exp[i]);
            _mm256_storeu_pd(out_shifted.as_mut_ptr().add(4 * i), sum_shifted[i]);
        }
    }
    (out_exp, out_shifted)
}

/// [`kdim_sums`]' loop over the classes of one group.
struct KdimSweep<'a> {
    pack: *mut f32,
    stride: usize,
    j: usize,
    m: [__m256; 2],
    /// Whether each half's exps are all normal (no clamp needed).
    normal: [bool; 2],
    a: &'a [f32],
    /// The block from the next tile on (only prefetched from).
    ahead: *const f32,
    inner: usize,
}

impl KdimSweep<'_> {
    /// S and L in f64 (lanes 0–3, 4–7, 8–11, 12–15) and, with `COPY`, the
    /// max and min of the next tile's columns copied from `logits` to `values`:
    /// the group's two halves of 8 lanes one after the other (with both
    /// halves in one loop its live vectors outnumbered AVX2's 16 and it
    /// spilled to the stack; two threads, forward 10 % faster this way).
    /// With `FULL` the packed tile's stride and `next_stride` are `TILE`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; the group at `j` of each of
    /// `classes` classes must lie within `pack` (and within `logits` and
    /// `values` with `COPY`, classes `inner` and `next_stride` apart), and
    /// `a` hold `classes` weights with `COEF`; with `FULL`, the packed
    /// tile's stride and `next_stride` must both be `TILE`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run<const COEF: bool, const WRITE: bool, const COPY: bool, const FULL: bool>(
        &self,
        classes: usize,
        logits: *const f32,
        values: *mut f32,
        next_stride: usize,
    ) -> ([__m256d; 4], [__m256d; 4], [[__m256; 2]; 2]) {
        // SAFETY: the caller's promises, for each half.
        let (lo_exp, lo_shifted, [lo_max, lo_min]) = unsafe {
            match self.normal[0] {
                true => self.half::<COEF, WRITE, COPY, true, true, FULL>(0, classes, logits, values, next_stride),
                false => self.half::<COEF, WRITE, COPY, true, false, FULL>(0, classes, logits, values, next_stride),
            }
        };
        let (hi_exp, hi_shifted, [hi_max, hi_min]) = unsafe {
            match self.normal[1] {
                true => self.half::<COEF, WRITE, COPY, false, true, FULL>(HALF, classes, logits, values, next_stride),
                false => self.half::<COEF, WRITE, COPY, false, false, FULL>(HALF, classes, logits, values, next_stride),
            }
        };
        (
            [lo_exp[0], lo_exp[1], hi_exp[0], hi_exp[1]],
            [lo_shifted[0], lo_shifted[1], hi_shifted[0], hi_shifted[1]],
            [[lo_max, hi_max], [lo_min, hi_min]],
        )
    }

    /// [`KdimSweep::run`] for the 8 lanes from `h` (0 or `HALF`); with
    /// `PREFETCH`, each class step prefetches the group's line ahead; with
    /// `NORMAL` (every d of these lanes at or above `NORMAL_EXP_FLOOR`) the
    /// exp skips its clamp, which saves a compare, a mask and a constant
    /// per class step.
    ///
    /// # Safety
    /// As [`KdimSweep::run`].
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::type_complexity)]
    unsafe fn half<
        const COEF: bool,
        const WRITE: bool,
        const COPY: bool,
        const PREFETCH: bool,
        const NORMAL: bool,
        const FULL: bool,
    >(
        &self,
        h: usize,
        classes: usize,
        logits: *const f32,
        values: *mut f32,
        next_stride: usize,
    ) -> ([__m256d; 2], [__m256d; 2], [__m256; 2]) {
        let (p, j, inner) = (self.pack, self.j, self.inner);
        let (stride, next_stride) = match FULL {
            true => (TILE, TILE),
            false => (self.stride, next_stride),
        };
        let m = self.m[h / HALF];
        let mut next_max = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut next_min = _mm256_set1_ps(f32::INFINITY);
        let mut sum_exp = [_mm256_setzero_pd(); 2];
        let mut sum_shifted = [_mm256_setzero_pd(); 2];
        let mut k0 = 0;
        while k0 < classes {
            let (mut e, mut s) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for k in k0..classes.min(k0 + BLOCK / LANES) {
                // SAFETY: the caller's promises.
                unsafe {
                    if COPY {
                        if PREFETCH {
                            // The tile after next, a line per class and group, so
                            // that the copy below finds its lines in L2.
                            prefetch_at(self.ahead.wrapping_add(TILE + k * inner + j));
                        }
                        let v = _mm256_loadu_ps(logits.add(k * inner + j + h));
                        _mm256_storeu_ps(values.add(k * next_stride + j + h), v);
                        // max(v, acc) is acc where v is NaN or equal: f32::max(acc, v), as in `tile_pack`.
                        next_max = _mm256_max_ps(v, next_max);
                        // The min ignores NaN as well: a NaN logit's exp is then
                        // NaN instead of 0, but its position's S and L are not
                        // finite either way, and the reference kernel redoes it.
                        next_min = _mm256_min_ps(v, next_min);
                    } else if PREFETCH {
                        prefetch_at(self.ahead.wrapping_add(k * inner + j));
                    }
                    let run = p.add(k * stride + j + h);
                    let d = _mm256_sub_ps(_mm256_loadu_ps(run), m);
                    // L before the exp: d is then free for the exp's steps (no copy).
                    if COEF {
                        s = _mm256_fmadd_ps(d, _mm256_set1_ps(*self.a.get_unchecked(k)), s);
                    } else {
                        s = _mm256_add_ps(s, d);
                    }
                    let x = match NORMAL {
                        true => exp8_normal_int(d),
                        false => exp8(d),
                    };
                    e = _mm256_add_ps(e, x);
                    if WRITE {
                        _mm256_storeu_ps(run, x);
                    }
                }
            }
            // Each lane's block sum into f64, as `sum_exp[l] += e_acc[l] as f64`.
            sum_exp[0] = _mm256_add_pd(sum_exp[0], _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
            sum_exp[1] = _mm256_add_pd(sum_exp[1], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e)));
            sum_shifted[0] = _mm256_add_pd(sum_shifted[0], _mm256_cvtps_pd(_mm256_castps256_ps128(s)));
            sum_shifted[1] = _mm256_add_pd(sum_shifted[1], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(s)));
            k0 += BLOCK / LANES;
        }
        (sum_exp, sum_shifted, [next_max, next_min])
    }
}

/// `kdim::write_gradient` for f32, as `avx512::kdim_gradient` computes it,
/// in groups of 8 positions: each class's run of the tile's gradient,
/// e·scale_p + a·scale_w (a = the class weight with `COEF`, else 1; a
/// product and a sum rounded apart, as the portable loop does) with the
/// target's entry at the target's class, from the exponentials in `values`
/// (classes `stride` apart) to `out` at k·inner + s0 (`width` positions),
/// straight from registers: no buffer on the stack copied out after.
///
/// With `stream`, a run that starts on a 32-byte boundary (as the tiles'
/// runs do when the output is, see `LineTiles`) goes out in streaming
/// stores; other runs take ordinary ones, and a run's last partial group a
/// masked store. The caller fences.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
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
    // Every access below is in bounds when these hold (groups of 8 end at
    // or before `stride`, a multiple of 16 at least `width`).
    assert!(width <= stride && stride.is_multiple_of(LANES) && (!COEF || a.len() >= classes));
    assert!(scales.scale_p.len() >= stride && scales.scale_w.len() >= stride);
    assert!(scales.ys.len() >= stride && scales.target_entries.len() >= stride);
    assert!(classes == 0 || out.len() >= (classes - 1) * inner + s0 + width);
    // The whole groups' end, once: a test of p + 8 ≤ width per group
    // took three instructions of the loop's control.
    let whole = width / HALF * HALF;
    for k in 0..classes {
        let w = _mm256_set1_ps(if COEF { a[k] } else { 1.0 });
        let class = _mm256_set1_epi32(k as i32);
        // Pointers, not slices: the asserts above bound every run, and a
        // slice per run cost a multiply and two bounds tests per class.
        // SAFETY: k·stride + stride ≤ values.len() (classes = len / stride),
        // and k·inner + s0 + width ≤ out.len() (asserted above).
        let (e, dst) = unsafe { (values.as_ptr().add(k * stride), out.as_mut_ptr().add(k * inner + s0)) };
        let run = GradientRun::at(e, scales);
        let aligned = stream && (dst as usize).is_multiple_of(32);
        let mut p = 0;
        // Two groups per step, a 64-byte line where the run is aligned:
        // half the loop's control per group.
        while p + LANES <= whole {
            // SAFETY: p + 16 ≤ width ≤ stride, and each of the run's arrays
            // holds `stride` values at least (asserted above).
            let (g0, g1) = unsafe {
                (
                    kdim_gradient_group::<COEF>(&run, w, class, p),
                    kdim_gradient_group::<COEF>(&run, w, class, p + HALF),
                )
            };
            // SAFETY: positions p..p + 16 of the run (p + 16 ≤ width); with
            // `aligned`, dst + p is 32-byte aligned (p a multiple of 8).
            unsafe {
                store_group(dst.add(p), g0, aligned);
                store_group(dst.add(p + HALF), g1, aligned);
            }
            p += LANES;
        }
        if p < whole {
            // SAFETY: as above, for p + 8 ≤ width.
            let g = unsafe { kdim_gradient_group::<COEF>(&run, w, class, p) };
            // SAFETY: positions p..p + 8 of the run; aligned as above.
            unsafe { store_group(dst.add(p), g, aligned) };
            p += HALF;
        }
        if p < width {
            // SAFETY: p + 8 ≤ stride: p is a multiple of 8 below width ≤
            // stride, a multiple of 16 (asserted above).
            let g = unsafe { kdim_gradient_group::<COEF>(&run, w, class, p) };
            let below = _mm256_cmpgt_epi32(
                _mm256_set1_epi32((width - p) as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            // SAFETY: only the lanes below width − p are written: positions of the run.
            unsafe { _mm256_maskstore_ps(dst.add(p), below, g) };
        }
    }
}

/// Eight gradient values to `dst`: a streaming store when `aligned`, else
/// an ordinary one.
///
/// # Safety
/// The CPU must support AVX2; `dst` must point at 8 writable f32, 32-byte
/// aligned when `aligned`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn store_group(dst: *mut f32, g: __m256, aligned: bool) {
    // SAFETY: the caller's promise.
    unsafe {
        match aligned {
            true => _mm256_stream_ps(dst, g),
            false => _mm256_storeu_ps(dst, g),
        }
    }
}

/// The gradient of the 8 positions at j of one class's run `e` (its
/// exponentials), with `w` its weight and `class` its index in every lane.
///
/// # Safety
/// The CPU must support AVX2 and FMA; positions j..j + 8 of each of `run`'s
/// arrays must lie within it.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn kdim_gradient_group<const COEF: bool>(run: &GradientRun, w: __m256, class: __m256i, j: usize) -> __m256 {
    // SAFETY: the caller's promise.
    unsafe {
        let sw = _mm256_loadu_ps(run.scale_w.add(j));
        let shift = if COEF { _mm256_mul_ps(w, sw) } else { sw };
        let g = _mm256_add_ps(
            _mm256_mul_ps(_mm256_loadu_ps(run.e.add(j)), _mm256_loadu_ps(run.scale_p.add(j))),
            shift,
        );
        let target = _mm256_cmpeq_epi32(_mm256_loadu_si256(run.ys.add(j).cast()), class);
        _mm256_blendv_ps(
            g,
            _mm256_loadu_ps(run.target_entries.add(j)),
            _mm256_castsi256_ps(target),
        )
    }
}

/// `kdim::pick_targets` for f32, four positions per gather (as
/// `avx512::pick_targets` takes eight; whole lines of eight targets with
/// plain loads and one prefetch, the last few with masked loads): each kept
/// position's class (else `u32::MAX`, also past `width`), its weight (1 without `weights`) and its
/// logit from the packed tile (`values`, rows `stride` apart), both 0 where
/// not kept. `targets` holds the raw targets from the tile's first on (at
/// least `width`), `ignore` marks ignored ones; the next tile's are
/// prefetched meanwhile.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pick_targets(
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
    assert!(classes < 1 << 31 && stride < 1 << 31);
    let lane = _mm256_setr_epi64x(0, 1, 2, 3);
    // The low 32 bits of each 64-bit lane, in lanes 0–3.
    let low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    // Four positions from j, given which of them lie below `width`.
    let mut four = |j: usize, within: __m256i, y: __m256i| {
        let kept = _mm256_andnot_si256(_mm256_cmpeq_epi64(y, _mm256_set1_epi64x(ignore)), within);
        // Validation keeps every kept class in 0..C; checked here, as the gathers rely on it.
        let outside = _mm256_or_si256(
            _mm256_cmpgt_epi64(_mm256_setzero_si256(), y),
            _mm256_cmpgt_epi64(y, _mm256_set1_epi64x(classes as i64 - 1)),
        );
        assert_eq!(
            _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_and_si256(kept, outside))),
            0
        );
        // y·stride + j + l: y and stride below 2^31 (asserted), so their low
        // halves' product is exact.
        let at = _mm256_add_epi64(
            _mm256_mul_epu32(y, _mm256_set1_epi64x(stride as i64)),
            _mm256_add_epi64(lane, _mm256_set1_epi64x(j as i64)),
        );
        let kept32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(kept, low_halves));
        // SAFETY: the gathers read only kept lanes, at class y < C (asserted),
        // position j + l < width ≤ stride: inside `values` and `weights`.
        // The stores write 4 lanes at j + 4 ≤ TILE (j < width ≤ TILE, j a multiple of 4).
        unsafe {
            let picked = _mm256_mask_i64gather_ps::<4>(_mm_setzero_ps(), values.as_ptr(), at, _mm_castsi128_ps(kept32));
            let weight = match weights {
                Some(w) => _mm256_mask_i64gather_pd::<8>(_mm256_setzero_pd(), w.as_ptr(), y, _mm256_castsi256_pd(kept)),
                None => _mm256_and_pd(_mm256_castsi256_pd(kept), _mm256_set1_pd(1.0)),
            };
            let class = _mm256_blendv_epi8(_mm256_set1_epi64x(-1), y, kept);
            let class = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(class, low_halves));
            _mm_storeu_si128(out_ys.as_mut_ptr().add(j).cast(), class);
            _mm256_storeu_pd(out_weights.as_mut_ptr().add(j), weight);
            _mm256_storeu_pd(out_picked.as_mut_ptr().add(j), _mm256_cvtps_pd(picked));
        }
    };
    let all = _mm256_set1_epi64x(-1);
    let mut j = 0;
    // Whole lines of eight targets: plain loads, and the next tile's line
    // prefetched, so that its loads find it in cache.
    while j + 8 <= width {
        prefetch_at(targets.as_ptr().wrapping_add(j + TILE));
        // SAFETY: j + 8 ≤ width ≤ targets.len().
        let (y0, y1) = unsafe {
            let t = targets.as_ptr().add(j).cast::<__m256i>();
            (_mm256_loadu_si256(t), _mm256_loadu_si256(t.add(1)))
        };
        four(j, all, y0);
        four(j + 4, all, y1);
        j += 8;
    }
    while j < width {
        let within = _mm256_cmpgt_epi64(_mm256_set1_epi64x((width - j).min(4) as i64), lane);
        // SAFETY: only the lanes below width are loaded (masked lanes do not fault).
        let y = unsafe { _mm256_maskload_epi64(targets.as_ptr().add(j), within) };
        four(j, within, y);
        j += 4;
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::fast_exp::exp_nonpositive_f32;
    use super::*;

    /// `exp8_normal_int` against the portable exp, bit for bit, over every
    /// 61st f32 from −0 to `NORMAL_EXP_FLOOR` (about 18 million, every
    /// exponent), the floor itself, ±0 and the negative subnormal nearest 0:
    /// where the K-dim sweep takes it.
    #[test]
    fn integer_scaled_exp_gives_the_portable_bits() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("skipped: this CPU has no AVX2 and FMA");
            return;
        }
        let (zero, floor) = ((-0.0f32).to_bits(), NORMAL_EXP_FLOOR.to_bits());
        let mut inputs: Vec<f32> = (zero..floor).step_by(61).map(f32::from_bits).collect();
        inputs.extend([NORMAL_EXP_FLOOR, -0.0, 0.0, -1e-45]);
        inputs.resize(inputs.len().div_ceil(HALF) * HALF, 0.0);
        for chunk in inputs.chunks_exact(HALF) {
            let mut e = [0.0f32; HALF];
            // SAFETY: the CPU has AVX2 and FMA (checked above); both hold 8 f32.
            unsafe { _mm256_storeu_ps(e.as_mut_ptr(), exp8_normal_int(_mm256_loadu_ps(chunk.as_ptr()))) };
            for (&d, &e) in chunk.iter().zip(&e) {
                assert_eq!(e.to_bits(), exp_nonpositive_f32(d).to_bits(), "e^{d:e}");
            }
        }
    }
}
