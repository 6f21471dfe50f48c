//! The class-target row loops of `fused/half.rs` written with AVX-512
//! intrinsics that read the float16/bfloat16 row itself: no f32 copy of it
//! is written or read again, and f16 converts with `vcvtph2ps`/`vcvtps2ph`.
//!
//! One 16-lane vector holds the portable loops' 16 lanes (lane l sums the
//! classes c ≡ l mod 16, the last few classes go to lanes 0..), every step
//! is the portable step (the exp is `fast_exp`'s, see `fused/avx512.rs`;
//! the backward gathers e^(lp) from `exp_table.rs`, that exp's values of
//! every half-precision lp, or for f16 half of them, computing the rest),
//! and the rounding is `half_bits.rs`'s: `vcvtps2ph` with round-to-nearest-
//! even rounds exactly as it does (tested on every 61st f32 pattern), and
//! bf16 rounds with the same integer steps. So every level gives the same
//! bits. Rows holding NaN or +inf (or only −inf) never come here: their
//! results are NaN, which the portable path makes with libtorch's payloads.

use std::arch::x86_64::*;

use half::{bf16, f16};

use super::super::super::fast_exp::{HALF_POLY, NORMAL_EXP_FLOOR};
use super::super::avx512::{exp16_normal_with, exp16_with};
use super::super::lanes::{fold_lanes, LANES};
use super::exp_table::ExpTable;
use super::{lp_patterns, prefetch_next_line, BitVerdict, Bits, ClassGradient, Extremes, STREAM_ROW_BYTES};

const ROUND_NEAREST_EVEN: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// How [`backward_sweep`] writes a row's gradient.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Store {
    /// Plain stores: short rows, or rows not 16-byte aligned.
    Plain,
    /// One 32-byte streaming store per 16 classes (32-byte aligned rows).
    Stream32,
    /// Two 16-byte streaming stores per 16 classes (16-byte aligned rows,
    /// such as a large `Vec`'s).
    Stream16,
}

/// The stores for a gradient row of `bytes` bytes at `out`. Each 16
/// classes are 32 bytes, so the row's alignment is every store's.
fn store_kind<H>(out: *const H, bytes: usize) -> Store {
    match (out as usize) % 32 {
        _ if bytes < STREAM_ROW_BYTES => Store::Plain,
        0 => Store::Stream32,
        16 => Store::Stream16,
        _ => Store::Plain,
    }
}

/// A half type's conversions on 16 lanes (and its table of exps).
pub(crate) trait Half16: ExpTable {
    /// Whether the backward sweep computes every other 16 classes' e^lp
    /// rather than gathering it: f16, whose conversions leave the
    /// vector units less to spare than the gather costs; not bf16
    /// (no faster with it, within noise, on rows that miss the permuted
    /// table).
    const COMPUTED_EXPS: bool;
    /// Sixteen values (their bits) as f32, exactly (NaN aside: rows with NaN
    /// do not come here).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW.
    unsafe fn widen16(bits: __m256i) -> __m512;
    /// Each lane rounded to this type, as `Element::round_f32`.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    unsafe fn round16(v: __m512) -> __m512;
    /// [`Half16::round16`] for lanes that hold no NaN.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    unsafe fn round16_number(v: __m512) -> __m512 {
        // SAFETY: the caller's promise.
        unsafe { Self::round16(v) }
    }
    /// Each lane rounded to this type, its bits, as `Element::narrow_f32`.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW.
    unsafe fn narrow16(v: __m512) -> __m256i;
    /// [`Half16::narrow16`] for lanes that hold no NaN.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW.
    unsafe fn narrow16_number(v: __m512) -> __m256i {
        // SAFETY: the caller's promise.
        unsafe { Self::narrow16(v) }
    }
    /// [`Half16::round16_number`], and each rounded lane's bits in the low
    /// half of its 32 bits: its index in the type's [`ExpTable`].
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW.
    unsafe fn round16_number_indexed(v: __m512) -> (__m512, __m512i);
    /// [`Half16::round16_number`] of `a` and of `b`, and the 32 rounded
    /// lanes' bits as 16-bit words, `a`'s then `b`'s.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW.
    unsafe fn round32_number_patterns(a: __m512, b: __m512) -> (__m512, __m512, __m512i);
}

impl Half16 for f16 {
    const COMPUTED_EXPS: bool = true;

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn widen16(bits: __m256i) -> __m512 {
        _mm512_cvtph_ps(bits)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn round16(v: __m512) -> __m512 {
        _mm512_cvtph_ps(_mm512_cvtps_ph::<ROUND_NEAREST_EVEN>(v))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn narrow16(v: __m512) -> __m256i {
        _mm512_cvtps_ph::<ROUND_NEAREST_EVEN>(v)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn round16_number_indexed(v: __m512) -> (__m512, __m512i) {
        let bits = _mm512_cvtps_ph::<ROUND_NEAREST_EVEN>(v);
        (_mm512_cvtph_ps(bits), _mm512_cvtepu16_epi32(bits))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn round32_number_patterns(a: __m512, b: __m512) -> (__m512, __m512, __m512i) {
        let (a, b) = (
            _mm512_cvtps_ph::<ROUND_NEAREST_EVEN>(a),
            _mm512_cvtps_ph::<ROUND_NEAREST_EVEN>(b),
        );
        let words = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b);
        (_mm512_cvtph_ps(a), _mm512_cvtph_ps(b), words)
    }
}

impl Half16 for bf16 {
    const COMPUTED_EXPS: bool = false;

    /// One word permute puts the values in the lanes' high halves and the
    /// zeros of the upper 256 bits below them: one µop, where a zero
    /// extension and a shift take two. (VBMI2's expanding load, the other
    /// one-instruction way, measured slower on Sapphire Rapids.)
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn widen16(bits: __m256i) -> __m512 {
        // SAFETY: `LOW_TO_HIGH` holds 64 bytes; `loadu` takes any alignment.
        let index = unsafe { _mm512_loadu_si512(LOW_TO_HIGH.as_ptr().cast()) };
        _mm512_castsi512_ps(_mm512_permutexvar_epi16(index, _mm512_zextsi256_si512(bits)))
    }

    /// `half_bits.rs`'s bf16 rounding: NaN made quiet, else 16 bits dropped
    /// to nearest, ties to even (a carry moves into the exponent).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn round16(v: __m512) -> __m512 {
        let bits = _mm512_castps_si512(v);
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        let rounded = _mm512_mask_or_epi32(nearest_even(bits), nan, bits, _mm512_set1_epi32(0x0040_0000));
        _mm512_castsi512_ps(_mm512_and_si512(rounded, _mm512_set1_epi32(0xffff_0000_u32 as i32)))
    }

    /// Without NaN, rounding is the integer step alone.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn round16_number(v: __m512) -> __m512 {
        let nearest = nearest_even(_mm512_castps_si512(v));
        _mm512_castsi512_ps(_mm512_and_si512(nearest, _mm512_set1_epi32(0xffff_0000_u32 as i32)))
    }

    /// [`Half16::round16`]'s steps without its last and: the high halves
    /// are picked out as they are.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn narrow16(v: __m512) -> __m256i {
        let bits = _mm512_castps_si512(v);
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        high_halves(_mm512_mask_or_epi32(
            nearest_even(bits),
            nan,
            bits,
            _mm512_set1_epi32(0x0040_0000),
        ))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn narrow16_number(v: __m512) -> __m256i {
        high_halves(nearest_even(_mm512_castps_si512(v)))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn round16_number_indexed(v: __m512) -> (__m512, __m512i) {
        let nearest = nearest_even(_mm512_castps_si512(v));
        let rounded = _mm512_and_si512(nearest, _mm512_set1_epi32(0xffff_0000_u32 as i32));
        (_mm512_castsi512_ps(rounded), _mm512_srli_epi32::<16>(nearest))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn round32_number_patterns(a: __m512, b: __m512) -> (__m512, __m512, __m512i) {
        let high = _mm512_set1_epi32(0xffff_0000_u32 as i32);
        let (a, b) = (
            nearest_even(_mm512_castps_si512(a)),
            nearest_even(_mm512_castps_si512(b)),
        );
        // SAFETY: `HIGH_HALVES_OF_TWO` holds 64 bytes; `loadu` takes any alignment.
        let index = unsafe { _mm512_loadu_si512(HIGH_HALVES_OF_TWO.as_ptr().cast()) };
        (
            _mm512_castsi512_ps(_mm512_and_si512(a, high)),
            _mm512_castsi512_ps(_mm512_and_si512(b, high)),
            _mm512_permutex2var_epi16(a, index, b),
        )
    }
}

/// Word 2l + 1 of the first of two 512-bit vectors (the high half of its
/// 32-bit lane l) into word l, and of the second into word 16 + l, for l < 16.
const HIGH_HALVES_OF_TWO: [u16; 32] = {
    let mut index = [0; 32];
    let mut l = 0;
    while l < LANES {
        index[l] = 2 * l as u16 + 1;
        index[LANES + l] = 32 + 2 * l as u16 + 1;
        l += 1;
    }
    index
};

/// Word l of a 512-bit vector into word 2l + 1 (the high half of 32-bit
/// lane l), for l < 16, and word 16 (zero in a widened 256-bit vector)
/// into the low halves.
const LOW_TO_HIGH: [u16; 32] = {
    let mut index = [16; 32];
    let mut l = 0;
    while l < LANES {
        index[2 * l + 1] = l as u16;
        l += 1;
    }
    index
};

/// Word 2l + 1 of a 512-bit vector (the high half of 32-bit lane l) into
/// word l, for l < 16.
const HIGH_HALVES: [u16; 32] = {
    let mut index = [0; 32];
    let mut l = 0;
    while l < LANES {
        index[l] = 2 * l as u16 + 1;
        l += 1;
    }
    index
};

/// The high 16 bits of each 32-bit lane, in order: one permute, where a
/// shift and a narrowing (two µops) would take two instructions.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn high_halves(bits: __m512i) -> __m256i {
    // SAFETY: `HIGH_HALVES` holds 64 bytes; `loadu` takes any alignment.
    let index = unsafe { _mm512_loadu_si512(HIGH_HALVES.as_ptr().cast()) };
    _mm512_castsi512_si256(_mm512_permutexvar_epi16(index, bits))
}

/// bf16's round to nearest, ties to even, on f32 bits (NaN aside): the
/// high 16 bits of the result are the rounded value. The kept part's last
/// bit is tested into a mask, one instruction instead of a shift and an and.
#[inline]
#[target_feature(enable = "avx512f")]
fn nearest_even(bits: __m512i) -> __m512i {
    let odd = _mm512_test_epi32_mask(bits, _mm512_set1_epi32(0x1_0000));
    let below_half = _mm512_add_epi32(bits, _mm512_set1_epi32(0x7fff));
    _mm512_mask_add_epi32(below_half, odd, below_half, _mm512_set1_epi32(1))
}

/// The 16 values from `src[start..]` (`start + 16 ≤ src.len()`), widened.
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn load<H: Half16>(src: &[H], start: usize) -> __m512 {
    assert!(start + LANES <= src.len());
    // SAFETY: 16 values of 2 bytes from `start` are in `src` (asserted);
    // `loadu` takes any alignment.
    unsafe { H::widen16(_mm256_loadu_si256(src.as_ptr().add(start).cast())) }
}

/// The classes after the last whole 16 (fewer than 16), padded with zeros,
/// and the mask of the lanes they fill.
fn tail<H: Half16>(src: &[H], full: usize) -> ([H; LANES], __mmask16) {
    let mut padded = [H::from_f64(0.0); LANES];
    let rest = &src[full..];
    padded[..rest.len()].copy_from_slice(rest);
    (padded, ((1u32 << rest.len()) - 1) as __mmask16)
}

/// The lanes of `v` folded in `fold_lanes`'s tree.
#[inline]
#[target_feature(enable = "avx512f")]
fn fold(v: __m512) -> f32 {
    let mut lanes = [0.0f32; LANES];
    // SAFETY: `lanes` holds 16 f32.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), v) };
    fold_lanes(&lanes) as f32
}

/// Classes per step of a [`BitScan`]: 32 patterns of 16 bits in a vector.
const SCAN: usize = 2 * LANES;

/// A row's extremes from its raw 16-bit patterns, 32 classes per step and
/// three instructions, none widening: the signed max and the unsigned min
/// and max that [`BitVerdict::of`] reads. Integer maxes and mins give the
/// same result in any order, so every scan of a row gives the same verdict.
#[derive(Clone, Copy)]
struct BitScan {
    smax: __m512i,
    umin: __m512i,
    umax: __m512i,
}

impl BitScan {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn new() -> Self {
        BitScan {
            smax: _mm512_set1_epi16(i16::MIN),
            umin: _mm512_set1_epi16(-1),
            umax: _mm512_setzero_si512(),
        }
    }

    /// The 32 patterns of `v`, in the lanes of `mask`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn add(&mut self, mask: __mmask32, v: __m512i) {
        self.smax = _mm512_mask_max_epi16(self.smax, mask, self.smax, v);
        self.umin = _mm512_mask_min_epu16(self.umin, mask, self.umin, v);
        self.umax = _mm512_mask_max_epu16(self.umax, mask, self.umax, v);
    }

    /// Classes `i..i + 32` of `src` (`i + 32 ≤ src.len()`).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn add_at<H: Half16>(&mut self, src: &[H], i: usize) {
        assert!(i + SCAN <= src.len());
        // SAFETY: 32 values of 2 bytes from `i` are in `src` (asserted);
        // `loadu` takes any alignment.
        self.add(!0, unsafe { _mm512_loadu_si512(src.as_ptr().add(i).cast()) });
    }

    /// The classes from `from` on.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn add_rest<H: Half16>(&mut self, src: &[H], mut from: usize) {
        while from + SCAN <= src.len() {
            // SAFETY: the CPU has AVX-512 F and BW; from + 32 ≤ src.len().
            unsafe { self.add_at(src, from) };
            from += SCAN;
        }
        if from < src.len() {
            let rest = &src[from..];
            let mut padded = [H::from_f64(0.0); SCAN];
            padded[..rest.len()].copy_from_slice(rest);
            // SAFETY: `padded` holds 32 values of 2 bytes.
            let v = unsafe { _mm512_loadu_si512(padded.as_ptr().cast()) };
            self.add(((1u64 << rest.len()) - 1) as __mmask32, v);
        }
    }

    /// The extremes of `src`, the row scanned, when it holds no NaN and no
    /// +inf and its max is finite; `None` otherwise. As
    /// `half::widen_with_max` finds it, the max's bits included.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn verdict<H: Half16 + Bits>(self, src: &[H]) -> Option<Extremes> {
        if src.is_empty() {
            return None;
        }
        let lanes = |v: __m512i| {
            let mut lanes = [0u16; SCAN];
            // SAFETY: `lanes` holds 32 values of 2 bytes.
            unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), v) };
            lanes
        };
        let verdict = BitVerdict::of_lanes::<H>(&lanes(self.smax), &lanes(self.umin), &lanes(self.umax));
        verdict.extremes(|| float_row_max(src))
    }
}

/// The max of a row (no NaN in it) as `half::widen_with_max` finds it, for
/// a row whose max is a zero: 16 classes at a time in the row's order, each
/// lane keeping the earlier of equal values (±0: the earlier zero), then
/// the lanes folded as `f32::max` compiles.
#[target_feature(enable = "avx512f,avx512bw")]
fn float_row_max<H: Half16>(src: &[H]) -> f32 {
    let full = src.len() / LANES * LANES;
    let mut acc = _mm512_set1_ps(f32::NEG_INFINITY);
    for i in (0..full).step_by(LANES) {
        // max(v, acc) is acc where the two are equal.
        // SAFETY: the CPU has AVX-512 F and BW; i + 16 ≤ full.
        acc = _mm512_max_ps(unsafe { load(src, i) }, acc);
    }
    if full < src.len() {
        let (padded, mask) = tail(src, full);
        // SAFETY: `padded` holds 16 values; the CPU has AVX-512 F and BW.
        acc = _mm512_mask_max_ps(acc, mask, unsafe { load(&padded, 0) }, acc);
    }
    let mut lanes = [0.0f32; LANES];
    // SAFETY: `lanes` holds 16 f32.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc) };
    lanes.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// The row's extremes, when the row holds no NaN and no +inf and its max
/// is finite; `None` otherwise (see [`BitScan::verdict`]).
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
pub(super) unsafe fn row_max<H: Half16 + Bits>(src: &[H]) -> Option<Extremes> {
    let mut scan = BitScan::new();
    scan.add_rest(src, 0);
    scan.verdict(src)
}

/// `half::exp_sum` on the half-precision row of extremes `row`: Σ e^(x −
/// max), prefetching the next row (`next`, or empty) meanwhile. With
/// `TOTAL` also Σg of the unweighted class gradient `k` (as
/// `half::class_gradient_sum` adds it: the same lanes, the same order),
/// whose chain of adds, alone in its loop, would set that loop's pace; here
/// it rides along.
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
pub(super) unsafe fn exp_sum<H: Half16, const TOTAL: bool>(
    src: &[H],
    row: Extremes,
    next: &[H],
    k: ClassGradient,
) -> (f32, f32) {
    // x − max is monotone in x: from the min's on, every exp is normal.
    // SAFETY (both): the caller's promise.
    match row.min - row.max >= NORMAL_EXP_FLOOR {
        true => unsafe { exp_sweep::<H, TOTAL, true>(src, row.max, next, k) },
        false => unsafe { exp_sweep::<H, TOTAL, false>(src, row.max, next, k) },
    }
}

/// [`exp16_with`] of [`HALF_POLY`], or with `NORMAL` (every d at or above `NORMAL_EXP_FLOOR`)
/// [`exp16_normal_with`] of it: the same bits.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp<const NORMAL: bool>(d: __m512) -> __m512 {
    match NORMAL {
        true => exp16_normal_with(d, &HALF_POLY),
        false => exp16_with(d, &HALF_POLY),
    }
}

/// [`exp_sum`]; with `NORMAL` every x − max is at or above `NORMAL_EXP_FLOOR`.
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn exp_sweep<H: Half16, const TOTAL: bool, const NORMAL: bool>(
    src: &[H],
    max: f32,
    next: &[H],
    k: ClassGradient,
) -> (f32, f32) {
    let m = _mm512_set1_ps(max);
    let (base, at_target) = (_mm512_set1_ps(k.base), _mm512_set1_ps(k.at_target));
    // g for the 16 classes from `start`.
    let g = |start: usize| match k.target.wrapping_sub(start) < LANES {
        true => _mm512_mask_mov_ps(base, 1 << (k.target - start), at_target),
        false => base,
    };
    let full = src.len() / LANES * LANES;
    let (mut acc, mut acc_g) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut i = 0;
    while i < full {
        // As the portable loop.
        prefetch_next_line(next, i);
        // SAFETY: the CPU has AVX-512 F and BW (the caller's promise); i + 16 ≤ full.
        let x = unsafe { load(src, i) };
        acc = _mm512_add_ps(acc, exp::<NORMAL>(_mm512_sub_ps(x, m)));
        if TOTAL {
            acc_g = _mm512_add_ps(acc_g, g(i));
        }
        i += LANES;
    }
    if full < src.len() {
        let (padded, mask) = tail(src, full);
        // SAFETY: `padded` holds 16 values; the CPU has AVX-512 F and BW.
        let x = unsafe { load(&padded, 0) };
        // The padding's lanes, whatever their exp, are not added.
        acc = _mm512_mask_add_ps(acc, mask, acc, exp::<NORMAL>(_mm512_sub_ps(x, m)));
        if TOTAL {
            acc_g = _mm512_mask_add_ps(acc_g, mask, acc_g, g(full));
        }
    }
    (fold(acc), if TOTAL { fold(acc_g) } else { 0.0 })
}

/// lp = r((x − max) − ln_sum) for 16 classes: never NaN, as rows here
/// hold finite values and −inf, the max is finite, ln_sum finite or +inf.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn log_probability<H: Half16>(x: __m512, max: __m512, ln_sum: __m512) -> __m512 {
    // SAFETY: the caller's promise.
    unsafe { H::round16_number(_mm512_sub_ps(_mm512_sub_ps(x, max), ln_sum)) }
}

/// The 16 weights from `w[start..]`, or the tail's zero-padded.
#[inline]
#[target_feature(enable = "avx512f")]
fn weights(w: &[f32], start: usize) -> __m512 {
    let mut padded = [0.0f32; LANES];
    let chunk = &w[start..(start + LANES).min(w.len())];
    if chunk.len() == LANES {
        // SAFETY: the chunk holds 16 f32.
        return unsafe { _mm512_loadu_ps(chunk.as_ptr()) };
    }
    padded[..chunk.len()].copy_from_slice(chunk);
    // SAFETY: `padded` holds 16 f32.
    unsafe { _mm512_loadu_ps(padded.as_ptr()) }
}

/// `half::log_probability_sum` on the half-precision row: Σ_c lp_c, or
/// Σ_c r(lp_c·w_c) with `WEIGHTED` (`w`: the row's length); with `next`
/// (the next row, of the row's length, or empty) also [`row_max`] of it,
/// whose read from memory then overlaps this row's arithmetic.
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
pub(super) unsafe fn log_probability_sum<H: Half16 + Bits, const WEIGHTED: bool>(
    src: &[H],
    max: f32,
    ln_sum: f32,
    w: &[f32],
    next: &[H],
) -> (f32, Option<Option<Extremes>>) {
    assert!(!WEIGHTED || w.len() >= src.len());
    let scan_next = next.len() == src.len();
    let mut scan = BitScan::new();
    let (m, ln) = (_mm512_set1_ps(max), _mm512_set1_ps(ln_sum));
    // SAFETY (both closures' calls): the CPU has AVX-512 F and BW (the caller's promise).
    let term = |x: __m512, start: usize| unsafe {
        let lp = log_probability::<H>(x, m, ln);
        match WEIGHTED {
            true => H::round16(_mm512_mul_ps(lp, weights(w, start))),
            false => lp,
        }
    };
    let full = src.len() / LANES * LANES;
    let mut acc = _mm512_setzero_ps();
    // SAFETY: the CPU has AVX-512 F and BW (the caller's promise); i + 16 ≤ full.
    let mut add_chunk = |i: usize| acc = _mm512_add_ps(acc, term(unsafe { load(src, i) }, i));
    // Two chunks of 16 a turn, and 32 classes of the next row in one scan
    // (measured faster for bf16 than a scan every other chunk).
    let mut i = 0;
    while i + SCAN <= full {
        add_chunk(i);
        add_chunk(i + LANES);
        if scan_next {
            // SAFETY: the CPU has AVX-512 F and BW; i + 32 ≤ full ≤ next.len().
            unsafe { scan.add_at(next, i) };
        }
        i += SCAN;
    }
    let scanned = i;
    if i < full {
        add_chunk(i);
    }
    if full < src.len() {
        let (padded, mask) = tail(src, full);
        // SAFETY: `padded` holds 16 values; the CPU has AVX-512 F and BW.
        let x = unsafe { load(&padded, 0) };
        acc = _mm512_mask_add_ps(acc, mask, acc, term(x, full));
    }
    if scan_next {
        scan.add_rest(next, scanned);
    }
    (fold(acc), scan_next.then(|| scan.verdict(next)))
}

/// `half::class_backward_row`'s sweep on the half-precision row of
/// extremes `row` (its max alone matters here), given Σg (`sum_g`): writes r(g_c − e^(lp_c)·Σg) to `out` and with `SUM`
/// returns what [`log_probability_sum`] returns; with `next` (the next row,
/// of the row's length, or empty) also [`row_max`] of it, as
/// [`log_probability_sum`] finds it.
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn class_backward<H: Half16 + Bits, const SUM: bool, const WEIGHTED: bool>(
    src: &[H],
    row: Extremes,
    ln_sum: f32,
    k: ClassGradient,
    sum_g: f32,
    w: &[f32],
    out: &mut [H],
    next: &[H],
) -> (f32, Option<Option<Extremes>>) {
    // Unweighted, with finite g and Σg, each g_c − e·Σg is a number
    // (e ∈ [0, 1]), so its rounding needs no NaN step.
    let numbers = !WEIGHTED && k.base.is_finite() && k.at_target.is_finite() && sum_g.is_finite();
    // SAFETY (both): the caller's promise.
    unsafe {
        match numbers {
            true => backward_sweep::<H, SUM, WEIGHTED, true>(src, row, ln_sum, k, sum_g, w, out, next),
            false => backward_sweep::<H, SUM, WEIGHTED, false>(src, row, ln_sum, k, sum_g, w, out, next),
        }
    }
}

/// Most entries of a [`permuted_sweep`]'s table: 8 vectors of 32.
const PERMUTED: usize = 256;

/// [`backward_sweep`]'s loop on an unweighted row whose lp patterns `lps` number at most
/// [`PERMUTED`], given each pattern's gradient bits (`gradients[p − lps.start]`):
/// 32 classes a step, their gradients looked up with four two-vector word
/// permutes (no gather) and picked by the index's bits 6 and 7. Writes the
/// target's class as any other; returns the classes swept (a multiple of
/// 32) and the lanes' sums.
///
/// # Safety
/// The CPU must support AVX-512 F and BW; `store` must be [`store_kind`]'s
/// for `out`; every lp of the row must have its pattern in `lps`.
#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn permuted_sweep<H: Half16, const SUM: bool>(
    src: &[H],
    out: &mut [H],
    next: &[H],
    m: __m512,
    ln: __m512,
    lps: std::ops::Range<usize>,
    gradients: &[u16; PERMUTED],
    store: Store,
    scan: &mut BitScan,
) -> (usize, __m512) {
    let full = src.len() / SCAN * SCAN;
    assert!(full <= out.len());
    let scan_next = next.len() == src.len();
    // SAFETY: `gradients` holds 8·32 u16; `loadu` takes any alignment.
    let t: [__m512i; 8] = std::array::from_fn(|q| unsafe { _mm512_loadu_si512(gradients.as_ptr().add(32 * q).cast()) });
    let start = _mm512_set1_epi16(lps.start as u16 as i16);
    let (bit6, bit7) = (_mm512_set1_epi16(64), _mm512_set1_epi16(128));
    let mut scanned = *scan;
    let mut acc = _mm512_setzero_ps();
    let out_at = out.as_mut_ptr();
    let mut i = 0;
    while i < full {
        // SAFETY: the CPU has AVX-512 F and BW (the caller's promise);
        // i + 32 ≤ full ≤ out.len() (asserted), and ≤ next.len() when
        // scanned; out + i has the alignment `store_kind` found for out.
        unsafe {
            let lp = |x: __m512| _mm512_sub_ps(_mm512_sub_ps(x, m), ln);
            let (a, b, patterns) = H::round32_number_patterns(lp(load(src, i)), lp(load(src, i + LANES)));
            // Below 256 (every pattern in `lps`, the caller's promise): each
            // permute reads the index's low 6 bits.
            let index = _mm512_sub_epi16(patterns, start);
            let (high6, high7) = (_mm512_test_epi16_mask(index, bit6), _mm512_test_epi16_mask(index, bit7));
            let quarter = |q: usize| _mm512_permutex2var_epi16(t[2 * q], index, t[2 * q + 1]);
            let low = _mm512_mask_mov_epi16(quarter(0), high6, quarter(1));
            let high = _mm512_mask_mov_epi16(quarter(2), high6, quarter(3));
            let o = _mm512_mask_mov_epi16(low, high7, high);
            let p = out_at.add(i);
            match store {
                Store::Plain => _mm512_storeu_si512(p.cast(), o),
                Store::Stream32 => {
                    _mm256_stream_si256(p.cast(), _mm512_castsi512_si256(o));
                    _mm256_stream_si256(p.add(LANES).cast(), _mm512_extracti64x4_epi64::<1>(o));
                }
                Store::Stream16 => {
                    _mm_stream_si128(p.cast(), _mm512_castsi512_si128(o));
                    _mm_stream_si128(p.add(8).cast(), _mm512_extracti32x4_epi32::<1>(o));
                    _mm_stream_si128(p.add(16).cast(), _mm512_extracti32x4_epi32::<2>(o));
                    _mm_stream_si128(p.add(24).cast(), _mm512_extracti32x4_epi32::<3>(o));
                }
            }
            if SUM {
                acc = _mm512_add_ps(_mm512_add_ps(acc, a), b);
            }
            if scan_next {
                scanned.add_at(next, i);
            }
        }
        i += SCAN;
    }
    *scan = scanned;
    (full, acc)
}

/// [`class_backward`]; with `NUMBERS` no gradient value is NaN. Its
/// e^(lp_c) come from the type's [`ExpTable`], indexed by lp_c's bits (for
/// f16, every other 16 classes: the rest from [`exp`], the same bits);
/// unweighted, on rows whose lps take at most [`PERMUTED`] patterns
/// ([`lp_patterns`]), the gradient values themselves come from a table the
/// row builds ([`permuted_sweep`]).
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn backward_sweep<H: Half16 + Bits, const SUM: bool, const WEIGHTED: bool, const NUMBERS: bool>(
    src: &[H],
    row: Extremes,
    ln_sum: f32,
    k: ClassGradient,
    sum_g: f32,
    w: &[f32],
    out: &mut [H],
    next: &[H],
) -> (f32, Option<Option<Extremes>>) {
    let n = src.len();
    assert!(out.len() >= n && (!WEIGHTED || w.len() >= n));
    let scan_next = next.len() == n;
    let mut scan = BitScan::new();
    let (m, ln, total) = (_mm512_set1_ps(row.max), _mm512_set1_ps(ln_sum), _mm512_set1_ps(sum_g));
    let (base, at_target) = (_mm512_set1_ps(k.base), _mm512_set1_ps(k.at_target));
    let exps = H::exp_table();
    let table = exps.as_ptr();
    // Classes `start..start + 16`: the 16 gradient values (their bits), and
    // the smoothing terms; with `computed` e^lp from the exp, else gathered
    // from the table (the same bits, see `exp_table.rs`).
    // SAFETY: the CPU has AVX-512 F and BW (the caller's promise).
    let step = |x: __m512, start: usize, computed: bool| unsafe {
        // Never NaN (see `log_probability`): the portable loop's NaN
        // branch around the exp is not needed.
        let (lp, index) = H::round16_number_indexed(_mm512_sub_ps(_mm512_sub_ps(x, m), ln));
        let e = match computed {
            true => exp::<false>(lp),
            // SAFETY: each index is 16 bits zero-extended, below `PATTERNS`,
            // the table's length.
            false => _mm512_i32gather_ps::<4>(index, table),
        };
        let wv = if WEIGHTED { weights(w, start) } else { base };
        let mut g = if WEIGHTED {
            H::round16(_mm512_mul_ps(base, wv))
        } else {
            base
        };
        if k.target.wrapping_sub(start) < LANES {
            g = _mm512_mask_mov_ps(g, 1 << (k.target - start), at_target);
        }
        let v = _mm512_sub_ps(g, _mm512_mul_ps(e, total));
        let o = if NUMBERS { H::narrow16_number(v) } else { H::narrow16(v) };
        let term = if WEIGHTED {
            H::round16(_mm512_mul_ps(lp, wv))
        } else {
            lp
        };
        (o, term)
    };
    let full = n / LANES * LANES;
    let store = store_kind(out.as_ptr(), std::mem::size_of_val(&out[..n]));
    // Unweighted, every class's gradient but the target's is a function of
    // its lp's bits: on rows whose lps take few patterns, a table of them
    // (built with `step`'s operations) replaces the exps' gather, the
    // product, the difference and the rounding of each class.
    let lps = if WEIGHTED {
        None
    } else {
        lp_patterns::<H>(row, ln_sum, n, PERMUTED)
    };
    let (swept, mut acc) = match &lps {
        Some(lps) => {
            // Entries 0..lps.len() are the gradients; the rest are never read.
            let mut gradients = [0u16; PERMUTED];
            for j in (0..lps.len()).step_by(LANES) {
                let first = lps.start + j;
                // `lps` ends at or before −inf's pattern, far below `PATTERNS`.
                let e: &[f32; LANES] = exps[first..first + LANES].try_into().expect("16 exps");
                // SAFETY: the CPU has AVX-512 F and BW; `e` holds 16 f32, and
                // j + 16 ≤ PERMUTED (j < lps.len() ≤ PERMUTED, both multiples of 16).
                unsafe {
                    // `step`'s g − e·Σg and rounding, g the target's neighbours'.
                    let v = _mm512_sub_ps(base, _mm512_mul_ps(_mm512_loadu_ps(e.as_ptr()), total));
                    let o = if NUMBERS { H::narrow16_number(v) } else { H::narrow16(v) };
                    _mm256_storeu_si256(gradients.as_mut_ptr().add(j).cast(), o);
                }
            }
            // SAFETY: the caller's promise; `store` is `store_kind`'s; every
            // lp of the row has its pattern in `lps` (see `lp_patterns`).
            unsafe { permuted_sweep::<H, SUM>(src, out, next, m, ln, lps.clone(), &gradients, store, &mut scan) }
        }
        None => (0, _mm512_setzero_ps()),
    };
    let out_at = out.as_mut_ptr();
    // SAFETY: the CPU has AVX-512 F and BW (the caller's promise); i + 16 ≤ full ≤ out.len() (asserted);
    // out + i has the alignment `store_kind` found for out, as the streaming stores require.
    let mut chunk = |i: usize, computed: bool| unsafe {
        let (o, term) = step(load(src, i), i, computed);
        let p = out_at.add(i);
        match store {
            Store::Plain => _mm256_storeu_si256(p.cast(), o),
            Store::Stream32 => _mm256_stream_si256(p.cast(), o),
            Store::Stream16 => {
                _mm_stream_si128(p.cast(), _mm256_castsi256_si128(o));
                _mm_stream_si128(p.add(LANES / 2).cast(), _mm256_extracti128_si256::<1>(o));
            }
        }
        if SUM {
            acc = _mm512_add_ps(acc, term);
        }
    };
    // 32 classes a turn, and of the next row in one scan. The first 16
    // gather their exps; for f16 the second 16 compute them
    // (`Half16::COMPUTED_EXPS`): the gather waits on the loads, the exp on
    // the vector units, so the two overlap (f16: the gather alone measured
    // 7–11 % slower, the exp alone slower still). After a permuted sweep
    // (up to the last whole 32) it takes the 16 whole classes left, if
    // any. (`chunk` called once, so that LLVM inlines it in every variant.)
    let mut i = swept;
    while i < full {
        for (start, computed) in [(i, false), (i + LANES, H::COMPUTED_EXPS)] {
            if start < full {
                chunk(start, computed);
            }
        }
        if scan_next && i + SCAN <= full {
            // SAFETY: the CPU has AVX-512 F and BW; i + 32 ≤ full ≤ next.len().
            unsafe { scan.add_at(next, i) };
        }
        i += SCAN;
    }
    let scanned = full / SCAN * SCAN;
    if store != Store::Plain {
        // Streaming stores are weakly ordered: the fence makes them visible
        // before any later store, such as the target's below or the one
        // that tells the thread waiting on this job that it is done.
        _mm_sfence();
    }
    // The permuted sweep wrote the target's class as any other: the
    // target's 16 classes again, with the target.
    if !WEIGHTED && k.target < swept {
        let start = k.target / LANES * LANES;
        // SAFETY: the CPU has AVX-512 F and BW; start + 16 ≤ swept ≤ out.len().
        unsafe {
            _mm256_storeu_si256(
                out.as_mut_ptr().add(start).cast(),
                step(load(src, start), start, false).0,
            )
        };
    }
    if full < n {
        let (padded, mask) = tail(src, full);
        let mut written = [H::from_f64(0.0); LANES];
        // SAFETY: `padded` and `written` hold 16 values; the CPU has AVX-512 F and BW.
        unsafe {
            let (o, term) = step(load(&padded, 0), full, false);
            _mm256_storeu_si256(written.as_mut_ptr().cast(), o);
            if SUM {
                acc = _mm512_mask_add_ps(acc, mask, acc, term);
            }
        }
        out[full..n].copy_from_slice(&written[..n - full]);
    }
    if scan_next {
        scan.add_rest(next, scanned);
    }
    let sum = if SUM { fold(acc) } else { 0.0 };
    (sum, scan_next.then(|| scan.verdict(next)))
}

#[cfg(test)]
mod tests {
    use super::super::super::super::half_bits::HalfBits;
    use super::super::lane_tests::{check_backward_sweeps, check_next_max_of_sweeps, check_vector_exps};
    use super::*;

    /// Whether this CPU runs this file's loops: AVX-512 F and BW.
    fn has_avx512() -> bool {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
    }

    /// Every 61st f32 bit pattern, 16 at a time, through `round16` and
    /// `narrow16` against `half_bits.rs`, and every half pattern through
    /// `widen16` (NaN aside for bf16, whose `widen16` leaves NaN as it is).
    fn matches_half_bits<H: Half16 + HalfBits + Bits>(widen_nan: bool) {
        if !has_avx512() {
            eprintln!("skipped: this CPU has no AVX-512 F and BW");
            return;
        }
        let patterns: Vec<u32> = (0..=u32::MAX / 61).map(|i| i.wrapping_mul(61)).collect();
        for chunk in patterns.chunks_exact(LANES) {
            let v: Vec<f32> = chunk.iter().map(|&b| f32::from_bits(b)).collect();
            let (mut rounded, mut narrowed) = ([0.0f32; LANES], [H::from_f64(0.0); LANES]);
            // SAFETY: the CPU has AVX-512 F and BW (checked above); the arrays hold 16 values.
            unsafe {
                let x = _mm512_loadu_ps(v.as_ptr());
                _mm512_storeu_ps(rounded.as_mut_ptr(), H::round16(x));
                let (mut number, mut narrowed_number) = ([0.0f32; LANES], [H::from_f64(0.0); LANES]);
                _mm512_storeu_ps(number.as_mut_ptr(), H::round16_number(x));
                _mm256_storeu_si256(narrowed_number.as_mut_ptr().cast(), H::narrow16_number(x));
                for l in (0..LANES).filter(|&l| !v[l].is_nan()) {
                    assert_eq!(number[l].to_bits(), H::round(v[l]).to_bits(), "round {:#x}", chunk[l]);
                    assert_eq!(
                        narrowed_number[l].bits(),
                        H::narrow(v[l]).bits(),
                        "narrow {:#x}",
                        chunk[l]
                    );
                }
                _mm256_storeu_si256(narrowed.as_mut_ptr().cast(), H::narrow16(x));
            }
            for l in 0..LANES {
                assert_eq!(rounded[l].to_bits(), H::round(v[l]).to_bits(), "round {:#x}", chunk[l]);
                assert_eq!(narrowed[l].bits(), H::narrow(v[l]).bits(), "narrow {:#x}", chunk[l]);
            }
        }
        let halves: Vec<H> = (0..=u16::MAX).map(H::of_bits).collect();
        for chunk in halves.chunks_exact(LANES) {
            let mut widened = [0.0f32; LANES];
            // SAFETY: as above.
            unsafe { _mm512_storeu_ps(widened.as_mut_ptr(), load(chunk, 0)) };
            for l in 0..LANES {
                let expected = chunk[l].widen();
                if widen_nan || !expected.is_nan() {
                    assert_eq!(widened[l].to_bits(), expected.to_bits(), "widen {:?}", chunk[l]);
                }
            }
        }
    }

    /// `exp16_with` and `exp16_normal_with` against the portable exp
    /// ([`check_vector_exps`]).
    #[test]
    fn exp16_gives_the_portable_bits() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512 F");
            return;
        }
        check_vector_exps(LANES, |d, poly| {
            let (mut e, mut e_normal) = (vec![0.0f32; LANES], vec![0.0f32; LANES]);
            // SAFETY: the CPU has AVX-512 F (checked above); `d` and the vectors hold 16 f32.
            unsafe {
                let d = _mm512_loadu_ps(d.as_ptr());
                _mm512_storeu_ps(e.as_mut_ptr(), exp16_with(d, poly));
                _mm512_storeu_ps(e_normal.as_mut_ptr(), exp16_normal_with(d, poly));
            }
            (e, e_normal)
        });
    }

    /// The backward sweep's computed e^lp (`exp::<false>`) gives the
    /// table's bits, which the other half of its classes gather, for every
    /// lp a row can take: every value of the type at or below zero, −inf
    /// included (lp never rises above zero, see `lp_patterns`; NaN rows
    /// never come here).
    fn computed_exp_is_the_table<H: Half16 + Bits>() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512 F");
            return;
        }
        let table = H::exp_table();
        let lps: Vec<u16> = (0..=u16::MAX)
            .filter(|&bits| H::of_bits(bits).widen_f32() <= 0.0)
            .collect();
        assert!(lps.len() > 30_000, "{} patterns", lps.len());
        for chunk in lps.chunks(LANES) {
            let mut lp = [0.0f32; LANES];
            for (l, &bits) in chunk.iter().enumerate() {
                lp[l] = H::of_bits(bits).widen_f32();
            }
            let mut e = [0.0f32; LANES];
            // SAFETY: the CPU has AVX-512 F (checked above); the arrays hold 16 f32.
            unsafe { _mm512_storeu_ps(e.as_mut_ptr(), exp::<false>(_mm512_loadu_ps(lp.as_ptr()))) };
            for (l, &bits) in chunk.iter().enumerate() {
                assert_eq!(
                    e[l].to_bits(),
                    table[bits as usize].to_bits(),
                    "e^{} ({bits:#06x})",
                    lp[l]
                );
            }
        }
    }

    #[test]
    fn computed_exp_is_the_table_f16() {
        computed_exp_is_the_table::<f16>();
    }

    #[test]
    fn computed_exp_is_the_table_bf16() {
        computed_exp_is_the_table::<bf16>();
    }

    /// [`check_next_max`] on this level's forward and backward sweeps, rows up to 150 classes.
    fn next_max_is_row_max<H: Half16 + Bits>() {
        if !has_avx512() {
            eprintln!("skipped: this CPU has no AVX-512 F and BW");
            return;
        }
        // SAFETY (all three closures): the CPU has AVX-512 F and BW (checked above).
        let row_max = |row: &[H]| unsafe { row_max(row) };
        let forward =
            |src: &[H], max, next: &[H]| unsafe { log_probability_sum::<H, false>(src, max, 0.5, &[], next).1 };
        // Unweighted: the sweep's NaN-free rounding; weighted: the other one.
        let backward = |src: &[H], row, k, w: &[f32], out: &mut [H], next: &[H]| unsafe {
            match w.is_empty() {
                true => class_backward::<H, true, false>(src, row, 0.5, k, 0.25, w, out, next).1,
                false => class_backward::<H, false, true>(src, row, 0.5, k, 0.25, w, out, next).1,
            }
        };
        check_next_max_of_sweeps::<H>(150, row_max, forward, backward);
    }

    /// [`check_backward_sweeps`] at this level, with the stores each
    /// output takes: on the long rows 32-byte streaming ones at offset 0,
    /// 16-byte ones at 8, elsewhere plain; and unweighted rows take the
    /// permuted table of gradients by lp pattern or not: both occur, and
    /// some row's table fills all four pairs of vectors.
    fn backward_stores_give_the_portable_bits<H: Half16 + Bits>() {
        if !has_avx512() {
            eprintln!("skipped: this CPU has no AVX-512 F and BW");
            return;
        }
        let (mut permuted, mut widest) = ([false; 2], 0);
        // SAFETY (every closure): the CPU has AVX-512 F and BW (checked
        // above); `out` and the weights, when given, have the row's length.
        check_backward_sweeps::<H>(
            |src| unsafe { row_max(src) },
            |src, row, k| unsafe { exp_sum::<H, true>(src, row, &[], k) },
            |src, row, ln_sum, k, sum_g, w, out| unsafe {
                match w.is_empty() {
                    true => class_backward::<H, true, false>(src, row, ln_sum, k, sum_g, w, out, &[]).0,
                    false => class_backward::<H, true, true>(src, row, ln_sum, k, sum_g, w, out, &[]).0,
                }
            },
            |src, row, ln_sum| {
                let lps = lp_patterns::<H>(row, ln_sum, src.len(), PERMUTED);
                permuted[lps.is_some() as usize] = true;
                widest = widest.max(lps.map_or(0, |lps| lps.len()));
            },
            |out, offset, at| {
                let kind = match (out.len(), offset) {
                    (40, _) => Store::Plain,
                    (_, 0) => Store::Stream32,
                    (_, 8) => Store::Stream16,
                    _ => Store::Plain,
                };
                assert_eq!(store_kind(out.as_ptr(), 2 * out.len()), kind, "{at}");
            },
        );
        assert_eq!(permuted, [true, true], "rows with and without the table of gradients");
        assert!(widest > PERMUTED * 3 / 4, "a table of {widest} patterns at most");
    }

    #[test]
    fn backward_stores_give_the_portable_bits_f16() {
        backward_stores_give_the_portable_bits::<f16>();
    }

    #[test]
    fn backward_stores_give_the_portable_bits_bf16() {
        backward_stores_give_the_portable_bits::<bf16>();
    }

    #[test]
    fn next_max_is_row_max_f16() {
        next_max_is_row_max::<f16>();
    }

    #[test]
    fn next_max_is_row_max_bf16() {
        next_max_is_row_max::<bf16>();
    }

    #[test]
    fn f16_lanes_convert_as_half_bits() {
        matches_half_bits::<f16>(true);
    }

    #[test]
    fn bf16_lanes_convert_as_half_bits() {
        matches_half_bits::<bf16>(false);
    }
}
